"""Themes as data (themes/): every spec carries every txtop variable, what a file leaves out is
the default for its base, the defaults table is the only one, and the UI resolves colours from
it (tui/theming.py for the panels' CSS, tui/waterfall/paint.py for the waterfall)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.color import Color
from textual.theme import BUILTIN_THEMES

from txtop.themes import COLOR_KEYS, DEFAULT_THEME, ThemeSpec, load_themes, parse_theme
from txtop.themes.defaults import VARIABLE_NAMES, VARIABLES, variable_defaults
from txtop.tui.theming import register_themes, theme_variable_defaults, to_textual_theme
from txtop.tui.waterfall import Waterfall
from txtop.tui.waterfall.bars import SEGMENT_KINDS
from txtop.tui.waterfall.style import STYLE_VARIABLES

REPO = Path(__file__).resolve().parent.parent
TEXT_STYLES = {"bold", "italic", "underline", "reverse", "strike", "dim", "blink", "none"}


def theme_text(name: str, dark: bool, variables: str = "") -> str:
    return f'name = "{name}"\ndark = {str(dark).lower()}\n[colors]\nprimary = "#336699"\n' + (
        f"[variables]\n{variables}" if variables else ""
    )


# ---- the defaults table ---------------------------------------------------------------------


def test_the_defaults_table_is_well_formed() -> None:
    assert len(set(VARIABLE_NAMES)) == len(VARIABLES)
    for var in VARIABLES:
        assert var.name.startswith("txtop-") and var.role, var
        for value in (var.dark, var.light):
            if var.name.endswith("-style"):
                assert set(value.split()) <= TEXT_STYLES, var
            else:
                Color.parse(value)  # raises on a bad colour
    for dark in (True, False):
        assert tuple(variable_defaults(dark)) == VARIABLE_NAMES
    with pytest.raises(TypeError):
        variable_defaults(True)["txtop-dim"] = "#000000"  # type: ignore[index]


def test_every_variable_is_used_and_every_used_variable_has_a_default() -> None:
    """The table holds exactly the variables the CSS and the waterfall ask for."""
    css = (REPO / "tui" / "app.tcss").read_text()
    used = set(re.findall(r"\$(txtop-[a-z0-9-]+)", css))
    used |= {name for chain in STYLE_VARIABLES.values() for name in chain if "txtop-" in name}
    assert used == set(VARIABLE_NAMES)


def test_each_waterfall_style_starts_with_a_txtop_variable() -> None:
    """The painter's last resort is the default of a style's first variable."""
    assert set(SEGMENT_KINDS) <= set(STYLE_VARIABLES)
    for chain in STYLE_VARIABLES.values():
        assert chain[0] in VARIABLE_NAMES


# ---- theme files ----------------------------------------------------------------------------


def test_every_theme_file_yields_a_complete_variable_set() -> None:
    themes = load_themes()
    assert list(themes)[:3] == ["dark", "light", "mono"]
    for spec in themes.values():
        assert set(VARIABLE_NAMES) <= set(spec.variables), spec.name
        assert all(spec.variables[name] for name in VARIABLE_NAMES), spec.name


def test_shipped_themes_keep_their_look() -> None:
    """dark and light are the defaults for their base but for dim; mono sets everything to the
    terminal's own colour and tells alerts apart by reverse video."""
    themes = load_themes()
    for name, dark, dim in (("dark", True, "#66707f"), ("light", False, "#8c959f")):
        spec = themes[name]
        assert spec.dark is dark
        assert dict(spec.variables) == {**variable_defaults(dark), "txtop-dim": dim}
    mono = themes["mono"]
    colours = [n for n in VARIABLE_NAMES if not n.endswith("-style")]
    assert all(mono.variables[n] == "ansi_default" for n in colours)
    assert mono.variables["txtop-alert-style"] == "bold reverse"


@pytest.mark.parametrize("dark", [True, False])
def test_a_missing_variable_gets_the_default_for_the_base(tmp_path: Path, dark: bool) -> None:
    (tmp_path / "partial.toml").write_text(
        theme_text("partial", dark, 'txtop-alert = "#123456"\ntxtop-alert-style = "underline"\n')
    )
    spec = load_themes(tmp_path)["partial"]
    defaults = variable_defaults(dark)
    assert spec.variables["txtop-alert"] == "#123456"
    assert spec.variables["txtop-alert-style"] == "underline"
    for name in VARIABLE_NAMES:
        if name not in ("txtop-alert", "txtop-alert-style"):
            assert spec.variables[name] == defaults[name], name
    other = variable_defaults(not dark)
    assert spec.variables["txtop-stage-qdisc"] != other["txtop-stage-qdisc"]  # the base counts


def test_a_file_without_variables_is_all_defaults_and_keeps_textual_ones() -> None:
    bare = parse_theme(theme_text("bare", False), "bare")
    assert dict(bare.variables) == dict(variable_defaults(False))
    extra = parse_theme(theme_text("extra", True, 'border = "#ff0000"\n'), "extra")
    assert extra.variables["border"] == "#ff0000"
    assert set(extra.variables) == {*VARIABLE_NAMES, "border"}


def test_a_spec_is_complete_and_read_only_however_it_is_made() -> None:
    spec = ThemeSpec("made", "", False, False, {"primary": "#000000"}, {"txtop-dim": "#010101"})
    assert spec.variables["txtop-dim"] == "#010101"
    assert spec.variables["txtop-bar"] == variable_defaults(False)["txtop-bar"]
    with pytest.raises(TypeError):
        spec.variables["txtop-bar"] = "#000000"  # type: ignore[index]
    with pytest.raises(TypeError):
        spec.colors["primary"] = "#ffffff"  # type: ignore[index]


# ---- Textual side -----------------------------------------------------------------------------


def test_textual_theme_carries_every_colour_and_variable() -> None:
    colors = {key: f"#0000{i:02x}" for i, key in enumerate(COLOR_KEYS)}
    spec = ThemeSpec("full", "", True, False, colors, {})
    theme = to_textual_theme(spec)
    assert {key: getattr(theme, key) for key in COLOR_KEYS} == colors
    assert theme.variables == dict(spec.variables)
    assert theme.dark and not theme.ansi
    mono = to_textual_theme(load_themes()["mono"])
    assert mono.ansi and mono.boost == "ansi_default"


def test_app_defaults_for_a_theme_that_is_not_txtops_follow_its_base() -> None:
    """What TxtopApp.get_theme_variable_defaults returns (the app cannot switch to Textual's
    themes: --theme and ``t`` only know txtop's, the command palette is off)."""
    assert theme_variable_defaults(BUILTIN_THEMES["textual-dark"]) == variable_defaults(True)
    assert theme_variable_defaults(BUILTIN_THEMES["textual-light"]) == variable_defaults(False)


class Host(App[None]):
    """The waterfall in an app that is not txtop's: no txtop variable defaults."""

    def compose(self) -> ComposeResult:
        yield Waterfall(id="wf")


def resolved(theme: str, register: bool) -> tuple[dict[str, Color], bool]:
    """The waterfall's colour per style name under ``theme``, and whether it drew mono."""

    async def main() -> tuple[dict[str, Color], bool]:
        app = Host()
        async with app.run_test(size=(80, 24)) as pilot:
            if register:
                register_themes(app)
            app.theme = theme
            await pilot.pause()
            wf = app.query_one(Waterfall)
            mono = wf.mono  # resolves the styles
            styles = wf._painter.styles
            colors = {k: Color.from_rich_color(s.color) for k, s in styles.items() if s.color}
            return colors, mono

    return asyncio.run(main())


@pytest.mark.parametrize("name", ["dark", "light", "mono"])
def test_waterfall_colours_come_from_the_theme_spec(name: str) -> None:
    spec = load_themes()[name]
    colors, mono = resolved(name, register=True)
    for kind in SEGMENT_KINDS:
        assert colors[kind] == Color.parse(spec.variables[STYLE_VARIABLES[kind][0]]), kind
    assert mono is (name == "mono")


@pytest.mark.parametrize("theme", ["textual-dark", "textual-light"])
def test_waterfall_under_a_foreign_theme_uses_its_base_colours_then_the_defaults(
    theme: str,
) -> None:
    """No txtop variables at all: stage colours and dim are txtop's defaults for the base,
    alerts and warnings the theme's own error and warning colours."""
    textual = BUILTIN_THEMES[theme]
    defaults = variable_defaults(textual.dark)
    colors, mono = resolved(theme, register=False)
    assert not mono
    for kind in SEGMENT_KINDS:
        if kind != "drop":
            assert colors[kind] == Color.parse(defaults[STYLE_VARIABLES[kind][0]]), kind
    assert colors["dim"] == Color.parse(defaults["txtop-dim"])
    generated = textual.to_color_system().generate()
    assert colors["drop"] == colors["alert"] == Color.parse(generated["error"])
    assert colors["warn"] == Color.parse(generated["warning"])


def test_default_theme_exists_and_every_shipped_theme_registers() -> None:
    assert DEFAULT_THEME in load_themes()
    app = Host()
    names = register_themes(app)
    assert names[:3] == ["dark", "light", "mono"]
    assert all(app.get_theme(n) is not None for n in names)
