"""--netns (issue 17): devices of another network namespace, read there (sysfs through a
private sysfs mount in a thread that entered it, netlink from a socket made there), shown as
NS/DEV, with the BPF probes' data keyed by (namespace inode, ifindex); bad namespaces are one
line and exit 2.

Unit tests on the argument forms (the key mapping: tests/test_netns_keys.py); root tests
against a lab's peer inside its namespace, checked against `ip -n NS -s link` and
`tc -n NS qdisc`, beside a device of ours with the peer's name and ifindex."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time

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
    snap = once("--no-probes", "--netns", lab.ns, "-i", lab.peer)  # the probes: below
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
    assert probes["state"] == "off" and "netns" not in probes["unavailable"]
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


@contextlib.contextmanager
def twin_of_peer(lab):
    """A device of ours with the peer's name and, where free here, its ifindex: a veth pair
    left down (it sends nothing), removed afterwards."""
    index = ip_json("-n", lab.ns, "link", "show", "dev", lab.peer)[0]["ifindex"]
    other = f"{lab.peer[:11]}tw"
    base = ["ip", "link", "add", lab.peer]
    tail = ["type", "veth", "peer", "name", other]
    made = subprocess.run([*base, "index", str(index), *tail], capture_output=True)
    if made.returncode != 0:  # that ifindex is taken here: the same name only
        subprocess.run([*base, *tail], check=True)
    try:
        yield ip_json("link", "show", "dev", lab.peer)[0]["ifindex"]
    finally:
        subprocess.run(["ip", "link", "del", lab.peer], check=False)


def tc_queue_packets(lab) -> dict[int, int]:
    """The peer's mq children's packets per TX queue, from `tc -n NS -s qdisc`."""
    out = subprocess.run(["tc", "-n", lab.ns, "-j", "-s", "qdisc", "show", "dev", lab.peer],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return {
        int(q["parent"].split(":")[1]) - 1: int(q["packets"])
        for q in json.loads(out)
        if q["kind"] != "mq" and q.get("parent", "").startswith("1:")
    }


@pytest.mark.root
def test_probe_data_for_a_device_inside_its_namespace(lab) -> None:
    """The probes count and sample the peer's packets by (namespace, ifindex): its queues'
    probe counters match the namespace's `tc -s` and `ip -s link`, its sampled packets are
    NS/PEER, and our device with the peer's name (and ifindex) gets none of them."""
    from txtop.probes.bpf.tracer import Tracer
    from txtop.probes.collector import Collector
    from txtop.probes.readers.netns import open_readers

    subprocess.run(["tc", "-n", lab.ns, "qdisc", "replace", "dev", lab.peer, "root", "handle",
                    "1:", "mq"], check=True)  # fmt: skip
    name = f"{lab.ns}/{lab.peer}"
    with twin_of_peer(lab) as twin_index:
        readers = open_readers([lab.ns], [(lab.ns, lab.peer)]).readers
        (reader,) = readers
        (peer_dev,) = reader.read().devices
        # Ours: the twin (the peer's name), and the device with the peer's ifindex when the
        # twin could not take it (read and traced only; nothing is sent on it).
        same_index = [x["ifname"] for x in ip_json("link", "show")
                      if x["ifindex"] == peer_dev.ifindex and x["ifname"] != lab.peer]  # fmt: skip
        ours = [lab.peer, *same_index]
        tracer = Tracer(
            sorted({twin_index, peer_dev.ifindex}),
            sample_every=1,
            max_samples_per_s=100_000,
            trace_duty=1.0,  # exact counts: attached all the time
            devices=[(reader.ino, peer_dev.ifindex)],
        )
        collector = Collector(ours, tracer=tracer, namespaces=readers)
        try:
            if not collector.start_tracer():
                pytest.skip(f"probes unavailable: {collector.probe_status.reason}")
            collector.collect()
            tc0, link0 = tc_queue_packets(lab), peer_tx_packets(lab)
            send_from_peer(lab, 400)
            packets: list = []
            deadline = time.monotonic() + 20
            while True:
                collector.poll(0.2)
                snap = collector.collect()
                packets += snap.packets
                rows = {(q.dev, q.queue): q for q in snap.queues}
                probed = sum(probe_packets(q) for (dev, _), q in rows.items() if dev == name)
                if probed >= 400 or time.monotonic() > deadline:
                    break
            tc1, link1 = tc_queue_packets(lab), peer_tx_packets(lab)
        finally:
            collector.close()
    assert "netns" not in snap.probes.unavailable, snap.probes.unavailable
    assert snap.interfaces == (*ours, name)
    for q in range(4):
        row = rows[name, q]
        assert row.netns == lab.ns and row.tx is not None and row.tx.skbs_per_s is not None, row
        sent = tc1.get(q, 0) - tc0.get(q, 0)  # UDP of 200 bytes: a segment is an skb
        assert abs(probe_packets(row) - sent) <= 3, (q, row.tx, sent)
    assert abs(probed - (link1 - link0)) <= 3, (probed, link1 - link0)
    assert sum(tc1.values()) - sum(tc0.values()) >= 400
    twin = [q for (dev, _), q in rows.items() if dev == lab.peer]
    assert twin and all(probe_packets(q) == 0 and q.latency_ns == {} for q in twin)
    mine = [p for p in packets if p.dev == name]
    assert len(mine) >= 300, len(packets)
    assert all(p.netns == lab.ns and p.ifindex == peer_dev.ifindex for p in mine)
    assert all(p.netns_inode == reader.ino for p in mine)
    # The peer's datagrams (to our end, port 9) are never one of our devices' packets.
    for p in packets:
        if p.flow is not None and p.flow.daddr == lab.local_ip and p.flow.dport == 9:
            assert p.dev == name, p
        assert p.dev != lab.peer, p
    assert any(rows[name, q].latency_ns for q in range(4))


def probe_packets(row) -> int:
    """A queue row's packets as the probes counted them (skbs; between trace windows an mq
    child's exact counters replace the rates, and the probes' count is kept as gso_segs: for
    these UDP datagrams one segment each)."""
    tx = row.tx
    if tx is None or tx.skbs_per_s is None:
        return 0
    return tx.packets if tx.source == "probe" else tx.gso_segs


@pytest.mark.root
def test_own_devices_beside_a_namespace_both_probed(lab) -> None:
    """-i OURS --netns NS -i PEER on the command line: the probes run for both, the JSON
    says nothing is missing for the namespace and its rows carry probe data."""
    stop = threading.Event()

    def keep_sending() -> None:
        while not stop.is_set():
            send_from_peer(lab, 200)
            stop.wait(0.1)

    sender = threading.Thread(target=keep_sending, daemon=True)
    sender.start()
    try:
        snap = once("--trace-duty", "100", "-i", lab.dev, "--netns", lab.ns, "-i", lab.peer)
    finally:
        stop.set()
        sender.join(30)
    assert snap["interfaces"] == [lab.dev, f"{lab.ns}/{lab.peer}"]
    probes = snap["probes"]
    if probes["state"] != "running":
        pytest.skip(f"probes: {probes['reason']}")
    assert "netns" not in probes["unavailable"]
    ns_rows = [q for q in snap["queues"] if q["netns"] is not None]
    assert ns_rows and all(q["tx"]["source"] == "probe" for q in ns_rows), ns_rows
    assert sum(q["tx"]["packets"] for q in ns_rows) > 0
    for p in snap["packets"]:
        assert p["dev"] in (lab.dev, f"{lab.ns}/{lab.peer}"), p
        assert (p["netns"] is None) == (p["dev"] == lab.dev)


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
