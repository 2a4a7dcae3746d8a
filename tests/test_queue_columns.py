"""Issue 17 on the panels' pure builders: one unit per column (packets as the device counters
count them, GSO segments apart), 'bypass' in p99q, drops and requeues since start (and sorting
on them), the columns a narrow width hides named with the key that shows them, the softirq
share with its resolution and never below its parts, and a short probe line."""

from __future__ import annotations

import dataclasses

import ui_fixtures as fx

from txtop.core.history import QueueTarget
from txtop.core.model import (
    BypassStats,
    CpuRow,
    ProbeStatus,
    QdiscStats,
    QueueRow,
    Snapshot,
    TxStats,
)
from txtop.tui.glyphs import UNICODE
from txtop.tui.panels.cpus import cpu_total, cpu_view, fmt_share
from txtop.tui.panels.format import fit_columns, line_text
from txtop.tui.panels.header import HeaderState, header_lines
from txtop.tui.panels.queues import (
    COLUMN_SETS,
    group_queues,
    queue_columns,
    queue_view,
    queues_title,
    sort_groups,
)


def lab_queue(n: int, **tx: object) -> QueueRow:
    q = next(x for x in fx.busy_lab().queues if x.dev == "txlp1a" and x.queue == n)
    assert q.tx is not None
    return dataclasses.replace(q, tx=dataclasses.replace(q.tx, **tx))


def with_queues(*queues: QueueRow) -> Snapshot:
    snap = fx.busy_lab()
    keep = [q for q in snap.queues if q.dev != "txlp1a"]
    return dataclasses.replace(snap, queues=(*keep, *queues))


def queue_cells(snapshot: Snapshot, n: int, width: int = 200, **kw: object) -> dict[str, str]:
    """Column key -> text of the row of txlp1a tx-N, cut at the layout's widths."""
    view = queue_view(snapshot, width, **kw)  # type: ignore[arg-type]
    groups = group_queues(snapshot)
    layout = fit_columns(queue_columns(groups, width), width)
    line = line_text(view.body[view.targets.index(QueueTarget("txlp1a", n))])
    out, at = {}, 0
    for col, w in layout:
        out[col.key] = line[at : at + w].strip()
        at += w + 1
    return out


def test_pkt_s_counts_packets_and_seg_s_segments() -> None:
    """10 TSO packets of 44 segments a second: pkt/s 10 (as the device counters), seg/s 440."""
    tso = lab_queue(1, pps=10.0, packets_unit="skb", skbs_per_s=10.0, segs_per_s=440.0)
    c = queue_cells(with_queues(tso), 1)
    assert (c["pps"], c["segs"]) == ("10", "440")
    # An mq child's counter without probes counts segments: pkt/s cannot say, seg/s can.
    qdisc_only = lab_queue(
        2, pps=440.0, source="qdisc", packets_unit="segment", segs_per_s=440.0, skbs_per_s=None
    )
    c = queue_cells(with_queues(tso, qdisc_only), 2)
    assert (c["pps"], c["segs"]) == ("-", "440")
    # Between trace windows: segments exact from the child, packets estimated ("~").
    windowed = dataclasses.replace(qdisc_only, tx=dataclasses.replace(
        qdisc_only.tx, skbs_per_s=10.0, skbs_estimated=True))  # fmt: skip
    c = queue_cells(with_queues(tso, windowed), 2)
    assert (c["pps"], c["segs"]) == ("~10", "440")
    # A recording made before the unit was written: the source says it.
    old = lab_queue(3, pps=7.0, source="qdisc", packets_unit="", segs_per_s=None)
    c = queue_cells(with_queues(tso, old), 3)
    assert (c["pps"], c["segs"]) == ("-", "7")


def test_p99q_says_bypass_when_every_sampled_packet_skipped_the_qdisc() -> None:
    q0 = lab_queue(1)
    bypassing = dataclasses.replace(
        q0, latency_ns={"total": q0.latency_ns["total"]}, bypass=BypassStats(40, 40)
    )
    unsampled = dataclasses.replace(lab_queue(2), latency_ns={}, bypass=BypassStats(0, 0))
    mixed = dataclasses.replace(lab_queue(3), bypass=BypassStats(40, 10))
    snap = with_queues(lab_queue(0), bypassing, unsampled, mixed)
    assert queue_cells(snap, 1)["p99q"] == "bypass"
    assert queue_cells(snap, 1)["byp"] == "100%"
    assert queue_cells(snap, 2)["p99q"] == "-" and queue_cells(snap, 2)["byp"] == "-"
    assert queue_cells(snap, 3)["p99q"] == "16µs" and queue_cells(snap, 3)["byp"] == "25%"


def _drops(q: QueueRow, since_start: int, per_s: float) -> QueueRow:
    assert q.qdisc is not None
    qd = dataclasses.replace(q.qdisc, drops_since_start=since_start, drops_per_s=per_s,
                             requeues_since_start=since_start // 10)  # fmt: skip
    return dataclasses.replace(q, qdisc=qd)


def test_drops_since_start_shown_and_sorted_on() -> None:
    """A quiet second (no drops/s anywhere) keeps the order of the drops since start."""
    snap = with_queues(
        _drops(lab_queue(0), 5, 0.0), _drops(lab_queue(1), 900, 0.0),
        _drops(lab_queue(2), 0, 0.0), _drops(lab_queue(3), 40, 0.0),
    )  # fmt: skip
    c = queue_cells(snap, 1)
    assert c["dropt"] == "900" and c["rqt"] == "90"
    order = [q.queue for g in sort_groups(group_queues(snap), "drops") for q in g.queues
             if q.dev == "txlp1a"]  # fmt: skip
    assert order == [1, 3, 0, 2]
    requeued = [q.queue for g in sort_groups(group_queues(snap), "requeues") for q in g.queues
                if q.dev == "txlp1a"]  # fmt: skip
    assert requeued == [1, 3, 0, 2]
    groups = sort_groups(group_queues(snap), "drops")
    assert groups[0].dev == "txlp1a"  # 945 drops since start, the others none


def test_narrow_width_names_the_hidden_columns_and_v_shows_others() -> None:
    snap = fx.busy_lab()
    wide = queue_view(snap, 200)
    assert wide.hidden == []
    narrow = queue_view(snap, 78)
    assert "xoff/s" in narrow.hidden and "err/s" in narrow.hidden and "maxt" in narrow.hidden
    head = line_text(narrow.head)
    assert all(title not in head.split() for title in narrow.hidden)
    title = queues_title("device/queue", narrow.hidden, width=76)
    assert len(title) <= 76 and "(v)" in title and "hidden: " in title
    assert queues_title("drops", []) == "TX queues - sort: drops (s) - history (h)"
    assert queues_title("drops", ["p99t", "xoff/s"], "latency", 200) == (
        "TX queues - sort: drops (s) - latency first (v) - hidden: p99t xoff/s (v) - history (h)"
    )
    assert queues_title("drops", ["p99t"] * 9, "latency", 60) == (
        "TX queues - sort: drops (s) - latency first (v) - 9 columns hidden (v)"
    )
    # The latency set puts the latencies first at the same width.
    latency = queue_view(snap, 78, column_set="latency")
    shown = line_text(latency.head).split()
    assert {"p99q", "p99t", "p50t", "maxt"} <= set(shown)
    assert "p50t" not in line_text(narrow.head).split()
    assert set(COLUMN_SETS) == {"auto", "latency", "drops", "packets"}
    for name in COLUMN_SETS:  # every set still fits the width
        view = queue_view(snap, 78, column_set=name)
        assert all(len(line_text(line)) == 78 for line in [view.head, *view.body])


def cpu(pct: float, res: float | None, source: str, tx: float | None = None) -> CpuRow:
    return CpuRow(0, 0.0, 0.0, pct, 0.0, 0, 0, net_tx_time_pct=tx, net_rx_time_pct=tx,
                  softirq_pct_resolution=res, softirq_pct_source=source)  # fmt: skip


def test_softirq_share_shows_its_resolution() -> None:
    assert fmt_share(cpu(0.0, 1.0, "stat")) == "<1%"  # no tick in a 1 s interval
    assert fmt_share(cpu(3.0, 1.0, "stat")) == "3%"  # whole ticks: no invented decimal
    assert fmt_share(cpu(1.3, 0.1, "stat")) == "1.3%"  # 10 s: a tick is 0.1%
    assert fmt_share(cpu(2.2, 1.0, "probes", 1.1)) == "2.2%"  # nanoseconds from the probes
    assert fmt_share(cpu(0.0, None, "")) == "0%"  # a recording made before
    all_row = cpu_total([cpu(0.0, 1.0, "stat"), cpu(0.0, 1.0, "stat")])
    assert all_row.softirq_pct_resolution == 0.5 and fmt_share(all_row) == "<0.5%"


def test_softirq_panel_never_shows_parts_above_the_whole() -> None:
    snap = dataclasses.replace(fx.busy_lab(), cpus=(cpu(2.2, 1.0, "probes", 1.1),))
    view = cpu_view(snap, 120, 20)
    row = line_text(view.body[1])
    assert "2.2%" in row and row.count("1.1%") == 2


def test_probe_line_stays_short_and_the_help_has_the_details() -> None:
    notice = (
        "no kernel headers for 6.18.44-fc-v857: using linux-headers-6.12.48+deb13-cloud-amd64 "
        "via BCC_KERNEL_SOURCE=/var/cache/txtop/headers/6.12.48+deb13-cloud-amd64-merged"
    )
    probes = ProbeStatus(
        state="running", sampling={"every": 16, "max_per_s": 200}, notice=notice,
        unavailable={"a": "x", "b": "y", "c": "z", "identity": "no BTF", "netns": "per ns"},
    )  # fmt: skip
    snap = dataclasses.replace(fx.busy_lab(), probes=probes)
    line = line_text(header_lines(snap, HeaderState(1.0, "live"), 200, UNICODE)[1]).rstrip()
    assert not line.endswith(UNICODE.ellipsis) and len(line) < 180, line
    assert "no kernel headers for 6.18.44-fc-v857 (? details)" in line
    assert "BCC_KERNEL_SOURCE" not in line
    assert "partial: a, b, c +1 unavailable" in line
    assert "other namespaces not told apart" in line
    from txtop.tui.help import help_text

    text = " ".join(help_text(100, snap).split())
    assert "BCC_KERNEL_SOURCE=/var/cache/txtop/headers/6.12.48+deb13-cloud-amd64-merged" in text
    assert "identity unavailable: no BTF" in text


def test_unused_helpers_stay_consistent() -> None:
    assert TxStats(1.0, 8.0, 1, 1).packet_unit == "skb"
    assert QdiscStats("pfifo", "1:", "root", 0, 0, 0, 0, 0, 0, 0, 0).drops_since_start is None
