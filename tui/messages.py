"""Every message the dashboard's widgets and workers post, in one module.

Each is a small dataclass; Textual names the handler after the class (``FilterChanged`` ->
``on_filter_changed``), so a class keeps its name when it moves here. ``eq=False`` keeps
Textual's identity semantics (a message stays hashable). ``can_replace`` lets a newer message of
the same kind replace an older one still waiting in the queue.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field

from textual.message import Message

from txtop.core.filters import FilterSpec
from txtop.core.model import PacketTrace, Snapshot


@dataclass(eq=False)
class FilterChanged(Message):
    """The user set a new packet filter in the waterfall (an empty spec clears it).

    The app pushes the kernel part into the tracer (``FilterSpec.kernel_filter``); the
    waterfall has already filtered its own rows.
    """

    spec: FilterSpec


@dataclass(eq=False)
class SamplingChanged(Message):
    """The user asked the tracer to trace one packet in ``every``."""

    every: int

    def can_replace(self, message: Message) -> bool:
        # Several quick presses of [ or ]: only the last rate matters.
        return isinstance(message, SamplingChanged)


_arrival_seq = itertools.count()


@dataclass(eq=False)
class SnapshotArrived(Message):
    """A new snapshot, posted from the source's thread (``post_message`` is thread-safe).

    Only the newest picture matters: a newer snapshot replaces an older one still waiting
    (``can_replace``), so a slow terminal never builds a backlog. The older one's sampled
    packets are per-interval, so they are not dropped: the newer one carries them (``merged``).
    """

    snapshot: Snapshot
    # Orders messages across threads (next() on a count is atomic under the GIL).
    seq: int = field(default_factory=_arrival_seq.__next__)
    carried: tuple[PacketTrace, ...] = ()  # packets of the snapshots this one replaced

    def can_replace(self, message: Message) -> bool:
        if not isinstance(message, SnapshotArrived):
            return False
        older, newer = sorted((self, message), key=lambda m: m.seq)
        newer.carried = older.carried + older.snapshot.packets + newer.carried
        older.carried = ()
        return True

    def merged(self) -> Snapshot:
        """The snapshot with the packets it carries."""
        if not self.carried:
            return self.snapshot
        if self.snapshot.replay is not None and self.snapshot.replay.jump:
            return self.snapshot  # a replay seek: packets from before the jump do not belong
        packets = self.carried + self.snapshot.packets
        return dataclasses.replace(self.snapshot, packets=packets)
