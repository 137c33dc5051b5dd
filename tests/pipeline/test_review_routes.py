"""Route parameters that are not a plain version number answer 400 naming ``n`` (found in review:
``"²".isdigit()`` is true but ``int("²")`` raises, which escaped the error mapping as a 500, and
numbers past the ledger's range answered a 400 naming an internal location instead of ``n``)."""

from __future__ import annotations

import pytest

from sync.http_api import ApiRequest, get_run, get_version, guarded

pytestmark = pytest.mark.azurite


class _NoLedger:
    def __getattr__(self, name: str):
        raise AssertionError(f"a refused request touched the ledger ({name})")


@pytest.mark.parametrize(
    "n", ["\u00b2", "\u0661", "0", "-1", "1.5", "", "99999999999", "1e3", " 1"]
)
def test_a_bad_version_number_is_400_naming_n_without_a_ledger_read(stack, n):
    from sync.bootstrap import with_ports

    svc = with_ports(stack.service(), ledger=_NoLedger())
    req = ApiRequest(
        "GET", "/", query={"target": "dev"}, route={"api": "contoso-invoicing", "n": n}
    )
    resp = guarded(lambda r: get_version(r, svc))(req)
    assert resp.status == 400, resp.body
    assert resp.body["error"]["field"] == "n"


@pytest.mark.parametrize("run_id", ["\uff41", "\u00b2", "\u0661", "\u00e9t\u00e9", "a-b", ""])
def test_a_bad_run_id_is_400_naming_id_without_a_ledger_read(stack, run_id: str) -> None:
    """``str.isalnum()`` is true for non-ASCII letters and digits (fullwidth "a", "²", Arabic-Indic
    one, "été"): such an id reached the ledger, whose 400 named its internal location and regex
    instead of ``id``."""
    from sync.bootstrap import with_ports

    svc = with_ports(stack.service(), ledger=_NoLedger())
    resp = guarded(lambda r: get_run(r, svc))(ApiRequest("GET", "/", route={"id": run_id}))
    assert resp.status == 400, resp.body
    assert resp.body["error"]["field"] == "id"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"api": ' + b"9" * 5000 + b"}", "not valid JSON"),  # past the 4,300-digit limit
        (b'{"api": "x"', "not valid JSON"),
        (b"\xff", "not valid UTF-8"),
    ],
)
def test_a_json_body_python_cannot_read_is_a_400_not_a_crash(body: bytes, expected: str) -> None:
    from sync.http_api import ApiRequest, BadRequest, read_json

    with pytest.raises(BadRequest, match=expected) as caught:
        read_json(ApiRequest(method="POST", url="http://localhost/api/sync", body=body))
    assert caught.value.status == 400
