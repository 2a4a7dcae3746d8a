"""txtop's style variables and their defaults: the one table of them.

Every colour and text style the panels (through ``tui/app.tcss``) and the waterfall use is one
of these variables. A theme file sets any of them under ``[variables]``; what it leaves out
takes the default for its base (``dark = true`` or ``false``) from this table, so a loaded
``ThemeSpec`` always carries all of them. The same table gives the app its defaults for a
Textual theme that is not txtop's (Textual refuses CSS that names an undefined variable), and
the waterfall falls back on it for a theme that names none of them.

The shipped "dark" and "light" themes are these defaults; their files set only what differs.
Textual-free, like the rest of ``txtop.themes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class Variable:
    """One style variable: its default on a dark and on a light base, and what it styles.

    Colour values are anything Textual parses ("#rrggbb", "ansi_default"); ``*-style`` values
    are CSS text-style lists ("bold", "bold reverse", "none")."""

    name: str
    dark: str
    light: str
    role: str


VARIABLES: tuple[Variable, ...] = (
    Variable("txtop-heading", "#8fb3cc", "#0b4f9c", "titles, column heads, key names"),
    Variable("txtop-heading-style", "bold", "bold", "text style of the headings"),
    Variable("txtop-group", "#e6edf5", "#1f2328", "summary rows (a device, all CPUs), the host"),
    Variable("txtop-group-style", "bold", "bold", "text style of the summary rows"),
    # Not the shipped themes' own dim (dark.toml and light.toml set theirs): these greys are
    # what the waterfall has always drawn "dim" in under a theme that is not txtop's.
    Variable("txtop-dim", "#808a96", "#6a737d", "secondary text"),
    Variable("txtop-dim-style", "none", "none", "text style of secondary text"),
    Variable("txtop-alert", "#ff6b7d", "#cf222e", "drops, errors, failures"),
    Variable("txtop-alert-style", "bold", "bold", "text style of alerts"),
    Variable("txtop-warn", "#e0a23c", "#b35900", "backlog, requeues, degraded probes"),
    Variable("txtop-warn-style", "bold", "bold", "text style of warnings (and of a high bar)"),
    Variable("txtop-bar", "#4fa3d9", "#1f6feb", "filled part of a meter"),
    Variable("txtop-bar-high", "#e0a23c", "#b35900", "filled part of a meter near its limit"),
    Variable("txtop-bar-empty", "#3a4252", "#c8ced6", "unfilled part of a meter"),
    Variable("txtop-heat-1", "#3d7ba3", "#6ea3e8", "heat strip, low"),
    Variable("txtop-heat-2", "#e0a23c", "#b35900", "heat strip, middle"),
    Variable("txtop-heat-3", "#ff6b7d", "#cf222e", "heat strip, high"),
    # Waterfall segments, one per stage interval (core/latency.py INTERVALS), then the
    # stretches between stages that were not observed, and a segment that ends in a drop.
    Variable("txtop-stage-stack", "#5f9fdf", "#1f5fa8", "waterfall: sendto to __dev_queue_xmit"),
    Variable("txtop-stage-enqueue", "#4fc1b5", "#137a70", "waterfall: __dev_queue_xmit to enqueue"),
    Variable("txtop-stage-qdisc", "#e0b040", "#9a6700", "waterfall: waiting in the qdisc"),
    Variable("txtop-stage-dequeue", "#b58fe0", "#7446b0", "waterfall: dequeue to ndo_start_xmit"),
    Variable("txtop-stage-driver", "#7cc46a", "#2f7d22", "waterfall: in ndo_start_xmit"),
    Variable("txtop-stage-completion", "#b0b8c4", "#5a6472", "waterfall: xmit to free"),
    Variable("txtop-stage-gap", "#6c7480", "#9aa2ad", "waterfall: stages not observed"),
    Variable("txtop-drop", "#ff5f6f", "#c8202e", "waterfall: a segment ending in a drop"),
)

VARIABLE_NAMES: tuple[str, ...] = tuple(v.name for v in VARIABLES)

_BY_BASE: dict[bool, Mapping[str, str]] = {
    dark: MappingProxyType({v.name: v.dark if dark else v.light for v in VARIABLES})
    for dark in (True, False)
}


def variable_defaults(dark: bool) -> Mapping[str, str]:
    """Every variable's default for a dark (``True``) or light base; read-only."""
    return _BY_BASE[dark]
