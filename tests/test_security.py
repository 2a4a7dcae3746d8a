"""Security rules for a tool that runs as root on production servers.

A static (ast) scan of every Python source in the repo, plus runtime checks of the name
validation and of the recording file's permissions. A new violation anywhere fails here with
the file and line; an intended exception must be added to an allowlist below with its reason.
"""

from __future__ import annotations

import ast
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from txtop.core.model import ProbeStatus, Snapshot
from txtop.lab import netns as labmod
from txtop.probes.readers.bql import read_bql
from txtop.probes.readers.netdev import (
    InvalidInterfaceName,
    read_device,
    read_tx_counters,
    resolve_interfaces,
    tx_queue_indices,
    validate_ifname,
)
from txtop.recordings.recording import Recorder, RecordingError, read_recording

REPO = Path(__file__).resolve().parent.parent
SKIP_DIRS = {".venv", ".git", "__pycache__", "__snapshots__", "txtop.egg-info", "node_modules"}
# Code that ships (runs as root); tests and helper scripts only obey the universal rules.
PRODUCT_DIRS = ("probes", "tui", "themes", "core", "recordings", "lab", "exporters")

# Writes with the builtin open() that are not user files: (file, reason).
WRITE_OPEN_ALLOWED = {
    "lab/demo.py": "XPS mask written to the lab veth's sysfs knob (tx-N/xps_cpus)",
}
# The only code allowed to accept connections / bind ports: the traffic sink, which the demo
# runs inside the lab network namespace (checked below).
# file -> why it may bind or listen
LISTENER_ALLOWED = {
    "lab/trafficgen.py": "the lab sink, inside the lab's own network namespace",
    "exporters/server.py": "the /metrics server: 127.0.0.1 unless the user names an address",
    "probes/readers/qdisc_options.py": "an AF_NETLINK socket bound to the kernel (no network)",
}

SUBPROCESS_CALLS = {"run", "Popen", "call", "check_call", "check_output"}
SHELL_FUNCS = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"),
               ("subprocess", "getstatusoutput")}  # fmt: skip
BANNED_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle"}
BANNED_BUILTINS = {"eval", "exec"}
LISTENER_ATTRS = {"listen", "create_server", "start_server", "start_unix_server",
                  "serve_forever"}  # fmt: skip
SERVER_MODULES = {"http", "socketserver", "xmlrpc", "aiohttp", "websockets"}


def python_sources() -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(REPO):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".")]
        out += [Path(dirpath) / f for f in filenames if f.endswith(".py")]
    return sorted(out)


SOURCES = python_sources()


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def is_product(path: Path) -> bool:
    return rel(path).split("/")[0] in PRODUCT_DIRS


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def calls(tree: ast.AST) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def dotted(func: ast.expr) -> tuple[str, ...]:
    """("subprocess", "run") for subprocess.run, ("open",) for open, () when not a name."""
    parts: list[str] = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
        return tuple(reversed(parts))
    return tuple(reversed(parts)) if parts else ()


def at(name: str, node: ast.AST) -> str:
    return f"{name}:{getattr(node, 'lineno', '?')}"


# ---- the rules: each takes a parsed file and its repo-relative name, returns violations ------


def find_shell(tree: ast.Module, name: str) -> list[str]:
    bad = []
    for call in calls(tree):
        for kw in call.keywords:
            if kw.arg == "shell" and not (
                isinstance(kw.value, ast.Constant) and kw.value.value is False
            ):
                bad.append(at(name, call))
        if dotted(call.func)[-2:] in SHELL_FUNCS:
            bad.append(at(name, call))
    return bad


def find_unsafe_loading(tree: ast.Module, name: str) -> list[str]:
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bad += [at(name, node) for a in node.names if a.name.split(".")[0] in BANNED_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in BANNED_MODULES:
                bad.append(at(name, node))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in BANNED_BUILTINS | {"__import__"}:
                bad.append(at(name, node))
    return bad


def _is_string_command(arg: ast.expr) -> bool:
    """A command given as one string (what a shell would parse) rather than an argv list."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, (str, bytes)):
        return True
    if isinstance(arg, ast.JoinedStr):
        return True
    if isinstance(arg, ast.BinOp) and isinstance(arg.op, (ast.Mod, ast.Add)):
        return _is_string_command(arg.left) or _is_string_command(arg.right)
    if isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute):
        return arg.func.attr in {"format", "join"} and isinstance(arg.func.value, ast.Constant)
    return False


def find_string_commands(tree: ast.Module, name: str) -> tuple[int, list[str]]:
    """(number of process-starting calls seen, those given a string instead of an argv)."""
    seen, bad = 0, []
    # `from subprocess import run` style names, too
    local = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
             and n.module == "subprocess" for a in n.names}  # fmt: skip
    for call in calls(tree):
        func = dotted(call.func)
        is_sub = len(func) >= 2 and func[-2] == "subprocess" and func[-1] in SUBPROCESS_CALLS
        is_sub |= len(func) == 1 and func[0] in local & SUBPROCESS_CALLS
        is_exec = len(func) == 2 and func[0] == "os" and func[1].startswith(("exec", "spawn"))
        if not (is_sub or is_exec):
            continue
        seen += 1
        args = list(call.args) + [k.value for k in call.keywords if k.arg == "args"]
        argv = args[1] if is_exec and len(args) > 1 else (args[0] if args else None)
        if argv is None or _is_string_command(argv):
            bad.append(at(name, call))
    return seen, bad


def _mode_of_open(call: ast.Call) -> str | None:
    mode: ast.expr | None = call.args[1] if len(call.args) > 1 else None
    for kw in call.keywords:
        if kw.arg == "mode":
            mode = kw.value
    if mode is None:
        return "r"
    if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
        return mode.value
    return None  # computed: treat as a write


def _flags_create(expr: ast.expr) -> bool:
    return any(isinstance(n, ast.Attribute) and n.attr == "O_CREAT" for n in ast.walk(expr))


def find_loose_file_creation(tree: ast.Module, name: str) -> tuple[int, list[str]]:
    """(os.open(O_CREAT) calls seen, violations): files are created with os.open and a mode
    without group/other bits; builtin open() for writing and Path.write_* (whose modes come
    from the umask) only where allowed."""
    creates, bad = 0, []
    for call in calls(tree):
        func = dotted(call.func)
        if func == ("open",) or func[-2:] == ("io", "open"):
            mode = _mode_of_open(call)
            if (mode is None or set(mode) & set("wax+")) and name not in WRITE_OPEN_ALLOWED:
                bad.append(f"{at(name, call)} open(mode={mode!r})")
        elif func == ("os", "open") and len(call.args) >= 2 and _flags_create(call.args[1]):
            creates += 1
            perm = call.args[2] if len(call.args) > 2 else None
            if not (isinstance(perm, ast.Constant) and isinstance(perm.value, int)
                    and perm.value & 0o077 == 0):  # fmt: skip
                bad.append(f"{at(name, call)} os.open(O_CREAT) without a 0600 mode")
        elif isinstance(call.func, ast.Attribute) and call.func.attr in {
            "write_text", "write_bytes"
        }:  # fmt: skip
            bad.append(f"{at(name, call)} .{call.func.attr}()")
    return creates, bad


def find_listeners(tree: ast.Module, name: str) -> list[str]:
    if name in LISTENER_ALLOWED:
        return []
    bad = []
    for call in calls(tree):
        if not isinstance(call.func, ast.Attribute):
            continue
        attr = call.func.attr
        # socket.bind takes an address tuple (Textual's App.bind takes key strings: fine)
        if attr in LISTENER_ATTRS or (
            attr == "bind" and call.args and isinstance(call.args[0], ast.Tuple)
        ):
            bad.append(at(name, call))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [node.module or ""] if isinstance(node, ast.ImportFrom) else [
                a.name for a in node.names
            ]  # fmt: skip
            if any(m.split(".")[0] in SERVER_MODULES for m in mods):
                bad.append(at(name, node))
    return bad


# ---- the rules against every source of the repo ------------------------------------------------


def test_the_scan_sees_the_code() -> None:
    names = {rel(p) for p in SOURCES}
    assert {"probes/collector.py", "recordings/recording.py", "lab/netns.py"} <= names
    assert not any(n.startswith(".venv/") for n in names)


def test_no_shell_anywhere() -> None:
    bad = [b for p in SOURCES for b in find_shell(parse(p), rel(p))]
    assert not bad, f"shell use: {bad}"


def test_no_pickle_marshal_eval_exec() -> None:
    bad = [b for p in SOURCES for b in find_unsafe_loading(parse(p), rel(p))]
    assert not bad, f"pickle/marshal/eval/exec: {bad}"


def test_subprocess_calls_take_an_argv_list() -> None:
    seen, bad = 0, []
    for path in SOURCES:
        n, b = find_string_commands(parse(path), rel(path))
        seen, bad = seen + n, bad + b
    assert seen >= 3, "the scan found no subprocess calls: it is broken"
    assert not bad, f"subprocess with a string command: {bad}"


def test_product_code_creates_files_only_0600() -> None:
    creates, bad = 0, []
    for path in SOURCES:
        if is_product(path):
            n, b = find_loose_file_creation(parse(path), rel(path))
            creates, bad = creates + n, bad + b
    assert creates >= 1, "recording.py's Recorder should be found creating with os.open"
    assert not bad, bad


def test_no_network_listener_outside_the_lab_sink() -> None:
    bad = [b for p in SOURCES if is_product(p) for b in find_listeners(parse(p), rel(p))]
    assert not bad, f"listener outside the lab sink: {bad}"


# The rules themselves must catch what they are for (else the repo scan proves nothing).
VIOLATIONS = [
    (find_shell, "import subprocess\nsubprocess.run('ls', shell=True)"),
    (find_shell, "import os\nos.system('ls')"),
    (find_shell, "import os\nos.popen('ls')"),
    (find_unsafe_loading, "import pickle"),
    (find_unsafe_loading, "from marshal import loads"),
    (find_unsafe_loading, "eval(x)"),
    (find_unsafe_loading, "exec(x)"),
    (lambda t, n: find_string_commands(t, n)[1], "import subprocess\nsubprocess.run('ip a')"),
    (lambda t, n: find_string_commands(t, n)[1], "from subprocess import Popen\nPopen(f'tc {d}')"),
    (lambda t, n: find_string_commands(t, n)[1], "import subprocess\nsubprocess.call(' '.join(a))"),
    (lambda t, n: find_loose_file_creation(t, n)[1], "open(p, 'w')"),
    (lambda t, n: find_loose_file_creation(t, n)[1], "open(p, mode='ab')"),
    (lambda t, n: find_loose_file_creation(t, n)[1], "import os\nos.open(p, os.O_CREAT, 0o644)"),
    (
        lambda t, n: find_loose_file_creation(t, n)[1],
        "import os\nos.open(p, os.O_WRONLY|os.O_CREAT)",
    ),
    (lambda t, n: find_loose_file_creation(t, n)[1], "path.write_text('x')"),
    (find_listeners, "s.listen(5)"),
    (find_listeners, "s.bind(('0.0.0.0', 80))"),
    (find_listeners, "import http.server"),
    (find_listeners, "import asyncio\nasyncio.start_server(cb, port=1)"),
]
CLEAN = [
    (find_shell, "import subprocess\nsubprocess.run(['ip', 'a'], shell=False)"),
    (lambda t, n: find_string_commands(t, n)[1], "import subprocess\nsubprocess.run(['ip', d])"),
    (lambda t, n: find_string_commands(t, n)[1], "import subprocess\nsubprocess.run(lab.argv(x))"),
    (lambda t, n: find_loose_file_creation(t, n)[1], "open(p, 'rb')\nopen(p)"),
    (lambda t, n: find_loose_file_creation(t, n)[1], "import os\nos.open(p, os.O_CREAT, 0o600)"),
    (find_listeners, "self.bind('q', 'quit')"),
]


@pytest.mark.parametrize(("rule", "code"), VIOLATIONS)
def test_rules_catch_violations(rule, code: str) -> None:
    assert rule(ast.parse(code), "probes/x.py")


@pytest.mark.parametrize(("rule", "code"), CLEAN)
def test_rules_accept_clean_code(rule, code: str) -> None:
    assert not rule(ast.parse(code), "probes/x.py")


def test_allowed_write_open_is_the_sysfs_knob() -> None:
    tree = parse(REPO / "lab/demo.py")
    targets = [ast.unparse(c.args[0]) for c in calls(tree)
               if dotted(c.func) == ("open",) and _mode_of_open(c) == "w"]  # fmt: skip
    assert targets and all("xps_cpus" in t for t in targets), targets
    assert 'f"/sys/class/net/{self.lab.dev}/queues"' in (REPO / "lab/demo.py").read_text()


def test_the_sink_is_only_started_inside_the_lab_namespace() -> None:
    """demo.py starts ``trafficgen sink`` (which binds 0.0.0.0) only through lab.ns_argv."""
    tree = parse(REPO / "lab/demo.py")
    sink_lists = [n for n in ast.walk(tree) if isinstance(n, ast.List)
                  and any(isinstance(e, ast.Constant) and e.value == "sink" for e in n.elts)]  # fmt: skip
    assert sink_lists
    wrapped = {id(a) for c in calls(tree) if dotted(c.func)[-1:] == ("ns_argv",) for a in c.args}
    assert all(id(lst) in wrapped for lst in sink_lists)


# ---- names that reach paths and commands -------------------------------------------------------

BAD_NAMES = ["../x", "a/b", "x" * 16, "", " ", "a b", "a\nb", "a\0b", "..", ".", "eth0:1",
             "eth0\t", "é" * 8]  # fmt: skip


@pytest.mark.parametrize("name", BAD_NAMES)
def test_validate_ifname_rejects(name: str) -> None:
    with pytest.raises(InvalidInterfaceName):
        validate_ifname(name)


@pytest.mark.parametrize("name", ["../x", "a/b", "..", "x" * 16, "", " ", "a\nb", "a\0b"])
def test_sysfs_readers_validate_before_joining_paths(name: str, tmp_path: Path) -> None:
    (tmp_path / "x" / "queues" / "tx-0").mkdir(parents=True)  # a target "../x" could reach
    for reader in (
        lambda: read_device(name, tmp_path / "net"),
        lambda: tx_queue_indices(name, tmp_path / "net"),
        lambda: read_tx_counters(name, tmp_path / "net"),
        lambda: read_bql(name, 0, tmp_path / "net"),
        lambda: resolve_interfaces([name], tmp_path / "net"),
    ):
        with pytest.raises(InvalidInterfaceName):
            reader()
    with pytest.raises(ValueError):
        read_bql("eth0", -1, tmp_path)


def test_sysfs_entries_that_are_not_interface_names_are_ignored(tmp_path: Path) -> None:
    from txtop.probes.collector import Collector

    sysfs = tmp_path / "net"
    for name in ("good0", "bad name", "colon:1"):
        q = sysfs / name / "queues" / "tx-0"
        q.mkdir(parents=True)
        (sysfs / name / "ifindex").write_text("3\n")
        (sysfs / name / "statistics").mkdir()
        for c in ("tx_packets", "tx_bytes", "tx_dropped", "tx_errors"):
            (sysfs / name / "statistics" / c).write_text("0\n")

    class NoQdiscs:
        def read(self) -> list:
            return []

        def close(self) -> None:
            pass

    c = Collector(sysfs_root=sysfs, proc_root=tmp_path / "proc", qdisc_source=NoQdiscs())
    assert c.collect().interfaces == ("good0",)
    c.close()


@given(st.from_regex(r"\A[a-z0-9]{1,8}\Z"))
def test_lab_names_are_valid_for_every_valid_tag(tag: str) -> None:
    lab = labmod.Lab(tag=tag)
    validate_ifname(lab.dev)
    validate_ifname(lab.peer)
    assert lab.ns.startswith(labmod.NS_PREFIX) and "/" not in lab.ns and " " not in lab.ns


@pytest.mark.parametrize(
    "tag",
    ["../x", "a/b", "", "-x", "A", "x" * 9, "a b", "a;b", "a\n"],
)
def test_lab_refuses_bad_tags(tag: str) -> None:
    with pytest.raises(labmod.LabError):
        labmod.Lab(tag=tag)


# ---- recordings on disk --------------------------------------------------------------------------


def _snapshot() -> Snapshot:
    return Snapshot(host="h", kernel="k", time=1.0, mono_ns=1, interval_s=1.0, mode="live",
                    interfaces=(), devices=(), queues=(), cpus=(), packets=(),
                    probes=ProbeStatus("off"))  # fmt: skip


@pytest.mark.parametrize("append", [False, True])
def test_recording_is_0600_whatever_the_umask(tmp_path: Path, append: bool) -> None:
    path = tmp_path / "r.txrec"
    old = os.umask(0)  # the mode must come from the code, not from a friendly umask
    try:
        with Recorder(path, append=append) as rec:
            rec.write(_snapshot())
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_recording(path).snapshots == [_snapshot()]


@pytest.mark.parametrize("append", [False, True])
def test_recorder_never_follows_a_planted_symlink(tmp_path: Path, append: bool) -> None:
    """Root writing a recording into a shared directory must not clobber a symlink's target."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    link = tmp_path / "r.txrec"
    link.symlink_to(victim)
    with pytest.raises(RecordingError):
        Recorder(link, append=append)
    assert victim.read_bytes() == b"precious"
