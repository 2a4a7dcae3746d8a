"""Waterfall: bar layout maths, and pilot tests of freeze, selection, filter, inspector, keys."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
from textual import events
from textual.theme import Theme
from waterfall_data import by_comm, later_snapshot, make_snapshot, trace_packets, trace_snapshot
from waterfall_fixtures import WaterfallApp

from txtop.core.filters import FilterSpec
from txtop.core.model import STAGES, PacketTrace
from txtop.tui.filter import FilterScreen
from txtop.tui.glyphs import ASCII, UNICODE
from txtop.tui.inspector import InspectorScreen, inspect_packet
from txtop.tui.messages import FilterChanged, SamplingChanged
from txtop.tui.theming import register_themes
from txtop.tui.waterfall import Waterfall
from txtop.tui.waterfall.bars import (
    SCALES,
    SEGMENT_KINDS,
)

APP_KEYS = {"q", "space", "plus", "minus", "t", "s", "question_mark"}


@pytest.fixture(autouse=True)
def utc() -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def sync(fn: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """Run an async pilot test without an asyncio pytest plugin (none is a dependency)."""

    @functools.wraps(fn)
    def run() -> None:
        asyncio.run(fn())

    return run


def screen_lines(wf: Waterfall) -> list[str]:
    return ["".join(seg.text for seg in wf.render_line(y)) for y in range(wf.size.height)]


# --- pure helpers -------------------------------------------------------------------------


def test_inspection_of_a_qdisc_drop() -> None:
    drop = next(p for p in trace_packets() if p.drop_reason == "QDISC_DROP")
    ins = inspect_packet(drop, wall_offset_s=1_750_000_000.0 - 5000.0, has_bql=True)
    seen = {r.stage: r for r in ins.stages if r.seen}
    assert set(seen) == {"sendto", "dev_queue", "free"}
    assert seen["free"].interval == "drop"
    assert seen["free"].tracepoint == "skb:kfree_skb"
    assert seen["free"].delta_prev_ns == 1200
    assert seen["free"].delta_origin_ns == 5100
    assert [r.stage for r in ins.stages] == list(STAGES)  # missing ones listed as not seen
    fields = dict(ins.fields)
    assert fields["drop reason"] == "QDISC_DROP"
    assert fields["free location"] == "__dev_queue_xmit+0x7b1"
    assert fields["sampling"] == "1 packet in 100, at most 1000/s"
    assert "TX queue ?" in fields["device"]


def test_inspection_labels_hand_off_and_decodes_bits() -> None:
    busy = next(p for p in trace_packets() if p.xmit_rc == 0x10)
    fields = dict(inspect_packet(busy, 0.0, has_bql=True).fields)
    assert fields["xmit rc"] == "0x10 (NETDEV_TX_BUSY)"
    assert fields["txq_state"] == "0x1 (DRV_XOFF)"
    veth = dict(inspect_packet(by_comm("ping"), 0.0, has_bql=False).fields)
    assert "receiver" in veth["completion"]
    arp = inspect_packet(next(p for p in trace_packets() if p.pid == 0), 0.0)
    assert arp.origin.startswith("first stage (dev_queue)")
    assert dict(arp.fields)["sender"].startswith("sender not known")
    assert "(not known)" in arp.title


def test_inspection_shows_the_flow_and_the_owner() -> None:
    import dataclasses

    from txtop.core.model import FlowInfo, PacketOwner

    base = by_comm("ping")
    flow = FlowInfo("ipv6", "fd00::1", "fd00::2", 6, 43512, 5201, 0x12, vlan=100, encap=True)
    owner = PacketOwner(812, 813, "nginx", "/system.slice/nginx.service", "socket", 4242)
    p = dataclasses.replace(base, pid=812, tid=813, comm="nginx", flow=flow, owner=owner)
    fields = dict(inspect_packet(p, 0.0).fields)
    assert fields["sender"] == (
        "nginx pid 812, thread 813 (via socket: the last process seen sending on its socket)"
    )
    assert fields["cgroup"] == "/system.slice/nginx.service"
    assert fields["flow"] == "v100 [fd00::1]:43512>[fd00::2]:5201 tcp SA^"
    assert fields["addresses"] == "fd00::1 -> fd00::2 (ipv6)"
    assert fields["ports"] == "43512 -> 5201 (tcp)"
    assert fields["tcp flags"] == "SYN ACK (0x12)"
    assert fields["vlan"] == "802.1Q VLAN 100" and "outer headers" in fields["tunnel"]
    kernel = dataclasses.replace(base, pid=0, comm="", owner=PacketOwner(0, 0, "", None, "kernel"))
    k = dict(inspect_packet(kernel, 0.0).fields)
    assert k["sender"].startswith("kernel: no socket sender seen") and "cgroup" not in k
    assert k["flow"].startswith("headers not read")


# --- pilot tests --------------------------------------------------------------------------


def test_waterfall_keys_do_not_clash_with_app_keys() -> None:
    keys = {k for b in Waterfall.BINDINGS for k in b.key.split(",")}  # type: ignore[union-attr]
    assert not keys & APP_KEYS


@sync
async def test_rows_newest_first_with_drops_lost_and_gso() -> None:
    app = WaterfallApp(trace_snapshot())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        wf = app.waterfall
        # Newest first by start (first stage), the time the rows show.
        expected = sorted(trace_packets(), key=lambda p: p.first_ns, reverse=True)
        assert wf.shown_packets() == expected
        text = "\n".join(screen_lines(wf))
        assert "✗ QDISC_DROP" in text
        assert "✗ CPU_BACKLOG" in text
        assert "lost after dev_queue" in text
        assert "63.7K×45" in text
        assert "≥22.0µs" in text  # a lost track's span is a lower bound
        assert "(not known)" in text  # pid 0 and no identity: nothing names a sender
        assert "7.80µs" in text and " hand-off " in text  # veth track complete at xmit
        lines = screen_lines(wf)
        assert lines[2].startswith("›15:06:39.980 nginx[812]")  # newest first, selected


@sync
async def test_repeated_snapshot_adds_nothing() -> None:
    snap = trace_snapshot()
    app = WaterfallApp(snap)
    async with app.run_test(size=(80, 24)) as pilot:
        app.waterfall.update_snapshot(snap)
        await pilot.pause()
        assert len(app.waterfall.shown_packets()) == len(snap.packets)


@sync
async def test_freeze_keeps_rows_and_counts_arrivals() -> None:
    app = WaterfallApp(trace_snapshot())
    async with app.run_test(size=(80, 24)) as pilot:
        wf = app.waterfall
        before = wf.shown_packets()
        await pilot.press("space")
        assert wf.frozen
        wf.update_snapshot(later_snapshot(5))
        await pilot.pause()
        assert wf.shown_packets() == before
        assert wf.rows.arrived_while_frozen == 5
        assert "FROZEN +5 new" in screen_lines(wf)[0]
        # The counter follows the filter: of the 5 new packets, 2 went out on txl0.
        wf.set_filter(FilterSpec.parse("dev=txl0"))
        assert wf.rows.arrived_while_frozen == 2
        assert all(p.dev == "txl0" for p in wf.shown_packets())
        assert len(wf.shown_packets()) == 6  # from the packets there were when frozen
        wf.set_filter(FilterSpec())
        await pilot.press("space")
        assert not wf.frozen
        after = wf.shown_packets()
        assert len(after) == len(before) + 5
        assert all(p.pid == 77 for p in after[:5])
        assert "FROZEN" not in screen_lines(wf)[0]


@sync
async def test_selection_holds_its_packet_while_new_ones_arrive() -> None:
    app = WaterfallApp(trace_snapshot())
    async with app.run_test(size=(80, 24)) as pilot:
        wf = app.waterfall
        await pilot.press("down", "down", "down")
        chosen = wf.rows.selected_packet
        assert chosen == wf.shown_packets()[3]
        wf.update_snapshot(later_snapshot(4))
        await pilot.pause()
        assert wf.rows.selected_packet == chosen
        assert wf.rows.cursor == 7
        assert "▲ 4 newer" in screen_lines(wf)[0]
        await pilot.press("home")
        assert wf.rows.cursor == 0
        assert wf.rows.selected_packet == wf.shown_packets()[0]
        # Following the newest again: a new arrival becomes the selection.
        wf.update_snapshot(later_snapshot(1, after_s=2.0, pid=88))
        await pilot.pause()
        assert wf.rows.selected_packet is not None and wf.rows.selected_packet.pid == 88


@sync
async def test_keys_scroll_and_clamp() -> None:
    app = WaterfallApp(trace_snapshot())
    async with app.run_test(size=(80, 12)) as pilot:  # 9 row lines for 20 packets
        wf = app.waterfall
        await pilot.press("pagedown")  # a page keeps one row of overlap
        assert wf.rows.cursor == 8
        await pilot.press("end")
        assert wf.rows.cursor == 19
        await pilot.press("down")
        assert wf.rows.cursor == 19
        lines = screen_lines(wf)
        assert lines[-2].startswith("›")  # the oldest row is on screen and selected
        await pilot.press("pageup", "pageup", "pageup")
        assert wf.rows.cursor == 0


@sync
async def test_mouse_wheel_scrolls_the_rows_not_the_selection() -> None:
    app = WaterfallApp(trace_snapshot())
    async with app.run_test(size=(80, 12)) as pilot:  # 9 row lines for 20 packets
        wf = app.waterfall

        def wheel(kind: type[events.MouseScrollDown | events.MouseScrollUp]) -> None:
            wf.post_message(kind(wf, 10, 4, 0, 1, 0, False, False, False))

        wheel(events.MouseScrollDown)
        await pilot.pause()
        assert (wf.rows.top, wf.rows.cursor) == (3, 0)
        for _ in range(5):
            wheel(events.MouseScrollDown)
        await pilot.pause()
        assert wf.rows.top == 20 - 9  # no further than the oldest row at the bottom
        wheel(events.MouseScrollUp)
        await pilot.pause()
        assert wf.rows.top == 8
        assert "▲ 8 newer" in screen_lines(wf)[0]


@sync
async def test_mouse_selects_and_enter_opens_inspector() -> None:
    app = WaterfallApp(trace_snapshot())
    async with app.run_test(size=(120, 40)) as pilot:
        wf = app.waterfall
        await pilot.click(Waterfall, offset=(30, 2 + 4))
        assert wf.rows.cursor == 4
        target = wf.shown_packets()[4]
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, InspectorScreen)
        assert screen.packet == target
        await pilot.press("down")
        assert screen.packet == wf.shown_packets()[5]
        body = screen.query_one("VerticalScroll")
        await pilot.resize_terminal(80, 24)
        await pilot.press("pagedown")
        await pilot.pause()
        assert body.scroll_y > 0  # the fields below the fold can be reached by keyboard
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, InspectorScreen)
        assert wf.rows.cursor == 4


@sync
async def test_filter_screen_applies_and_posts_message() -> None:
    app = WaterfallApp(trace_snapshot())
    async with app.run_test(size=(120, 40)) as pilot:
        wf = app.waterfall
        await pilot.press("slash")
        await pilot.pause()
        assert isinstance(app.screen, FilterScreen)
        await pilot.press(*"colour=red")
        await pilot.pause()
        error = str(app.screen.query_one("#filter-error").render())
        assert "unknown filter key" in error
        await pilot.press("enter")  # invalid: stays open
        assert isinstance(app.screen, FilterScreen)
        for _ in range(len("colour=red")):
            await pilot.press("backspace")
        await pilot.press(*"dev=txl0 port=5201", "enter")
        await pilot.pause()
        assert not isinstance(app.screen, FilterScreen)
        spec = FilterSpec.parse("dev=txl0 port=5201")
        assert wf.filter == spec
        assert [m.spec for m in app.messages if isinstance(m, FilterChanged)] == [spec]
        shown = wf.shown_packets()
        assert shown and all(p.dev == "txl0" and p.dport == 5201 for p in shown)
        assert len(shown) == 4  # txl0 carries 4 UDP packets to 5201 and 2 TCP ones
        assert "filter dev=txl0 port=5201" in screen_lines(wf)[0]
        # New arrivals are filtered too.
        wf.update_snapshot(later_snapshot(18))
        await pilot.pause()
        assert len(wf.shown_packets()) == 8
        # Escape cancels without a message.
        await pilot.press("slash", "escape")
        await pilot.pause()
        assert len([m for m in app.messages if isinstance(m, FilterChanged)]) == 1


@sync
async def test_filter_with_no_match_says_so() -> None:
    app = WaterfallApp(trace_snapshot(), filter=FilterSpec.parse("port=9"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        text = "\n".join(screen_lines(app.waterfall))
        assert "no packet matches the filter: port=9" in text


@sync
async def test_sampling_keys_post_messages_and_show_pending_rate() -> None:
    app = WaterfallApp(trace_snapshot())
    async with app.run_test(size=(120, 40)) as pilot:
        wf = app.waterfall
        await pilot.press("right_square_bracket")
        await pilot.pause()
        assert [m.every for m in app.messages if isinstance(m, SamplingChanged)] == [50]
        assert "sampling 1/100" in screen_lines(wf)[0]
        assert "→ 1/50" in screen_lines(wf)[0]
        # The collector confirms the new rate: the pending marker goes away.
        wf.update_snapshot(later_snapshot(1, every=50))
        await pilot.pause()
        header = screen_lines(wf)[0]
        assert "sampling 1/50" in header and "→" not in header
        await pilot.press("left_square_bracket", "left_square_bracket")
        await pilot.pause()
        assert [m.every for m in app.messages if isinstance(m, SamplingChanged)][-1] == 200


@sync
async def test_scale_cycle_and_stats_view() -> None:
    app = WaterfallApp(trace_snapshot())
    async with app.run_test(size=(120, 40)) as pilot:
        wf = app.waterfall
        seen = [wf.scale]
        for _ in SCALES:
            await pilot.press("l")
            seen.append(wf.scale)
        assert seen == ["row", "linear", "log", "row"]
        await pilot.press("l")
        assert "0" in screen_lines(wf)[1] and "3ms" in screen_lines(wf)[1]
        await pilot.press("p")
        assert wf.show_stats
        text = "\n".join(screen_lines(wf))
        assert "Stage latency" in text
        qdisc = next(line for line in screen_lines(wf) if "qdisc (qdisc_enqueue" in line)
        # 16 packets saw a qdisc wait: nearest rank 8 is 700 ns, rank 15 is 45 us.
        assert qdisc.split()[-5:] == ["700ns", "45.0µs", "2.10ms", "2.10ms", "16"]
        assert "eth0:3" in text  # per-queue block
        await pilot.press("p")
        assert not wf.show_stats
        for set_it in (wf.set_scale, lambda s: setattr(wf, "scale", s)):
            with pytest.raises(ValueError, match="unknown scale"):
                set_it("bogus")
        assert wf.scale == "linear"


@sync
async def test_probes_unavailable_is_explained() -> None:
    snap = make_snapshot([], 10**12, 1_750_000_000.0, state="unavailable", reason="no BTF")
    app = WaterfallApp(snap)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        text = "\n".join(screen_lines(app.waterfall))
        assert "no packet traces: probes unavailable (no BTF)" in text


@sync
async def test_memory_is_bounded() -> None:
    app = WaterfallApp(max_rows=300)
    async with app.run_test(size=(80, 24)) as pilot:
        wf = app.waterfall
        for i in range(1, 40):
            wf.update_snapshot(later_snapshot(18, after_s=float(i)))
        await pilot.pause()
        assert len(wf.shown_packets()) == 300
        assert len(wf.rows._buffer) == 300  # noqa: SLF001


@sync
async def test_ascii_mode_is_pure_ascii() -> None:
    app = WaterfallApp(trace_snapshot(), ascii=True)
    async with app.run_test(size=(80, 24)) as pilot:
        wf = app.waterfall
        await pilot.press("down")
        for scale in SCALES:
            wf.set_scale(scale)
            await pilot.pause()
            for line in screen_lines(wf):
                assert line.isascii(), line
        assert "x QDISC_DROP" in "\n".join(screen_lines(wf))


@sync
async def test_mono_theme_uses_distinct_fills() -> None:
    app = WaterfallApp(trace_snapshot())
    async with app.run_test(size=(120, 40)) as pilot:
        wf = app.waterfall
        assert not wf.mono  # the default palette tells the stages apart
        same = {f"txtop-stage-{k}": "ansi_default" for k in SEGMENT_KINDS}
        app.register_theme(Theme(name="t-mono", primary="#888888", variables=same))
        app.theme = "t-mono"
        await pilot.pause()
        assert wf.mono
        text = "\n".join(screen_lines(wf))
        fill_mono = UNICODE.fill_mono
        assert fill_mono["qdisc"] in text and fill_mono["driver"] in text
        assert len(set(fill_mono.values())) == len(fill_mono)
        # txtop's own themes: "dark" has colours, "mono" only the terminal's default colour
        # (and no stage variables): the waterfall must notice and switch to fills.
        register_themes(app)
        app.theme = "dark"
        await pilot.pause()
        assert not wf.mono
        app.theme = "mono"
        await pilot.pause()
        assert wf.mono
        assert len(set(ASCII.fill.values())) == len(ASCII.fill)


def test_inspector_says_hand_off_not_free_on_devices_without_tx_completion():
    from txtop.tui.inspector import _track_meaning

    stages = {"sendto": 1, "dev_queue": 2, "start_xmit": 3, "xmit": 4}
    veth = PacketTrace(
        pid=1,
        tid=1,
        comm="x",
        dev="veth0",
        ifindex=3,
        queue=0,
        len=60,
        gso_segs=0,
        stages=stages,
        cpus={},
        track="complete",
    )
    assert "hand-off" in _track_meaning(veth) and "free was seen" not in _track_meaning(veth)
    nic = PacketTrace(
        pid=1,
        tid=1,
        comm="x",
        dev="eth0",
        ifindex=2,
        queue=0,
        len=60,
        gso_segs=0,
        stages={**stages, "free": 9},
        cpus={},
        track="complete",
    )
    assert "free was seen" in _track_meaning(nic)


# --- issue 17 -----------------------------------------------------------------------------


def _tbf_segmented(**kw: object) -> PacketTrace:
    """A 64 KB GSO skb that tbf segmented (tbf_segment) and freed: the track never got past
    the qdisc as this skb."""
    base: dict[str, object] = dict(
        pid=900, tid=900, comm="iperf3", dev="eth0", ifindex=2, queue=1, len=65226,
        gso_segs=0, stages={"sendto": 1_000, "dev_queue": 4_000, "free": 9_000},
        cpus={"sendto": 1, "dev_queue": 1, "free": 1}, track="complete", free_kind="consume",
        free_location="tbf_segment+0x1c4 [sch_tbf]", syscall="sendmsg",
    )  # fmt: skip
    base.update(kw)
    return PacketTrace(**base)  # type: ignore[arg-type]


def test_a_gso_skb_segmented_at_the_qdisc_is_named() -> None:
    from txtop.tui.waterfall.bars import bar_parts, bar_suffix
    from txtop.tui.waterfall.endings import segmented_at_qdisc

    seg = _tbf_segmented()
    fields = dict(inspect_packet(seg, 0.0, has_bql=True).fields)
    assert fields["track"] == (
        "complete: segmented at the qdisc (the segments are new skbs; not traced)"
    )
    assert bar_suffix(seg, bar_parts(seg), False) == ("segmented at qdisc", "warn")
    # Also with qdisc_enqueue seen, and with the generic segmenting function.
    assert segmented_at_qdisc(
        _tbf_segmented(stages={"dev_queue": 1, "qdisc_enqueue": 2, "free": 3})
    )
    assert segmented_at_qdisc(_tbf_segmented(free_location="__skb_gso_segment+0x10"))
    # Not segmented: a drop, a skb that reached the driver, a free elsewhere, no location.
    assert not segmented_at_qdisc(_tbf_segmented(free_kind="drop"))
    assert not segmented_at_qdisc(
        _tbf_segmented(stages={"dev_queue": 1, "qdisc_dequeue": 2, "start_xmit": 3, "free": 4})
    )
    assert not segmented_at_qdisc(_tbf_segmented(free_location="__dev_queue_xmit+0x7b1"))
    assert not segmented_at_qdisc(_tbf_segmented(free_location=None))
    assert not segmented_at_qdisc(_tbf_segmented(stages={"sendto": 1, "free": 2}))


@sync
async def test_the_segmented_row_is_marked() -> None:
    snap = make_snapshot(
        [_tbf_segmented(stages={"dev_queue": 10**12 - 9_000, "free": 10**12 - 1_000})],
        10**12,
        1_750_000_000.0,
    )
    app = WaterfallApp(snap)
    async with app.run_test(size=(120, 24)) as pilot:
        await pilot.pause()
        assert "segmented at qdisc" in "\n".join(screen_lines(app.waterfall))


def test_inspector_names_the_send_syscall_tracepoint() -> None:
    sent = _tbf_segmented(syscall="sendto")
    rows = {r.stage: r for r in inspect_packet(sent, 0.0).stages}
    assert rows["sendto"].tracepoint == "syscalls:sys_enter_sendto"
    mmsg = {r.stage: r for r in inspect_packet(_tbf_segmented(syscall="sendmmsg"), 0.0).stages}
    assert mmsg["sendto"].tracepoint == "syscalls:sys_enter_sendmmsg"
    untied = {r.stage: r for r in inspect_packet(_tbf_segmented(syscall=None), 0.0).stages}
    assert "<" not in untied["sendto"].tracepoint  # no placeholder: the ones attached
    assert untied["sendto"].tracepoint == "syscalls:sys_enter_sendto|sendmsg|sendmmsg"
    # Raw hooks (ProbeStatus.hooks): the entry is raw_syscalls:sys_enter, and without
    # sys_exit the send ends at sock:sock_send_length, which the syscall line says.
    hooks = {"raw_syscalls:sys_enter": "raw", "sock:sock_send_length": "raw"}
    ins = inspect_packet(dataclasses.replace(sent, syscall_exit_ns=sent.stages["dev_queue"]),
                         0.0, hooks=hooks)  # fmt: skip
    assert {r.stage: r for r in ins.stages}["sendto"].tracepoint == (
        "raw_syscalls:sys_enter (sendto)"
    )
    said = dict(ins.fields)["syscall"]
    assert "left the socket layer" in said and "sock:sock_send_length" in said


def test_inspector_says_sender_not_known_unless_it_is_the_kernel() -> None:
    from txtop.core.model import PacketOwner

    unknown = _tbf_segmented(pid=0, tid=0, comm="bash", owner=None, syscall=None)
    ins = inspect_packet(unknown, 0.0)
    sender = dict(ins.fields)["sender"]
    assert sender.startswith("sender not known")
    assert "kernel context" not in sender and "softirq" not in sender
    assert "(not known)" in ins.title
    kernel = _tbf_segmented(
        pid=0, tid=0, comm="", syscall=None, owner=PacketOwner(0, 0, "", None, "kernel")
    )
    k = inspect_packet(kernel, 0.0)
    assert dict(k.fields)["sender"] == (
        "kernel: no socket sender seen (forwarded, kernel-generated or ARP)"
    )
    assert "(kernel)" in k.title


@sync
async def test_an_empty_waterfall_says_the_probes_are_starting() -> None:
    app = WaterfallApp(make_snapshot([], 10**12, 1_750_000_000.0, state="starting"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        lines = screen_lines(app.waterfall)
        assert lines[3].startswith("  probes starting: compiling")
        # The next snapshot: running, traffic flowing, none sampled yet.
        app.waterfall.update_snapshot(make_snapshot([], 2 * 10**12, 1_750_000_001.0))
        await pilot.pause()
        text = "\n".join(screen_lines(app.waterfall))
        assert "probes running, no packet sampled yet (1 in 100 is traced)" in text or (
            "no traffic on the watched devices" in text
        )


@sync
async def test_a_selection_that_left_the_buffer_follows_the_newest_with_a_notice() -> None:
    app = WaterfallApp(trace_snapshot(), max_rows=30)
    async with app.run_test(size=(80, 24)) as pilot:
        wf = app.waterfall
        await pilot.press("down", "down", "down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, InspectorScreen)
        await pilot.press("escape")
        for i in range(1, 6):  # more rows than the buffer holds
            wf.update_snapshot(later_snapshot(18, after_s=float(i)))
        await pilot.pause()
        assert wf.rows.cursor == 0 and wf.rows.top == 0
        lines = screen_lines(wf)
        assert "newer" not in lines[0] and "Home: follow" not in lines[0]
        assert lines[2].startswith("›")  # the newest row, selected
        assert all(line.strip() for line in lines[2:-1])  # rows fill the panel
        notices = [n.message for n in app._notifications]  # noqa: SLF001
        assert any("left the buffer" in m and "following the newest" in m for m in notices)
        await pilot.press("down")
        assert wf.rows.cursor == 1


@sync
async def test_an_empty_waterfall_names_a_pid_with_no_process() -> None:
    import dataclasses

    snap = make_snapshot([], 10**12, 1_750_000_000.0)
    probes = dataclasses.replace(snap.probes, filters={"ifindexes": [], "pids": [4242]})
    app = WaterfallApp(dataclasses.replace(snap, probes=probes), missing_pids=(4242,))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        text = "\n".join(screen_lines(app.waterfall))
        assert "--pid 4242: no such process" in text
