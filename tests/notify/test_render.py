"""The card renders in a real browser engine (headless Chromium) to a non-trivial PNG."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from sync.notify import build_card
from tests.notify import runs
from tests.support import render_card

pytestmark = pytest.mark.cards


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_failed_card_renders_to_a_png(tmp_path: Path) -> None:
    if not render_card.chromium():
        pytest.skip("chromium not installed (apt-get install chromium fonts-dejavu-core)")
    if not (render_card.DIST / "adaptivecards.min.js").is_file():
        pytest.skip("adaptivecards not installed in node_modules (npm ci)")
    out = render_card.render(
        build_card(runs.failed_run(), maker_portal=runs.PORTAL), tmp_path / "card.png"
    )
    data = out.read_bytes()
    width, height = _png_size(data)
    assert width == render_card.WIDTH
    assert height > 300  # the card grew the page: it rendered, it is not an empty page
    assert len(data) > 20_000  # text and colours, not a blank canvas


def test_page_inlines_everything_and_cannot_be_broken_out_of() -> None:
    card = build_card(runs.run([runs.outcome("</script><b>x", "failed")]))
    page = render_card.page(card)
    assert "<script src" not in page
    assert "<link" not in page
    assert page.count("</script>") == 2  # the bundle's and ours; the target name is escaped
