"""How a dashboard session ends, and what it leaves behind (root, real BPF, real pty).

Every way a session ends - SIGINT, SIGTERM, SIGHUP, the terminal closing under it (EIO) -
must end the process within a second or two, restore the terminal, and leave no BPF program,
map or link of txtop's loaded, no lab namespace or link of `--demo`, no traffic generator.
SIGKILL cannot be handled: the kernel frees the programs when the descriptors close, and the
next `--demo` removes the stale lab and says so.

What "txtop's" BPF objects are: while the process runs, the ids of the programs, maps and links
it holds are read from /proc/<pid>/fdinfo; after it ends, none of those ids may still be in
`bpftool prog/map/link show -j`, and no new program or map with one of txtop's names (parsed
from probes/bpf/txtop.bpf.c) may be loaded without a live process holding it. Other engineers'
txtop instances run on the same machine, so names alone cannot tell ours from theirs.

Traffic goes only to the peer of a lab made here (lab/netns.py), from bounded senders.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from deadlines import scaled
from senders import Sink, free_lab_subnet, sender_argv
from test_cli import TXTOP, PtyRun
from test_record_roundtrip import lab_state

import txtop.probes.bpf
from txtop.lab.netns import Lab
from txtop.probes.bpf.tracer import probe_prerequisites

BPF_SRC = Path(txtop.probes.bpf.__file__).with_name("txtop.bpf.c")
EXIT_LIMIT_S = 3.0  # the issue asks for "a second or two"; measured well under 1.5 s
PROBES_UP_S = 90.0  # bcc compiles at start-up; the machine is shared
FREED_S = 5.0  # the kernel frees programs of closed descriptors asynchronously (RCU)
PORT = 5401
STOP_HOW = ["SIGINT", "SIGTERM", "SIGHUP", "hangup"]
EXIT_CODE = {"SIGINT": 130, "SIGTERM": 143, "SIGHUP": 129, "hangup": 129}
TIOCVHANGUP = 0x5437  # <asm-generic/ioctls.h>; Python's termios does not name it
ALT_SCREEN_OFF = b"\x1b[?1049l"
CURSOR_ON = b"\x1b[?25h"
_CSI = re.compile(rb"\x1b\[[0-9;?<>=]*[A-Za-z]")

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(shutil.which("bpftool") is None, reason="bpftool not installed"),
]


def need_probes() -> None:
    why = probe_prerequisites()
    if why:
        pytest.skip(f"probes cannot run here: {why}")


# ---- txtop's BPF objects -----------------------------------------------------------------------


def txtop_bpf_names() -> tuple[frozenset[str], frozenset[str]]:
    """(program names, map names) that probes/bpf/txtop.bpf.c defines, as bpftool shows them."""
    text = BPF_SRC.read_text()
    progs = set()
    for cat, event in re.findall(r"^TRACEPOINT_PROBE\((\w+),\s*(\w+)\)", text, re.M):
        # bcc names the function tracepoint__<cat>__<event>; bpftool shows some (kfree_skb,
        # with bcc 0.26) under the BTF name <cat>__<event>.
        progs |= {f"tracepoint__{cat}__{event}", f"{cat}__{event}"}
    progs |= set(re.findall(r"^int (txtop_\w+)\(", text, re.M))
    maps = set(
        re.findall(
            r"^BPF_(?:ARRAY|PERCPU_ARRAY|HASH|PERCPU_HASH|RINGBUF_OUTPUT|LPM_TRIE)\((\w+)",
            text,
            re.M,
        )
    )
    maps |= set(re.findall(r'^BPF_TABLE\("\w+",[^,]+,[^,]+,\s*(\w+)', text, re.M))
    # The kernel keeps 15 characters of a name; BTF gives programs their full names back.
    return frozenset(progs), frozenset(m[:15] for m in maps)


PROG_NAMES, MAP_NAMES = txtop_bpf_names()


def is_txtop_prog(name: str) -> bool:
    return name in PROG_NAMES or (len(name) == 15 and any(n.startswith(name) for n in PROG_NAMES))


@dataclass(frozen=True)
class BpfIds:
    progs: frozenset[int] = frozenset()
    maps: frozenset[int] = frozenset()
    links: frozenset[int] = frozenset()

    def __or__(self, other: BpfIds) -> BpfIds:
        return BpfIds(self.progs | other.progs, self.maps | other.maps, self.links | other.links)

    def __and__(self, other: BpfIds) -> BpfIds:
        return BpfIds(self.progs & other.progs, self.maps & other.maps, self.links & other.links)

    def __sub__(self, other: BpfIds) -> BpfIds:
        return BpfIds(self.progs - other.progs, self.maps - other.maps, self.links - other.links)

    def __bool__(self) -> bool:
        return bool(self.progs or self.maps or self.links)

    def counts(self) -> str:
        return f"{len(self.progs)} progs, {len(self.maps)} maps, {len(self.links)} links"


def held_by(pid: int) -> BpfIds:
    """The BPF programs, maps and links process ``pid`` holds descriptors of."""
    progs, maps, links = set(), set(), set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return BpfIds()
    for fd in fds:
        try:
            kind = os.readlink(f"/proc/{pid}/fd/{fd}")
            if "bpf" not in kind:
                continue
            info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        if kind == "anon_inode:bpf-prog" and "prog_id" in fields:
            progs.add(int(fields["prog_id"]))
        elif kind == "anon_inode:bpf-map" and "map_id" in fields:
            maps.add(int(fields["map_id"]))
        elif kind == "anon_inode:bpf_link" and "link_id" in fields:
            links.add(int(fields["link_id"]))
    return BpfIds(frozenset(progs), frozenset(maps), frozenset(links))


def held_by_anyone() -> BpfIds:
    out = BpfIds()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            out = out | held_by(int(entry))
    return out


def bpftool_json(*args: str) -> list[dict]:
    res = subprocess.run(["bpftool", "-j", *args], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout or "[]") or []


@dataclass(frozen=True)
class Loaded:
    """What `bpftool {prog,map,link} show -j` lists: every id, and those with txtop's names."""

    all: BpfIds
    txtop: BpfIds
    names: dict[int, str]  # program id -> name


def loaded() -> Loaded:
    progs = bpftool_json("prog", "show")
    maps = bpftool_json("map", "show")
    links = bpftool_json("link", "show")
    all_ids = BpfIds(
        frozenset(p["id"] for p in progs),
        frozenset(m["id"] for m in maps),
        frozenset(link["id"] for link in links),
    )
    ours = BpfIds(
        frozenset(p["id"] for p in progs if is_txtop_prog(p.get("name", ""))),
        frozenset(m["id"] for m in maps if m.get("name", "") in MAP_NAMES),
        frozenset(link["id"] for link in links if link.get("prog_id") in all_ids.progs),
    )
    return Loaded(all_ids, ours, {p["id"]: p.get("name", "") for p in progs})


def wait_for(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out ({timeout:g} s) waiting for {what}")
        time.sleep(0.05)


def wait_attached(pid: int, timeout: float = PROBES_UP_S) -> BpfIds:
    """The BPF objects ``pid`` holds once its probes are attached (the count has settled)."""
    seen: list[BpfIds] = []

    def settled() -> bool:
        seen.append(held_by(pid))
        return len(seen) >= 3 and len(seen[-1].progs) >= 10 and seen[-1] == seen[-3]

    wait_for(settled, f"pid {pid} to attach its BPF programs", timeout)
    held = seen[-1]
    listed = loaded()
    # bpftool sees what the process holds, under txtop's names: the checks after exit mean
    # something only if this holds.
    assert not (held - listed.all), f"bpftool does not list {held - listed.all}"
    assert held.progs <= listed.txtop.progs and held.maps <= listed.txtop.maps, sorted(
        listed.names.get(p, "?") for p in held.progs - listed.txtop.progs
    )
    return held


def assert_nothing_left(held: BpfIds, before: Loaded) -> Loaded:
    """None of ``held`` is loaded any more, and no txtop-named object appeared since ``before``
    that no live process holds (a pinned or leaked one)."""
    wait_for(lambda: not (loaded().all & held), f"the kernel to free {held.counts()}", FREED_S)

    def no_orphans() -> bool:
        fresh = loaded().txtop - before.txtop
        return not (fresh - held_by_anyone())

    wait_for(no_orphans, "no unowned txtop BPF object", FREED_S)
    return loaded()


# ---- the terminal and the processes ----------------------------------------------------------


def terminal_restored(run: PtyRun) -> bool:
    """Textual's exit sequence was written and nothing was drawn after it."""
    out = bytes(run.output)
    at = out.rfind(ALT_SCREEN_OFF)
    if at < 0:
        return False
    tail = out[at:]
    return CURSOR_ON in tail and not _CSI.sub(b"", tail).strip()


def generators_of(pid: int) -> list[int]:
    """Traffic generators a demo with pid ``pid`` started (they carry --parent-pid)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"txtop.lab.trafficgen" in argv and b"--parent-pid" in argv:
            i = argv.index(b"--parent-pid")
            if i + 1 < len(argv) and argv[i + 1] == str(pid).encode():
                found.append(int(entry))
    return found


def end(run: PtyRun) -> None:
    """Finish a run whatever state it is in (a failed assertion may leave it running)."""
    if run.proc.poll() is None:
        os.killpg(run.proc.pid, signal.SIGKILL)
    run.finish()


def hang_up(pid: int) -> None:
    """Hang up the terminal of process ``pid`` as the kernel does when the pty's master side
    closes (an SSH connection dropping): tty_vhangup - SIGHUP to the session leader, reads
    at end-of-file, writes fail with EIO. PtyRun.close_master alone is not enough: its reader
    thread sits in read() on the master, which keeps it open until txtop next writes."""
    fd = os.open(os.readlink(f"/proc/{pid}/fd/0"), os.O_RDWR | os.O_NOCTTY)
    try:
        fcntl.ioctl(fd, TIOCVHANGUP)
    finally:
        os.close(fd)


def exited(pid: int) -> bool:
    """Gone or a zombie (an orphan is reaped by init, which may take its time)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def stop(run: PtyRun, how: str) -> tuple[int, float, float]:
    """End the session ``how``; (exit status, seconds from the signal to the exit, the exit
    limit for the CPU share this machine gives a process right now: tests/deadlines.py)."""
    limit = scaled(EXIT_LIMIT_S)
    started = time.monotonic()
    if how == "hangup":  # the SSH connection drops: SIGHUP, then EIO on the tty
        hang_up(run.proc.pid)
        run.close_master()
    else:
        run.proc.send_signal(getattr(signal, how))
    rc = run.proc.wait(limit + 10)
    return rc, time.monotonic() - started, limit


def report(what: str, **numbers: object) -> None:
    """One line per session in the test output (`pytest -s`): the numbers for the issue."""
    print(f"\n[sessions] {what}: " + ", ".join(f"{k}={v}" for k, v in numbers.items()))


# ---- fixtures ----------------------------------------------------------------------------------


def route_dev(ip: str) -> str:
    res = subprocess.run(["ip", "-j", "route", "get", ip], capture_output=True, text=True)
    try:
        return str(json.loads(res.stdout)[0].get("dev", ""))
    except (ValueError, IndexError):
        return ""


@pytest.fixture
def traffic_lab() -> Iterator[Lab]:
    """A 4-queue veth lab of this test with a sink in its namespace and a bounded UDP sender
    (at most 2 M datagrams, 110 s, about 5k/s) towards the peer while the test runs."""
    need_probes()
    tag = f"ss{os.getpid() % 100000}"
    for _ in range(5):
        with Lab(tag=tag, queues=4, subnet=free_lab_subnet()) as lab:
            if route_dev(lab.peer_ip) != lab.dev:
                continue  # another session's lab took the same /30 meanwhile
            with Sink(lab.ns_argv([]), PORT, seconds=120):
                argv = sender_argv(
                    "udp", lab.peer_ip, str(PORT), "--count", "2000000", "--size", "200",
                    "--gap-us", "150", "--seconds", "110",
                )  # fmt: skip
                sender = subprocess.Popen(argv, stdout=subprocess.DEVNULL)  # noqa: S603
                try:
                    yield lab
                finally:
                    sender.kill()
                    sender.wait(10)
            return
    pytest.fail("could not get a lab subnet of our own")


@pytest.fixture
def demo_tag(request) -> Iterator[str]:
    """A demo lab tag of this test; nothing of it may exist before or after."""
    need_probes()
    name = f"s{os.getpid() % 10000}{len(request.node.name) % 100}"[:8]
    assert lab_state(name) == ([], []), f"a lab tagged {name} exists before the test"
    yield name
    try:
        wait_for(lambda: lab_state(name) == ([], []), f"lab {name} removed", 15)
    finally:
        namespaces, links = lab_state(name)  # after a failure: remove what is ours
        for ns in namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        for dev in links:
            subprocess.run(["ip", "link", "del", dev], capture_output=True, timeout=10)


# ---- signals and hang-ups: live dashboard with probes ------------------------------------------


@pytest.mark.parametrize("how", STOP_HOW)
def test_live_dashboard_stop_leaves_no_bpf_and_restores_the_terminal(traffic_lab: Lab, how):
    before = loaded()
    run = PtyRun("-i", traffic_lab.dev, "-d", "0.5", cols=120, rows=30)
    try:
        held = wait_attached(run.proc.pid)
        run.wait_for("sampling 1/", timeout=PROBES_UP_S)  # the header says: running
        run.wait_for(f"{traffic_lab.dev}:", timeout=20)  # sampled packets in the waterfall
        rc, took, limit = stop(run, how)
        if how != "hangup":
            wait_for(lambda: terminal_restored(run), "the terminal restore sequence", scaled(2))
    finally:
        end(run)
    assert rc == EXIT_CODE[how], run.text()[-600:]
    assert took < limit, f"{how}: exit took {took:.2f} s (limit {limit:.2f} s)"
    assert "Traceback" not in run.text()
    after = assert_nothing_left(held, before)
    wait_for(run.group_gone, "txtop's session to be empty", 3)
    report(
        f"live {how}",
        exit_s=f"{took:.2f}",
        held=held.counts(),
        txtop_progs_before=len(before.txtop.progs),
        txtop_progs_after=len(after.txtop.progs),
    )


def test_hung_up_terminal_without_sighup_ends_the_session_quickly(traffic_lab: Lab):
    """txtop is not the terminal's controlling process (`setsid --wait` in between, as when
    a wrapper owns the session): the hang-up's SIGHUP goes to the wrapper, and txtop learns
    of it only from the terminal itself. At -d 30 nothing is written for 30 s: it must not
    wait for a failed write (it did: 28 s at ~80% CPU, Textual's input thread spinning on
    end-of-file)."""
    before = loaded()
    run = PtyRun("-i", traffic_lab.dev, "-d", "30", cols=120, rows=30, prefix=("setsid", "--wait"))
    child = 0
    try:
        wait_for(lambda: bool(psutil.Process(run.proc.pid).children()), "txtop under setsid", 10)
        child = psutil.Process(run.proc.pid).children()[0].pid
        # setsid forks first and calls setsid() in the child only then: wait for the new session
        wait_for(lambda: os.getsid(child) == child, "setsid's child to lead its own session", 10)
        assert os.getsid(child) != os.getsid(run.proc.pid)
        held = wait_attached(child)
        run.wait_for("sampling 1/", timeout=PROBES_UP_S)
        limit = scaled(EXIT_LIMIT_S)
        started = time.monotonic()
        hang_up(child)
        wait_for(lambda: exited(child), "txtop to notice the hang-up", 35)
        took = time.monotonic() - started
        assert run.proc.wait(5) == -signal.SIGHUP  # the wrapper got the signal, not txtop
    finally:
        if child and not exited(child):
            os.kill(child, signal.SIGKILL)
        end(run)
    assert took < limit, f"exit took {took:.2f} s after the hang-up (limit {limit:.2f} s)"
    assert_nothing_left(held, before)
    report("live hang-up without SIGHUP", exit_s=f"{took:.2f}", held=held.counts())


# ---- signals and hang-ups: --demo ----------------------------------------------------------------


@pytest.mark.parametrize("how", STOP_HOW)
def test_demo_dashboard_stop_removes_lab_and_bpf(demo_tag: str, how):
    before = loaded()
    run = PtyRun("--demo", "--demo-tag", demo_tag, "-d", "0.5", cols=120, rows=30)
    try:
        held = wait_attached(run.proc.pid)
        run.wait_for("sampling 1/", timeout=PROBES_UP_S)
        run.wait_for(f"txl{demo_tag}a:", timeout=20)  # the lab's packets in the waterfall
        assert lab_state(demo_tag)[0], "no lab while the demo runs"
        generators = generators_of(run.proc.pid)
        assert len(generators) >= 3, generators
        rc, took, limit = stop(run, how)
        # The lab goes before the process exits: no waiting here.
        left = lab_state(demo_tag)
        if how != "hangup":
            wait_for(lambda: terminal_restored(run), "the terminal restore sequence", scaled(2))
    finally:
        end(run)
    assert rc == EXIT_CODE[how], run.text()[-600:]
    assert took < limit, f"{how}: exit took {took:.2f} s (limit {limit:.2f} s)"
    assert left == ([], []), f"the demo exited and left {left}"
    assert not [p for p in generators if Path(f"/proc/{p}").exists()], "generators outlived it"
    assert "Traceback" not in run.text()
    after = assert_nothing_left(held, before)
    report(
        f"demo {how}",
        exit_s=f"{took:.2f}",
        held=held.counts(),
        txtop_progs_before=len(before.txtop.progs),
        txtop_progs_after=len(after.txtop.progs),
    )


# ---- SIGKILL -------------------------------------------------------------------------------------


def test_sigkill_of_a_live_dashboard_frees_its_programs(traffic_lab: Lab):
    before = loaded()
    run = PtyRun("-i", traffic_lab.dev, "-d", "0.5", cols=120, rows=30)
    try:
        held = wait_attached(run.proc.pid)
        run.wait_for("sampling 1/", timeout=PROBES_UP_S)
        started = time.monotonic()
        run.proc.kill()
        run.proc.wait(10)
        assert_nothing_left(held, before)  # the kernel, not txtop, did this
        freed_s = time.monotonic() - started
    finally:
        end(run)
    report("live SIGKILL", freed_s=f"{freed_s:.2f}", held=held.counts())


@pytest.mark.slow
def test_sigkill_of_a_demo_dashboard_next_start_removes_the_stale_lab(demo_tag: str):
    before = loaded()
    first = PtyRun("--demo", "--demo-tag", demo_tag, "-d", "0.5", cols=120, rows=30)
    try:
        held = wait_attached(first.proc.pid)
        first.wait_for(f"txl{demo_tag}a", timeout=30)
        first.proc.kill()
        first.proc.wait(10)
    finally:
        end(first)
    stale_ns, stale_links = lab_state(demo_tag)
    assert stale_ns == [f"txtop-lab-{demo_tag}-{first.proc.pid}"], stale_ns
    assert stale_links == [f"txl{demo_tag}a"]
    assert_nothing_left(held, before)  # the programs went with the process, the lab did not
    # The generators die with their parent (PR_SET_PDEATHSIG).
    wait_for(lambda: not generators_of(first.proc.pid), "the killed demo's generators", 5)

    second = PtyRun("--demo", "--demo-tag", demo_tag, "-d", "0.5", cols=160, rows=40)
    try:
        second.wait_for("removed a stale lab", timeout=60)  # the notice (a toast)
        second.wait_for(f"txl{demo_tag}a", timeout=30)
        ns_now, _ = lab_state(demo_tag)
        assert ns_now == [f"txtop-lab-{demo_tag}-{second.proc.pid}"], ns_now
        os.write(second.master, b"q")
        assert second.proc.wait(EXIT_LIMIT_S + 10) == 0
    finally:
        end(second)
    assert lab_state(demo_tag) == ([], [])


# ---- two at once ---------------------------------------------------------------------------------


def headless(argv: list[str], out: Path) -> subprocess.Popen:
    """A headless txtop writing its JSON lines to a file: a pipe nobody reads while the test
    waits on another process would fill up and stall it."""
    with open(out, "w") as stdout:
        return subprocess.Popen(  # noqa: S603 - fixed argv
            [*TXTOP, *argv], stdout=stdout, stderr=subprocess.PIPE, text=True
        )


def json_lines(proc: subprocess.Popen, out: Path, timeout: float) -> list[dict]:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    return [json.loads(line) for line in out.read_text().splitlines()]


def _packets_on(lines: list[dict], dev: str) -> int:
    return sum(1 for d in lines for p in d["packets"] if p["dev"] == dev)


@pytest.mark.slow
def test_two_live_instances_on_one_device_both_see_packets(traffic_lab: Lab, tmp_path: Path):
    before = loaded()
    argv = ["-i", traffic_lab.dev, "-d", "0.5", "--headless", "--duration", "8"]
    outs = [tmp_path / f"{i}.jsonl" for i in range(2)]
    procs = [headless(argv, out) for out in outs]
    try:
        held = [wait_attached(p.pid) for p in procs]
        assert not (held[0] & held[1]), "two instances share BPF objects"
        results = [json_lines(p, out, 60) for p, out in zip(procs, outs, strict=True)]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    for lines in results:
        running = [d for d in lines if d["probes"]["state"] == "running"]
        assert running, [d["probes"] for d in lines]
        assert _packets_on(running, traffic_lab.dev) > 0
        # Nothing lost in either pipeline (runs the kernel skipped, "skipped:*", are not ours).
        lost = [k for d in running for k, v in d["probes"]["breakdown"].items() if v]
        assert not [k for k in lost if not k.startswith("skipped:")], running[-1]["probes"]
    assert_nothing_left(held[0] | held[1], before)
    report(
        "two live instances",
        packets=[_packets_on(lines, traffic_lab.dev) for lines in results],
        held=[h.counts() for h in held],
    )


@pytest.mark.slow
def test_a_demo_and_a_live_instance_together(demo_tag: str, tmp_path: Path):
    before = loaded()
    out = tmp_path / "demo.jsonl"
    demo = headless(
        ["--demo", "--demo-tag", demo_tag, "-d", "0.5", "--headless", "--duration", "15"], out
    )
    dev = f"txl{demo_tag}a"
    try:
        demo_held = wait_attached(demo.pid)
        wait_for(lambda: Path(f"/sys/class/net/{dev}").exists(), "the demo's lab", 30)
        # A second, live instance watching the demo's own device while the demo runs.
        live = subprocess.run(  # noqa: S603
            [*TXTOP, "-i", dev, "-d", "1", "--once", "--format", "json"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert demo.poll() is None, "the demo ended while the live instance ran"
        demo_lines = json_lines(demo, out, 60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(10)
    assert live.returncode == 0, live.stderr
    snap = json.loads(live.stdout)
    assert snap["probes"]["state"] == "running", snap["probes"]
    assert snap["interfaces"] == [dev]
    assert _packets_on([snap], dev) > 0
    running = [d for d in demo_lines if d["probes"]["state"] == "running"]
    assert running and all(d["mode"] == "demo" for d in demo_lines)
    assert _packets_on(running, dev) > 0
    assert lab_state(demo_tag) == ([], [])
    assert_nothing_left(demo_held, before)
