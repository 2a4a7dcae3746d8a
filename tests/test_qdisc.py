"""Qdisc decoding and queue mapping from real netlink messages captured in lab set-ups.

tests/data/qdisc_dumps.json holds raw RTM_NEWQDISC bytes (tests/data/capture_qdisc.py); they are
re-parsed here with pyroute2's own tcmsg class, exactly as the live reader receives them.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyroute2.netlink.rtnl.tcmsg import tcmsg

from txtop.core.merge import map_qdiscs_to_queues, root_qdisc
from txtop.core.readings import QdiscInfo, format_handle, format_parent
from txtop.probes.readers.qdisc import decode_qdisc, decode_qdiscs

ROOT = 0xFFFFFFFF


@pytest.fixture(scope="module")
def dumps(data_dir_module: Path) -> dict[str, dict[str, Any]]:
    doc = json.loads((data_dir_module / "qdisc_dumps.json").read_text())
    return {s["name"]: s for s in doc["setups"]}


@pytest.fixture(scope="module")
def data_dir_module() -> Path:
    return Path(__file__).parent / "data"


def messages(setup: dict[str, Any]) -> list[tcmsg]:
    out = []
    for raw in setup["messages_hex"]:
        msg = tcmsg(bytes.fromhex(raw))
        msg.decode()
        out.append(msg)
    return out


def tc_counters(tc_text: str) -> list[tuple[int, int, int, int, int, int, int]]:
    """(bytes, pkts, dropped, overlimits, requeues, backlog_b, backlog_p) per qdisc in tc -s."""
    pat = re.compile(
        r"Sent (\d+) bytes (\d+) pkt \(dropped (\d+), overlimits (\d+) requeues (\d+)\)\s*\n"
        r"\s*backlog (\d+)b (\d+)p"
    )
    return [tuple(int(x) for x in m.groups()) for m in pat.finditer(tc_text)]  # type: ignore[misc]


def as_tc(q: QdiscInfo) -> tuple[int, int, int, int, int, int, int]:
    return (q.bytes, q.packets, q.drops, q.overlimits, q.requeues, q.backlog_bytes, q.qlen)


def test_handles_print_like_tc() -> None:
    assert format_handle(0) == "0:"
    assert format_handle(0x80010000) == "8001:"
    assert format_handle(0x00010003) == "1:3"
    assert format_parent(ROOT) == "root"
    assert format_parent(0) == "none"
    assert format_parent(0x00010003) == "1:3"
    assert format_parent(0x00010000) == "1:"
    assert format_parent(0x00000005) == ":5"
    assert format_parent(0xFFFFFFF1) == "ffff:fff1"  # ingress/clsact


def test_veth_default_noqueue(dumps) -> None:
    setup = dumps["veth_default"]
    qdiscs = decode_qdiscs(messages(setup))
    assert [(q.kind, q.handle_str, q.parent_str) for q in qdiscs] == [("noqueue", "0:", "root")]
    mapped = map_qdiscs_to_queues(qdiscs, setup["ifindex"], 4)
    assert sorted(mapped) == [0, 1, 2, 3]
    assert all(s.kind == "noqueue" and not s.per_queue for s in mapped.values())


def test_mq_children_map_to_their_queue(dumps) -> None:
    setup = dumps["mq_pfifo_fast"]
    qdiscs = decode_qdiscs(messages(setup))
    mapped = map_qdiscs_to_queues(qdiscs, setup["ifindex"], 4)
    assert {n: (s.kind, s.handle, s.parent) for n, s in mapped.items()} == {
        0: ("pfifo_fast", "801c:", "1:1"),
        1: ("pfifo_fast", "801d:", "1:2"),
        2: ("pfifo_fast", "801e:", "1:3"),
        3: ("pfifo_fast", "801f:", "1:4"),
    }
    assert all(s.per_queue for s in mapped.values())
    assert {n: (s.bytes, s.packets) for n, s in mapped.items()} == {
        0: (13338, 39),
        1: (12696, 38),
        2: (18810, 55),
        3: (23598, 69),
    }
    root = root_qdisc(qdiscs, setup["ifindex"])
    assert root is not None and root.kind == "mq"
    # mq's own counters are the sum of its children (sch_mq.c mq_dump).
    assert root.packets == sum(s.packets for s in mapped.values()) == 201
    # Traffic had stopped: tc, run right after the dump, printed the same numbers.
    assert sorted(tc_counters(setup["tc_show_after"])) == sorted(as_tc(q) for q in qdiscs)


def test_mq_with_tbf_child_backlog(dumps) -> None:
    setup = dumps["mq_tbf_on_tx0"]
    qdiscs = decode_qdiscs(messages(setup))
    mapped = map_qdiscs_to_queues(qdiscs, setup["ifindex"], 4)
    tx0 = mapped[0]
    assert (tx0.kind, tx0.handle, tx0.parent, tx0.per_queue) == ("tbf", "10:", "1:1", True)
    assert (tx0.backlog_bytes, tx0.backlog_pkts, tx0.overlimits) == (9378, 9, 11)
    assert [mapped[n].kind for n in (1, 2, 3)] == ["pfifo_fast"] * 3
    assert [mapped[n].handle for n in (1, 2, 3)] == ["0:"] * 3  # mq's default children


def test_single_root_tbf_serves_every_queue(dumps) -> None:
    setup = dumps["tbf_root_saturated"]
    qdiscs = decode_qdiscs(messages(setup))
    (tbf,) = qdiscs
    assert (tbf.kind, tbf.handle_str, tbf.parent_str) == ("tbf", "8001:", "root")
    assert (tbf.qlen, tbf.backlog_bytes, tbf.bytes, tbf.packets) == (94, 96996, 39638, 39)
    mapped = map_qdiscs_to_queues(qdiscs, setup["ifindex"], 4)
    assert set(mapped) == {0, 1, 2, 3}
    assert all(s is mapped[0] and not s.per_queue for s in mapped.values())
    # tc read after the dump: counters can only have grown.
    ((tc_bytes, tc_pkts, *_),) = tc_counters(setup["tc_show_after"])
    assert tc_bytes >= tbf.bytes and tc_pkts >= tbf.packets


def test_htb_root(dumps) -> None:
    setup = dumps["htb_root"]
    (htb,) = decode_qdiscs(messages(setup))
    assert (htb.kind, htb.handle_str, htb.backlog_bytes, htb.qlen) == ("htb", "1:", 13008, 24)


def test_other_devices_and_missing_root_ignored(dumps) -> None:
    setup = dumps["mq_pfifo_fast"]
    qdiscs = decode_qdiscs(messages(setup))
    assert map_qdiscs_to_queues(qdiscs, setup["ifindex"] + 1000, 4) == {}
    children_only = [q for q in qdiscs if q.parent != ROOT]
    assert map_qdiscs_to_queues(children_only, setup["ifindex"], 4) == {}
    # Queues beyond the children mq has are left out rather than invented.
    assert sorted(map_qdiscs_to_queues(qdiscs, setup["ifindex"], 6)) == [0, 1, 2, 3]


def test_dict_form_decodes_the_same(dumps) -> None:
    msgs = messages(dumps["mq_tbf_on_tx0"])
    as_dicts = json.loads(json.dumps([m.dump() for m in msgs]))
    assert decode_qdiscs(as_dicts) == decode_qdiscs(msgs)


def test_legacy_tca_stats_fallback(dumps) -> None:
    (msg,) = json.loads(json.dumps([m.dump() for m in messages(dumps["tbf_root_saturated"])]))
    legacy = copy.deepcopy(msg)
    legacy["attrs"] = [a for a in legacy["attrs"] if a[0] != "TCA_STATS2"]
    full, old = decode_qdisc(msg), decode_qdisc(legacy)
    assert (old.bytes, old.packets, old.qlen, old.backlog_bytes) == (
        full.bytes,
        full.packets,
        full.qlen,
        full.backlog_bytes,
    )
    assert old.requeues == 0
    bare = dict(msg, attrs=[a for a in msg["attrs"] if a[0] not in ("TCA_STATS2", "TCA_STATS")])
    with pytest.raises(ValueError, match="counters"):
        decode_qdisc(bare)


def test_non_qdisc_messages_skipped() -> None:
    assert decode_qdiscs([{"event": "NLMSG_DONE"}, {"event": "NLMSG_ERROR"}]) == []


_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 2**33), st.text(max_size=12)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_attr_names = st.sampled_from(
    ["TCA_KIND", "TCA_STATS2", "TCA_STATS", "TCA_STATS_BASIC", "TCA_STATS_QUEUE", "X"]
)


# Fuzz policy: any malformed message raises ValueError, never another exception.
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "index": _json,
            "handle": _json,
            "parent": _json,
            "attrs": st.one_of(
                st.lists(st.tuples(_attr_names, _json).map(list), max_size=5), _json
            ),
            "event": st.sampled_from(["RTM_NEWQDISC", "X"]),
        },
    )
)
def test_fuzz_decode_qdisc(msg: dict[str, Any]) -> None:
    try:
        decode_qdiscs([msg])
    except ValueError:
        pass
