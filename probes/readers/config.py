"""The TX path's configuration, read once at start and again on change (never every tick).

``ConfigReader.current(devices)`` is what the collector calls each tick: it returns the last
``ConfigReading`` (core/config.py) and reads a new one only when it is due:
- the first time, and when the set of devices (or their queue counts) changed;
- when a netlink notification about one of them arrived (link: txqueuelen, MTU, features,
  up/down; tc: a qdisc added, changed or replaced), at most once per ``MIN_GAP_S``;
- every ``REREAD_S`` anyway: sysfs writes (xps_cpus, BQL limits, IRQ affinity) and ethtool
  changes (rings, coalescing) send no rtnetlink notification.

One read: per device, the sysfs values (netconf.py), the ETHTOOL ioctls (ethtool.py) and its
interrupts (irqs.py); per TX queue, its sysfs knobs; one qdisc dump with options
(qdisc_options.py); the net.core sysctls. ``live=False`` (a fake sysfs/procfs tree in tests)
skips what only the running kernel can answer (ioctls, netlink) and says so.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from txtop.core.config import ConfigReading, DeviceConfig, QdiscConfig, QueueConfig
from txtop.core.readings import NetDevice
from txtop.core.text import exc_line
from txtop.probes.readers import irqs, netconf
from txtop.probes.readers.ethtool import EthtoolInfo, EthtoolReader
from txtop.probes.readers.netdev import SYSFS_NET
from txtop.probes.readers.qdisc_options import ChangeWatch, dump_qdiscs, parse_dump

PROC = Path("/proc")
# Sysfs knobs and ethtool settings send no notification: re-read this often regardless. 15 s
# keeps a changed XPS map or ring size on screen soon enough to tie it to what follows; a full
# read of eth0, lo and a 64-queue veth took 5.8 ms on the dev VM (a tick that is not due: 23 us).
REREAD_S = 15.0
# Netlink notifications come in bursts (a lab set-up sends dozens): one read per burst.
MIN_GAP_S = 1.0

NOT_LIVE = "not read from a captured tree (needs the running kernel)"


class ConfigReader:
    """Reads and keeps the configuration. Use from the collector's thread; ``close()`` once."""

    def __init__(
        self,
        sysfs_root: Path = SYSFS_NET,
        proc_root: Path = PROC,
        *,
        live: bool = True,
        reread_s: float = REREAD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sysfs_root = Path(sysfs_root)
        self.proc_root = Path(proc_root)
        self.live = live
        self.reread_s = reread_s
        self._clock = clock
        self._ethtool = EthtoolReader()
        self._watch: ChangeWatch | None = ChangeWatch() if live else None
        self._last: ConfigReading | None = None
        self._read_at = 0.0
        self._shape: tuple[tuple[str, int, int], ...] = ()
        self._pending = False  # a notification arrived inside MIN_GAP_S of the last read
        self.reads = 0  # how many reads so far (tests, the bench)
        self.problem = ""

    def current(self, devices: Sequence[NetDevice]) -> ConfigReading:
        """The configuration of ``devices``, re-read only when due (see the module doc)."""
        now = self._clock()
        shape = tuple((d.name, d.ifindex, len(d.tx_queues)) for d in devices)
        if self._watch is not None and self._watch.changed({d.ifindex for d in devices}):
            self._pending = True
        due = (
            self._last is None
            or shape != self._shape
            or now - self._read_at >= self.reread_s
            or (self._pending and now - self._read_at >= MIN_GAP_S)
        )
        if due or self._last is None:
            self._last = self.read(devices)
            self._read_at = now
            self._shape = shape
            self._pending = False
        return self._last

    def read(self, devices: Sequence[NetDevice]) -> ConfigReading:
        """One full read of ``devices`` (never raises for an unreadable part: each part that
        failed is None with its reason in ``unavailable``)."""
        self.reads += 1
        problems: list[str] = []
        sysctl = netconf.read_sysctls(self.proc_root)
        try:
            lines = irqs.read_interrupts(self.proc_root)
        except FileNotFoundError:  # a captured tree without it: no interrupts to show
            lines = []
        except (OSError, ValueError) as exc:
            lines = []
            problems.append(f"/proc/interrupts: {exc_line(exc, typed=True)}")
        txqueuelen: dict[int, int] = {}
        device_configs: dict[str, DeviceConfig] = {}
        queue_configs: dict[tuple[str, int], QueueConfig] = {}
        for dev in devices:
            try:
                config, queues = self._read_device(dev, lines, sysctl)
            except (OSError, ValueError) as exc:
                problems.append(f"{dev.name}: {exc_line(exc, typed=True)}")
                continue
            device_configs[dev.name] = config
            queue_configs.update(queues)
            if config.txqueuelen is not None:
                txqueuelen[dev.ifindex] = config.txqueuelen
        qdiscs: dict[tuple[int, str], QdiscConfig] = {}
        if self.live:
            try:
                for q in parse_dump(dump_qdiscs(), txqueuelen):
                    qdiscs[(q.ifindex, q.config.handle)] = q.config
            except (OSError, ValueError) as exc:
                problems.append(f"qdisc options: {exc_line(exc, typed=True)}")
        if self._watch is not None and self._watch.problem:
            problems.append(self._watch.problem)
        self.problem = "; ".join(problems)
        wall = time.time()
        device_configs = {
            name: dataclasses.replace(c, read_at=wall) for name, c in device_configs.items()
        }
        return ConfigReading(device_configs, queue_configs, qdiscs, read_at=wall)

    def _read_device(
        self, dev: NetDevice, lines: Sequence[irqs.IrqLine], sysctl: dict[str, str]
    ) -> tuple[DeviceConfig, dict[tuple[str, int], QueueConfig]]:
        values = netconf.read_device_values(dev.name, self.sysfs_root)
        unavailable: dict[str, str] = {}
        if self.live:
            info = self._ethtool.read(dev.name)
        else:
            info = EthtoolInfo(
                unavailable=dict.fromkeys(("rings", "coalesce", "offloads"), NOT_LIVE)
            )
        unavailable.update(info.unavailable)
        msi, virtio_name = irqs.read_msi_irqs(dev.name, self.sysfs_root)
        mine = irqs.device_irqs(lines, dev.name, msi, info.bus_info, virtio_name)
        affinity = irqs.read_affinity([line.irq for line in mine], self.proc_root)
        infos = irqs.irq_infos(mine, dev.name, affinity)
        driver = values["driver"] if isinstance(values["driver"], str) else info.driver
        config = DeviceConfig(
            txqueuelen=_int(values["txqueuelen"]),
            mtu=_int(values["mtu"]),
            driver=driver,
            bus_info=info.bus_info,
            tx_ring=info.rings.get("tx"),
            tx_ring_max=info.rings.get("tx_max"),
            rx_ring=info.rings.get("rx"),
            rx_ring_max=info.rings.get("rx_max"),
            channels=info.channels,
            coalesce=info.coalesce,
            offloads=info.offloads,
            irqs=tuple(infos),
            irq_match=irqs.match_summary(infos, driver),
            sysctl=sysctl,
            unavailable=unavailable,
        )
        queues = {}
        for index in dev.tx_queues:
            qc = netconf.read_queue_config(dev.name, index, len(dev.tx_queues), self.sysfs_root)
            irq_list, irq_cpus = irqs.queue_irqs(infos, index)
            queues[(dev.name, index)] = dataclasses.replace(qc, irqs=irq_list, irq_cpus=irq_cpus)
        return config, queues

    def close(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.close()


def _int(value: int | str | None) -> int | None:
    return value if isinstance(value, int) else None
