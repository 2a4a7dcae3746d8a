"""Families of the devices and their TX queues: BQL, the qdiscs, per-queue transmit totals."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Final, Generic, NamedTuple, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from txtop.core.model import BqlStats, Snapshot
from txtop.exporters.families import QDISC_LABELS, QUEUE_LABELS, Families
from txtop.exporters.view import MetricsView, QdiscTotals, TxTotals

T = TypeVar("T")


class _Family(NamedTuple, Generic[T]):
    """One family of a table below: its name, HELP text, the value of a row, its unit."""

    name: str
    doc: str
    get: Callable[[T], float | None]
    unit: str = ""


def _fill(
    fam: GaugeMetricFamily | CounterMetricFamily,
    rows: Iterable[tuple[Sequence[str], T]],
    get: Callable[[T], float | None],
) -> None:
    """One sample per (labels, totals) row, none where ``get`` gives None."""
    for labels, totals in rows:
        value = get(totals)
        if value is not None:
            fam.add_metric(list(labels), value)


def _add_table(
    make: Callable[[str, str, Iterable[str], str], GaugeMetricFamily | CounterMetricFamily],
    table: Iterable[_Family[T]],
    note: str,
    labels: Sequence[str],
    rows: Collection[tuple[Sequence[str], T]],
) -> None:
    """The families of ``table`` (made by ``fams.gauge`` or ``fams.counter``), in its order,
    each filled from all ``rows``; ``note`` ends every HELP text."""
    for family in table:
        _fill(make(family.name, family.doc + note, labels, family.unit), rows, family.get)


def device_families(fams: Families, snap: Snapshot) -> None:
    queues = fams.gauge(
        "device_transmit_queues",
        "TX queues of each device txtop watches.",
        ["device"],
    )
    for d in snap.devices:
        queues.add_metric([d.dev], d.tx_queues)
    present = fams.gauge(
        "queue_info",
        "1 for every TX queue txtop watches (for dashboard variables and joins).",
        QUEUE_LABELS,
    )
    for row in snap.queues:
        present.add_metric([row.dev, str(row.queue)], 1.0)


# ---- BQL ---------------------------------------------------------------------------------------

_BQL_DIR: Final = "Byte queue limits of the TX queue (/sys/class/net/<device>/queues/tx-<queue>/byte_queue_limits/"
_NEW_KERNELS: Final = ", kernels >= 6.10"


def _bql_doc(text: str, sysfs: str, since: str = "") -> str:
    return f"{text} {_BQL_DIR}{sysfs}{since})."


# sysfs gives times in ms.
_BQL_GAUGES: Final[tuple[_Family[BqlStats], ...]] = (
    _Family(
        "bql_inflight_bytes",
        _bql_doc("Bytes in flight to the device.", "inflight"),
        lambda b: b.inflight,
        "bytes",
    ),
    _Family(
        "bql_limit_bytes",
        _bql_doc("Current limit on bytes in flight.", "limit"),
        lambda b: b.limit,
        "bytes",
    ),
    _Family(
        "bql_limit_min_bytes",
        _bql_doc("Lowest limit BQL may set.", "limit_min"),
        lambda b: b.limit_min,
        "bytes",
    ),
    _Family(
        "bql_limit_max_bytes",
        _bql_doc("Highest limit BQL may set.", "limit_max"),
        lambda b: b.limit_max,
        "bytes",
    ),
    _Family(
        "bql_hold_time_seconds",
        _bql_doc("Time the limit is held before it may shrink.", "hold_time"),
        lambda b: b.hold_time / 1000,
        "seconds",
    ),
)
# Only kernels >= 6.10 have these (None otherwise).
_BQL_STALL_GAUGES: Final[tuple[_Family[BqlStats], ...]] = (
    _Family(
        "bql_stall_threshold_seconds",
        _bql_doc("Time without completions that counts as a stall.", "stall_thrs", _NEW_KERNELS),
        lambda b: None if b.stall_thrs is None else b.stall_thrs / 1000,
        "seconds",
    ),
    _Family(
        "bql_stall_max_seconds",
        _bql_doc("Longest stall seen.", "stall_max", _NEW_KERNELS),
        lambda b: None if b.stall_max is None else b.stall_max / 1000,
        "seconds",
    ),
)


def bql_families(fams: Families, view: MetricsView) -> None:
    rows = [([r.dev, str(r.queue)], r.bql) for r in view.snapshot.queues if r.bql is not None]
    if not rows:
        return
    _add_table(fams.gauge, _BQL_GAUGES, "", QUEUE_LABELS, rows)
    _bql_stall_families(fams, rows)
    if view.bql_stalls:
        stalls = fams.counter(
            "bql_stalls",
            _bql_doc("Stalls BQL detected on the TX queue.", "stall_cnt", _NEW_KERNELS),
            QUEUE_LABELS,
        )
        _fill(stalls, view.bql_stalls.items(), lambda total: total)


def _bql_stall_families(fams: Families, rows: list[tuple[list[str], BqlStats]]) -> None:
    """The stall gauges, each made at its first value (none on kernels without them)."""
    made: dict[str, GaugeMetricFamily] = {}
    for labels, b in rows:
        for family in _BQL_STALL_GAUGES:
            value = family.get(b)
            if value is None:
                continue
            fam = made.get(family.name)
            if fam is None:
                fam = made[family.name] = fams.gauge(
                    family.name, family.doc, QUEUE_LABELS, family.unit
                )
            fam.add_metric(labels, value)


# ---- qdiscs ------------------------------------------------------------------------------------

_QDISC_NOTE: Final = (
    " The qdisc serving the TX queue: an mq/mqprio child, or the root qdisc, which serves "
    "every TX queue of the device (queue label empty when there are several)."
)
_MONOTONIC: Final = " Monotonic across u32 wraps and re-created devices."

_QDISC_GAUGES: Final[tuple[_Family[QdiscTotals], ...]] = (
    _Family(
        "qdisc_backlog_bytes", "Bytes waiting in the qdisc.", lambda t: t.backlog_bytes, "bytes"
    ),
    _Family("qdisc_backlog_packets", "Packets waiting in the qdisc.", lambda t: t.backlog_pkts),
    _Family("qdisc_current_queue_length", "The qdisc's queue length (qlen).", lambda t: t.qlen),
)
_QDISC_COUNTERS: Final[tuple[_Family[QdiscTotals], ...]] = (
    _Family("qdisc_packets", "Packets the qdisc sent.", lambda t: t.packets),
    _Family("qdisc_bytes", "Bytes the qdisc sent.", lambda t: t.bytes, "bytes"),
    _Family("qdisc_drops", "Packets the qdisc dropped.", lambda t: t.drops),
    _Family(
        "qdisc_requeues", "Packets dequeued, not transmitted, and requeued.", lambda t: t.requeues
    ),
    _Family(
        "qdisc_overlimits",
        "Times the qdisc was over its limit (shaping delayed or dropped a packet).",
        lambda t: t.overlimits,
    ),
)


def qdisc_families(fams: Families, view: MetricsView) -> None:
    if not view.qdiscs:
        return
    rows = view.qdiscs.items()
    _add_table(fams.gauge, _QDISC_GAUGES, _QDISC_NOTE, QDISC_LABELS, rows)
    _add_table(fams.counter, _QDISC_COUNTERS, _QDISC_NOTE + _MONOTONIC, QDISC_LABELS, rows)


# ---- per-queue transmit ------------------------------------------------------------------------

_ESTIMATED: Final = (
    " Starts at the probes' (or the mq child qdisc's) count and grows by txtop's rate x "
    "interval: estimated from trace windows when txtop_probe_traced_ratio < 1."
)
# errors and stopped: None where the probes do not count them.
_TX_COUNTERS: Final[tuple[_Family[TxTotals], ...]] = (
    _Family(
        "transmit_packets",
        "Packets handed to the driver on the TX queue (net_dev_start_xmit).",
        lambda t: t.packets,
    ),
    _Family(
        "transmit_bytes", "Bytes handed to the driver on the TX queue.", lambda t: t.bytes, "bytes"
    ),
    _Family(
        "transmit_errors",
        "Driver transmits on the TX queue that did not return NETDEV_TX_OK (net_dev_xmit).",
        lambda t: t.errors,
    ),
    _Family(
        "transmit_stopped",
        "Dequeues that found the TX queue stopped (XOFF: driver or BQL full).",
        lambda t: t.stopped,
    ),
)


def transmit_families(fams: Families, view: MetricsView) -> None:
    if not view.tx:
        return
    _add_table(fams.counter, _TX_COUNTERS, _ESTIMATED, QUEUE_LABELS, view.tx.items())
