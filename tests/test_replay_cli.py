"""Replay: the command line (--replay, --once/--at, --headless, the bundled demo recording),
damaged and foreign files, replay as an unprivileged user, and the replay keys (Pilot).

Recordings here are written from SYNTHETIC snapshots (tests/ui_fixtures.py, shifted one
second per frame) except the bundled one, which scripts/record_bundled.py made from the real
demo lab.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import re
import shutil
import signal
import stat
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import ui_fixtures as fx
from fs_helpers import fill, needs_mount, small_tmpfs
from test_cli import EXIT_DEADLINE_S, TXTOP, PtyRun, txtop
from ui_fixtures import header, until

from txtop.core.findings import with_findings
from txtop.core.model import Snapshot
from txtop.recordings.flight import FlightRecorder
from txtop.recordings.recording import MAGIC, Recorder, RecordingSink, read_recording
from txtop.recordings.replay import ReplaySource, aggregate
from txtop.tui.app import TxtopApp
from txtop.tui.panels import KeyHints
from txtop.tui.sources import BUNDLED_RECORDING, DEMO_REPLAY_NOTICE, bundled_recording_path
from txtop.tui.waterfall import Waterfall

DEADLINE_S = 5.0
NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")


def frame(i: int) -> Snapshot:
    """busy_lab moved i seconds on, with its packets moved along (distinct mono_ns)."""
    base = fx.busy_lab()
    shift = i * 1_000_000_000
    packets = tuple(
        dataclasses.replace(p, stages={k: v + shift for k, v in p.stages.items()}, sport=i)
        for p in base.packets
    )
    queues = tuple(
        dataclasses.replace(q, tx=dataclasses.replace(q.tx, pps=q.tx.pps + i)) if q.tx else q
        for q in base.queues
    )
    return dataclasses.replace(
        base, time=base.time + i, mono_ns=base.mono_ns + shift, packets=packets, queues=queues
    )


FRAMES = [frame(i) for i in range(12)]
# What replay shows: recorded without findings, so computed over the frames when loaded.
REPLAYED = with_findings(FRAMES)


@pytest.fixture
def recording(tmp_path) -> Path:
    path = tmp_path / "rec.txtop"
    with Recorder(path) as rec:
        for snap in FRAMES:
            rec.write(snap)
    return path


def one_line_error(res) -> str:
    assert res.returncode == 2, (res.returncode, res.stdout[:200], res.stderr)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("txtop: error: "), res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""
    return lines[0]


def without_replay(d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in ("mode", "replay")}


# ---- --once -----------------------------------------------------------------------------------


def test_once_prints_the_whole_window(recording):
    res = txtop("--replay", str(recording), "--once", "--format", "json")
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("\n") == 1 and res.stderr == ""
    data = json.loads(res.stdout)
    assert data["mode"] == "replay"
    assert data["replay"]["count"] == 12 and data["replay"]["window"] == "all"
    assert data["replay"]["damage"] == ""
    expected = aggregate(REPLAYED).to_dict()
    assert without_replay(data) == without_replay(expected)
    assert data["interval_s"] == 12.0 and len(data["packets"]) == 12 * len(FRAMES[0].packets)


@pytest.mark.parametrize("at, index", [(0, 0), (0.5, 0), (1.0, 0), (1.01, 1), (5, 4), (12, 11)])
def test_once_at_picks_the_frame_covering_that_second(recording, at, index):
    res = txtop("--replay", str(recording), "--once", "--at", str(at))
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["replay"]["index"] == index and data["replay"]["window"] == "frame"
    assert without_replay(data) == without_replay(REPLAYED[index].to_dict())


@pytest.mark.parametrize("at", ["12.5", "99", "-1", "nan", "inf", "x"])
def test_at_outside_the_recording_is_bad_input(recording, at):
    line = one_line_error(txtop("--replay", str(recording), "--once", "--at", at))
    assert "--at" in line


def test_headless_replay_prints_every_frame_as_a_json_line(recording):
    res = txtop("--replay", str(recording), "--headless", "--at", "3")
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [d["replay"]["index"] for d in lines] == list(range(2, 12))
    assert without_replay(lines[-1]) == without_replay(REPLAYED[-1].to_dict())


# ---- damaged and foreign files ----------------------------------------------------------------


def test_truncated_recording_replays_the_intact_part_and_says_where_it_stops(recording):
    data = recording.read_bytes()
    recording.write_bytes(data[: len(data) - 50])
    res = txtop("--replay", str(recording), "--once")
    assert res.returncode == 0, res.stderr
    assert "recording damaged: truncated after frame 11" in res.stderr
    assert "showing the intact part" in res.stderr and "Traceback" not in res.stderr
    out = json.loads(res.stdout)
    assert out["replay"]["count"] == 11 and "truncated after frame 11" in out["replay"]["damage"]
    assert out["time"] == FRAMES[10].time


def test_truncated_recording_in_the_dashboard_shows_the_damage(recording):
    data = recording.read_bytes()
    recording.write_bytes(data[: len(data) - 50])
    run = PtyRun("--replay", str(recording), "--speed", "16", cols=160, rows=40)
    try:
        run.wait_for("recording damaged:")
        run.wait_for("truncated after frame 11")
        run.wait_for("replay")
        os.write(run.master, b"q")
        assert run.proc.wait(EXIT_DEADLINE_S) == 0
    finally:
        run.finish()
    assert "Traceback" not in run.text()


def _future_version(path: Path) -> None:
    path.write_bytes(MAGIC + struct.pack(">HH", 7, 0))


BAD_FILES: dict[str, Callable[[Path], None]] = {
    "random": lambda p: p.write_bytes(os.urandom(4096)),
    "empty": lambda p: p.write_bytes(b""),
    "text": lambda p: p.write_text("hello, not a recording\n"),
    "header only": lambda p: p.write_bytes(MAGIC + struct.pack(">HH", 1, 0)),
    "future version": _future_version,
    "directory": lambda p: p.mkdir(),
    "missing": lambda p: None,
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
@pytest.mark.parametrize("mode", [("--once",), ("--headless",), ()], ids=["once", "headless", "ui"])
def test_a_file_that_is_not_a_recording_is_one_line_and_exit_2(tmp_path, kind, mode):
    path = tmp_path / "bad"
    BAD_FILES[kind](path)
    line = one_line_error(txtop("--replay", str(path), *mode))
    assert str(path) in line


def test_random_and_cut_files_never_give_a_traceback(tmp_path, recording):
    """Fuzz through the real command: damage anywhere gives exit 0 (intact part) or 2."""
    data = recording.read_bytes()
    rng = random.Random(5)
    for n in range(12):
        blob = bytearray(data[: rng.randrange(len(data))])
        for _ in range(rng.randrange(4)):
            if blob:
                blob[rng.randrange(len(blob))] ^= 1 << rng.randrange(8)
        path = tmp_path / f"fuzz{n}"
        path.write_bytes(bytes(blob))
        res = txtop("--replay", str(path), "--once", timeout=60)
        assert res.returncode in (0, 2), res.stderr
        assert "Traceback" not in res.stderr
        if res.returncode == 0:
            intact = read_recording(path)
            assert json.loads(res.stdout)["replay"]["count"] == len(intact.snapshots)
        else:
            assert res.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--demo"],
        ["-i", "lo"],
        ["--record", "never-made.txtop"],
        ["--no-probes"],
        ["--sample", "4"],
        ["--synthetic", "2x2"],
    ],
)
def test_replay_conflicts_are_bad_input(recording, args):
    args = [str(recording.parent / a) if a.endswith(".txtop") else a for a in args]
    line = one_line_error(txtop("--replay", str(recording), *args, "--once"))
    assert "cannot be combined" in line
    assert not (recording.parent / "never-made.txtop").exists()


@pytest.mark.parametrize(
    "args, what",
    [
        (["--speed", "32"], "--speed"),
        (["--speed", "0.1"], "--speed"),
        (["--speed", "fast"], "--speed"),
        (["--at", "3"], "--at needs --replay"),
        (["--comm", ""], "comm"),
        (["--port", "70000"], "port"),
        (["--port", "9-3"], "port"),
        (["--proto", "nosuch"], "protocol"),
        (["--duration", "0"], "--duration"),
        (["--duration", "-3"], "--duration"),
        (["--duration", "soon"], "--duration"),
        (["--headless", "--once"], "--once"),
    ],
)
def test_bad_replay_and_filter_values(args, what):
    line = one_line_error(txtop(*args))
    assert what in line


# ---- the bundled recording and unprivileged replay --------------------------------------------


def bundled() -> Path:
    with bundled_recording_path() as path:
        return Path(path)


def test_bundled_recording_is_shipped_small_and_intact():
    path = bundled()
    assert path.name == BUNDLED_RECORDING and path.is_file()
    assert path.stat().st_size < 1_500_000
    res = read_recording(path)
    assert res.intact and len(res.snapshots) >= 20
    assert all(s.probes.state == "running" for s in res.snapshots)
    assert sum(len(s.packets) for s in res.snapshots) > 100
    # Made from the demo lab: the 4-queue veth, mq root, tbf on tx-1 and tx-3, a backlog.
    lab = [q for q in res.snapshots[-1].queues if q.dev.startswith("txl")]
    assert [q.queue for q in lab] == [0, 1, 2, 3]
    assert lab[1].qdisc.kind == "tbf" and lab[3].qdisc.kind == "tbf"
    assert any(q.qdisc.backlog_bytes > 0 for s in res.snapshots for q in s.queues if q.qdisc)


@pytest.fixture
def public_copy():
    """The bundled recording copied to a 0644 file in a 0755 directory any user can read."""
    home = Path(tempfile.mkdtemp(prefix="txtop-replay-"))
    home.chmod(0o755)
    copy = home / "demo.txtop"
    shutil.copy(bundled(), copy)
    copy.chmod(0o644)
    yield copy
    shutil.rmtree(home)


def as_nobody() -> tuple[str, ...]:
    if os.geteuid() != 0:
        return ()  # already unprivileged
    if not shutil.which("setpriv"):
        pytest.skip("root without setpriv: cannot drop privileges")
    return NOBODY


def test_replay_as_an_unprivileged_user_once(public_copy):
    prefix = as_nobody()
    res = subprocess.run(
        [*prefix, *TXTOP, "--replay", str(public_copy), "--once", "--at", "10"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["mode"] == "replay" and data["replay"]["at_s"] >= 10
    res = subprocess.run(
        [*prefix, *TXTOP, "--demo", "--once"], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr == f"txtop: {DEMO_REPLAY_NOTICE}\n"
    assert json.loads(res.stdout)["replay"]["notice"] == DEMO_REPLAY_NOTICE


def test_replay_as_an_unprivileged_user_in_the_dashboard(public_copy):
    prefix = as_nobody()
    run = PtyRun("--replay", str(public_copy), cols=120, rows=40, prefix=prefix)
    try:
        run.wait_for("txldemoa", timeout=20)
        deadline = time.monotonic() + 10
        while len(set(re.findall(r"replay (\d+\.\d)/", run.text()))) < 2:  # it plays
            assert time.monotonic() < deadline, run.text()[-500:]
            time.sleep(0.1)
        os.write(run.master, b"q")
        assert run.proc.wait(EXIT_DEADLINE_S) == 0
    finally:
        run.finish()
    assert "Traceback" not in run.text()


def test_demo_without_root_replays_the_bundled_recording_with_a_notice():
    prefix = as_nobody()
    run = PtyRun("--demo", cols=120, rows=40, prefix=prefix)
    try:
        run.wait_for(DEMO_REPLAY_NOTICE, timeout=20)
        run.wait_for("txldemoa")
        os.write(run.master, b"q")
        assert run.proc.wait(EXIT_DEADLINE_S) == 0
    finally:
        run.finish()


# ---- the replay keys (Pilot, a ReplaySource over synthetic frames) ----------------------------


def index(app: TxtopApp) -> int:
    return app.shown.replay.index if app.shown is not None and app.shown.replay else -1


def test_replay_keys_pause_step_seek_and_speed():
    async def main():
        source = ReplaySource(FRAMES, speed=4.0)
        app = TxtopApp(source)
        async with app.run_test(size=(120, 30)) as pilot:
            await until(pilot, lambda: index(app) >= 1, "playing")
            assert "4x" in header(app) and "/12.0s" in header(app)
            await pilot.press("space")
            await until(pilot, lambda: "PAUSED" in header(app), "paused")
            held = index(app)
            await pilot.pause(0.6)  # at 4x a frame would have come every 0.25 s
            assert index(app) == held and source.paused
            await pilot.press("full_stop")
            await until(pilot, lambda: index(app) == held + 1, "step forward")
            await pilot.press("comma", "comma")
            await until(pilot, lambda: index(app) == held - 1, "two steps back")
            # Frame i ends i + 1 s into the recording: +10 s from frame i is frame i + 10.
            for key, delta in (("greater_than_sign", 10), ("less_than_sign", -10)) * 2:
                want = min(11, max(0, index(app) + delta))
                await pilot.press({"greater_than_sign": "right", "less_than_sign": "left"}[key])
                await until(pilot, lambda w=want: index(app) == w, f"arrow for {key}")
                want = min(11, max(0, index(app) + delta))
                await pilot.press(key)
                await until(pilot, lambda w=want: index(app) == w, f"seek {delta:+d} s")
            await pilot.press("plus")
            assert source.speed == 2.0
            await until(pilot, lambda: " 2x PAUSED" in header(app), "speed shown while paused")
            await pilot.press("minus", "minus")
            assert source.speed == 8.0
            assert not app.paused  # the display itself never froze: the recording paused
            await pilot.press("space")
            await until(pilot, lambda: "PAUSED" not in header(app), "playing again")
            await until(pilot, lambda: index(app) == 11, "the end")
            await until(pilot, lambda: "PAUSED" in header(app), "holds the last frame")
            assert "replay 12.0/12.0s" in header(app)

    asyncio.run(main())


def test_seeking_back_restarts_the_packet_log_from_there():
    async def main():
        source = ReplaySource(FRAMES, speed=16.0, history_s=2.0)
        app = TxtopApp(source)
        async with app.run_test(size=(120, 30)) as pilot:
            await until(pilot, lambda: index(app) == 11, "played to the end")
            per_frame = len(FRAMES[0].packets)
            assert len(app.query_one(Waterfall).shown_packets()) == 12 * per_frame
            await pilot.press("less_than_sign")  # 12.0 s -> 2.0 s: frame 1
            await until(pilot, lambda: index(app) == 1, "seek back")
            # Frame 1 and the 2 s before it (frame 0): no packet from later frames.
            shown = app.query_one(Waterfall).shown_packets()
            assert sorted({p.sport for p in shown}) == [0, 1]
            assert len(shown) == 2 * per_frame

    asyncio.run(main())


def test_replay_keys_do_nothing_live_and_keep_their_keys_free():
    async def main():
        source = fx.ManualSource(fx.busy_lab())
        app = TxtopApp(source)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.shown is not None, "first snapshot")
            assert app.replay is None
            for action in ("replay_step", "replay_seek"):
                assert app.check_action(action, (1,)) is False
            await pilot.press("full_stop", "comma", "less_than_sign", "greater_than_sign")
            assert not app._exit and app.shown is not None
            keys = " ".join(f"{k} {what}" for k, what in app.query_one(KeyHints).hints)
            assert "Seek" not in keys and "Slower" in keys

    asyncio.run(main())


def test_recording_continues_while_the_display_is_paused(tmp_path):
    async def main():
        path = tmp_path / "ui.txtop"
        sink = RecordingSink(Recorder(path))
        source = fx.ManualSource(FRAMES[0])
        app = TxtopApp(source, recording=sink)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.shown is not None, "first snapshot")
            assert "REC" in header(app)
            await pilot.press("space")
            for snap in FRAMES[1:5]:
                source.push(snap)
            # The display may merge snapshots that arrive together; the recording never does.
            await until(pilot, lambda: app.latest.time == FRAMES[4].time, "ticks while paused")
            assert sink.frames == 5 and app.shown is FRAMES[0]
            await pilot.press("q")
        assert sink.recorder.closed
        return path

    path = asyncio.run(main())
    assert read_recording(path).snapshots == FRAMES[:5]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_failing_recording_is_reported_and_the_dashboard_goes_on(tmp_path):
    class Full:
        path = tmp_path / "full.txtop"
        frames = 0
        closed = False

        def write(self, snapshot, frame=None):
            raise OSError(28, "No space left on device")

        def close(self):
            self.closed = True

    async def main():
        sink = RecordingSink(Full())  # type: ignore[arg-type]
        source = fx.ManualSource(FRAMES[0])
        app = TxtopApp(source, recording=sink)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.shown is not None, "first snapshot")
            await until(
                pilot,
                lambda: "REC" not in header(app),
                "REC badge gone",
            )
            assert "No space left" in sink.error
            source.push(FRAMES[1])
            await until(pilot, lambda: app.shown is FRAMES[1], "still showing data")

    asyncio.run(main())


# ---- the flight recorder's key (Pilot) --------------------------------------------------------


def messages(app: TxtopApp, severity: str | None = None) -> list[str]:
    return [
        str(n.message) for n in app._notifications if severity is None or n.severity == severity
    ]


def flight_app(tmp_path: Path, window_s: float = 5.0) -> tuple[TxtopApp, fx.ManualSource]:
    flight = FlightRecorder(window_s, tmp_path)
    source = fx.ManualSource(FRAMES[0])
    return TxtopApp(source, recording=RecordingSink(None, flight=flight)), source


def test_w_writes_the_flight_recording_and_says_where(tmp_path):
    async def main():
        app, source = flight_app(tmp_path)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: app.shown is not None, "first snapshot")
            assert "REC" not in header(app)  # the flight recorder writes no file meanwhile
            for snap in FRAMES[1:]:
                source.push(snap)
            await until(pilot, lambda: app.latest.time == FRAMES[-1].time, "every frame")
            await pilot.press("w")
            await until(
                pilot,
                lambda: any(m.startswith("flight recording written: ") for m in messages(app)),
                "the notification",
            )
            flight = app.flight.recorder
            assert flight is not None and flight.last is not None
            assert str(flight.last.path) in messages(app)[-1]
            return flight.last.path

    path = asyncio.run(main())
    result = read_recording(path)
    assert result.intact and result.snapshots == FRAMES[-5:]
    assert result.info.trigger == "key" and result.info.window_s == 5.0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_w_without_a_flight_recorder_or_in_replay_says_why_not():
    async def main():
        for source, says in (
            (fx.ManualSource(FRAMES[0]), "no flight recorder: start txtop with --flight"),
            (ReplaySource(FRAMES, speed=4.0), "flight recorder: not available in replay"),
        ):
            app = TxtopApp(source)
            async with app.run_test(size=(100, 30)) as pilot:
                await until(pilot, lambda a=app: a.shown is not None, "first snapshot")
                await pilot.press("w")
                await until(pilot, lambda a=app, s=says: any(s in m for m in messages(a)), says)
                assert not app._exit

    asyncio.run(main())


def test_a_failed_flight_write_is_shown_and_the_dashboard_goes_on(tmp_path):
    async def main():
        where = tmp_path / "fl"
        where.mkdir()
        app, source = flight_app(where)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: app.shown is not None, "first snapshot")
            where.rmdir()  # the directory went away since txtop started
            await pilot.press("w")
            await until(pilot, lambda: messages(app, "error"), "an error notification")
            assert messages(app, "error")[0].startswith("flight recording not written: ")
            assert "No such file or directory" in messages(app, "error")[0]
            source.push(FRAMES[1])
            await until(pilot, lambda: app.shown is FRAMES[1], "still showing data")

    asyncio.run(main())


def test_the_replay_header_says_why_a_flight_recording_was_written(tmp_path):
    from txtop.tui.sources import load_recording

    flight = FlightRecorder(4, tmp_path)
    feed = RecordingSink(None, flight=flight)
    for snap in FRAMES:
        feed(snap)
    assert flight.request("signal") == "" and flight.wait()
    assert flight.last is not None and flight.last.path is not None
    timeline = load_recording(flight.last.path)
    assert timeline.notice.startswith("flight recording: SIGUSR1, ")

    async def main():
        source = ReplaySource(timeline.snapshots, speed=4.0, notice=timeline.notice)
        app = TxtopApp(source)
        async with app.run_test(size=(160, 30)) as pilot:
            await until(pilot, lambda: "flight recording: SIGUSR1" in header(app), "the reason")
            assert "last 4 s" in header(app) and "replay" in header(app)

    asyncio.run(main())


def test_w_and_sigusr1_in_the_real_dashboard(tmp_path):
    """The whole path under a pty: --flight on a synthetic source, w writes, SIGUSR1 writes
    (and does not end the dashboard), q leaves normally."""
    run = PtyRun(
        "--synthetic", "2x2", "-d", "0.2", "--flight", "3", "--flight-dir", str(tmp_path),
        cols=160, rows=40,
    )  # fmt: skip
    try:
        run.wait_for("syn0", timeout=30)
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob("txtop-*.txtop")):  # the first frames take a moment
            assert time.monotonic() < deadline, run.text()[-500:]
            os.write(run.master, b"w")
            time.sleep(1.0)
        run.wait_for("flight recording written")
        first = set(tmp_path.glob("txtop-*.txtop"))
        time.sleep(1.1)  # the next second: another file name
        run.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 20
        while len(set(tmp_path.glob("txtop-*.txtop"))) == len(first):
            assert time.monotonic() < deadline and run.proc.poll() is None, run.text()[-500:]
            time.sleep(0.1)
        os.write(run.master, b"q")
        assert run.proc.wait(EXIT_DEADLINE_S) == 0
    finally:
        run.finish()
    reasons = sorted(read_recording(p).info.trigger for p in tmp_path.iterdir())
    assert reasons[-1] == "signal" and set(reasons) == {"key", "signal"}
    assert "Traceback" not in run.text()


@needs_mount
def test_a_full_disk_during_a_flight_write_is_shown_and_leaves_no_file(tmp_path):
    where = tmp_path / "fl"

    async def main():
        app, source = flight_app(where)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: app.shown is not None, "first snapshot")
            for snap in FRAMES[1:6]:
                source.push(snap)
            await until(pilot, lambda: app.latest.time == FRAMES[5].time, "frames")
            fill(where)
            await pilot.press("w")
            await until(pilot, lambda: messages(app, "error"), "an error notification")
            line = messages(app, "error")[0]
            assert line.startswith("flight recording not written: ") and "No space left" in line
            assert sorted(p.name for p in where.iterdir()) == ["filler"]
            source.push(FRAMES[6])
            await until(pilot, lambda: app.shown is FRAMES[6], "still showing data")

    with small_tmpfs(where, size="64k"):
        asyncio.run(main())
