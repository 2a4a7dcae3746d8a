"""The flight recorder (recordings/flight.py): the window it keeps and its memory bound, what a
write makes (a normal 0600 recording saying why it was written, never a partial file, never in
place of another file), the triggers (the finding hook; SIGUSR1 on a real headless run), the
flight directory, the command line's bad input, and a full disk during a write (a small tmpfs).

The `w` key is tested with Pilot in tests/test_replay_cli.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import stat
import subprocess
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
from fs_helpers import fill, needs_mount, small_tmpfs
from test_cli import EXIT_DEADLINE_S, TXTOP, txtop

from txtop.core.finding import Finding, Subject
from txtop.core.model import PacketTrace, Snapshot
from txtop.lab.synthetic import make_snapshot
from txtop.recordings import flight as flight_mod
from txtop.recordings.flight import (
    FINDING_AFTER_S,
    FINDING_MIN_GAP_S,
    FRAME_OVERHEAD_BYTES,
    FlightError,
    FlightRecorder,
    FlightWrite,
    default_flight_dir,
    flight_file_name,
    prepare_dir,
)
from txtop.recordings.recording import RecordingSink, encode_frame, read_recording
from txtop.recordings.replay import Timeline

DEADLINE_S = 20.0  # a loaded 2-core machine


def wait_for(condition, what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def synthetic(n: int, interval_s: float = 1.0, shape=(2, 2)) -> list[Snapshot]:
    return [make_snapshot(*shape, tick=i, interval_s=interval_s) for i in range(1, n + 1)]


def feed(recorder: FlightRecorder, snaps: list[Snapshot]) -> None:
    sink = RecordingSink(None, flight=recorder)
    for snap in snaps:
        sink(snap)


def written(events: list[FlightWrite], n: int = 1) -> list[FlightWrite]:
    wait_for(lambda: len(events) >= n, f"{n} flight write(s)")
    return events


def span_s(snaps) -> float:
    return Timeline(tuple(snaps)).total_s


# ---- the window and the memory --------------------------------------------------------------


@pytest.mark.parametrize("interval_s", [1.0, 0.1])
def test_keeps_the_last_window_and_no_more(tmp_path, interval_s):
    flight = FlightRecorder(10, tmp_path)
    snaps = synthetic(int(60 / interval_s), interval_s)
    feed(flight, snaps)
    assert flight.span_s == pytest.approx(10.0, abs=1e-6)
    assert flight.frames == round(10 / interval_s)
    frames = [encode_frame(s) for s in snaps[-flight.frames :]]
    assert flight.memory_bytes == sum(len(f) + FRAME_OVERHEAD_BYTES for f in frames)


def test_the_memory_cap_drops_the_oldest_and_the_write_says_so(tmp_path):
    events: list[FlightWrite] = []
    flight = FlightRecorder(60, tmp_path, max_bytes=20_000, on_write=events.append)
    feed(flight, synthetic(60))
    assert 0 < flight.memory_bytes <= 20_000 and flight.span_s < 60
    assert flight.request("key") == ""
    (result,) = written(events)
    assert result.ok and result.capped and "memory cap" in result.line()
    assert len(read_recording(result.path).snapshots) == flight.frames


def flood_snapshot(tick: int, packets: int, interval_s: float) -> Snapshot:
    """A 64-queue, 64-CPU synthetic snapshot carrying ``packets`` sampled packets (a flood
    at the sampling cap), moved to ``tick``."""
    base = make_snapshot(64, 64, tick=tick, interval_s=interval_s)
    proto = base.packets
    more: list[PacketTrace] = []
    for i in range(packets):
        p = proto[i % len(proto)]
        shift = i * 997
        more.append(
            dataclasses.replace(
                p,
                stages={k: v + shift for k, v in p.stages.items()},
                sport=1024 + i % 60000,
                len=64 + i % 1400,
            )
        )
    return dataclasses.replace(base, packets=tuple(more))


def test_memory_stays_bounded_over_a_long_synthetic_run(tmp_path):
    """An hour at 0.1 s (36,000 snapshots) through a 60 s window: the memory the recorder
    counts never passes the window's worth, and what Python really holds follows that count
    (tracemalloc). Frames are made once and re-used with moving clocks to keep this fast."""
    interval_s, window_s = 0.1, 60.0
    distinct = [encode_frame(s) for s in synthetic(50, interval_s, shape=(16, 16))]
    template = make_snapshot(16, 16, tick=1, interval_s=interval_s)
    flight = FlightRecorder(window_s, tmp_path)
    per_window = round(window_s / interval_s)
    bound = per_window * (max(map(len, distinct)) + FRAME_OVERHEAD_BYTES)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        peak_counted = 0
        for i in range(36_000):
            snap = dataclasses.replace(
                template, mono_ns=template.mono_ns + int(i * interval_s * 1e9)
            )
            flight.add(snap, bytes(bytearray(distinct[i % len(distinct)])))  # a new object
            peak_counted = max(peak_counted, flight.memory_bytes)
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert flight.frames == per_window
    assert peak_counted <= bound
    assert held <= 1.2 * flight.memory_bytes + 100_000, (held, flight.memory_bytes)


def test_memory_per_minute_at_the_demo_rate_and_under_a_flood(tmp_path, capsys):
    """The figures the README states: the bundled demo recording (1 s ticks, ~150 sampled
    packets a tick) and a synthetic flood (64 queues, 64 CPUs, 0.1 s ticks, 200 sampled
    packets a second: the default cap, and 2000 a second)."""
    from txtop.tui.sources import bundled_recording_path

    with bundled_recording_path() as path:
        demo = read_recording(path).snapshots
    rates = {}
    flight = FlightRecorder(60, tmp_path)
    feed(flight, demo)
    rates["demo"] = flight.memory_bytes / flight.span_s * 60
    for per_s in (200, 2000):
        flight = FlightRecorder(60, tmp_path)
        snaps = [flood_snapshot(t, per_s // 10, 0.1) for t in range(1, 201)]
        feed(flight, snaps)
        rates[f"flood {per_s}/s"] = flight.memory_bytes / flight.span_s * 60
    with capsys.disabled():
        print(
            "\nflight recorder memory per minute:",
            {k: f"{v / 1e6:.2f} MB" for k, v in rates.items()},
        )
    assert rates["demo"] < 1e6  # 0.47 MB a minute
    assert rates["flood 200/s"] < 12e6  # 8.7 MB
    assert rates["flood 2000/s"] < 20e6  # 15 MB


def test_a_clock_going_back_starts_a_new_window(tmp_path):
    flight = FlightRecorder(30, tmp_path)
    feed(flight, synthetic(10))
    feed(flight, [make_snapshot(2, 2, tick=1)])
    assert flight.frames == 1


# ---- writes ---------------------------------------------------------------------------------


def test_a_write_is_a_normal_recording_that_says_why(tmp_path):
    events: list[FlightWrite] = []
    flight = FlightRecorder(5, tmp_path, on_write=events.append)
    snaps = synthetic(20)
    feed(flight, snaps)
    assert flight.request("signal") == ""
    (result,) = written(events)
    assert result.ok and result.trigger == "signal" and result.frames == 5
    path = result.path
    assert re.fullmatch(r"txtop-synthetic-\d{8}T\d{6}Z\.txtop", path.name)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert result.line() == f"flight recording written: {path} (5 s, 5 frames)"
    read = read_recording(path)
    assert read.intact and read.snapshots == snaps[-5:]
    assert read.info.trigger == "signal" and read.info.window_s == 5
    assert abs(read.info.saved_at - time.time()) < 60
    assert read.info.describe().startswith("flight recording: SIGUSR1, ")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_a_write_never_replaces_a_file(tmp_path, monkeypatch):
    monkeypatch.setattr(flight_mod.time, "time", lambda: 1_790_000_000.0)
    name = flight_file_name("synthetic", 1_790_000_000.0)
    (tmp_path / name).write_bytes(b"precious")
    events: list[FlightWrite] = []
    flight = FlightRecorder(5, tmp_path, on_write=events.append)
    feed(flight, synthetic(3))
    for n in (1, 2):
        assert flight.request("key") == ""
        written(events, n)
    assert (tmp_path / name).read_bytes() == b"precious"
    stem = name.removesuffix(".txtop")
    assert [e.path.name for e in events] == [f"{stem}-2.txtop", f"{stem}-3.txtop"]


def test_file_names_are_safe():
    assert (
        flight_file_name("web-1.example.com", 0) == "txtop-web-1.example.com-19700101T000000Z.txtop"
    )
    assert flight_file_name("../../etc/x y", 0) == "txtop-_.._etc_x_y-19700101T000000Z.txtop"
    assert flight_file_name("", 0).startswith("txtop-unknown-")


def test_requests_that_cannot_write_say_why(tmp_path):
    gate = threading.Event()
    flight = FlightRecorder(5, tmp_path, on_write=lambda result: gate.wait(10))
    assert flight.request("key") == "nothing recorded yet"
    feed(flight, synthetic(3))
    assert flight.request("key") == ""
    assert "being written" in flight.request("key")  # one write at a time
    gate.set()
    assert flight.wait()
    flight.close()
    assert flight.request("key") == "the flight recorder has stopped"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_finding_hook_writes_after_the_finding_and_is_rate_limited(tmp_path):
    clock = FakeClock()
    events: list[FlightWrite] = []
    quiet = FlightRecorder(30, tmp_path, clock=clock)
    assert quiet.finding_started("f1", "crit") is False  # no --flight-on: hook is inert
    flight = FlightRecorder(30, tmp_path, flight_on="crit", clock=clock, on_write=events.append)
    snaps = synthetic(40)
    feed(flight, snaps[:20])
    assert flight.finding_started("f0", "warn") is False  # below --flight-on crit
    assert flight.finding_started("drops-txl-1", "crit") is True
    assert flight.finding_started("f2", "crit") is False and flight.suppressed == 1
    time.sleep(0.3)
    assert events == []  # it waits for the seconds after the finding
    assert "on its way (finding drops-txl-1" in flight.request("key")
    clock.now += FINDING_AFTER_S
    feed(flight, snaps[20:30])
    (result,) = written(events)
    read = read_recording(result.path)
    assert read.info.trigger == "finding" and read.info.finding == "drops-txl-1"
    assert read.info.severity == "crit" and "finding drops-txl-1 crit" in read.info.describe()
    assert read.snapshots[-1] in snaps[20:30]  # frames after the finding are in it
    clock.now += FINDING_MIN_GAP_S
    warn = FlightRecorder(30, tmp_path, flight_on="warn", clock=clock)
    feed(warn, snaps[:3])
    assert warn.finding_started("f3", "crit") is True  # crit is at least warn
    warn.close()  # a pending write is done at once when txtop stops
    assert warn.last is not None and warn.last.ok


def test_findings_in_the_snapshots_trigger_a_write_when_they_reach_flight_on(tmp_path):
    clock = FakeClock()
    events: list[FlightWrite] = []
    flight = FlightRecorder(30, tmp_path, flight_on="crit", clock=clock, on_write=events.append)
    queue = Subject("queue", dev="eth0", queue=1)
    warn = Finding("qdisc_drops", "warn", queue, "drops", {"drops_per_s": 5.0}, "knob", "tc")
    crit = dataclasses.replace(warn, severity="crit")
    cleared = dataclasses.replace(crit, state="cleared")
    snaps = synthetic(20)

    def tagged(frames, *findings):
        return [dataclasses.replace(s, findings=tuple(findings)) for s in frames]

    feed(flight, tagged(snaps[:4], warn))  # below --flight-on crit
    feed(flight, tagged(snaps[4:5], cleared))  # a cleared crit finding is not one starting
    assert not flight.busy and events == []
    feed(flight, tagged(snaps[5:6], crit))  # it rises to crit: that is a start
    assert flight.busy
    feed(flight, tagged(snaps[6:8], crit))  # still crit: nothing more
    assert flight.suppressed == 0
    clock.now += FINDING_AFTER_S
    feed(flight, tagged(snaps[8:10], crit))
    (result,) = written(events)
    read = read_recording(result.path)
    assert read.info.trigger == "finding" and read.info.severity == "crit"
    assert read.info.finding == "qdisc_drops eth0 tx-1"
    assert read.snapshots[-1].findings == (crit,)  # the findings are in the recording too
    feed(flight, tagged(snaps[10:11]))  # gone, then back within a minute: rate-limited
    feed(flight, tagged(snaps[11:12], crit))
    assert flight.suppressed == 1 and not flight.busy


# ---- the flight directory -------------------------------------------------------------------


def test_default_flight_directories():
    assert default_flight_dir(0, {}) == Path("/var/lib/txtop/flight")
    env = {"HOME": "/home/ann", "XDG_STATE_HOME": "/srv/state"}
    assert default_flight_dir(1000, env) == Path("/srv/state/txtop/flight")
    env["XDG_STATE_HOME"] = "relative/ignored"
    assert default_flight_dir(1000, env) == Path("/home/ann/.local/state/txtop/flight")
    with pytest.raises(FlightError, match="--flight-dir"):
        default_flight_dir(1000, {})


def test_prepare_dir_creates_it_0700_and_refuses_a_file(tmp_path):
    made = prepare_dir(tmp_path / "a" / "b")
    assert made == tmp_path / "a" / "b"
    for level in (tmp_path / "a", made):
        assert stat.S_IMODE(level.stat().st_mode) == 0o700
    assert list(made.iterdir()) == []  # the write probe is gone
    (tmp_path / "f").write_text("x")
    with pytest.raises(FlightError, match="not a directory"):
        prepare_dir(tmp_path / "f")
    with pytest.raises(FlightError, match="cannot create"):
        prepare_dir(tmp_path / "f" / "sub")


@needs_mount
def test_prepare_dir_refuses_a_read_only_directory(tmp_path):
    with small_tmpfs(tmp_path / "ro", mode="0755"):
        subprocess.run(["mount", "-o", "remount,ro", str(tmp_path / "ro")], check=True)
        with pytest.raises(FlightError, match="not writable"):
            prepare_dir(tmp_path / "ro")
        res = txtop(
            "--synthetic",
            "2x2",
            "--headless",
            "--flight",
            "5",
            "--flight-dir",
            str(tmp_path / "ro"),
        )
        assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
        assert "not writable" in res.stderr


# ---- the command line -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, what",
    [
        (["--flight", "0"], "--flight"),
        (["--flight", "3601"], "--flight"),
        (["--flight", "soon"], "--flight"),
        (["--flight", "nan"], "--flight"),
        (["--flight-on", "warn"], "--flight-on needs --flight"),
        (["--flight-dir", "/tmp"], "--flight-dir needs --flight"),
        (["--flight", "5", "--flight-on", "info"], "--flight-on"),
        (["--max-size", "1M"], "--max-size needs --record"),
        (["--record", "x.txtop", "--max-size", "1K"], "--max-size"),
        (["--record", "x.txtop", "--max-size", "3G"], "--max-size"),
        (["--record", "x.txtop", "--max-size", "lots"], "--max-size"),
        (["--record", "x.txtop", "--max-size", "1M", "--keep", "0"], "--keep"),
        (["--record", "x.txtop", "--keep", "3"], "--keep needs --max-size"),
    ],
)
def test_bad_flight_and_rotation_flags_are_one_line_exit_2(tmp_path, args, what):
    res = txtop(*args, "--synthetic", "2x2", "--headless", "--duration", "1")
    assert res.returncode == 2, (res.stdout[:200], res.stderr)
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("txtop: error: ")
    assert what in res.stderr and "Traceback" not in res.stderr
    assert not Path("x.txtop").exists()


def test_flight_with_once_or_replay_is_refused(tmp_path):
    res = txtop("--flight", "5", "--once", "--synthetic", "2x2")
    assert res.returncode == 2 and "--flight needs the dashboard or --headless" in res.stderr
    from txtop.tui.sources import bundled_recording_path

    with bundled_recording_path() as path:
        res = txtop("--replay", str(path), "--flight", "5")
    assert res.returncode == 2 and "cannot be combined with --flight" in res.stderr
    res = txtop("--replay-bundled", "--flight", "5", "--headless")
    assert res.returncode == 2 and "--flight" in res.stderr and res.stderr.count("\n") == 1


def test_a_flight_dir_that_is_a_file_is_bad_input(tmp_path):
    (tmp_path / "file").write_text("x")
    res = txtop(
        "--synthetic", "2x2", "--headless", "--flight", "5", "--flight-dir", str(tmp_path / "file")
    )
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "not a directory" in res.stderr


# ---- SIGUSR1 on a real headless run ---------------------------------------------------------


class Headless:
    """``txtop --synthetic 2x2 --headless --flight ...`` (or another ``source``) as a process;
    stderr collected."""

    def __init__(self, *args: str, source: tuple[str, ...] = ("--synthetic", "2x2")) -> None:
        argv = [*TXTOP, *source, "--headless", *args]
        self.proc = subprocess.Popen(  # noqa: S603
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def ready(self) -> None:
        """Wait for the line saying SIGUSR1 is handled (before it, it would end txtop)."""
        wait_for(lambda: any("SIGUSR1 writes them to" in ln for ln in self.lines), "ready")

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def write_now(self) -> Path:
        """SIGUSR1 until a flight recording is written (before the first frame a request
        says "nothing recorded yet"); its path."""
        before = len(self.written())
        deadline = time.monotonic() + DEADLINE_S
        while True:
            assert time.monotonic() < deadline and self.proc.poll() is None, self.lines
            self.proc.send_signal(signal.SIGUSR1)
            answered = time.monotonic() + 2.0
            while time.monotonic() < answered:
                if len(self.written()) > before:
                    return self.written()[-1]
                time.sleep(0.05)

    def written(self) -> list[Path]:
        prefix = "txtop: flight recording written: "
        return [
            Path(ln[len(prefix) :].rsplit(" (", 1)[0]) for ln in self.lines if ln.startswith(prefix)
        ]

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=EXIT_DEADLINE_S + 10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        return self.proc.returncode, out


def test_sigusr1_writes_the_last_window_of_a_headless_run(tmp_path):
    window_s, interval_s = 3.0, 0.2
    run = Headless("-d", str(interval_s), "--flight", str(window_s), "--flight-dir", str(tmp_path))
    try:
        run.ready()
        got: list[Timeline] = []
        deadline = time.monotonic() + 60
        # Ask until the window has filled (the run needs a few seconds to get there).
        while not got or got[-1].total_s < window_s - interval_s - 1e-6:
            assert time.monotonic() < deadline, run.lines
            time.sleep(1.0)
            before = len(run.written())
            run.proc.send_signal(signal.SIGUSR1)
            wait_for(lambda n=before: len(run.written()) > n, "the flight write's line")
            result = read_recording(run.written()[-1])
            assert result.intact and result.info.trigger == "signal"
            got.append(Timeline(tuple(result.snapshots)))
        assert run.proc.poll() is None  # the run goes on
    finally:
        code, out = run.stop()
    assert code == 0 and out == ""  # a flight recorder prints no JSON lines
    last = got[-1]
    assert window_s - interval_s - 1e-6 <= last.total_s <= window_s + 1e-6
    assert len(last.snapshots) in (round(window_s / interval_s) - 1, round(window_s / interval_s))
    for path in run.written():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert str(path).startswith(str(tmp_path))
    # Replayed through the command: the header's notice says why the file was written.
    res = txtop("--replay", str(run.written()[-1]), "--once")
    assert res.returncode == 0 and "flight recording: SIGUSR1, " in res.stderr
    assert json.loads(res.stdout)["replay"]["notice"].startswith("flight recording: SIGUSR1")
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in run.written())


# ---- a full disk ----------------------------------------------------------------------------


@needs_mount
def test_a_full_disk_during_a_flight_write_leaves_no_file_and_the_run_goes_on(tmp_path):
    fl = tmp_path / "fl"
    with small_tmpfs(fl, size="64k"):
        run = Headless("-d", "0.2", "--flight", "2", "--flight-dir", str(fl))
        try:
            run.ready()
            run.write_now().unlink()  # first a write that works: it is running
            filler = fill(fl)
            seen = len(run.lines)
            run.proc.send_signal(signal.SIGUSR1)
            wait_for(lambda: len(run.lines) > seen, "the failure line")
            line = run.lines[seen]
            assert line.startswith("txtop: flight recording not written: "), line
            assert "No space left on device" in line and str(fl) in line
            assert sorted(os.listdir(fl)) == ["filler"]  # nothing partial, nothing hidden
            filler.unlink()  # space again: the next write works
            assert read_recording(run.write_now()).intact
            assert run.proc.poll() is None
        finally:
            code, _ = run.stop()
    assert code == 0
    assert sum("No space left" in ln for ln in run.lines) == 1


@needs_mount
def test_a_full_disk_stops_record_but_not_the_flight_recorder(tmp_path):
    disk, fl = tmp_path / "disk", tmp_path / "fl"
    with small_tmpfs(disk, size="32k"):
        rec = disk / "r.txtop"
        run = Headless(
            "-d", "0.1", "--record", str(rec), "--max-size", "8K", "--keep", "10",
            "--flight", "10", "--flight-dir", str(fl),
        )  # fmt: skip
        try:
            run.ready()
            wait_for(lambda: any("recording stopped" in ln for ln in run.lines), "disk full")
            assert run.proc.poll() is None
            line = next(ln for ln in run.lines if "recording stopped" in ln)
            assert "No space left on device" in line
            assert read_recording(run.write_now()).intact  # written after the disk filled
        finally:
            code, _ = run.stop()
        assert code == 0
        parts = sorted(disk.iterdir())
        assert parts and all(read_recording(p).intact for p in parts)  # no half frame
    assert sum("recording stopped" in ln for ln in run.lines) == 1
