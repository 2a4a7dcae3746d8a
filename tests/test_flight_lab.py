"""A finding-triggered flight write in a real lab (root): the real ``txtop --headless --flight 20
--flight-on crit -i <lab dev> -d 0.5`` runs while a tbf with a tiny limit drops (the lab and the
senders of tests/test_findings_lab.py; traffic only into the lab's namespace), and its
``qdisc_drops`` finding (crit: most of what is offered is dropped) writes a recording by itself.

``crit``, not ``warn``: findings about CPUs are machine-wide, and on this shared VM other
sessions' traffic raises warn ones (``net_rx_concentration cpu0``) even with ``-i``; one of
those would take the write and the one-a-minute limit would then hold back the drops' own.
The only other crit rule, ``softnet_drops`` (a full per-CPU backlog), does not come by itself.

The run first fills its window (SIGUSR1 writes until one spans it), so the finding's write can
be checked to hold the whole window up to the finding plus the seconds after it. Every wait is a
condition with a deadline (a loaded 2-core machine).
"""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest
from senders import Sink
from test_cli import txtop
from test_findings_lab import PORT, Senders, lab  # noqa: F401 - lab is the fixture
from test_flight import Headless

from txtop.core.finding import severity_rank
from txtop.core.model import Snapshot
from txtop.lab.netns import Lab
from txtop.recordings.flight import FINDING_AFTER_S
from txtop.recordings.recording import read_recording

root = pytest.mark.root

WINDOW_S = 20.0
INTERVAL_S = 0.5
FLIGHT_ON = "crit"
SLACK_S = 1.5  # ticks late or short on a loaded machine
FILL_DEADLINE_S = 60.0  # start-up (bcc compiling on 2 busy cores) plus the window
FINDING_DEADLINE_S = 45.0  # the drops raise it (2 s), then FINDING_AFTER_S before the write


def span_s(snaps: list[Snapshot]) -> float:
    """From the start of the first frame's interval to the end of the last (as flight.py)."""
    return (snaps[-1].mono_ns - snaps[0].mono_ns) / 1e9 + snaps[0].interval_s


def started_at(snaps: list[Snapshot], dev: str) -> int | None:
    """The index of the first frame with ``qdisc_drops`` on ``dev`` active at FLIGHT_ON or
    worse (where the flight recorder saw it start)."""
    for i, snap in enumerate(snaps):
        for f in snap.findings or ():
            hit = f.id == "qdisc_drops" and f.subject.dev == dev and f.active
            if hit and severity_rank(f.severity) >= severity_rank(FLIGHT_ON):
                return i
    return None


@root
def test_tbf_drops_write_a_flight_recording_by_themselves(lab: Lab, tmp_path: Path) -> None:  # noqa: F811
    flight_dir = tmp_path / "flight"
    run = Headless(
        *("--flight", str(WINDOW_S), "--flight-dir", str(flight_dir), "--flight-on", FLIGHT_ON),
        *("-i", lab.dev, "-d", str(INTERVAL_S)),
        source=(),
    )
    try:
        run.ready()
        # The window fills first (SIGUSR1 writes until one spans it), so the finding's write
        # can show the whole window before the finding.
        deadline = time.monotonic() + FILL_DEADLINE_S
        while True:
            got = read_recording(run.write_now())
            assert got.intact and got.info.trigger == "signal"
            assert started_at(got.snapshots, lab.dev) is None  # no drops yet
            short = WINDOW_S - INTERVAL_S - span_s(got.snapshots)
            if short <= 0:
                break
            assert time.monotonic() + short < deadline, (span_s(got.snapshots), run.lines)
            time.sleep(short)  # the window cannot fill sooner; then ask again
        signal_writes = len(run.written())

        with Sink(lab.ns_argv([]), PORT, seconds=90):
            lab.set_tbf(rate="1mbit", burst="2k", limit="3k")
            dropping_since = time.monotonic()
            with Senders(lab, "--count", "100000", "--size", "1000", "--gap-us", "500") as s:
                deadline = dropping_since + FINDING_DEADLINE_S
                while len(run.written()) == signal_writes:
                    assert time.monotonic() < deadline, run.lines
                    assert run.proc.poll() is None, run.lines
                    s.keep()
                    time.sleep(0.1)
                # it waited for the seconds after the finding (raised after the drops began)
                assert time.monotonic() - dropping_since >= FINDING_AFTER_S
                # Rate limit: the finding stays active; no second write comes of it (a write
                # scheduled now would also be written when txtop stops, below).
                watch_until = time.monotonic() + 3.0
                while time.monotonic() < watch_until:
                    s.keep()
                    time.sleep(0.1)
    finally:
        code, out = run.stop()
    assert code == 0 and out == "", run.lines  # a flight recorder prints no JSON lines

    # One finding write, announced on stderr with its path; the rest are our SIGUSR1 writes.
    announced = run.written()
    assert sorted(p.name for p in flight_dir.iterdir()) == sorted(p.name for p in announced)
    triggers = {p: read_recording(p).info.trigger for p in announced}
    found = [p for p, trigger in triggers.items() if trigger == "finding"]
    assert len(found) == 1 and announced.index(found[0]) == signal_writes, triggers
    path = found[0]
    assert path.parent == flight_dir.absolute() and path.name.endswith(".txtop")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    rec = read_recording(path)
    assert rec.intact
    assert rec.info.finding.startswith(f"qdisc_drops {lab.dev}"), rec.info
    assert rec.info.severity == FLIGHT_ON and rec.info.window_s == WINDOW_S
    # The window up to the finding, and the seconds after it.
    snaps = rec.snapshots
    i = started_at(snaps, lab.dev)
    assert i is not None and i > 0, [len(s.findings or ()) for s in snaps]
    before = span_s(snaps[: i + 1])
    after = (snaps[-1].mono_ns - snaps[i].mono_ns) / 1e9
    assert WINDOW_S - SLACK_S <= before <= WINDOW_S + 1e-6, before
    assert FINDING_AFTER_S - SLACK_S <= after <= FINDING_AFTER_S + 2 * SLACK_S, after
    assert all(started_at([snap], lab.dev) == 0 for snap in snaps[i:])  # it stayed active

    # Replayed through the command: the notice says which finding wrote it.
    res = txtop("--replay", str(path), "--once", "--format", "json", timeout=120)
    assert res.returncode == 0, res.stderr
    notice = json.loads(res.stdout)["replay"]["notice"]
    assert notice.startswith(f"flight recording: finding qdisc_drops {lab.dev}"), notice
    assert f"last {WINDOW_S:g} s" in notice and notice in res.stderr
