"""Generated modules the package ships (the Swagger 2.0 validator, the sync map's quick check).

Why shipped: generating them costs a new process (a CI agent, a new Function App instance) up to
~280 ms. Why checked before use: a shipped module runs in our process, so it is used only when it
was generated from exactly what this process would generate it from (its *source key*) and is
whole (the sha256 of its body, so a file cut short or edited by hand is never run). Anything else
and the caller generates its code itself, as before these modules were shipped.

scripts/generate_validator.py writes them: a docstring, then ``# source key: <16 hex>`` and
``# body sha256: <64 hex>``, then the body.
"""

from __future__ import annotations

import hashlib
import logging
import re
from types import CodeType

log = logging.getLogger(__name__)

_HEADER = re.compile(
    rb"# source key: (?P<key>[0-9a-f]{16})\r?\n# body sha256: (?P<sha>[0-9a-f]{64})\r?\n"
)


def header(source_key: str, body: str) -> str:
    """The two lines that vouch for ``body`` (written right before it)."""
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    return f"# source key: {source_key}\n# body sha256: {digest}\n"


def shipped_code(module: str, source_key: str) -> CodeType | None:
    """The code of ``module`` when its header names ``source_key`` and its body is whole; None
    otherwise. The code is Python's own (the .pyc when there is one, else compiled from the
    file); a checkout that turned line ends into CRLF is still whole."""
    from importlib.util import find_spec

    try:
        spec = find_spec(module)
        if spec is None or spec.loader is None or not spec.origin:
            return None
        with open(spec.origin, "rb") as handle:
            data = handle.read()
        found = _HEADER.search(data, 0, 4096)
        if found is None or found.group("key").decode() != source_key:
            log.warning("shipped %s is for another schema or version; generating instead", module)
            return None
        body = data[found.end() :]
        expected = found.group("sha").decode()
        if hashlib.sha256(body).hexdigest() != expected and (
            hashlib.sha256(body.replace(b"\r\n", b"\n")).hexdigest() != expected
        ):
            log.warning("shipped %s is not whole (its body's sha256 differs); not used", module)
            return None
        return spec.loader.get_code(module)  # type: ignore[attr-defined]
    except Exception as exc:  # a module that cannot even be read or compiled: generate instead
        log.warning("shipped %s unavailable (%s); generating instead", module, exc)
        return None
