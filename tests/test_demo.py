"""The demo lab: real namespaces and traffic, fully removed afterwards (root only)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from txtop.lab import netns as labmod
from txtop.lab.trafficgen import allowed_destination, parse_args


@pytest.mark.parametrize(
    "addr,ok",
    [
        ("10.253.1.2", True),
        ("127.0.0.1", True),
        ("10.0.0.1", False),
        ("8.8.8.8", False),
        ("192.168.1.1", False),
        ("::1", False),
        ("bogus", False),
    ],
)
def test_traffic_generator_refuses_destinations_outside_the_lab(addr, ok):
    assert allowed_destination(addr) is ok


def test_generator_cli_rejects_outside_destination(capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(["udp", "--dst", "1.1.1.1"])
    assert exc.value.code == 2
    assert "outside the lab" in capsys.readouterr().err


def _qdisc_backlogs(dev: str) -> dict[str, int]:
    """Backlog bytes per qdisc parent, from `tc -s -j` (exact numbers, no 16K rounding)."""
    out = subprocess.run(
        ["tc", "-s", "-j", "qdisc", "show", "dev", dev], capture_output=True, text=True, check=True
    ).stdout
    return {q.get("parent", "root"): int(q.get("backlog", 0)) for q in json.loads(out)}


@pytest.mark.root
def test_demo_lab_builds_traffic_and_removes_everything():
    from txtop.lab.demo import DemoLab

    demo = DemoLab(tag="dt", duration_s=60)
    try:
        demo.start()
        assert demo.lab.ns in labmod.list_lab_namespaces()
        assert Path(f"/sys/class/net/{demo.dev}").exists()
        # Every queue carries traffic and the rate-limited tx-1 (parent 1:2) builds a backlog.
        deadline = time.monotonic() + 15
        seen_backlog = 0
        while time.monotonic() < deadline:
            seen_backlog = max(seen_backlog, _qdisc_backlogs(demo.dev).get("1:2", 0))
            if seen_backlog > 10_000:
                break
            time.sleep(0.2)
        assert seen_backlog > 10_000, "tbf on tx-1 never built a backlog"
        assert demo.alive()
    finally:
        demo.stop()
    assert demo.lab.ns not in labmod.list_lab_namespaces()
    assert not Path(f"/sys/class/net/{demo.dev}").exists()
    assert not any(p.poll() is None for p in demo.procs)


@pytest.mark.root
def test_stale_lab_of_a_killed_process_is_cleaned():
    code = (
        "import time; from txtop.lab.demo import DemoLab\n"
        "d = DemoLab(tag='kill', duration_s=60); d.start(); print(d.lab.ns, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        ns = proc.stdout.readline().strip()
        assert ns.startswith(labmod.NS_PREFIX)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        assert ns in labmod.list_lab_namespaces()  # SIGKILL left it behind
        removed = labmod.cleanup_stale()
        assert ns in removed
        assert ns not in labmod.list_lab_namespaces()
        assert not Path("/sys/class/net/txlkilla").exists()
        # The generators died with their parent (PR_SET_PDEATHSIG).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            ps = subprocess.run(["pgrep", "-f", f"parent-pid {proc.pid}"], capture_output=True)
            if ps.returncode == 1:
                break
            time.sleep(0.1)
        assert ps.returncode == 1, "traffic generators outlived their parent"
    finally:
        if proc.poll() is None:
            proc.kill()
        labmod.cleanup_stale()


def test_sink_refuses_to_listen_outside_a_lab_namespace():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "txtop.lab.trafficgen",
            "sink",
            "--port",
            "5999",
            "--duration",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode != 0
    assert "only inside a lab network namespace" in proc.stderr
