"""Capture what the configuration readers parse, from this machine (read-only) and a lab veth.

Run as root from the repo root: ``.venv/bin/python tests/data/config/capture.py``.

Reads (never writes) /sys/class/net/{eth0,lo}/..., /proc/interrupts, /proc/irq/<n>/ of the
devices' interrupts and /proc/sys/net/core; builds a private lab (lab/netns.py: a 4-queue veth
whose TX end is in this namespace) and sets it up the way the tests expect (mq with a tbf, a
pfifo, a bfifo and a pfifo_fast child, an XPS map, txqueuelen 500), captures it the same way
and removes it. No traffic is sent. Writes under tests/data/config/:

- ``sys/class/net/<dev>/...``: the sysfs files netconf.py reads (a file the kernel refuses to
  read, like xps_cpus on a single-queue device, is left out), and for eth0 its ``device`` link
  into ``sys/devices/...`` with the PCI function's ``msi_irqs`` and the driver link;
- ``proc/interrupts``, ``proc/irq/<n>/{smp_affinity_list,effective_affinity_list}``,
  ``proc/sys/net/core/*``;
- ``ethtool.json``: the raw ETHTOOL_G* replies (hex) per device, and what ``ethtool -g``,
  ``-k``, ``-c`` and ``ip -d link show`` printed right after, for the tests to compare with;
- ``qdiscs.json``: the raw RTM_GETQDISC dump messages of the lab device and eth0 (hex) and
  ``tc qdisc show`` for both;
- ``capture.json``: when, which kernel, which lab device name.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO))

from txtop.lab.netns import Lab, free_subnet  # noqa: E402
from txtop.probes.readers import irqs  # noqa: E402
from txtop.probes.readers.ethtool import EthtoolReader  # noqa: E402
from txtop.probes.readers.qdisc_options import dump_qdiscs, messages  # noqa: E402

SYS = Path("/sys")
PROC = Path("/proc")
QUEUE_FILES = (
    "xps_cpus",
    "xps_rxqs",
    "tx_maxrate",
    "traffic_class",
    "byte_queue_limits/limit_min",
    "byte_queue_limits/limit_max",
    "byte_queue_limits/hold_time",
)
DEVICE_FILES = ("tx_queue_len", "mtu", "ifindex")
SYSCTL_FILES = (
    "default_qdisc",
    "netdev_budget",
    "netdev_budget_usecs",
    "dev_weight",
    "dev_weight_tx_bias",
    "netdev_max_backlog",
)


def _write(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)


def _copy(src: Path, dest: Path) -> bool:
    try:
        data = src.read_bytes()
    except OSError:
        return False
    _write(dest, data)
    return True


def _run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout


def capture_device(dev: str, out: Path, irq_numbers: set[int]) -> None:
    src = SYS / "class" / "net" / dev
    dest = out / "sys" / "class" / "net" / dev
    for name in DEVICE_FILES:
        _copy(src / name, dest / name)
    for qdir in sorted((src / "queues").glob("tx-*")):
        for name in QUEUE_FILES:
            _copy(qdir / name, dest / "queues" / qdir.name / name)
        (dest / "queues" / qdir.name).mkdir(parents=True, exist_ok=True)
    for qdir in sorted((src / "queues").glob("rx-*")):
        (dest / "queues" / qdir.name).mkdir(parents=True, exist_ok=True)
    device = src / "device"
    if device.is_symlink():
        real = device.resolve()  # /sys/devices/pci0000:00/0000:00:03.0/virtio2
        rel = real.relative_to(SYS)
        (out / "sys" / rel).mkdir(parents=True, exist_ok=True)
        driver = real / "driver"
        if driver.is_symlink():
            link = out / "sys" / rel / "driver"
            if link.is_symlink():
                link.unlink()
            link.symlink_to(os.readlink(driver))
        for msi_dir in (real / "msi_irqs", real.parent / "msi_irqs"):
            if msi_dir.is_dir():
                target = out / "sys" / msi_dir.relative_to(SYS)
                target.mkdir(parents=True, exist_ok=True)
                for entry in msi_dir.iterdir():
                    (target / entry.name).write_text("msix\n")
                    irq_numbers.add(int(entry.name))
                break
        link = dest / "device"
        if link.is_symlink():
            link.unlink()
        link.symlink_to(os.path.relpath(out / "sys" / rel, dest))


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("capture.py needs root (the lab)")
    out = HERE
    for sub in ("sys", "proc"):
        shutil.rmtree(out / sub, ignore_errors=True)
    ethtool: dict[str, dict[str, object]] = {}
    qdiscs: dict[str, object] = {}
    irq_numbers: set[int] = set()
    reader = EthtoolReader(keep_raw=True)
    with Lab(tag="cfgcap", queues=4, subnet=free_subnet(range(20, 200), os.getpid())) as lab:
        subprocess.run(["ip", "link", "set", "dev", lab.dev, "txqueuelen", "500"], check=True)
        lab.set_mq("pfifo_fast")
        tc = ["tc", "qdisc", "replace", "dev", lab.dev]
        subprocess.run(
            [*tc, "parent", "1:1", "tbf", "rate", "8mbit", "burst", "4k", "limit", "200k"],
            check=True,
        )
        subprocess.run([*tc, "parent", "1:2", "pfifo"], check=True)  # limit = txqueuelen
        subprocess.run([*tc, "parent", "1:3", "bfifo", "limit", "30000"], check=True)
        for n, mask in enumerate(("1", "2", "0", "3")):
            Path(f"/sys/class/net/{lab.dev}/queues/tx-{n}/xps_cpus").write_text(mask)
        devices = ("eth0", "lo", lab.dev)
        for dev in devices:
            capture_device(dev, out, irq_numbers)
            info = reader.read(dev)
            ethtool[dev] = {
                "raw": {k: v.hex() for k, v in info.raw.items()},
                "unavailable": info.unavailable,
                "ethtool -g": _run("ethtool", "-g", dev),
                "ethtool -k": _run("ethtool", "-k", dev),
                "ethtool -c": _run("ethtool", "-c", dev),
                "ethtool -i": _run("ethtool", "-i", dev),
                "ip -d link": _run("ip", "-d", "link", "show", "dev", dev),
            }
        index = {dev: int((SYS / "class/net" / dev / "ifindex").read_text()) for dev in devices}
        raw = dump_qdiscs()
        keep = []
        offset = 0
        for _kind, body in messages(raw):
            length = 16 + len(body)
            if (
                len(body) >= 8
                and int.from_bytes(body[4:8], sys.byteorder, signed=True) in index.values()
            ):
                keep.append(raw[offset : offset + length].hex())
            offset += (length + 3) & ~3
        qdiscs = {
            "messages": keep,
            "ifindex": index,
            "tc": {dev: _run("tc", "qdisc", "show", "dev", dev) for dev in devices},
        }
        lab_dev = lab.dev
    _copy(PROC / "interrupts", out / "proc" / "interrupts")
    for line in irqs.read_interrupts():
        if any(n.startswith("virtio") for n in line.names):
            irq_numbers.add(line.irq)
    for irq in sorted(irq_numbers):
        for name in ("smp_affinity_list", "effective_affinity_list"):
            _copy(PROC / "irq" / str(irq) / name, out / "proc" / "irq" / str(irq) / name)
    for name in SYSCTL_FILES:
        _copy(PROC / "sys/net/core" / name, out / "proc/sys/net/core" / name)
    (out / "ethtool.json").write_text(json.dumps(ethtool, indent=1, sort_keys=True) + "\n")
    (out / "qdiscs.json").write_text(json.dumps(qdiscs, indent=1, sort_keys=True) + "\n")
    meta = {
        "kernel": platform.release(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "lab_dev": lab_dev,
        "devices": list(devices),
    }
    (out / "capture.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"captured {', '.join(devices)} into {out}")


if __name__ == "__main__":
    main()
