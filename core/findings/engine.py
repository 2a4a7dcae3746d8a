"""The rules in order (``RULES``, ``conditions``), the ``FindingsEngine`` that turns their
instant conditions into shown findings (time hysteresis, severity held down), and the
findings of recordings and ``--once`` (``with_findings``, ``evaluate_once``, ``summarize``)."""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from txtop.core.finding import Finding, Subject, severity_rank
from txtop.core.findings.context import Context
from txtop.core.findings.rules_bql import bql_limits, bql_stalls, slow_completion
from txtop.core.findings.rules_cpu import softirq_concentration, softnet, tx_queue_concentration
from txtop.core.findings.rules_probes import probes
from txtop.core.findings.rules_qdisc import qdisc_drops, qdisc_wait, requeues, txqueuelen_drops
from txtop.core.findings.thresholds import (
    CLEAR_AFTER_S,
    KEEP_CLEARED_S,
    MAX_GAP_S,
    RAISE_AFTER_S,
    WINDOW_S,
    WINDOW_SPACING_S,
)
from txtop.core.model import Snapshot

# Rule functions in the order findings are listed at equal severity. Ids a rule yields:
RULES: tuple[Callable[[Context], Iterable[Finding]], ...] = (
    qdisc_drops,  # qdisc_drops
    txqueuelen_drops,  # txqueuelen_drops
    qdisc_wait,  # qdisc_wait
    bql_limits,  # bql_at_limit, bql_limit_max
    bql_stalls,  # bql_stalls
    requeues,  # requeues
    tx_queue_concentration,  # tx_queue_concentration
    softirq_concentration,  # net_rx_concentration, net_tx_concentration
    softnet,  # softnet_squeeze, softnet_drops
    slow_completion,  # slow_completion
    probes,  # probe_losses, probe_skipped
)
RULE_IDS: tuple[str, ...] = (
    "qdisc_drops",
    "txqueuelen_drops",
    "qdisc_wait",
    "bql_at_limit",
    "bql_limit_max",
    "bql_stalls",
    "requeues",
    "tx_queue_concentration",
    "net_rx_concentration",
    "net_tx_concentration",
    "softnet_squeeze",
    "softnet_drops",
    "slow_completion",
    "probe_losses",
    "probe_skipped",
)


def conditions(ctx: Context) -> dict[tuple[str, Subject], Finding]:
    """Every rule's findings for the newest snapshot, one per (id, subject): the worst."""
    out: dict[tuple[str, Subject], Finding] = {}
    for rule in RULES:
        for f in rule(ctx):
            old = out.get(f.key)
            if old is None or severity_rank(f.severity) > severity_rank(old.severity):
                out[f.key] = f
    return out


# ---- the engine -------------------------------------------------------------------------------


@dataclass
class _Track:
    """One (rule, subject): the current run of its condition and what is shown for it."""

    start_ns: int | None = None  # the condition's current run began (None: not holding)
    last_true_ns: int = 0
    latest: Finding | None = None
    active: bool = False
    since: float = 0.0
    levels: deque[tuple[int, int]] = field(default_factory=deque)  # (mono_ns, severity rank)
    cleared: Finding | None = None  # shown greyed while not active
    cleared_ns: int = 0


def _order(f: Finding) -> tuple[int, int, float, str, Subject]:
    return (0 if f.active else 1, -severity_rank(f.severity), f.since, f.id, f.subject)


class FindingsEngine:
    """Feeds on snapshots in order; ``observe`` returns the findings to show after each."""

    def __init__(
        self,
        raise_after_s: float = RAISE_AFTER_S,
        clear_after_s: float = CLEAR_AFTER_S,
        keep_cleared_s: float = KEEP_CLEARED_S,
    ) -> None:
        self.raise_after_ns = int(raise_after_s * 1e9)
        self.clear_after_ns = int(clear_after_s * 1e9)
        self.keep_cleared_ns = int(keep_cleared_s * 1e9)
        self._window: deque[Snapshot] = deque()
        self._tracks: dict[tuple[str, Subject], _Track] = {}

    def reset(self) -> None:
        self._window.clear()
        self._tracks.clear()

    def apply(self, snap: Snapshot) -> Snapshot:
        """``snap`` with its ``findings`` set (the engine's state moves on by one tick)."""
        return dataclasses.replace(snap, findings=self.observe(snap))

    def observe(self, snap: Snapshot) -> tuple[Finding, ...]:
        now = snap.mono_ns
        if self._window:
            last = self._window[-1].mono_ns
            if now < last or now - last > MAX_GAP_S * 1e9:
                self.reset()
        window = self._window
        if len(window) >= 2 and window[-1].mono_ns - window[-2].mono_ns < WINDOW_SPACING_S * 1e9:
            window[-1] = snap  # the last newest was too close to its predecessor to keep
        else:
            self._window.append(snap)
        while self._window and now - self._window[0].mono_ns > WINDOW_S * 1e9:
            self._window.popleft()
        active = frozenset(k for k, t in self._tracks.items() if t.active)
        found = conditions(Context(list(self._window), active))
        start = now - int(max(0.0, snap.interval_s) * 1e9)
        for key, finding in found.items():
            track = self._tracks.setdefault(key, _Track())
            if track.start_ns is None:
                track.start_ns = start
            track.last_true_ns = now
            track.latest = finding
            track.levels.append((now, severity_rank(finding.severity)))
            if not track.active and now - track.start_ns >= self.raise_after_ns:
                track.active = True
                track.since = snap.time - (now - track.start_ns) / 1e9
                track.cleared = None
        for key, track in list(self._tracks.items()):
            if key in found:
                continue
            if track.active and now - track.last_true_ns >= self.clear_after_ns:
                track.active = False
                assert track.latest is not None
                track.cleared = dataclasses.replace(
                    self._shown(track, now), state="cleared", cleared_at=snap.time
                )
                track.cleared_ns = now
            if not track.active:
                track.start_ns = None
            if track.cleared is not None and now - track.cleared_ns > self.keep_cleared_ns:
                track.cleared = None
            if not track.active and track.cleared is None and track.start_ns is None:
                del self._tracks[key]
        out = []
        for track in self._tracks.values():
            if track.active:
                out.append(self._shown(track, now))
            elif track.cleared is not None:
                out.append(track.cleared)
        return tuple(sorted(out, key=_order))

    def _shown(self, track: _Track, now: int) -> Finding:
        """The latest finding at the worst severity of the last CLEAR_AFTER_S: up at once,
        down only when the lower level has held that long."""
        while track.levels and now - track.levels[0][0] > self.clear_after_ns:
            track.levels.popleft()
        assert track.latest is not None
        rank = max((r for _, r in track.levels), default=severity_rank(track.latest.severity))
        severity = ("info", "warn", "crit")[max(0, rank)]
        return dataclasses.replace(track.latest, severity=severity, since=track.since)


# ---- findings for other uses ----------------------------------------------------------------


def with_findings(snapshots: Sequence[Snapshot]) -> tuple[Snapshot, ...]:
    """A recording's frames with findings: frames that carry them keep theirs (recorded live);
    frames without (recorded before findings existed) get them from an engine run over the
    frames in order, so replay, seeks and ``--at`` all show the same findings."""
    if all(s.findings is not None for s in snapshots):
        return tuple(snapshots)
    engine = FindingsEngine()
    out = []
    for snap in snapshots:
        computed = engine.observe(snap)
        out.append(
            snap if snap.findings is not None else dataclasses.replace(snap, findings=computed)
        )
    return tuple(out)


def evaluate_once(snap: Snapshot, before: Sequence[Snapshot] = ()) -> tuple[Finding, ...]:
    """The conditions of one interval without time hysteresis (``--once``: no flicker to
    damp in a single picture); ``before`` may give earlier snapshots for windowed rules."""
    found = conditions(Context([*before, snap]))
    start = snap.time - snap.interval_s
    return tuple(sorted((dataclasses.replace(f, since=start) for f in found.values()), key=_order))


def summarize(snapshots: Sequence[Snapshot]) -> tuple[Finding, ...] | None:
    """Every finding seen over a window of snapshots, once per (id, subject): active if it
    is active in the last one, else cleared; at the worst severity it reached, with the
    evidence of its worst moment (``--once`` over a whole recording)."""
    if all(s.findings is None for s in snapshots):
        return None
    last_active = {f.key for f in (snapshots[-1].findings or ()) if f.active}
    best: dict[tuple[str, Subject], Finding] = {}
    first_since: dict[tuple[str, Subject], float] = {}
    for snap in snapshots:
        for f in snap.findings or ():
            if not f.active:
                continue
            first_since.setdefault(f.key, f.since)
            old = best.get(f.key)
            if old is None or severity_rank(f.severity) >= severity_rank(old.severity):
                best[f.key] = f
    out = []
    for key, f in best.items():
        state = "active" if key in last_active else "cleared"
        cleared_at = None
        if state == "cleared":
            cleared_at = next(
                (
                    g.cleared_at
                    for s in reversed(snapshots)
                    for g in s.findings or ()
                    if g.key == key and not g.active
                ),
                None,
            )
        out.append(
            dataclasses.replace(f, state=state, since=first_since[key], cleared_at=cleared_at)
        )
    return tuple(sorted(out, key=_order))
