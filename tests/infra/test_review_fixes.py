"""Review fixes, checked on the files as written (no Bicep compiler, no checkov needed):

* every Application Insights table the alert queries read is excluded from host.json's adaptive
  sampling, or an alert can miss the one failed line that was sampled away;
* the ``logLevel`` parameter allows exactly the levels ``SYNC_LOG_LEVEL`` accepts (CRITICAL was
  missing, so a valid setting could not be deployed)."""

from __future__ import annotations

import json
import re

import pytest

from sync.logs import LEVELS
from tests.infra.bicep_tools import INFRA, ROOT

pytestmark = pytest.mark.infra

# Application Insights table -> the telemetry type host.json's samplingSettings names
TELEMETRY_TYPES = {
    "traces": "Trace",
    "requests": "Request",
    "exceptions": "Exception",
    "dependencies": "Dependency",
    "customEvents": "Event",
    "pageViews": "PageView",
}
TABLE = re.compile(r"\b(" + "|".join(TELEMETRY_TYPES) + r")\b")
QUERY_BLOCK = re.compile(r"'''(.*?)'''|'((?:[^'\\\n]|\\.)*)'", re.S)


def tables_queried_by_alerts() -> set[str]:
    """Tables named inside the string literals (the KQL) of every alerts*.bicep."""
    found: set[str] = set()
    for bicep in INFRA.rglob("*alerts*.bicep"):
        for block, line in QUERY_BLOCK.findall(bicep.read_text(encoding="utf-8")):
            found |= set(TABLE.findall(block or line))
    return found


def test_tables_the_alerts_query_are_not_sampled() -> None:
    tables = tables_queried_by_alerts()
    assert "traces" in tables  # the alert queries read the worker's lines
    sampling = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))["logging"][
        "applicationInsights"
    ]["samplingSettings"]
    if not sampling.get("isEnabled", True):
        return
    excluded = {t.strip() for t in sampling.get("excludedTypes", "").split(";") if t.strip()}
    included = {t.strip() for t in sampling.get("includedTypes", "").split(";") if t.strip()}
    for table in tables:
        kind = TELEMETRY_TYPES[table]
        assert kind in excluded, f"host.json samples {kind} while an alert queries {table}"
        assert kind not in included


@pytest.mark.parametrize("bicep", ["infra/main.bicep", "infra/app/function.bicep"])
def test_log_level_allows_exactly_the_levels_the_code_reads(bicep: str) -> None:
    text = (ROOT / bicep).read_text(encoding="utf-8")
    match = re.search(
        r"@allowed\(\[(?P<values>[^\]]*)\]\)\s*param logLevel string = '(?P<default>\w+)'", text
    )
    assert match, f"{bicep}: no @allowed list on logLevel"
    assert tuple(re.findall(r"'([^']*)'", match["values"])) == LEVELS
    assert match["default"] == "INFO"
