"""Every message the dashboard's widgets and workers post, in one module.

Each is a small dataclass; Textual names the handler after the class (``FilterChanged`` ->
``on_filter_changed``), so a class keeps its name when it moves here. ``can_replace`` lets a
newer message of the same kind replace an older one still waiting in the queue.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from txtop.core.filters import FilterSpec


@dataclass
class FilterChanged(Message):
    """The user set a new packet filter in the waterfall (an empty spec clears it).

    The app pushes the kernel part into the tracer (``FilterSpec.kernel_filter``); the
    waterfall has already filtered its own rows.
    """

    spec: FilterSpec


@dataclass
class SamplingChanged(Message):
    """The user asked the tracer to trace one packet in ``every``."""

    every: int

    def can_replace(self, message: Message) -> bool:
        # Several quick presses of [ or ]: only the last rate matters.
        return isinstance(message, SamplingChanged)
