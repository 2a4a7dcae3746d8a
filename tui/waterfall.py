"""The packet waterfall panel. Interface stub; the waterfall issue owns this file."""

from __future__ import annotations

from textual.widgets import Static

from txtop.probes.model import Snapshot


class Waterfall(Static):
    """Shows sampled packet traces; until then, says why there are none."""

    def update_snapshot(self, snapshot: Snapshot) -> None:
        probes = snapshot.probes
        if probes.state != "running":
            why = probes.reason or probes.state
            self.update(f"Packet waterfall: probes {probes.state}" + (f": {why}" if why else ""))
        else:
            self.update(f"Packet waterfall: {len(snapshot.packets)} packets this tick")
