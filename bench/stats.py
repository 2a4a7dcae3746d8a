"""The statistics every benchmark shares (pure; tests/test_bench.py checks them): median with
min/max over rounds, the order of the sides in interleaved rounds, ratios of B to A taken
within the same round, a least-squares slope, the JSON line bench/run ends with, and the
``median [min..max] (n=N)`` cells of the RESULTS.md tables."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from typing import Any

Summary = dict[str, Any]  # {"median", "min", "max", "n"}


def summary(values: Sequence[float], digits: int = 4) -> Summary:
    """Median, min and max of ``values`` (empty -> None fields)."""
    vals = [float(v) for v in values]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {
        "median": round(statistics.median(vals), digits),
        "min": round(min(vals), digits),
        "max": round(max(vals), digits),
        "n": len(vals),
    }


def rotate(sides: Sequence[str], round_no: int) -> list[str]:
    """The order of the sides in round ``round_no``: rotated so each goes first in turn."""
    k = round_no % len(sides)
    return list(sides[k:]) + list(sides[:k])


def round_ratios(base: Sequence[float], other: Sequence[float | None]) -> list[float]:
    """Per-round ratios other[i] / base[i]; rounds where either side is missing are skipped."""
    out = []
    for a, b in zip(base, other, strict=True):
        if a and b is not None and a > 0:
            out.append(b / a)
    return out


def ratio_summary(
    base: Sequence[float], other: Sequence[float | None], rounds: Sequence[int] | None = None
) -> Summary:
    """summary() of the per-round ratios other / base, over ``rounds`` only when given."""
    if rounds is not None:
        base = [base[i] for i in rounds]
        other = [other[i] for i in rounds]
    return summary(round_ratios(base, other))


def slope_per_min(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, in value per minute."""
    if len(points) < 3:
        return None
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return 60.0 * sxy / sxx


def last_json_line(text: str) -> dict[str, Any] | None:
    """The last line of ``text`` that is a JSON object (what bench/run ends with)."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj
    return None


def dig(d: Any, *path: str) -> Any:
    """d[path[0]][path[1]]... or None as soon as a level is missing or not a dict."""
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def cell(d: Summary | None, digits: int = 3) -> str:
    """'median [min..max] (n=N)' of a summary() dict, for a report table ('n/a' when empty)."""
    if not d or d.get("median") is None:
        return "n/a"
    f = f"{{:.{digits}f}}"
    return f"{f.format(d['median'])} [{f.format(d['min'])}..{f.format(d['max'])}] (n={d['n']})"
