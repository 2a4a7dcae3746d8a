"""Families about txtop itself: build info, the exporter's own state, what txtop costs (its
process CPU time and memory, the kernel's run time of its BPF programs)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import psutil
from prometheus_client.core import InfoMetricFamily

from txtop.core.model import ProbeStatus
from txtop.exporters.families import PREFIX, Families
from txtop.exporters.view import MetricsView


def txtop_version() -> str:
    try:
        return metadata.version("txtop")
    except metadata.PackageNotFoundError:
        return "unknown"


_FALLBACK_HEADERS = re.compile(r"using (\S+) via BCC_KERNEL_SOURCE=")


def headers_label(probes: ProbeStatus) -> str:
    """Which kernel headers the probes were compiled against, from the probe status line:
    the fallback package's directory name (probes/bpf/headers.py ``HeaderPlan.notice``),
    ``user`` (BCC_KERNEL_SOURCE set by the user), ``kernel`` (the running kernel's own
    headers or kheaders), ``none`` (probes unavailable) or ``unknown``."""
    match = _FALLBACK_HEADERS.search(probes.notice)
    if match:
        return match.group(1)
    if "BCC_KERNEL_SOURCE=" in probes.notice:
        return "user"
    if probes.state == "running":
        return "kernel"
    if probes.state == "unavailable":
        return "none"
    return "unknown"


def self_families(fams: Families, version: str, view: MetricsView | None) -> None:
    """Build info, failed publishes and, once there is a snapshot, its time and interval."""
    snap = view.snapshot if view is not None else None
    info = InfoMetricFamily(
        PREFIX,
        "txtop build and what it watches: version, running kernel, kernel headers the "
        "probes were compiled against.",
        labels=["version", "kernel", "headers"],
    )
    info.add_metric(
        [
            version,
            snap.kernel if snap is not None else os.uname().release,
            view.headers if view is not None else "unknown",
        ],
        {},
    )
    fams.out.append(info)
    errors = fams.counter(
        "exporter_publish_errors",
        "Snapshots the exporter failed to account (it keeps the previous one; see txtop's log).",
    )
    errors.add_metric([], view.publish_errors if view is not None else 0)
    if snap is None:
        return
    fams.gauge(
        "snapshot_timestamp_seconds",
        "Wall-clock time (Unix epoch) at the end of the latest snapshot's interval.",
        unit="seconds",
    ).add_metric([], snap.time)
    fams.gauge(
        "snapshot_interval_seconds",
        "Length of the latest snapshot's interval.",
        unit="seconds",
    ).add_metric([], snap.interval_s)


class ProcessFamilies:
    """txtop's own CPU time and resident memory (the psutil handle is kept between scrapes)."""

    def __init__(self) -> None:
        self._process: psutil.Process | None = None

    def add_to(self, fams: Families) -> None:
        try:
            if self._process is None:
                self._process = psutil.Process()
            proc = self._process
            with proc.oneshot():
                times = proc.cpu_times()
                rss = proc.memory_info().rss
        except psutil.Error:
            return
        fams.counter(
            "process_cpu_seconds",
            "CPU time (user + system) txtop itself has used, BPF programs run by the kernel "
            "excluded (see txtop_bpf_run_time_seconds_total).",
            unit="seconds",
        ).add_metric([], times.user + times.system)
        fams.gauge(
            "process_resident_memory_bytes",
            "Resident memory of the txtop process.",
            unit="bytes",
        ).add_metric([], rss)


# ---- BPF run time (kernel.bpf_stats_enabled) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class BpfProgram:
    prog_id: int
    tag: str
    run_time_ns: int
    run_cnt: int


def bpf_programs(proc_root: Path) -> tuple[BpfProgram, ...]:
    """The BPF programs this process holds, with their run time, when the user has enabled
    ``kernel.bpf_stats_enabled`` (``()`` otherwise: the kernel then counts nothing)."""
    try:
        if (proc_root / "sys/kernel/bpf_stats_enabled").read_text().strip() != "1":
            return ()
        fds = os.listdir(proc_root / "self/fd")
    except OSError:
        return ()
    seen: dict[int, BpfProgram] = {}
    for fd in fds:
        prog = _bpf_program(proc_root, fd)
        if prog is not None:
            seen[prog.prog_id] = prog
    return tuple(seen[k] for k in sorted(seen))


def _bpf_program(proc_root: Path, fd: str) -> BpfProgram | None:
    """The BPF program behind file descriptor ``fd`` (None: not one, or closed meanwhile)."""
    try:
        if os.readlink(proc_root / "self/fd" / fd) != "anon_inode:bpf-prog":
            return None
        text = (proc_root / "self/fdinfo" / fd).read_text()
    except OSError:
        return None  # closed meanwhile
    fields = dict(
        (parts[0].rstrip(":"), parts[1])
        for parts in (line.split() for line in text.splitlines())
        if len(parts) >= 2
    )
    try:
        return BpfProgram(
            prog_id=int(fields["prog_id"]),
            tag=fields.get("prog_tag", ""),
            run_time_ns=int(fields.get("run_time_ns", "0")),
            run_cnt=int(fields.get("run_cnt", "0")),
        )
    except (KeyError, ValueError):
        return None


def bpf_families(fams: Families, programs: tuple[BpfProgram, ...]) -> None:
    if not programs:
        return
    run_time = fams.counter(
        "bpf_run_time_seconds",
        "Time the kernel spent running each of txtop's BPF programs since kernel.bpf_stats_enabled "
        "was set (id and tag as `bpftool prog show` prints them).",
        ["id", "tag"],
        unit="seconds",
    )
    runs = fams.counter(
        "bpf_runs",
        "Runs of each of txtop's BPF programs since kernel.bpf_stats_enabled was set.",
        ["id", "tag"],
    )
    for p in programs:
        labels = [str(p.prog_id), p.tag]
        run_time.add_metric(labels, p.run_time_ns / 1e9)
        runs.add_metric(labels, p.run_cnt)
