"""The help screen (`?`): every key, and what the columns mean."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from txtop.tui.panels import CPU_COLUMNS, QUEUE_COLUMNS

# (keys, what they do). The app's BINDINGS are checked against this list by a test.
KEYS: tuple[tuple[str, str], ...] = (
    ("q  ctrl+c", "quit (probes are detached, the terminal restored)"),
    ("space", "pause / resume the display; data keeps being collected, resume shows the latest"),
    ("+  -", "longer / shorter refresh interval (shown in the header)"),
    ("s", "sort the TX queues: device/queue, busiest tx, backlog, drops"),
    ("t", "next colour theme (dark, light, mono)"),
    ("?", "this help; escape, ? or q closes it"),
    ("tab", "move focus between panels; arrows/PgUp/PgDn then scroll the focused one"),
)


def help_text() -> str:
    """Plain text of the help screen (no markup), also used by tests."""
    lines = ["txtop keys", ""]
    width = max(len(k) for k, _ in KEYS)
    lines += [f"  {keys:<{width}}  {what}" for keys, what in KEYS]
    lines += ["", "TX queues columns"]
    lines += [f"  {c.title:<18}  {c.help}" for c in QUEUE_COLUMNS if c.help]
    lines += [
        "  'no BQL' marks devices without byte queue limits (veth, lo, ...).",
        "  A device row carries device-wide rates; tx-N rows below it are its queues.",
        "",
        "Softirq columns (one row per CPU; a heat strip per metric when rows do not fit)",
    ]
    lines += [f"  {c.title:<18}  {c.help}" for c in CPU_COLUMNS if c.help]
    lines += [
        "",
        "Latencies come from sampled packets (BPF); '-' means none sampled for that queue.",
    ]
    return "\n".join(lines)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss_help", "Close", show=False),
        Binding("question_mark", "dismiss_help", "Close", show=False),
        Binding("q", "dismiss_help", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(help_text(), id="help-text", markup=False)

    def on_mount(self) -> None:
        box = self.query_one("#help-box")
        box.border_title = "help"
        box.border_subtitle = "escape / ? / q: close"

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
