"""Why an empty waterfall is empty (tui/waterfall/empty.py), per state, without Textual."""

from __future__ import annotations

import dataclasses

import pytest
from waterfall_data import make_snapshot, trace_snapshot

from txtop.core.filters import EMPTY_FILTER, FilterSpec
from txtop.core.model import DeviceRow, ReplayPosition, Snapshot
from txtop.tui.waterfall.empty import empty_reason, kernel_filter_text
from txtop.tui.waterfall.lines import message_frags
from txtop.tui.waterfall.rows import RowBuffer

MONO = 10**12
WALL = 1_750_000_000.0


def snap(
    state: str = "running",
    reason: str = "",
    traffic: bool = True,
    **probes: object,
) -> Snapshot:
    s = make_snapshot([], MONO, WALL, state=state, reason=reason)
    devices = tuple(dataclasses.replace(d, tx_pps=100.0 if traffic else 0.0) for d in s.devices)
    return dataclasses.replace(
        s,
        devices=devices,
        probes=dataclasses.replace(s.probes, **probes),  # type: ignore[arg-type]
    )


def test_no_snapshot_yet() -> None:
    assert empty_reason(None, EMPTY_FILTER) == "waiting for the first snapshot"


def test_probes_starting_says_compiling() -> None:
    text = empty_reason(snap("starting"), EMPTY_FILTER)
    assert text.startswith("probes starting") and "compiling" in text


@pytest.mark.parametrize(
    ("state", "reason", "expected"),
    [
        ("unavailable", "no kernel headers for 6.18.0", "probes unavailable (no kernel headers"),
        ("off", "", "probes off (--no-probes)"),
    ],
)
def test_probes_not_running_say_why(state: str, reason: str, expected: str) -> None:
    assert expected in empty_reason(snap(state, reason), EMPTY_FILTER)


def test_the_view_filter_is_named_when_it_hides_every_packet() -> None:
    spec = FilterSpec.parse("port=9")
    text = empty_reason(snap(), spec, received=40)
    assert text == "no packet matches the filter: port=9  (/ to change)"


def test_a_pid_with_no_process() -> None:
    s = snap(filters={"ifindexes": [], "pids": [4242]})
    text = empty_reason(s, EMPTY_FILTER, missing_pids=frozenset({4242}))
    assert text.startswith("--pid 4242: no such process")
    # The pid exists: the probes' filter is named instead.
    other = empty_reason(s, EMPTY_FILTER, missing_pids=frozenset())
    assert other.startswith("no packet matched the probes' filter --pid 4242")


def test_the_probes_filter_is_named_when_traffic_flows() -> None:
    filters = {"ifindexes": [2], "pids": [], "proto": ["udp"], "port": ["5201"], "host": []}
    assert kernel_filter_text(filters) == "--proto udp --port 5201"
    text = empty_reason(snap(filters=filters), EMPTY_FILTER)
    assert "--proto udp --port 5201" in text and "other traffic is flowing" in text


def test_no_traffic_names_the_watched_devices() -> None:
    text = empty_reason(snap(traffic=False), EMPTY_FILTER)
    assert text == "no traffic on the watched devices (eth0, txl0, lo)"


def test_running_with_traffic_but_nothing_sampled_yet() -> None:
    text = empty_reason(snap(), EMPTY_FILTER)
    assert text == "probes running, no packet sampled yet (1 in 100 is traced)"


def test_trace_window_closed_says_when_the_next_one_comes() -> None:
    s = snap(trace_mode="auto", trace_duty_pct=2.0, traced_pct=0.0, trace_period_s=5.0)
    text = empty_reason(s, EMPTY_FILTER)
    assert text.startswith("trace window closed (auto duty, traced 2% of the time)")
    assert "windows come every ~5 s" in text  # 0.1 s windows at 2%
    # Traced part of the interval: not "closed".
    open_now = snap(trace_mode="auto", trace_duty_pct=2.0, traced_pct=2.0)
    assert "closed" not in empty_reason(open_now, EMPTY_FILTER)


def test_a_replay_at_a_point_without_packets() -> None:
    position = ReplayPosition(3, 28, 12.0, 28.0, 1.0, False, "", "", False)
    s = dataclasses.replace(snap(), replay=position)
    text = empty_reason(s, EMPTY_FILTER)
    assert text.startswith("no sampled packet in the recording up to 12.0 s")


def test_the_panel_wraps_the_reason_to_its_width() -> None:
    rows = RowBuffer(filter=FilterSpec.parse("dev=nothere,port=1-2"))
    rows.add(trace_snapshot())
    lines = message_frags(rows, 40)
    assert len(lines) > 1
    assert all(len("".join(t for t, _ in line)) <= 40 for line in lines)
    text = " ".join("".join(t for t, _ in line).strip() for line in lines)
    assert text.startswith("no packet matches the filter: ")


def test_devices_fall_back_when_no_interfaces_are_named() -> None:
    s = dataclasses.replace(
        snap(traffic=False),
        interfaces=(),
        devices=(DeviceRow("wg0", 9, 1, False, "up", None, 0, 0, 0, 0, 0.0, 0.0),),
    )
    assert empty_reason(s, EMPTY_FILTER).endswith("(wg0)")
