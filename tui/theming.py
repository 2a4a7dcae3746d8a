"""Turn txtop's theme data files (``txtop.themes``) into registered Textual themes."""

from __future__ import annotations

from textual.app import App
from textual.theme import Theme

from txtop.themes import DEFAULT_THEME, ThemeSpec, load_themes

# txtop's own style variables. A theme file may override any of them; these defaults keep
# the CSS parseable for a theme that leaves some out (Textual refuses undefined variables;
# values cannot refer to other variables, so these are the dark theme's literal colours).
# "*-style" values are CSS text-style lists ("bold", "bold reverse", "none").
VARIABLE_DEFAULTS: dict[str, str] = {
    "txtop-heading": "#8fb3cc",
    "txtop-heading-style": "bold",
    "txtop-group": "#e6edf5",
    "txtop-group-style": "bold",
    "txtop-dim": "#66707f",
    "txtop-dim-style": "none",
    "txtop-alert": "#ff6b7d",
    "txtop-alert-style": "bold",
    "txtop-warn": "#e0a23c",
    "txtop-warn-style": "bold",
    "txtop-bar": "#4fa3d9",
    "txtop-bar-high": "#e0a23c",
    "txtop-bar-empty": "#3a4252",
    "txtop-heat-1": "#3d7ba3",
    "txtop-heat-2": "#e0a23c",
    "txtop-heat-3": "#ff6b7d",
    "txtop-stage-stack": "#5f9fdf",
    "txtop-stage-enqueue": "#4fc1b5",
    "txtop-stage-qdisc": "#e0b040",
    "txtop-stage-dequeue": "#b58fe0",
    "txtop-stage-driver": "#7cc46a",
    "txtop-stage-completion": "#b0b8c4",
    "txtop-stage-gap": "#6c7480",
    "txtop-drop": "#ff5f6f",
}


def to_textual_theme(spec: ThemeSpec) -> Theme:
    colors = dict(spec.colors)
    return Theme(
        name=spec.name,
        primary=colors.pop("primary"),
        dark=spec.dark,
        ansi=spec.ansi,
        variables=dict(spec.variables),
        **colors,
    )


def register_themes(app: App[object]) -> list[str]:
    """Register every theme file with ``app``; return their names in cycling order."""
    names = []
    for spec in load_themes().values():
        app.register_theme(to_textual_theme(spec))
        names.append(spec.name)
    if DEFAULT_THEME not in names:  # a broken install; fail loudly rather than look odd
        raise RuntimeError(f"default theme {DEFAULT_THEME!r} is missing")
    return names
