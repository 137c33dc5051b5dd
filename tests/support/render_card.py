"""Render an Adaptive Card to a PNG in headless Chromium (docs/card.png and the `cards` tests).

The page is self-contained: it inlines the adaptivecards UMD bundle and its CSS, so Chromium
loads nothing from the network. A first pass measures the card's height, a second screenshots it
at that size.

    .venv/bin/python -m tests.support.render_card --sample success --out docs/card.png
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "node_modules" / "adaptivecards" / "dist"
WIDTH = 560
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--virtual-time-budget=3000",
)


def chromium() -> str | None:
    """The Chromium binary, or None when it is not installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def page(card: dict[str, Any]) -> str:
    """A self-contained HTML page that renders ``card`` and writes its height into the title."""
    script = (DIST / "adaptivecards.min.js").read_text(encoding="utf-8")
    css = (DIST / "adaptivecards.css").read_text(encoding="utf-8")
    payload = json.dumps(card).replace("</", "<\\/")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>card</title>
<style>{css}
body {{ margin: 0; background: #f5f5f5; font-family: "DejaVu Sans", sans-serif; }}
#card {{ width: {WIDTH - 32}px; margin: 16px; background: #fff; border: 1px solid #ddd; }}
</style>
<script>{script}</script></head>
<body><div id="card"></div>
<script>
const card = new AdaptiveCards.AdaptiveCard();
// Background colours close to Teams' light theme, so the styled header shows in the PNG.
card.hostConfig = new AdaptiveCards.HostConfig({{
  fontFamily: "DejaVu Sans, sans-serif",
  containerStyles: {{
    default: {{ backgroundColor: "#FFFFFF" }},
    emphasis: {{ backgroundColor: "#F2F2F2" }},
    accent: {{ backgroundColor: "#DEECF9" }},
    good: {{ backgroundColor: "#DFF6DD" }},
    attention: {{ backgroundColor: "#FDE7E9" }},
    warning: {{ backgroundColor: "#FFF4CE" }}
  }}
}});
card.parse({payload}, new AdaptiveCards.SerializationContext(AdaptiveCards.Versions.v1_5));
document.getElementById("card").appendChild(card.render());
document.title = "height=" + (document.getElementById("card").offsetHeight + 32);
</script></body></html>"""


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def render(card: dict[str, Any], out: Path, *, timeout: float = 60.0) -> Path:
    """Screenshot ``card`` into ``out``; raise RuntimeError naming what failed."""
    binary = chromium()
    if not binary:
        raise RuntimeError("chromium not installed (apt-get install chromium fonts-dejavu-core)")
    with tempfile.TemporaryDirectory(prefix="card-render-") as tmp:
        html_path = Path(tmp) / "card.html"
        html_path.write_text(page(card), encoding="utf-8")
        url = html_path.as_uri()
        base = [binary, *CHROMIUM_FLAGS]
        dumped = _run([*base, f"--user-data-dir={tmp}/profile-1", "--dump-dom", url], timeout)
        found = re.search(r"<title>height=(\d+)</title>", dumped.stdout)
        if not found:
            raise RuntimeError(
                f"card did not render (chromium rc={dumped.returncode}): "
                f"{html.escape(dumped.stderr[-500:])}"
            )
        height = min(int(found.group(1)), 8000)
        shot = _run(
            [
                *base,
                f"--user-data-dir={tmp}/profile-2",
                f"--window-size={WIDTH},{height}",
                f"--screenshot={out.resolve()}",
                url,
            ],
            timeout,
        )
        if shot.returncode != 0 or not out.exists():
            raise RuntimeError(f"screenshot failed (chromium rc={shot.returncode})")
    return out


def main() -> None:
    from sync.notify import build_card
    from tests.notify.runs import PORTAL, SAMPLES

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sample", choices=sorted(SAMPLES), default="success")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    card = build_card(SAMPLES[args.sample](), maker_portal=PORTAL)
    print(render(card, args.out))


if __name__ == "__main__":
    main()
