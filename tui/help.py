"""The help screen (`?`): every key, and what the columns mean."""

from __future__ import annotations

import textwrap

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from txtop.tui.panels.cpus import CPU_COLUMNS
from txtop.tui.panels.queues import QUEUE_COLUMNS

# (keys, what they do). The app's BINDINGS are checked against this list by a test.
KEYS: tuple[tuple[str, str], ...] = (
    ("q  ctrl+c", "quit (probes are detached, the terminal restored)"),
    ("space", "pause / resume the display; data keeps being collected, resume shows the latest"),
    ("+  -", "longer / shorter refresh interval (shown in the header)"),
    ("s", "sort the TX queues: device/queue, busiest tx, backlog, drops"),
    ("t", "next colour theme (dark, light, mono)"),
    (
        "c",
        "configuration beside the live numbers: each device's txqueuelen, rings, offloads, "
        "coalescing, interrupts and qdisc, a row per TX queue (XPS, maxrate, BQL limits, TX "
        "IRQ and its CPUs, qdisc limit) and per CPU; enter on a queue opens its inspector",
    ),
    (
        "h",
        "history of the selected queue or CPU (of the focused panel; the first queue "
        "otherwise): charts of its last minutes; up / down go to the next queue or CPU, "
        "h or escape closes it",
    ),
    (
        "g",
        "the metric of the history column: packets/s, backlog, drops/s, BQL peak, p99 qdisc "
        "wait for the TX queues; NET_TX/s, NET_RX/s for the softirq panel when it has focus",
    ),
    (
        "w",
        "with --flight: write the flight recorder's last SECONDS to a recording now "
        "(a notification gives its path)",
    ),
    ("?", "this help; escape, ? or q closes it"),
    (
        ".  ,",
        "replay: step one tick forward / back (and pause there); space plays and pauses the "
        "recording, + and - make it slower / faster (0.25x to 16x)",
    ),
    ("<  >", "replay: seek 10 s back / forward (also left / right arrows)"),
    (
        "tab",
        "move focus: waterfall (focused at start), TX queues, softirqs; arrows and "
        "PgUp/PgDn act on the focused panel (up / down select a queue or CPU for h)",
    ),
)


_KEY_NAMES = {
    "slash": "/",
    "left_square_bracket": "[",
    "right_square_bracket": "]",
    "enter": "enter",
    "pageup": "PgUp",
    "pagedown": "PgDn",
}


def waterfall_keys() -> list[tuple[str, str]]:
    """The waterfall's own keys (active while it has focus, which it has at start)."""
    from txtop.tui.waterfall import Waterfall

    out = []
    for binding in Waterfall.BINDINGS:
        if isinstance(binding, Binding):
            keys = ", ".join(_KEY_NAMES.get(k, k) for k in binding.key.split(","))
            out.append((keys, binding.description))
    return out


def _entries(title: str, rows: list[tuple[str, str]], width: int) -> list[str]:
    key_w = min(18, max((len(k) for k, _ in rows), default=0))
    out = ["", title]
    for key, what in rows:
        out += textwrap.wrap(
            what,
            width=width,
            initial_indent=f"  {key:<{key_w}}  ",
            subsequent_indent=" " * (key_w + 4),
        ) or [f"  {key}"]
    return out


def help_text(width: int = 66) -> str:
    """Plain text of the help screen (no markup), wrapped to ``width``; also used by tests."""
    lines = ["txtop: live view of the Linux transmit path"]
    lines += _entries("Keys", list(KEYS), width)
    lines += _entries("Packet waterfall keys", waterfall_keys(), width)
    lines += _entries("TX queues columns", [(c.title, c.help) for c in QUEUE_COLUMNS], width)
    notes = (
        "'no BQL' marks devices without byte queue limits (veth, lo, ...); a mark on the BQL "
        "bar shows the peak bytes in flight since the last refresh (sampled --bql-hz times a "
        "second), beside the current value. A device row "
        "carries device-wide rates; the tx-N rows under it are its queues. Latencies come "
        "from sampled packets; '-' means none were sampled for that queue. Under heavy "
        "traffic the per-packet probes are attached only part of the time ('traced N% of the "
        "time' on the probes line, --trace-duty): a '~' marks a rate extrapolated from those "
        "trace windows."
    )
    lines += textwrap.wrap(notes, width=width, initial_indent="  ", subsequent_indent="  ")
    lines += _entries(
        "Softirq columns (a heat strip per metric when a row per CPU does not fit)",
        [(c.title, c.help) for c in CPU_COLUMNS],
        width,
    )
    return "\n".join(lines)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss_help", "Close", show=False),
        Binding("question_mark", "dismiss_help", "Close", show=False),
        Binding("q", "dismiss_help", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        # The box is 90% of the screen, at most 110 columns; wrap inside its border/padding.
        width = max(40, min(110, self.app.size.width * 9 // 10) - 6)
        with VerticalScroll(id="help-box"):
            yield Static(help_text(width), id="help-text", markup=False)

    def on_mount(self) -> None:
        box = self.query_one("#help-box")
        box.border_title = "help"
        box.border_subtitle = "escape / ? / q: close"

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
