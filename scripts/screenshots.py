"""Regenerate screenshots/*.svg and *.png from the bundled recording of the demo lab.

recordings/data/demo.txtop was recorded from the real demo lab (scripts/record_bundled.py: the
real collector and BPF probes on a private veth with 4 TX queues under mq, tbf on two of
them, bounded UDP/TCP traffic to the lab peer). This script feeds a fixed window of its frames
to the real dashboard, headless, at 80x24 and 160x50: the dashboard in every theme, the
waterfall (log scale, a row selected), its stage percentiles, the packet inspector, the top
talkers per queue, the help
screen, the findings view and the replay header (a recording without findings gets them
computed from its frames when loaded, so the findings strip shows them too). The same frames
give the same pictures (time zone pinned to UTC), so a change in the screenshots is a change
in the UI. PNGs come from rsvg-convert
(Debian: apt-get install librsvg2-bin). Needs neither root nor a kernel.

Usage:
    .venv/bin/python scripts/screenshots.py [--out screenshots] [--at 8]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIZES = ((80, 24), (160, 50))
WINDOW_S = 6.0  # frames fed before the one shown: the waterfall's packets of these seconds
READY_TIMEOUT_S = 30.0

# (name, app options, keys pressed before the shot, replay header?)
VIEWS: tuple[tuple[str, dict[str, object], tuple[str, ...], bool], ...] = (
    ("dashboard", {}, (), False),
    ("theme-light", {"theme": "light"}, (), False),
    ("theme-mono", {"theme": "mono"}, (), False),
    ("waterfall", {}, ("l", "l", "down", "down", "down"), False),
    ("percentiles", {}, ("p",), False),
    ("inspector", {}, ("enter",), False),
    ("help", {}, ("question_mark",), False),
    ("findings", {}, ("f",), False),
    ("talkers", {}, ("o",), False),
    ("replay", {}, (), True),
)
EXTRA = (("dashboard-mono-ascii", (80, 24), {"theme": "mono", "ascii_only": True}, (), False),)
# The history view (h) of tx-1, the queue behind a tbf, fed the whole recording: tab to the
# queues panel, down from tx-0 to tx-1, h.
HISTORY_KEYS = ("tab", "down", "h")


def window(at_s: float) -> tuple[list, dict]:
    """The frames of the WINDOW_S seconds up to ``at_s`` and the shown frame's replay info."""
    from txtop.recordings.replay import index_at
    from txtop.tui.sources import bundled_recording_path, load_recording

    with bundled_recording_path() as path:
        recording = load_recording(path)
    snaps = recording.snapshots
    t0 = snaps[0].time - snaps[0].interval_s
    times = [s.time - t0 for s in snaps]
    last = index_at(times, at_s)
    first = index_at(times, times[last] - WINDOW_S)
    info = {
        "index": last,
        "count": len(snaps),
        "at_s": round(times[last], 3),
        "total_s": round(times[-1], 3),
        "speed": 1.0,
        "paused": True,
        "damage": "",
        "notice": "",
        "jump": False,
    }
    return snaps[first : last + 1], info


def recording_frames() -> list:
    """Every frame of the bundled recording."""
    from txtop.tui.sources import bundled_recording_path, load_recording

    with bundled_recording_path() as path:
        return list(load_recording(path).snapshots)


def frames_source(frames: Sequence, replay: bool) -> object:
    """A source that hands the app all its frames at start (no thread, no timing); for the
    replay view a ReplaySource, so the app offers its replay keys."""
    from txtop.core.source import SnapshotSource
    from txtop.recordings.replay import ReplaySource

    base = ReplaySource if replay else SnapshotSource

    class Frames(base):  # type: ignore[valid-type,misc]
        mode = "replay" if replay else "demo"

        def __init__(self, interval_s: float) -> None:
            if replay:
                super().__init__(frames)
            else:
                super().__init__(interval_s)

        def start(self, sink) -> None:  # type: ignore[no-untyped-def]
            self._sink = sink
            for snap in frames:
                sink(snap)

        def _produce(self):  # type: ignore[no-untyped-def]
            return None

    # The -d it was recorded with (one tick's interval varies a little around it):
    return Frames(interval_s=round(statistics.median(f.interval_s for f in frames), 1))


async def shoot(
    name: str,
    size: tuple[int, int],
    options: dict,
    keys: tuple[str, ...],
    frames: Sequence,
    out: Path,
    replay: bool,
) -> Path:
    from txtop.tui.app import TxtopApp
    from txtop.tui.waterfall import Waterfall

    app = TxtopApp(frames_source(frames, replay), **options)  # type: ignore[arg-type]
    async with app.run_test(size=size) as pilot:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while app.latest is None or app.latest.time != frames[-1].time:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: the frames never arrived")
            await pilot.pause(0.05)
        if "enter" in keys:  # select a packet that waited in the tbf queue
            shown = app.query_one(Waterfall).shown_packets()
            pick = next(
                (i for i, p in enumerate(shown) if p.queue == 1 and "qdisc_dequeue" in p.stages), 0
            )
            await pilot.press(*(["down"] * pick))
        await pilot.press(*keys)
        await pilot.pause(0.3)
        path = Path(app.save_screenshot(filename=f"{name}.svg", path=str(out)))
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
    parser = argparse.ArgumentParser(description="regenerate screenshots from the recording")
    parser.add_argument("--out", type=Path, default=REPO / "screenshots")
    parser.add_argument(
        "--at", type=float, default=8.0, help="second of the recording shown (8: tx-1 backs up)"
    )
    args = parser.parse_args()
    os.environ["TZ"] = "UTC"  # the header and the waterfall show wall-clock times
    time.tzset()
    frames, info = window(args.at)
    plain = [dataclasses.replace(f, replay=None) for f in frames]
    replayed = plain[:-1] + [dataclasses.replace(frames[-1], mode="replay", replay=info)]
    args.out.mkdir(parents=True, exist_ok=True)
    shots = [
        (f"{name}-{w}x{h}", (w, h), options, keys, replay)
        for name, options, keys, replay in VIEWS
        for w, h in SIZES
    ]
    shots += [(f"{name}-{w}x{h}", (w, h), o, k, r) for name, (w, h), o, k, r in EXTRA]
    whole = [dataclasses.replace(f, replay=None) for f in recording_frames()]
    shots += [(f"history-{w}x{h}", (w, h), {}, HISTORY_KEYS, False) for w, h in SIZES]
    for name, size, options, keys, replay in shots:
        feed = whole if keys == HISTORY_KEYS else replayed if replay else plain
        svg = asyncio.run(shoot(name, size, options, keys, feed, args.out, replay))
        png = to_png(svg)
        print(f"{svg}" + (f"  {png}" if png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
