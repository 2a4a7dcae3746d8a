"""txtop's own probes: events lost to a full ring buffer or track table, and tracepoint
runs the kernel skipped."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from txtop.core.finding import Finding, Subject
from txtop.core.findings.context import Context, _rate, _round
from txtop.core.findings.thresholds import (
    OVERFLOW_KEYS,
    PROBE_LOSS_HOLD_PER_S,
    PROBE_LOSS_RAISE_PER_S,
    PROBE_SKIP_HOLD_PER_S,
    PROBE_SKIP_RAISE_PER_S,
)

# ---- txtop's own probes -------------------------------------------------------------------


def _overflow(breakdown: Mapping[str, int]) -> int:
    return sum(v for k, v in breakdown.items() if k.startswith(OVERFLOW_KEYS))


def probes(ctx: Context) -> Iterator[Finding]:
    """txtop's probes losing events: the BPF ring buffer or track table was full when a
    sampled packet's record was reserved (bpf_ringbuf_reserve failed): sampling too often for
    how fast records are drained. Skipped runs: the kernel did not run a tracepoint program
    because another BPF program was running on that CPU (bpf_prog_info.recursion_misses)."""
    recent = [s for s in ctx.recent() if s.probes.state == "running"]
    if len(recent) < 2:
        return
    first, last = recent[0], recent[-1]
    span = sum(s.interval_s for s in recent[1:])
    if span <= 0:
        return
    subject = Subject("probes")
    lost = _overflow(last.probes.breakdown) - _overflow(first.probes.breakdown)
    lost_rate = max(0, lost) / span
    active = ctx.active("probe_losses", subject)
    if lost_rate >= (PROBE_LOSS_HOLD_PER_S if active else PROBE_LOSS_RAISE_PER_S):
        every = int(last.probes.sampling.get("every", 0) or 0)
        yield Finding(
            id="probe_losses",
            severity="warn",
            subject=subject,
            summary=f"probes lose {_rate(lost_rate)} events/s (ring buffer or track table full): sampling too aggressive",
            evidence={
                "lost_per_s": _round(lost_rate),
                "lost_events": last.probes.lost_events,
                "sample_every": every or None,
                "max_per_s": last.probes.sampling.get("max_per_s"),
            },
            knob="sampling: trace fewer packets (--sample N, or ] in the waterfall), --max-samples-per-s",
            command=f"txtop --sample {max(every, 1) * 4}",
        )
    skipped = last.probes.skipped_runs - first.probes.skipped_runs
    skip_rate = max(0, skipped) / span
    active = ctx.active("probe_skipped", subject)
    if skip_rate >= (PROBE_SKIP_HOLD_PER_S if active else PROBE_SKIP_RAISE_PER_S):
        yield Finding(
            id="probe_skipped",
            severity="info",
            subject=subject,
            summary=f"the kernel skipped {_rate(skip_rate)} probe runs/s (another BPF program was running on the CPU)",
            evidence={"skipped_per_s": _round(skip_rate), "skipped_runs": last.probes.skipped_runs},
            knob="other BPF programs on the same tracepoints or in softirq context",
            command="bpftool prog show",
        )
