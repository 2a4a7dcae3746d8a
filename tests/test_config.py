"""The configuration readers (probes/readers/{netconf,ethtool,irqs,qdisc_options,config}.py)
and the config types (core/config.py): on captured sysfs/procfs trees, ioctl replies and a
netlink dump from this machine (tests/data/config/, see its README), and, as root, against
``ip -d link``, ``ethtool -g/-k/-c``, ``tc`` and sysfs on a lab veth and the host's own NIC
(read-only: nothing is set on the host's devices)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from txtop.core.config import (
    ConfigReading,
    DeviceConfig,
    IrqInfo,
    QdiscConfig,
    QueueConfig,
    attach_config,
    device_config_from_dict,
    format_cpu_list,
    parse_cpu_list,
    queue_config_from_dict,
    xps_queue_of_cpu,
)
from txtop.core.model import DeviceRow, QdiscStats, QueueRow, Snapshot
from txtop.core.readings import NetDevice, TxCounters
from txtop.probes.readers import irqs, netconf
from txtop.probes.readers.config import ConfigReader
from txtop.probes.readers.ethtool import (
    EthtoolReader,
    decode_channels,
    decode_coalesce,
    decode_drvinfo,
    decode_features,
    decode_rings,
    decode_sset_count,
    decode_strings,
    offloads,
)
from txtop.probes.readers.qdisc_options import decode_options, parse_dump

DATA = Path(__file__).parent / "data" / "config"
SYS = DATA / "sys" / "class" / "net"
PROC = DATA / "proc"
META = json.loads((DATA / "capture.json").read_text())
LAB = META["lab_dev"]
ETHTOOL = json.loads((DATA / "ethtool.json").read_text())
QDISCS = json.loads((DATA / "qdiscs.json").read_text())
root = pytest.mark.root


def raw(dev: str, what: str) -> bytes:
    return bytes.fromhex(ETHTOOL[dev]["raw"][what])


def ethtool_section(text: str, title: str) -> dict[str, str]:
    """``ethtool -g`` lines of one section ("Current hardware settings") as name -> value."""
    out: dict[str, str] = {}
    inside = False
    for line in text.splitlines():
        if line.rstrip(":").strip() == title.rstrip(":"):
            inside = True
            continue
        if inside and ":" in line:
            key, _, value = line.partition(":")
            if not line.startswith((" ", "\t")) and not value.strip() and key.strip():
                break
            out[key.strip()] = value.strip()
    return out


def ethtool_k(text: str) -> dict[str, bool]:
    """Top-level ``ethtool -k`` lines: name -> on."""
    out = {}
    for line in text.splitlines():
        if line.startswith(("\t", " ")) or ":" not in line:
            continue
        key, _, value = line.partition(":")
        if value.strip().startswith(("on", "off")):
            out[key.strip()] = value.strip().startswith("on")
    return out


# ---- CPU lists and masks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("", set()), ("0", {0}), ("0-3", {0, 1, 2, 3}), ("0-1,8,10-11", {0, 1, 8, 10, 11})],
)
def test_cpu_lists_round_trip(text: str, cpus: set[int]) -> None:
    assert parse_cpu_list(text) == cpus
    assert format_cpu_list(cpus) == text


@pytest.mark.parametrize("bad", ["a", "1-", "3-1", "1,,2", "-1", "0-999999"])
def test_bad_cpu_lists_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_cpu_list(bad)


@pytest.mark.parametrize(
    ("mask", "cpus"),
    [
        ("0", ""),
        ("3", "0-1"),
        ("00000005", "0,2"),
        ("00000001,00000000", "32"),
        ("ffffffff,ffffffff", "0-63"),
        ("80000000,00000001\n", "0,63"),
    ],
)
def test_sysfs_bitmaps(mask: str, cpus: str) -> None:
    assert netconf.parse_mask(mask) == cpus


@pytest.mark.parametrize("bad", ["", "xyz", "123456789", "1,,2", "0x3"])
def test_bad_bitmaps_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        netconf.parse_mask(bad)


def test_xps_queue_of_cpu() -> None:
    queues = {n: QueueConfig(xps_cpus=c) for n, c in enumerate(("0", "1", "", "0-1"))}
    assert xps_queue_of_cpu(0, queues) == [0, 3]
    assert xps_queue_of_cpu(1, queues) == [1, 3]
    assert xps_queue_of_cpu(5, queues) == []


# ---- sysfs: per queue and per device (captured) -----------------------------------------------


def test_queue_config_of_the_host_nic_capture() -> None:
    qc = netconf.read_queue_config("eth0", 0, 1, SYS)
    # virtio_net, one queue: the kernel refuses xps_cpus (ENOENT) on a single-queue device.
    assert qc.xps_cpus is None and "single TX queue" in qc.unavailable["xps_cpus"]
    assert qc.xps_rxqs == "" and qc.tx_maxrate == 0
    assert qc.traffic_class is None and "traffic classes" in qc.unavailable["traffic_class"]
    base = SYS / "eth0" / "queues" / "tx-0" / "byte_queue_limits"
    assert qc.bql_limit_min == int((base / "limit_min").read_text())
    assert qc.bql_limit_max == int((base / "limit_max").read_text())
    assert qc.bql_hold_time == int((base / "hold_time").read_text())


def test_queue_config_of_the_lab_veth_capture() -> None:
    got = [netconf.read_queue_config(LAB, n, 4, SYS) for n in range(4)]
    # capture.py wrote masks 1, 2, 0, 3: CPU lists 0, 1, none, 0-1.
    assert [q.xps_cpus for q in got] == ["0", "1", "", "0-1"]
    assert all(q.bql_limit_min is None and q.unavailable["bql"] for q in got)  # veth: no BQL
    assert all(q.traffic_class == "0" and q.tx_maxrate == 0 for q in got)


def test_device_values_capture() -> None:
    eth0 = netconf.read_device_values("eth0", SYS)
    assert eth0["txqueuelen"] == int((SYS / "eth0" / "tx_queue_len").read_text())
    assert eth0["mtu"] == int((SYS / "eth0" / "mtu").read_text())
    assert eth0["driver"] == "virtio_net"
    assert netconf.read_device_values(LAB, SYS)["txqueuelen"] == 500
    assert netconf.read_device_values("lo", SYS)["driver"] is None


def test_sysctls_capture() -> None:
    values = netconf.read_sysctls(PROC)
    core = PROC / "sys" / "net" / "core"
    assert values["net.core.netdev_budget"] == (core / "netdev_budget").read_text().strip()
    assert values["net.core.default_qdisc"] == (core / "default_qdisc").read_text().strip()
    assert set(values) >= {"net.core.netdev_budget_usecs", "net.core.netdev_max_backlog"}


def test_queue_names_reaching_paths_are_checked() -> None:
    with pytest.raises(ValueError):
        netconf.read_queue_config("../etc", 0, 1, SYS)
    with pytest.raises(ValueError):
        netconf.read_queue_config("eth0", -1, 1, SYS)
    with pytest.raises(ValueError):
        netconf.read_device_values("a/b", SYS)


# ---- interrupts -----------------------------------------------------------------------------


def test_interrupts_capture_and_the_virtio_match() -> None:
    lines = irqs.read_interrupts(PROC)
    assert lines and all(line.irq >= 0 for line in lines)
    msi, virtio = irqs.read_msi_irqs("eth0", SYS)
    assert virtio is not None and virtio.startswith("virtio") and msi
    mine = irqs.device_irqs(lines, "eth0", msi, None, virtio)
    infos = irqs.irq_infos(mine, "eth0", irqs.read_affinity([m.irq for m in mine], PROC))
    by_role = {(i.role, i.queue) for i in infos}
    assert ("tx", 0) in by_role and ("rx", 0) in by_role
    tx = next(i for i in infos if i.role == "tx")
    assert tx.name == f"{virtio}-output.0"
    assert tx.affinity == (PROC / "irq" / str(tx.irq) / "smp_affinity_list").read_text().strip()
    assert irqs.queue_irqs(infos, 0)[0] == (tx.irq,)
    assert irqs.match_summary(infos, "virtio_net").startswith("by name: 1 TX")
    # lo and the veth have no interrupt: said so, not guessed.
    assert irqs.device_irqs(lines, "lo") == []
    assert "software device" in irqs.match_summary([], None)


INTERRUPTS = """\
            CPU0       CPU1       CPU2       CPU3
  0:         40          0          0          0   IO-APIC   2-edge      timer
 45:       1000          0          0          0  IR-PCI-MSI 524288-edge      eth1-TxRx-0
 46:          0       2000          0          0  IR-PCI-MSI 524289-edge      eth1-TxRx-1
 47:          3          0          0          0  IR-PCI-MSI 524290-edge      eth1
 60:          0          0        500          0  PCI-MSI-0000:3b:00.0 2-edge      mlx5_comp2@pci:0000:3b:00.0
 61:          0          0          0          9  PCI-MSI-0000:3b:00.0 0-edge      mlx5_async0@pci:0000:3b:00.0
 70:          7          0          0          0   GICv3  79 Level     eth2-tx-3
 71:          7          0          0          0   GICv3  80 Level     eth2-rx-3
 80:          1          1          1          1  IR-PCI-MSI 1-edge      eth3
NMI:          0          0          0          0   Non-maskable interrupts
"""


def test_interrupt_names_of_other_drivers() -> None:
    lines = irqs.parse_interrupts(INTERRUPTS)
    assert [line.irq for line in lines] == [0, 45, 46, 47, 60, 61, 70, 71, 80]
    assert lines[1].names == ("eth1-TxRx-0",) and lines[1].count == 1000
    assert lines[4].chip.startswith("PCI-MSI-0000:3b:00.0")
    assert irqs.classify("eth1-TxRx-1", "eth1") == ("txrx", 1)
    assert irqs.classify("eth2-tx-3", "eth2") == ("tx", 3)
    assert irqs.classify("eth2-rx-3", "eth2") == ("rx", 3)
    assert irqs.classify("mlx5_comp2@pci:0000:3b:00.0", "ens1") == ("txrx", 2)
    assert irqs.classify("mlx5_async0@pci:0000:3b:00.0", "ens1") == ("other", None)
    assert irqs.classify("eth3", "eth3") == ("unknown", None)
    igb = irqs.device_irqs(lines, "eth1")
    assert [line.irq for line in igb] == [45, 46, 47]
    mlx = irqs.device_irqs(lines, "ens1", bus_info="0000:3b:00.0")
    assert [line.irq for line in mlx] == [60, 61]
    infos = irqs.irq_infos(igb, "eth1", {45: ("0", "0"), 46: ("1-2", None)})
    assert irqs.queue_irqs(infos, 1) == ((46,), "1-2")
    # A single vector named after the device serves every queue: matched to none, and said so.
    single = irqs.irq_infos(irqs.device_irqs(lines, "eth3"), "eth3", {})
    assert "give no TX queue" in irqs.match_summary(single, "e1000")
    with pytest.raises(ValueError):
        irqs.parse_interrupts("garbage\n")


# ---- the ETHTOOL ioctl replies (captured) -----------------------------------------------------


def test_ethtool_replies_of_the_host_nic_match_ethtool() -> None:
    rings = decode_rings(raw("eth0", "rings"))
    shown = ETHTOOL["eth0"]["ethtool -g"]
    maxima = ethtool_section(shown, "Pre-set maximums:")
    current = ethtool_section(shown, "Current hardware settings:")
    assert rings["tx"] == int(current["TX"]) and rings["rx"] == int(current["RX"])
    assert rings["tx_max"] == int(maxima["TX"]) and rings["rx_max"] == int(maxima["RX"])
    coal = decode_coalesce(raw("eth0", "coalesce"))
    c = ETHTOOL["eth0"]["ethtool -c"]
    for name in ("tx-usecs", "tx-frames", "rx-usecs", "rx-frames"):
        m = re.search(rf"^{name}: (\d+)", c, re.M)
        if m:
            assert coal[name.replace("-", "_")] == int(m.group(1)), name
    driver, bus = decode_drvinfo(raw("eth0", "driver"))
    assert f"driver: {driver}" in ETHTOOL["eth0"]["ethtool -i"]
    assert f"bus-info: {bus}" in ETHTOOL["eth0"]["ethtool -i"]
    assert decode_channels(raw("eth0", "channels"))


@pytest.mark.parametrize("dev", ["eth0", "lo", "LAB"])
def test_offloads_match_ethtool_k(dev: str) -> None:
    dev = LAB if dev == "LAB" else dev
    count = decode_sset_count(raw(dev, "features_sset"))
    names = decode_strings(raw(dev, "features_strings"))
    assert len(names) == count and "tx-generic-segmentation" in names
    got = offloads(decode_features(raw(dev, "features"), names))
    shown = ethtool_k(ETHTOOL[dev]["ethtool -k"])
    assert got and all(got[name] == shown[name] for name in got), (got, shown)


def test_software_devices_say_why_parts_are_missing() -> None:
    assert "not supported" in ETHTOOL["lo"]["unavailable"]["rings"]
    assert "not supported" in ETHTOOL[LAB]["unavailable"]["coalesce"]


@pytest.mark.parametrize(
    "decode", [decode_rings, decode_coalesce, decode_channels, decode_drvinfo, decode_strings]
)
def test_short_or_wrong_replies_are_refused(decode) -> None:
    with pytest.raises(ValueError):
        decode(b"\x01\x00")
    with pytest.raises(ValueError):
        decode(b"\xff" * 400)  # a reply for another command


# ---- qdisc options (a captured dump) --------------------------------------------------------


def test_qdisc_options_match_tc() -> None:
    data = b"".join(bytes.fromhex(m) for m in QDISCS["messages"])
    index = QDISCS["ifindex"]
    got = {(q.ifindex, q.config.handle): q.config for q in parse_dump(data, {index[LAB]: 500})}
    for line in QDISCS["tc"][LAB].splitlines():
        m = re.match(r"qdisc (\S+) (\S+) (?:root|parent (\S+))(.*)", line)
        assert m, line
        kind, handle, parent, rest = m.groups()
        config = got[(index[LAB], handle)]
        assert config.kind == kind and config.parent == (parent or "root")
        limit = re.search(r"limit (\d+)(p|b)", rest)
        if limit:
            assert config.limit == int(limit.group(1)), line
            assert config.limit_unit == ("packets" if limit.group(2) == "p" else "bytes")
    tbf = next(c for c in got.values() if c.kind == "tbf")
    assert tbf.limit == 200 * 1024 and tbf.limit_unit == "bytes"
    assert tbf.params.startswith("rate 8Mbit burst 4096b")
    fast = next(c for c in got.values() if c.kind == "pfifo_fast" and c.parent != "root")
    assert fast.limit == 500 and "txqueuelen" in fast.params  # pfifo_fast: the txqueuelen
    pfifo = next(c for c in got.values() if c.kind == "pfifo")
    assert pfifo.limit == 500  # created without a limit: took txqueuelen


def test_qdisc_options_of_kinds_this_kernel_lacks() -> None:
    # fq_codel and fq are not built into the dev kernel: their TCA_OPTIONS as the kernel's
    # fq_codel_dump/fq_dump write them (u32 attributes: TCA_FQ_CODEL_LIMIT = 2, TCA_FQ_PLIMIT = 1).
    def attr(kind: int, value: int) -> bytes:
        return (8).to_bytes(2, "little") + kind.to_bytes(2, "little") + value.to_bytes(4, "little")

    fq_codel = decode_options("fq_codel", attr(1, 5000) + attr(2, 10240))
    assert (fq_codel.limit, fq_codel.limit_unit) == (10240, "packets")
    assert decode_options("fq", attr(1, 10000)).limit == 10000
    assert decode_options("cake", b"anything").limit is None
    assert decode_options("bfifo", (30000).to_bytes(4, "little")).limit_unit == "bytes"
    with pytest.raises(ValueError):
        decode_options("fq", b"\xff\xff\x01\x00")  # an attribute longer than its buffer
    with pytest.raises(ValueError):
        parse_dump(b"\x30\x00\x00\x00" + b"\x00" * 8)  # a message longer than the data


# ---- the reader as a whole, and the rows ---------------------------------------------------


def _netdev(name: str, queues: int) -> NetDevice:
    ifindex = int((SYS / name / "ifindex").read_text())
    return NetDevice(name, ifindex, tuple(range(queues)), "up", TxCounters(0, 0, 0, 0))


def test_config_reader_on_the_captured_tree() -> None:
    ticks = iter(range(0, 1000, 5))
    reader = ConfigReader(SYS, PROC, live=False, clock=lambda: float(next(ticks)))
    devices = [_netdev("eth0", 1), _netdev("lo", 1), _netdev(LAB, 4)]
    reading = reader.current(devices)
    eth0 = reading.devices["eth0"]
    assert eth0.txqueuelen == 1000 and eth0.driver == "virtio_net"
    assert eth0.sysctl["net.core.netdev_budget"].isdigit()
    assert any(i.role == "tx" and i.queue == 0 for i in eth0.irqs)
    assert "captured tree" in eth0.unavailable["rings"]
    assert reading.queues[("eth0", 0)].irqs and reading.queues[(LAB, 3)].xps_cpus == "0-1"
    assert reading.devices[LAB].irqs == () and "software device" in reading.devices[LAB].irq_match
    # Read once, then only when due: the same devices 5 s later reuse the reading...
    assert reader.current(devices) is reading and reader.reads == 1
    # ...a changed device set re-reads at once, and REREAD_S later it reads again anyway.
    assert reader.current(devices[:2]) is not reading and reader.reads == 2
    for _ in range(3):
        reader.current(devices[:2])
    assert reader.reads == 3
    reader.close()


def _rows(kind: str = "tbf", handle: str = "855d:") -> tuple[DeviceRow, QueueRow]:
    device = DeviceRow(LAB, 7, 4, False, "up", "mq", 0, 0, 0, 0, 0.0, 0.0)
    qdisc = QdiscStats(kind, handle, "1:1", 0, 0, 0, 0, 0, 0, 0, 0, per_queue=True)
    return device, QueueRow(LAB, 7, 0, None, qdisc, None)


def test_attach_config_matches_qdiscs_by_handle_and_kind() -> None:
    tbf = QdiscConfig("tbf", "855d:", "1:1", 204800, "bytes", "rate 8Mbit")
    mq = QdiscConfig("mq", "1:", "root")
    reading = ConfigReading(
        {LAB: DeviceConfig(txqueuelen=500)},
        {(LAB, 0): QueueConfig(xps_cpus="0")},
        {(7, "855d:"): tbf, (7, "1:"): mq},
    )
    devices, queues = attach_config(*[[r] for r in _rows()], reading)
    assert devices[0].config is not None and devices[0].config.root_qdisc == mq
    assert queues[0].config is not None and queues[0].config.qdisc == tbf
    assert queues[0].config.xps_cpus == "0"
    # A qdisc replaced since the read (same handle, other kind) shows no stale limit.
    _, replaced = attach_config(*[[r] for r in _rows("pfifo")], reading)
    assert replaced[0].config is not None and replaced[0].config.qdisc is None
    assert attach_config([], [], None) == ((), ())


def test_config_json_round_trip_and_malformed_input() -> None:
    config = DeviceConfig(
        txqueuelen=1000,
        channels={"combined": 1},
        coalesce={"tx_usecs": 0},
        offloads={"generic-segmentation-offload": True},
        irqs=(IrqInfo(39, "virtio2-output.0", "tx", 0, "0-1", "0", 12),),
        root_qdisc=QdiscConfig("pfifo_fast", "0:", "root", 1000, "packets"),
        sysctl={"net.core.netdev_budget": "300"},
        unavailable={"rings": "why"},
    )
    device = dataclasses.replace(_rows()[0], config=config)
    queue = dataclasses.replace(_rows()[1], config=QueueConfig(xps_cpus="0", irqs=(39,)))
    snap = Snapshot("h", "k", 1.0, 1, 1.0, "live", (LAB,), (device,), (queue,), (), (), _probes())
    back = Snapshot.from_dict(json.loads(json.dumps(snap.to_dict())))
    assert back.devices[0].config == config and back.queues[0].config == queue.config
    assert device_config_from_dict(None) is None and queue_config_from_dict(None) is None
    for bad in (
        {"txqueuelen": "1000"},
        {"irqs": [{"irq": "x"}]},
        {"offloads": {"gso": "on"}},
        {"channels": {"combined": True}},
        [],
    ):
        with pytest.raises((TypeError, KeyError)):
            device_config_from_dict(bad)
    with pytest.raises((TypeError, KeyError)):
        queue_config_from_dict({"irqs": ["39"]})
    broken = snap.to_dict()
    broken["queues"][0]["config"] = {"xps_cpus": 3}
    with pytest.raises(ValueError):
        Snapshot.from_dict(broken)


def _probes():
    from txtop.core.model import ProbeStatus

    return ProbeStatus("off")


# ---- live (root): the lab veth and the host's own NIC, read-only ---------------------------


def _tool(*argv: str) -> str:
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} not installed")
    return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout


@root
def test_live_lab_veth_against_ip_tc_and_sysfs(lab) -> None:
    subprocess.run(["ip", "link", "set", "dev", lab.dev, "txqueuelen", "321"], check=True)
    lab.set_mq("pfifo_fast")
    lab.set_tbf(rate="8mbit", burst="4k", limit="100k", parent="1:2")
    Path(f"/sys/class/net/{lab.dev}/queues/tx-3/xps_cpus").write_text("1")
    device = NetDevice(lab.dev, lab.ifindex, (0, 1, 2, 3), "up", TxCounters(0, 0, 0, 0))
    reader = ConfigReader()
    try:
        reading = reader.current([device])
    finally:
        reader.close()
    config = reading.devices[lab.dev]
    link = json.loads(_tool("ip", "-d", "-j", "link", "show", "dev", lab.dev))[0]
    assert config.txqueuelen == link["txqlen"] == 321
    assert config.mtu == link["mtu"]
    assert config.driver == "veth" and config.irqs == ()
    shown = ethtool_k(_tool("ethtool", "-k", lab.dev))
    assert config.offloads and all(config.offloads[k] == shown[k] for k in config.offloads)
    assert reading.queues[(lab.dev, 3)].xps_cpus == "0"
    mine = [q for (ifx, _), q in reading.qdiscs.items() if ifx == lab.ifindex]
    tbf = next(q for q in mine if q.kind == "tbf" and q.parent == "1:2")
    tc = _tool("tc", "qdisc", "show", "dev", lab.dev)
    assert re.search(rf"tbf {re.escape(tbf.handle)} parent 1:2 rate 8Mbit", tc)
    assert tbf.limit == 100 * 1024
    fast = [q for q in mine if q.kind == "pfifo_fast"]
    assert fast and all(q.limit == 321 for q in fast)


@root
def test_live_host_nic_read_only() -> None:
    dev = "eth0"
    if not Path(f"/sys/class/net/{dev}").exists():
        pytest.skip("no eth0 here")
    info = EthtoolReader().read(dev)
    shown = _tool("ethtool", "-g", dev)
    if "rings" in info.unavailable:
        assert not ethtool_section(shown, "Current hardware settings:").get("TX", "").isdigit()
    else:
        current = ethtool_section(shown, "Current hardware settings:")
        assert info.rings["tx"] == int(current["TX"]) and info.rings["rx"] == int(current["RX"])
    k = ethtool_k(_tool("ethtool", "-k", dev))
    assert info.offloads and all(info.offloads[name] == k[name] for name in info.offloads)
    queues = sorted(p.name for p in Path(f"/sys/class/net/{dev}/queues").glob("tx-*"))
    for name in queues:
        n = int(name[3:])
        qc = netconf.read_queue_config(dev, n, len(queues))
        base = Path(f"/sys/class/net/{dev}/queues/{name}/byte_queue_limits")
        if base.is_dir():
            assert qc.bql_limit_max == int((base / "limit_max").read_text())
            assert qc.bql_hold_time == int((base / "hold_time").read_text())
        assert qc.tx_maxrate == int(
            Path(f"/sys/class/net/{dev}/queues/{name}/tx_maxrate").read_text()
        )
    link = json.loads(_tool("ip", "-d", "-j", "link", "show", "dev", dev))[0]
    assert netconf.read_device_values(dev)["txqueuelen"] == link["txqlen"]
    assert os.geteuid() == 0
