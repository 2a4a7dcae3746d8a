"""The command line: bad input (exit 2, one line, no traceback), --once JSON, colour
environment, and clean exits of the real process under a pty (q, signals, hang-up)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from txtop.core.model import Snapshot
from txtop.tui import cli

PY = sys.executable
TXTOP = [PY, "-m", "txtop.tui.cli"]


def txtop(*args: str, timeout: float = 60, env: dict[str, str] | None = None):
    return subprocess.run(
        [*TXTOP, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )


BAD_ARGS = [
    ["-d", "0"],
    ["-d", "-1"],
    ["-d", "1e9"],
    ["-d", "61"],
    ["-d", "nan"],
    ["-d", "inf"],
    ["-d", "abc"],
    ["-d"],
    ["--sample", "0"],
    ["--sample", "-5"],
    ["--sample", "x"],
    ["--max-samples-per-s", "0"],
    ["--pid", "0"],
    ["--pid", "abc"],
    ["-i", "nosuchif0"],
    ["-i", "eth0", "-i", "nosuchif0"],
    ["-i", "bad/name"],
    ["-i", ""],
    ["-i", "a" * 16],
    ["--theme", "nosuch"],
    ["--theme", "../dark"],
    ["--color", "purple"],
    ["--format", "xml"],
    ["--bogus-flag"],
    ["--synthetic", "0x4"],
    ["--no-probes", "--sample", "8"],
    ["--trace-duty", "0"],
    ["--trace-duty", "101"],
    ["--trace-duty", "often"],
    ["--trace-duty", "0.5"],
    ["--no-probes", "--trace-duty", "50"],
    ["extra-positional"],
    ["--at", "0"],
]


@pytest.mark.parametrize("args", BAD_ARGS, ids=lambda a: " ".join(a) or "empty")
def test_bad_input_exits_2_with_one_line(args):
    res = txtop(*args, "--once")
    assert res.returncode == 2, (res.returncode, res.stderr)
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("txtop: error: ")
    assert "Traceback" not in res.stderr
    assert res.stdout == ""


def test_format_needs_once():
    res = txtop("--format", "json")
    assert res.returncode == 2 and res.stderr == "txtop: error: --format needs --once\n"


def test_unknown_interface_names_it_and_lists_the_available_ones():
    res = txtop("-i", "nosuchif0", "--once", "--no-probes")
    assert res.returncode == 2
    assert "nosuchif0" in res.stderr and "available" in res.stderr and "lo" in res.stderr


def test_unknown_theme_lists_valid_ones():
    res = txtop("--theme", "nosuch")
    assert res.returncode == 2
    assert "dark, light, mono" in res.stderr


def test_dashboard_without_a_terminal_is_a_usage_error():
    res = txtop("--synthetic", "2x2")
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "needs a terminal" in res.stderr


def test_help_and_version():
    res = txtop("--help")
    assert res.returncode == 0 and "--interval" in res.stdout and "--synthetic" not in res.stdout
    res = txtop("--version")
    assert res.returncode == 0 and res.stdout.startswith("txtop ")


def test_unexpected_start_up_error_is_one_line_exit_1(monkeypatch, capsys):
    from txtop.tui import sources

    def boom(opts, recording=None):
        raise RuntimeError("collector exploded\nsecond line")

    monkeypatch.setattr(sources, "build_source", boom)
    monkeypatch.delenv("TXTOP_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exc:
        cli.main(["--once"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err == "txtop: error: collector exploded second line\n"
    monkeypatch.setenv("TXTOP_DEBUG", "1")
    with pytest.raises(RuntimeError):
        cli.main(["--once"])


def test_cli_module_does_not_import_textual():
    # TEXTUAL_COLOR_SYSTEM is read at import: the CLI must set it before Textual loads.
    res = subprocess.run(
        [PY, "-c", "import sys, txtop.tui.cli; print('textual' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.stdout.strip() == "False", res.stderr


@pytest.mark.parametrize(
    "argv, env, system, no_color, theme",
    [
        (["--color", "16"], {}, "standard", None, "dark"),
        (["--color", "256"], {}, "256", None, "dark"),
        (["--color", "truecolor", "--theme", "light"], {}, "truecolor", None, "light"),
        (["--color", "none"], {}, "standard", "1", "mono"),
        ([], {"NO_COLOR": "1"}, None, "1", "mono"),
        (["--theme", "light"], {"NO_COLOR": "1"}, None, "1", "light"),
        ([], {"NO_COLOR": ""}, None, None, "dark"),  # empty NO_COLOR means unset
    ],
)
def test_color_environment(monkeypatch, argv, env, system, no_color, theme):
    for name in ("TEXTUAL_COLOR_SYSTEM", "NO_COLOR"):
        # setenv first so monkeypatch restores the real state after configure_colors wrote it
        monkeypatch.setenv(name, "x")
        monkeypatch.delenv(name)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    args = cli.parse_args(argv)
    assert cli.configure_colors(args) == theme
    assert os.environ.get("TEXTUAL_COLOR_SYSTEM") == system
    assert os.environ.get("NO_COLOR") == no_color


# ---- --once --format json ---------------------------------------------------------------------


def _check_shape(data: dict) -> Snapshot:
    for key in (
        "version",
        "host",
        "kernel",
        "time",
        "interval_s",
        "interfaces",
        "devices",
        "queues",
        "cpus",
        "packets",
        "probes",
    ):
        assert key in data, key
    snap = Snapshot.from_dict(data)
    assert snap.cpus and snap.queues and snap.interfaces
    return snap


def test_once_json_without_probes():
    res = txtop("--once", "--format", "json", "--no-probes", "-d", "0.3")
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("\n") == 1
    snap = _check_shape(json.loads(res.stdout))
    assert snap.probes.state == "off"
    assert snap.interfaces[-1] == "lo"  # lo last by default
    assert 0.25 <= snap.interval_s <= 1.0  # one whole interval after the priming tick


def test_once_json_synthetic_source():
    res = txtop("--once", "--synthetic", "4x3", "-d", "0.1")
    assert res.returncode == 0, res.stderr
    snap = _check_shape(json.loads(res.stdout))
    assert len([q for q in snap.queues if q.dev == "syn0"]) == 4 and len(snap.cpus) == 3


def _sysfs_limit(dev: str) -> int:
    return int(Path(f"/sys/class/net/{dev}/queues/tx-0/byte_queue_limits/limit").read_text())


@pytest.mark.root
@pytest.mark.skipif(
    not Path("/sys/class/net/eth0/queues/tx-0/byte_queue_limits/limit").exists(),
    reason="needs an eth0 with BQL",
)
def test_once_json_live_matches_sysfs():
    before = _sysfs_limit("eth0")
    res = txtop("--once", "--format", "json", "-i", "eth0", "-i", "lo", "-d", "0.5", timeout=120)
    after = _sysfs_limit("eth0")
    assert res.returncode == 0, res.stderr
    snap = _check_shape(json.loads(res.stdout))
    assert snap.interfaces == ("eth0", "lo")
    assert snap.probes.state in ("running", "unavailable"), snap.probes
    eth0 = [q for q in snap.queues if q.dev == "eth0" and q.queue == 0][0]
    assert eth0.bql is not None
    assert eth0.bql.limit in (before, after)


# ---- the real process under a pty: clean exits ------------------------------------------------


class PtyRun:
    """Runs txtop on a fresh pty as session leader with it as the controlling terminal."""

    def __init__(
        self,
        *args: str,
        cols: int = 80,
        rows: int = 24,
        env: dict[str, str] | None = None,
        prefix: tuple[str, ...] = (),
    ) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", **(env or {})}
        env.pop("TXTOP_DEBUG", None)
        if prefix:  # e.g. setpriv to another user: the pty must be theirs to open
            os.fchown(slave, *_owner(prefix))
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv
            [*prefix, *TXTOP, *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # noqa: PLW1509
            close_fds=True,
        )
        os.close(slave)
        self.output = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                self.output += chunk

    def text(self) -> str:
        with self._lock:
            return self.output.decode("utf-8", "replace")

    def wait_for(self, needle: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            if self.proc.poll() is not None:
                raise AssertionError(f"exited {self.proc.returncode}: {self.text()[-500:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {needle!r} within {timeout}s: {self.text()[-500:]!r}")
            time.sleep(0.05)

    def close_master(self) -> None:
        os.close(self.master)
        self.master = -1

    def finish(self, timeout: float = 10.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            if self.master >= 0:
                os.close(self.master)

    def group_gone(self) -> bool:
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return True
        return False


def _owner(prefix: tuple[str, ...]) -> tuple[int, int]:
    """uid/gid a setpriv prefix (--reuid=N --regid=N) switches to; root's otherwise."""
    uid = gid = 0
    for arg in prefix:
        if arg.startswith("--reuid="):
            uid = int(arg.split("=", 1)[1])
        elif arg.startswith("--regid="):
            gid = int(arg.split("=", 1)[1])
    return uid, gid


EXIT_DEADLINE_S = 6.0  # EXIT_GRACE_S (3 s) plus start-up slack on a shared 2-core machine


@pytest.mark.parametrize(
    "how, code",
    [("q", 0), ("SIGINT", 130), ("SIGTERM", 143), ("SIGHUP", 129), ("hangup", None)],
)
def test_exits_cleanly_under_a_pty(how, code):
    run = PtyRun("--synthetic", "4x2", "-d", "0.2")
    try:
        run.wait_for("TX queues")
        run.wait_for("syn0")  # a snapshot arrived and was drawn
        started = time.monotonic()
        if how == "q":
            os.write(run.master, b"q")
        elif how == "hangup":
            run.close_master()  # the SSH connection drops: SIGHUP and EIO on the tty
        else:
            run.proc.send_signal(getattr(signal, how))
        rc = run.proc.wait(EXIT_DEADLINE_S)
        elapsed = time.monotonic() - started
    finally:
        final = run.finish()
    assert elapsed < EXIT_DEADLINE_S
    if code is not None:
        assert final == code, run.text()[-800:]
        assert "\x1b[?1049l" in run.text()  # left the alternate screen: terminal restored
        assert "Traceback" not in run.text()
    else:
        assert rc is not None
    deadline = time.monotonic() + 3
    while not run.group_gone() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.group_gone(), "processes left in txtop's session"


def test_live_no_probes_under_a_pty_with_ascii_and_no_mouse():
    run = PtyRun("--no-probes", "--ascii", "--no-mouse", "-d", "0.5", cols=100, rows=30)
    try:
        run.wait_for("(--no-probes)")
        run.wait_for("lo")
        assert "\x1b[?1000h" not in run.text()  # mouse reporting never turned on
        os.write(run.master, b"q")
        assert run.proc.wait(EXIT_DEADLINE_S) == 0
    finally:
        run.finish()


def _colour_codes(output: str) -> set[str]:
    """SGR parameters that set a colour (30-37, 38;..., 40-47, 48;..., 90-97, 100-107)."""
    found = set()
    for params in re.findall(r"\x1b\[([0-9;]*)m", output):
        parts = params.split(";")
        i = 0
        while i < len(parts):
            p = parts[i]
            if p in ("38", "48"):
                found.add(";".join(parts[i : i + 3]))
                i += 3 if i + 1 < len(parts) and parts[i + 1] == "5" else 5
                continue
            if p.isdigit() and (30 <= int(p) <= 37 or 40 <= int(p) <= 47 or 90 <= int(p) <= 107):
                found.add(p)
            i += 1
    return found


@pytest.mark.parametrize("args", [["--color", "none"], []], ids=["color-none", "NO_COLOR"])
def test_no_colour_output_at_all(args):
    env = {} if args else {"NO_COLOR": "1"}
    run = PtyRun("--synthetic", "4x2", *args, env=env)
    try:
        run.wait_for("syn0")
        time.sleep(0.3)
        os.write(run.master, b"q")
        assert run.proc.wait(EXIT_DEADLINE_S) == 0
    finally:
        run.finish()
    text = run.text()
    assert "\x1b[1" in text  # bold still carries meaning
    assert _colour_codes(text) == set(), sorted(_colour_codes(text))[:10]


def test_sixteen_colours_only():
    run = PtyRun("--synthetic", "4x2", "--color", "16")
    try:
        run.wait_for("syn0")
        os.write(run.master, b"q")
        assert run.proc.wait(EXIT_DEADLINE_S) == 0
    finally:
        run.finish()
    codes = _colour_codes(run.text())
    assert codes and not any(c.startswith(("38", "48")) for c in codes), codes


@pytest.mark.root
@pytest.mark.parametrize("how", ["SIGTERM", "hangup"])
def test_live_dashboard_with_probes_exits_cleanly(how):
    run = PtyRun("-d", "0.5")
    try:
        run.wait_for("TX queues")
        deadline = time.monotonic() + 60
        while "compiling probes" in run.text()[-3000:] and time.monotonic() < deadline:
            time.sleep(0.1)  # let the BPF programs attach before pulling the plug
        time.sleep(1.0)
        if how == "hangup":
            run.close_master()
        else:
            run.proc.send_signal(signal.SIGTERM)
        rc = run.proc.wait(EXIT_DEADLINE_S)
    finally:
        run.finish()
    assert rc in (143, 129)
    gone_by = time.monotonic() + 3
    while not run.group_gone() and time.monotonic() < gone_by:
        time.sleep(0.05)
    assert run.group_gone()


# ---- waterfall filter flags -------------------------------------------------------------------


def test_filter_flags_build_the_waterfall_filter():
    args = cli.parse_args(
        [
            "--comm",
            "udp*",
            "--comm",
            "iperf3",
            "--port",
            "9000-9100",
            "--proto",
            "udp",
            "--pid",
            "7",
        ]
    )
    spec = args.filter_spec
    assert spec.comms == ("udp*", "iperf3")
    assert spec.ports == ((9000, 9100),) and spec.protocols == ("udp",) and spec.pids == (7,)
    assert cli.parse_args([]).filter_spec.empty


@pytest.mark.parametrize(
    "args",
    [
        ["--port", "65536"],
        ["--port", "a-b"],
        ["--port", "10-1"],
        ["--proto", "tcpx"],
        ["--comm", ""],
    ],
)
def test_bad_filter_flags_are_usage_errors(args):
    with pytest.raises(cli.UsageError):
        cli.parse_args(args)


@pytest.mark.skipif(os.geteuid() != 0, reason="the probes need root")
def test_trace_duty_reaches_the_probes_and_the_json():
    import json

    from txtop.probes.bpf.tracer import probe_prerequisites

    why = probe_prerequisites()
    if why:
        pytest.skip(why)
    res = txtop("-i", "lo", "-d", "0.3", "--once", "--format", "json", "--trace-duty", "5")
    assert res.returncode == 0, res.stderr
    probes = json.loads(res.stdout)["probes"]
    assert probes["state"] == "running", probes
    assert (probes["trace_mode"], probes["trace_duty_pct"]) == ("fixed", 5.0)
    assert 0.0 <= probes["traced_pct"] <= 100.0
