"""The exporter benchmark (``bench/run --only exporter``): what serving Prometheus metrics costs
(issue 14). No lab, no root needed for its figures; the synthetic source plays a big machine.

- **scrape**, in this process: the synthetic source's 64 TX queues x 128 CPUs published into a
  ``MetricsHolder`` (3 ticks, a sampled packet on every queue so that every per-queue
  histogram exists), then one scrape (``render_once``, the Prometheus text format) timed N
  times per histogram granularity: wall ms, CPU ms (``time.process_time``; nothing else runs
  in this process meanwhile) and the series count. CPU % of one core at a 15 s scrape
  interval = CPU per scrape / 15 s. Also the publish (the source thread's share, once per
  tick) in ms and in % of a core at a 1 s interval.
- **http**: the real ``txtop --headless --synthetic 64x128 --serve PORT -d 0.5``: ``GET
  /metrics`` latency, and its CPU per scrape = (CPU while scraped every 0.75 s - CPU
  unscraped) / scrapes, both windows of the same length. The server renders a body once per
  snapshot and reuses it for later scrapes of the same snapshot; scraping slower than the
  snapshots come makes every scrape a fresh render, as at Prometheus' 15 s.
- **ui**: the dashboard (``txtop --synthetic 64x128 --serve PORT`` in tmux, 200x60, 1 s):
  key latency (``?`` until the help screen is drawn) with nobody scraping and while a
  scraper GETs /metrics 10 times a second, the two phases interleaved round by round; the
  dashboard's CPU in each phase and the scrape latencies.
"""

from __future__ import annotations

import dataclasses
import socket
import statistics
import subprocess
import threading
import time
import urllib.request
from typing import Any

from procs import TXTOP, TmuxRun, log, proc_cpu_s, stop_process
from stats import cell, rotate, summary

SHAPE = (64, 128)  # TX queues x CPUs
SCRAPE_EVERY_S = 15.0  # Prometheus' default scrape interval
UI_SCRAPES_PER_S = 10.0


def big_snapshots(ticks: int) -> list[Any]:
    """Synthetic 64x128 snapshots with a sampled packet on every TX queue."""
    from txtop.lab.synthetic import make_snapshot

    out = []
    for tick in range(1, ticks + 1):
        snap = make_snapshot(*SHAPE, tick, 1.0)
        first = snap.packets[0]
        extra = tuple(
            dataclasses.replace(
                first, queue=q, stages={s: t + q * 1000 for s, t in first.stages.items()}
            )
            for q in range(SHAPE[0])
        )
        out.append(dataclasses.replace(snap, packets=snap.packets + extra))
    return out


def scrape_cost(repeats: int) -> dict[str, Any]:
    """Render time and CPU of one scrape per histogram granularity; publish time."""
    from txtop.exporters import HISTOGRAM_MODES, MetricsHolder, render_once

    snaps = big_snapshots(3)
    out: dict[str, Any] = {"shape": f"{SHAPE[0]}x{SHAPE[1]}", "modes": {}}
    for mode in HISTOGRAM_MODES:
        holder = MetricsHolder(mode)
        publish_ms = []
        for snap in snaps:
            t0 = time.perf_counter()
            holder.publish(snap)
            publish_ms.append(1000 * (time.perf_counter() - t0))
        body = render_once(holder, "prometheus")
        series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        wall, cpu = [], []
        for _ in range(repeats):
            w0, c0 = time.perf_counter(), time.process_time()
            render_once(holder, "prometheus")
            cpu.append(1000 * (time.process_time() - c0))
            wall.append(1000 * (time.perf_counter() - w0))
        cpu_ms = statistics.median(cpu)
        out["modes"][mode] = {
            "series": series,
            "bytes": len(body),
            "render_ms": summary(wall, 2),
            "render_cpu_ms": summary(cpu, 2),
            "cpu_pct_at_15s": round(100 * cpu_ms / 1000 / SCRAPE_EVERY_S, 3),
            "publish_ms": summary(publish_ms[1:], 2),  # the first only starts the totals
            "publish_cpu_pct_at_1s": round(100 * statistics.median(publish_ms[1:]) / 1000, 2),
        }
        m = out["modes"][mode]
        log(
            f"  scrape 64x128, histograms {mode:>6}: {series:,} series, {len(body) / 1e6:.1f} MB, "
            f"render {cell(m['render_ms'], 1)} ms (CPU {cpu_ms:.1f} ms = "
            f"{m['cpu_pct_at_15s']}% of a core at 15 s), publish {cell(m['publish_ms'], 1)} ms"
        )
    return out


# ---- the real process -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_ms(url: str) -> float:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as resp:
        resp.read()
    return 1000 * (time.perf_counter() - t0)


def wait_metrics(url: str, needle: bytes, timeout: float, alive: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError("txtop exited before serving metrics")
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                if needle in resp.read():
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no {needle!r} on {url} within {timeout} s")


def http_cost(window_s: float) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    argv = [str(TXTOP), "--headless", "--synthetic", f"{SHAPE[0]}x{SHAPE[1]}", "-d", "0.5",
            "--serve", f"127.0.0.1:{port}"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_metrics(url, b"txtop_stage_latency_seconds_bucket", 60, lambda: proc.poll() is None)
        get_ms(url)  # the first scrape builds the process object etc.
        cpu0, t0 = proc_cpu_s(proc.pid), time.monotonic()
        time.sleep(window_s)
        base = (proc_cpu_s(proc.pid) - cpu0) / (time.monotonic() - t0)
        lat = []
        cpu0, t0 = proc_cpu_s(proc.pid), time.monotonic()
        while time.monotonic() - t0 < window_s:
            lat.append(get_ms(url))
            time.sleep(max(0.0, 0.75 - lat[-1] / 1000))  # > -d 0.5: a new snapshot each
        elapsed = time.monotonic() - t0
        extra_s = (proc_cpu_s(proc.pid) - cpu0) - base * elapsed
        per_scrape_ms = 1000 * max(0.0, extra_s) / len(lat)
    finally:
        stop_process(proc)
    out = {
        "scrape_ms": summary(lat, 2),
        "cpu_ms_per_scrape": round(per_scrape_ms, 2),
        "cpu_pct_at_15s": round(100 * per_scrape_ms / 1000 / SCRAPE_EVERY_S, 3),
        "unscraped_cpu_pct": round(100 * base, 2),
    }
    log(
        f"  txtop --headless --synthetic 64x128 -d 0.5 --serve: GET /metrics "
        f"{cell(out['scrape_ms'], 1)}"
        f" ms, CPU {per_scrape_ms:.1f} ms per scrape ({out['cpu_pct_at_15s']}% at 15 s; "
        f"{out['unscraped_cpu_pct']}% unscraped)"
    )
    return out


class Scraper:
    """GETs ``url`` ``rate`` times a second (start to start) on a thread, while ``active`` is
    set; a context manager that stops the thread on exit."""

    def __init__(self, url: str, rate: float) -> None:
        self.url, self.period = url, 1.0 / rate
        self.latencies_ms: list[float] = []
        self.errors = 0
        self.active = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.active.set()
        self._thread.join(35)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.active.wait()
            t0 = time.monotonic()
            try:
                self.latencies_ms.append(get_ms(self.url))
            except OSError:
                self.errors += 1
            self._stop.wait(max(0.0, self.period - (time.monotonic() - t0)))


def ui_latency(rounds: int) -> dict[str, Any]:
    """Key latency and CPU of the dashboard, idle and while scraped at 10 Hz, the two phases
    interleaved round by round (each round: one phase, then the other, first in turn) so that
    the machine's load changes weigh on both alike."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    argv = [str(TXTOP), "--synthetic", f"{SHAPE[0]}x{SHAPE[1]}", "--serve", f"127.0.0.1:{port}"]
    lat: dict[str, list[float]] = {"idle": [], "scraping_10hz": []}
    cpu_s = dict.fromkeys(lat, 0.0)
    wall_s = dict.fromkeys(lat, 0.0)
    with TmuxRun(argv, (200, 60), "exp") as run, Scraper(url, UI_SCRAPES_PER_S) as scraper:
        if run.wait_text("TX queues", 60) is None:
            raise RuntimeError("no frame: " + run.pane()[-300:])
        wait_metrics(url, b"txtop_transmit_packets_total", 60, run.alive)
        time.sleep(2.0)  # warm-up, as the UI section
        for i in range(rounds):
            for phase in rotate(list(lat), i):
                if phase == "idle":
                    scraper.active.clear()
                else:
                    scraper.active.set()
                cpu0, t0 = proc_cpu_s(run.pid), time.monotonic()
                time.sleep(0.5)
                for _ in range(2):
                    lat[phase].append(run.key_latency("?", "this help", "Escape"))
                    time.sleep(0.2)
                cpu_s[phase] += proc_cpu_s(run.pid) - cpu0
                wall_s[phase] += time.monotonic() - t0
        scraper.active.clear()
    phases: dict[str, Any] = {}
    for phase, values in lat.items():
        phases[phase] = {
            "key_latency_s": summary(values, 3),
            "cpu_pct": round(100 * cpu_s[phase] / max(wall_s[phase], 1e-9), 1),
        }
    phases["scraping_10hz"]["scrape_ms"] = summary(scraper.latencies_ms, 1)
    phases["scraping_10hz"]["scrapes"] = len(scraper.latencies_ms)
    phases["scraping_10hz"]["scrape_errors"] = scraper.errors
    for phase, p in phases.items():
        log(
            f"  dashboard 64x128 200x60, {phase}: key latency {cell(p['key_latency_s'])} s, "
            f"CPU {p['cpu_pct']}%"
            + (f", scrapes {cell(p['scrape_ms'], 1)} ms" if "scrape_ms" in p else "")
        )
    return phases


def run_exporter(quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"scrape": scrape_cost(5 if quick else 15)}
    for part, run in (
        ("http", lambda: http_cost(6.0 if quick else 12.0)),
        ("ui", lambda: ui_latency(4 if quick else 10)),
    ):
        try:
            out[part] = run()
        except (RuntimeError, OSError) as exc:
            out[part] = {"error": str(exc)}
            log(f"  exporter {part} failed: {exc}")
    return out


def pick(ex: dict[str, Any]) -> dict[str, Any]:
    """The JSON line's exporter keys."""
    modes = ex.get("scrape", {}).get("modes", {})
    device = modes.get("device", {})
    ui = ex.get("ui", {})

    def med(d: dict[str, Any] | None, key: str) -> Any:
        return (d or {}).get(key, {}).get("median")

    return {
        "exporter_scrape_ms": med(device, "render_ms"),
        "exporter_scrape_cpu_pct_15s": device.get("cpu_pct_at_15s"),
        "exporter_series": {m: v.get("series") for m, v in modes.items()} or None,
        "exporter_publish_ms": med(device, "publish_ms"),
        "exporter_http_scrape_ms": med(ex.get("http"), "scrape_ms"),
        "exporter_http_cpu_pct_15s": ex.get("http", {}).get("cpu_pct_at_15s"),
        "exporter_key_latency_idle_s": med(ui.get("idle"), "key_latency_s"),
        "exporter_key_latency_scraping_s": med(ui.get("scraping_10hz"), "key_latency_s"),
        "exporter_key_latency_scraping_max_s": (ui.get("scraping_10hz") or {})
        .get("key_latency_s", {})
        .get("max"),
    }


def report(ex: dict[str, Any]) -> list[str]:
    """The exporter tables of bench/RESULTS.md."""
    modes = ex.get("scrape", {}).get("modes")
    if not modes:
        return []
    out = ["| --metrics-histograms (64x128) | series | scrape wall ms | scrape CPU ms | "
           "CPU % at 15 s | publish ms per tick |", "|---|---|---|---|---|---|"]  # fmt: skip
    for mode, m in modes.items():
        out.append(
            f"| {mode} | {m['series']:,} | {cell(m['render_ms'], 1)} | "
            f"{cell(m['render_cpu_ms'], 1)} | {m['cpu_pct_at_15s']} | {cell(m['publish_ms'], 1)} |"
        )
    http = ex.get("http", {})
    if "scrape_ms" in http:
        out += ["", f"`txtop --headless --synthetic 64x128 -d 0.5 --serve`, scraped every "
                f"0.75 s (a fresh snapshot each time): GET /metrics "
                f"{cell(http['scrape_ms'], 1)} ms, {http['cpu_ms_per_scrape']} ms CPU per scrape "
                f"({http['cpu_pct_at_15s']}% of a core at 15 s)."]  # fmt: skip
    ui = ex.get("ui", {})
    if "idle" in ui:
        out += ["", "| dashboard 64x128, 200x60 | key latency s | CPU % | scrape ms |",
                "|---|---|---|---|"]  # fmt: skip
        for phase, p in ui.items():
            out.append(
                f"| {phase} | {cell(p['key_latency_s'])} | {p['cpu_pct']} | "
                f"{cell(p.get('scrape_ms'), 1)} |"
            )
    return out + [""]
