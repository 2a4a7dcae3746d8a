"""What the dashboard may ask of a data source beyond its snapshots, as small protocols.

A source hands the UI immutable snapshots (core/source.py); a few sources also take orders:
a recording can be paused, stepped, sought and sped up, and running probes can change their
sampling and packet filter. The UI depends on these protocols, never on the concrete sources.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from txtop.core.filters import FilterSpec
from txtop.core.model import Snapshot


class ReplayControls(Protocol):
    """A source playing a recording (recordings/replay.py ReplaySource). Thread-safe: the UI
    calls these while the source's thread plays."""

    @property
    def paused(self) -> bool: ...

    @property
    def speed(self) -> float: ...

    def set_paused(self, paused: bool) -> None: ...

    def faster(self) -> None: ...

    def slower(self) -> None: ...

    def step(self, frames: int = 1) -> None:
        """Move by ``frames`` (negative: back) and pause there."""

    def seek_relative(self, delta_s: float) -> None: ...

    def frames(self, index: int, seconds: float) -> Sequence[Snapshot]:
        """The recorded snapshots from ``seconds`` before frame ``index`` up to and including
        it, oldest first: what a view that keeps history needs after a jump (a seek)."""
        ...


class TracerControls(Protocol):
    """What the dashboard may change in running probes (None when no probes run)."""

    def set_sampling(self, every: int, max_per_s: int) -> None:
        """Trace one packet in ``every``, at most ``max_per_s`` a second. Raises ValueError
        or OSError when the probes refuse."""

    def set_filter(self, spec: FilterSpec) -> None:
        """Push the kernel part of the waterfall's filter down. Raises ValueError or OSError."""


class Notices(Protocol):
    """What a source (or a recording read for replay) has to tell the user about its data."""

    @property
    def notice(self) -> str:
        """One line about where the data comes from ("" when there is nothing to say)."""

    @property
    def damage(self) -> str:
        """Why the data ends early, such as a damaged recording ("" when it does not)."""
