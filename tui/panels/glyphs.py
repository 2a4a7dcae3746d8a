"""The one glyph table: every character the dashboard draws that has a Unicode and an ASCII form.

``--ascii`` (or a terminal that cannot show Unicode) switches every widget from ``UNICODE`` to
``ASCII``; a widget asks ``glyphs_for(ascii_only)`` and never spells a special character itself.
Textual-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

NO_FILLS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class Glyphs:
    """One look. Keyword-only, so a new entry is a new field with a default and the existing
    tables keep working until they fill it in."""

    ascii: bool  # True: 7-bit characters only
    bar_full: str  # a whole cell of a meter
    bar_partial: str  # 1/8 .. 7/8 of a cell; empty string: whole cells only
    bar_empty: str  # the unfilled rest of a meter
    heat: str  # 8 levels, lowest first
    heat_zero: str  # no activity at all
    ellipsis: str  # marks text cut to fit
    sep: str  # between the header's items
    # Fill characters of the waterfall's stage segments, by segment kind: ``fill`` when colours
    # tell the stages apart, ``fill_mono`` when they cannot (mono theme, NO_COLOR) and each
    # stage needs a character of its own. Empty until the waterfall's tables move here.
    fill: Mapping[str, str] = field(default_factory=lambda: NO_FILLS, hash=False)
    fill_mono: Mapping[str, str] = field(default_factory=lambda: NO_FILLS, hash=False)

    def fills(self, mono: bool) -> Mapping[str, str]:
        """The stage fills for a look with (``mono=False``) or without distinct colours."""
        return self.fill_mono if mono else self.fill


UNICODE = Glyphs(
    ascii=False,
    bar_full="█",
    bar_partial="▏▎▍▌▋▊▉",
    bar_empty="·",
    heat="▁▂▃▄▅▆▇█",
    heat_zero="·",
    ellipsis="…",
    sep="│",
)
ASCII = Glyphs(
    ascii=True,
    bar_full="#",
    bar_partial="",
    bar_empty=".",
    heat=":-=+*#%@",
    heat_zero=".",
    ellipsis="~",
    sep="|",
)


def glyphs_for(ascii_only: bool) -> Glyphs:
    return ASCII if ascii_only else UNICODE
