"""Capture real RTM_NEWQDISC netlink messages from lab set-ups into tests/data/qdisc_dumps.json.

Run as root from the repo root: ``.venv/bin/python tests/data/capture_qdisc.py``.

For each set-up it builds a private veth lab (lab/netns.py: TX end here, peer in its own
netns), configures qdiscs with ``tc``, optionally pushes a bounded UDP burst to the lab peer so
counters and backlogs are non-zero, then dumps all qdiscs with pyroute2 (``IPRoute.get_qdiscs``)
and stores, for the lab device only, each message's raw netlink bytes as hex (re-parse them with
``pyroute2.netlink.rtnl.tcmsg.tcmsg(bytes).decode()``) together with ``tc -s qdisc show`` run
right after the dump, so tests can check the decoder against tc's own reading.
Traffic goes only to the lab peer address; every burst is bounded in count and time.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import time
from pathlib import Path

import pyroute2
from pyroute2 import IPRoute

from txtop.lab.netns import Lab

HERE = Path(__file__).resolve().parent
OUT = HERE / "qdisc_dumps.json"

# name -> (tc argument lists applied to the lab device "{dev}", packets to send, payload bytes)
SETUPS: dict[str, tuple[list[list[str]], int, int]] = {
    "veth_default": ([], 20, 200),
    "mq_pfifo_fast": (
        [["qdisc", "replace", "dev", "{dev}", "root", "handle", "1:", "mq"]]
        + [["qdisc", "replace", "dev", "{dev}", "parent", f"1:{n + 1:x}", "pfifo_fast"]
           for n in range(4)],
        200,
        300,
    ),
    "mq_tbf_on_tx0": (
        [["qdisc", "replace", "dev", "{dev}", "root", "handle", "1:", "mq"],
         ["qdisc", "replace", "dev", "{dev}", "parent", "1:1", "handle", "10:", "tbf", "rate",
          "1mbit", "burst", "4k", "limit", "100k"]],
        50,
        1000,
    ),
    # mqprio is not built into every kernel (not on the 6.18 dev VM): skipped when unknown.
    "mqprio_sw": (
        [["qdisc", "replace", "dev", "{dev}", "root", "handle", "2:", "mqprio", "num_tc", "2",
          "map", "0", "1", "queues", "2@0", "2@2", "hw", "0"]],
        40,
        100,
    ),
    "tbf_root_saturated": (
        [["qdisc", "replace", "dev", "{dev}", "root", "handle", "8001:", "tbf", "rate", "1mbit",
          "burst", "4k", "limit", "1mb"]],
        400,
        1000,
    ),
    "htb_root": (
        [["qdisc", "replace", "dev", "{dev}", "root", "handle", "1:", "htb", "default", "10"],
         ["class", "add", "dev", "{dev}", "parent", "1:", "classid", "1:10", "htb", "rate",
          "10mbit"]],
        30,
        500,
    ),
}  # fmt: skip


def burst(dst: str, count: int, payload: int, deadline_s: float = 3.0) -> int:
    """Send at most ``count`` UDP datagrams to ``dst`` (a lab peer) within ``deadline_s``."""
    sent = 0
    end = time.monotonic() + deadline_s
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)  # a full qdisc must not block the capture
        data = b"x" * payload
        for i in range(count):
            if time.monotonic() > end:
                break
            try:
                sock.sendto(data, (dst, 9000 + i % 64))
                sent += 1
            except BlockingIOError:
                time.sleep(0.001)
    return sent


def capture(name: str, cmds: list[list[str]], count: int, payload: int, idx: int) -> dict:
    with Lab(tag=f"cap{idx}", queues=4, subnet=240 + idx) as lab:
        applied = []
        for args in cmds:
            argv = ["tc", *[a.replace("{dev}", lab.dev) for a in args]]
            subprocess.run(argv, check=True, capture_output=True, timeout=10)
            applied.append(" ".join(argv))
        sent = burst(lab.peer_ip, count, payload) if count else 0
        with IPRoute() as ipr:
            msgs = [m for m in ipr.get_qdiscs() if m["index"] == lab.ifindex]
        tc_show = subprocess.run(
            ["tc", "-s", "qdisc", "show", "dev", lab.dev],
            check=True, capture_output=True, text=True, timeout=10,
        ).stdout  # fmt: skip
        raw = [bytes(m.data[m.offset : m.offset + m["header"]["length"]]).hex() for m in msgs]
        return {
            "name": name,
            "dev": lab.dev,
            "ifindex": lab.ifindex,
            "tx_queues": lab.queues,
            "tc_commands": applied,
            "udp_sent": sent,
            "udp_payload_bytes": payload,
            "messages_hex": raw,
            "tc_show_after": tc_show,
        }


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("capture_qdisc.py needs root (it builds a netns lab)")
    setups = []
    for idx, (name, (cmds, count, payload)) in enumerate(SETUPS.items()):
        try:
            setups.append(capture(name, cmds, count, payload, idx))
        except subprocess.CalledProcessError as exc:
            print(f"{name}: skipped ({(exc.stderr or b'').decode().strip()})")
    doc = {
        "captured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "kernel": platform.release(),
        "pyroute2": pyroute2.__version__,
        "how": __doc__.strip(),
        "setups": setups,
    }
    fd = os.open(OUT, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
    print(f"wrote {len(setups)} set-ups to {OUT}")


if __name__ == "__main__":
    main()
