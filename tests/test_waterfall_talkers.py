"""The top-talkers view: its text (pure) and the `o` key (Pilot)."""

from __future__ import annotations

import asyncio
import dataclasses

from waterfall_data import trace_snapshot
from waterfall_fixtures import WaterfallApp

from txtop.core.model import FlowInfo, PacketOwner, QueueRow, Talker
from txtop.tui.talkers import TalkersScreen
from txtop.tui.waterfall.talkers import line_text, si, talkers_lines

FLOW = FlowInfo("ipv4", "10.0.0.1", "10.0.0.2", 6, 43512, 5201)
IPERF = PacketOwner(100, 100, "iperf3", "/", "socket")


def talker(kind: str, name: str, bytes_per_s: float, **kw: object) -> Talker:
    base: dict[str, object] = dict(
        kind=kind, name=name, packets_per_s=bytes_per_s / 1000, bytes_per_s=bytes_per_s,
        drops_per_s=0.0, share_pct=80.0, samples=120, wait_p50_ns=12_000,
        wait_p99_ns=1_200_000, owner=IPERF, window_s=9.5,
    )  # fmt: skip
    base.update(kw)
    return Talker(**base)  # type: ignore[arg-type]


def snapshot_with_talkers():
    snap = trace_snapshot()
    busy = QueueRow(
        "eth0", 2, 1, None, None, None,
        flows=(talker("flow", "10.0.0.1:43512>10.0.0.2:5201 tcp", 1.5e6, flow=FLOW),
               talker("flow", "arp", 42.0, owner=PacketOwner(0, 0, "", None, "kernel"),
                      drops_per_s=2.0, wait_p50_ns=None, wait_p99_ns=None)),
        processes=(talker("process", "iperf3[100]", 1.5e6),),
    )  # fmt: skip
    quiet = QueueRow("eth0", 2, 0, None, None, None)
    return dataclasses.replace(snap, queues=(quiet, busy))


def test_text_of_the_view() -> None:
    lines = [line_text(line) for line in talkers_lines(snapshot_with_talkers(), 100)]
    assert lines[0].startswith("~ estimates: 240 sampled packets over 9.5 s of traced time")
    assert lines[2].startswith("eth0 tx-1  ~12.0Mbit/s  ~1.5k pkt/s")
    flow = next(line for line in lines if "5201 tcp" in line)
    assert "iperf3[100]" in flow and "~12.0M" in flow and "80%" in flow
    assert "12.0µs" in flow and "1.20ms" in flow
    arp = next(line for line in lines if line.strip().startswith("arp"))
    assert "(kernel)" in arp and arp.rstrip().endswith("~2.0")
    assert all(len(line) <= 100 for line in lines)
    assert all("tx-0" not in line for line in lines)  # a queue without samples is left out
    ascii = [line_text(line) for line in talkers_lines(snapshot_with_talkers(), 60, ascii=True)]
    assert all(line.isascii() for line in ascii)


def test_empty_states() -> None:
    assert line_text(talkers_lines(None, 80)[0]) == "waiting for the first snapshot"
    assert "no sampled packets" in line_text(talkers_lines(trace_snapshot(), 80)[0])


def test_si() -> None:
    assert [si(v) for v in (0, 0.5, 12, 950, 1234, 1.5e6, 123e6, 2e9)] == [
        "0", "0.5", "12", "950", "1.2k", "1.5M", "123M", "2.0G"
    ]  # fmt: skip


def test_o_opens_the_view_and_closes_it() -> None:
    async def main() -> None:
        app = WaterfallApp(snapshot_with_talkers())
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            await pilot.press("o")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, TalkersScreen)
            body = str(screen.query_one("#talkers-body").render())
            assert "5201 tcp" in body and "iperf3[100]" in body
            await pilot.press("o")
            await pilot.pause()
            assert not isinstance(app.screen, TalkersScreen)

    asyncio.run(main())
