"""Recordings carry flow and sender identity (format 2), and format 1 files still replay."""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

from txtop.core.model import FlowInfo, PacketOwner, ProbeStatus, QueueRow
from txtop.core.talkers import TalkerWindow
from txtop.recordings.recording import (
    FORMAT_VERSION,
    MAGIC,
    READABLE_VERSIONS,
    Recorder,
    read_recording,
)
from txtop.tui.sources import bundled_recording_path

DATA = Path(__file__).parent / "data" / "recordings"


def test_a_format_1_recording_still_replays() -> None:
    path = DATA / "demo-v1.txtop"
    assert path.read_bytes()[8:10] == struct.pack(">H", 1)
    result = read_recording(path)
    assert result.intact and len(result.snapshots) == 3
    packets = [p for s in result.snapshots for p in s.packets]
    assert packets and all(p.flow is None and p.owner is None for p in packets)
    assert all(q.flows == () and q.processes == () for s in result.snapshots for q in s.queues)
    assert any(p.pid for p in packets)  # what format 1 had: the syscall tie's sender


def test_new_recordings_are_format_2_and_keep_flow_owner_and_talkers(tmp_path: Path) -> None:
    assert FORMAT_VERSION == 2 and READABLE_VERSIONS == (1, 2)
    flow = FlowInfo("ipv6", "fd00::1", "fd00::2", 6, 43512, 5201, 0x18, vlan=7)
    owner = PacketOwner(42, 43, "iperf3", "/lab.slice", "socket", 99)
    base = read_recording(DATA / "demo-v1.txtop").snapshots[-1]
    packet = dataclasses.replace(base.packets[0], flow=flow, owner=owner, queue=1)
    window = TalkerWindow()
    status = ProbeStatus("running", sampling={"sampled": 1, "rate_limited": 0})
    window.add([packet], status, 1.0, base.mono_ns, 100.0)
    queues = window.attach([QueueRow(packet.dev, 0, 1, None, None, None)])
    snap = dataclasses.replace(base, packets=(packet,), queues=queues)
    path = tmp_path / "r.txtop"
    rec = Recorder(path)
    rec.write(snap)
    rec.close()
    assert path.read_bytes()[:10] == MAGIC + struct.pack(">H", 2)
    (back,) = read_recording(path).snapshots
    assert back.packets[0].flow == flow and back.packets[0].owner == owner
    assert back.queues[0].flows == queues[0].flows and back.queues[0].flows[0].owner == owner


def test_the_bundled_demo_replays_with_owners_and_flows() -> None:
    with bundled_recording_path() as path:
        result = read_recording(path)
    assert result.intact and len(result.snapshots) >= 20
    packets = [p for s in result.snapshots for p in s.packets]
    named = [p for p in packets if p.owner is not None and p.owner.pid]
    assert len(named) >= 0.9 * len(packets)
    vias = {p.owner.via for p in named if p.owner}
    assert {"syscall", "socket"} <= vias  # UDP sendto() ties, TCP and write()/sendfile() sockets
    comms = {p.comm for p in named}
    assert {"udpgen", "tcpsend", "tcpwrite", "tcpsendfile"} <= comms, comms
    assert {p.flow.l4_proto for p in packets if p.flow} >= {6, 17}
    talkers = [t for s in result.snapshots for q in s.queues for t in q.flows]
    assert talkers and all(t.estimated for t in talkers)
