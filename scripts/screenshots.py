"""Regenerate screenshots/*.svg and *.png from a real, live run on this machine.

Builds the demo lab (probes/demo.py: a private veth with 4 TX queues under mq, two of them
behind tbf, and bounded UDP/TCP traffic to the lab peer only), then runs the real dashboard -
the real collector and BPF tracer, through the same ``build_source`` as ``txtop`` - headless
at each size, waits until the probes run and a few ticks with traffic have been drawn, and
saves Textual's SVG. PNGs come from rsvg-convert (Debian: apt-get install librsvg2-bin).

Needs root (netns, veth, BPF).  Usage:
    .venv/bin/python scripts/screenshots.py [--out screenshots] [--ticks 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHOTS: tuple[tuple[str, tuple[int, int], dict[str, object]], ...] = (
    ("dashboard-80x24", (80, 24), {}),
    ("dashboard-160x50", (160, 50), {}),
    ("dashboard-mono-ascii-80x24", (80, 24), {"theme": "mono", "ascii_only": True}),
)
READY_TIMEOUT_S = 90.0


async def shoot(
    name: str, size: tuple[int, int], options: dict, argv: list[str], out: Path, ticks: int
) -> Path:
    from txtop.tui import cli
    from txtop.tui.app import TxtopApp

    source = cli.build_source(cli.parse_args(argv))
    app = TxtopApp(source, **options)  # type: ignore[arg-type]
    async with app.run_test(size=size) as pilot:
        deadline = time.monotonic() + READY_TIMEOUT_S
        running_at: int | None = None
        while True:
            shown = app.shown
            if shown is not None and shown.probes.state != "starting" and running_at is None:
                running_at = app.ticks
            if running_at is not None and app.ticks >= running_at + ticks and shown is not None:
                if shown.packets or shown.probes.state != "running":
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: no live data within {READY_TIMEOUT_S:.0f}s")
            await pilot.pause(0.1)
        await pilot.pause(0.2)
        path = Path(app.save_screenshot(filename=f"{name}.svg", path=str(out)))
    source.stop()
    return path


def to_png(svg: Path) -> Path | None:
    """PNG via rsvg-convert. Textual's SVG asks for the Fira Code web font and relies on the
    browser keeping spaces; for rsvg, use a local monospace font and preserve spaces."""
    tool = shutil.which("rsvg-convert")
    if tool is None:
        print("rsvg-convert not found (apt-get install librsvg2-bin): SVG only", file=sys.stderr)
        return None
    text = svg.read_text(encoding="utf-8")
    text = text.replace("Fira Code", "DejaVu Sans Mono")
    text = re.sub(r"<svg ", '<svg xml:space="preserve" ', text, count=1)
    png = svg.with_suffix(".png")
    with tempfile.NamedTemporaryFile("w", suffix=".svg", encoding="utf-8", delete=False) as tmp:
        tmp.write(text)
    try:
        subprocess.run([tool, tmp.name, "-o", str(png)], check=True, timeout=60)  # noqa: S603
    finally:
        os.unlink(tmp.name)
    return png


def main() -> int:
    parser = argparse.ArgumentParser(description="regenerate screenshots from a live run")
    parser.add_argument("--out", type=Path, default=REPO / "screenshots")
    parser.add_argument("--ticks", type=int, default=5, help="ticks to wait after probes run")
    parser.add_argument("--interval", default="1", help="refresh interval in seconds")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("screenshots: needs root (network namespace lab and BPF)", file=sys.stderr)
        return 2
    if not 1 <= args.ticks <= 60:
        print("screenshots: --ticks must be 1..60", file=sys.stderr)
        return 2
    from txtop.probes.demo import DemoLab

    args.out.mkdir(parents=True, exist_ok=True)
    demo = DemoLab(tag="shots", duration_s=300)  # traffic stops by itself after 5 minutes
    demo.start()
    try:
        ifaces = ["-i", "eth0", "-i", demo.dev, "-i", "lo"]
        argv = [*ifaces, "-d", args.interval]
        for name, size, options in SHOTS:
            svg = asyncio.run(shoot(name, size, options, argv, args.out, args.ticks))
            png = to_png(svg)
            print(f"{svg}" + (f"  {png}" if png else ""))
    finally:
        demo.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
