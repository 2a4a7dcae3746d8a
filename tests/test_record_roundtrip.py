"""Record and replay end to end, and the demo lab's life cycle through the real command.

Root tests run `txtop --demo` (a private namespace lab with generated traffic that never
leaves it) under their own lab tag (--demo-tag), so they neither see nor disturb a demo or a
test lab of someone else on the same machine; before and after each, `ip netns` and `ip link`
must hold nothing of that tag. The tests without root record SYNTHETIC data (--synthetic).
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest
from test_cli import EXIT_DEADLINE_S, TXTOP, PtyRun, txtop

from txtop.recordings.recording import encode_frame, read_recording
from txtop.recordings.replay import aggregate

STOP_DEADLINE_S = 15.0  # a demo stops its generators and removes the lab within this


def lab_state(tag: str) -> tuple[list[str], list[str]]:
    """This tag's namespaces (`ip netns`) and links (`ip link`)."""
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, timeout=10)
    ns = [ln.split()[0] for ln in netns.stdout.splitlines() if ln.strip()]
    devs = [ln.split(":")[1].strip().split("@")[0] for ln in links.stdout.splitlines()]
    return (
        [n for n in ns if n.startswith(f"txtop-lab-{tag}-")],
        [d for d in devs if d.startswith(f"txl{tag}")],
    )


def wait_until(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def frames_in(path: Path) -> int:
    try:
        return len(read_recording(path).snapshots)
    except ValueError:
        return 0


def strip(d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in ("mode", "replay")}


@pytest.fixture
def tag(request):
    """A lab tag of this test (1-8 of [a-z0-9]); nothing of it may exist before or after."""
    name = f"r{os.getpid() % 10000}{request.node.name[5:7].replace('_', 'x')}"[:8]
    assert lab_state(name) == ([], []), "a lab of this tag exists before the test"
    yield name
    wait_until(lambda: lab_state(name) == ([], []), f"lab {name} removed", STOP_DEADLINE_S)


# ---- root: the real lab -----------------------------------------------------------------------


@pytest.mark.root
def test_record_a_lab_run_headless_and_replay_it_equal(tmp_path, tag):
    rec = tmp_path / "lab.txtop"
    started = time.monotonic()
    # 8 s: the probes compile on the source thread (no tick meanwhile), which takes several
    # seconds on a loaded machine; 3 s left only 2 frames there, too few for the checks below.
    res = txtop(
        "--demo", "--demo-tag", tag, "--headless", "--record", str(rec), "--duration", "8",
        "-d", "0.5", timeout=120,
    )  # fmt: skip
    took = time.monotonic() - started
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""  # recording only: nothing on stdout
    assert lab_state(tag) == ([], []), "the lab outlived txtop"
    assert took < 8 + 30, took  # the duration, probe compile and lab set-up/removal
    assert stat.S_IMODE(rec.stat().st_mode) == 0o600
    result = read_recording(rec)
    assert result.intact, result.damage
    frames = result.snapshots
    assert len(frames) >= 4, len(frames)
    assert all(f.mode == "demo" and f.interfaces == (f"txl{tag}a",) for f in frames)
    assert any(f.probes.state == "running" for f in frames)
    assert any(q.tx and q.tx.pps > 0 for q in frames[-1].queues)  # traffic was flowing
    t0 = frames[0].time - frames[0].interval_s
    for i in sorted({0, len(frames) // 2, len(frames) - 1}):
        at = frames[i].time - t0
        out = txtop("--replay", str(rec), "--once", "--format", "json", "--at", f"{at:.6f}")
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        assert data["replay"]["index"] == i
        assert strip(data) == strip(frames[i].to_dict())
    whole = txtop("--replay", str(rec), "--once")
    assert whole.returncode == 0, whole.stderr
    assert strip(json.loads(whole.stdout)) == strip(aggregate(frames).to_dict())


@pytest.mark.root
def test_sigkill_leaves_a_stale_lab_that_the_next_demo_removes_and_says_so(tmp_path, tag):
    rec = tmp_path / "killed.txtop"
    argv = [*TXTOP, "--demo", "--demo-tag", tag, "--headless", "--record", str(rec), "-d", "0.3"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    try:
        wait_until(lambda: frames_in(rec) >= 3, "three recorded ticks", 60)
    finally:
        proc.kill()
        proc.wait(10)
    stale_ns, stale_links = lab_state(tag)
    assert stale_ns == [f"txtop-lab-{tag}-{proc.pid}"] and stale_links == [f"txl{tag}a"]
    # A crash loses at most the tick being written: everything before it reads back.
    result = read_recording(rec)
    assert len(result.snapshots) >= 3
    assert not result.damage or result.damage.startswith("truncated")
    # -d 0.5 --duration 3: the first --headless line comes after one whole interval
    res = txtop(
        "--demo", "--demo-tag", tag, "--headless", "--duration", "3", "-d", "0.5", timeout=120
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "demo: removed a stale lab left by a killed run" in res.stderr
    assert stale_ns[0] in res.stderr
    assert res.stdout.count("\n") >= 1  # no --record: JSON lines on stdout
    json.loads(res.stdout.splitlines()[0])
    assert lab_state(tag) == ([], [])


@pytest.mark.root
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_a_headless_recording_cleanly(tmp_path, tag, sig):
    rec = tmp_path / "stopped.txtop"
    argv = [*TXTOP, "--demo", "--demo-tag", tag, "--headless", "--record", str(rec), "-d", "0.3"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # noqa: S603
    try:
        wait_until(lambda: frames_in(rec) >= 2, "two recorded ticks", 60)
        assert lab_state(tag)[0], "no lab while running"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=STOP_DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and out == ""
    assert lab_state(tag) == ([], [])
    assert read_recording(rec).intact


@pytest.mark.root
def test_a_second_demo_leaves_the_running_one_alone_and_replays(tag):
    proc = subprocess.Popen(  # noqa: S603
        [*TXTOP, "--demo", "--demo-tag", tag, "--headless", "--duration", "60"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: lab_state(tag)[1] == [f"txl{tag}a"], "the first demo's lab", 60)
        first = lab_state(tag)
        res = txtop("--demo", "--demo-tag", tag, "--headless", "--duration", "2", timeout=60)
        assert res.returncode == 0, res.stderr
        assert f"another txtop --demo (pid {proc.pid}) is running its lab" in res.stderr
        assert json.loads(res.stdout.splitlines()[0])["mode"] == "replay"
        assert lab_state(tag) == first, "the second demo touched the first one's lab"
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(STOP_DEADLINE_S)


@pytest.mark.root
@pytest.mark.parametrize("how", ["q", "SIGTERM", "SIGHUP", "hangup", "duration"])
def test_demo_dashboard_removes_its_lab_on_every_exit(tag, how):
    extra = ("--duration", "6") if how == "duration" else ()
    run = PtyRun("--demo", "--demo-tag", tag, "-d", "0.5", *extra, cols=120, rows=30)
    try:
        run.wait_for(f"txl{tag}a", timeout=30)
        assert lab_state(tag)[0], "no lab while the demo runs"
        if how == "q":
            os.write(run.master, b"q")
        elif how == "hangup":
            run.close_master()
        elif how != "duration":
            run.proc.send_signal(getattr(signal, how))
        rc = run.proc.wait(STOP_DEADLINE_S)
    finally:
        run.finish()
    assert rc == {"q": 0, "duration": 0, "SIGTERM": 143, "SIGHUP": 129, "hangup": 129}[how]
    assert lab_state(tag) == ([], [])


@pytest.mark.root
def test_rotation_in_the_demo_lab_keeps_complete_parts_in_order(tmp_path, tag):
    rec = tmp_path / "lab.txtop"
    max_bytes, keep = 24 << 10, 3
    res = txtop(
        "--demo", "--demo-tag", tag, "--headless", "--record", str(rec), "--max-size", "24K",
        "--keep", str(keep), "-d", "0.5", "--duration", "15", timeout=180,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert lab_state(tag) == ([], [])
    parts = [p for p in (rec.with_name(f"lab.txtop.{i}") for i in (2, 1)) if p.exists()] + [rec]
    assert sorted(tmp_path.iterdir()) == sorted(parts) and len(parts) == keep, parts
    frames = []
    for p in parts:
        result = read_recording(p)
        assert result.intact, (p, result.damage)  # every part a whole recording
        assert all(f.mode == "demo" for f in result.snapshots)
        assert p.stat().st_size <= max_bytes or len(result.snapshots) == 1
        out = txtop("--replay", str(p), "--once")
        assert out.returncode == 0, out.stderr
        frames += result.snapshots
    times = [f.time for f in frames]
    assert times == sorted(times) and len(set(times)) == len(times)
    # No frame lost at a rotation: each part starts one interval after the last one ended.
    gaps = [b.time - b.interval_s - a.time for a, b in zip(frames, frames[1:], strict=False)]
    assert max(abs(g) for g in gaps) < 0.05, gaps
    biggest = max(len(encode_frame(f)) for f in frames) + 200
    assert sum(p.stat().st_size for p in parts) <= keep * max_bytes + biggest
    whole = txtop("--replay", *(str(p) for p in parts), "--headless")
    assert whole.returncode == 0 and len(whole.stdout.splitlines()) == len(frames)


@pytest.mark.root
def test_sigusr1_on_a_headless_demo_flight_recorder(tmp_path, tag):
    window_s, interval_s = 4.0, 0.5
    argv = [*TXTOP, "--demo", "--demo-tag", tag, "--headless", "-d", str(interval_s)]
    argv += ["--flight", str(window_s), "--flight-dir", str(tmp_path)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # noqa: S603
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()

    def flight_files() -> list[Path]:  # not the hidden temporary file of a write
        return list(tmp_path.glob("txtop-*.txtop"))

    try:
        wait_until(lambda: any("SIGUSR1 writes them" in ln for ln in lines), "ready", 60)
        best = 0.0
        deadline = time.monotonic() + 60
        while best < window_s - 2 * interval_s:  # until the window has filled
            assert time.monotonic() < deadline and proc.poll() is None, lines
            time.sleep(1.0)
            before = set(flight_files())
            proc.send_signal(signal.SIGUSR1)
            wait_until(lambda b=before: set(flight_files()) - b, "a flight file", 20)
            (newest,) = set(flight_files()) - before  # complete once it has its name
            result = read_recording(newest)
            assert result.intact and result.info.trigger == "signal"
            assert all(f.mode == "demo" for f in result.snapshots)
            first = result.snapshots[0]
            best = result.snapshots[-1].time - (first.time - first.interval_s)
        assert best <= window_s + 0.1, best
        proc.send_signal(signal.SIGTERM)
        proc.wait(STOP_DEADLINE_S)  # stderr is the reader thread's
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    reader.join(5)
    assert proc.returncode == 0 and proc.stdout.read() == ""
    assert sum("flight recording written: " in ln for ln in lines) == len(flight_files()), lines
    assert sorted(tmp_path.iterdir()) == sorted(flight_files())
    assert lab_state(tag) == ([], [])


# ---- without root: synthetic data ---------------------------------------------------------------


def test_headless_prints_json_lines_until_the_duration():
    res = txtop("--synthetic", "2x2", "-d", "0.1", "--headless", "--duration", "1")
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert 5 <= len(lines) <= 14, len(lines)
    assert [d["time"] for d in lines] == sorted(d["time"] for d in lines)


def test_headless_stops_on_sigterm_with_status_0_and_a_complete_recording(tmp_path):
    rec = tmp_path / "syn.txtop"
    argv = [*TXTOP, "--synthetic", "2x2", "-d", "0.1", "--headless", "--record", str(rec)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # noqa: S603
    try:
        wait_until(lambda: frames_in(rec) >= 3, "three ticks", 30)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=EXIT_DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0 and out == "" and err == ""
    assert read_recording(rec).intact
    assert stat.S_IMODE(rec.stat().st_mode) == 0o600


def test_headless_into_a_closed_pipe_ends_quietly():
    with subprocess.Popen(  # noqa: S603
        [*TXTOP, "--synthetic", "2x2", "-d", "0.1", "--headless"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        first = proc.stdout.readline()
        proc.stdout.close()  # `| head -1`
        rc = proc.wait(EXIT_DEADLINE_S)
        err = proc.stderr.read().decode()
    assert json.loads(first)["interfaces"]
    assert rc == 0 and err == ""


def test_record_refuses_an_existing_file_and_a_missing_directory(tmp_path):
    existing = tmp_path / "old.txtop"
    existing.write_bytes(b"precious")
    res = txtop("--synthetic", "2x2", "--headless", "--record", str(existing), "--duration", "1")
    assert res.returncode == 2 and "already exists" in res.stderr
    assert existing.read_bytes() == b"precious"
    missing = tmp_path / "no" / "such" / "dir.txtop"
    res = txtop("--synthetic", "2x2", "--headless", "--record", str(missing), "--duration", "1")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "cannot create" in res.stderr


def test_dashboard_records_while_paused_and_stops_after_the_duration(tmp_path):
    rec = tmp_path / "ui.txtop"
    run = PtyRun("--synthetic", "2x2", "-d", "0.1", "--record", str(rec), "--duration", "3")
    try:
        run.wait_for("REC")
        os.write(run.master, b" ")  # pause the display
        run.wait_for("PAUSED")
        paused_at = frames_in(rec)
        time.sleep(1.0)
        assert frames_in(rec) >= paused_at + 5  # the recording went on at 10 Hz
        rc = run.proc.wait(3 + EXIT_DEADLINE_S)
    finally:
        run.finish()
    assert rc == 0
    assert read_recording(rec).intact
