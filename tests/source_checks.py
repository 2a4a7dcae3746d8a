"""Invariants every snapshot from the live collector must satisfy, whatever the kernel did.

Shared by tests/test_churn.py, tests/test_fuzz_sources.py and the soak test. Each check raises
AssertionError naming the offending path, so a failure says where, not just that.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from txtop.core.model import Snapshot

# Field names that hold a rate or a share; every one must be finite and >= 0 (None allowed).
_RATE_NAMES = frozenset({"pps", "bps", "tx_pps", "tx_bps"})


def _is_rate(key: str) -> bool:
    return key in _RATE_NAMES or key.endswith("_per_s") or key.endswith("_pct")


def walk(obj: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """(path, key, value) for every dict entry in a JSON-like tree."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            sub = f"{path}.{key}"
            yield sub, str(key), value
            yield from walk(value, sub)
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from walk(value, f"{path}[{i}]")


def rate_fields(snap: Snapshot) -> list[tuple[str, float]]:
    return [(p, v) for p, k, v in walk(snap.to_dict()) if _is_rate(k) and v is not None]


def check_snapshot(snap: Snapshot, contiguous_queues: bool = True) -> None:
    """The invariants; ``contiguous_queues`` only holds for real kernels (fake trees may
    number their tx-N directories any way they like)."""
    fields = rate_fields(snap)
    assert fields or not snap.devices, "no rate fields found: the walk is broken"
    for path, value in fields:
        assert isinstance(value, (int, float)), f"{path} = {value!r} is not a number"
        assert math.isfinite(value) and value >= 0, f"{path} = {value!r}"
        if path.endswith("_pct"):
            assert value <= 100.0, f"{path} = {value!r} > 100"
    assert snap.interval_s >= 0
    names = [d.dev for d in snap.devices]
    assert tuple(names) == snap.interfaces, (names, snap.interfaces)
    assert len(set(names)) == len(names), f"duplicate devices {names}"
    per_dev: dict[str, list[int]] = {}
    for q in snap.queues:
        assert q.dev in snap.interfaces, f"queue row of {q.dev} not in {snap.interfaces}"
        per_dev.setdefault(q.dev, []).append(q.queue)
    for dev in snap.devices:
        queues = per_dev.get(dev.dev, [])
        assert len(queues) == dev.tx_queues, (dev.dev, queues, dev.tx_queues)
        assert queues == sorted(set(queues)), (dev.dev, queues)
        if contiguous_queues:
            assert queues == list(range(len(queues))), (dev.dev, queues)
        assert all(q.ifindex == dev.ifindex for q in snap.queues if q.dev == dev.dev)
    cpus = [c.cpu for c in snap.cpus]
    assert cpus == sorted(set(cpus)) and all(c >= 0 for c in cpus), cpus
    assert all("\n" not in str(v) for v in snap.probes.unavailable.values())
    assert Snapshot.from_dict(snap.to_dict()) == snap  # the JSON contract still round-trips


def queues_of(snap: Snapshot, dev: str) -> list[int]:
    return [q.queue for q in snap.queues if q.dev == dev]
