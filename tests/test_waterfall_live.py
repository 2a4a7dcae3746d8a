"""The live dashboard with real probes draws waterfall rows for a lab sender (root only).

Everything is real: the BPF tracer, the collector, the Textual app (headless via run_test),
a veth lab and a UDP sender process whose pid must appear in the drawn rows.
"""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from senders import Sink, sender_argv
from ui_fixtures import until

from txtop.probes.bpf.tracer import Tracer, probe_prerequisites
from txtop.probes.collector import Collector, LiveSource
from txtop.tui.app import TxtopApp
from txtop.tui.waterfall import Waterfall

PORT = 9411


def drawn_lines(widget: Waterfall) -> list[str]:
    """The waterfall's lines as the terminal would show them (its Line API output)."""
    return [widget.render_line(y).text for y in range(widget.size.height)]


@pytest.mark.root
def test_live_app_draws_rows_for_the_lab_sender(lab):
    why = probe_prerequisites()
    if why:
        pytest.skip(f"probes cannot run here: {why}")
    # Always attached: auto duty follows the whole machine's packet rate, and another job's
    # flood on a shared machine would open trace windows that miss this short sender.
    tracer = Tracer(ifindexes=[lab.ifindex], sample_every=1, max_samples_per_s=500, trace_duty=1.0)
    source = LiveSource(Collector([lab.dev], tracer=tracer), interval_s=0.5)

    async def main() -> str:
        app = TxtopApp(source)
        async with app.run_test(size=(160, 50)) as pilot:
            await until(
                pilot,
                lambda: app.shown is not None and app.shown.probes.state == "running",
                "probes running",
            )
            with Sink(lab.ns_argv([]), PORT):
                proc = subprocess.Popen(
                    sender_argv(
                        "udp",
                        lab.peer_ip,
                        str(PORT),
                        "--count",
                        "300",
                        "--gap-us",
                        "2000",
                        "--seconds",
                        "20",
                    ),
                    stdout=subprocess.PIPE,
                    text=True,
                )
                try:
                    wf = app.query_one(Waterfall)
                    tag = f"[{proc.pid}]"
                    await until(
                        pilot,
                        lambda: any(
                            tag in line and lab.dev[:6] in line for line in drawn_lines(wf)
                        ),
                        "a waterfall row for the sender",
                    )
                    row = next(line for line in drawn_lines(wf) if tag in line)
                finally:
                    proc.wait(30)
            await pilot.press("q")
        return row

    try:
        row = asyncio.run(main())
    finally:
        source.stop()
    assert "µs" in row or "ns" in row or "ms" in row  # a total time is drawn on the row
