"""Bounded recordings: ``--record FILE --max-size SIZE --keep N``, and replaying such a set.

``FILE`` is always the part being written; when the next frame would take it past SIZE it is
closed, the older parts move up one name (``FILE.1`` -> ``FILE.2`` ...; the oldest, ``FILE.<N-1>``,
is deleted) and ``FILE`` becomes ``FILE.1``, and a new ``FILE`` starts with that frame. So at most
N files exist, each a complete recording on its own (header, then whole frames), the newest
always under the name asked for. No frame is lost or split across a rotation. Each part records
the run's set id and its part number (``RecordingInfo``), so a replay puts the parts in order
whatever their names have become.

Reading a set: ``read_set`` takes files and/or directories, reads every recording, orders them
(by part within one set, otherwise by time) and joins them into one sequence of snapshots; files
that overlap in time are not one recording and are refused.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from txtop.core.model import Snapshot
from txtop.recordings.recording import (
    MAGIC,
    MAX_RECORDING_BYTES,
    ReadResult,
    Recorder,
    RecordingError,
    RecordingInfo,
    encode_frame,
    fsync_dir,
    read_recording,
)

DEFAULT_KEEP = 5
MAX_KEEP = 1000
MIN_SIZE = 4 << 10  # room for the header and a few small frames
MAX_SIZE = MAX_RECORDING_BYTES  # a bigger part could not be replayed
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
OVERLAP_SLACK_S = 0.5  # clock noise tolerated between the end of a part and the next one


def parse_size(text: str) -> int:
    """``100M`` -> bytes (K, M, G are powers of 1024; a plain number is bytes). Raises
    ValueError with a one-line reason, also outside MIN_SIZE..MAX_SIZE."""
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"not a size such as 512K, 100M or 1G: {text!r}")
    value = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if not MIN_SIZE <= value <= MAX_SIZE:
        raise ValueError(f"must be 4K..2G, got {text!r}")
    return value


def part_name(path: Path, index: int) -> Path:
    """``FILE`` for 0 (the part being written), ``FILE.1`` for the one before it, ..."""
    return path if index == 0 else path.with_name(f"{path.name}.{index}")


class RotatingRecorder:
    """A Recorder that keeps each file under ``max_bytes`` and at most ``keep`` files.

    Same interface as Recorder for RecordingSink: ``write(snapshot, frame)``, ``close()``,
    ``closed``, ``frames`` (over all parts), ``path``. ``rotations`` counts the rotations done.
    Refuses to start when ``FILE`` or any ``FILE.1`` .. ``FILE.<keep-1>`` exists: rotation only
    ever renames and deletes files this recorder made.
    """

    def __init__(self, path: str | os.PathLike[str], max_bytes: int, keep: int = DEFAULT_KEEP):
        if not 1 <= keep <= MAX_KEEP:
            raise ValueError(f"keep must be 1..{MAX_KEEP}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = keep
        self.set_id = secrets.token_hex(8)
        self.rotations = 0
        self._done_frames = 0  # frames in the parts already closed
        for i in range(1, keep):
            older = part_name(self.path, i)
            if os.path.lexists(older):
                raise RecordingError(f"{older}: already exists (will not overwrite)")
        self._part = 0
        self._current = Recorder(self.path, info=self._info())

    def _info(self) -> RecordingInfo:
        return RecordingInfo(set_id=self.set_id, part=self._part)

    @property
    def frames(self) -> int:
        return self._done_frames + self._current.frames

    @property
    def closed(self) -> bool:
        return self._current.closed

    @property
    def size(self) -> int:
        """Bytes in the part being written."""
        return self._current.size

    def write(self, snapshot: Snapshot, frame: bytes | None = None) -> None:
        if self._current.closed:
            return
        if self._current.frames == 0:
            frame = encode_frame(snapshot, self._info())
        elif frame is None:
            frame = encode_frame(snapshot)
        if self._current.frames and self._current.size + len(frame) > self.max_bytes:
            self._rotate()
            frame = encode_frame(snapshot, self._info())
        try:
            self._current.write_frame(frame)
        except OSError:
            if self._current.frames == 0:  # a new part holding nothing: do not leave it
                self._current.close()
                with contextlib.suppress(OSError):
                    os.unlink(self._current.path)
            raise

    def _rotate(self) -> None:
        """Close FILE, shift the names up by one (dropping the oldest), open a new FILE."""
        self._current.close()
        self._done_frames += self._current.frames
        oldest = part_name(self.path, self.keep - 1)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(oldest)
        for i in range(self.keep - 2, -1, -1):
            with contextlib.suppress(FileNotFoundError):
                os.rename(part_name(self.path, i), part_name(self.path, i + 1))
        fsync_dir(self.path.parent)
        self._part += 1
        self.rotations += 1
        self._current = Recorder(self.path, info=self._info())

    def close(self) -> None:
        self._current.close()

    def parts(self) -> list[Path]:
        """The files of this set that exist now, oldest first."""
        names = [part_name(self.path, i) for i in range(self.keep - 1, -1, -1)]
        return [p for p in names if p.exists()]

    def __enter__(self) -> RotatingRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- replaying a set ----------------------------------------------------------------------------


@dataclass
class SetResult:
    """Several recordings joined in time order: their snapshots, what is damaged (one line),
    and a line about the set for the header."""

    snapshots: list[Snapshot] = field(default_factory=list)
    damage: str = ""
    notice: str = ""
    files: list[Path] = field(default_factory=list)  # in the order played


def _is_recording(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def expand_paths(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files as given; a directory stands for the recordings in it (not hidden ones, and only
    files that start like a recording). Raises RecordingError for an empty directory."""
    out: list[Path] = []
    for given in paths:
        p = Path(given)
        try:
            is_dir = stat.S_ISDIR(os.stat(p).st_mode)
        except OSError:
            is_dir = False
        if not is_dir:
            out.append(p)
            continue
        found = sorted(
            child
            for child in p.iterdir()
            if not child.name.startswith(".") and child.is_file() and _is_recording(child)
        )
        if not found:
            raise RecordingError(f"{p}: holds no txtop recording")
        out += found
    seen: set[tuple[int, int]] = set()
    unique = []
    for p in out:  # the same file named twice (a directory and a glob) plays once
        try:
            info = os.stat(p)
            key = (info.st_dev, info.st_ino)
        except OSError:
            unique.append(p)
            continue
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def _span(result: ReadResult) -> tuple[float, float]:
    first, last = result.snapshots[0], result.snapshots[-1]
    return first.time - first.interval_s, last.time


def read_set(paths: Sequence[str | os.PathLike[str]]) -> SetResult:
    """Read the recordings ``paths`` name (files, directories) as one recording.

    Raises RecordingError when a file is not a recording (as read_recording does), when
    together they are too large, or when two of them overlap in time (not one recording).
    A damaged part contributes its intact frames and is named in ``damage``.
    """
    files = expand_paths(paths)
    total = 0
    for p in files:
        with contextlib.suppress(OSError):
            total += os.stat(p).st_size
    if total > MAX_RECORDING_BYTES:
        raise RecordingError(f"{len(files)} recordings: too large together ({total} bytes)")
    read: list[tuple[Path, ReadResult]] = []
    damage: list[str] = []
    for p in files:
        result = read_recording(p)
        if result.snapshots:
            read.append((p, result))
        if result.damage:
            damage.append(f"{p.name}: {result.damage}")
    out = SetResult(damage="; ".join(damage))
    if not read:
        return out
    sets = {r.info.set_id for _, r in read}
    if len(sets) == 1 and "" not in sets:
        read.sort(key=lambda pr: (pr[1].info.part, _span(pr[1])[0]))
    else:
        read.sort(key=lambda pr: _span(pr[1]))
    for (p_prev, prev), (p_next, nxt) in zip(read, read[1:], strict=False):
        if _span(nxt)[0] < _span(prev)[1] - OVERLAP_SLACK_S:
            raise RecordingError(
                f"{p_prev} and {p_next} overlap in time: not parts of one recording "
                "(replay them one at a time)"
            )
    for p, result in read:
        out.snapshots += result.snapshots
        out.files.append(p)
    out.notice = _set_notice(read)
    return out


def _set_notice(read: list[tuple[Path, ReadResult]]) -> str:
    if len(read) == 1:
        return read[0][1].info.describe()
    parts = [r.info.part for _, r in read if r.info.set_id]
    line = f"{len(read)} recordings played as one"
    if len(parts) == len(read):
        missing = sorted(set(range(parts[0], parts[-1] + 1)) - set(parts))
        line = f"rotated recording: parts {parts[0]}-{parts[-1]} ({len(read)} files)"
        if missing:
            line += f", part {', '.join(map(str, missing))} missing"
    return line
