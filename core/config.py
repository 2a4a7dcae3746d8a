"""The TX path's configuration, read-only: what an operator can turn, beside the live numbers.

Plain, immutable types (no I/O). The readers in probes/readers/ (netconf, ethtool, irqs,
qdisc_options; orchestrated by probes/readers/config.py) fill them from sysfs, procfs, the
ETHTOOL ioctl and rtnetlink, once at start and again when something changed, never every tick.
``attach_config`` puts them on the snapshot's rows: ``DeviceRow.config`` and ``QueueRow.config``
(JSON ``devices[].config``, ``queues[].config``).

Every value that could not be read is None, and ``unavailable`` says why (a software device has
no rings, a single-queue device has no XPS map, an older kernel lacks a file). Nothing here ever
changes a setting: ``commands`` gives the command an operator would type to look or change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # model.py imports this module's types; the rows are only annotations here
    from txtop.core.model import DeviceRow, QueueRow

# include/net/sch_generic.h qdiscs that are a plain FIFO: no per-flow fairness, no AQM.
FIFO_QDISCS = frozenset({"pfifo", "bfifo", "pfifo_fast", "pfifo_head_drop"})
# Qdiscs that take their packet limit from the device's txqueuelen when created without one
# (net/sched/sch_fifo.c fifo_init: limit = qdisc_dev(sch)->tx_queue_len), or always use it
# (sch_generic.c pfifo_fast: its rings are sized by tx_queue_len and follow a change of it).
TXQUEUELEN_QDISCS = frozenset({"pfifo", "pfifo_fast"})
# Qdiscs whose job is to hold packets back to a rate (their wait is shaping, not bloat).
SHAPING_QDISCS = frozenset({"tbf", "htb", "hfsc", "cbq", "cake"})
# Qdiscs with an active queue manager or pacing already (fq_codel, fq, codel, pie, cake, sfq...).
AQM_QDISCS = frozenset({"fq_codel", "fq", "codel", "pie", "fq_pie", "cake", "sfq", "red", "choke"})

# The sysctls of net.core that steer the TX/RX softirq work (Documentation/admin-guide/sysctl/
# net.rst). System-wide: every device's config carries the same values.
SYSCTLS: tuple[str, ...] = (
    "net.core.default_qdisc",
    "net.core.netdev_budget",
    "net.core.netdev_budget_usecs",
    "net.core.dev_weight",
    "net.core.dev_weight_tx_bias",
    "net.core.netdev_max_backlog",
)

# The offloads ``ethtool -k`` prints under these legacy names, each standing for a group of
# feature bits (net/ethtool/common.c netdev_features_strings): on when any bit of it is active.
OFFLOADS: tuple[str, ...] = (
    "tcp-segmentation-offload",
    "generic-segmentation-offload",
    "generic-receive-offload",
    "large-receive-offload",
    "scatter-gather",
    "tx-checksumming",
)


@dataclass(frozen=True, slots=True)
class IrqInfo:
    """One interrupt of a device, from /proc/interrupts and /proc/irq/<n>/."""

    irq: int
    name: str  # the action name in /proc/interrupts ("virtio2-output.0", "eth0-TxRx-3")
    role: str  # "tx" | "rx" | "txrx" | "other" (config, link, mailbox...) | "unknown"
    queue: int | None  # the queue its name gives, None when the name gives none
    affinity: str  # smp_affinity_list, as the kernel prints it ("0-1"); "" when unreadable
    effective: str | None = None  # effective_affinity_list (where it really lands), if present
    count: int = 0  # interrupts so far, summed over CPUs


@dataclass(frozen=True, slots=True)
class QdiscConfig:
    """A qdisc's parameters (TCA_OPTIONS of an RTM_GETQDISC dump), as far as txtop decodes
    them: the limit that decides when it drops, and a one-line summary of the rest."""

    kind: str
    handle: str  # "8001:" as tc prints it
    parent: str  # "root" or "1:3"
    limit: int | None = None  # None: the kind has no limit txtop knows, or none was sent
    limit_unit: str = ""  # "packets" | "bytes" | ""
    params: str = ""  # e.g. "rate 8Mbit burst 4096b limit 200000b" (tc's words)


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """One TX queue's knobs: /sys/class/net/<dev>/queues/tx-<n>/ and the qdisc serving it."""

    xps_cpus: str | None = None  # CPUs XPS maps to this queue, as a list ("0-1"; "" = none)
    xps_rxqs: str | None = None  # RX queues XPS maps to it (a list of queue numbers)
    tx_maxrate: int | None = None  # Mbit/s, 0 = no limit (tx_maxrate)
    traffic_class: str | None = None  # "0" or "0-1" (mqprio subordinate channels)
    bql_limit_min: int | None = None  # bytes
    bql_limit_max: int | None = None  # bytes
    bql_hold_time: int | None = None  # ms
    irqs: tuple[int, ...] = ()  # the interrupts whose name says they serve this queue
    irq_cpus: str | None = None  # where those interrupts may run (their affinity lists, joined)
    qdisc: QdiscConfig | None = None  # the qdisc serving this queue (an mq child, or the root)
    unavailable: Mapping[str, str] = field(default_factory=dict)  # what -> why not


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """One device's knobs. ``sysctl`` holds the system-wide net.core values (same on every
    device: the softirq budget is per CPU, not per device)."""

    txqueuelen: int | None = None
    mtu: int | None = None
    driver: str | None = None  # the driver's name (device/driver link, or ETHTOOL_GDRVINFO)
    bus_info: str | None = None  # "0000:00:03.0" for a PCI function
    tx_ring: int | None = None  # descriptors (ETHTOOL_GRINGPARAM)
    tx_ring_max: int | None = None
    rx_ring: int | None = None
    rx_ring_max: int | None = None
    channels: Mapping[str, int] = field(default_factory=dict)  # ETHTOOL_GCHANNELS, non-zero
    coalesce: Mapping[str, int] = field(default_factory=dict)  # ETHTOOL_GCOALESCE (see readers)
    offloads: Mapping[str, bool] = field(default_factory=dict)  # OFFLOADS names -> on
    irqs: tuple[IrqInfo, ...] = ()  # every interrupt found for the device
    irq_match: str = ""  # how interrupts were matched to queues, or why they could not be
    root_qdisc: QdiscConfig | None = None
    sysctl: Mapping[str, str] = field(default_factory=dict)  # SYSCTLS name -> value as read
    read_at: float = 0.0  # epoch seconds of the read these values come from
    unavailable: Mapping[str, str] = field(default_factory=dict)  # what -> why not

    def sysctl_int(self, name: str) -> int | None:
        value = self.sysctl.get(name, "")
        return int(value) if value.isdigit() else None


@dataclass(frozen=True, slots=True)
class ConfigReading:
    """What one configuration read produced: per device name, per (device, TX queue)."""

    devices: Mapping[str, DeviceConfig] = field(default_factory=dict)
    queues: Mapping[tuple[str, int], QueueConfig] = field(default_factory=dict)
    # (ifindex, handle) -> decoded parameters of every qdisc the dump held.
    qdiscs: Mapping[tuple[int, str], QdiscConfig] = field(default_factory=dict)
    read_at: float = 0.0


# ---- CPU lists --------------------------------------------------------------------------------


def parse_cpu_list(text: str | None) -> frozenset[int]:
    """The CPUs of a kernel CPU list ("0-3,8,10-11"; "" = none; ASCII digits only, no empty
    part). Raises ValueError on junk."""
    out: set[int] = set()
    if not text or not text.strip():
        return frozenset()
    for part in text.strip().split(","):
        lo, sep, hi = part.partition("-")
        if not (lo.isdigit() and lo.isascii()) or (sep and not (hi.isdigit() and hi.isascii())):
            raise ValueError(f"not a CPU list: {text[:40]!r}")
        first, last = int(lo), int(hi) if sep else int(lo)
        if last < first or last - first > 1 << 16:
            raise ValueError(f"not a CPU list: {text[:40]!r}")
        out.update(range(first, last + 1))
    return frozenset(out)


def format_cpu_list(cpus: Iterable[int]) -> str:
    """A set of CPU (or queue) numbers as the kernel prints lists: "0-3,8"."""
    ordered = sorted(set(cpus))
    runs: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        runs.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(runs)


def xps_queue_of_cpu(cpu: int, queues: Mapping[int, QueueConfig]) -> list[int]:
    """The TX queues XPS may pick for a sender on ``cpu`` (from each queue's xps_cpus)."""
    out = []
    for index, qc in sorted(queues.items()):
        try:
            if cpu in parse_cpu_list(qc.xps_cpus):
                out.append(index)
        except ValueError:
            continue
    return out


# ---- commands (txtop never runs them; they are shown for the operator) ------------------------


def queue_sysfs(dev: str, queue: int, name: str) -> str:
    return f"/sys/class/net/{dev}/queues/tx-{queue}/{name}"


def describe_qdisc(qc: QdiscConfig | None, kind: str = "") -> str:
    """ "tbf 1:2 (limit 3000 bytes)" or just the kind when nothing more is known."""
    if qc is None:
        return kind or "qdisc"
    limit = f" (limit {qc.limit} {qc.limit_unit})" if qc.limit is not None else ""
    return f"{qc.kind} {qc.handle}{limit}"


# ---- onto the rows ----------------------------------------------------------------------------


def attach_config(
    devices: Sequence[DeviceRow], queues: Sequence[QueueRow], reading: ConfigReading | None
) -> tuple[tuple[DeviceRow, ...], tuple[QueueRow, ...]]:
    """``devices`` and ``queues`` (DeviceRow, QueueRow) with their ``config`` set from
    ``reading``; each queue's ``config.qdisc`` becomes the parameters of the qdisc its row shows
    (looked up by handle, so a qdisc replaced since the read shows no stale limit)."""
    if reading is None:
        return tuple(devices), tuple(queues)
    ifindex_of = {d.dev: d.ifindex for d in devices}
    out_devices: list[DeviceRow] = []
    for row in devices:
        dc = reading.devices.get(row.dev)
        if dc is not None and row.root_qdisc is not None:
            root = next(
                (
                    q
                    for (ifx, _), q in reading.qdiscs.items()
                    if ifx == row.ifindex and q.parent == "root"
                ),
                None,
            )
            if root is not None and root.kind != row.root_qdisc:
                root = None  # replaced after the read: the next read brings the new one
            dc = dataclasses.replace(dc, root_qdisc=root)
        out_devices.append(dataclasses.replace(row, config=dc) if dc is not None else row)
    out_queues: list[QueueRow] = []
    for qrow in queues:
        qc = reading.queues.get((qrow.dev, qrow.queue))
        if qc is not None:
            qd = None
            if qrow.qdisc is not None:
                ifindex = ifindex_of.get(qrow.dev, qrow.ifindex)
                found = reading.qdiscs.get((ifindex, qrow.qdisc.handle))
                if found is not None and found.kind == qrow.qdisc.kind:
                    qd = found
            qrow = dataclasses.replace(qrow, config=dataclasses.replace(qc, qdisc=qd))
        out_queues.append(qrow)
    return tuple(out_devices), tuple(out_queues)


# ---- JSON ------------------------------------------------------------------------------------


def _build(cls: type, data: Any, **nested: Any) -> Any:
    # model.py's builder (unknown keys ignored, scalar types checked: a recording is untrusted
    # input); imported here, not at the top, because model.py imports this module's types.
    from txtop.core.model import _build as build

    return build(cls, data, **nested)


def _typed_map(data: Any, kind: type, what: str) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, Mapping) or not all(
        isinstance(k, str) and isinstance(v, kind) and (kind is bool or not isinstance(v, bool))
        for k, v in data.items()
    ):
        raise TypeError(f"{what}: expected an object of {kind.__name__} values")
    return dict(data)


def qdisc_config_from_dict(data: Any) -> QdiscConfig | None:
    if data is None:
        return None
    config: QdiscConfig = _build(QdiscConfig, data)
    return config


def queue_config_from_dict(data: Any) -> QueueConfig | None:
    """QueueConfig from its JSON form (None stays None). TypeError/KeyError when malformed."""
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise TypeError(f"QueueConfig: expected an object, got {type(data).__name__}")
    irqs = data.get("irqs") or ()
    if not isinstance(irqs, (list, tuple)) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in irqs
    ):
        raise TypeError("QueueConfig.irqs: expected a list of integers")
    config: QueueConfig = _build(
        QueueConfig,
        data,
        irqs=tuple(irqs),
        qdisc=qdisc_config_from_dict(data.get("qdisc")),
        unavailable=_typed_map(data.get("unavailable"), str, "QueueConfig.unavailable"),
    )
    return config


def device_config_from_dict(data: Any) -> DeviceConfig | None:
    """DeviceConfig from its JSON form (None stays None). TypeError/KeyError when malformed."""
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise TypeError(f"DeviceConfig: expected an object, got {type(data).__name__}")
    irqs = data.get("irqs") or ()
    if not isinstance(irqs, (list, tuple)):
        raise TypeError("DeviceConfig.irqs: expected a list")
    config: DeviceConfig = _build(
        DeviceConfig,
        data,
        irqs=tuple(_build(IrqInfo, item) for item in irqs),
        root_qdisc=qdisc_config_from_dict(data.get("root_qdisc")),
        channels=_typed_map(data.get("channels"), int, "DeviceConfig.channels"),
        coalesce=_typed_map(data.get("coalesce"), int, "DeviceConfig.coalesce"),
        offloads=_typed_map(data.get("offloads"), bool, "DeviceConfig.offloads"),
        sysctl=_typed_map(data.get("sysctl"), str, "DeviceConfig.sysctl"),
        unavailable=_typed_map(data.get("unavailable"), str, "DeviceConfig.unavailable"),
    )
    return config
