"""txtop's colour themes, kept as data files (TOML) next to this module.

This module only reads and checks the files; ``txtop.tui.theming`` turns them into Textual
``Theme`` objects. It must not import Textual: the CLI lists and validates theme names before
Textual is imported (Textual reads ``TEXTUAL_COLOR_SYSTEM`` at import time).

A theme file looks like::

    name = "dark"            # must equal the file name without ".toml"
    description = "..."
    dark = true              # dark or light base: Textual's shades, txtop's defaults
    ansi = false             # true: use the terminal's own 16 ANSI colours
    [colors]                 # Textual's base colours; only "primary" is required
    primary = "#4ea1d3"
    [variables]              # txtop's own style variables (themes/defaults.py) + Textual's
    txtop-alert = "#e05561"

A theme file sets only the variables it changes. ``ThemeSpec.variables`` is always complete:
whatever the file leaves out is the default for its base (``dark``) from ``themes/defaults.py``,
the one table of txtop's variables.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from .defaults import variable_defaults

THEME_DIR = Path(__file__).parent
DEFAULT_THEME = "dark"
# Shipped themes first, in this order; any other file in the directory follows by name.
PREFERRED_ORDER = ("dark", "light", "mono")

COLOR_KEYS = (
    "primary",
    "secondary",
    "accent",
    "warning",
    "error",
    "success",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)
_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_VAR_RE = re.compile(r"^[a-z][a-z0-9-]{0,63}$")


class ThemeError(ValueError):
    """A theme file is missing or malformed; the message is one line."""


@dataclass(frozen=True, slots=True)
class ThemeSpec:
    """One theme, checked. ``variables`` is complete: given ones over the defaults for the
    theme's base (dark or light), so nothing downstream needs a fallback of its own. Both
    mappings are read-only."""

    name: str
    description: str
    dark: bool
    ansi: bool
    colors: Mapping[str, str]
    variables: Mapping[str, str]

    def __post_init__(self) -> None:
        complete = {**variable_defaults(self.dark), **self.variables}
        object.__setattr__(self, "colors", MappingProxyType(dict(self.colors)))
        object.__setattr__(self, "variables", MappingProxyType(complete))


def _str_table(data: object, what: str, key_re: re.Pattern[str]) -> dict[str, str]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ThemeError(f"{what} must be a table")
    out: dict[str, str] = {}
    for key, value in data.items():
        if not key_re.match(key):
            raise ThemeError(f"{what}: bad key {key!r}")
        if not isinstance(value, str) or not value or len(value) > 64:
            raise ThemeError(f"{what}.{key}: expected a short string")
        out[key] = value
    return out


def parse_theme(text: str, name: str) -> ThemeSpec:
    """Check one theme file's text. ``name`` is the name the file must declare."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ThemeError(f"theme {name!r}: {exc}") from None
    if data.get("name") != name:
        raise ThemeError(f"theme {name!r}: 'name' must be {name!r}")
    colors = _str_table(data.get("colors"), f"theme {name!r} colors", _VAR_RE)
    unknown = set(colors) - set(COLOR_KEYS)
    if unknown:
        raise ThemeError(f"theme {name!r}: unknown colors {sorted(unknown)}")
    if "primary" not in colors:
        raise ThemeError(f"theme {name!r}: colors.primary is required")
    dark = data.get("dark", True)
    ansi = data.get("ansi", False)
    description = data.get("description", "")
    if not isinstance(dark, bool) or not isinstance(ansi, bool):
        raise ThemeError(f"theme {name!r}: 'dark' and 'ansi' must be true or false")
    if not isinstance(description, str):
        raise ThemeError(f"theme {name!r}: 'description' must be a string")
    variables = _str_table(data.get("variables"), f"theme {name!r} variables", _VAR_RE)
    return ThemeSpec(name, description, dark, ansi, colors, variables)


def theme_names(directory: Path = THEME_DIR) -> list[str]:
    """Names of the theme files in ``directory``, shipped themes first."""
    found = {p.stem for p in directory.glob("*.toml") if _NAME_RE.match(p.stem)}
    first = [n for n in PREFERRED_ORDER if n in found]
    return first + sorted(found - set(first))


def load_theme(name: str, directory: Path = THEME_DIR) -> ThemeSpec:
    if not _NAME_RE.match(name):  # also keeps the name from escaping the directory
        raise ThemeError(f"invalid theme name {name!r}")
    path = directory / f"{name}.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ThemeError(f"theme {name!r}: {exc.strerror or exc}") from None
    return parse_theme(text, name)


def load_themes(directory: Path = THEME_DIR) -> dict[str, ThemeSpec]:
    """Every theme in ``directory``, in display order. Raises ThemeError on a bad file."""
    return {name: load_theme(name, directory) for name in theme_names(directory)}
