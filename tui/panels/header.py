"""The bars above and below the panels: the two header lines (where, what, how often; the state
of the BPF probes) and the line of key hints at the bottom.

Pure: Snapshot and HeaderState in, fragment lines out; the widgets are ``widgets.HeaderBar``
and ``widgets.KeyHints``. Textual-free.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from txtop.core.model import ProbeStatus, Snapshot
from txtop.tui.glyphs import Glyphs

from .format import Line, bar, fit, fmt_interval, fmt_si, frag_len


@dataclass(frozen=True, slots=True)
class HeaderState:
    """What the header shows that is not in the snapshot: the app's own state."""

    interval_s: float
    mode: str
    paused: bool = False
    paused_ticks: int = 0
    source_error: str = ""
    theme: str = ""
    recording: bool = False  # --record is writing every snapshot


# ---- line 2: the probes ---------------------------------------------------------------------

# ProbeStatus.unavailable key: the probes cannot tell the devices of other namespaces (--netns)
# apart from txtop's own (no BTF offset for net->ns.inum); the help has the reason
NETNS_KEY = "netns"
MAX_LISTED = 3  # unavailable probes named on the line; the help lists them all
NOTE_CHARS = 40


def _running_frags(p: ProbeStatus) -> Line:
    """Probes running: sampling, trace windows, and every way events went missing."""
    out: Line = [("running", "text")]
    every = p.sampling.get("every")
    cap = p.sampling.get("max_per_s")
    if every:
        out.append((f"  sampling 1/{every}", "text"))
        if cap:
            out.append((f" (max {fmt_si(cap)}/s)", "text"))
    classic = sorted(tp for tp, form in p.hooks.items() if form != "raw")
    if classic:  # dearer per packet (and slow to detach): say so; the help (?) names them all
        out.append((f"  {len(classic)}/{len(p.hooks)} hooks classic", "warn"))
    duty = p.trace_duty_pct
    if duty is not None and duty < 100:
        # trace windows: the per-packet probes are attached this share of the time (the
        # duty, not this tick's share: a window comes every 1-10 s)
        out.append((f"  traced {duty:.2g}% of the time ({p.trace_mode or 'auto'})", "warn"))
    out.append(("  lost ", "text"))
    out.append((str(p.lost_events), "alert" if p.lost_events else "dim"))
    if p.bql_stalls:  # napi:dql_stall_detected: a TX completion stalled (see bql stall_cnt)
        out.append(("  BQL stalls ", "text"))
        out.append((fmt_si(p.bql_stalls), "warn"))
    if p.skipped_runs:  # another BPF program was running on that CPU: kernel's choice
        out.append(("  skipped ", "text"))
        out.append((fmt_si(p.skipped_runs), "warn"))
    missing = sorted(k for k in p.unavailable if k != NETNS_KEY)
    if missing:
        names = ", ".join(missing[:MAX_LISTED])
        more = f" +{len(missing) - MAX_LISTED}" if len(missing) > MAX_LISTED else ""
        out.append((f"  partial: {names}{more} unavailable", "warn"))
    if NETNS_KEY in p.unavailable:  # no namespace in the probes' keys (no BTF for it)
        out.append(("  other namespaces not told apart", "warn"))
    return out


def short_notes(notice: str) -> str:
    """The probe line's form of the probes' notes (``ProbeStatus.notice``, "; "-separated):
    each note's first clause, at most NOTE_CHARS characters; the help (?) has them in full."""
    parts = [n.strip() for n in notice.split(";") if n.strip()]
    short = []
    for part in parts:
        clause = part.split(":", 1)[0].strip()
        short.append(clause if len(clause) <= NOTE_CHARS else clause[: NOTE_CHARS - 3] + "...")
    return ", ".join(short)


def probe_frags(snapshot: Snapshot | None) -> Line:
    if snapshot is None:
        return [("probes:", "heading"), (" waiting for the first sample", "dim")]
    p = snapshot.probes
    out: Line = [("probes:", "heading"), (" ", "text")]
    if p.state == "starting":
        out.append(("compiling probes...", "warn"))
    elif p.state == "running":
        out += _running_frags(p)
    elif p.state == "unavailable":
        out.append(("unavailable", "alert"))
        if p.reason:
            out.append((f": {p.reason}", "text"))
    else:
        out.append((p.state, "dim"))
        if p.reason:
            out.append((f" ({p.reason})", "dim"))
    if p.notice:  # in full in the help (?): a headers path must not push the rest off
        out.append((f"  {short_notes(p.notice)} (? details)", "dim"))
    return out


# ---- replay ---------------------------------------------------------------------------------


def replay_frags(replay: Mapping[str, Any], glyphs: Glyphs, width: int = 8) -> Line:
    """The replay position: ``replay 12.0/30.0s ███▎···· 2x PAUSED``."""
    at = float(replay.get("at_s") or 0.0)
    total = float(replay.get("total_s") or 0.0)
    ratio = at / total if total > 0 else 1.0
    out: Line = [(f" replay {at:.1f}/{total:.1f}s ", "text")]
    out += bar(ratio, width, glyphs, high_at=2.0)
    speed = replay.get("speed")
    if isinstance(speed, (int, float)):
        out.append((f" {speed:g}x", "text"))
    if replay.get("paused"):
        out.append((" PAUSED", "badge"))
    out.append((" ", "text"))
    return out


def replay_note_frags(replay: Mapping[str, Any] | None) -> Line:
    """Line 2's start in replay: why the recording stops early, and the source's notice."""
    if not replay:
        return []
    out: Line = []
    damage = replay.get("damage")
    if damage:
        out += [("recording damaged: ", "alert"), (f"{damage} - showing the intact part", "warn")]
    notice = replay.get("notice")
    if notice:
        out += [("  " if out else "", "text"), (str(notice), "warn")]
    return out


# ---- the header -----------------------------------------------------------------------------


def _badges(replay: Mapping[str, Any] | None, state: HeaderState, glyphs: Glyphs) -> Line:
    """Line 1's right end: replay position, REC, PAUSED."""
    badge: Line = []
    if replay:
        badge += replay_frags(replay, glyphs)
    if state.recording:
        badge += [(" REC ", "badge"), (" ", "text")]
    if state.paused:
        badge += [(f" PAUSED +{state.paused_ticks} ", "badge")]
    return badge


def header_lines(
    snapshot: Snapshot | None, state: HeaderState, width: int, glyphs: Glyphs
) -> list[Line]:
    sep = (f" {glyphs.sep} ", "dim")
    replay = snapshot.replay if snapshot is not None else None
    first: Line = [(" ", "text"), ("txtop", "heading")]
    if snapshot is not None:
        first += [sep, (snapshot.host, "group"), sep, (snapshot.kernel, "text"), sep]
        first.append((",".join(snapshot.interfaces) or "no interfaces", "text"))
    if not replay:  # in replay the position and speed (right) replace interval and mode
        first += [sep, (f"every {fmt_interval(state.interval_s)}", "text"), sep]
        first.append((state.mode, "text"))
    if snapshot is not None:
        first += [sep, (time.strftime("%H:%M:%S", time.localtime(snapshot.time)), "text")]
    badge = _badges(replay, state, glyphs)
    room = width - frag_len(badge)
    first = fit(first, max(0, room), "<", glyphs.ellipsis) + badge
    note = replay_note_frags(replay)
    second = [(" ", "text")] + note + ([sep] if note else []) + probe_frags(snapshot)
    if state.source_error:
        second = [(" ", "text"), ("data source failed: ", "alert"), (state.source_error, "text")]
    return [first, fit(second, width, "<", glyphs.ellipsis)]


# ---- key hints (the bottom line) ------------------------------------------------------------


def key_hint_line(hints: Sequence[tuple[str, str]]) -> Line:
    out: Line = []
    for key, what in hints:
        out += [(f" {key}", "heading"), (f" {what} ", "text")]
    return out
