"""Families of txtop's probes: their state, sampling and losses, the stage-latency histograms."""

from __future__ import annotations

from typing import Final

from prometheus_client.core import HistogramMetricFamily

from txtop.core.latency import INTERVALS
from txtop.core.model import ProbeStatus
from txtop.exporters.families import Families, metric_name
from txtop.exporters.view import MetricsView

PROBE_STATES: Final = ("running", "starting", "unavailable", "off")


def probe_families(fams: Families, view: MetricsView) -> None:
    _probe_state_families(fams, view.snapshot.probes)
    _probe_count_families(fams, view)


def _probe_state_families(fams: Families, probes: ProbeStatus) -> None:
    state = fams.gauge(
        "probe_state",
        "1 for the state the BPF probes are in (running, starting, unavailable, off), 0 for the "
        "others.",
        ["state"],
    )
    for name in PROBE_STATES:
        state.add_metric([name], 1.0 if probes.state == name else 0.0)
    if probes.state not in PROBE_STATES:
        state.add_metric([probes.state], 1.0)
    # No traced_pct while running: the tracer does not window (always attached).
    if probes.traced_pct is not None:
        traced = probes.traced_pct / 100
    else:
        traced = 1.0 if probes.state == "running" else 0.0
    fams.gauge(
        "probe_traced_ratio",
        "Share (0..1) of the latest interval the per-packet probes were attached. Below 1, "
        "txtop_transmit_* and txtop_softirq_time_seconds_total grow at rates extrapolated "
        "from trace windows (estimates).",
        unit="ratio",
    ).add_metric([], traced)
    if probes.trace_duty_pct is not None:
        fams.gauge(
            "probe_trace_duty_ratio",
            "Share (0..1) of the time the per-packet probes are meant to be attached "
            "(--trace-duty; 1 = always).",
            unit="ratio",
        ).add_metric([], probes.trace_duty_pct / 100)
    every = probes.sampling.get("every")
    if every:
        fams.gauge(
            "probe_sample_every",
            "The probes sample 1 packet in this many for the latency histograms.",
        ).add_metric([], every)


def _probe_count_families(fams: Families, view: MetricsView) -> None:
    fams.counter(
        "probe_lost_events",
        "Events txtop's own pipeline lost: full ring buffer or track table, lost tracks.",
    ).add_metric([], view.lost_events)
    fams.counter(
        "probe_skipped_runs",
        "Tracepoint runs the kernel skipped because another BPF program was running on that CPU.",
    ).add_metric([], view.skipped_runs)
    if view.bql_stalls_detected is not None:
        fams.counter(
            "probe_bql_stalls",
            "napi:dql_stall_detected events (BQL saw a TX queue stall) since the probes started; "
            "the tracepoint names no queue (see txtop_bql_stalls_total).",
        ).add_metric([], view.bql_stalls_detected)
    sampled = fams.counter(
        "sampled_packets",
        "Sampled packets decoded, by how their track ended (complete, aged: still held when "
        "followed no longer, lost).",
        ["track"],
    )
    for track, n in view.sampled.items():
        sampled.add_metric([track], n)


def histogram_families(fams: Families, view: MetricsView) -> None:
    if not view.histogram_labels:
        return
    fam = HistogramMetricFamily(
        metric_name("stage_latency_seconds"),
        "Time between TX-path stages of SAMPLED packets (counts are samples, 1 in "
        "txtop_probe_sample_every, not packets): stack, enqueue, qdisc, dequeue, driver, "
        "completion, and total (first to last stage of complete tracks).",
        labels=list(view.histogram_labels),
        unit="seconds",
    )
    order = {name: i for i, name in enumerate(INTERVALS)}
    for key in sorted(view.histograms, key=lambda k: (k[:-1], order.get(k[-1], 99), k[-1])):
        hist = view.histograms[key]
        fam.add_metric(list(key), hist.cumulative(), hist.sum_s)
    fams.out.append(fam)
