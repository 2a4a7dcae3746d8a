"""The exporter's command line (issue 14), as a user runs it: ``--serve [ADDR:]PORT`` with
``--headless`` and beside the dashboard, ``--once --format openmetrics|prometheus``,
``--textfile PATH`` and ``--metrics-histograms``; bad input is one line and exit status 2.

Real processes on the synthetic source and the bundled recording (no root, no BPF needed);
tests/test_exporter_lab.py runs the same daemon against real probes and a real Prometheus.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus
from prometheus_server import PROMTOOL, free_port, wait_for
from test_cli import PtyRun

from txtop import exporters
from txtop.tui import args as cli_args
from txtop.tui.args import parse_args

TXTOP = [sys.executable, "-m", "txtop.tui.cli"]


def txtop(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TXTOP, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k != "TXTOP_DEBUG"},
    )


def metric_values(text: str, name: str) -> list[float]:
    return [s.value for fam in parse_prometheus(text) for s in fam.samples if s.name == name]


class Daemon:
    """``txtop --headless ...`` as a background process; its stderr collected line by line."""

    def __init__(self, *argv: str) -> None:
        self.proc = subprocess.Popen(
            [*TXTOP, "--headless", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "TXTOP_DEBUG"},
        )
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def log(self) -> list[str]:
        with self._lock:
            return list(self.lines)

    def wait_line(self, pattern: str, timeout: float = 30) -> str:
        def found() -> str | None:
            if self.proc.poll() is not None:
                self._reader.join(5)
                raise AssertionError(f"txtop exited {self.proc.returncode}: {self.log()}")
            return next((line for line in self.log() if re.search(pattern, line)), None)

        line: str = wait_for(found, timeout, f"a log line matching {pattern!r}", every=0.05)
        return line

    def stop(self, signal_it: bool = True) -> tuple[int, str]:
        """SIGTERM (unless it is to end by itself); (exit status, what it printed on stdout)."""
        if signal_it and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        timer = threading.Timer(30, self.proc.kill)  # the read below must end
        timer.start()
        try:
            assert self.proc.stdout is not None
            out = self.proc.stdout.read()
            self.proc.wait(10)
        finally:
            timer.cancel()
        self._reader.join(5)
        return self.proc.returncode, out


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        d.stop()


def get(url: str, accept: str | None = None) -> tuple[str, str]:
    headers = {"Accept": accept} if accept else {}
    req = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.headers.get("Content-Type", ""), resp.read().decode()


def scrape_when(url: str, needle: str, timeout: float = 30) -> str:
    def body() -> str | None:
        try:
            text = get(url)[1]
        except (urllib.error.URLError, OSError):
            return None
        return text if needle in text else None

    text: str = wait_for(body, timeout, f"{needle} on {url}", every=0.1)
    return text


# ---- bad input -------------------------------------------------------------------------------

BAD = [
    ["--headless", "--serve", "99999"],
    ["--headless", "--serve", "0"],
    ["--headless", "--serve", "port"],
    ["--headless", "--serve", ""],
    ["--headless", "--serve", "::1:9466"],
    ["--headless", "--serve", "[::1]"],
    ["--headless", "--serve", "metrics.example.com:9466"],
    ["--headless", "--serve", "192.0.2.1:9466"],  # TEST-NET-1: not an address of this machine
    ["--headless", "--serve", "999.1.1.1:9466"],
    ["--headless", "--textfile", "metrics.txt"],
    ["--headless", "--textfile", "/nonexistent-txtop-dir/txtop.prom"],
    ["--headless", "--textfile", "/proc/txtop.prom"],
    ["--headless", "--textfile", "/dev/null.prom/x.prom"],
    ["--headless", "--serve", "9466", "--metrics-histograms", "all"],
    ["--headless", "--metrics-histograms", "queue"],
    ["--headless", "--format", "openmetrics"],
    ["--format", "prometheus"],
    ["--once", "--serve", "9466"],
    ["--once", "--format", "yaml"],
    ["--once", "--format", "openmetrics", "--textfile", "/nonexistent-txtop-dir/t.prom"],
]


@pytest.mark.parametrize("argv", BAD, ids=lambda a: " ".join(a))
def test_bad_exporter_input_exits_2_with_one_line(argv: list[str]) -> None:
    res = txtop("--synthetic", "2x2", "--duration", "5", *argv)
    assert res.returncode == 2, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("txtop: error: "), res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""


def test_port_in_use_is_one_line_exit_2_before_anything_is_built() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        started = time.monotonic()
        res = txtop("--synthetic", "2x2", "--headless", "--serve", f"127.0.0.1:{port}")
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and "already in use" in res.stderr, res.stderr
    assert time.monotonic() - started < 30


def test_options_and_the_exporter_agree() -> None:
    assert cli_args.HISTOGRAM_MODES == exporters.HISTOGRAM_MODES
    assert set(cli_args.METRICS_FORMATS) == set(exporters.FORMATS)
    opts = parse_args(["--serve", "9466"])
    assert opts.serve == ("127.0.0.1", 9466) and opts.metrics_histograms is None
    assert parse_args(["--serve", "0.0.0.0:9466"]).serve == ("0.0.0.0", 9466)
    assert parse_args(["--serve", "[::1]:9466"]).serve == ("::1", 9466)
    assert parse_args(["--once"]).format == "json"
    assert parse_args(["--once", "--textfile", "/tmp/t.prom"]).format is None  # the file only
    assert parse_args(["--once", "--format", "openmetrics"]).format == "openmetrics"
    help_text = cli_args.build_parser().format_help()
    for flag in ("--serve", "--textfile", "--metrics-histograms", "openmetrics"):
        assert flag in help_text, flag


# ---- --once ---------------------------------------------------------------------------------


def test_once_openmetrics_is_one_scrape_that_parses() -> None:
    res = txtop("--synthetic", "4x2", "--once", "--format", "openmetrics")
    assert res.returncode == 0, res.stderr
    assert res.stdout.endswith("# EOF\n")
    families = {f.name: f for f in parse_openmetrics(res.stdout)}
    assert families["txtop"].type == "info"
    assert families["txtop_qdisc_packets"].type == "counter"
    hist = families["txtop_stage_latency_seconds"]
    assert hist.type == "histogram"
    assert {s.labels.get("stage") for s in hist.samples} >= {"qdisc", "total"}
    assert all("queue" not in s.labels for s in hist.samples)  # the default: per device
    # the integrated counters cover the interval --once measured (the priming snapshot first)
    softirqs = [s.value for s in families["txtop_softirqs"].samples if s.name.endswith("_total")]
    assert sum(softirqs) > 0


def test_once_prometheus_per_queue_histograms_pass_promtool() -> None:
    res = txtop(
        "--synthetic", "4x2", "--once", "--format", "prometheus", "--metrics-histograms", "queue"
    )
    assert res.returncode == 0, res.stderr
    buckets = [
        s
        for fam in parse_prometheus(res.stdout)
        for s in fam.samples
        if s.name == "txtop_stage_latency_seconds_bucket"
    ]
    assert buckets and all("queue" in s.labels for s in buckets)
    assert "# EOF" not in res.stdout
    if PROMTOOL:
        check = subprocess.run(
            [PROMTOOL, "check", "metrics"], input=res.stdout, capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout[-2000:]


def test_once_on_a_replay_exports_the_whole_recording() -> None:
    res = txtop("--replay-bundled", "--once", "--format", "openmetrics")
    assert res.returncode == 0, res.stderr
    families = {f.name: f for f in parse_openmetrics(res.stdout)}
    devices = {s.labels["device"] for s in families["txtop_qdisc_packets"].samples}
    assert devices == {"txldemoa"}


def test_once_textfile_writes_only_the_file(tmp_path: Path) -> None:
    target = tmp_path / "txtop.prom"
    res = txtop("--synthetic", "2x2", "--once", "--textfile", str(target))
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert metric_values(target.read_text(), "txtop_transmit_packets_total")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["txtop.prom"]


# ---- the daemon -----------------------------------------------------------------------------


def test_headless_serve_serves_metrics_and_prints_nothing_on_stdout(
    daemons: list[Daemon],
) -> None:
    port = free_port()
    d = Daemon("--synthetic", "4x2", "-d", "0.2", "--serve", f"127.0.0.1:{port}")
    daemons.append(d)
    d.wait_line(rf"^txtop: serving metrics on http://127\.0\.0\.1:{port}/metrics$")
    url = f"http://127.0.0.1:{port}/metrics"
    first = scrape_when(url, "txtop_transmit_packets_total")
    wait_for(
        lambda: (
            sum(metric_values(get(url)[1], "txtop_transmit_packets_total"))
            > sum(metric_values(first, "txtop_transmit_packets_total"))
        ),
        10,
        "the counters to grow",
    )
    ctype, body = get(url, accept="application/openmetrics-text; version=1.0.0")
    assert ctype.startswith("application/openmetrics-text") and body.endswith("# EOF\n")
    list(parse_openmetrics(body))
    d.wait_line(r"^txtop: watching lo, syn0$")
    rc, out = d.stop()
    assert rc == 0 and out == "", (rc, out[:200])
    log = d.log()
    assert log[-1] == "txtop: stopping on SIGTERM", log
    # one line per state change, not per snapshot (about 10 snapshots went by)
    assert len(log) <= 5 and all(line.startswith("txtop: ") for line in log), log
    with pytest.raises((urllib.error.URLError, OSError)):
        get(url)


def test_headless_serve_with_format_json_also_prints_the_json_lines(
    daemons: list[Daemon],
) -> None:
    port = free_port()
    d = Daemon(
        "--synthetic", "2x2", "-d", "0.2", "--serve", str(port), "--format", "json",
        "--duration", "1.5",
    )  # fmt: skip
    daemons.append(d)
    rc, out = d.stop(signal_it=False)
    lines = out.splitlines()
    assert rc == 0 and len(lines) >= 3 and all(line.startswith("{") for line in lines)
    assert d.log()[-1] == "txtop: stopping after --duration 1.5"


def test_textfile_is_rewritten_atomically_every_tick_mode_0600(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    target = tmp_path / "txtop.prom"
    d = Daemon("--synthetic", "4x2", "-d", "0.2", "--textfile", str(target))
    daemons.append(d)
    d.wait_line(r"writing metrics to .*txtop\.prom every interval")
    wait_for(target.exists, 30, "the textfile")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    inodes: set[int] = set()
    totals: list[float] = []
    deadline = time.monotonic() + 30
    while (len(inodes) < 5 or len(set(totals)) < 3) and time.monotonic() < deadline:
        # every read sees a whole file: replaced by rename, never written in place
        st = target.stat()
        text = target.read_text()
        inodes.add(st.st_ino)
        assert text.endswith("\n") and "txtop_process_resident_memory_bytes" in text
        totals.append(sum(metric_values(text, "txtop_transmit_packets_total")))
        time.sleep(0.02)
    assert len(inodes) >= 5, "the file was not replaced every tick"
    assert totals == sorted(totals) and len(set(totals)) >= 3
    rc, out = d.stop()
    assert rc == 0 and out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["txtop.prom"]  # no temporary left


def test_headless_replay_serves_the_recording_in_time_then_holds_it(
    daemons: list[Daemon],
) -> None:
    from txtop.tui.sources import bundled_recording_path

    port = free_port()
    with bundled_recording_path() as path:
        d = Daemon("--replay", str(path), "--speed", "16", "--serve", str(port))
        daemons.append(d)
        url = f"http://127.0.0.1:{port}/metrics"
        body = scrape_when(url, "txtop_qdisc_packets_total")
        assert 'device="txldemoa"' in body
        d.wait_line(r"^txtop: replay: end of the recording; serving its last frame$", 60)
        held = metric_values(get(url)[1], "txtop_qdisc_packets_total")
        assert d.proc.poll() is None  # still serving
        assert metric_values(get(url)[1], "txtop_qdisc_packets_total") == held
        rc, out = d.stop()
    assert rc == 0 and out == ""


def test_dashboard_serves_beside_the_ui() -> None:
    port = free_port()
    run = PtyRun("--synthetic", "4x2", "-d", "0.2", "--serve", str(port), cols=120, rows=40)
    try:
        run.wait_for("TX queues", 60)
        body = scrape_when(f"http://127.0.0.1:{port}/metrics", "txtop_transmit_packets_total")
        assert 'device="syn0"' in body
        os.write(run.master, b"q")
        assert run.finish(15) == 0
    finally:
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, signal.SIGKILL)
            run.proc.wait(5)
    with pytest.raises((urllib.error.URLError, OSError)):
        get(f"http://127.0.0.1:{port}/metrics")
