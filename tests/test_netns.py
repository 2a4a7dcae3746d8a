"""--netns (issue 17): devices of another network namespace, read there (sysfs through a
private sysfs mount in a thread that entered it, netlink from a socket made there), shown as
NS/DEV without probe data; bad namespaces are one line and exit 2.

Unit tests on the argument forms; root tests against a lab's peer inside its namespace,
checked against `ip -n NS -s link` and `tc -n NS qdisc`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from test_cli import TXTOP, txtop

from txtop.probes.readers.netns import NetnsError, NetnsRef, netns_path, unique_labels
from txtop.tui.args import UsageError, parse_args


def test_netns_argument_forms() -> None:
    assert netns_path("blue") == ("/run/netns/blue", "blue")
    assert netns_path("cni-1a2b3c4d-9f") == ("/run/netns/cni-1a2b3c4d-9f", "cni-1a2b3c4d-9f")
    assert netns_path("4242") == ("/proc/4242/ns/net", "pid4242")
    assert netns_path("/proc/7/ns/net") == ("/proc/7/ns/net", "pid7")
    assert netns_path("/var/run/netns/red") == ("/var/run/netns/red", "red")
    assert netns_path("/run/netns/../netns/red") == ("/run/netns/red", "red")
    for bad in ("", "..", ".", "a b", "x\0y", "rel/path", "0", "99999999", "a;b", "é"):
        with pytest.raises(NetnsError):
            netns_path(bad)


def test_labels_are_unique_and_a_namespace_named_twice_is_one() -> None:
    a = NetnsRef("/x/red", "red", "/x/red", 1, 3)
    b = NetnsRef("/y/red", "red", "/y/red", 2, 3)
    again = NetnsRef("red", "red", "/run/netns/red", 1, 3)
    assert [r.label for r in unique_labels([a, b, again])] == ["red", "red-2"]


def test_each_i_belongs_to_the_netns_before_it() -> None:
    opts = parse_args(["-i", "lo", "--netns", "blue", "-i", "eth0", "--netns", "9", "-i", "v"])
    assert opts.interfaces == ("lo",)
    assert opts.netns == ("blue", "9")
    assert opts.netns_interfaces == (("blue", "eth0"), ("9", "v"))
    with pytest.raises(UsageError, match="must be absolute"):
        parse_args(["--netns", "a/b"])
    with pytest.raises(UsageError, match="--netns cannot be combined with --synthetic"):
        parse_args(["--netns", "blue", "--synthetic", "2x2"])


@pytest.mark.parametrize(
    "arg, why",
    [
        ("txtop-no-such-ns-17", "no such network namespace"),
        ("/etc/hostname", "is not a network namespace"),
        ("4194000", "no such network namespace"),
    ],
)
def test_a_namespace_that_does_not_exist_is_one_line_and_exit_2(arg: str, why: str) -> None:
    res = txtop("--once", "--format", "json", "--no-probes", "--netns", arg, "-d", "0.2")
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and why in res.stderr, res.stderr
    assert res.stderr.startswith("txtop: error: --netns ") and not res.stdout


# ---- root: a lab's peer, inside its namespace ----------------------------------------------------


def ip_json(*args: str) -> list[dict]:
    out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def peer_tx_packets(lab) -> int:
    link = ip_json("-n", lab.ns, "-s", "link", "show", "dev", lab.peer)[0]
    return int(link["stats64"]["tx"]["packets"])


def send_from_peer(lab, count: int) -> None:
    """UDP datagrams sent inside the namespace: the peer transmits them towards our end."""
    code = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
        "for i in range(int(sys.argv[2])): s.sendto(b'x'*200,(sys.argv[1],9))\n"
    )
    subprocess.run(
        lab.ns_argv([sys.executable, "-c", code, lab.local_ip, str(count)]),
        check=True,
        timeout=30,
    )


def once(*args: str) -> dict:
    res = subprocess.run(
        [*TXTOP, "--once", "--format", "json", "-d", "0.5", *args],
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.mark.root
def test_a_lab_device_inside_its_namespace(lab) -> None:
    # An mq root with a pfifo_fast per queue on the peer, set inside the namespace.
    subprocess.run(["tc", "-n", lab.ns, "qdisc", "replace", "dev", lab.peer, "root", "handle",
                    "1:", "mq"], check=True)  # fmt: skip
    unknown = txtop("--once", "--no-probes", "-i", lab.peer)
    assert unknown.returncode == 2 and "unknown interface" in unknown.stderr  # not ours
    send_from_peer(lab, 50)
    before = peer_tx_packets(lab)
    snap = once("--netns", lab.ns, "-i", lab.peer)  # no device of ours: no probes compiled
    after = peer_tx_packets(lab)
    name = f"{lab.ns}/{lab.peer}"
    assert snap["interfaces"] == [name]
    (dev,) = snap["devices"]
    link = ip_json("-n", lab.ns, "link", "show", "dev", lab.peer)[0]
    assert (dev["dev"], dev["netns"], dev["ifindex"]) == (name, lab.ns, link["ifindex"])
    assert dev["tx_queues"] == 4 and dev["root_qdisc"] == "mq"
    assert before <= dev["tx_packets"] <= after and dev["tx_packets"] >= 50
    qdiscs = {q["parent"]: q for q in json.loads(subprocess.run(
        ["tc", "-n", lab.ns, "-j", "-s", "qdisc", "show", "dev", lab.peer],
        capture_output=True, text=True, check=True).stdout) if q["kind"] != "mq"}  # fmt: skip
    queues = [q for q in snap["queues"] if q["dev"] == name]
    assert [q["queue"] for q in queues] == [0, 1, 2, 3]
    for q in queues:
        assert q["netns"] == lab.ns and q["bql"] is None  # veth: no BQL
        tc = qdiscs[f"1:{q['queue'] + 1}"]
        assert q["qdisc"]["kind"] == tc["kind"] and q["qdisc"]["parent"] == f"1:{q['queue'] + 1}"
        assert q["qdisc"]["packets"] <= tc["packets"]  # read before tc, counting up
        assert q["tx"]["source"] == "qdisc" and q["tx"]["packets_unit"] == "segment"
    assert sum(q["qdisc"]["packets"] for q in queues) >= 50
    probes = snap["probes"]
    assert probes["state"] == "off" and "other namespaces" in probes["reason"]
    assert "netns" in probes["unavailable"]
    # By the namespace file and by a PID inside it: the same devices.
    assert (
        once("--netns", f"/run/netns/{lab.ns}", "-i", lab.peer)["devices"][0]["ifindex"]
        == (link["ifindex"])
    )
    holder = subprocess.Popen(lab.ns_argv(["sleep", "60"]))
    try:
        by_pid = once("--no-probes", "--netns", str(holder.pid))
    finally:
        holder.kill()
        holder.wait(5)
    assert f"pid{holder.pid}/{lab.peer}" in by_pid["interfaces"]  # no -i: all of them
    # txtop's own reads are untouched: its sysfs still lists its own devices.
    assert os.path.exists(f"/sys/class/net/{lab.dev}") and not os.path.exists(
        f"/sys/class/net/{lab.peer}"
    )


@pytest.mark.root
def test_own_devices_beside_a_namespace_keep_their_probes(lab) -> None:
    """-i OURS --netns NS -i PEER: the probes run for our device, never for the peer (its
    ifindex may equal one of ours), and the JSON and probe line say so."""
    snap = once("-i", lab.dev, "--netns", lab.ns, "-i", lab.peer)
    assert snap["interfaces"] == [lab.dev, f"{lab.ns}/{lab.peer}"]
    probes = snap["probes"]
    assert probes["state"] in ("running", "unavailable"), probes
    assert "other namespaces" in probes["unavailable"]["netns"]
    for q in snap["queues"]:
        if q["netns"] is not None:
            assert q["tx"] is None or q["tx"]["source"] == "qdisc"
            assert q["bypass"] is None and q["latency_ns"] == {}


def test_a_netns_that_is_txtops_own_shows_its_own_devices() -> None:
    """txtop's own namespace named with --netns (here: by this test's pid) is not a second
    namespace: its devices keep their names (and would keep their probes)."""
    me = str(os.getpid())
    res = txtop("--once", "--format", "json", "--no-probes", "--netns", me, "-i", "lo", "-d", "0.2")
    assert res.returncode == 0, res.stderr
    snap = json.loads(res.stdout)
    assert snap["interfaces"] == ["lo"] and snap["devices"][0]["netns"] is None
    assert "netns" not in snap["probes"]["unavailable"]
    every = json.loads(txtop("--once", "--no-probes", "--netns", me, "-d", "0.2").stdout)
    assert "lo" in every["interfaces"] and all("/" not in n for n in every["interfaces"])
