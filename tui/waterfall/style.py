"""The waterfall's colour and fill tables, kept apart so that styling can move into themes/
without touching the drawing code. Data only: the view resolves them against the theme.
"""

from __future__ import annotations

from .bars import SEGMENT_KINDS

# Theme variable per style, then Textual base colours to fall back on. Stage colours fall back
# to a fixed palette instead: base themes often reuse one colour (accent = warning).
STYLE_VARIABLES: dict[str, tuple[str, ...]] = {
    "stack": ("txtop-stage-stack",),
    "enqueue": ("txtop-stage-enqueue",),
    "qdisc": ("txtop-stage-qdisc",),
    "dequeue": ("txtop-stage-dequeue",),
    "driver": ("txtop-stage-driver",),
    "completion": ("txtop-stage-completion",),
    "gap": ("txtop-stage-gap", "txtop-dim", "text-muted"),
    "drop": ("txtop-drop", "txtop-alert", "error"),
    "dim": ("txtop-dim", "text-muted"),
    "heading": ("txtop-heading", "primary"),
    "alert": ("txtop-alert", "error"),
    "warn": ("txtop-warn", "warning"),
}
# (dark background, light background)
FALLBACK_COLORS: dict[str, tuple[str, str]] = {
    "stack": ("#5f9fdf", "#1f5fa8"),
    "enqueue": ("#4fc1b5", "#137a70"),
    "qdisc": ("#e0b040", "#9a6700"),
    "dequeue": ("#b58fe0", "#7446b0"),
    "driver": ("#7cc46a", "#2f7d22"),
    "completion": ("#b0b8c4", "#5a6472"),
    "gap": ("#6c7480", "#9aa2ad"),
    "drop": ("#ff5f6f", "#c8202e"),
    "dim": ("#808a96", "#6a737d"),
    "heading": ("#8fb3cc", "#0b4f9c"),
    "alert": ("#ff6b7d", "#cf222e"),
    "warn": ("#e0a23c", "#9a6700"),
}
# Fill characters. Colour mode draws every stage solid; without distinct colours (mono theme,
# NO_COLOR) each stage gets its own fill so the bar still reads; ASCII mode likewise.
FILL_COLOR = dict.fromkeys(SEGMENT_KINDS, "█") | {"gap": "┄"}
FILL_MONO = {
    "stack": "█",
    "enqueue": "▓",
    "qdisc": "▒",
    "dequeue": "░",
    "driver": "▞",
    "completion": "─",
    "gap": "┄",
    "drop": "✗",
}
FILL_ASCII = {
    "stack": "=",
    "enqueue": "-",
    "qdisc": "#",
    "dequeue": "~",
    "driver": "%",
    "completion": "+",
    "gap": ".",
    "drop": "X",
}


def fills_for(ascii: bool, mono: bool) -> dict[str, str]:
    """The fill table for a look: ASCII wins over mono."""
    return FILL_ASCII if ascii else FILL_MONO if mono else FILL_COLOR
