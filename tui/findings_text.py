"""The findings' text: the strip under the header, and the findings view's list and details.

Pure (findings in, fragment lines out; Textual-free). Severity is a role (theme variables via
tui/app.tcss): ``crit`` -> alert, ``warn`` -> warn, ``info`` -> heading; a cleared finding is
dim. The widgets are tui/findings_view.py; tui/layout.py asks ``strip_rows`` how many rows the
strip takes.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Mapping, Sequence

from txtop.core.finding import Finding
from txtop.core.model import Snapshot
from txtop.core.text import format_ns
from txtop.tui.glyphs import glyphs_for
from txtop.tui.panels.format import Line, fmt_bytes, truncate

SEVERITY_ROLE: Mapping[str, str] = {"crit": "alert", "warn": "warn", "info": "heading"}
SEVERITY_TAG: Mapping[str, str] = {"crit": "CRIT", "warn": "WARN", "info": "INFO"}


def role_of(finding: Finding) -> str:
    return SEVERITY_ROLE.get(finding.severity, "text") if finding.active else "dim"


def strip_capacity(height: int) -> int:
    """Rows the strip may take at a terminal ``height``: 2 at 24 rows (tui/layout.py takes
    them before the panels share the rest; each keeps its minimum), up to 5."""
    if height < 30:
        return 2
    if height < 40:
        return 3
    return 5


def listed(snapshot: Snapshot | None) -> tuple[Finding, ...]:
    """Findings shown: active ones first (worst first), then the recently cleared."""
    if snapshot is None or not snapshot.findings:
        return ()
    return tuple(snapshot.findings)


def strip_rows(snapshot: Snapshot | None, height: int) -> int:
    """How many rows the strip takes: one per listed finding, at most ``strip_capacity``."""
    return min(len(listed(snapshot)), strip_capacity(height))


def _finding_line(f: Finding, width: int, ellipsis: str, suffix: str = "") -> Line:
    role = role_of(f)
    tag = SEVERITY_TAG.get(f.severity, f.severity.upper()) if f.active else "was "
    line: Line = [(f"{tag:<4} ", role if f.active else "dim"), (f.summary, role)]
    if not f.active:
        line.append(("  (cleared)", "dim"))
    if suffix:
        room = max(0, width - len(suffix))
        return truncate(line, room, ellipsis) + [
            (" " * max(0, room - _len(line)), "text"),
            (suffix, "dim"),
        ]
    return truncate(line, width, ellipsis)


def _len(line: Line) -> int:
    return sum(len(t) for t, _ in line)


def strip_lines(
    snapshot: Snapshot | None, width: int, rows: int, ascii_only: bool = False
) -> list[Line]:
    """The strip: a line per finding in its severity's role; when they do not all fit, the
    last line says how many more there are and which key lists them."""
    found = listed(snapshot)
    ellipsis = glyphs_for(ascii_only).ellipsis
    if rows <= 0 or not found:
        return []
    shown = found[:rows]
    more = len(found) - len(shown)
    out = []
    for i, f in enumerate(shown):
        last = i == len(shown) - 1
        if last and more:
            out.append(_finding_line(f, width, ellipsis, f" +{more} more (f)"))
        elif i == 0:
            out.append(_finding_line(f, width, ellipsis, " f: details"))
        else:
            out.append(_finding_line(f, width, ellipsis))
    return out


# ---- the findings view ----------------------------------------------------------------------


def list_lines(findings: Sequence[Finding], width: int, ascii_only: bool = False) -> list[Line]:
    """One line per finding: severity, subject, summary."""
    ellipsis = glyphs_for(ascii_only).ellipsis
    if not findings:
        return [[("nothing found: every rule is quiet", "dim")]]
    return [_finding_line(f, width, ellipsis) for f in findings]


def evidence_value(name: str, value: object) -> str:
    """One evidence number with the unit its name carries."""
    if value is None:
        return "-"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if name.endswith("_ns"):
            return format_ns(value, ascii=True)
        if name.endswith("_bytes"):
            return f"{fmt_bytes(value)} B" if value >= 1000 else f"{value:.0f} B"
        number = _number(value)
        if name.endswith("_pct"):
            return f"{number}%"
        if name.endswith("_per_s"):
            return f"{number}/s"
        if name.endswith("_ms"):
            return f"{number} ms"
        return number
    return str(value)


def _number(value: float) -> str:
    if value == int(value):
        return f"{value:.0f}"
    return f"{value:.1f}" if abs(value) < 100 else f"{value:.0f}"


def evidence_text(evidence: Mapping[str, object]) -> str:
    """The evidence as one line: "drops 110/s (548 total), backlog 160K B, ..." (a counter
    whose rate is given too goes in brackets after the rate)."""
    parts = []
    for key, value in evidence.items():
        rate = evidence.get(f"{key}_per_s")
        if value is None or rate is not None:
            continue
        if key == "limit_unit":
            continue  # said with the limit
        text = f"{evidence_label(key)} {evidence_value(key, value)}"
        if key == "limit" and evidence.get("limit_unit"):
            text += f" {evidence['limit_unit']}"
        total = evidence.get(key[: -len("_per_s")]) if key.endswith("_per_s") else None
        if total is not None:
            text += f" ({evidence_value('', total)} total)"
        parts.append(text)
    return ", ".join(parts) or "-"


def evidence_label(name: str) -> str:
    for suffix in ("_per_s", "_ns", "_bytes", "_pct", "_ms"):
        if name.endswith(suffix):
            return name[: -len(suffix)].replace("_", " ")
    return name.replace("_", " ")


def _wrapped(label: str, text: str, width: int, role: str = "text") -> list[Line]:
    indent = 10
    parts = textwrap.wrap(text, max(20, width - indent)) or [""]
    out: list[Line] = [[(f"{label:<{indent}}", "dim"), (parts[0], role)]]
    out += [[(" " * indent, "text"), (p, role)] for p in parts[1:]]
    return out


def _when(epoch: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch)) if epoch > 0 else "?"


def detail_lines(f: Finding | None, width: int) -> list[Line]:
    """Everything about one finding: what, the evidence, the knob, the command."""
    if f is None:
        return []
    role = role_of(f)
    state = (
        f"active since {_when(f.since)}"
        if f.active
        else f"cleared at {_when(f.cleared_at or 0.0)} (was since {_when(f.since)})"
    )
    out: list[Line] = []
    out += _wrapped(SEVERITY_TAG.get(f.severity, f.severity), f.summary, width, role)
    out.append(
        [
            (f"{'subject':<10}", "dim"),
            (f.subject.label, "text"),
            (f"   rule {f.id}   {state}", "dim"),
        ]
    )
    out += _wrapped("evidence", evidence_text(f.evidence), width)
    out += _wrapped("knob", f.knob, width)
    out += _wrapped("try", f.command, width, "heading")
    out.append([("          txtop changes nothing: the command is for you to run", "dim")])
    return out
