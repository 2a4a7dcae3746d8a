"""The dashboard's keys while it plays a recording: they act on the recording itself.

``space`` pauses and plays it, ``+`` / ``-`` make it slower / faster, ``.`` / ``,`` step one
tick and pause there, ``<`` / ``>`` (or left / right) seek SEEK_STEP_S seconds.
"""

from __future__ import annotations

from collections.abc import Callable

from txtop.core.controls import ReplayControls

SEEK_STEP_S = 10.0
KEY_HINTS = [
    ("q", "Quit"),
    ("space", "Play/pause"),
    (".", "Step"),
    (",", "Back"),
    ("< >", "Seek 10s"),
    ("+ -", "Speed"),
    ("?", "Help"),
    ("t", "Theme"),
    ("s", "Sort"),
]


class ReplayKeys:
    """Key actions on ``controls``; ``notify`` shows a short-lived line to the user."""

    def __init__(self, controls: ReplayControls, notify: Callable[[str], None]) -> None:
        self.controls = controls
        self._notify = notify

    def toggle_pause(self) -> None:
        # The header shows PAUSED from the frame, which the source sends again.
        self.controls.set_paused(not self.controls.paused)

    def change_speed(self, direction: int) -> None:
        """+ (direction > 0) is slower and - faster, as they are on the refresh interval live."""
        if direction > 0:
            self.controls.slower()
        else:
            self.controls.faster()
        self._notify(f"replay speed {self.controls.speed:g}x")

    def step(self, frames: int) -> None:
        self.controls.step(frames)

    def seek(self, direction: int) -> None:
        self.controls.seek_relative(direction * SEEK_STEP_S)
