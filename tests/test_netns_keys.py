"""Devices of other network namespaces in the probes' data (issue 17): pure checks of the key
mapping. The counters key a device by (namespace inode, ifindex), the filter takes such pairs,
decoded packets keep the kernel's name and ifindex for another namespace's device, and the
core splits a reading by namespace (core/nsprobes.py). The lab half is in tests/test_netns.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from txtop.core.model import PacketTrace, ProbeStatus
from txtop.core.nsprobes import label_packets, namespace_reading, own_reading
from txtop.core.source import QueueCounters, TracerReading
from txtop.probes.bpf.abi import N_STAGES
from txtop.probes.bpf.counters import devkey_of, split_queues
from txtop.probes.bpf.decode import RawRecord, to_packet_trace
from txtop.probes.bpf.settings import Settings, check_devices

OWN, OTHER = 4026531840, 4026532999


def names(table: dict[str, int]):
    return table.get


def test_devkey_own_namespace_unknown_and_other() -> None:
    lookup = names({"eth0": 2})
    key = SimpleNamespace
    assert devkey_of(key(netns=OWN, ifindex=7), OWN, lookup) == (0, 7)
    assert devkey_of(key(netns=0, ifindex=7), OWN, lookup) == (0, 7)  # not known: ours
    assert devkey_of(key(netns=OTHER, ifindex=7), OWN, lookup) == (OTHER, 7)
    # the classic forms key by name: looked up here, so ours
    assert devkey_of(b"eth0\0\0\0\0", OWN, lookup) == (0, 2)
    assert devkey_of(b"gone\0", OWN, lookup) is None


def test_split_queues_keeps_the_same_ifindex_of_two_namespaces_apart() -> None:
    own, other = split_queues({(0, 3, 0): [10, 1000, 10, 0, 1], (OTHER, 3, 0): [5, 500, 6, 1, 0]})
    assert own == {(3, 0): QueueCounters(10, 1000, 10, 0, 1)}
    assert other == {(OTHER, 3, 0): QueueCounters(5, 500, 6, 1, 0)}


def test_settings_take_devices_of_other_namespaces() -> None:
    s = Settings([2], None, 16, 200, 64, 2.0, devices=[(OTHER, 3), (OTHER, 3)], namespaces=[7])
    assert s.ifindexes == (2,) and s.devices == ((OTHER, 3),)
    assert s.other_namespaces() == {OTHER, 7}
    assert s.filters()["netns_devices"] == [f"{OTHER}:3"]
    assert "netns_devices" not in Settings([2], None, 16, 200, 64, 2.0).filters()  # as before
    for bad in ([(0, 3)], [(OTHER, 0)], [(2**32, 1)], [(OTHER,)], ["x"]):
        with pytest.raises(ValueError):
            check_devices(bad)  # type: ignore[arg-type]


def record(netns: int, dev: str = "veth1", ifindex: int = 3) -> RawRecord:
    ts = (100, 200, 300) + (0,) * (N_STAGES - 3)
    fields = {f: 0 for f in RawRecord._fields if f not in RawRecord._field_defaults}
    fields.update(ts=ts, cpu=(0,) * N_STAGES, comm="python", dev=dev, ifindex=ifindex)
    return RawRecord(**fields, netns=netns)


def test_a_packet_of_another_namespace_is_not_renamed_with_our_lookups() -> None:
    ours = {"veth1": 9, "eth0": 3}  # here, "veth1" and ifindex 3 are other devices
    by_name, by_index = ours.get, {v: k for k, v in ours.items()}.get
    kw = {"ifindex_of": by_name, "name_of": by_index, "own_netns": OWN}
    p = to_packet_trace(record(OTHER, dev="", ifindex=3), **kw)
    assert (p.dev, p.ifindex, p.netns_inode) == ("", 3, OTHER)  # not "eth0"
    p = to_packet_trace(record(OTHER, dev="veth1", ifindex=0), **kw)
    assert (p.dev, p.ifindex, p.netns_inode) == ("veth1", 0, OTHER)  # not 9
    for ns in (OWN, 0):  # ours, or not known: our lookups fill in what is missing
        p = to_packet_trace(record(ns, dev="", ifindex=3), **kw)
        assert (p.dev, p.ifindex, p.netns_inode) == ("eth0", 3, 0)


def trace(dev: str, ifindex: int, netns_inode: int = 0) -> PacketTrace:
    return PacketTrace(
        pid=0, tid=0, comm="", dev=dev, ifindex=ifindex, queue=0, len=100, gso_segs=1,
        stages={"dev_queue": 1, "xmit": 2}, cpus={}, track="complete", netns_inode=netns_inode,
    )  # fmt: skip


def test_a_reading_split_by_namespace() -> None:
    reading = TracerReading(
        status=ProbeStatus("running"),
        packets=(trace("veth1", 3), trace("veth1", 3, OTHER), trace("x", 3, 12345)),
        queues={(3, 0): QueueCounters(packets=10)},
        ns_queues={(OTHER, 3, 0): QueueCounters(packets=5), (12345, 3, 1): QueueCounters(7)},
        traced_s=1.5,
    )
    own = own_reading(reading)
    assert [p.netns_inode for p in own.packets] == [0] and own.queues == reading.queues
    blue = namespace_reading(reading, OTHER)
    assert blue.queues == {(3, 0): QueueCounters(packets=5)} and blue.traced_s == 1.5
    assert [p.netns_inode for p in blue.packets] == [OTHER] and not blue.cpus
    (named,) = label_packets("blue", blue.packets)
    assert (named.dev, named.netns, named.ifindex) == ("blue/veth1", "blue", 3)
    with pytest.raises(ValueError):
        namespace_reading(reading, 0)
    assert own_reading(own) is own  # nothing to drop: the same reading


def test_without_btf_the_namespaces_cannot_be_told_apart_and_that_is_said() -> None:
    from txtop.probes.bpf.prerequisites import Identity, netns_unknown

    why = netns_unknown(Identity(reason="identity unavailable: no BTF"))
    assert why.startswith("devices of other namespaces not told apart") and "no BTF" in why
