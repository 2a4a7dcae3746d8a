"""Degraded modes: whatever is missing, txtop says why in one line and keeps the rest running.

Each missing piece is made missing for real, for the txtop process only, never mocked:
  - bcc that fails to import: a PYTHONPATH directory whose ``bcc/__init__.py`` raises
    ImportError, shadowing the distro's module (what a broken python3-bpfcc install does);
  - bcc not installed: a private mount namespace (``unshare -m``) with an empty tmpfs over
    the distro's dist-packages, where python3-bpfcc puts it;
  - no kernel headers: the same with empty tmpfs over /usr/src, /lib/modules and txtop's
    header cache (/var/cache/txtop), every place probes/bpf/headers.py looks;
  - no tracefs: an empty tmpfs over /sys/kernel (a kernel without tracing), or over
    /sys/kernel/tracing with CAP_SYS_ADMIN dropped so txtop cannot mount it itself;
  - not root: ``setpriv`` to nobody.
Mounts made in the private namespace vanish with it; nothing changes for the rest of the
machine. Then: ``--once --format json`` reports probes.state "unavailable" with a one-line
reason and still has queues and CPUs, and the dashboard under a pty shows that reason in its
header and exits on q. Also: TERM=dumb, NO_COLOR, and terminals smaller than 80x24.

Run as a script, this file is the helper that mounts and then runs the command:
    test_degraded.py TARGET... -- COMMAND...   (inside `unshare -m`)
"""

from __future__ import annotations

import fcntl
import grp
import json
import os
import pwd
import re
import shutil
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_cli import EXIT_DEADLINE_S, TXTOP, PtyRun, _colour_codes

HERE = Path(__file__).resolve()
PY = sys.executable
# Numeric ids: PtyRun hands the pty to the uid/gid it reads from the prefix.
NOBODY = (
    "setpriv",
    f"--reuid={pwd.getpwnam('nobody').pw_uid}",
    f"--regid={grp.getgrnam('nogroup').gr_gid}",
    "--clear-groups",
)
SGR = re.compile(r"\x1b\[[0-9;]*m")
ONCE = ("--once", "--format", "json", "-i", "lo", "-d", "0.3")


def _dist_packages() -> Path:
    """Where the distro's bcc lives (python3-bpfcc), as this interpreter sees it."""
    try:
        import bcc  # noqa: F401 - only its location is wanted
    except ImportError:
        pytest.skip("bcc is not installed here: nothing to take away")
    return Path(sys.modules["bcc"].__file__).resolve().parent.parent


def private_mounts(*targets: str | Path) -> tuple[str, ...]:
    """A prefix that runs the command in a private mount namespace with an empty tmpfs over
    each existing target."""
    if not shutil.which("unshare"):
        pytest.skip("unshare not installed")
    there = [str(t) for t in targets if Path(t).is_dir()]
    return ("unshare", "--mount", "--propagation", "private", PY, str(HERE), *there, "--")


@dataclass
class Mode:
    """One way the probes cannot run: how to run txtop so, and what its reason must say."""

    name: str
    prefix: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    says: tuple[str, ...] = ()  # words the reason must contain
    root: bool = True  # needs root to set up


def _shadow_bcc(tmp: Path) -> dict[str, str]:
    pkg = tmp / "shadow" / "bcc"
    pkg.mkdir(parents=True)
    # A stand-in for a broken bcc install, found before the distro's module on sys.path.
    (pkg / "__init__.py").write_text(
        'raise ImportError("libbcc.so.0: cannot open shared object file (test shadow)")\n'
    )
    os.chmod(tmp, 0o755)  # readable by nobody too
    return {"PYTHONPATH": str(tmp / "shadow")}


def make_mode(name: str, tmp: Path) -> Mode:
    if name == "bcc-broken":
        return Mode(name, env=_shadow_bcc(tmp), says=("bcc", "libbcc.so.0"))
    if name == "bcc-missing":
        return Mode(name, private_mounts(_dist_packages()), says=("bcc", "python3-bpfcc"))
    if name == "no-headers":
        if Path("/sys/kernel/kheaders.tar.xz").exists():
            pytest.skip("this kernel carries its headers (IKHEADERS): they cannot be hidden")
        hide = private_mounts("/usr/src", "/lib/modules", "/var/cache/txtop")
        return Mode(name, hide, says=("no kernel headers", os.uname().release, "fix:"))
    if name == "no-tracefs":
        return Mode(name, private_mounts("/sys/kernel"), says=("tracefs",))
    if name == "tracefs-unmountable":
        if not shutil.which("setpriv"):
            pytest.skip("setpriv not installed")
        hide = private_mounts("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
        drop = ("setpriv", "--bounding-set", "-sys_admin", "--inh-caps", "-sys_admin")
        return Mode(name, hide + drop, says=("cannot mount tracefs",))
    if name == "not-root":
        if os.geteuid() == 0 and not shutil.which("setpriv"):
            pytest.skip("root without setpriv: cannot drop privileges")
        prefix = NOBODY if os.geteuid() == 0 else ()
        return Mode(name, prefix, says=("root",), root=False)
    raise AssertionError(name)


MODES = ["bcc-broken", "bcc-missing", "no-headers", "no-tracefs", "tracefs-unmountable", "not-root"]


def run_txtop(mode: Mode, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - fixed argv
        [*mode.prefix, *TXTOP, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "TXTOP_DEBUG": "", **mode.env},
    )


@pytest.fixture(params=MODES)
def mode(request, tmp_path: Path) -> Mode:
    m = make_mode(request.param, tmp_path)
    if m.root and os.geteuid() != 0:
        pytest.skip("needs root to take things away")
    return m


def test_degraded_once_json_says_why_and_keeps_the_other_panels(mode: Mode):
    res = run_txtop(mode, *ONCE)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    snap = json.loads(res.stdout)
    probes = snap["probes"]
    assert probes["state"] == "unavailable", probes
    reason = probes["reason"]
    assert reason and "\n" not in reason and len(reason) <= 300, reason
    for word in mode.says:
        assert word in reason, (word, reason)
    assert [q["dev"] for q in snap["queues"]] == ["lo"]
    assert snap["cpus"] and snap["devices"][0]["tx_packets"] >= 0
    print(f"\n[degraded] {mode.name}: {reason}")


def test_degraded_dashboard_shows_the_reason_and_quits_on_q(mode: Mode):
    reason = json.loads(run_txtop(mode, *ONCE).stdout)["probes"]["reason"]
    run = PtyRun("-i", "lo", "-d", "0.5", cols=200, rows=40, env=mode.env, prefix=mode.prefix)
    try:
        # The header's probe line, in full at 200 columns.
        wait_plain(run, f"probes: unavailable: {reason}", timeout=60)
        run.wait_for("TX queues")
        os.write(run.master, b"q")
        rc = run.proc.wait(EXIT_DEADLINE_S)
    finally:
        end(run)
    assert rc == 0, run.text()[-600:]
    assert "Traceback" not in run.text()


@pytest.mark.root
def test_empty_tracefs_mount_point_is_mounted_by_txtop_itself():
    """An empty /sys/kernel/tracing (tracefs not mounted) is not a degraded mode: txtop
    mounts it (in this test, inside a private mount namespace) and the probes run."""
    from txtop.probes.bpf.tracer import probe_prerequisites

    if probe_prerequisites():
        pytest.skip(f"probes cannot run here: {probe_prerequisites()}")
    mode = Mode("tracefs-empty", private_mounts("/sys/kernel/tracing"))
    res = run_txtop(mode, *ONCE)
    assert res.returncode == 0, res.stderr
    probes = json.loads(res.stdout)["probes"]
    assert probes["state"] == "running", probes


def plain(run: PtyRun) -> str:
    """The pty output without its colour/style sequences (text of one style run is split
    from the next by them)."""
    return SGR.sub("", run.text())


def wait_plain(run: PtyRun, needle: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while needle not in plain(run):
        assert run.proc.poll() is None, f"exited {run.proc.returncode}: {plain(run)[-500:]}"
        assert time.monotonic() < deadline, f"no {needle!r} within {timeout} s: {plain(run)[-500:]}"
        time.sleep(0.05)


# ---- the terminal ---------------------------------------------------------------------------------


def end(run: PtyRun) -> None:
    if run.proc.poll() is None:
        run.proc.kill()
    run.finish()


def test_term_dumb_is_a_clear_usage_error_and_once_still_works():
    run = PtyRun("--synthetic", "2x2", env={"TERM": "dumb"})
    try:
        rc = run.proc.wait(EXIT_DEADLINE_S)
        deadline = time.monotonic() + 2
        while "\n" not in run.text() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        end(run)
    text = run.text()
    assert rc == 2, text
    assert text.strip().splitlines() == [
        "txtop: error: this terminal (TERM=dumb) cannot show the full-screen dashboard; "
        "use --once --format json or --headless"
    ]
    assert "\x1b" not in text  # nothing drawn, no mode switched
    res = subprocess.run(  # noqa: S603
        [*TXTOP, "--synthetic", "2x2", "--once", "-d", "0.1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TERM": "dumb"},
    )
    assert res.returncode == 0 and json.loads(res.stdout)["queues"], res.stderr


def test_no_color_in_a_degraded_live_dashboard():
    """NO_COLOR with the probe line's alert (unavailable): meaning without any colour."""
    mode = make_mode("not-root", Path("/nonexistent"))
    run = PtyRun(
        "-i", "lo", "-d", "0.3", cols=120, rows=30, env={"NO_COLOR": "1"}, prefix=mode.prefix
    )
    try:
        wait_plain(run, "probes: unavailable: BPF probes need root", timeout=60)
        mark = len(run.output)
        deadline = time.monotonic() + 10
        while len(run.output) < mark + 2000:  # a few more ticks drawn
            assert time.monotonic() < deadline, "the dashboard stopped drawing"
            time.sleep(0.05)
        os.write(run.master, b"q")
        rc = run.proc.wait(EXIT_DEADLINE_S)
    finally:
        end(run)
    assert rc == 0
    assert _colour_codes(run.text()) == set(), sorted(_colour_codes(run.text()))[:10]
    assert "\x1b[1" in run.text() or "\x1b[7" in run.text()  # bold/reverse still mark alerts


def _resize(run: PtyRun, cols: int, rows: int) -> None:
    # On the master side: the kernel sends SIGWINCH to the pty's foreground process group.
    fcntl.ioctl(run.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


@pytest.mark.parametrize("cols, rows", [(79, 23), (79, 24), (80, 23), (40, 10)])
def test_too_small_terminal_says_so_recovers_and_quits(cols: int, rows: int):
    run = PtyRun("--no-probes", "-i", "lo", "-d", "0.3", cols=cols, rows=rows)
    try:
        run.wait_for("make the window", timeout=30)
        if cols >= 48:  # the whole message fits on a line
            run.wait_for(f"need 80x24, have {cols}x{rows}")
        assert "TX queues" not in run.text()
        mark = len(run.output)
        _resize(run, 80, 24)
        deadline = time.monotonic() + 10
        while "TX queues" not in bytes(run.output[mark:]).decode("utf-8", "replace"):
            assert run.proc.poll() is None, run.text()[-500:]
            assert time.monotonic() < deadline, "no dashboard after growing to 80x24"
            time.sleep(0.05)
        _resize(run, cols, rows)  # and back: the message again, no crash
        mark = len(run.output)
        deadline = time.monotonic() + 10
        while "make the window" not in bytes(run.output[mark:]).decode("utf-8", "replace"):
            assert run.proc.poll() is None, run.text()[-500:]
            assert time.monotonic() < deadline, "no message after shrinking again"
            time.sleep(0.05)
        os.write(run.master, b"q")
        rc = run.proc.wait(EXIT_DEADLINE_S)
    finally:
        end(run)
    assert rc == 0
    assert "Traceback" not in run.text()
    assert "\x1b[?1049l" in run.text()


# ---- recordings that cannot be read ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["unreadable", "fifo", "device", "proc"])
def test_a_recording_that_cannot_be_read_is_one_line_and_exit_2(tmp_path: Path, kind: str):
    """Beside test_replay_cli's damaged files: no permission, and files that are not regular
    (a FIFO would block an open() for ever, a device never ends)."""
    prefix: tuple[str, ...] = ()
    if kind == "unreadable":
        if os.geteuid() != 0:
            pytest.skip("needs root to make a file only root can read")
        path = tmp_path / "secret.txtop"
        shutil.copy(Path(__file__).parent.parent / "recordings" / "data" / "demo.txtop", path)
        os.chmod(path, 0o600)  # root's only (and so are the directories above it)
        prefix = NOBODY
    elif kind == "fifo":
        path = tmp_path / "fifo.txtop"
        os.mkfifo(path)
    elif kind == "device":
        path = Path("/dev/zero")
    else:
        path = Path("/proc/self/mem")
    for mode in (("--once",), ("--headless",)):
        res = subprocess.run(  # noqa: S603 - fixed argv
            [*prefix, *TXTOP, "--replay", str(path), *mode],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        assert res.returncode == 2, (mode, res.stderr)
        assert res.stderr.startswith(f"txtop: error: {path}: "), res.stderr
        assert res.stderr.count("\n") == 1 and res.stdout == "", res.stderr


# ---- the helper: mount, then run ------------------------------------------------------------------


def _mount_and_exec(argv: list[str]) -> None:
    """TARGET... -- COMMAND...: an empty tmpfs over each target, then exec COMMAND (this
    process must already be in a private mount namespace: see private_mounts)."""
    split = argv.index("--")
    for target in argv[:split]:
        subprocess.run(  # noqa: S603 - fixed argv
            ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "txtop-test-empty", target],
            check=True,
            timeout=10,
        )
    command = argv[split + 1 :]
    os.execvp(command[0], command)


if __name__ == "__main__":
    _mount_and_exec(sys.argv[1:])
