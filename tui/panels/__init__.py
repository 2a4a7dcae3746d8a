"""The dashboard's panels: header, TX queues and per-CPU softirqs, one module each.

Each panel is split in two:
- pure builders (``queues`` with its ``queue_groups`` and ``queue_cells``, ``cpus``,
  ``header``, on top of ``format`` and the glyph table ``txtop.tui.glyphs``): a Snapshot plus
  view options (width, sort key, ...) in, lines of ``(text, role)`` fragments out; they never
  import Textual, so they are tested without a terminal;
- thin Line-API widgets (``widgets``, on ``base``) that turn roles into styles (theme
  variables via component classes, see app.tcss) and draw only the visible lines.

Nothing here touches the kernel: panels see Snapshots and nothing else.

This package re-exports what the app, the help screen and the tests import from it; new code
may as well import from the submodule that defines a name.
"""

from .cpus import CPU_COLUMNS, cpu_lines, cpu_list_rows, heat_rows
from .format import fmt_bytes, fmt_interval, fmt_si, line_text
from .header import HeaderState
from .queues import QUEUE_COLUMNS, SORT_KEYS, queue_body_rows, queue_lines
from .widgets import CpusPanel, HeaderBar, KeyHints, QueuesPanel

__all__ = [
    "CPU_COLUMNS",
    "QUEUE_COLUMNS",
    "SORT_KEYS",
    "CpusPanel",
    "HeaderBar",
    "HeaderState",
    "KeyHints",
    "QueuesPanel",
    "cpu_lines",
    "cpu_list_rows",
    "fmt_bytes",
    "fmt_interval",
    "fmt_si",
    "heat_rows",
    "line_text",
    "queue_body_rows",
    "queue_lines",
]
