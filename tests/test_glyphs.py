"""The one glyph table (tui/glyphs.py): complete for every look, 7-bit in ASCII, and the only
place in tui/ that spells a special character."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from txtop.tui.glyphs import ASCII, UNICODE, Glyphs, glyphs_for
from txtop.tui.waterfall.bars import SEGMENT_KINDS

TUI = Path(__file__).resolve().parent.parent / "tui"
LOOKS = {"unicode": UNICODE, "ascii": ASCII}
TEXT_FIELDS = [f.name for f in dataclasses.fields(Glyphs) if f.type == "str"]
MAY_BE_EMPTY = {"bar_partial", "thin"}  # "" means: not in this look


@pytest.mark.parametrize("look", sorted(LOOKS))
@pytest.mark.parametrize("mono", [False, True])
def test_every_segment_kind_has_a_one_cell_fill(look: str, mono: bool) -> None:
    fills = LOOKS[look].fills(mono)
    assert set(fills) == set(SEGMENT_KINDS)
    assert all(len(char) == 1 for char in fills.values())


@pytest.mark.parametrize("glyphs", [UNICODE.fill_mono, ASCII.fill, ASCII.fill_mono])
def test_without_colour_every_kind_has_its_own_fill(glyphs: dict[str, str]) -> None:
    assert len(set(glyphs.values())) == len(SEGMENT_KINDS)


def test_the_ascii_look_is_seven_bit_and_complete() -> None:
    assert glyphs_for(True) is ASCII and glyphs_for(False) is UNICODE
    for name in TEXT_FIELDS:
        assert getattr(ASCII, name).isascii(), name
        assert getattr(UNICODE, name) or name in MAY_BE_EMPTY, name
        assert getattr(ASCII, name) or name in MAY_BE_EMPTY, name
    assert all(c.isascii() for fills in (ASCII.fill, ASCII.fill_mono) for c in fills.values())


def test_thin_marks_only_where_colours_tell_stages_apart() -> None:
    assert UNICODE.thin_for(mono=False) == UNICODE.thin == "▏"
    assert UNICODE.thin_for(mono=True) == ""
    assert ASCII.thin_for(mono=False) == ASCII.thin_for(mono=True) == ""


def test_the_table_loads_no_textual() -> None:
    probe = (
        "import sys, txtop.tui.glyphs\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _string_constants(path: Path) -> list[tuple[int, str]]:
    """String literals of a module that are not docstrings."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        if id(node) not in docstrings
    ]


def test_no_tui_module_spells_a_glyph_itself() -> None:
    glyph_chars = {c for name in TEXT_FIELDS for c in getattr(UNICODE, name) if not c.isascii()}
    glyph_chars |= {c for c in (*UNICODE.fill.values(), *UNICODE.fill_mono.values())}
    found = []
    for path in sorted(TUI.rglob("*.py")):
        if path == TUI / "glyphs.py":
            continue
        for line, text in _string_constants(path):
            if glyph_chars & set(text):
                found.append(f"{path.relative_to(TUI)}:{line}: {text!r}")
    assert not found, "\n".join(found)
