"""``Lru.for_object``: one value per live object, never another object's."""

from __future__ import annotations

import pytest

from sync.lru import Lru


def test_the_value_is_made_once_per_object_and_an_equal_copy_is_another_object() -> None:
    cache, made = Lru(4), []
    doc = {"swagger": "2.0"}
    for _ in range(3):
        assert cache.for_object(doc, lambda d: made.append(d) or len(made)) == 1
    assert cache.for_object(dict(doc), lambda d: made.append(d) or len(made)) == 2
    assert made[0] is doc and made[1] is not doc


def test_what_make_raises_is_not_kept() -> None:
    cache, calls = Lru(4), []
    doc = {"x-obj": object()}

    def refuse(d: object) -> object:
        calls.append(d)
        raise ValueError("cannot")

    for _ in range(2):
        with pytest.raises(ValueError, match="cannot"):
            cache.for_object(doc, refuse)
    assert len(calls) == 2 and cache.get(id(doc)) is None


def test_an_evicted_object_is_made_again() -> None:
    cache, made = Lru(1), []
    first, second = {"n": 1}, {"n": 2}
    cache.for_object(first, lambda d: made.append(d) or "a")
    cache.for_object(second, lambda d: made.append(d) or "b")  # pushes ``first`` out
    assert cache.for_object(first, lambda d: made.append(d) or "c") == "c"
    assert made == [first, second, first]
