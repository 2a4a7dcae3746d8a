"""FilterSpec: parsing, CLI flags, matching, round trip, kernel push-down."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from txtop.core.filters import EMPTY_FILTER, FilterError, FilterSpec, FlowFilter, KernelFilter
from txtop.core.model import FlowInfo, PacketOwner, PacketTrace


def pkt(**kw: object) -> PacketTrace:
    base: dict[str, object] = dict(
        pid=1234,
        tid=1236,
        comm="iperf3",
        dev="eth0",
        ifindex=2,
        queue=1,
        len=1514,
        gso_segs=1,
        stages={"sendto": 1, "free": 2},
        cpus={},
        track="complete",
        protocol=0x0800,
        l4_proto=17,
        sport=40000,
        dport=5201,
    )
    base.update(kw)
    return PacketTrace(**base)  # type: ignore[arg-type]


def test_parse_issue_example() -> None:
    spec = FilterSpec.parse("dev=eth0 comm=iperf port=5201")
    assert spec == FilterSpec(devs=("eth0",), comms=("iperf",), ports=((5201, 5201),))
    assert not spec.matches(pkt())  # comm is iperf3, exact match required without a glob
    assert FilterSpec.parse("dev=eth0 comm=iperf* port=5201").matches(pkt())


def test_empty_filter_matches_everything() -> None:
    assert FilterSpec.parse("  ") == EMPTY_FILTER
    assert EMPTY_FILTER.empty
    assert EMPTY_FILTER.matches(pkt(sport=None, dport=None, l4_proto=None))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("dev=eth0", True),
        ("iface=eth1", False),
        ("i=eth*", True),
        ("dev=veth*,eth0", True),
        ("pid=1234", True),
        ("pid=1236", True),  # thread id
        ("pid=99", False),
        ("udp", True),
        ("tcp", False),
        ("proto=tcp,udp", True),
        ("proto=17", True),
        ("proto=ipv4", True),
        ("proto=ip6", False),
        ("port=40000", True),  # source port
        ("port=5200-5202", True),
        ("port=1-1000", False),
        ("udp port=5201 dev=eth0 comm=iperf3 pid=1234", True),
        ("udp port=5201 dev=eth1", False),  # AND across keys
    ],
)
def test_matching(text: str, match: bool) -> None:
    assert FilterSpec.parse(text).matches(pkt()) is match


def test_port_filter_excludes_packets_without_ports() -> None:
    assert not FilterSpec.parse("port=53").matches(pkt(sport=None, dport=None))


def test_long_comm_is_compared_on_15_chars() -> None:
    spec = FilterSpec.parse("comm=averyveryverylongname")
    assert spec.comms == ("averyveryverylo",)
    assert spec.matches(pkt(comm="averyveryverylo"))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("foo", "key=value"),
        ("colour=red", "unknown filter key"),
        ("pid=abc", "number"),
        ("pid=0", "positive"),
        ("port=70000", "0-65535"),
        ("port=9-3", "reversed"),
        ("proto=quic", "unknown protocol"),
        ("dev=", "needs a value"),
        ("dev=a/b", "interface"),
    ],
)
def test_parse_errors_say_why(text: str, needle: str) -> None:
    with pytest.raises(FilterError, match=needle):
        FilterSpec.parse(text)


def test_from_cli_accepts_append_lists_and_commas() -> None:
    spec = FilterSpec.from_cli(iface=["eth0,eth1"], pid=[12, "13"], comm="nginx", port=["80", 443])
    assert spec.devs == ("eth0", "eth1")
    assert spec.pids == (12, 13)
    assert spec.comms == ("nginx",)
    assert spec.ports == ((80, 80), (443, 443))
    assert FilterSpec.from_cli() == EMPTY_FILTER
    with pytest.raises(FilterError):
        FilterSpec.from_cli(port="http")


def test_to_dict_lists_used_fields() -> None:
    spec = FilterSpec.parse("dev=eth0 port=1-2,5")
    assert spec.to_dict() == {"dev": ["eth0"], "port": ["1-2", "5"]}


_name = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)


@given(
    devs=st.lists(_name, max_size=3),
    comms=st.lists(_name, max_size=3),
    pids=st.lists(st.integers(1, 2**22), max_size=3),
    protos=st.lists(st.sampled_from(["tcp", "udp", "ipv6", "arp", "6", "200"]), max_size=3),
    ports=st.lists(st.tuples(st.integers(0, 65535), st.integers(0, 65535)), max_size=3),
)
def test_text_round_trip(
    devs: list[str],
    comms: list[str],
    pids: list[int],
    protos: list[str],
    ports: list[tuple[int, int]],
) -> None:
    spec = FilterSpec.from_cli(
        iface=devs,
        comm=comms,
        pid=pids,
        proto=protos,
        port=[f"{min(a, b)}-{max(a, b)}" for a, b in ports],
    )
    assert FilterSpec.parse(spec.to_string()) == spec


def test_kernel_filter_pushes_ifindexes_and_pids() -> None:
    names = {"lo": 1, "eth0": 2, "veth0": 7, "veth1": 8}
    assert FilterSpec.parse("comm=x").kernel_filter(names) == KernelFilter()
    kf = FilterSpec.parse("dev=eth0,veth* pid=5").kernel_filter(names)
    assert kf == KernelFilter(ifindexes=frozenset({2, 7, 8}), pids=frozenset({5}))


def test_kernel_filter_never_pushes_an_unresolved_device() -> None:
    kf = FilterSpec.parse("dev=eth0,missing0").kernel_filter({"eth0": 2})
    assert kf.ifindexes is None
    assert kf.unresolved == ("missing0",)


# ---- exact matching on the packet's own flow and owner (issue 12) -------------------------------


def flow_pkt(**flow: object) -> PacketTrace:
    """A TCP segment sent from softirq, named by its socket: pid from the owner, ports from the
    headers."""
    f = dict(l3="ipv4", saddr="10.0.0.1", daddr="10.0.0.2", l4_proto=6, sport=43512, dport=5201)
    f.update(flow)
    info = FlowInfo(**f)  # type: ignore[arg-type]
    return pkt(
        pid=77,
        tid=78,
        comm="nginx",
        syscall=None,
        l4_proto=info.l4_proto,
        sport=info.sport,
        dport=info.dport,
        protocol=0x86DD if info.l3 == "ipv6" else 0x0800,
        flow=info,
        owner=PacketOwner(77, 78, "nginx", "/system.slice/nginx.service", "socket"),
    )


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("tcp", True),
        ("udp", False),
        ("proto=tcp port=5201", True),
        ("proto=tcp port=5202", False),
        ("port=43512", True),  # the source port counts too
        ("host=10.0.0.0/24", True),
        ("host=10.0.0.2", True),  # a bare address is a /32
        ("host=10.0.1.0/24", False),
        ("host=fd00::/8", False),  # another family never matches
        ("ipv4", True),
        ("ipv6", False),
        ("vlan", False),
        ("comm=nginx pid=77", True),  # the socket's owner, not a syscall, names it
        ("pid=78", True),
    ],
)
def test_flow_and_owner_keys_match_exactly(text: str, match: bool) -> None:
    assert FilterSpec.parse(text).matches(flow_pkt()) is match


def test_ipv6_vlan_and_unknown_flows() -> None:
    v6 = flow_pkt(l3="ipv6", saddr="fd00:253::1", daddr="fd00:253::2", vlan=100)
    assert FilterSpec.parse("host=fd00:253::/32 ipv6 vlan").matches(v6)
    assert not FilterSpec.parse("host=10.0.0.0/8").matches(v6)
    arp = pkt(l4_proto=None, sport=None, dport=None, protocol=0x0806, flow=FlowInfo(l3="arp"))
    assert FilterSpec.parse("arp").matches(arp) and not FilterSpec.parse("host=0.0.0.0/0").matches(
        arp
    )
    # no headers read (no BTF): an address filter cannot match, a sendto() port still does
    bare = pkt(l4_proto=None, sport=None, dport=5201, flow=None)
    assert not FilterSpec.parse("host=10.0.0.0/8").matches(bare)
    assert FilterSpec.parse("port=5201").matches(bare) and not FilterSpec.parse("udp").matches(bare)


def test_host_parsing_round_trip_and_errors() -> None:
    spec = FilterSpec.parse("host=10.1.2.3/8,fd00::1 net=192.168.0.1")
    assert spec.hosts == ("10.0.0.0/8", "fd00::1/128", "192.168.0.1/32")
    assert FilterSpec.parse(spec.to_string()) == spec
    assert spec.to_dict() == {"host": ["10.0.0.0/8", "fd00::1/128", "192.168.0.1/32"]}
    assert FilterSpec.from_cli(host=["10.0.0.0/8,10.0.0.0/8"]).hosts == ("10.0.0.0/8",)
    with pytest.raises(FilterError, match="CIDR"):
        FilterSpec.parse("host=10.0.0.0/33")
    with pytest.raises(FilterError, match="keys: dev comm pid proto port host"):
        FilterSpec.parse("nope=1")


def test_kernel_filter_pushes_protocols_ports_and_hosts() -> None:
    kf = FilterSpec.parse("proto=tcp,ipv6,47 port=5201,6000-6010 host=10.0.0.0/8").kernel_filter({})
    assert kf.flow == FlowFilter(
        l4=frozenset({6, 47}),
        l3=frozenset({"ipv6"}),
        ports=((5201, 5201), (6000, 6010)),
        hosts=(ipaddress.ip_network("10.0.0.0/8"),),
    )
    assert FilterSpec.parse("dev=eth0 comm=x").kernel_filter({"eth0": 2}).flow is None
    assert FlowFilter().empty and not kf.flow.empty
