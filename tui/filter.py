"""The packet filter prompt (`/` in the waterfall).

The screen only edits a ``FilterSpec``; the waterfall applies it and posts ``FilterChanged``
(``txtop.tui.messages``) for the app, which pushes the kernel part into the tracer.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from txtop.core.filters import FilterError, FilterSpec

__all__ = ["FILTER_HELP", "FilterScreen"]


FILTER_HELP = "\n".join(
    (
        "key=value terms, all must match; commas list alternatives:",
        "  dev=eth0,veth*  comm=iperf3  pid=1234  port=5201 or 5000-5010",
        "  proto=ipv4|ipv6|arp|vlan|tcp|udp|icmp|N, or just 'tcp'  host=10.0.0.0/8,fd00::1",
        "Protocol, ports and addresses are read from each packet's own headers;",
        "pid and comm name its sender (the send syscall, or its socket's owner).",
        "dev, pid, proto, port and host also filter in the kernel, before sampling",
        "(1 in N of the matching packets is traced). comm filters the rows only.",
        "Empty clears the filter. Enter applies, Escape cancels.",
    )
)


class FilterScreen(ModalScreen[FilterSpec | None]):
    """Edit the packet filter; dismisses with the new spec, or None when cancelled."""

    DEFAULT_CSS = """
    FilterScreen {
        align: center middle;
    }
    FilterScreen > Vertical {
        width: 90%;
        max-width: 100;
        height: auto;
        padding: 0 1;
        border: round $primary;
        background: $surface;
    }
    FilterScreen #filter-help {
        color: $text-muted;
    }
    FilterScreen #filter-error {
        color: $error;
        text-style: bold;
        height: auto;
    }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: FilterSpec) -> None:
        super().__init__()
        self._current = current

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Filter packets", id="filter-title")
            yield Input(
                value=self._current.to_string(),
                placeholder="dev=eth0 comm=iperf3 tcp port=5201",
                id="filter-input",
            )
            yield Label("", id="filter-error")
            yield Static(FILTER_HELP, id="filter-help", markup=False)

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def _parse(self, text: str) -> FilterSpec | None:
        error = self.query_one("#filter-error", Label)
        try:
            spec = FilterSpec.parse(text)
        except FilterError as exc:
            error.update(str(exc))
            return None
        error.update("")
        return spec

    def on_input_changed(self, event: Input.Changed) -> None:
        self._parse(event.value)  # live feedback; nothing is applied until Enter

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        spec = self._parse(event.value)
        if spec is not None:
            self.dismiss(spec)

    def action_cancel(self) -> None:
        self.dismiss(None)
