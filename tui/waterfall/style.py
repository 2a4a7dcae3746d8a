"""Which theme variables colour each of the waterfall's styles (names only, no Textual).

Colours are theme data (``themes/``: the theme files over the defaults in
``themes/defaults.py``); glyphs are in ``tui/glyphs.py``. ``paint.py`` resolves these names
against the app's theme.

Each style takes the first variable of its chain that the theme defines with a colour. txtop's
own themes, and the dashboard under any theme (its variable defaults), define every txtop
variable, so there the first one always wins. The rest of a chain serves a host app that is
not txtop's (a Textual theme without txtop's variables): its base colours (error, warning,
primary) go first, and where none of the chain parses, txtop's default for the first variable.
Stage colours have no base colour to turn to: base themes often reuse one (accent = warning).
"""

from __future__ import annotations

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
