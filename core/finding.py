"""One finding: something wrong on the TX path, the numbers that show it, and the knob to turn.

The type only (no rules, no model import, so model.py can carry findings on the snapshot);
the rules and the engine that raise and clear findings are core/findings.py.

JSON (``Snapshot.findings``, ``--once`` ``findings[]``)::

    {"id": "qdisc_drops", "severity": "warn",
     "subject": {"kind": "queue", "dev": "eth0", "queue": 1, "cpu": null},
     "summary": "...", "evidence": {"drops_per_s": 12.0, ...}, "knob": "...", "command": "...",
     "state": "active", "since": 1764480000.5, "cleared_at": null}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SEVERITIES: tuple[str, ...] = ("info", "warn", "crit")  # in increasing order
SUBJECT_KINDS: tuple[str, ...] = ("device", "queue", "cpu", "probes")
STATES: tuple[str, ...] = ("active", "cleared")


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


@dataclass(frozen=True, slots=True, order=True)
class Subject:
    """What a finding is about: a device, one of its TX queues, a CPU, or txtop's probes."""

    kind: str  # SUBJECT_KINDS
    dev: str | None = None
    queue: int | None = None
    cpu: int | None = None

    @property
    def label(self) -> str:
        if self.kind == "queue":
            return f"{self.dev} tx-{self.queue}"
        if self.kind == "device":
            return str(self.dev)
        if self.kind == "cpu":
            return f"cpu{self.cpu}"
        return "probes"


Evidence = Mapping[str, int | float | str | None]


@dataclass(frozen=True, slots=True)
class Finding:
    id: str  # the rule's id (core/findings.py RULES), stable: scripts key on it
    severity: str  # "info" | "warn" | "crit"
    subject: Subject
    summary: str  # one line
    evidence: Evidence  # the numbers that fired it; keys carry units (_per_s, _ns, _bytes, _pct)
    knob: str  # what to look at or turn
    command: str  # the exact command to inspect or change it (txtop never runs it)
    state: str = "active"  # "active", or "cleared": kept listed, greyed, for a while
    since: float = 0.0  # epoch seconds the condition began (held long enough to be raised)
    cleared_at: float | None = None  # epoch seconds it cleared

    @property
    def key(self) -> tuple[str, Subject]:
        return (self.id, self.subject)

    @property
    def active(self) -> bool:
        return self.state == "active"


def finding_from_dict(data: Any) -> Finding:
    """A Finding from its JSON form. TypeError or KeyError when malformed."""
    from txtop.core.model import _build  # model.py imports this module

    if not isinstance(data, Mapping):
        raise TypeError(f"Finding: expected an object, got {type(data).__name__}")
    subject: Subject = _build(Subject, data["subject"])
    evidence = data.get("evidence") or {}
    if not isinstance(evidence, Mapping) or not all(
        isinstance(k, str) and (v is None or isinstance(v, (int, float, str)))
        for k, v in evidence.items()
    ):
        raise TypeError("Finding.evidence: expected an object of numbers and strings")
    finding: Finding = _build(Finding, data, subject=subject, evidence=dict(evidence))
    if finding.severity not in SEVERITIES or finding.state not in STATES:
        raise TypeError(f"Finding: bad severity or state {finding.severity!r}/{finding.state!r}")
    return finding


def findings_from_list(data: Any) -> tuple[Finding, ...] | None:
    """``Snapshot.findings`` from JSON: None (not evaluated, e.g. an older recording) stays None."""
    if data is None:
        return None
    if not isinstance(data, (list, tuple)):
        raise TypeError("findings: expected a list")
    return tuple(finding_from_dict(item) for item in data)
