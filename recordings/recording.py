"""Recordings: an append-only, compressed, versioned file of snapshots.

Layout (all integers big-endian):

    header  b"TXTOPREC" | u16 format version | u16 reserved (0)
    frame*  u32 payload length | u32 crc32 of payload | payload = zlib(JSON of Snapshot.to_dict())

Each frame is compressed on its own and flushed (and fsync'd every few frames), so a crash loses
at most the frame being written. Reading never evaluates anything: frames are JSON, decoded
into dataclasses by ``Snapshot.from_dict``. A damaged tail is reported, not fatal.
"""

from __future__ import annotations

import json
import os
import stat
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from txtop.core.model import Snapshot

MAGIC = b"TXTOPREC"
FORMAT_VERSION = 1
_HEADER = struct.Struct(">8sHH")
_FRAME = struct.Struct(">II")
MAX_FRAME_BYTES = 64 << 20  # compressed; a bigger length means a corrupt file
MAX_SNAPSHOT_JSON_BYTES = 256 << 20  # decompressed: refuse zlib bombs
MAX_RECORDING_BYTES = 2 << 30  # read into memory whole: refuse anything absurd
FSYNC_EVERY = 10


def snapshot_json(snapshot: Snapshot) -> str:
    """The JSON form of a snapshot, compact and on one line: a frame's payload, and what
    --once and --headless print."""
    return json.dumps(snapshot.to_dict(), separators=(",", ":"))


class RecordingError(ValueError):
    """The file is not a usable recording (one-line message for the user)."""


class Recorder:
    """Writes snapshots to ``path`` (created 0600; an existing file is refused unless
    ``append`` and it is a recording of the same format)."""

    def __init__(self, path: str | os.PathLike[str], append: bool = False) -> None:
        self.path = Path(path)
        self.frames = 0
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
        if not (flags & os.O_APPEND):
            self._file.write(_HEADER.pack(MAGIC, FORMAT_VERSION, 0))

    def write(self, snapshot: Snapshot) -> None:
        if self._file is None:
            return
        payload = zlib.compress(snapshot_json(snapshot).encode(), level=6)
        # One write per frame: a crash leaves at most one partial frame at the end.
        self._write_all(_FRAME.pack(len(payload), zlib.crc32(payload)) + payload)
        self.frames += 1
        if self.frames % FSYNC_EVERY == 0:
            os.fsync(self._file.fileno())

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


class RecordingSink:
    """A snapshot sink that writes every snapshot to a Recorder, then hands it on.

    Sources call their sink on their own thread; this runs there, before the UI sees the
    snapshot, so pausing or closing the display never stops the recording. A write error
    (disk full, ...) stops the recording, is kept in ``error``, and never stops the data.
    """

    def __init__(
        self, recorder: Recorder, downstream: Callable[[Snapshot], object] | None = None
    ) -> None:
        self.recorder = recorder
        self.downstream = downstream
        self.error = ""
        self._lock = threading.Lock()

    @property
    def frames(self) -> int:
        return self.recorder.frames

    def __call__(self, snapshot: Snapshot) -> None:
        with self._lock:
            if not self.error and not self.recorder.closed:
                try:
                    self.recorder.write(snapshot)
                except (OSError, ValueError) as exc:
                    self.error = f"{self.recorder.path}: {getattr(exc, 'strerror', None) or exc}"
                    self._close()
        if self.downstream is not None:
            self.downstream(snapshot)

    def _close(self) -> None:
        try:
            self.recorder.close()
        except OSError as exc:
            if not self.error:
                self.error = f"{self.recorder.path}: {exc.strerror or exc}"

    def close(self) -> None:
        """Idempotent; safe to call from any thread (waits for a write in progress)."""
        with self._lock:
            self._close()


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
    if version != FORMAT_VERSION:
        raise RecordingError(
            f"{path}: recording format {version} is not supported (this txtop reads {FORMAT_VERSION})"
        )
    return version


@dataclass
class ReadResult:
    snapshots: list[Snapshot] = field(default_factory=list)
    damage: str = ""  # empty when the whole file was intact

    @property
    def intact(self) -> bool:
        return not self.damage


def iter_frames(data: bytes, path: str = "recording") -> Iterator[Snapshot | str]:
    """Yield snapshots, then at most one string describing where and why reading stopped.

    Pure: works on bytes so it can be fuzzed. Raises RecordingError only for a bad header.
    """
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
            snap = Snapshot.from_dict(json.loads(raw))
        except (zlib.error, ValueError, UnicodeDecodeError, RecursionError) as exc:
            yield f"undecodable frame {n + 1} (byte {off}): {str(exc)[:80]}"
            return
        yield snap
        n += 1
        off = start + length


def read_recording(path: str | os.PathLike[str]) -> ReadResult:
    """Read every intact frame. Raises RecordingError when the file is not a recording."""
    p = Path(path)
    check_header(p)
    data = p.read_bytes()
    result = ReadResult()
    for item in iter_frames(data, str(p)):
        if isinstance(item, str):
            result.damage = item
        else:
            result.snapshots.append(item)
    if not result.snapshots and not result.damage:
        result.damage = "no frames"
    return result
