"""Hypothesis fuzzing of the data sources, beyond the per-parser fuzzes next to each module.

Already covered elsewhere (not repeated): parse_bql/parse_counter/validate_ifname/
parse_tx_queue_dirs on random strings, the procfs parsers on random lines, decode_qdisc on
random dicts, iter_frames on random bytes. Here: the same parsers on *structured* input
(round trips of kernel-shaped files, mutated real captures), the readers on real directory
trees (missing files, directories and FIFOs where files should be), pyroute2's parse of mangled
netlink bytes, recordings whose frames are intact but whose JSON is not a snapshot, and the
whole Collector over random fake sysfs/procfs trees.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pyroute2.netlink.rtnl.tcmsg import tcmsg
from source_checks import check_snapshot

from txtop.core.model import Snapshot
from txtop.core.readings import TC_H_ROOT, QdiscInfo, SoftnetRow
from txtop.probes.collector import Collector
from txtop.probes.readers.bql import BQL_FILES, REQUIRED_FILES, read_bql
from txtop.probes.readers.netdev import (
    TX_COUNTERS,
    InvalidInterfaceName,
    parse_tx_queue_dirs,
    read_device,
    tx_queue_indices,
)
from txtop.probes.readers.qdisc import decode_qdisc, parse_qdisc_messages
from txtop.probes.readers.softirq import (
    parse_proc_softirqs,
    parse_proc_stat_cpus,
    parse_softnet_stat,
    read_cpu_times,
    read_softirqs,
    read_softnet_stat,
)
from txtop.recordings.recording import MAGIC, iter_frames

DATA = Path(__file__).parent / "data"
FS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---- a tiny file-tree builder -----------------------------------------------------------------
# A node is: None (absent), DIR (an empty directory), FIFO, LOOP (a symlink to itself),
# bytes/str (a file with that content) or a dict (a directory with those children).
DIR, FIFO, LOOP = "<dir>", "<fifo>", "<loop>"
Node = Any


def build(path: Path, node: Node) -> None:
    if node is None:
        return
    if isinstance(node, dict):
        path.mkdir(parents=True, exist_ok=True)
        for name, child in node.items():
            build(path / name, child)
    elif node == DIR:
        path.mkdir(parents=True, exist_ok=True)
    elif node == FIFO:
        os.mkfifo(path)
    elif node == LOOP:
        path.symlink_to(path.name)
    elif isinstance(node, bytes):
        path.write_bytes(node)
    else:
        path.write_text(node)


def in_tmp(fn: Callable[[Path], None]) -> None:
    """Hypothesis examples cannot use pytest's tmp_path: a fresh directory per example."""
    with tempfile.TemporaryDirectory(prefix="txtop-fuzz-") as d:
        fn(Path(d))


counter_text = st.one_of(
    st.integers(0, 2**64).map(lambda n: f"{n}\n"),  # what sysfs prints
    st.integers(-(2**70), 2**70).map(str),
    st.text(max_size=12),
    st.binary(max_size=12),
)
file_node = st.one_of(st.none(), st.sampled_from([DIR, FIFO, LOOP]), counter_text)


class _Qdiscs:
    """Fake qdisc source: one dump per tick (the last one repeats)."""

    def __init__(self, dumps: list[list[QdiscInfo]]) -> None:
        self.dumps, self.n = dumps, 0

    def read(self) -> list[QdiscInfo]:
        dump = self.dumps[min(self.n, len(self.dumps) - 1)]
        self.n += 1
        return dump

    def close(self) -> None:
        pass


class _Clock:
    def __init__(self) -> None:
        self.ns = 10**12

    def __call__(self) -> int:
        self.ns += 500_000_000
        return self.ns


# ---- BQL files on disk --------------------------------------------------------------------------


@FS
@given(st.dictionaries(st.sampled_from(BQL_FILES + ("junk",)), file_node))
def test_fuzz_read_bql_tree(files: dict[str, Node]) -> None:
    """read_bql on a byte_queue_limits directory holding anything: BqlStats of non-negative
    ints, None (no BQL), or ValueError/OSError - never a hang on a FIFO, never anything else."""

    def run(root: Path) -> None:
        build(root / "d0" / "queues" / "tx-0" / "byte_queue_limits", files)
        try:
            stats = read_bql("d0", 0, root)
        except (ValueError, OSError):
            return
        if stats is None:
            assert any(files.get(n) is None for n in REQUIRED_FILES)
            return
        for name in BQL_FILES:  # every value read is the file's own number
            value = getattr(stats, name)
            if value is not None:
                content = files[name]
                text = content.decode("ascii") if isinstance(content, bytes) else content
                assert value >= 0 and int(text.strip()) == value

    in_tmp(run)


# ---- queue directories on disk ------------------------------------------------------------------

queue_entry = st.one_of(
    st.integers(0, 70000).map(lambda n: f"tx-{n}"),
    st.integers(0, 99).map(lambda n: f"rx-{n}"),
    st.sampled_from(["tx-01", "tx-", "tx--1", "tx-+1", "tx-1 ", "tx-0x1", "tx-٣", "TX-1"]),
    st.text(alphabet="tx-0123456789", min_size=1, max_size=8),
)


@FS
@given(st.dictionaries(queue_entry, st.sampled_from([DIR, "", LOOP]), max_size=12))
def test_fuzz_tx_queue_indices_tree(entries: dict[str, Node]) -> None:
    """Exactly the kernel-spelled tx-N entries (any file type), ascending, unique, <= 65535."""
    names = [n for n in entries if "/" not in n and n not in (".", "..")]
    assume(names)

    def run(root: Path) -> None:
        build(root / "d0" / "queues", {n: entries[n] for n in names})
        got = tx_queue_indices("d0", root)
        expected = sorted(
            int(n[3:]) for n in names
            if n.startswith("tx-") and n[3:].isascii() and n[3:].isdigit()
            and str(int(n[3:])) == n[3:] and int(n[3:]) <= 0xFFFF
        )  # fmt: skip
        assert list(got) == expected
        assert parse_tx_queue_dirs(names + names) == got  # duplicates collapse

    in_tmp(run)


# ---- procfs files: kernel-shaped round trips and mutated real captures ---------------------------

cpu_sets = st.sets(st.integers(0, 300), max_size=40).map(sorted)
u32 = st.integers(0, 2**32 - 1)


def softirqs_file(values: dict[int, tuple[int, int]]) -> str:
    cpus = sorted(values)
    lines = [" " * 10 + "".join(f"CPU{c:<8}" for c in cpus)]
    for name, i in (("HI", None), ("NET_TX", 0), ("NET_RX", 1), ("RCU", None)):
        cells = "".join(f" {values[c][i] if i is not None else 0:>10}" for c in cpus)
        lines.append(f"{name:>12}:{cells}")
    return "\n".join(lines) + "\n"


@given(st.dictionaries(st.integers(0, 4095), st.tuples(u32, u32), min_size=1, max_size=64))
def test_softirqs_round_trip(values: dict[int, tuple[int, int]]) -> None:
    assert parse_proc_softirqs(softirqs_file(values)) == values


@given(
    st.dictionaries(st.integers(0, 4095), st.tuples(u32, u32, u32), max_size=40),
    st.sampled_from([11, 13, 15, 20]),
)
def test_softnet_round_trip(rows: dict[int, tuple[int, int, int]], width: int) -> None:
    lines = []
    for cpu, (a, b, c) in sorted(rows.items()):
        cols = [f"{a:08x}", f"{b:08x}", f"{c:08x}"] + ["00000000"] * (width - 3)
        if width > 12:
            cols[12] = f"{cpu:08x}"
        lines.append(" ".join(cols))
    text = "\n".join(lines)
    online = sorted(rows)
    got = parse_softnet_stat(text, online)
    assert got == {cpu: SoftnetRow(*v) for cpu, v in rows.items()}


@given(st.dictionaries(st.integers(0, 4095), st.lists(u32, min_size=4, max_size=12), max_size=40))
def test_proc_stat_round_trip(cpus: dict[int, list[int]]) -> None:
    text = "cpu  1 2 3 4 5 6 7 8 9 10\n"
    text += "".join(f"cpu{c} {' '.join(map(str, v))}\n" for c, v in cpus.items())
    text += "intr 1 2 3\nsoftirq 1 2 3\n"
    got = parse_proc_stat_cpus(text)
    assert sorted(got) == sorted(cpus)
    for c, v in cpus.items():
        assert list(got[c])[: min(len(v), 10)] == v[:10]


def mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """Apply (kind, position, value) edits: 0 overwrite a byte, 1 cut there, 2 insert a byte."""
    buf = bytearray(data)
    for kind, pos, value in edits:
        at = pos % (len(buf) + 1)
        if kind == 0 and buf:
            buf[at % len(buf)] = value
        elif kind == 1:
            del buf[at:]
        else:
            buf[at:at] = bytes([value])
    return bytes(buf)


edits = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1 << 16), st.integers(0, 255)),
                 min_size=1, max_size=8)  # fmt: skip
PROC_FILES = {
    "softirqs": lambda t: parse_proc_softirqs(t),
    "stat": lambda t: parse_proc_stat_cpus(t),
    "net/softnet_stat": lambda t: parse_softnet_stat(t, [0, 1]),
}


@given(st.sampled_from(["proc", "proc64", "proc256", "proc_old"]),
       st.sampled_from(sorted(PROC_FILES)), edits)  # fmt: skip
def test_mutated_real_proc_files(tree: str, name: str, changes) -> None:
    """A captured or constructed file with a few bytes changed: parsed or ValueError."""
    text = mutate((DATA / tree / name).read_bytes(), changes).decode("ascii", "replace")
    try:
        out = PROC_FILES[name](text)
    except ValueError:
        return
    for cpu, row in out.items():
        assert cpu >= 0 and all(v >= 0 for v in row)


# ---- qdiscs from mangled netlink bytes ----------------------------------------------------------


def captured_dumps() -> list[bytes]:
    doc = json.loads((DATA / "qdisc_dumps.json").read_text())
    return [b"".join(bytes.fromhex(h) for h in s["messages_hex"]) for s in doc["setups"]]


DUMPS = captured_dumps()


def test_raw_dump_parse_matches_tcmsg_decode() -> None:
    """parse_qdisc_messages (pyroute2's marshal, as the live socket parses) agrees with
    decoding each captured message on its own."""
    doc = json.loads((DATA / "qdisc_dumps.json").read_text())
    for setup in doc["setups"]:
        one_by_one = []
        for h in setup["messages_hex"]:
            msg = tcmsg(bytes.fromhex(h))
            msg.decode()
            one_by_one.append(decode_qdisc(msg))
        raw = b"".join(bytes.fromhex(h) for h in setup["messages_hex"])
        assert parse_qdisc_messages(raw) == one_by_one, setup["name"]
        assert one_by_one


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(range(len(DUMPS))), edits)
def test_fuzz_parse_qdisc_messages_mangled(which: int, changes) -> None:
    """Mangled dump bytes: a list of sane QdiscInfo or ValueError, nothing else escapes
    (pyroute2 alone raises struct.error and NetlinkDecodeError on such input)."""
    data = mutate(DUMPS[which], changes)
    try:
        out = parse_qdisc_messages(data)
    except ValueError:
        out = None
    errors: list[str] = []
    try:  # the reader's mode: bad messages skipped and counted
        skipping = parse_qdisc_messages(data, errors)
    except ValueError:
        return  # the marshal itself gave up: no message boundaries to skip by
    if out is not None:
        assert skipping == out and not errors
    for q in skipping:
        assert isinstance(q, QdiscInfo) and q.kind
        assert 0 <= q.handle <= 0xFFFFFFFF and 0 <= q.parent <= 0xFFFFFFFF
        assert min(q.qlen, q.backlog_bytes, q.drops, q.requeues, q.bytes, q.packets) >= 0


@given(st.binary(max_size=600))
def test_fuzz_parse_qdisc_messages_random(data: bytes) -> None:
    try:
        parse_qdisc_messages(data, [])
    except ValueError:
        pass


# ---- recordings: intact frames, damaged JSON -----------------------------------------------------


def real_snapshot_dict() -> dict[str, Any]:
    """A snapshot dict from the collector over the captured trees (two ticks: real rates)."""
    with tempfile.TemporaryDirectory() as d:
        sysfs, proc = Path(d) / "sysfs", Path(d) / "proc"
        shutil.copytree(DATA / "sysfs", sysfs)
        shutil.copytree(DATA / "proc", proc)
        c = Collector(sysfs_root=sysfs, proc_root=proc, qdisc_source=_Qdiscs([[]]))
        c.collect()
        snap = c.collect()
        c.close()
    return snap.to_dict()


SNAP_DICT = real_snapshot_dict()
json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
    st.text(max_size=6),
)  # fmt: skip
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += paths(v, prefix + (i,))
    return out


SNAP_PATHS = paths(SNAP_DICT)[1:]


def frame(payload_obj: Any) -> bytes:
    payload = zlib.compress(json.dumps(payload_obj).encode())
    return struct.pack(">II", len(payload), zlib.crc32(payload)) + payload


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(SNAP_PATHS), st.one_of(st.just("<del>"), json_value)),
                min_size=1, max_size=4))  # fmt: skip
def test_fuzz_recording_frames_with_damaged_snapshots(changes) -> None:
    """CRC-valid frames whose JSON is a real snapshot with fields replaced or deleted: the
    reader yields snapshots or one damage string, never raises (the CRC check stops random
    bytes long before JSON decoding, so the byte-level fuzz cannot reach this)."""
    doc = json.loads(json.dumps(SNAP_DICT))
    for path, value in changes:
        node = doc
        try:
            for key in path[:-1]:
                node = node[key]
            if value == "<del>":
                del node[path[-1]]
            else:
                node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed this path
    data = MAGIC + struct.pack(">HH", 1, 0) + frame(SNAP_DICT) + frame(doc) + frame(SNAP_DICT)
    items = list(iter_frames(data))
    assert isinstance(items[0], Snapshot)
    assert all(isinstance(i, (Snapshot, str)) for i in items)
    assert len(items) == 3 or isinstance(items[-1], str)
    try:
        Snapshot.from_dict(doc)
    except ValueError:
        pass


def test_recording_frame_with_wrongly_typed_fields_is_damage() -> None:
    doc = json.loads(json.dumps(SNAP_DICT))
    doc["cpus"][0]["cpu"] = "zero"
    doc["interval_s"] = None
    data = MAGIC + struct.pack(">HH", 1, 0) + frame(doc)
    items = list(iter_frames(data))
    assert len(items) == 1 and isinstance(items[0], str)


def test_recording_frame_with_deeply_nested_json_is_damage() -> None:
    text = json.dumps(SNAP_DICT)[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    payload = zlib.compress(text.encode())
    data = MAGIC + struct.pack(">HH", 1, 0) + struct.pack(">II", len(payload), zlib.crc32(payload))
    items = list(iter_frames(data + payload))
    assert len(items) == 1 and isinstance(items[0], str) and "undecodable" in items[0]


# ---- the whole collector over random fake trees -------------------------------------------------


dev_names = st.one_of(
    st.sampled_from(["eth0", "ens1f0", "lo", "txla", "veth-1.2"]),
    st.sampled_from(["a b", "x" * 16, "tab\tx", "ümlaut", "-dash", "colon:0"]),
)
bql_node = st.one_of(
    st.sampled_from([None, DIR, FIFO]),
    st.dictionaries(st.sampled_from(BQL_FILES), file_node, max_size=8),
    st.builds(dict, st.just({n: "5\n" for n in REQUIRED_FILES})),
)
queue_dir = st.one_of(st.sampled_from([DIR, "", LOOP]),
                      st.fixed_dictionaries({}, optional={"byte_queue_limits": bql_node}))  # fmt: skip
device_node = st.one_of(
    st.sampled_from([None, DIR, "file", LOOP]),
    st.fixed_dictionaries(
        {},
        optional={
            "ifindex": st.one_of(file_node, st.integers(1, 5).map(lambda n: f"{n}\n")),
            "operstate": st.one_of(file_node, st.sampled_from(["up\n", "down\n", "\xff\n"])),
            "statistics": st.one_of(
                st.sampled_from([None, DIR, "x"]),
                st.dictionaries(st.sampled_from(TX_COUNTERS), file_node, max_size=4),
                st.just({n: "1\n" for n in TX_COUNTERS}),
            ),
            "queues": st.one_of(
                st.sampled_from([None, DIR, "x"]),
                st.dictionaries(queue_entry, queue_dir, max_size=5),
            ),
        },
    ),
)
sysfs_tree = st.one_of(
    st.sampled_from([None, "not a dir"]),
    st.dictionaries(dev_names, device_node, max_size=4),
)


def _cpu_values(cpus: list[int], seed: int) -> dict[int, tuple[int, int]]:
    return {c: (seed + c, 2 * seed + c) for c in cpus}


proc_file = st.one_of(file_node, st.text(alphabet="CPU0123 :NETRX_\n", max_size=40))
proc_tree = st.fixed_dictionaries(
    {
        "softirqs": st.one_of(
            proc_file, st.builds(lambda c, s: softirqs_file(_cpu_values(c, s)), cpu_sets, u32)
        ),  # fmt: skip
        "stat": st.one_of(
            proc_file,
            st.builds(
                lambda c, s: (
                    "cpu  1 1 1 1\n" + "".join(f"cpu{x} {s} 0 {s} {s} 0 0 {x}\n" for x in c)
                ),
                cpu_sets,
                u32,
            ),
        ),  # fmt: skip
        "net": st.one_of(
            st.sampled_from([None, DIR, "x"]),
            st.fixed_dictionaries(
                {
                    "softnet_stat": st.one_of(
                        proc_file,
                        st.builds(
                            lambda c, w: "".join(
                                " ".join(
                                    [f"{x + 1:08x}", "0", "0"] + ["0"] * (w - 4) + [f"{x:08x}"]
                                )
                                + "\n"
                                for x in c
                            ),
                            cpu_sets,
                            st.sampled_from([11, 13, 15]),
                        ),
                    )
                }
            ),  # fmt: skip
        ),
    }
)
qdisc_info = st.builds(
    QdiscInfo,
    ifindex=st.integers(0, 6),
    kind=st.sampled_from(["mq", "mqprio", "tbf", "pfifo_fast", "noqueue", "htb"]),
    handle=st.sampled_from([0, 0x10000, 0x80010000, 0xFFFF0000, 0xFFFFFFFF]),
    parent=st.one_of(st.just(TC_H_ROOT), st.integers(0x10000, 0x10006), st.just(0)),
    qlen=st.integers(0, 2**32), backlog_bytes=st.integers(0, 2**32),
    drops=st.integers(0, 2**32), requeues=st.integers(0, 2**32),
    overlimits=st.integers(0, 2**32), bytes=st.integers(0, 2**64), packets=st.integers(0, 2**32),
)  # fmt: skip


def expected_problems(sysfs: Path, proc: Path) -> set[str]:
    """Which sources the collector must name in probes.unavailable for this tree, found by
    calling the readers directly."""
    keys = set()
    for key, read in (("softirqs", read_softirqs), ("stat", read_cpu_times)):
        try:
            read(proc)
        except (OSError, ValueError):
            keys.add(key)
    try:
        cpus = sorted(read_cpu_times(proc)) or None
    except (OSError, ValueError):
        cpus = None
    try:
        read_softnet_stat(proc, cpus)
    except (OSError, ValueError):
        keys.add("softnet_stat")
    try:
        names = os.listdir(sysfs)
    except FileNotFoundError:
        names = []
    except OSError:
        return keys | {"netdev"}
    for name in names:
        try:
            dev = read_device(name, sysfs)
        except InvalidInterfaceName:
            continue  # never read: skipped silently, it cannot be a kernel name
        except (OSError, ValueError):
            keys.add("netdev")
            continue
        for q in dev.tx_queues if dev else ():
            try:
                read_bql(name, q, sysfs)
            except (OSError, ValueError):
                keys.add("bql")
    return keys


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.tuples(sysfs_tree, proc_tree),
    st.tuples(sysfs_tree, proc_tree),
    st.lists(st.lists(qdisc_info, max_size=8), min_size=2, max_size=2),
)
def test_fuzz_collector_over_random_trees(tick1, tick2, dumps) -> None:
    """Two ticks over two random trees: collect() never raises, every snapshot keeps the
    invariants, and every broken source is named in probes.unavailable."""

    def run(root: Path) -> None:
        sysfs, proc = root / "sysfs", root / "proc"
        collector = Collector(sysfs_root=sysfs, proc_root=proc, qdisc_source=_Qdiscs(dumps),
                              clock=_Clock())  # fmt: skip
        try:
            for sys_tree, proc_nodes in (tick1, tick2):
                for p in (sysfs, proc):
                    if p.is_dir() and not p.is_symlink():
                        shutil.rmtree(p)
                    elif p.exists() or p.is_symlink():
                        p.unlink()
                build(sysfs, sys_tree)
                build(proc, proc_nodes)
                snap = collector.collect()
                check_snapshot(snap, contiguous_queues=False)
                missing = expected_problems(sysfs, proc) - set(snap.probes.unavailable)
                assert not missing, (missing, snap.probes.unavailable)
                assert set(snap.probes.unavailable) <= {
                    "softirqs", "stat", "softnet_stat", "netdev", "bql", "qdisc"
                }  # fmt: skip
                assert all(len(v) <= 300 for v in snap.probes.unavailable.values())
        finally:
            collector.close()

    in_tmp(run)
