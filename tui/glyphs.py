"""The one glyph table: every character the dashboard draws that has a Unicode and an ASCII form.

``--ascii`` (or a terminal that cannot show Unicode) switches every widget from ``UNICODE`` to
``ASCII``; a widget asks ``glyphs_for(ascii_only)`` and never spells a special character itself.
The look without colour (mono theme, NO_COLOR) has its own waterfall fills here too.

It sits in ``tui/`` rather than in ``tui/panels/`` because the panels and the waterfall both
draw with it, and importing ``txtop.tui.panels.<anything>`` runs the package's ``__init__``,
which loads the panel widgets and Textual: the waterfall's pure modules must not. Textual-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


def _fills(**by_kind: str) -> Mapping[str, str]:
    return MappingProxyType(by_kind)


@dataclass(frozen=True, slots=True, kw_only=True)
class Glyphs:
    """One look. Keyword-only, and every entry has to be given: a table cannot leave a glyph
    out and quietly inherit the other look's."""

    ascii: bool  # True: 7-bit characters only
    # Meters and heat strips (queue and CPU panels).
    bar_full: str  # a whole cell of a meter
    bar_partial: str  # 1/8 .. 7/8 of a cell; empty string: whole cells only
    bar_empty: str  # the unfilled rest of a meter
    heat: str  # 8 levels, lowest first
    heat_zero: str  # no activity at all
    # History (sparkline column, history view) and the BQL bar's peak.
    spark: str  # 8 heights of a sparkline or chart cell, lowest first
    axis: str  # a chart's time axis under the cells that hold data
    peak_mark: str  # where the interval's peak bytes in flight reached on the BQL bar
    # Text.
    ellipsis: str  # marks text cut to fit
    sep: str  # between the header's items
    dot: str  # between the items of the waterfall's header line
    arrow: str  # from one stage to the next, or from a rate to the one asked for
    at_most: str  # before a cap ("at most 2000/s")
    at_least: str  # before a total that is only a lower bound
    times: str  # "length x GSO segments"
    up: str  # there are newer rows above the view
    down: str  # a column sorted from the newest down
    pointer: str  # the selected row
    enter_key: str  # the name of the Enter key in the key hints
    # The waterfall's bars.
    thin: str  # a segment under half a cell wide; empty string: none, the fill is used
    tick: str  # the bar of a packet seen at one stage only
    drop_mark: str  # before the reason of a drop
    # Fill characters of the stage segments, by segment kind (waterfall/bars.py
    # SEGMENT_KINDS): ``fill`` when colours tell the stages apart, ``fill_mono`` when they
    # cannot (mono theme, NO_COLOR) and each stage needs a character of its own.
    fill: Mapping[str, str] = field(hash=False)
    fill_mono: Mapping[str, str] = field(hash=False)

    def fills(self, mono: bool) -> Mapping[str, str]:
        """The stage fills for a look with (``mono=False``) or without distinct colours."""
        return self.fill_mono if mono else self.fill

    def thin_for(self, mono: bool) -> str:
        """The thin mark, or "" where it may not be used: without distinct colours a thin
        mark would hide which stage a one-cell segment is."""
        return "" if mono else self.thin


UNICODE = Glyphs(
    ascii=False,
    bar_full="█",
    bar_partial="▏▎▍▌▋▊▉",
    bar_empty="·",
    heat="▁▂▃▄▅▆▇█",
    heat_zero="·",
    spark="▁▂▃▄▅▆▇█",
    axis="─",
    peak_mark="│",
    ellipsis="…",
    sep="│",
    dot="·",
    arrow="→",
    at_most="≤",
    at_least="≥",
    times="×",
    up="▲",
    down="▼",
    pointer="›",
    enter_key="⏎",
    thin="▏",
    tick="┃",
    drop_mark="✗",
    fill=_fills(
        stack="█",
        enqueue="█",
        qdisc="█",
        dequeue="█",
        driver="█",
        completion="█",
        gap="┄",
        drop="█",
    ),
    fill_mono=_fills(
        stack="█",
        enqueue="▓",
        qdisc="▒",
        dequeue="░",
        driver="▞",
        completion="─",
        gap="┄",
        drop="✗",
    ),
)
# One character per stage even with colour: an ASCII terminal may well have none to spare.
_ASCII_FILLS = _fills(
    stack="=",
    enqueue="-",
    qdisc="#",
    dequeue="~",
    driver="%",
    completion="+",
    gap=".",
    drop="X",
)
ASCII = Glyphs(
    ascii=True,
    bar_full="#",
    bar_partial="",
    bar_empty=".",
    heat=":-=+*#%@",
    heat_zero=".",
    spark="_.-:=+*#",
    axis="-",
    peak_mark="|",
    ellipsis="~",
    sep="|",
    dot="|",
    arrow="->",
    at_most="<=",
    at_least=">=",
    times="x",
    up="^",
    down="v",
    pointer=">",
    enter_key="Enter",
    thin="",
    tick="|",
    drop_mark="x",
    fill=_ASCII_FILLS,
    fill_mono=_ASCII_FILLS,
)


def glyphs_for(ascii_only: bool) -> Glyphs:
    return ASCII if ascii_only else UNICODE
