"""The dashboard's flight recorder (--flight): ``w`` or SIGUSR1 writes its window now.

The recorder writes on its own thread and says where through ``on_write``; a path is text,
not markup.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

from txtop.recordings.flight import FlightRecorder, FlightWrite
from txtop.recordings.recording import RecordingSink


class FlightKeys:
    """``notify`` is the app's (thread-safe); ``replaying`` when the source plays a recording."""

    def __init__(
        self, recording: RecordingSink | None, replaying: bool, notify: Callable[..., Any]
    ) -> None:
        self.recording = recording
        self.replaying = replaying
        self._notify = notify
        self._signal = False

    @property
    def recorder(self) -> FlightRecorder | None:
        return self.recording.flight if self.recording is not None else None

    def install(self, handle_signals: bool) -> None:
        """On mount: report writes, and with the real terminal's signals SIGUSR1 writes (as
        with --headless)."""
        flight = self.recorder
        if flight is None:
            return
        flight.on_write = self._written
        if handle_signals:
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, self.write, "signal")
            self._signal = True

    def remove(self) -> None:
        if self._signal:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)
            self._signal = False

    def write(self, trigger: str) -> None:
        """w (or SIGUSR1): write the flight recorder's window; the writer thread says where."""
        flight = self.recorder
        if self.replaying:
            self._notify("flight recorder: not available in replay", timeout=3)
        elif flight is None:
            self._notify("no flight recorder: start txtop with --flight SECONDS", timeout=3)
        elif why_not := flight.request(trigger):
            self._notify(
                f"flight recording not written: {why_not}", severity="warning", markup=False
            )

    def _written(self, result: FlightWrite) -> None:
        """On the flight recorder's writer thread."""
        if result.ok:
            self._notify(result.line(), timeout=10, markup=False)
        else:
            self._notify(result.line(), severity="error", timeout=20, markup=False)
