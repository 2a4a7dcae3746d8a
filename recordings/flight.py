"""The flight recorder (``--flight SECONDS``): the last SECONDS of snapshots, with their sampled
packets, kept in memory and written as a normal recording when someone asks.

Memory: each snapshot is kept as its encoded recording frame (compressed JSON, the bytes a
recording holds), so the memory is what the recording of that window would weigh on disk, plus
``FRAME_OVERHEAD_BYTES`` a frame; it is bounded by the window (while a finding's write waits,
the window plus the ``FINDING_AFTER_S`` after it) and by ``max_bytes`` (default
``DEFAULT_MAX_BYTES``), whichever is smaller: past the cap the oldest frames go first and the
write says the window was cut.

A write (``request``) runs on its own thread: the frames held at that moment (for a finding,
those of ``FINDING_AFTER_S`` more seconds) go to a hidden temporary file in the flight
directory, created 0600 with O_EXCL, which is fsync'd and only then linked to its final name
``txtop-<host>-<UTC time>.txtop`` (never replacing a file): a failed write (a full disk) removes
the temporary file, so no partial file is ever left under a recording's name. Each write is
announced to ``on_write`` (one ``FlightWrite``, on the writer thread) and the run goes on.

Triggers (``RecordingInfo.trigger``): ``key`` (w in the dashboard), ``signal`` (SIGUSR1), and
``finding``: with ``flight_on`` set (``--flight-on warn|crit``), a finding reaching that severity
(new, or an active one rising to it) in the snapshots' ``findings`` (core/finding.py) writes the
window and ``FINDING_AFTER_S`` seconds after it, at most one such write every
``FINDING_MIN_GAP_S``. ``finding_started(label, severity)`` is that hook, also callable by a
findings engine directly. Snapshots carry no findings until a findings engine fills them in.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from txtop.core.finding import Subject, severity_rank
from txtop.core.model import Snapshot
from txtop.recordings.recording import (
    Recorder,
    RecordingError,
    RecordingInfo,
    frame_with_info,
    fsync_dir,
)

MIN_FLIGHT_S = 1.0
MAX_FLIGHT_S = 3600.0
DEFAULT_MAX_BYTES = 64 << 20
# A kept frame beyond its bytes: the bytes object's header, the tuple holding it with its two
# clock values, and its slot in the deque (measured with tracemalloc: ~130 bytes).
FRAME_OVERHEAD_BYTES = 160
SEVERITIES = ("warn", "crit")  # the values --flight-on takes (core/finding.py SEVERITIES)
FINDING_AFTER_S = 10.0  # a finding's write also holds this long after it started
FINDING_MIN_GAP_S = 60.0  # at most one finding-triggered write this often
ROOT_FLIGHT_DIR = Path("/var/lib/txtop/flight")
_HOST_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class FlightError(RecordingError):
    """The flight directory cannot be used (one line for the user)."""


def default_flight_dir(euid: int | None = None, env: Mapping[str, str] | None = None) -> Path:
    """/var/lib/txtop/flight for root, else $XDG_STATE_HOME/txtop/flight (by default
    ~/.local/state/txtop/flight)."""
    euid = os.geteuid() if euid is None else euid
    env = os.environ if env is None else env
    if euid == 0:
        return ROOT_FLIGHT_DIR
    state = env.get("XDG_STATE_HOME", "")
    if state and os.path.isabs(state):
        return Path(state) / "txtop" / "flight"
    home = env.get("HOME", "")
    if not home or not os.path.isabs(home):
        raise FlightError("no home directory for the flight recordings: give --flight-dir DIR")
    return Path(home) / ".local" / "state" / "txtop" / "flight"


def prepare_dir(directory: str | os.PathLike[str]) -> Path:
    """Make sure flight recordings can be written to ``directory``: create it (and missing
    parents) 0700, check it is a directory and that a file can be created in it. Raises
    FlightError."""
    path = Path(directory).absolute()  # the path announced must be usable from anywhere
    if os.path.lexists(path) and not path.is_dir():
        raise FlightError(f"flight directory {path}: not a directory")
    missing = []
    for level in (path, *path.parents):
        if level.exists():
            break
        missing.append(level)
    for level in reversed(missing):
        try:
            os.mkdir(level, 0o700)
            os.chmod(level, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise FlightError(f"flight directory {path}: cannot create: {exc.strerror}") from None
    if not path.is_dir():
        raise FlightError(f"flight directory {path}: not a directory")
    probe = path / f".txtop-probe-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(probe, flags, 0o600)
    except OSError as exc:
        raise FlightError(f"flight directory {path}: not writable ({exc.strerror})") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return path


def flight_file_name(host: str, at: float) -> str:
    """``txtop-<host>-<UTC time>.txtop``, the host made safe for a file name."""
    safe = _HOST_UNSAFE.sub("_", host)[:64].strip(".") or "unknown"
    return f"txtop-{safe}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(at))}.txtop"


@dataclass(frozen=True)
class FlightWrite:
    """The outcome of one flight write, for the announcement."""

    trigger: str
    path: Path | None  # None when it failed
    error: str = ""
    frames: int = 0
    span_s: float = 0.0
    capped: bool = False  # the memory cap had cut the window

    @property
    def ok(self) -> bool:
        return self.path is not None

    def line(self) -> str:
        """One line for stderr or a notification."""
        if self.path is None:
            return f"flight recording not written: {self.error}"
        line = f"flight recording written: {self.path} ({self.span_s:.0f} s, {self.frames} frames"
        if self.capped:
            line += ", cut short by the memory cap"
        return line + ")"


@dataclass(frozen=True, slots=True)
class _Pending:
    trigger: str
    finding: str
    severity: str
    due: float  # clock() when the frames to write are all in
    # A finding's write: frames from here on (snapshot clock, ns) are kept until it is written,
    # so it holds the whole window up to the finding and the seconds after it.
    keep_from_ns: int | None = None


class FlightRecorder:
    """The last ``window_s`` seconds of encoded frames, written to ``directory`` on request.

    ``add`` runs on the source's thread (RecordingSink calls it); ``request`` and the
    finding hook from any thread; ``on_write`` is called on the writer thread.
    """

    def __init__(
        self,
        window_s: float,
        directory: str | os.PathLike[str],
        *,
        flight_on: str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        on_write: Callable[[FlightWrite], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not MIN_FLIGHT_S <= window_s <= MAX_FLIGHT_S:
            raise ValueError(f"window must be {MIN_FLIGHT_S:g}..{MAX_FLIGHT_S:g} s")
        if flight_on is not None and flight_on not in SEVERITIES:
            raise ValueError(f"flight_on must be one of {', '.join(SEVERITIES)}")
        self.window_s = window_s
        self.directory = Path(directory)
        self.flight_on = flight_on
        self.max_bytes = max_bytes
        self.on_write = on_write
        self.last: FlightWrite | None = None
        self.writes = 0  # finished writes, failed ones too
        self.suppressed = 0  # findings that did not write (rate limit, write in progress)
        self._clock = clock
        self._cond = threading.Condition()
        # (start_ns, end_ns, frame): the frame covers start..end on the snapshot's clock
        self._frames: deque[tuple[int, int, bytes]] = deque()
        self._bytes = 0
        self._capped = False
        self._host = ""
        self._arrived_at = -float("inf")  # clock() when the newest frame came
        self._last_finding_at = -float("inf")
        # the active findings' severities in the last snapshot, by (rule id, subject)
        self._finding_ranks: dict[tuple[str, Subject], int] = {}
        self._pending: _Pending | None = None
        self._writer: threading.Thread | None = None
        self._closed = False

    # ---- what it holds ---------------------------------------------------------------------
    @property
    def frames(self) -> int:
        return len(self._frames)

    @property
    def memory_bytes(self) -> int:
        """The memory the kept frames take (their bytes plus FRAME_OVERHEAD_BYTES each)."""
        return self._bytes

    @property
    def span_s(self) -> float:
        with self._cond:
            return _span_s(self._frames)

    @property
    def busy(self) -> bool:
        """A write is waiting or in progress."""
        return self._writer is not None and self._writer.is_alive()

    def add(self, snapshot: Snapshot, frame: bytes) -> None:
        """Keep ``frame`` (``snapshot`` encoded), dropping what falls out of the window."""
        end = snapshot.mono_ns
        start = end - int(snapshot.interval_s * 1e9)
        with self._cond:
            if self._frames and end < self._frames[-1][1]:
                self._drop_all()  # the clock went back (a new source): a new recording
            self._frames.append((start, end, frame))
            self._bytes += len(frame) + FRAME_OVERHEAD_BYTES
            self._host = snapshot.host
            oldest_start = end - int(self.window_s * 1e9)
            pending = self._pending
            if pending is not None and pending.keep_from_ns is not None:
                oldest_start = min(oldest_start, pending.keep_from_ns)
            while len(self._frames) > 1 and self._frames[0][0] < oldest_start:
                self._pop()
            while len(self._frames) > 1 and self._bytes > self.max_bytes:
                self._pop()
                self._capped = True
            if self._capped and _span_s(self._frames) >= self.window_s - 1.0:
                self._capped = False
            self._arrived_at = self._clock()
            self._cond.notify_all()
        if self.flight_on is not None:
            for label, severity in self._findings_started(snapshot):
                self.finding_started(label, severity)

    def _findings_started(self, snapshot: Snapshot) -> list[tuple[str, str]]:
        """Findings (``Snapshot.findings``) that reached ``--flight-on``'s severity in this
        snapshot: new ones, and active ones whose severity rose to it. As (label, severity),
        the label being the rule id and its subject, such as ``qdisc_drops eth0 tx-1``."""
        threshold = severity_rank(self.flight_on or "crit")
        ranks: dict[tuple[str, Subject], int] = {}
        started = []
        for finding in snapshot.findings or ():
            if not finding.active:
                continue
            rank = severity_rank(finding.severity)
            ranks[finding.key] = rank
            if rank >= threshold and self._finding_ranks.get(finding.key, -1) < threshold:
                started.append((f"{finding.id} {finding.subject.label}", finding.severity))
        self._finding_ranks = ranks
        return started

    def _pop(self) -> None:
        _, _, frame = self._frames.popleft()
        self._bytes -= len(frame) + FRAME_OVERHEAD_BYTES

    def _drop_all(self) -> None:
        self._frames.clear()
        self._bytes = 0
        self._capped = False

    # ---- triggers --------------------------------------------------------------------------
    def request(
        self, trigger: str, *, finding: str = "", severity: str = "", after_s: float = 0.0
    ) -> str:
        """Write what is held (``after_s`` seconds from now) on a thread of its own. Returns ""
        when the write was started, else one line saying why not."""
        with self._cond:
            if self._closed:
                return "the flight recorder has stopped"
            if self.busy:
                pending = self._pending
                if pending is not None and pending.trigger == "finding":
                    return (
                        f"one is on its way (finding {pending.finding}, with the seconds after it)"
                    )
                return "a flight recording is being written; try again in a moment"
            if not self._frames and after_s <= 0:
                return "nothing recorded yet"
            keep_from = None
            if after_s > 0 and self._frames:  # the window up to now stays in the write
                keep_from = self._frames[-1][1] - int(self.window_s * 1e9)
            due = self._clock() + after_s
            self._pending = _Pending(trigger, finding, severity, due, keep_from)
            self._writer = threading.Thread(
                target=self._write_pending, name="txtop-flight", daemon=True
            )
            self._writer.start()
        return ""

    def finding_started(self, finding_id: str, severity: str) -> bool:
        """The hook for a findings engine: a finding of ``severity`` started. With
        ``--flight-on`` at or below that severity, write the window and FINDING_AFTER_S
        seconds after it, at most once every FINDING_MIN_GAP_S. True when a write was
        scheduled."""
        if self.flight_on is None or severity_rank(severity) < severity_rank(self.flight_on):
            return False
        now = self._clock()
        if now - self._last_finding_at < FINDING_MIN_GAP_S:
            self.suppressed += 1
            return False
        after = min(FINDING_AFTER_S, self.window_s / 2)
        if self.request("finding", finding=finding_id, severity=severity, after_s=after):
            self.suppressed += 1
            return False
        self._last_finding_at = now
        return True

    # ---- writing ---------------------------------------------------------------------------
    def _write_pending(self) -> None:
        with self._cond:
            pending = self._pending
            assert pending is not None
            # A finding's write waits for the seconds after it: until a frame that came once
            # they had passed (so the frame covering that moment is in), or the run ending.
            waits = pending.trigger == "finding"
            while waits and not self._closed and self._arrived_at < pending.due:
                if self._clock() > pending.due + 65.0:  # no frame (intervals are <= 60 s)
                    break
                self._cond.wait(0.2)
            frames = list(self._frames)
            host = self._host
            capped = self._capped
        result = self._save(frames, host, pending, capped)
        with self._cond:
            self.last = result
            self.writes += 1
            self._pending = None
        if self.on_write is not None:
            self.on_write(result)

    def _save(
        self,
        frames: list[tuple[int, int, bytes]],
        host: str,
        pending: _Pending,
        capped: bool = False,
    ) -> FlightWrite:
        """Write ``frames`` as a recording in the flight directory (see the module's doc)."""
        if not frames:
            return FlightWrite(pending.trigger, None, "nothing recorded yet")
        saved_at = time.time()
        info = RecordingInfo(
            trigger=pending.trigger,
            finding=pending.finding,
            severity=pending.severity,
            saved_at=round(saved_at, 3),
            window_s=self.window_s,
        )
        name = flight_file_name(host, saved_at)
        tmp = self.directory / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.part"
        recorder = None
        try:
            recorder = Recorder(tmp)
            recorder.write_frame(frame_with_info(frames[0][2], info))
            for _, _, frame in frames[1:]:
                recorder.write_frame(frame)
            recorder.sync()
            recorder.close()
            path = _link_new(tmp, self.directory, name)
        except (OSError, RecordingError) as exc:
            if recorder is not None:
                recorder.close()
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            reason = getattr(exc, "strerror", None) or str(exc)
            if isinstance(exc, RecordingError):
                reason = str(exc).removeprefix(f"{tmp}: ")
            return FlightWrite(pending.trigger, None, f"{self.directory}: {reason}")
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        fsync_dir(self.directory)
        return FlightWrite(pending.trigger, path, "", len(frames), _span_s(frames), capped)

    def wait(self, timeout: float = 10.0) -> bool:
        """Wait for a write in progress; True when none is left."""
        writer = self._writer
        if writer is not None:
            writer.join(timeout)
        return not self.busy

    def close(self, timeout: float = 10.0) -> None:
        """No more writes; a pending one is written now with what is held (so a finding's
        write is not lost when txtop stops). Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.wait(timeout)


def _span_s(frames: deque[tuple[int, int, bytes]] | list[tuple[int, int, bytes]]) -> float:
    if not frames:
        return 0.0
    return (frames[-1][1] - frames[0][0]) / 1e9


def _link_new(tmp: Path, directory: Path, name: str) -> Path:
    """Give ``tmp`` the name ``name`` (or ``name`` with -2, -3 ... before .txtop) without ever
    replacing a file: a hard link fails when the name exists."""
    stem = name.removesuffix(".txtop")
    for n in range(1, 100):
        path = directory / (name if n == 1 else f"{stem}-{n}.txtop")
        try:
            os.link(tmp, path)
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP):  # no hard links here
                raise
            if os.path.lexists(path):
                continue
            os.rename(tmp, path)
            return path
    raise OSError(errno.EEXIST, f"no free name for {name}")
