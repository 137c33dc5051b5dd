"""The Power Platform fixtures (simulator, targets built on it, paconn) for the simulator's own
tests: the same ones tests/powerplatform uses, so the rules here are driven by the same clients."""

from __future__ import annotations

from tests.powerplatform.conftest import (  # noqa: F401 - fixtures, found by name
    cloud,
    fast_retries,
    http,
    make_dataverse,
    make_powerapps,
    sim,
)
from tests.powerplatform.test_paconn_contract import home, paconn  # noqa: F401 - fixtures
