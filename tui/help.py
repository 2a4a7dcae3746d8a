"""The help screen (`?`): every key, what the columns mean, and the probes' details."""

from __future__ import annotations

import textwrap

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from txtop.core.model import Snapshot
from txtop.tui.panels.cpus import CPU_COLUMNS
from txtop.tui.panels.queues import COLUMN_SETS, QUEUE_COLUMNS

# (keys, what they do). The app's BINDINGS are checked against this list by a test.
KEYS: tuple[tuple[str, str], ...] = (
    ("q  ctrl+c", "quit (probes are detached, the terminal restored)"),
    ("space", "pause / resume the display; data keeps being collected, resume shows the latest"),
    ("+  -", "longer / shorter refresh interval (shown in the header)"),
    (
        "s",
        "sort the TX queues: device/queue, busiest tx (bit/s), backlog, drops and requeues "
        "(since txtop started, then per second)",
    ),
    (
        "v",
        "TX queue columns shown first when the width hides some: "
        + " / ".join(COLUMN_SETS)
        + "; the queues' title names the hidden ones",
    ),
    ("t", "next colour theme (dark, light, mono)"),
    (
        "c",
        "configuration beside the live numbers: each device's txqueuelen, rings, offloads, "
        "coalescing, interrupts and qdisc, a row per TX queue (XPS, maxrate, BQL limits, TX "
        "IRQ and its CPUs, qdisc limit) and per CPU; enter on a queue opens its inspector",
    ),
    (
        "f",
        "findings: what looks wrong, with the numbers that show it, the knob to turn and the "
        "command to look at or change it (txtop changes nothing); enter goes to the "
        "finding's queue or CPU row, c opens the config view there. The strip under the "
        "header shows the newest, in their severity's colour; cleared ones stay, greyed, "
        "for a minute",
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


# What each of the waterfall's keys does, by action (its bindings' descriptions are the short
# names Textual shows). A key whose action is missing here shows its binding's description.
WATERFALL_ACTIONS: dict[str, str] = {
    "navigate('line', -1)": "select the next newer packet (newest on top)",
    "navigate('line', 1)": "select the next older packet",
    "navigate('page', -1)": "a page of newer packets",
    "navigate('page', 1)": "a page of older packets",
    "navigate('home')": "back to the newest packet, following new ones again",
    "navigate('end')": "the oldest packet kept",
    "inspect": "packet inspector: every stage of the selected packet with its time, CPU, "
    "queue, flow, sender and how it ended",
    "cycle_scale": "waterfall time scale: per row (each bar fills its row) / shared linear "
    "/ shared log",
    "toggle_stats": "stage percentiles (p50/p90/p99/max per stage) instead of the packet rows",
    "filter": "filter the packets shown: dev= comm= pid= proto= port= host=; pid, proto, "
    "port and host are also checked in the kernel, so only matching packets are sampled",
    "talkers": "top talkers of each TX queue: flows and processes, estimated from the "
    "sampled packets",
    "sampling(1)": "sample fewer packets: the next larger N of 1 in N",
    "sampling(-1)": "sample more packets: the next smaller N of 1 in N",
}


def waterfall_keys() -> list[tuple[str, str]]:
    """The waterfall's own keys (active while it has focus, which it has at start)."""
    from txtop.tui.waterfall import Waterfall

    out = []
    for binding in Waterfall.BINDINGS:
        if isinstance(binding, Binding):
            keys = ", ".join(_KEY_NAMES.get(k, k) for k in binding.key.split(","))
            out.append((keys, WATERFALL_ACTIONS.get(binding.action, binding.description)))
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


def probe_details(snapshot: Snapshot | None) -> list[tuple[str, str]]:
    """The probes' state in full: what the header's probe line shortens (the kernel headers
    used, what is unavailable and why, the filters pushed to the kernel)."""
    if snapshot is None:
        return [("state", "no data yet")]
    p = snapshot.probes
    rows = [("state", p.state + (f": {p.reason}" if p.reason else ""))]
    for note in (n.strip() for n in p.notice.split(";")):
        if note:
            rows.append(("note", note))
    for what, why in sorted(p.unavailable.items()):
        rows.append((what, f"unavailable: {why}"))
    if p.hooks:  # raw tracepoints (BTF offsets) or classic ones, per tracepoint
        for form in sorted(set(p.hooks.values())):
            names = sorted(tp for tp, f in p.hooks.items() if f == form)
            rows.append((f"{form} hooks", ", ".join(names)))
    if p.sampling:
        rows.append(("sampling", ", ".join(f"{k} {v}" for k, v in sorted(p.sampling.items()))))
    if p.filters:
        rows.append(("filters", ", ".join(f"{k}={v}" for k, v in sorted(p.filters.items()))))
    return rows


def help_text(width: int = 66, snapshot: Snapshot | None = None) -> str:
    """Plain text of the help screen (no markup), wrapped to ``width``; also used by tests.
    With ``snapshot``, the probes' details as of that snapshot come last."""
    lines = ["txtop: live view of the Linux transmit path"]
    lines += _entries("Keys", list(KEYS), width)
    lines += _entries("Packet waterfall keys", waterfall_keys(), width)
    lines += _entries("TX queues columns", [(c.title, c.help) for c in QUEUE_COLUMNS], width)
    notes = (
        "'no BQL' marks devices without byte queue limits (veth, lo, ...); a mark on the BQL "
        "bar shows the peak bytes in flight since the last refresh (sampled --bql-hz times a "
        "second), beside the current value. A device row "
        "carries device-wide rates; the tx-N rows under it are its queues. pkt/s counts "
        "packets as the device's counters do (a GSO packet once), seg/s the GSO segments "
        "(as tc does). Latencies come from sampled packets: 'bypass' in p99q means every "
        "packet sampled on that queue skipped its empty qdisc (no wait to sample), '-' that "
        "none was sampled there. Under heavy "
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
    if snapshot is not None:
        lines += _entries(
            "Probes now (the header's second line, in full)", probe_details(snapshot), width
        )
    return "\n".join(lines)


class HelpScreen(ModalScreen[None]):
    """The help: keys, columns, and the probes' details as of ``snapshot``. The text box has
    the focus from the start, so up / down, PgUp / PgDn, Home / End scroll it at once (the
    app's AUTO_FOCUS names the waterfall, which this screen does not have)."""

    AUTO_FOCUS = "#help-box"
    BINDINGS = [
        Binding("escape", "dismiss_help", "Close", show=False),
        Binding("question_mark", "dismiss_help", "Close", show=False),
        Binding("q", "dismiss_help", "Close", show=False),
    ]

    def __init__(self, snapshot: Snapshot | None = None) -> None:
        super().__init__()
        self.snapshot = snapshot

    def compose(self) -> ComposeResult:
        # The box is 90% of the screen, at most 110 columns; wrap inside its border/padding.
        width = max(40, min(110, self.app.size.width * 9 // 10) - 6)
        with VerticalScroll(id="help-box"):
            yield Static(help_text(width, self.snapshot), id="help-text", markup=False)

    def on_mount(self) -> None:
        box = self.query_one("#help-box")
        box.border_title = "help"
        box.border_subtitle = "up/down PgUp/PgDn: scroll - escape / ? / q: close"

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
