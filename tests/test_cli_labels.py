"""Issue 17's labels on the real process: a --pid that no process has is a warning line (stderr
before the data, a notice in the dashboard), the first --headless line covers a whole interval
like --once, and a dashboard without a terminal names the stream that is not one."""

from __future__ import annotations

import grp
import json
import os
import pty
import pwd
import select
import shutil
import signal
import subprocess
import time

import pytest
from test_cli import EXIT_DEADLINE_S, TXTOP, PtyRun, txtop

NOBODY = (
    "setpriv",
    f"--reuid={pwd.getpwnam('nobody').pw_uid}",
    f"--regid={grp.getgrnam('nogroup').gr_gid}",
    "--clear-groups",
)


def dead_pid() -> int:
    """A pid no process has: one that just exited (reuse within the test is unlikely and
    checked)."""
    proc = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
    pid = int(proc.stdout)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    return pid


def first_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The first stdout line of ``proc`` within ``timeout`` (a deadline, not a sleep)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no line within {timeout}s")
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"exited {proc.wait(5)} without a line")
            buf += chunk
    return buf.split(b"\n", 1)[0].decode()


def test_headless_first_line_covers_a_whole_interval():
    res = txtop("--headless", "--no-probes", "-i", "lo", "-d", "0.5", "--duration", "2.4")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines, res.stderr
    first = json.loads(lines[0])
    assert first["probes"]["state"] == "off"
    assert 0.4 <= first["interval_s"] <= 1.5, first["interval_s"]  # not the 0.0 priming tick
    assert all(json.loads(line)["interval_s"] > 0 for line in lines)


@pytest.mark.root
def test_headless_first_line_with_probes_is_a_whole_interval_of_running_probes():
    proc = subprocess.Popen(
        [*TXTOP, "--headless", "-i", "lo", "-d", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        line = json.loads(first_line(proc, timeout=180))  # the probes compile first
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    assert line["probes"]["state"] in ("running", "unavailable"), line["probes"]
    assert line["probes"]["state"] != "starting"
    assert 0.4 <= line["interval_s"] <= 2.0, line["interval_s"]


@pytest.mark.skipif(not shutil.which("setpriv"), reason="setpriv not installed")
def test_pid_of_no_process_is_a_warning_on_stderr():
    pid = dead_pid()
    # As nobody the probes are unavailable: the run is quick, and the warning does not
    # depend on them.
    res = subprocess.run(
        [*NOBODY, *TXTOP, "--once", "--format", "json", "-i", "lo", "-d", "0.2", "--pid", str(pid)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert res.returncode == 0, res.stderr
    warnings = [line for line in res.stderr.splitlines() if f"--pid {pid}" in line]
    assert len(warnings) == 1 and "no such process" in warnings[0], res.stderr
    assert warnings[0].startswith("txtop: warning: ")
    json.loads(res.stdout)  # the run goes on
    # A process that exists: no warning.
    res = subprocess.run(
        [*NOBODY, *TXTOP, "--once", "--format", "json", "-i", "lo", "-d", "0.2", "--pid", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert res.returncode == 0 and "warning" not in res.stderr, res.stderr


@pytest.mark.skipif(not shutil.which("setpriv"), reason="setpriv not installed")
def test_pid_of_no_process_is_a_notice_in_the_dashboard():
    pid = dead_pid()
    run = PtyRun("-i", "lo", "-d", "0.5", "--pid", str(pid), cols=120, rows=30, prefix=NOBODY)
    try:
        run.wait_for("no such process")
        run.wait_for("TX queues")
        os.write(run.master, b"q")
        assert run.proc.wait(EXIT_DEADLINE_S) == 0
    finally:
        run.finish()


def test_dashboard_without_a_terminal_names_the_stream(tmp_path):
    """`txtop --synthetic 2x2 2>file` from a terminal: stderr is the problem, not stdin."""
    master, slave = pty.openpty()
    try:
        with open(tmp_path / "err", "w") as err:
            res = subprocess.run(
                [*TXTOP, "--synthetic", "2x2"], stdin=slave, stdout=slave, stderr=err, timeout=60
            )
    finally:
        os.close(slave)
        os.close(master)
    text = (tmp_path / "err").read_text()
    assert res.returncode == 2 and text.count("\n") == 1, text
    assert "stderr is not one" in text and "stdin" not in text.split("(")[0], text
    # stdin from /dev/null, stderr a pipe: both named.
    res = txtop("--synthetic", "2x2")
    assert res.returncode == 2 and "stdin and stderr are not" in res.stderr, res.stderr
