"""Bounded recordings (recordings/rotation.py): --record FILE --max-size SIZE --keep N.

Every part is a complete recording on its own, the frames run on in order from one part to the
next with none lost or split, the set stays within its bound (plus one frame), rotation touches
no file it did not make, a full disk (a small tmpfs) stops it cleanly, and --replay plays a set
(files in any order, or their directory) as one recording. SYNTHETIC data here; the demo lab's
rotation is in tests/test_record_roundtrip.py (root).
"""

from __future__ import annotations

import json
import os
import random
import stat
from pathlib import Path

import pytest
from fs_helpers import needs_mount, small_tmpfs
from test_cli import txtop

from txtop.core.model import Snapshot
from txtop.lab.synthetic import make_snapshot
from txtop.recordings.recording import (
    HEADER_BYTES,
    Recorder,
    RecordingError,
    RecordingInfo,
    RecordingSink,
    encode_frame,
    read_recording,
)
from txtop.recordings.rotation import (
    DEFAULT_KEEP,
    RotatingRecorder,
    parse_size,
    part_name,
    read_set,
)


def synthetic(n: int, start: int = 1, interval_s: float = 1.0) -> list[Snapshot]:
    return [make_snapshot(2, 2, tick=i, interval_s=interval_s) for i in range(start, start + n)]


def check_set(parts: list[Path], written: list[Snapshot], max_bytes: int, keep: int) -> None:
    """Each part replays whole; together they are the last frames written, in order, none
    lost; each part within max_bytes unless it holds one frame; the set within the bound."""
    assert 1 <= len(parts) <= keep
    played: list[Snapshot] = []
    biggest = max(len(encode_frame(s, RecordingInfo(set_id="x" * 16, part=999))) for s in written)
    sets = set()
    for p in parts:
        result = read_recording(p)
        assert result.intact, (p, result.damage)
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
        assert p.stat().st_size <= max_bytes or len(result.snapshots) == 1
        sets.add(result.info.set_id)
        played += result.snapshots
    assert len(sets) == 1 and "" not in sets
    assert played == written[len(written) - len(played) :]  # the newest frames, in order
    assert sum(p.stat().st_size for p in parts) <= keep * max_bytes + biggest
    parts_no = [read_recording(p).info.part for p in parts]
    assert parts_no == list(range(parts_no[0], parts_no[0] + len(parts)))


# ---- sizes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [("4K", 4096), ("100M", 100 << 20), ("1G", 1 << 30), ("2g", 2 << 30), ("1.5M", 3 << 19)]
    + [("65536", 65536), ("512KiB", 512 << 10), (" 8k ", 8192), ("10MB", 10 << 20)],
)
def test_sizes(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "M", "1T", "-1M", "1K", "3G", "1e6", "ten", "1 M B", "0"])
def test_bad_sizes(text):
    with pytest.raises(ValueError):
        parse_size(text)


# ---- rotation -------------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [1, 2, 4])
def test_rotation_keeps_n_complete_parts_in_order(tmp_path, keep):
    path = tmp_path / "r.txtop"
    written = synthetic(120)
    max_bytes = 8 << 10
    with RotatingRecorder(path, max_bytes, keep) as rec:
        for snap in written:
            rec.write(snap)
        assert rec.frames == 120 and rec.rotations > keep
    parts = [part_name(path, i) for i in range(keep - 1, -1, -1)]
    assert sorted(tmp_path.iterdir()) == sorted(parts)
    check_set(parts, written, max_bytes, keep)
    assert read_recording(path).info.part == rec.rotations  # FILE is always the newest


def test_a_frame_bigger_than_the_size_gets_a_part_of_its_own(tmp_path):
    path = tmp_path / "r.txtop"
    small, big = synthetic(3), make_snapshot(512, 256, tick=9)
    max_bytes = 4 << 10
    assert len(encode_frame(big)) > max_bytes
    with RotatingRecorder(path, max_bytes, 3) as rec:
        for snap in [*small, big, *synthetic(2, start=10)]:
            rec.write(snap)
    counts = [len(read_recording(p).snapshots) for p in rec.parts()]
    assert 1 in counts and sum(counts) <= 6


def test_rotation_through_the_sink_encodes_once_and_hands_every_snapshot_on(tmp_path):
    seen: list[Snapshot] = []
    rec = RotatingRecorder(tmp_path / "r.txtop", 6 << 10, 3)
    sink = RecordingSink(rec, seen.append)
    written = synthetic(40)
    for snap in written:
        sink(snap)
    sink.close()
    assert seen == written and sink.error == "" and sink.frames == 40
    check_set(rec.parts(), written, 6 << 10, 3)


def test_rotation_refuses_to_start_over_an_existing_set_and_never_touches_other_files(tmp_path):
    path = tmp_path / "r.txtop"
    (tmp_path / "r.txtop.2").write_bytes(b"earlier run")
    with pytest.raises(RecordingError, match=r"r\.txtop\.2: already exists"):
        RotatingRecorder(path, 4 << 10, 3)
    assert not path.exists()
    (tmp_path / "r.txtop.2").unlink()
    path.write_bytes(b"mine")
    with pytest.raises(RecordingError, match="already exists"):
        RotatingRecorder(path, 4 << 10, 3)
    path.unlink()
    beyond = tmp_path / "r.txtop.3"  # outside --keep 3: never renamed or removed
    beyond.write_bytes(b"other")
    with RotatingRecorder(path, 4 << 10, 3) as rec:
        for snap in synthetic(30):
            rec.write(snap)
    assert beyond.read_bytes() == b"other"
    assert DEFAULT_KEEP == 5


@needs_mount
def test_a_full_disk_during_rotation_leaves_only_complete_parts(tmp_path):
    disk = tmp_path / "disk"
    with small_tmpfs(disk, size="40k"):
        seen: list[Snapshot] = []
        rec = RotatingRecorder(disk / "r.txtop", 8 << 10, 20)
        sink = RecordingSink(rec, seen.append)
        written = synthetic(60)
        for snap in written:
            sink(snap)
        assert "No space left on device" in sink.error and str(disk) in sink.error
        assert seen == written  # the data went on
        assert rec.closed
        parts = rec.parts()
        assert len(parts) >= 2
        for p in parts:  # cut back to whole frames, or removed when it held none
            result = read_recording(p)
            assert result.intact, (p, result.damage)
            assert p.stat().st_size > HEADER_BYTES
        played = [s for p in parts for s in read_recording(p).snapshots]
        assert played == written[: len(played)]  # nothing lost before the disk filled
        assert sorted(disk.iterdir()) == sorted(parts)


def test_a_full_disk_in_a_plain_recording_cuts_back_to_the_last_whole_frame(tmp_path):
    class Short(Recorder):
        """The disk fills half way through the fourth frame."""

        def _write_all(self, data: bytes) -> None:
            if self.frames == 3:
                super()._write_all(data[: len(data) // 2])
                raise OSError(28, "No space left on device")
            super()._write_all(data)

    path = tmp_path / "r.txtop"
    rec = Short(path)
    written = synthetic(5)
    with pytest.raises(OSError):
        for snap in written:
            rec.write(snap)
    rec.close()
    result = read_recording(path)
    assert result.intact and result.snapshots == written[:3]


# ---- replaying a set ------------------------------------------------------------------------


@pytest.fixture
def rotated(tmp_path) -> tuple[list[Path], list[Snapshot]]:
    path = tmp_path / "set" / "r.txtop"
    path.parent.mkdir()
    written = synthetic(80)
    with RotatingRecorder(path, 6 << 10, 4) as rec:
        for snap in written:
            rec.write(snap)
    return rec.parts(), written


def test_read_set_orders_parts_by_the_set_not_by_name(rotated, tmp_path):
    parts, written = rotated
    shuffled = parts[:]
    random.Random(3).shuffle(shuffled)
    renamed = []
    for i, p in enumerate(shuffled):  # names that say nothing about the order
        new = tmp_path / f"copy-{i}.txtop"
        os.link(p, new)
        renamed.append(new)
    for paths in (shuffled, renamed, [parts[0].parent], [parts[0].parent, *parts]):
        result = read_set(paths)
        assert result.damage == ""
        assert result.snapshots == written[len(written) - len(result.snapshots) :]
        assert len(result.files) == len(parts)
        assert result.notice.startswith("rotated recording: parts ")


def test_read_set_names_a_gap_and_a_damaged_part(rotated):
    parts, written = rotated
    middle = parts[1]
    data = middle.read_bytes()
    middle.write_bytes(data[:-40])
    result = read_set([parts[0], middle, parts[3]])
    assert result.notice.endswith(", part " + str(read_recording(parts[2]).info.part) + " missing")
    assert result.damage.startswith(f"{middle.name}: truncated after frame")
    times = [s.time for s in result.snapshots]
    assert times == sorted(times)


def test_read_set_refuses_recordings_that_overlap(tmp_path):
    a, b = tmp_path / "a.txtop", tmp_path / "b.txtop"
    for path, snaps in ((a, synthetic(10)), (b, synthetic(10, start=5))):
        with Recorder(path) as rec:
            for snap in snaps:
                rec.write(snap)
    with pytest.raises(RecordingError, match="overlap in time"):
        read_set([a, b])
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecordingError, match="holds no txtop recording"):
        read_set([tmp_path / "empty"])


def test_recordings_that_follow_each_other_play_as_one(tmp_path):
    a, b = tmp_path / "a.txtop", tmp_path / "b.txtop"
    for path, snaps in ((a, synthetic(5, start=20)), (b, synthetic(5, start=1))):
        with Recorder(path) as rec:
            for snap in snaps:
                rec.write(snap)
    result = read_set([a, b])
    assert [s.time for s in result.snapshots] == sorted(s.time for s in result.snapshots)
    assert result.notice == "2 recordings played as one"


# ---- the command line -------------------------------------------------------------------------


def lines(res) -> list[dict]:
    assert res.returncode == 0, res.stderr
    return [json.loads(line) for line in res.stdout.splitlines()]


def test_headless_rotation_and_replay_of_the_set(tmp_path):
    path = tmp_path / "r.txtop"
    res = txtop(
        "--synthetic", "2x2", "-d", "0.1", "--headless", "--record", str(path),
        "--max-size", "8K", "--keep", "3", "--duration", "5", timeout=120,
    )  # fmt: skip
    assert res.returncode == 0 and res.stdout == "" and res.stderr == "", res.stderr
    parts = [part_name(path, i) for i in (2, 1, 0)]
    assert sorted(tmp_path.iterdir()) == sorted(parts), "five seconds should fill three parts"
    total = 0
    for p in parts:  # each part replays on its own
        out = json.loads(txtop("--replay", str(p), "--once").stdout)
        assert out["replay"]["count"] == len(read_recording(p).snapshots)
        total += out["replay"]["count"]
        assert p.stat().st_size <= 8 << 10
    # As the shell expands r.txtop*: r.txtop r.txtop.1 r.txtop.2, newest first.
    as_glob = sorted(str(p) for p in parts)
    for args in (as_glob, [str(tmp_path)]):
        frames = lines(txtop("--replay", *args, "--headless"))
        assert len(frames) == total
        times = [f["time"] for f in frames]
        assert times == sorted(times) and len(set(times)) == len(times)
        steps = {round(b - a, 6) for a, b in zip(times, times[1:], strict=False)}
        assert steps == {0.1}  # no frame lost across the parts
    res = txtop("--replay", *as_glob, "--once")
    assert res.returncode == 0 and "rotated recording: parts " in res.stderr


def test_replay_of_a_set_refuses_overlapping_files_in_one_line(tmp_path):
    a, b = tmp_path / "a.txtop", tmp_path / "b.txtop"
    for path in (a, b):
        with Recorder(path) as rec:
            for snap in synthetic(4):
                rec.write(snap)
    res = txtop("--replay", str(a), str(b), "--once")
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "overlap in time" in res.stderr
    res = txtop("--replay", str(a), str(tmp_path / "missing"), "--once")
    assert res.returncode == 2 and "no such file" in res.stderr


def test_the_bundled_recording_replays_with_the_new_reader():
    from txtop.tui.sources import bundled_recording_path, load_recordings

    with bundled_recording_path() as path:
        one = load_recordings([str(path)])
        also = read_set([path])
    assert one.notice == "" and one.damage == ""
    assert len(one.snapshots) == len(also.snapshots) > 10
    assert read_recording(path).info == RecordingInfo()
