"""A device's interrupts and where they may run: /proc/interrupts and /proc/irq/<n>/.

TX completions arrive as interrupts (the NIC's TX or combined TX/RX vectors); the CPU that
takes one runs the completion NAPI poll and frees the sent skbs. Which vector serves which TX
queue is only written in the vector's *name*, and every driver names them its own way, so the
match is by name where the naming is known (``classify``) and said to be impossible otherwise.

/proc/interrupts (kernel/irq/proc.c show_interrupts): a header of CPU columns, then per IRQ
``N:``, one count per CPU column, the chip (``PCI-MSIX-0000:00:03.0``, ``IR-PCI-MSI``...), the
hardware IRQ and trigger (``2-edge``) and the action names, comma-separated. Rows that are not
numbered (NMI, LOC, ...) are not device interrupts and are skipped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from txtop.core.config import IrqInfo, format_cpu_list, parse_cpu_list
from txtop.probes.readers.files import read_text
from txtop.probes.readers.netdev import SYSFS_NET, checked_ifname

PROC = Path("/proc")
MAX_IRQ = 1 << 20
_TRIGGER_RE = re.compile(r"(?i)^(\d+-)?(edge|level|fasteoi|edge-edge)$")
# virtio_net (drivers/net/virtio_net.c vp_find_vqs names): "virtio<N>-input.<q>" (RX queue q),
# "virtio<N>-output.<q>" (TX queue q), "virtio<N>-config", "-control".
_VIRTIO_RE = re.compile(r"^virtio\d+-(input|output)\.(\d+)$")
# Names that carry a queue number after a role word: "eth0-TxRx-3" (igb, ixgbe, i40e, ice),
# "eth0-tx-3"/"eth0-rx-3", "mlx5_comp3@pci:..." (a completion vector: TX and RX of channel 3),
# "eth0-fp-3" (bnx2x fast path), "ena-io-comp? "... Matched case-insensitively.
_QUEUE_RE = re.compile(
    r"(?i)(?:^|[-_@.:])(txrx|tx|rx|comp|fp|combined|io|queue)[-_.]?(\d+)(?:$|[@\s-])"
)
_ROLES = {
    "txrx": "txrx",
    "tx": "tx",
    "rx": "rx",
    "comp": "txrx",
    "fp": "txrx",
    "combined": "txrx",
    "io": "txrx",
    "queue": "txrx",
}


@dataclass(frozen=True, slots=True)
class IrqLine:
    """One numbered row of /proc/interrupts."""

    irq: int
    counts: tuple[int, ...]  # per CPU column
    chip: str  # the chip name and anything before the trigger ("PCI-MSIX-0000:00:03.0")
    names: tuple[str, ...]  # action names

    @property
    def count(self) -> int:
        return sum(self.counts)


def parse_interrupts(text: str) -> list[IrqLine]:
    """The numbered rows of /proc/interrupts. Raises ValueError when there is no CPU header."""
    lines = text.splitlines()
    if not lines or not lines[0].split() or not lines[0].split()[0].startswith("CPU"):
        raise ValueError("/proc/interrupts: no CPU header")
    ncpu = len(lines[0].split())
    out = []
    for line in lines[1:]:
        head, sep, rest = line.partition(":")
        head = head.strip()
        if not sep or not head.isdigit():
            continue  # NMI, LOC, ERR, MIS ...
        irq = int(head)
        if irq > MAX_IRQ:
            continue
        tokens = rest.split()
        counts = []
        for tok in tokens[:ncpu]:
            if not tok.isdigit():
                break
            counts.append(int(tok))
        tail = tokens[len(counts) :]
        trigger = max((i for i, t in enumerate(tail) if _TRIGGER_RE.match(t)), default=-1)
        if trigger >= 0:
            chip, names_text = " ".join(tail[:trigger]), " ".join(tail[trigger + 1 :])
        elif tail:
            chip, names_text = " ".join(tail[:-1]), tail[-1]
        else:
            chip, names_text = "", ""
        names = tuple(n.strip() for n in names_text.split(",") if n.strip())
        out.append(IrqLine(irq, tuple(counts), chip, names))
    return out


def classify(name: str, dev: str) -> tuple[str, int | None]:
    """(role, queue) of an interrupt from its action name, for device ``dev``.

    role: "tx", "rx", "txrx" (a combined vector), "other" (config, link, mailbox), or "unknown"
    (a name that says nothing about queues, e.g. a single vector named after the device)."""
    m = _VIRTIO_RE.match(name)
    if m:
        return ("rx" if m.group(1) == "input" else "tx"), int(m.group(2))
    if re.match(r"^virtio\d+-(config|control)", name):
        return "other", None
    stem = name[len(dev) :] if name.startswith(dev) else name
    m = _QUEUE_RE.search(stem if stem else name)
    if m:
        return _ROLES[m.group(1).lower()], int(m.group(2))
    lowered = name.lower()
    if any(word in lowered for word in ("async", "config", "ctrl", "misc", "lsc", "mbx", "aq")):
        return "other", None
    return "unknown", None


def device_irqs(
    lines: Sequence[IrqLine],
    dev: str,
    msi_irqs: Iterable[int] = (),
    bus_info: str | None = None,
    virtio_name: str | None = None,
) -> list[IrqLine]:
    """The rows that belong to ``dev``: the PCI function's MSI vectors (``msi_irqs``), rows
    whose chip names its PCI address (``bus_info``), whose action names start with the device
    name (``eth0-TxRx-0``, ``eth0``) or, for virtio_net, with its virtio device (``virtio2-``)."""
    msi = set(msi_irqs)
    out = []
    for line in lines:
        names = line.names
        by_name = any(n == dev or n.startswith((f"{dev}-", f"{dev}:", f"{dev}@")) for n in names)
        by_virtio = virtio_name is not None and any(n.startswith(f"{virtio_name}-") for n in names)
        by_bus = (
            bus_info is not None
            and bus_info != ""
            and (bus_info in line.chip or any(f"@pci:{bus_info}" in n for n in names))
        )
        if line.irq in msi or by_name or by_virtio or by_bus:
            out.append(line)
    return out


def irq_infos(
    lines: Sequence[IrqLine], dev: str, affinity: Mapping[int, tuple[str, str | None]]
) -> list[IrqInfo]:
    """IrqInfo for each row of the device; ``affinity`` irq -> (smp_affinity_list, effective)."""
    out = []
    for line in lines:
        name = ", ".join(line.names)
        role, queue = "unknown", None
        for n in line.names:  # a shared line: the first name that says something
            role, queue = classify(n, dev)
            if role != "unknown":
                break
        aff, eff = affinity.get(line.irq, ("", None))
        out.append(IrqInfo(line.irq, name, role, queue, aff, eff, line.count))
    return out


def match_summary(infos: Sequence[IrqInfo], driver: str | None) -> str:
    """One line saying how the interrupts were matched to queues, or why they were not."""
    if not infos:
        return "no interrupts found: a software device (completions run in the sender's context)"
    queued = [i for i in infos if i.queue is not None and i.role in ("tx", "txrx")]
    if queued:
        kinds = sorted({i.role for i in queued})
        how = "TX" if kinds == ["tx"] else "combined TX/RX" if kinds == ["txrx"] else "TX and TX/RX"
        return f"by name: {len(queued)} {how} vector(s) matched to TX queues (queue = number in the name)"
    names = ", ".join(i.name for i in infos[:3]) + (", ..." if len(infos) > 3 else "")
    return (
        f"{len(infos)} interrupt(s) of {driver or 'the device'} ({names}): their names give no "
        "TX queue, so none is matched to a queue"
    )


def queue_irqs(infos: Sequence[IrqInfo], queue: int) -> tuple[tuple[int, ...], str | None]:
    """The IRQs serving TX ``queue`` and the CPUs they may run on (their lists joined)."""
    mine = [i for i in infos if i.queue == queue and i.role in ("tx", "txrx")]
    if not mine:
        return (), None
    cpus: set[int] = set()
    for info in mine:
        try:
            cpus |= parse_cpu_list(info.effective or info.affinity)
        except ValueError:
            continue
    return tuple(i.irq for i in mine), format_cpu_list(cpus)


# ---- thin readers -----------------------------------------------------------------------------


def read_interrupts(proc_root: Path = PROC) -> list[IrqLine]:
    return parse_interrupts(read_text(proc_root / "interrupts"))


def read_affinity(irqs: Iterable[int], proc_root: Path = PROC) -> dict[int, tuple[str, str | None]]:
    """irq -> (smp_affinity_list, effective_affinity_list or None), for the IRQs that have them."""
    out: dict[int, tuple[str, str | None]] = {}
    for irq in irqs:
        if isinstance(irq, bool) or not isinstance(irq, int) or not 0 <= irq <= MAX_IRQ:
            continue
        base = proc_root / "irq" / str(irq)
        try:
            aff = read_text(base / "smp_affinity_list").strip()
        except OSError:
            continue
        try:
            eff: str | None = read_text(base / "effective_affinity_list").strip()
        except OSError:
            eff = None
        out[irq] = (aff, eff)
    return out


def read_msi_irqs(dev: str, sysfs_root: Path = SYSFS_NET) -> tuple[list[int], str | None]:
    """(MSI vectors of the device's PCI function, the virtio device name when it is virtio).

    /sys/class/net/<dev>/device is the PCI function, or for virtio_net the virtio device whose
    parent directory is the PCI function (that is where ``msi_irqs`` is)."""
    device = sysfs_root / checked_ifname(dev) / "device"
    virtio_name = None
    try:
        target = os.readlink(device)
    except OSError:
        return [], None
    name = os.path.basename(target)
    candidates = [device / "msi_irqs"]
    if re.fullmatch(r"virtio\d+", name):
        virtio_name = name
        candidates.append(device / ".." / "msi_irqs")
    for path in candidates:
        try:
            entries = os.listdir(path)
        except OSError:
            continue
        return sorted(int(e) for e in entries if e.isdigit() and int(e) <= MAX_IRQ), virtio_name
    return [], virtio_name
