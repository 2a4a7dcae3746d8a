"""The packet waterfall panel: one row per sampled packet, newest first, each with a bar of
its stages.

Modules: ``rows`` (the packets kept, filter, freeze, cursor), ``bars`` (segments, cells,
axis), ``lines`` and ``stats`` (the text of each line), ``style`` (the theme variables of each
style) are pure and import no Textual; ``paint`` (styles and cached strips) and ``view`` (the
``Waterfall`` widget) are the Textual side. Colours come from the theme (``themes/``),
characters from the glyph table (``tui/glyphs.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .view import Waterfall

__all__ = ["Waterfall"]


def __getattr__(name: str) -> object:
    # The widget is imported on first use, so that importing a pure module of this package
    # (txtop.tui.waterfall.rows, in tests or tools) does not load Textual.
    if name == "Waterfall":
        from .view import Waterfall

        return Waterfall
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
