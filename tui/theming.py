"""Turn txtop's theme data files (``txtop.themes``) into registered Textual themes.

No colours here: a ``ThemeSpec`` arrives with every txtop variable set (the defaults are in
``themes/defaults.py``), and the app's variable defaults for a Textual theme that is not
txtop's come from that same table.
"""

from __future__ import annotations

from typing import Any

from textual.app import App
from textual.theme import Theme

from txtop.themes import DEFAULT_THEME, ThemeSpec, load_themes
from txtop.themes.defaults import variable_defaults


def to_textual_theme(spec: ThemeSpec) -> Theme:
    """The Textual theme of ``spec``; a base colour the file leaves out is Textual's to derive
    (every key of ``txtop.themes.COLOR_KEYS``, spelled out so that the types are checked)."""
    c = spec.colors
    return Theme(
        name=spec.name,
        primary=c["primary"],
        secondary=c.get("secondary"),
        warning=c.get("warning"),
        error=c.get("error"),
        success=c.get("success"),
        accent=c.get("accent"),
        foreground=c.get("foreground"),
        background=c.get("background"),
        surface=c.get("surface"),
        panel=c.get("panel"),
        boost=c.get("boost"),
        dark=spec.dark,
        ansi=spec.ansi,
        variables=dict(spec.variables),
    )


def theme_variable_defaults(theme: Theme) -> dict[str, str]:
    """txtop's variables for ``theme`` where it sets none (for ``get_theme_variable_defaults``):
    the defaults for its base. They keep the CSS parseable under any theme; txtop's own
    themes set every variable, so for them these never show."""
    return dict(variable_defaults(theme.dark))


def register_themes(app: App[Any]) -> list[str]:
    """Register every theme file with ``app``; return their names in cycling order."""
    names = []
    for spec in load_themes().values():
        app.register_theme(to_textual_theme(spec))
        names.append(spec.name)
    if DEFAULT_THEME not in names:  # a broken install; fail loudly rather than look odd
        raise RuntimeError(f"default theme {DEFAULT_THEME!r} is missing")
    return names
