"""What the probes need before anything is attached: root, bcc, tracefs, kernel headers, and the
tracepoints this kernel has; then the compile and load of txtop.bpf.c.

``probe_prerequisites`` is the cheap check (no compile) the CLI and the tests use to say why the
probes cannot run. ``identity_cflags`` resolves the kernel struct members the flow and owner
identity reads need from the running kernel's BTF (btf.py) and turns them into ``-D`` options;
without them the program is compiled without identity (one line says why). ``probe_defines`` reads the tracefs format files of the tracepoints in the
hook table and turns the ones present into ``-D`` options (the rest become "unavailable" with
a reason). ``compiled`` compiles with bcc while file descriptor 2 goes to a private temporary
file: clang's warnings would otherwise land on the dashboard's terminal; the first error line
becomes the one-line reason when compiling fails.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from txtop.core.text import exc_line, one_line
from txtop.probes.bpf import headers as headers_mod
from txtop.probes.bpf.btf import (
    DEFAULT_BTF,
    DEFAULT_FIELDS,
    BtfError,
    FieldSpec,
    Offsets,
    resolve_fields,
    unavailable_reason,
)
from txtop.probes.bpf.decode import format_fields
from txtop.probes.bpf.headers import HeaderPlan, current_plan
from txtop.probes.bpf.hooks import Probe

SRC = Path(__file__).with_name("txtop.bpf.c")
TRACEFS_CANDIDATES = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
CFLAGS = [
    "-Wno-ignored-attributes",
    "-Wno-duplicate-decl-specifier",
    "-Wno-address-of-packed-member",
    "-Wno-unknown-warning-option",
]


class TracerError(RuntimeError):
    """A one-line reason the probes cannot run."""


# The members txtop.bpf.c reads (KREAD), with the size each read assumes; optional ones are
# used when this kernel has them (bitfields read as the one byte holding them).
IDENTITY_FIELDS: tuple[FieldSpec, ...] = (
    *DEFAULT_FIELDS,
    FieldSpec("sk_buff.encapsulation", optional=True),  # set by tunnel drivers
    FieldSpec("sk_buff.vlan_present", optional=True),  # kernels before 6.1 (else vlan_proto)
    # The raw forms of the per-packet hooks (issue 13) read their tracepoints' arguments:
    FieldSpec("netdev_queue.dev"),  # qdisc_enqueue/dequeue: txq->dev->ifindex
    FieldSpec("netdev_queue.state"),  # qdisc_dequeue: stopped (XOFF) bits
    FieldSpec("Qdisc.parent"),  # qdisc_dequeue: the mq class names the TX queue
    FieldSpec("net_device.name"),  # net_dev_start_xmit: read for tracked skbs only
    # A device's namespace (net->ns.inum): ifindex is unique only within one. Without
    # CONFIG_NET_NS possible_net_t is empty: keys then carry namespace 0.
    FieldSpec("net_device.nd_net.net", optional=True),
    FieldSpec("net.ns.inum", optional=True),
    # raw_syscalls:sys_enter's user register frame (x86_64 names; tracer.py compiles that form
    # only there, else the classic syscalls:sys_enter_* ones)
    FieldSpec("pt_regs.si", optional=True),
    FieldSpec("pt_regs.r8", optional=True),
)
IDENTITY_SIZES = {
    "netdev_queue.dev": 8,
    "netdev_queue.state": 8,
    "Qdisc.parent": 4,
    "net_device.name": 16,
    "skb_shared_info.gso_segs": 2,
    "sk_buff.head": 8,
    "sk_buff.network_header": 2,
    "sk_buff.mac_header": 2,
    "sk_buff.protocol": 2,
    "sk_buff.sk": 8,
    "sk_buff.vlan_tci": 2,
    "sk_buff.vlan_proto": 2,
    "sk_buff.queue_mapping": 2,
    "sk_buff.len": 4,
    "sk_buff.dev": 8,
    "net_device.ifindex": 4,
}
IDENTITY_BITS = ("sk_buff.encapsulation", "sk_buff.vlan_present")  # 1-bit flags, 1-byte window
# Optional members: checked when this kernel has them (else the C side does without).
OPTIONAL_SIZES = {
    "net_device.nd_net.net": 8,
    "net.ns.inum": 4,
    "pt_regs.si": 8,
    "pt_regs.r8": 8,
}


@dataclass(frozen=True, slots=True)
class Identity:
    """What ``identity_cflags`` found: the -D options (empty without identity), the offsets,
    and the one-line reason identity is unavailable ("" when it is available)."""

    cflags: tuple[str, ...] = ()
    offsets: Offsets | None = None
    reason: str = ""

    @property
    def available(self) -> bool:
        return self.offsets is not None


def identity_cflags(btf_path: Path | None = DEFAULT_BTF) -> Identity:
    """Resolve IDENTITY_FIELDS from the BTF at ``btf_path`` (the running kernel's by default;
    tests point it elsewhere). Never raises: a BTF that cannot be used gives the reason."""
    try:
        offsets = resolve_fields(IDENTITY_FIELDS, btf_path)
        for key, size in IDENTITY_SIZES.items():
            f = offsets[key]
            if f.size != size or f.is_bitfield:
                raise BtfError(f"{key} is {f.type_name} of {f.size} bytes, expected {size}")
        for key, size in OPTIONAL_SIZES.items():
            opt = offsets.fields.get(key)
            if opt is not None and (opt.size != size or opt.is_bitfield):
                raise BtfError(f"{key} is {opt.type_name} of {opt.size} bytes, expected {size}")
        for key in IDENTITY_BITS:
            bit = offsets.fields.get(key)
            if bit is not None and (bit.size != 1 or bit.bit_size != 1):
                raise BtfError(f"{key} is not a 1-bit flag here")
    except (BtfError, ValueError, KeyError) as exc:
        return Identity(reason=unavailable_reason(exc))
    return Identity(tuple(offsets.cflags()), offsets)


NETNS_FIELDS = ("net_device.nd_net.net", "net.ns.inum")


def netns_unknown(identity: Identity) -> str:
    """Why the probes cannot tell a device's network namespace (its key's netns is then 0
    and devices of other namespaces look like txtop's own: nothing is attributed to them),
    or "" when they can."""
    if identity.offsets is None:
        why = identity.reason or "no usable BTF"
        return f"devices of other namespaces not told apart: {why}"
    missing = [f for f in NETNS_FIELDS if f not in identity.offsets.fields]
    if missing:
        return (
            f"devices of other namespaces not told apart: no {', '.join(missing)} in this "
            "kernel's BTF (CONFIG_NET_NS off?)"
        )
    return ""


def tracefs_root() -> Path | None:
    """The mounted tracefs (events/ present), or None."""
    for p in TRACEFS_CANDIDATES:
        if (p / "events").is_dir():
            return p
    return None


def probe_prerequisites() -> str | None:
    """Why the probes cannot run here, in one line (with the fix), or None. Cheap: no compile."""
    if os.geteuid() != 0:
        return "BPF probes need root (run txtop with sudo)"
    if importlib.util.find_spec("bcc") is None:
        return (
            "bcc is not importable: apt-get install python3-bpfcc "
            "(and create the virtualenv with --system-site-packages)"
        )
    if tracefs_root() is None and not TRACEFS_CANDIDATES[0].is_dir():
        return "no tracefs: this kernel has no /sys/kernel/tracing (CONFIG_FTRACE off?)"
    if headers_mod.user_kernel_source():
        return None  # the user's own header tree; prepare_headers checks it
    try:
        plan = current_plan()
    except OSError as exc:
        return f"cannot look for kernel headers: {exc}"
    if plan.kind == "none":
        return f"{plan.reason}; fix: {plan.fix}"
    return None


def mount_tracefs() -> Path:
    """The tracefs root, mounted at /sys/kernel/tracing first when nothing is mounted."""
    root = tracefs_root()
    if root is not None:
        return root
    target = TRACEFS_CANDIDATES[0]
    res = subprocess.run(  # noqa: S603 - fixed argv, no shell
        ["mount", "-t", "tracefs", "nodev", str(target)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    if res.returncode != 0 or tracefs_root() is None:
        raise TracerError(f"cannot mount tracefs on {target}: {one_line(res.stderr) or 'failed'}")
    return target


@dataclass(slots=True)
class ProbeDefines:
    """What ``probe_defines`` found: -D symbols, the format files read, what is missing."""

    defines: set[str] = field(default_factory=set)
    formats: dict[str, str] = field(default_factory=dict)  # "cat:event" -> format file text
    unavailable: dict[str, str] = field(default_factory=dict)  # feature -> reason


def probe_defines(root: Path, probes: Sequence[Probe]) -> ProbeDefines:
    """-D options for the tracepoints this kernel has; records what is unavailable."""
    out = ProbeDefines()
    missing: dict[str, list[str]] = {}
    for p in probes:
        try:
            out.formats[p.name] = (root / "events" / p.category / p.event / "format").read_text()
        except OSError:
            missing.setdefault(p.define, []).append(p.name)
    for p in probes:
        if p.define in missing:
            out.unavailable[p.feature] = (
                f"tracepoint {', '.join(missing[p.define])} not in this kernel"
            )
        else:
            out.defines.add(p.define)
    if "TXTOP_HAVE_KFREE_SKB" in out.defines:
        if "reason" in format_fields(out.formats["skb:kfree_skb"]):
            out.defines.add("TXTOP_KFREE_REASON")
        else:
            out.unavailable["drop_reason"] = "skb:kfree_skb has no reason field"
    if "TXTOP_HAVE_CONSUME_SKB" in out.defines:
        if "location" in format_fields(out.formats["skb:consume_skb"]):
            out.defines.add("TXTOP_CONSUME_LOCATION")
    return out


def import_bcc() -> Any:
    """bcc's BPF class; deferred until needed, since importing bcc costs time."""
    try:
        from bcc import BPF
    except Exception as exc:  # a broken install raises anything from ImportError to OSError
        raise TracerError(
            f"bcc is installed but fails to import ({exc_line(exc, 80)}); "
            "fix: apt-get install --reinstall python3-bpfcc, then ./setup.sh"
        ) from None
    return BPF


@contextmanager
def compiled(
    defines: Sequence[str], plan: HeaderPlan, extra_cflags: Sequence[str] = ()
) -> Iterator[Any]:
    """Compile and load txtop.bpf.c with ``-D`` ``defines`` (and ``extra_cflags``, e.g.
    ``Identity.cflags``); yields the bcc object. The body runs with fd 2 still captured and
    the header tree still set: attaching prints there too."""
    bpf_class = import_bcc()
    text = SRC.read_bytes()
    cflags = CFLAGS + [f"-D{d}" for d in defines] + list(extra_cflags)
    with _stderr_captured() as err, headers_mod.kernel_source_env(plan):
        try:
            bpf = bpf_class(text=text, cflags=cflags)
        except Exception as exc:
            raise TracerError(f"BPF compile/load failed: {_first_error(err) or exc}") from None
        yield bpf


@contextmanager
def _stderr_captured() -> Iterator[Any]:
    """Send fd 2 to a private temporary file while bcc compiles: clang's warnings would
    otherwise land on the dashboard's terminal. Yields the file for error extraction."""
    with tempfile.TemporaryFile(mode="w+", errors="replace") as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            yield tmp
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _first_error(captured: Any) -> str:
    try:
        captured.seek(0)
        lines = captured.read().splitlines()
    except OSError:
        return ""
    first: str = next((one_line(line) for line in lines if "error:" in line), "")
    return first
