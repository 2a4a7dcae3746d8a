"""The snapshot: one immutable picture of the TX path per tick.

Every source (live collector, replay, demo, fixed test data) produces these; every panel is a
function of one of them. The JSON form (``Snapshot.to_dict``) is a public contract used by
scripts and tests (`txtop --once --format json`) and by recordings: extend it, never rename.

Counters named without a rate suffix are the kernel's cumulative values; ``*_per_s`` are rates
over the last interval; ``bps`` is bits per second (network convention).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from txtop.core.config import (
    DeviceConfig,
    QueueConfig,
    device_config_from_dict,
    queue_config_from_dict,
)
from txtop.core.finding import Finding, findings_from_list

SNAPSHOT_VERSION = 1

# Stage names in TX-path order (kernel tracepoint each comes from):
STAGES: tuple[str, ...] = (
    "sendto",  # syscalls:sys_enter_sendto|sendmsg|sendmmsg (or write) of the sending thread
    "dev_queue",  # net:net_dev_queue (__dev_queue_xmit entry)
    "qdisc_enqueue",  # qdisc:qdisc_enqueue
    "qdisc_dequeue",  # qdisc:qdisc_dequeue
    "start_xmit",  # net:net_dev_start_xmit (just before ndo_start_xmit)
    "xmit",  # net:net_dev_xmit (ndo_start_xmit returned)
    "free",  # skb:consume_skb / skb:kfree_skb (completion on real NICs)
)

TRACK_KINDS = ("complete", "aged", "lost")


@dataclass(frozen=True, slots=True)
class BqlStats:
    """/sys/class/net/<dev>/queues/tx-<n>/byte_queue_limits/* (lib/dynamic_queue_limits.c)."""

    inflight: int
    limit: int
    limit_min: int
    limit_max: int
    hold_time: int  # ms, as sysfs shows it
    stall_thrs: int | None = None  # ms; kernels >= 6.10
    stall_cnt: int | None = None
    stall_max: int | None = None  # ms
    # Sampled between ticks (--bql-hz; core/bqlsample.py), None when not sampled: the largest
    # and the mean ``inflight`` of the interval's samples (the tick's own read included), the
    # share of them at or above ``limit``, how often ``limit`` changed, and how many there were.
    inflight_peak: int | None = None
    inflight_mean: float | None = None
    at_limit_pct: float | None = None
    limit_changes: int | None = None
    samples: int | None = None


@dataclass(frozen=True, slots=True)
class QdiscStats:
    """The qdisc serving one TX queue (tc -s qdisc), read over rtnetlink."""

    kind: str
    handle: str  # "8001:" as tc prints it
    parent: str  # "root" or "8001:3"
    qlen: int
    backlog_bytes: int
    backlog_pkts: int
    drops: int
    requeues: int
    overlimits: int
    bytes: int
    packets: int
    drops_per_s: float = 0.0
    requeues_per_s: float = 0.0
    per_queue: bool = False  # True for an mq/mqprio child: its counters are this queue's alone
    # Counted since txtop first saw this queue (deltas of ``drops``/``requeues``, u32 wraps
    # and a replaced qdisc handled as for the rates); None in recordings made before.
    drops_since_start: int | None = None
    requeues_since_start: int | None = None


@dataclass(frozen=True, slots=True)
class TxStats:
    """Transmit rate of one queue. ``source`` says where the numbers come from."""

    pps: float
    bps: float  # bits per second
    packets: int
    bytes: int
    source: str = "probe"  # "probe" (net_dev_start_xmit counters) | "qdisc" (mq child stats)
    gso_segs: int | None = None
    errors: int | None = None  # net_dev_xmit rc != NETDEV_TX_OK
    stopped: int | None = None  # qdisc_dequeue saw the txq stopped (XOFF)
    errors_per_s: float | None = None
    stopped_per_s: float | None = None
    # True when the probes were attached only part of the interval (trace windows): pps, bps
    # and the per-second rates are extrapolated from the windows; the cumulative counters
    # then count only what passed while attached.
    estimated: bool = False
    # What ``packets``/``pps`` count: "skb" (net_dev_start_xmit calls: the packets handed to
    # the driver, as the device's tx_packets counts them on veth, lo, virtio_net) or "segment"
    # (an mq child's counter: GSO segments, as tc counts them). "" in recordings made before
    # (then "segment" when ``source`` is "qdisc", else "skb"; see ``packet_unit``).
    packets_unit: str = ""
    # The same two units side by side, None when not known: packets handed to the driver per
    # second (from the probes; ``skbs_estimated`` when extrapolated from trace windows) and
    # GSO segments per second (the probes' gso_segs, or an mq child's packet counter).
    skbs_per_s: float | None = None
    segs_per_s: float | None = None
    skbs_estimated: bool = False

    @property
    def packet_unit(self) -> str:
        """``packets_unit``, or for a recording made before it the unit its source implies."""
        if self.packets_unit:
            return self.packets_unit
        return "segment" if self.source == "qdisc" else "skb"


@dataclass(frozen=True, slots=True)
class LatencyStats:
    p50: int
    p90: int
    p99: int
    max: int
    count: int


@dataclass(frozen=True, slots=True)
class Talker:
    """A flow or a process carrying traffic through one TX queue over the recent window: an
    estimate from the sampled packets, each counted 1/p times for the probability p it had to
    be sampled (core/talkers.py). Rates are per second of the window; bytes are the skbs'
    lengths at net_dev_queue (the L2 frame, a GSO super-packet whole), packets are skbs; both
    count what went through (not dropped), drops what was dropped instead."""

    kind: str  # "flow" | "process"
    name: str  # the flow as text ("10.0.0.1:43512>10.0.0.2:5201 tcp") or "comm[pid]"
    packets_per_s: float
    bytes_per_s: float
    drops_per_s: float  # ended in kfree_skb instead (a qdisc drop, ...)
    share_pct: float  # of the queue's estimated bytes
    samples: int  # sampled packets behind the estimate
    wait_p50_ns: int | None = None  # qdisc wait (qdisc_enqueue -> qdisc_dequeue) of its samples
    wait_p99_ns: int | None = None
    flow: FlowInfo | None = None  # kind "flow"
    owner: PacketOwner | None = None  # the process; for a flow, its most frequent sender
    window_s: float = 0.0  # seconds of traffic the estimate covers
    estimated: bool = True  # always: shown with "~"


@dataclass(frozen=True, slots=True)
class BypassStats:
    """How the sampled packets of one TX queue passed its qdisc over the latency window: of
    ``sampled`` complete tracks that reached the driver, ``bypassed`` went straight to it
    without an enqueue (TCQ_F_CAN_BYPASS: an empty pfifo/pfifo_fast is skipped), so they
    have no qdisc wait to sample."""

    sampled: int
    bypassed: int


@dataclass(frozen=True, slots=True)
class QueueRow:
    dev: str
    ifindex: int
    queue: int
    bql: BqlStats | None  # None: the device has no BQL (veth, lo, ...)
    qdisc: QdiscStats | None
    tx: TxStats | None
    latency_ns: Mapping[str, LatencyStats] = field(default_factory=dict)
    # Top talkers of the recent window, most bytes first (estimates, see Talker); empty when
    # nothing was sampled there or the source does not say (older recordings).
    flows: tuple[Talker, ...] = ()
    processes: tuple[Talker, ...] = ()
    # The queue's knobs (core/config.py), read at start and on change; None when not read.
    config: QueueConfig | None = None
    # None without probes, or when the queue has no qdisc a packet could bypass.
    bypass: BypassStats | None = None
    # The network namespace the device lives in (--netns, its label; ``dev`` is then
    # "<netns>/<name>"); None for txtop's own namespace.
    netns: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """Device-wide numbers from /sys/class/net/<dev>/statistics (ndo_get_stats64)."""

    dev: str
    ifindex: int
    tx_queues: int
    has_bql: bool
    oper_state: str
    root_qdisc: str | None
    tx_packets: int
    tx_bytes: int
    tx_dropped: int
    tx_errors: int
    tx_pps: float
    tx_bps: float
    # The device's knobs (core/config.py), read at start and on change; None when not read.
    config: DeviceConfig | None = None
    netns: str | None = None  # as QueueRow.netns


@dataclass(frozen=True, slots=True)
class CpuRow:
    cpu: int
    net_tx_per_s: float  # /proc/softirqs NET_TX delta
    net_rx_per_s: float  # /proc/softirqs NET_RX delta
    # Share of the interval in softirq context: /proc/stat's softirq ticks, or the probes'
    # NET_TX + NET_RX time when that is larger (``softirq_pct_source``), so the parts below
    # never exceed it.
    softirq_pct: float
    softnet_processed_per_s: float  # /proc/net/softnet_stat column 1
    softnet_dropped: int  # column 2 (cumulative)
    time_squeeze: int  # column 3 (cumulative)
    softnet_dropped_per_s: float = 0.0
    time_squeeze_per_s: float = 0.0
    net_tx_time_pct: float | None = None  # irq:softirq_entry/exit, from the probes
    net_rx_time_pct: float | None = None
    # /proc/stat's own share (USER_HZ ticks), what one tick is worth in percent of this
    # interval (its resolution), and which of the two set ``softirq_pct``: "stat" or "probes".
    # None / "" in recordings made before.
    softirq_stat_pct: float | None = None
    softirq_pct_resolution: float | None = None
    softirq_pct_source: str = ""


@dataclass(frozen=True, slots=True)
class FlowInfo:
    """A sampled packet's flow, read from its own headers at net_dev_queue.

    ``l3`` names the network header: "ipv4", "ipv6", or for non-IP packets the ethertype's name
    ("arp") or number ("0x88cc", then no addresses). Ports are None for protocols without them
    and for fragments; ICMP/ICMPv6 carry their type and code instead. ``encap``: these are the
    outer headers of a tunnel (VXLAN, Geneve, GRE, IPIP, ...), not the inner packet's."""

    l3: str
    saddr: str | None = None
    daddr: str | None = None
    l4_proto: int | None = None  # IPPROTO_*
    sport: int | None = None
    dport: int | None = None
    tcp_flags: int | None = None  # the TCP header's flag byte (FIN 0x01 ... CWR 0x80)
    vlan: int | None = None  # 802.1Q VLAN id when the packet is tagged
    encap: bool = False
    icmp_type: int | None = None
    icmp_code: int | None = None
    fragment: bool = False  # an IP fragment without its L4 header


@dataclass(frozen=True, slots=True)
class PacketOwner:
    """Who sent a sampled packet, and how that was found (``via``): "syscall" (the packet left
    inside its sender's send syscall), "socket" (the last process seen sending on the packet's
    socket, e.g. a TCP segment sent from softirq), "kernel" (no socket, or none anybody was
    seen sending on: forwarded packets, kernel replies, ARP; pid 0)."""

    pid: int
    tid: int
    comm: str
    cgroup: str | None  # the sender's cgroup v2 path (/system.slice/x.service), when known
    via: str
    cgroup_id: int | None = None  # the id the path was resolved from (its cgroupfs inode)


@dataclass(frozen=True, slots=True)
class PacketTrace:
    """One sampled packet's path, decoded from a ring-buffer record."""

    pid: int  # tgid of the sender (owner.pid), 0 when unknown
    tid: int
    comm: str
    dev: str
    ifindex: int
    queue: int | None
    len: int
    gso_segs: int
    stages: Mapping[str, int]  # stage -> CLOCK_MONOTONIC ns; absent stages omitted
    cpus: Mapping[str, int]  # stage -> CPU it ran on
    track: str  # "complete" | "aged" | "lost"
    protocol: int | None = None  # ethertype from net_dev_start_xmit
    xmit_rc: int | None = None
    txq_state: int | None = None  # qdisc_dequeue's txq_state bits
    free_kind: str | None = None  # "consume" | "drop"
    drop_reason: str | None = None
    free_location: str | None = None  # kernel symbol+off of the freeing call site
    syscall: str | None = None  # "sendto", "sendmsg", ...
    syscall_exit_ns: int | None = None
    l4_proto: int | None = None  # IPPROTO_* when known (flow.l4_proto)
    sport: int | None = None  # flow.sport
    dport: int | None = None  # flow.dport, else the port the sender's sendto() named
    sample_every: int | None = None  # the sampling settings in force when it was taken
    sample_max_per_s: int | None = None
    flow: FlowInfo | None = None  # None: headers not read (no BTF, older recordings)
    owner: PacketOwner | None = None  # None: unknown (no BTF and no syscall tie, older ones)
    # The device's network namespace: its label (--netns; ``dev`` is then "<netns>/<name>"),
    # None for txtop's own; and its inode as the probes read it (net->ns.inum), 0 for txtop's
    # own namespace or where the probes could not read it (no BTF offsets).
    netns: str | None = None
    netns_inode: int = 0

    @property
    def first_ns(self) -> int:
        return min(self.stages.values()) if self.stages else 0

    @property
    def last_ns(self) -> int:
        return max(self.stages.values()) if self.stages else 0

    @property
    def total_ns(self) -> int:
        return self.last_ns - self.first_ns


@dataclass(frozen=True, slots=True)
class ProbeStatus:
    state: str  # "running" | "unavailable" | "starting" | "off"
    reason: str = ""
    lost_events: int = 0  # txtop's own pipeline: ring buffer full, track table full, lost tracks
    breakdown: Mapping[str, int] = field(default_factory=dict)  # per-probe counters of both
    # Tracepoint runs the kernel skipped because another BPF program was running on that CPU
    # (bpf_prog_info.recursion_misses, "skipped:<program>" in the breakdown).
    skipped_runs: int = 0
    sampling: Mapping[str, int] = field(default_factory=dict)  # {"every": N, "max_per_s": R}
    unavailable: Mapping[str, str] = field(default_factory=dict)  # stage/counter -> reason
    notice: str = ""  # e.g. "using fallback kernel headers from ..."
    filters: Mapping[str, Any] = field(default_factory=dict)
    # Trace windows (probes/bpf/duty.py): "auto" | "fixed" ("" before the tracer ran, or from a
    # recording made before windows existed); the duty in force (100 = always attached); and
    # the share of the last interval the per-packet probes really were attached. Below 100,
    # per-queue probe rates and softirq time shares are estimates from the windows.
    trace_mode: str = ""
    trace_duty_pct: float | None = None
    traced_pct: float | None = None
    trace_period_s: float | None = None  # from one window to the next; None: continuous
    # napi:dql_stall_detected since the probes started (BQL saw a queue stall; the tracepoint
    # names no device, per-queue counts are BqlStats.stall_cnt); None: not traced here.
    bql_stalls: int | None = None
    # The form each tracepoint hook is attached in: "category:event" -> "raw" (a raw
    # tracepoint reading its arguments through BTF offsets) or "classic" (the perf record of
    # the tracepoint's fields: dearer per packet, and its detach waits for RCU).
    hooks: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReplayPosition(Mapping[str, Any]):
    """Where a replayed snapshot sits in its recording (``Snapshot.replay``).

    Made in one place, ``recordings.replay.Timeline.position``. It also reads as the mapping of
    its JSON form (``replay["at_s"]``, ``replay.get("paused")``), which leaves ``window`` out
    when it is None.
    """

    index: int  # the frame, from 0
    count: int  # frames in the recording
    at_s: float  # seconds from the start of the recording to the end of this frame
    total_s: float  # the recording's length in seconds
    speed: float | None  # None when not played in time (--once, --headless)
    paused: bool
    damage: str  # why the recording ends early, "" when it is intact
    notice: str  # a line about the recording for the header, "" when none
    jump: bool  # does not follow the frame before it (a seek, a step back, a loop)
    window: str | None = None  # --once only: "all" (the whole recording) or "frame"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReplayPosition:
        """From the JSON form. Raises TypeError or KeyError on a malformed one."""
        position: ReplayPosition = _build(cls, data)
        return position

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self}

    def __iter__(self) -> Iterator[str]:
        return (name for name in _REPLAY_FIELDS if name != "window" or self.window is not None)

    def __len__(self) -> int:
        return len(_REPLAY_FIELDS) - (self.window is None)

    def __getitem__(self, key: str) -> Any:
        if key not in _REPLAY_FIELDS or (key == "window" and self.window is None):
            raise KeyError(key)
        return getattr(self, key)


_REPLAY_FIELDS = tuple(f.name for f in dataclasses.fields(ReplayPosition))


@dataclass(frozen=True, slots=True)
class Snapshot:
    host: str
    kernel: str
    time: float  # wall clock, epoch seconds, at the end of the interval
    mono_ns: int  # CLOCK_MONOTONIC at the same moment (packet stages use this clock)
    interval_s: float
    mode: str  # "live" | "replay" | "demo"
    interfaces: tuple[str, ...]
    devices: tuple[DeviceRow, ...]
    queues: tuple[QueueRow, ...]
    cpus: tuple[CpuRow, ...]
    packets: tuple[PacketTrace, ...]
    probes: ProbeStatus
    latency_ns: Mapping[str, LatencyStats] = field(default_factory=dict)
    replay: ReplayPosition | None = None  # when the snapshot comes from a recording
    version: int = SNAPSHOT_VERSION
    # What looks wrong (core/findings.py), active and recently cleared; None when no rules
    # ran for this snapshot (a recording made before findings existed, a test source).
    findings: tuple[Finding, ...] | None = None

    def __post_init__(self) -> None:
        # A replay position given in its JSON form (a plain mapping) is read into its type.
        replay: object = self.replay
        if isinstance(replay, Mapping) and not isinstance(replay, ReplayPosition):
            object.__setattr__(self, "replay", ReplayPosition.from_dict(replay))

    def to_dict(self) -> dict[str, Any]:
        return _to_jsonable(self)  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Snapshot:
        """Rebuild a snapshot from its JSON form. Raises ValueError on malformed input."""
        try:
            return _snapshot_from_dict(data)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed snapshot: {exc!r}") from None


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, ReplayPosition):
        return obj.to_dict()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    return obj


# Scalar field types as written in the annotations above (``from __future__`` keeps them as
# strings); nested dataclasses, mappings and tuples are checked by their own builders.
_SCALARS: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "None": (type(None),),
}


def _check_scalars(cls: type, kwargs: Mapping[str, Any]) -> None:
    """A recording is untrusted input: a wrongly typed scalar must not reach the panels."""
    for f in dataclasses.fields(cls):
        if f.name not in kwargs or not isinstance(f.type, str):
            continue
        parts = [p.strip() for p in f.type.split("|")]
        if not all(p in _SCALARS for p in parts):
            continue
        value = kwargs[f.name]
        allowed = tuple(t for p in parts for t in _SCALARS[p])
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise TypeError(f"{cls.__name__}.{f.name}: {type(value).__name__} is not {f.type}")


def _build(cls: type, data: Mapping[str, Any], **nested: Any) -> Any:
    """Construct a dataclass from a dict, ignoring unknown keys (newer writers may add some)."""
    if not isinstance(data, Mapping):
        raise TypeError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in data.items() if k in names}
    kwargs.update(nested)
    _check_scalars(cls, kwargs)
    return cls(**kwargs)


def _latency(data: Mapping[str, Any] | None) -> dict[str, LatencyStats]:
    return {str(k): _build(LatencyStats, v) for k, v in (data or {}).items()}


def _talkers(data: Any) -> tuple[Talker, ...]:
    return tuple(
        _build(
            Talker,
            t,
            flow=_build(FlowInfo, t["flow"]) if t.get("flow") else None,
            owner=_build(PacketOwner, t["owner"]) if t.get("owner") else None,
        )
        for t in data or ()
    )


def _snapshot_from_dict(d: Mapping[str, Any]) -> Snapshot:
    queues = []
    for q in d["queues"]:
        queues.append(
            _build(
                QueueRow,
                q,
                bql=_build(BqlStats, q["bql"]) if q.get("bql") else None,
                qdisc=_build(QdiscStats, q["qdisc"]) if q.get("qdisc") else None,
                tx=_build(TxStats, q["tx"]) if q.get("tx") else None,
                latency_ns=_latency(q.get("latency_ns")),
                flows=_talkers(q.get("flows")),
                processes=_talkers(q.get("processes")),
                config=queue_config_from_dict(q.get("config")),
                bypass=_build(BypassStats, q["bypass"]) if q.get("bypass") else None,
            )
        )
    packets = [
        _build(
            PacketTrace,
            p,
            stages=dict(p["stages"]),
            cpus=dict(p.get("cpus") or {}),
            flow=_build(FlowInfo, p["flow"]) if p.get("flow") else None,
            owner=_build(PacketOwner, p["owner"]) if p.get("owner") else None,
        )
        for p in d.get("packets") or ()
    ]
    snapshot: Snapshot = _build(
        Snapshot,
        d,
        interfaces=tuple(d.get("interfaces") or ()),
        devices=tuple(
            _build(DeviceRow, x, config=device_config_from_dict(x.get("config")))
            for x in d.get("devices") or ()
        ),
        queues=tuple(queues),
        cpus=tuple(_build(CpuRow, c) for c in d["cpus"]),
        packets=tuple(packets),
        probes=_build(ProbeStatus, d["probes"]),
        latency_ns=_latency(d.get("latency_ns")),
        replay=ReplayPosition.from_dict(d["replay"]) if d.get("replay") is not None else None,
        findings=findings_from_list(d.get("findings")),
    )
    return snapshot
