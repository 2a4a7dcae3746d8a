"""The config view's text: each device's and TX queue's knobs beside its live numbers.

Pure (Snapshot in, fragment lines out; Textual-free): ``config_lines`` builds the whole view as
``(line, subject)`` pairs, a subject for each row that is a device, a TX queue or a CPU (the
rows a cursor can stop on); ``queue_detail`` is one queue's inspector: every knob, the live
numbers and the findings about it. The widgets are tui/config_view.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from txtop.core.config import QdiscConfig, QueueConfig, parse_cpu_list
from txtop.core.finding import Finding, Subject
from txtop.core.model import CpuRow, DeviceRow, QueueRow, Snapshot
from txtop.core.text import format_ns
from txtop.tui.glyphs import glyphs_for
from txtop.tui.panels.format import (
    Column,
    Line,
    fit_columns,
    fmt_bytes,
    fmt_pct,
    fmt_si,
    header_row,
    render_row,
    truncate,
)

Row = tuple[Line, Subject | None]

QUEUE_CONFIG_COLUMNS: tuple[Column, ...] = (
    Column("name", "queue", 7, align="<", help="TX queue"),
    Column("xps", "xps cpus", 8, grow=4, align="<", help="CPUs XPS steers to the queue"),
    Column("rxqs", "xps rxqs", 8, align="<", priority=3, help="RX queues XPS maps to it"),
    Column("maxrate", "maxrate", 7, priority=3, help="tx_maxrate, Mbit/s (0: none)"),
    Column("tc", "tc", 2, priority=4, help="traffic class (mqprio)"),
    Column(
        "bql",
        "BQL min/max/hold",
        16,
        align="<",
        priority=2,
        help="BQL limit_min/limit_max, hold_time",
    ),
    Column(
        "irq", "IRQ>cpu", 9, grow=4, align="<", priority=1, help="TX interrupt(s) and their CPUs"
    ),
    Column(
        "qdisc", "qdisc (limit)", 13, grow=8, align="<", help="the qdisc serving it and its limit"
    ),
    Column("pps", "pkt/s", 5, help="live: packets per second"),
    Column("backlog", "backlog", 8, priority=1, help="live: qdisc backlog"),
    Column("drops", "drop/s", 6, help="live: qdisc drops per second"),
    Column(
        "inflight", "BQL infl/lim", 12, align="<", priority=2, help="live: BQL in flight / limit"
    ),
)

SYSCTL_SHORT = (
    ("net.core.default_qdisc", "default_qdisc"),
    ("net.core.netdev_budget", "netdev_budget"),
    ("net.core.netdev_budget_usecs", "budget_usecs"),
    ("net.core.dev_weight", "dev_weight"),
    ("net.core.netdev_max_backlog", "max_backlog"),
)
OFFLOAD_SHORT = (
    ("tcp-segmentation-offload", "tso"),
    ("generic-segmentation-offload", "gso"),
    ("generic-receive-offload", "gro"),
    ("large-receive-offload", "lro"),
    ("scatter-gather", "sg"),
    ("tx-checksumming", "csum"),
)
NOT_READ = (
    "configuration not read (a device of another namespace, a recording made before txtop "
    "read it, or a test source)"
)


def _frags(*parts: tuple[str, str]) -> Line:
    return [p for p in parts if p[0]]


def qdisc_text(qc: QdiscConfig | None, kind: str | None) -> str:
    if qc is None:
        return kind or "-"
    if qc.limit is None:
        return qc.kind
    unit = "p" if qc.limit_unit == "packets" else "b" if qc.limit_unit == "bytes" else ""
    return f"{qc.kind} {fmt_bytes(qc.limit) if unit == 'b' else qc.limit}{unit}"


def _bql_text(qc: QueueConfig) -> str:
    if qc.bql_limit_max is None:
        return "no BQL"
    top = "max" if qc.bql_limit_max >= 1 << 30 else fmt_bytes(qc.bql_limit_max)
    return f"{fmt_bytes(qc.bql_limit_min or 0)}/{top}/{qc.bql_hold_time}ms"


def _xps_text(qc: QueueConfig, value: str | None, key: str) -> tuple[str, str]:
    if value is None:
        return ("n/a" if key in qc.unavailable else "-", "dim")
    return (value or "none", "text" if value else "dim")


def _irq_text(qc: QueueConfig) -> tuple[str, str]:
    if not qc.irqs:
        return ("-", "dim")
    irqs = ",".join(str(i) for i in qc.irqs)
    return (f"{irqs}>{qc.irq_cpus or '?'}", "text")


def _live_cells(q: QueueRow) -> dict[str, Line]:
    cells: dict[str, Line] = {}
    pps = q.tx.pps if q.tx is not None else None
    cells["pps"] = [(fmt_si(pps), "text" if pps else "dim")]
    if q.qdisc is not None:
        qd = q.qdisc
        backlog = f"{fmt_bytes(qd.backlog_bytes)}/{qd.backlog_pkts}p" if qd.backlog_pkts else "0"
        cells["backlog"] = [(backlog, "warn" if qd.backlog_pkts else "dim")]
        cells["drops"] = [(fmt_si(qd.drops_per_s), "alert" if qd.drops_per_s > 0 else "dim")]
    if q.bql is not None:
        high = q.bql.limit > 0 and q.bql.inflight >= q.bql.limit
        label = f"{fmt_bytes(q.bql.inflight)}/{fmt_bytes(q.bql.limit)}"
        cells["inflight"] = [(label, "warn" if high else "text")]
    else:
        cells["inflight"] = [("no BQL", "dim")]
    return cells


def queue_cells(q: QueueRow, marked: bool = False, single: bool = False) -> dict[str, Line]:
    """A queue's row; ``single``: its device has no other queue (a root qdisc is its own)."""
    cells: dict[str, Line] = {"name": [(f"tx-{q.queue}", "alert" if marked else "text")]}
    qc = q.config
    if qc is None:
        cells["xps"] = [("not read", "dim")]
    else:
        cells["xps"] = [_xps_text(qc, qc.xps_cpus, "xps_cpus")]
        cells["rxqs"] = [_xps_text(qc, qc.xps_rxqs, "xps_rxqs")]
        rate = qc.tx_maxrate
        cells["maxrate"] = [(str(rate) if rate else "-", "text" if rate else "dim")]
        cells["tc"] = [(qc.traffic_class or "-", "text" if qc.traffic_class else "dim")]
        cells["bql"] = [(_bql_text(qc), "text" if qc.bql_limit_max is not None else "dim")]
        cells["irq"] = [_irq_text(qc)]
    kind = q.qdisc.kind if q.qdisc is not None else None
    shared = q.qdisc is not None and not q.qdisc.per_queue and not single
    qtext = "shared root" if shared else qdisc_text(qc.qdisc if qc else None, kind)
    cells["qdisc"] = [(qtext, "dim" if shared or kind is None else "text")]
    cells.update(_live_cells(q))
    return cells


def system_line(snapshot: Snapshot) -> Line:
    """The net.core sysctls (the same for every device)."""
    sysctl = next((d.config.sysctl for d in snapshot.devices if d.config and d.config.sysctl), None)
    if not sysctl:
        return [("net.core: not read", "dim")]
    out: Line = [("net.core", "heading")]
    for name, short in SYSCTL_SHORT:
        if name in sysctl:
            out += [(f"  {short} ", "dim"), (sysctl[name], "text")]
    return out


def device_lines(d: DeviceRow) -> list[Line]:
    """The device's own knobs: its header line and up to three more."""
    c = d.config
    head: Line = [(d.dev, "group")]
    if c is None:
        return [head + [("  " + NOT_READ, "dim")]]
    head += _frags(
        (f"  {c.driver}" if c.driver else "", "text"),
        (f" {c.bus_info}" if c.bus_info else "", "dim"),
        ("  txqueuelen ", "dim"),
        (str(c.txqueuelen) if c.txqueuelen is not None else "?", "text"),
        ("  mtu ", "dim"),
        (str(c.mtu) if c.mtu is not None else "?", "text"),
        ("  qdisc ", "dim"),
        (qdisc_text(c.root_qdisc, d.root_qdisc), "text"),
        (f"  {fmt_si(d.tx_pps)} pkt/s {fmt_si(d.tx_bps)} bit/s", "dim"),
    )
    lines = [head]
    ring: Line = [("  rings ", "dim")]
    if c.tx_ring is not None:
        ring += [(f"tx {c.tx_ring}/{c.tx_ring_max} rx {c.rx_ring}/{c.rx_ring_max}", "text")]
    else:
        ring += [(c.unavailable.get("rings", "-"), "dim")]
    if c.channels:
        chans = " ".join(f"{k} {v}" for k, v in c.channels.items() if not k.startswith("max_"))
        ring += [("  channels ", "dim"), (chans or "-", "text")]
    if c.coalesce:
        co = c.coalesce
        ring += [
            ("  coalesce ", "dim"),
            (
                f"tx {co.get('tx_usecs', '?')}us/{co.get('tx_frames', '?')}f "
                f"rx {co.get('rx_usecs', '?')}us/{co.get('rx_frames', '?')}f"
                + (" adaptive" if co.get("adaptive_rx") or co.get("adaptive_tx") else ""),
                "text",
            ),
        ]
    lines.append(ring)
    if c.offloads:
        on = [s for name, s in OFFLOAD_SHORT if c.offloads.get(name)]
        off = [s for name, s in OFFLOAD_SHORT if name in c.offloads and not c.offloads[name]]
        lines.append(
            _frags(
                ("  offloads ", "dim"),
                (" ".join(on) + " on" if on else "", "text"),
                ("; " + " ".join(off) + " off" if off else "", "dim"),
            )
        )
    lines.append([("  IRQs ", "dim"), (c.irq_match or "-", "text")])
    return lines


def cpu_line(c: CpuRow, irqs: Sequence[tuple[int, str]]) -> Line:
    names = ", ".join(f"{n} {name}" for n, name in irqs[:3]) + (" ..." if len(irqs) > 3 else "")
    return _frags(
        (f"cpu{c.cpu:<4}", "text"),
        (f" NET_TX {fmt_si(c.net_tx_per_s):>5}/s", "text"),
        (f" NET_RX {fmt_si(c.net_rx_per_s):>5}/s", "text"),
        (f" softirq {fmt_pct(c.softirq_pct):>5}", "text"),
        (f" squeeze {fmt_si(c.time_squeeze_per_s)}/s", "warn" if c.time_squeeze_per_s else "dim"),
        (
            f" drop {fmt_si(c.softnet_dropped_per_s)}/s",
            "alert" if c.softnet_dropped_per_s else "dim",
        ),
        ("  IRQs here " + (names or "-"), "dim"),
    )


def _irqs_by_cpu(snapshot: Snapshot) -> dict[int, list[tuple[int, str]]]:
    """IRQ number and name of every device interrupt that may run on only one CPU."""
    out: dict[int, list[tuple[int, str]]] = {}
    for d in snapshot.devices:
        if d.config is None:
            continue
        for irq in d.config.irqs:
            try:
                cpus = parse_cpu_list(irq.effective or irq.affinity)
            except ValueError:
                continue
            for cpu in cpus:
                out.setdefault(cpu, []).append((irq.irq, irq.name))
    return out


def marked_subjects(findings: Iterable[Finding] | None) -> set[Subject]:
    """Subjects of active findings (their rows are marked), with the device of a queue."""
    out: set[Subject] = set()
    for f in findings or ():
        if f.active:
            out.add(f.subject)
    return out


def config_lines(snapshot: Snapshot | None, width: int, ascii_only: bool = False) -> list[Row]:
    """Every line of the config view with the subject of the row it shows (None: not a row)."""
    glyphs = glyphs_for(ascii_only)
    if snapshot is None:
        return [([("waiting for the first sample...", "dim")], None)]
    marked = marked_subjects(snapshot.findings)
    rows: list[Row] = [(system_line(snapshot), None), ([], None)]
    layout = fit_columns(QUEUE_CONFIG_COLUMNS, width)
    by_dev: dict[str, list[QueueRow]] = {}
    for q in snapshot.queues:
        by_dev.setdefault(q.dev, []).append(q)
    for d in snapshot.devices:
        lines = device_lines(d)
        rows.append((lines[0], Subject("device", d.dev)))
        rows += [(line, None) for line in lines[1:]]
        rows.append((header_row(layout, glyphs), None))
        queues = sorted(by_dev.get(d.dev, ()), key=lambda r: r.queue)
        for q in queues:
            subject = Subject("queue", q.dev, q.queue)
            cells = queue_cells(q, subject in marked, single=len(queues) == 1)
            rows.append((render_row(layout, cells, glyphs), subject))
        rows.append(([], None))
    by_cpu = _irqs_by_cpu(snapshot)
    rows.append(
        (
            [("CPUs", "heading"), ("  (softirqs, and the device IRQs that run only there)", "dim")],
            None,
        )
    )
    for c in snapshot.cpus:
        line = cpu_line(c, by_cpu.get(c.cpu, []))
        rows.append((line, Subject("cpu", cpu=c.cpu)))
    return [(truncate(line, width, glyphs.ellipsis), subject) for line, subject in rows]


# ---- one queue's inspector ----------------------------------------------------------------


def _kv(name: str, value: object, role: str = "text") -> Line:
    return [(f"  {name:<18}", "dim"), (str(value), role)]


def _maybe(value: object, unavailable: str | None = None) -> str:
    if value is None:
        return f"- ({unavailable})" if unavailable else "-"
    return str(value) if value != "" else "none"


def _maxrate(qc: QueueConfig) -> str:
    if qc.tx_maxrate is None:
        return _maybe(None, qc.unavailable.get("tx_maxrate"))
    return f"{qc.tx_maxrate} Mbit/s" if qc.tx_maxrate else "none"


def _detail_config(q: QueueRow, d: DeviceRow | None) -> list[Line]:
    """The queue's knobs (and its device's), or why they were not read."""
    lines: list[Line] = [[("Configuration", "heading")]]
    qc = q.config
    if qc is None:
        lines.append([("  " + NOT_READ, "dim")])
    else:
        un = qc.unavailable
        lines += [
            _kv("xps_cpus", _maybe(qc.xps_cpus, un.get("xps_cpus"))),
            _kv("xps_rxqs", _maybe(qc.xps_rxqs, un.get("xps_rxqs"))),
            _kv("tx_maxrate", _maxrate(qc)),
            _kv("traffic_class", _maybe(qc.traffic_class, un.get("traffic_class"))),
            _kv(
                "BQL limit_min/max",
                f"{qc.bql_limit_min} / {qc.bql_limit_max} bytes, hold_time {qc.bql_hold_time} ms"
                if qc.bql_limit_max is not None
                else f"- ({un.get('bql', 'no BQL')})",
            ),
            _kv(
                "TX IRQs",
                (", ".join(str(i) for i in qc.irqs) + f" on CPUs {qc.irq_cpus}")
                if qc.irqs
                else "none matched",
            ),
            _kv(
                "qdisc",
                f"{qc.qdisc.kind} {qc.qdisc.handle} parent {qc.qdisc.parent}"
                if qc.qdisc
                else (q.qdisc.kind if q.qdisc else "-"),
            ),
        ]
        if qc.qdisc is not None:
            limit = f"{qc.qdisc.limit} {qc.qdisc.limit_unit}" if qc.qdisc.limit is not None else "-"
            lines.append(_kv("qdisc limit", limit))
            if qc.qdisc.params:
                lines.append(_kv("qdisc params", qc.qdisc.params))
    dc = d.config if d is not None else None
    if dc is not None:
        lines.append(_kv("device txqueuelen", _maybe(dc.txqueuelen)))
        if dc.tx_ring is not None:
            lines.append(_kv("TX ring", f"{dc.tx_ring} of max {dc.tx_ring_max}"))
        if dc.irq_match:
            lines.append(_kv("IRQ match", dc.irq_match, "dim"))
    return lines


def _detail_live(q: QueueRow) -> list[Line]:
    """The queue's live numbers: BQL, qdisc, transmit rates, sampled latencies."""
    lines: list[Line] = [[("Live", "heading")]]
    if q.bql is not None:
        b = q.bql
        peak = f", peak {fmt_bytes(b.inflight_peak)}" if b.inflight_peak is not None else ""
        at = f", at limit {b.at_limit_pct:.0f}% of samples" if b.at_limit_pct is not None else ""
        lines.append(
            _kv("BQL in flight", f"{fmt_bytes(b.inflight)} of limit {fmt_bytes(b.limit)}{peak}{at}")
        )
    if q.qdisc is not None:
        qd = q.qdisc
        lines.append(
            _kv("qdisc backlog", f"{fmt_bytes(qd.backlog_bytes)} / {qd.backlog_pkts} packets")
        )
        lines.append(
            _kv(
                "drops",
                f"{fmt_si(qd.drops_per_s)}/s ({qd.drops} total)",
                "alert" if qd.drops_per_s else "text",
            )
        )
        lines.append(_kv("requeues", f"{fmt_si(qd.requeues_per_s)}/s ({qd.requeues} total)"))
    if q.tx is not None:
        est = " (estimated)" if q.tx.estimated else ""
        lines.append(_kv("transmit", f"{fmt_si(q.tx.pps)} pkt/s, {fmt_si(q.tx.bps)} bit/s{est}"))
    for name in ("qdisc", "completion", "total"):
        lat = q.latency_ns.get(name)
        if lat is not None and lat.count:
            lines.append(
                _kv(
                    f"latency {name}",
                    f"p50 {format_ns(lat.p50)}  p99 {format_ns(lat.p99)}  max {format_ns(lat.max)}  ({lat.count} samples)",
                )
            )
    return lines


def _detail_findings(snapshot: Snapshot, subject: Subject) -> list[Line]:
    """The findings on the queue or its device, with their knob and command."""
    mine = [
        f
        for f in snapshot.findings or ()
        if f.subject == subject or (f.subject.kind == "device" and f.subject.dev == subject.dev)
    ]
    lines: list[Line] = [[("Findings", "heading")]]
    if not mine:
        lines.append([("  none", "dim")])
    for f in mine:
        role = "dim" if not f.active else {"crit": "alert", "warn": "warn"}.get(f.severity, "text")
        lines.append([(f"  {f.severity.upper():<5}", role), (f.summary, role)])
        lines.append([("        knob: ", "dim"), (f.knob, "text")])
        lines.append([("        try:  ", "dim"), (f.command, "text")])
    return lines


def queue_detail(snapshot: Snapshot | None, subject: Subject) -> list[Line]:
    """The inspector of one TX queue: knobs, live numbers, latency, findings."""
    if snapshot is None:
        return [[("waiting for the first sample...", "dim")]]
    q = next(
        (r for r in snapshot.queues if r.dev == subject.dev and r.queue == subject.queue), None
    )
    d = next((r for r in snapshot.devices if r.dev == subject.dev), None)
    if q is None:
        return [[(f"{subject.label}: not in this snapshot", "dim")]]
    head: list[Line] = [
        [(f"{q.dev} tx-{q.queue}", "group"), ("  (configuration beside the live numbers)", "dim")],
        [],
    ]
    return [
        *head,
        *_detail_config(q, d),
        [],
        *_detail_live(q),
        [],
        *_detail_findings(snapshot, subject),
    ]
