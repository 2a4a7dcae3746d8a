"""Recordings: an append-only, compressed, versioned file of snapshots.

Layout (all integers big-endian):

    header  b"TXTOPREC" | u16 format version | u16 reserved (0)
    frame*  u32 payload length | u32 crc32 of payload | payload = zlib(JSON of Snapshot.to_dict())

Each frame is compressed on its own and flushed (and fsync'd every few frames), so a crash loses
at most the frame being written; a write that fails (a full disk) is cut back to the last whole
frame. Reading never evaluates anything: frames are JSON, decoded into dataclasses by
``Snapshot.from_dict``. A damaged tail is reported, not fatal.

What a file is (a part of a rotated set, a flight recording and why it was written) rides in
the first frame's JSON object under ``"recording_info"`` (``RecordingInfo``): readers before it
ignore unknown keys, so this needed no new format version and old recordings read as before.

Format 2 (issue 12): snapshots carry each packet's ``flow`` and ``owner`` and each queue's top
talkers (``flows``, ``processes``). Format 1 files read as before (those fields are absent:
``None`` / empty); a txtop that reads only format 1 refuses a format 2 file with its version
instead of showing packets without their identity.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from txtop.core.model import Snapshot

if TYPE_CHECKING:
    from txtop.recordings.flight import FlightRecorder

MAGIC = b"TXTOPREC"
FORMAT_VERSION = 2  # what is written
READABLE_VERSIONS = (1, 2)  # what is read
_HEADER = struct.Struct(">8sHH")
_FRAME = struct.Struct(">II")
MAX_FRAME_BYTES = 64 << 20  # compressed; a bigger length means a corrupt file
MAX_SNAPSHOT_JSON_BYTES = 256 << 20  # decompressed: refuse zlib bombs
MAX_RECORDING_BYTES = 2 << 30  # read into memory whole: refuse anything absurd
FSYNC_EVERY = 10
HEADER_BYTES = _HEADER.size
INFO_KEY = "recording_info"  # in the first frame's JSON object (see RecordingInfo)
TRIGGERS = ("key", "signal", "finding")  # why a flight recording was written


def snapshot_json(snapshot: Snapshot) -> str:
    """The JSON form of a snapshot, compact and on one line: a frame's payload, and what
    --once and --headless print."""
    return json.dumps(snapshot.to_dict(), separators=(",", ":"))


class RecordingError(ValueError):
    """The file is not a usable recording (one-line message for the user)."""


@dataclass(frozen=True)
class RecordingInfo:
    """What a recording file is, beyond its snapshots (all optional; empty for a plain
    ``--record`` file and for every recording made before this existed).

    A part of a rotated ``--record --max-size`` set: ``set_id`` (the same in every part of one
    run) and ``part`` (0, 1, 2 ... in the order written). A flight recording: ``trigger``
    (key, signal or finding), ``finding`` and ``severity`` for a finding, ``saved_at`` (epoch
    seconds) and ``window_s`` (the flight window asked for).
    """

    trigger: str = ""
    finding: str = ""
    severity: str = ""
    saved_at: float = 0.0
    window_s: float = 0.0
    set_id: str = ""
    part: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("trigger", "finding", "severity", "saved_at", "window_s", "set_id"):
            value = getattr(self, name)
            if value:
                out[name] = value
        if self.set_id:
            out["part"] = self.part
        return out

    @classmethod
    def from_dict(cls, data: object) -> RecordingInfo | None:
        """From a frame's JSON (untrusted): None unless an object; wrongly typed or
        unknown values are dropped, never raised."""
        if not isinstance(data, Mapping):
            return None
        kwargs: dict[str, Any] = {}
        for name in ("trigger", "finding", "severity", "set_id"):
            value = data.get(name)
            if isinstance(value, str):
                kwargs[name] = value[:200]
        for name in ("saved_at", "window_s"):
            value = data.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if math.isfinite(value) and value >= 0:
                    kwargs[name] = float(value)
        part = data.get("part")
        if isinstance(part, int) and not isinstance(part, bool) and part >= 0:
            kwargs["part"] = part
        return cls(**kwargs)

    def describe(self) -> str:
        """One line for the replay header ("" when there is nothing to say), such as
        ``flight recording: w key, 2026-11-30 05:08:11 UTC, last 120 s``."""
        if not self.trigger:
            return ""
        if self.trigger == "finding":
            why = " ".join(x for x in ("finding", self.finding or "?", self.severity) if x)
        else:
            why = {"key": "w key", "signal": "SIGUSR1"}.get(self.trigger, self.trigger)
        parts = [why]
        if self.saved_at:
            parts.append(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.saved_at)))
        if self.window_s:
            parts.append(f"last {self.window_s:g} s")
        return "flight recording: " + ", ".join(parts)


def encode_frame(snapshot: Snapshot, info: RecordingInfo | None = None) -> bytes:
    """One frame (length, CRC-32, compressed JSON) ready to write; ``info`` rides along in
    the JSON object (only in a file's first frame)."""
    data = snapshot.to_dict()
    if info is not None:
        data[INFO_KEY] = info.to_dict()
    return _frame(json.dumps(data, separators=(",", ":")).encode())


def _frame(raw_json: bytes) -> bytes:
    payload = zlib.compress(raw_json, level=6)
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def frame_with_info(frame: bytes, info: RecordingInfo) -> bytes:
    """``frame`` (from ``encode_frame``) re-made with ``info`` in it."""
    payload = frame[_FRAME.size :]
    data = json.loads(zlib.decompress(payload))
    data[INFO_KEY] = info.to_dict()
    return _frame(json.dumps(data, separators=(",", ":")).encode())


def file_header() -> bytes:
    return _HEADER.pack(MAGIC, FORMAT_VERSION, 0)


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make renames and new names in ``directory`` durable (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Recorder:
    """Writes snapshots to ``path`` (created 0600; an existing file is refused unless
    ``append`` and it is a recording of the same format). ``info`` goes into the first frame
    written. ``size`` is the file's length up to its last whole frame."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        append: bool = False,
        info: RecordingInfo | None = None,
    ) -> None:
        self.path = Path(path)
        self.frames = 0
        self.info = info
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        if append and self.path.exists():
            check_header(self.path)
            flags |= os.O_APPEND
        else:
            flags |= os.O_EXCL
        try:
            fd = os.open(self.path, flags, 0o600)
        except FileExistsError:
            raise RecordingError(f"{self.path}: already exists (will not overwrite)") from None
        except OSError as exc:
            raise RecordingError(f"{self.path}: cannot create: {exc.strerror}") from None
        self._file: BinaryIO | None = os.fdopen(fd, "wb", buffering=0)
        self.size = os.fstat(fd).st_size
        if not (flags & os.O_APPEND):
            try:
                self._append(file_header())
            except OSError as exc:  # a full disk: leave no file behind
                self.close()
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
                raise RecordingError(f"{self.path}: cannot write: {exc.strerror}") from None

    def write(self, snapshot: Snapshot, frame: bytes | None = None) -> None:
        """Append ``snapshot`` (``frame``: its ``encode_frame``, when already made)."""
        if self._file is None:
            return
        if self.frames == 0 and self.info is not None:
            frame = encode_frame(snapshot, self.info)
        self.write_frame(frame if frame is not None else encode_frame(snapshot))

    def write_frame(self, frame: bytes) -> None:
        """Append an encoded frame. On an error (a full disk) the file is cut back to its
        last whole frame before the error is raised: no half frame is left behind."""
        if self._file is None:
            return
        # One write per frame: a crash leaves at most one partial frame at the end.
        self._append(frame)
        self.frames += 1
        if self.frames % FSYNC_EVERY == 0:
            os.fsync(self._file.fileno())

    def _append(self, data: bytes) -> None:
        assert self._file is not None
        try:
            self._write_all(data)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._file.fileno(), self.size)
            raise
        self.size += len(data)

    def _write_all(self, data: bytes) -> None:
        assert self._file is not None
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            if not written:
                raise OSError(28, "short write (disk full?)")
            view = view[written:]

    @property
    def closed(self) -> bool:
        return self._file is None

    def sync(self) -> None:
        """fsync now, raising OSError (close() swallows it)."""
        if self._file is not None:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            try:
                os.fsync(self._file.fileno())
            except OSError:
                pass
            self._file.close()
            self._file = None

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SnapshotWriter(Protocol):
    """What RecordingSink writes to: a Recorder, or a RotatingRecorder (recordings/rotation.py)."""

    @property
    def path(self) -> Path: ...

    @property
    def frames(self) -> int: ...

    @property
    def closed(self) -> bool: ...

    def write(self, snapshot: Snapshot, frame: bytes | None = None) -> None: ...

    def close(self) -> None: ...


class RecordingSink:
    """A snapshot sink that keeps every snapshot in the run's recordings, then hands it on:
    the ``--record`` file (``recorder``: a Recorder or a RotatingRecorder) and the flight
    recorder's memory (``flight``, recordings/flight.py); either may be None. Each snapshot is
    encoded once for both.

    Sources call their sink on their own thread; this runs there, before the UI sees the
    snapshot, so pausing or closing the display never stops the recording. A write error
    (disk full, ...) stops the ``--record`` file, is kept in ``error``, and never stops the data
    nor the flight recorder.
    """

    def __init__(
        self,
        recorder: SnapshotWriter | None = None,
        downstream: Callable[[Snapshot], object] | None = None,
        flight: FlightRecorder | None = None,
    ) -> None:
        self.recorder = recorder
        self.downstream = downstream
        self.flight = flight
        self.error = ""
        self._lock = threading.Lock()

    @property
    def frames(self) -> int:
        return self.recorder.frames if self.recorder is not None else 0

    @property
    def writes_file(self) -> bool:
        """A --record file is being written (the header's REC badge)."""
        return self.recorder is not None and not self.error

    def __call__(self, snapshot: Snapshot) -> None:
        with self._lock:
            recorder = self.recorder
            writing = recorder is not None and not self.error and not recorder.closed
            frame = None
            if self.flight is not None or writing:
                frame = encode_frame(snapshot)
            if writing and recorder is not None:
                try:
                    recorder.write(snapshot, frame)
                except RecordingError as exc:  # a new part could not be made: names its file
                    self.error = str(exc)
                    self._close()
                except (OSError, ValueError) as exc:
                    self.error = f"{recorder.path}: {getattr(exc, 'strerror', None) or exc}"
                    self._close()
            if self.flight is not None and frame is not None:
                self.flight.add(snapshot, frame)
        if self.downstream is not None:
            self.downstream(snapshot)

    def _close(self) -> None:
        if self.recorder is None:
            return
        try:
            self.recorder.close()
        except OSError as exc:
            if not self.error:
                self.error = f"{self.recorder.path}: {exc.strerror or exc}"

    def close(self) -> None:
        """Idempotent; safe to call from any thread (waits for a write in progress). Also
        stops the flight recorder (a write in progress is finished first)."""
        with self._lock:
            self._close()
        if self.flight is not None:
            self.flight.close()


def check_header(path: Path) -> int:
    """Validate the header; return the format version. Raises RecordingError."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such file") from None
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise RecordingError(f"{path}: is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise RecordingError(f"{path}: not a regular file")
    if info.st_size > MAX_RECORDING_BYTES:
        raise RecordingError(f"{path}: too large for a recording ({info.st_size} bytes)")
    try:
        with open(path, "rb") as f:
            head = f.read(_HEADER.size)
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise RecordingError(f"{path}: is a directory") from None
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read: {exc.strerror}") from None
    return _parse_header(head, path)


def _parse_header(head: bytes, path: Path | str) -> int:
    if len(head) < _HEADER.size or not head.startswith(MAGIC):
        raise RecordingError(f"{path}: not a txtop recording")
    version = int(_HEADER.unpack(head)[1])
    if version not in READABLE_VERSIONS:
        known = f"{READABLE_VERSIONS[0]} to {READABLE_VERSIONS[-1]}"
        raise RecordingError(
            f"{path}: recording format {version} is not supported (this txtop reads {known})"
        )
    return version


@dataclass
class ReadResult:
    snapshots: list[Snapshot] = field(default_factory=list)
    damage: str = ""  # empty when the whole file was intact
    info: RecordingInfo = field(default_factory=RecordingInfo)  # from the first frame

    @property
    def intact(self) -> bool:
        return not self.damage


def iter_frames(data: bytes, path: str = "recording") -> Iterator[Snapshot | str]:
    """Yield snapshots, then at most one string describing where and why reading stopped.

    Pure: works on bytes so it can be fuzzed. Raises RecordingError only for a bad header.
    """
    for item in _iter_objects(data, path):
        yield item if isinstance(item, str) else item[0]


def _iter_objects(data: bytes, path: str) -> Iterator[tuple[Snapshot, object] | str]:
    """iter_frames, each snapshot with the frame's ``recording_info`` value (None without)."""
    _parse_header(data[: _HEADER.size], path)
    off = _HEADER.size
    n = 0
    while off < len(data):
        if off + _FRAME.size > len(data):
            yield f"truncated frame header after frame {n} (byte {off})"
            return
        length, crc = _FRAME.unpack_from(data, off)
        start = off + _FRAME.size
        if length == 0 or length > MAX_FRAME_BYTES:
            yield f"corrupt frame length after frame {n} (byte {off})"
            return
        if start + length > len(data):
            yield f"truncated after frame {n} (byte {off}: {len(data) - start} of {length} bytes)"
            return
        payload = data[start : start + length]
        if zlib.crc32(payload) != crc:
            yield f"checksum mismatch in frame {n + 1} (byte {off})"
            return
        try:
            d = zlib.decompressobj()
            raw = d.decompress(payload, MAX_SNAPSHOT_JSON_BYTES)
            if d.unconsumed_tail:
                raise ValueError("frame too large when decompressed")
            obj = json.loads(raw)
            snap = Snapshot.from_dict(obj)
        except (zlib.error, ValueError, UnicodeDecodeError, RecursionError) as exc:
            yield f"undecodable frame {n + 1} (byte {off}): {str(exc)[:80]}"
            return
        yield snap, obj.get(INFO_KEY)
        n += 1
        off = start + length


def read_recording(path: str | os.PathLike[str]) -> ReadResult:
    """Read every intact frame. Raises RecordingError when the file is not a recording."""
    p = Path(path)
    check_header(p)
    data = p.read_bytes()
    result = ReadResult()
    for item in _iter_objects(data, str(p)):
        if isinstance(item, str):
            result.damage = item
        else:
            if not result.snapshots:
                result.info = RecordingInfo.from_dict(item[1]) or RecordingInfo()
            result.snapshots.append(item[0])
    if not result.snapshots and not result.damage:
        result.damage = "no frames"
    return result
