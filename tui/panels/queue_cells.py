"""The TX queues panel's cells: one fragment list per column of a device, a queue, or a device
with a single queue (BQL meter, qdisc, rates, latencies). Pure and Textual-free;
tui/panels/queues.py lays them out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from txtop.core.model import BqlStats, DeviceRow, LatencyStats, QdiscStats, QueueRow, TxStats
from txtop.core.text import format_ns
from txtop.tui.glyphs import Glyphs

from .format import Line, bar, fmt_bytes, fmt_si, line_text, value_frag
from .queue_groups import QueueGroup, distinct_qdiscs

Cells = dict[str, Line]  # column key -> the cell's fragments


# ---- cells ----------------------------------------------------------------------------------


def _ratio(inflight: int, limit: int) -> float:
    if limit > 0:
        return inflight / limit
    return 1.0 if inflight > 0 else 0.0


def _bql_cell(
    inflight: int, limit: int, width: int, glyphs: Glyphs, peak: int | None = None
) -> Line:
    """A meter of bytes in flight against the limit and its label; ``peak`` (the interval's
    largest, sampled between ticks) adds a mark where it reached when it was above now, and
    its value to the label when there is room."""
    label = f"{fmt_bytes(inflight)}/{fmt_bytes(limit)}"
    ratio = _ratio(inflight, limit)
    marked = peak is not None and peak > inflight
    if marked and width - len(label) - 1 >= 8 + len(f" pk {fmt_bytes(peak)}"):
        label += f" pk {fmt_bytes(peak)}"
    bar_w = width - len(label) - 1
    if bar_w < 3:
        return [(label, "bar-high" if ratio >= 0.8 else "text")]
    meter = bar(ratio, bar_w, glyphs)
    if marked and peak is not None:
        meter = _peak_mark(meter, _ratio(peak, limit), bar_w, glyphs)
    return meter + [(" ", "text"), (label, "text")]


def _peak_mark(meter: Line, peak_ratio: float, width: int, glyphs: Glyphs) -> Line:
    """The meter with the cell where the peak reached (at least the first cell past the
    filled part: beside the current value) drawn as ``glyphs.peak_mark``."""
    cells = [(ch, role) for text, role in meter for ch in text]
    filled = sum(1 for _, role in cells if role != "bar-empty")
    at = max(filled, min(width - 1, int(min(1.0, peak_ratio) * width)))
    if at >= len(cells):
        return meter
    cells[at] = (glyphs.peak_mark, "bar-high" if peak_ratio >= 0.8 else "bar")
    out: Line = []
    for ch, role in cells:
        if out and out[-1][1] == role:
            out[-1] = (out[-1][0] + ch, role)
        else:
            out.append((ch, role))
    return out


def _queue_bql_cell(bql: BqlStats, width: int, glyphs: Glyphs) -> Line:
    return _bql_cell(bql.inflight, bql.limit, width, glyphs, bql.inflight_peak)


def _lat(stats: LatencyStats | None, attr: str, glyphs: Glyphs) -> Line:
    if stats is None or stats.count == 0:
        return [("-", "dim")]
    return [(format_ns(getattr(stats, attr), ascii=glyphs.ascii, short=True), "text")]


def _backlog_cell(backlog_bytes: int, backlog_pkts: int) -> Line:
    if backlog_bytes or backlog_pkts:
        return [(f"{fmt_bytes(backlog_bytes)}/{backlog_pkts}p", "warn")]
    return [("0", "dim")]


def _total_cell(value: int | None, bad_role: str = "alert") -> Line:
    """A count since txtop started (None: not known, e.g. an older recording)."""
    return value_frag(fmt_si(value), value, bad_role)


def _qdisc_cells(qd: QdiscStats | None, shared: bool) -> Cells:
    if qd is None:
        return {"qdisc": [("-", "dim")], "backlog": [("-", "dim")]}
    if shared:  # the device row carries this qdisc's numbers; repeating them misleads
        return {"qdisc": [("shared", "dim")]}
    return {
        "qdisc": [(qd.kind, "text")],
        "backlog": _backlog_cell(qd.backlog_bytes, qd.backlog_pkts),
        "drops": value_frag(fmt_si(qd.drops_per_s), qd.drops_per_s),
        "dropt": _total_cell(qd.drops_since_start),
        "requeues": value_frag(fmt_si(qd.requeues_per_s), qd.requeues_per_s, "warn"),
        "rqt": _total_cell(qd.requeues_since_start, "warn"),
    }


def tx_skbs(tx: TxStats | None) -> tuple[float | None, bool]:
    """Packets handed to the driver per second (the device counters' unit) and whether it is
    an estimate from trace windows; None when only segments are known (an mq child's counter
    without probes)."""
    if tx is None:
        return None, False
    if tx.skbs_per_s is not None:
        return tx.skbs_per_s, tx.skbs_estimated
    if tx.packet_unit == "skb":  # a recording made before skbs_per_s
        return tx.pps, tx.estimated
    return None, False


def tx_segs(tx: TxStats | None) -> float | None:
    """GSO segments per second, None when not known."""
    if tx is None:
        return None
    if tx.segs_per_s is not None:
        return tx.segs_per_s
    return tx.pps if tx.packet_unit == "segment" else None


def _rate_cell(value: float | None, estimated: bool, role: str = "text") -> Line:
    if value is None:
        return [("-", "dim")]
    # "~": extrapolated from trace windows (the probes were attached part of the time)
    return [(("~" if estimated else "") + fmt_si(value), role if value else "dim")]


def _p99q_cell(q: QueueRow, glyphs: Glyphs) -> Line:
    """The p99 qdisc wait; 'bypass' when every sampled packet skipped the qdisc."""
    waits = q.latency_ns.get("qdisc")
    if (waits is None or waits.count == 0) and q.bypass is not None and q.bypass.bypassed:
        return [("bypass", "dim")]
    return _lat(waits, "p99", glyphs)


def _bypass_cell(q: QueueRow) -> Line:
    b = q.bypass
    if b is None or b.sampled == 0:
        return [("-", "dim")]
    return [(f"{100.0 * b.bypassed / b.sampled:.0f}%", "text" if b.bypassed else "dim")]


def _tx_cells(q: QueueRow, glyphs: Glyphs) -> Cells:
    cells: Cells = {}
    tx = q.tx
    if tx is not None:
        est = "~" if tx.estimated else ""
        skbs, skbs_est = tx_skbs(tx)
        cells["pps"] = _rate_cell(skbs, skbs_est)
        cells["segs"] = _rate_cell(tx_segs(tx), tx.estimated and tx.source == "probe")
        cells["bps"] = _rate_cell(tx.bps, tx.estimated)
        cells["xoff"] = value_frag(est + fmt_si(tx.stopped_per_s), tx.stopped_per_s, "warn")
        cells["errors"] = value_frag(est + fmt_si(tx.errors_per_s), tx.errors_per_s)
    else:
        for key in ("pps", "segs", "bps", "xoff", "errors"):
            cells[key] = [("-", "dim")]
    total = q.latency_ns.get("total")
    cells["p99q"] = _p99q_cell(q, glyphs)
    cells["byp"] = _bypass_cell(q)
    cells["p99t"] = _lat(total, "p99", glyphs)
    cells["p50t"] = _lat(total, "p50", glyphs)
    cells["maxt"] = _lat(total, "max", glyphs)
    return cells


def _sum_known(values: Iterable[int | float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(sum(known)) if known else None


def _device_qdisc_cells(dev: DeviceRow | None, queues: Sequence[QueueRow]) -> Cells:
    """The device row's qdisc columns: its root qdisc, the backlog and rates of all qdiscs."""
    qdiscs = distinct_qdiscs(queues)
    root = dev.root_qdisc if dev is not None else None
    cells: Cells = {"qdisc": [(root or (qdiscs[0].kind if len(qdiscs) == 1 else "-"), "text")]}
    if not qdiscs:
        cells["backlog"] = [("-", "dim")]
        return cells
    drops = sum(qd.drops_per_s for qd in qdiscs)
    requeues = sum(qd.requeues_per_s for qd in qdiscs)
    cells["backlog"] = _backlog_cell(
        sum(qd.backlog_bytes for qd in qdiscs), sum(qd.backlog_pkts for qd in qdiscs)
    )
    cells["drops"] = value_frag(fmt_si(drops), drops)
    cells["requeues"] = value_frag(fmt_si(requeues), requeues, "warn")
    drops_total = _sum_known(qd.drops_since_start for qd in qdiscs)
    requeues_total = _sum_known(qd.requeues_since_start for qd in qdiscs)
    cells["dropt"] = value_frag(fmt_si(drops_total), drops_total)
    cells["rqt"] = value_frag(fmt_si(requeues_total), requeues_total, "warn")
    return cells


def _device_cells(g: QueueGroup, bql_w: int, glyphs: Glyphs) -> Cells:
    """The device row: link state or the summed BQL, its qdiscs, the device's rates."""
    dev = g.device
    down = dev is not None and dev.oper_state not in ("up", "unknown")
    cells: Cells = {"name": [(g.dev, "dim" if down else "group")]}
    bqls = [q.bql for q in g.queues if q.bql is not None]
    if down:
        cells["bql"] = [(f"link {dev.oper_state}" if dev else "link down", "dim")]
    elif bqls:
        cells["bql"] = _bql_cell(
            sum(b.inflight for b in bqls), sum(b.limit for b in bqls), bql_w, glyphs
        )
    else:
        cells["bql"] = [("no BQL", "dim")]
    cells.update(_device_qdisc_cells(dev, g.queues))
    if dev is not None:
        cells["pps"] = [(fmt_si(dev.tx_pps), "group" if dev.tx_pps else "dim")]
        cells["bps"] = [(fmt_si(dev.tx_bps), "group" if dev.tx_bps else "dim")]
    # The device counters do not count segments: the queues' sum, where they are known.
    segs = [tx_segs(q.tx) for q in g.queues]
    if any(v is not None for v in segs):
        estimated = any(q.tx is not None and q.tx.estimated for q in g.queues)
        cells["segs"] = _rate_cell(_sum_known(segs), estimated, "group")
    return cells


def _single_queue_cells(g: QueueGroup, bql_w: int, glyphs: Glyphs) -> Cells:
    """A device with one queue: a single row carries both device and queue numbers."""
    q = g.queues[0]
    cells = _device_cells(g, bql_w, glyphs)
    if q.bql is not None and "link" not in line_text(cells["bql"]):
        cells["bql"] = _queue_bql_cell(q.bql, bql_w, glyphs)
    tx = _tx_cells(q, glyphs)
    if q.tx is None:  # keep the device's rates
        tx = {k: v for k, v in tx.items() if k not in ("pps", "bps")}
    elif tx_skbs(q.tx)[0] is None:  # segments only: the device counts its packets
        tx = {k: v for k, v in tx.items() if k != "pps"}
    cells.update(tx)
    cells.update(_qdisc_cells(q.qdisc, shared=False))
    return cells


def _queue_cells(q: QueueRow, bql_w: int, glyphs: Glyphs) -> Cells:
    """A tx-N row under its device."""
    cells: Cells = {"name": [(f"  tx-{q.queue}", "text")]}
    if q.bql is not None:
        cells["bql"] = _queue_bql_cell(q.bql, bql_w, glyphs)
    else:
        cells["bql"] = [("no BQL", "dim")]
    cells.update(_qdisc_cells(q.qdisc, shared=q.qdisc is not None and not q.qdisc.per_queue))
    cells.update(_tx_cells(q, glyphs))
    return cells


def group_cells(g: QueueGroup, bql_w: int, glyphs: Glyphs) -> list[Cells]:
    if len(g.queues) == 1:
        return [_single_queue_cells(g, bql_w, glyphs)]
    return [_device_cells(g, bql_w, glyphs), *(_queue_cells(q, bql_w, glyphs) for q in g.queues)]
