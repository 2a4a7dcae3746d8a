"""The TX queues panel's rows grouped per device and sorted by the ``s`` key (SORT_KEYS), and
the queue each line shows. Pure and Textual-free; tui/panels/queues.py draws them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from txtop.core.history import QueueTarget
from txtop.core.model import DeviceRow, QdiscStats, QueueRow, Snapshot

SORT_KEYS: tuple[str, ...] = ("device/queue", "busiest tx", "backlog", "drops", "requeues")


# ---- grouping and sorting -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueGroup:
    dev: str
    device: DeviceRow | None
    queues: tuple[QueueRow, ...]


def group_queues(snapshot: Snapshot) -> list[QueueGroup]:
    """Queue rows grouped per device, in the snapshot's interface order."""
    devices = {d.dev: d for d in snapshot.devices}
    order: list[str] = list(snapshot.interfaces)
    for name in list(devices) + [q.dev for q in snapshot.queues]:
        if name not in order:
            order.append(name)
    rows: dict[str, list[QueueRow]] = {name: [] for name in order}
    for q in snapshot.queues:
        rows[q.dev].append(q)
    return [
        QueueGroup(name, devices.get(name), tuple(sorted(rows[name], key=lambda q: q.queue)))
        for name in order
        if name in devices or rows[name]
    ]


def distinct_qdiscs(queues: Iterable[QueueRow]) -> list[QdiscStats]:
    """One entry per qdisc: a shared root qdisc appears in every queue row but counts once."""
    seen: dict[tuple[str, str], QdiscStats] = {}
    for q in queues:
        if q.qdisc is not None:
            seen.setdefault((q.qdisc.handle, q.qdisc.parent), q.qdisc)
    return list(seen.values())


def _queue_tx_bps(q: QueueRow) -> float:
    return q.tx.bps if q.tx is not None else -1.0


def _group_tx_bps(g: QueueGroup) -> float:
    if g.device is not None:
        return float(g.device.tx_bps)
    return sum(max(0.0, _queue_tx_bps(q)) for q in g.queues)


def _group_backlog(g: QueueGroup) -> int:
    return sum(qd.backlog_bytes for qd in distinct_qdiscs(g.queues))


def _since_start(value: int | None) -> int:
    return value if value is not None else -1


def _group_drops(g: QueueGroup) -> tuple[int, float]:
    qdiscs = distinct_qdiscs(g.queues)
    return (
        sum(max(0, _since_start(qd.drops_since_start)) for qd in qdiscs),
        float(sum(qd.drops_per_s for qd in qdiscs)),
    )


def _group_requeues(g: QueueGroup) -> tuple[int, float]:
    qdiscs = distinct_qdiscs(g.queues)
    return (
        sum(max(0, _since_start(qd.requeues_since_start)) for qd in qdiscs),
        float(sum(qd.requeues_per_s for qd in qdiscs)),
    )


def _queue_drops(q: QueueRow) -> tuple[int, float]:
    if q.qdisc is None:
        return (-1, -1.0)
    return (_since_start(q.qdisc.drops_since_start), q.qdisc.drops_per_s)


def _queue_requeues(q: QueueRow) -> tuple[int, float]:
    if q.qdisc is None:
        return (-1, -1.0)
    return (_since_start(q.qdisc.requeues_since_start), q.qdisc.requeues_per_s)


def sort_groups(groups: list[QueueGroup], sort_key: str) -> list[QueueGroup]:
    """Order device groups and the queues inside each by ``sort_key`` (largest first)."""
    if sort_key == "device/queue":
        return groups
    group_key: Callable[[QueueGroup], Any]
    queue_key: Callable[[QueueRow], Any]
    if sort_key == "busiest tx":
        group_key, queue_key = _group_tx_bps, _queue_tx_bps
    elif sort_key == "backlog":
        group_key = _group_backlog
        queue_key = lambda q: q.qdisc.backlog_bytes if q.qdisc else -1  # noqa: E731
    elif sort_key == "drops":  # since start, then the rate: a quiet second keeps the order
        group_key, queue_key = _group_drops, _queue_drops
    elif sort_key == "requeues":
        group_key, queue_key = _group_requeues, _queue_requeues
    else:
        raise ValueError(f"unknown sort key {sort_key!r}")
    # sorted() is stable, so ties keep device/queue order.
    return [
        QueueGroup(g.dev, g.device, tuple(sorted(g.queues, key=queue_key, reverse=True)))
        for g in sorted(groups, key=group_key, reverse=True)
    ]


def group_targets(g: QueueGroup) -> list[QueueTarget | None]:
    """The queue each of a group's lines shows (None: the device row over several)."""
    if len(g.queues) == 1:
        return [QueueTarget(g.dev, g.queues[0].queue)]
    return [None, *(QueueTarget(g.dev, q.queue) for q in g.queues)]
