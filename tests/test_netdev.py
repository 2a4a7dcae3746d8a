"""Interface listing, name validation and device counters, against captured sysfs trees."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from txtop.core.readings import NetDevice, TxCounters
from txtop.probes.readers.files import parse_counter
from txtop.probes.readers.netdev import (
    InterfaceError,
    InvalidInterfaceName,
    UnknownInterface,
    list_tx_interfaces,
    order_interfaces,
    parse_tx_queue_dirs,
    read_device,
    resolve_interfaces,
    validate_ifname,
)


@pytest.fixture
def sysfs(data_dir: Path) -> Path:
    return data_dir / "sysfs"


def test_list_tx_interfaces_sorted_lo_last(sysfs: Path) -> None:
    assert list_tx_interfaces(sysfs) == ["ens1f0", "eth0", "lo"]


def test_order_interfaces() -> None:
    assert order_interfaces(["lo", "veth1", "eth0", "eth0", "bond0"]) == [
        "bond0",
        "eth0",
        "veth1",
        "lo",
    ]


def test_read_device_real_eth0(sysfs: Path) -> None:
    # Captured from this VM's virtio_net eth0 (tests/data/capture_host.py).
    assert read_device("eth0", sysfs) == NetDevice(
        name="eth0",
        ifindex=4,
        tx_queues=(0,),
        oper_state="up",
        counters=TxCounters(tx_packets=2707, tx_bytes=236893, tx_dropped=0, tx_errors=0),
    )


def test_read_device_real_lo(sysfs: Path) -> None:
    dev = read_device("lo", sysfs)
    assert dev is not None
    assert (dev.ifindex, dev.tx_queues, dev.oper_state) == (1, (0,), "unknown")
    assert dev.counters == TxCounters(400029, 24003193, 0, 0)


def test_read_device_constructed_multiqueue(sysfs: Path) -> None:
    dev = read_device("ens1f0", sysfs)
    assert dev is not None
    assert dev.tx_queues == tuple(range(8))
    assert dev.counters == TxCounters(123456789, 98765432100, 3, 1)


def test_read_device_vanished(sysfs: Path, tmp_path: Path) -> None:
    assert read_device("nosuch0", sysfs) is None
    # Directory still listed but its files already gone (unregister in progress).
    shutil.copytree(sysfs / "eth0", tmp_path / "eth0")
    (tmp_path / "eth0" / "statistics" / "tx_bytes").unlink()
    assert read_device("eth0", tmp_path) is None


def test_parse_tx_queue_dirs() -> None:
    entries = ["rx-0", "tx-10", "tx-2", "tx-0", "tx-x", "tx-", "tx-1a", "tx-٣"]
    assert parse_tx_queue_dirs(entries) == (0, 2, 10)


@pytest.mark.parametrize("name", ["eth0", "lo", "a", "x" * 15, "veth-1.2", "ens1f0np0", "é" * 7])
def test_validate_ifname_accepts(name: str) -> None:
    assert validate_ifname(name) == name


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "x" * 16, "a/b", "a b", "a\tb", "eth0:1", "a\nb", "a\x00", "é" * 8, "\xa0"],
)
def test_validate_ifname_rejects(name: str) -> None:
    with pytest.raises(InvalidInterfaceName):
        validate_ifname(name)


def test_resolve_interfaces(sysfs: Path) -> None:
    assert resolve_interfaces(None, sysfs) == ["ens1f0", "eth0", "lo"]
    assert resolve_interfaces([], sysfs) == ["ens1f0", "eth0", "lo"]
    assert resolve_interfaces(["lo", "eth0", "lo"], sysfs) == ["lo", "eth0"]


def test_resolve_unknown_names_bad_and_available(sysfs: Path) -> None:
    with pytest.raises(UnknownInterface) as info:
        resolve_interfaces(["eth0", "eth9", "wlan0"], sysfs)
    msg = str(info.value)
    assert msg == "unknown interfaces: eth9, wlan0 (available: ens1f0, eth0, lo)"
    assert "\n" not in msg
    assert info.value.unknown == ("eth9", "wlan0")
    assert isinstance(info.value, InterfaceError)


def test_resolve_rejects_path_tricks(sysfs: Path) -> None:
    with pytest.raises(InvalidInterfaceName):
        resolve_interfaces(["../eth0"], sysfs)


def test_parse_counter() -> None:
    assert parse_counter("12\n") == 12
    assert parse_counter(b"0") == 0
    for bad in ("", "-1", "1.5", "0x10", "²", "1 2"):
        with pytest.raises(ValueError):
            parse_counter(bad)


@given(st.text(max_size=40))
def test_fuzz_validate_ifname_only_valueerror(name: str) -> None:
    try:
        validate_ifname(name)
    except InvalidInterfaceName:
        return
    raw = name.encode()
    assert 0 < len(raw) < 16 and b"/" not in raw and name not in (".", "..")


@given(st.one_of(st.text(max_size=30), st.binary(max_size=30)))
def test_fuzz_parse_counter(text: str | bytes) -> None:
    try:
        assert parse_counter(text) >= 0
    except ValueError:
        pass


@given(st.lists(st.text(max_size=8), max_size=10))
def test_fuzz_parse_tx_queue_dirs(entries: list[str]) -> None:
    out = parse_tx_queue_dirs(entries)
    assert list(out) == sorted(out) and all(n >= 0 for n in out)
