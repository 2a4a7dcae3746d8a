"""A real Prometheus for the exporter tests: Debian's ``prometheus`` package (``./setup.sh test``
installs it), started by the test on 127.0.0.1 with a temporary data directory and a scrape
config of its own, queried through its HTTP API, and always stopped.

Also the polling helper the exporter tests wait with (conditions with deadlines, no fixed
sleeps) and a free loopback port.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
NOT_INSTALLED = "prometheus missing: ./setup.sh test installs Debian's prometheus"


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (the caller binds it soon after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    """``prometheus`` scraping ``targets`` (host:port) every ``scrape_interval`` under job
    ``txtop``. A context manager: started on entry (retried on another port when the one
    picked was taken meanwhile), terminated and reaped on exit."""

    def __init__(
        self, workdir: Path, targets: Sequence[str], scrape_interval: str = "500ms"
    ) -> None:
        if PROMETHEUS is None:
            raise RuntimeError(NOT_INSTALLED)
        self.workdir = workdir
        self.targets = list(targets)
        self.scrape_interval = scrape_interval
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "prometheus.log"

    def __enter__(self) -> Prometheus:
        config = self.workdir / "prometheus.yml"
        targets = ", ".join(f"'{t}'" for t in self.targets)
        config.write_text(
            f"global:\n  scrape_interval: {self.scrape_interval}\n"
            f"  scrape_timeout: {self.scrape_interval}\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: txtop\n    static_configs:\n"
            f"      - targets: [{targets}]\n"
        )
        for _attempt in range(3):
            self.port = free_port()
            with self.log_path.open("wb") as log:
                self.proc = subprocess.Popen(
                    [
                        str(PROMETHEUS),
                        f"--config.file={config}",
                        f"--storage.tsdb.path={self.workdir / 'data'}",
                        f"--web.listen-address=127.0.0.1:{self.port}",
                        "--log.level=warn",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            try:
                wait_for(self._ready, 30, "prometheus to answer", every=0.1)
                return self
            except _PortTaken:
                self._reap()
        raise RuntimeError("prometheus: no free port after 3 attempts")

    def __exit__(self, *exc: object) -> None:
        self._reap()

    def _reap(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            if "address already in use" in self.log_tail():
                raise _PortTaken()
            raise AssertionError(f"prometheus exited: {self.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=5) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    # ---- the HTTP API ----

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; the ``data`` of a successful answer."""
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited: {self.log_tail()}")
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query's result list (``at``: evaluation time, Unix seconds)."""
        params = {"query": expr}
        if at is not None:
            params["time"] = repr(at)
        result: list[dict[str, Any]] = self.api("query", **params)["result"]
        return result

    def scalar(self, expr: str, at: float | None = None) -> float | None:
        """The value of a one-series instant query (None when it returns no series)."""
        result = self.query(expr, at)
        if not result:
            return None
        assert len(result) == 1, result
        return float(result[0]["value"][1])

    def up(self, target: str) -> bool:
        try:
            return self.scalar(f'up{{instance="{target}"}}') == 1.0
        except (urllib.error.URLError, OSError):
            return False


class _PortTaken(Exception):
    """Prometheus could not bind the port picked (another process took it meanwhile)."""
