"""Text helpers shared by every layer: one-line reasons, durations and fixed-width cells.

One place for each so that an error reason or a latency reads the same in the header, the
inspector, the JSON and the probe line.
"""

from __future__ import annotations

# (limit, format) steps per unit: 3 significant digits in full, at most 5 cells when short.
_FULL_STEPS = ((10, ".2f"), (100, ".1f"), (1000, ".0f"))
_SHORT_STEPS = ((9.95, ".1f"), (999.5, ".0f"))


def one_line(text: str, limit: int = 200) -> str:
    """``text`` on one line (whitespace runs collapsed), cut to ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def exc_line(exc: BaseException, limit: int = 200, typed: bool = False) -> str:
    """An exception as one line, or its type name when it has no message.

    ``typed`` is for reasons shown beside live data (the probe line, a reader's problem): the type
    name first (``OSError: ...``) and only the message's first line, since the rest is usually a
    compiler or tool log. Otherwise (the CLI's one-line errors) the whole message on one line.
    """
    message = str(exc).strip()
    if typed:
        message = message.splitlines()[0] if message else ""
    text = one_line(message, limit)
    if typed:
        return one_line(f"{type(exc).__name__}: {text}".rstrip(": "), limit)
    return text or type(exc).__name__


def format_ns(ns: float | None, ascii: bool = False, short: bool = False) -> str:
    """A duration: ``850ns 4.10µs 237µs 2.32ms 1.20s``, or with ``short`` at most 5 cells
    (``850ns 1.2µs 41µs 12ms 1.2s``) for table columns. None is ``-``; ``ascii`` writes ``us``."""
    if ns is None:
        return "-"
    micro = "us" if ascii else "µs"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    steps = _SHORT_STEPS if short else _FULL_STEPS
    if ns < (999.5 if short else 1000):
        return f"{sign}{ns:.0f}ns"
    for unit, div in ((micro, 1e3), ("ms", 1e6), ("s", 1e9)):
        value = ns / div
        for limit, spec in steps:
            if value < limit:
                return f"{sign}{value:{spec}}{unit}"
        if unit == "s":
            return f"{sign}{value:.0f}{unit}"
    raise AssertionError("unreachable")


def fit_text(text: str, width: int, align: str = "<", ellipsis: str = "…") -> str:
    """``text`` in exactly ``width`` cells: padded (``align`` is ``<``, ``>`` or ``^``), or cut
    with ``ellipsis`` at the end when it is too long. Counts characters, so it is for text whose
    characters are one cell wide (no CJK). A width narrower than the ellipsis gives blanks."""
    if len(text) > width:
        room = max(0, width - len(ellipsis))
        text = text[:room] + ellipsis if width >= len(ellipsis) else ""
    return f"{text:{align}{width}}"
