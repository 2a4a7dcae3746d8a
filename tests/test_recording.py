"""Recording format: round trip, damage handling, refusal of non-recordings, fuzzing."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from txtop.core.findings import with_findings
from txtop.core.model import (
    BqlStats,
    CpuRow,
    DeviceRow,
    LatencyStats,
    PacketTrace,
    ProbeStatus,
    QdiscStats,
    QueueRow,
    ReplayPosition,
    Snapshot,
    TxStats,
)
from txtop.recordings.recording import (
    MAGIC,
    Recorder,
    RecordingError,
    iter_frames,
    read_recording,
    snapshot_json,
)
from txtop.recordings.replay import ReplaySource, Timeline, aggregate, snapshot_at


def make_snapshot(i: int, pps: float = 100.0) -> Snapshot:
    """A synthetic snapshot (values shaped like a real veth lab run)."""
    base_ns = 1_000_000_000 * (i + 1)
    pkt = PacketTrace(
        pid=4242,
        tid=4242,
        comm="udpgen",
        dev="txlda",
        ifindex=7,
        queue=1,
        len=98,
        gso_segs=1,
        stages={
            "sendto": base_ns,
            "dev_queue": base_ns + 4_000,
            "qdisc_enqueue": base_ns + 5_000,
            "qdisc_dequeue": base_ns + 90_000 + i * 1000,
            "start_xmit": base_ns + 92_000,
            "xmit": base_ns + 95_000,
        },
        cpus={"sendto": 0, "dev_queue": 0},
        track="complete",
        xmit_rc=0,
    )
    q = QueueRow(
        dev="txlda",
        ifindex=7,
        queue=1,
        bql=None,
        qdisc=QdiscStats(
            kind="tbf",
            handle="8002:",
            parent="1:2",
            qlen=3,
            backlog_bytes=294,
            backlog_pkts=3,
            drops=i,
            requeues=0,
            overlimits=10 * i,
            bytes=9800 * i,
            packets=100 * i,
            drops_per_s=float(i),
            per_queue=True,
        ),
        tx=TxStats(pps=pps, bps=pps * 98 * 8, packets=100 * i, bytes=9800 * i, source="qdisc"),
        latency_ns={"qdisc": LatencyStats(p50=85_000, p90=88_000, p99=90_000, max=91_000, count=3)},
    )
    eth = QueueRow(
        dev="eth0",
        ifindex=2,
        queue=0,
        bql=BqlStats(
            inflight=0,
            limit=4542,
            limit_min=0,
            limit_max=1879048192,
            hold_time=1000,
            stall_thrs=0,
            stall_cnt=0,
            stall_max=0,
        ),
        qdisc=None,
        tx=None,
    )
    return Snapshot(
        host="lab",
        kernel="6.18.44",
        time=1_790_000_000.0 + i,
        mono_ns=base_ns + 100_000,
        interval_s=1.0,
        mode="live",
        interfaces=("eth0", "txlda"),
        devices=(
            DeviceRow(
                dev="txlda",
                ifindex=7,
                tx_queues=4,
                has_bql=False,
                oper_state="up",
                root_qdisc="mq",
                tx_packets=100 * i,
                tx_bytes=9800 * i,
                tx_dropped=0,
                tx_errors=0,
                tx_pps=pps,
                tx_bps=pps * 784,
            ),
        ),
        queues=(eth, q),
        cpus=(
            CpuRow(
                cpu=0,
                net_tx_per_s=5.0 * i,
                net_rx_per_s=50.0,
                softirq_pct=2.5,
                softnet_processed_per_s=40.0,
                softnet_dropped=0,
                time_squeeze=i,
            ),
        ),
        packets=(pkt,),
        probes=ProbeStatus(
            state="running", lost_events=0, sampling={"every": 64, "max_per_s": 200}
        ),
    )


def write_recording(path, n=5):
    with Recorder(path) as rec:
        for i in range(n):
            rec.write(make_snapshot(i, pps=100.0 * (i + 1)))


def test_round_trip_is_exact(tmp_path):
    path = tmp_path / "r.txtop"
    write_recording(path)
    res = read_recording(path)
    assert res.intact
    assert res.snapshots == [make_snapshot(i, pps=100.0 * (i + 1)) for i in range(5)]


def test_created_0600_and_never_overwrites(tmp_path):
    path = tmp_path / "r.txtop"
    write_recording(path, n=1)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(RecordingError, match="already exists"):
        Recorder(path)


def test_append_continues_a_recording(tmp_path):
    path = tmp_path / "r.txtop"
    write_recording(path, n=2)
    with Recorder(path, append=True) as rec:
        rec.write(make_snapshot(7))
    assert [s.time for s in read_recording(path).snapshots][-1] == make_snapshot(7).time


def test_truncated_file_replays_what_is_intact(tmp_path):
    path = tmp_path / "r.txtop"
    write_recording(path, n=5)
    data = path.read_bytes()
    path.write_bytes(data[:-7])
    res = read_recording(path)
    assert len(res.snapshots) == 4
    assert "truncated after frame 4" in res.damage


def test_flipped_byte_stops_at_checksum(tmp_path):
    path = tmp_path / "r.txtop"
    write_recording(path, n=3)
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    res = read_recording(path)
    assert len(res.snapshots) == 2
    assert "checksum mismatch in frame 3" in res.damage


@pytest.mark.parametrize("content", [b"", b"hello world", b"\x00" * 64, b"TXTOPRE"])
def test_not_a_recording(tmp_path, content):
    path = tmp_path / "x"
    path.write_bytes(content)
    with pytest.raises(RecordingError, match="not a txtop recording"):
        read_recording(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(RecordingError, match="no such file"):
        read_recording(tmp_path / "nope")
    with pytest.raises(RecordingError, match="is a directory"):
        read_recording(tmp_path)


def test_future_format_version_is_refused(tmp_path):
    path = tmp_path / "r"
    path.write_bytes(MAGIC + struct.pack(">HH", 99, 0))
    with pytest.raises(RecordingError, match="format 99"):
        read_recording(path)


def test_valid_frame_with_json_that_is_not_a_snapshot(tmp_path):
    payload = zlib.compress(b'{"queues": 5}')
    data = MAGIC + struct.pack(">HH", 1, 0) + struct.pack(">II", len(payload), zlib.crc32(payload))
    items = list(iter_frames(data + payload))
    assert len(items) == 1 and "undecodable frame 1" in items[0]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048), st.integers(min_value=0, max_value=4000))
def test_fuzz_reader_never_raises_unexpectedly(junk, cut):
    path_bytes = bytearray()
    good = bytearray(MAGIC + struct.pack(">HH", 1, 0))
    payload = zlib.compress(b"{}")
    good += struct.pack(">II", len(payload), zlib.crc32(payload)) + payload
    for data in (bytes(junk), bytes(good) + junk, bytes(good + junk)[:cut], MAGIC + junk):
        try:
            for item in iter_frames(data):
                assert isinstance(item, (Snapshot, str))
        except RecordingError:
            pass
    del path_bytes


def test_replay_source_plays_steps_and_seeks():
    snaps = [make_snapshot(i) for i in range(6)]
    src = ReplaySource(snaps, speed=16.0)
    got = [src._produce() for _ in range(3)]
    assert [g.replay.index for g in got] == [0, 1, 2]
    assert all(g.mode == "replay" for g in got)
    src.step(-1)
    assert src._produce().replay.index == 1
    assert src._produce() is None  # paused after a step: nothing new
    src.step(2)
    assert src._produce().replay.index == 3
    src.seek(5.0)  # seconds from the start of the recording
    snap = src._produce()
    assert snap.replay.index == 4 and snap.replay.at_s == 5.0
    src.set_paused(False)
    assert src._produce().replay.index == 5


def test_replay_holds_last_frame_at_the_end():
    src = ReplaySource([make_snapshot(0), make_snapshot(1)])
    assert src._produce().replay.index == 0
    last = src._produce()
    assert last.replay.index == 1 and last.replay.paused is True
    assert src._produce() is None


def test_speed_is_clamped_and_changes_pace():
    src = ReplaySource([make_snapshot(i) for i in range(3)])
    for _ in range(10):
        src.faster()
    assert src.speed == 16.0
    src._produce()
    assert src.interval_s == pytest.approx(1.0 / 16.0, abs=0.06)
    for _ in range(10):
        src.slower()
    assert src.speed == 0.25


def test_aggregate_window_and_at():
    # With findings already (as recorded live), so the timeline keeps the very frames.
    snaps = list(with_findings([make_snapshot(i, pps=100.0 * (i + 1)) for i in range(4)]))
    agg = aggregate(snaps)
    assert agg.interval_s == 4.0
    assert len(agg.packets) == 4
    q = next(q for q in agg.queues if q.dev == "txlda")
    assert q.tx.pps == pytest.approx(250.0)  # mean of 100, 200, 300, 400
    assert q.qdisc.drops == 3  # cumulative: from the last frame
    assert snapshot_at(snaps, 2.0) is snaps[1]
    assert snapshot_at(snaps, 0.0) is snaps[0]
    assert snapshot_at(snaps, 99.0) is snaps[-1]


# ---- the replay position in the JSON ----------------------------------------------------------


@pytest.mark.parametrize("window", [None, "all", "frame"])
def test_replay_position_json_keys_order_and_round_trip(window):
    timeline = Timeline(tuple(make_snapshot(i) for i in range(3)), damage="cut", notice="hi")
    position = timeline.position(1, speed=None, paused=True, jump=False, window=window)
    snap = dataclasses.replace(timeline.snapshots[1], mode="replay", replay=position)
    data = json.loads(snapshot_json(snap))
    keys = ["index", "count", "at_s", "total_s", "speed", "paused", "damage", "notice", "jump"]
    assert list(data["replay"]) == keys + ([] if window is None else ["window"])
    assert data["replay"]["at_s"] == 2.0 and data["replay"]["total_s"] == 3.0
    back = Snapshot.from_dict(data)
    assert back == snap and isinstance(back.replay, ReplayPosition)
    assert snapshot_json(back) == snapshot_json(snap)
    assert dict(position) == data["replay"] and position["notice"] == "hi"  # the mapping view


def test_replay_position_given_as_its_json_form_and_malformed_ones():
    position = {"index": 0, "count": 1, "at_s": 1.0, "total_s": 1.0, "speed": 2.0}
    position |= {"paused": False, "damage": "", "notice": "", "jump": True}
    snap = dataclasses.replace(make_snapshot(0), replay=position)
    assert isinstance(snap.replay, ReplayPosition) and snap.replay.jump
    data = snap.to_dict()
    for bad in ("x", [], {"index": 0}, {**position, "paused": "no"}, {**position, "index": True}):
        with pytest.raises(ValueError):
            Snapshot.from_dict({**data, "replay": bad})
    assert Snapshot.from_dict({**data, "replay": None}).replay is None


def test_the_bundled_recording_still_replays():
    from txtop.tui.sources import bundled_recording_path, load_recording

    with bundled_recording_path() as path:
        timeline = load_recording(path)
    assert timeline.damage == "" and len(timeline.snapshots) > 10
    assert all(s.replay is None for s in timeline.snapshots)
    frame = ReplaySource(timeline.snapshots)._produce()
    assert frame is not None and frame.replay == timeline.position(
        0, speed=1.0, paused=False, jump=False
    )
