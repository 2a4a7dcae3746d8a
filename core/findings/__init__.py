"""What is wrong on the TX path: a small rules engine over snapshots (pure, no I/O).

Each rule is a short function over a ``Context`` (the newest snapshot and the last
``WINDOW_S`` seconds of them, with their sampled packets) that yields a ``Finding``
(core/finding.py) per subject whose condition holds *now*; its docstring names the kernel
behaviour behind it. The ``FindingsEngine`` turns those instant conditions into what is shown:

- hysteresis in time: a condition must hold for ``RAISE_AFTER_S`` before its finding is raised,
  and stay gone for ``CLEAR_AFTER_S`` before it clears, so a finding does not flicker with
  each burst; a cleared finding stays listed (greyed) for ``KEEP_CLEARED_S``;
- hysteresis in value: a rule raises at one threshold and, once active, holds down to a lower
  one (``ctx.active(...)`` tells it which applies);
- severity goes up at once and down only after ``CLEAR_AFTER_S`` at the lower level.

Where findings come from: the live collector runs an engine on every snapshot it makes, so
``Snapshot.findings`` is in the JSON, recordings and replay; a recording made before findings
existed gets them recomputed once, in order, when it is loaded (``with_findings``); ``--once``
on live data evaluates its single interval without the time hysteresis (``evaluate_once``);
a whole-recording ``--once`` lists every finding of the recording (``summarize``).

txtop never changes a setting: ``command`` is what an operator would type.

The package: ``thresholds`` (the numbers), ``context`` (what rules see), the rules by
area (``rules_qdisc``, ``rules_bql``, ``rules_cpu``, ``rules_probes``) and ``engine``
(the rule order, the hysteresis, and the findings of recordings and ``--once``); every public
name is importable from here.
"""

from __future__ import annotations

from txtop.core.findings.context import (
    Context,
    QueueKey,
    mean,
)
from txtop.core.findings.engine import (
    RULE_IDS,
    RULES,
    FindingsEngine,
    conditions,
    evaluate_once,
    summarize,
    with_findings,
)
from txtop.core.findings.rules_bql import (
    bql_limits,
    bql_stalls,
    slow_completion,
)
from txtop.core.findings.rules_cpu import (
    softirq_concentration,
    softnet,
    tx_queue_concentration,
)
from txtop.core.findings.rules_probes import (
    probes,
)
from txtop.core.findings.rules_qdisc import (
    qdisc_drops,
    qdisc_wait,
    requeues,
    txqueuelen_drops,
)
from txtop.core.findings.thresholds import (
    BQL_AT_LIMIT_HOLD,
    BQL_AT_LIMIT_RAISE,
    BQL_MIN_TICKS,
    CLEAR_AFTER_S,
    CONC_HOLD_SHARE,
    CONC_MIN_CPUS,
    CONC_MIN_PACKETS,
    CONC_MIN_PPS,
    CONC_RAISE_SHARE,
    DQL_MAX_LIMIT,
    DROPS_CRIT_SHARE,
    DROPS_HOLD_PER_S,
    DROPS_RAISE_PER_S,
    KEEP_CLEARED_S,
    MAX_GAP_S,
    MIN_SAMPLES,
    OVERFLOW_KEYS,
    PROBE_LOSS_HOLD_PER_S,
    PROBE_LOSS_RAISE_PER_S,
    PROBE_SKIP_HOLD_PER_S,
    PROBE_SKIP_RAISE_PER_S,
    QDISC_WAIT_HOLD_NS,
    QDISC_WAIT_HOLD_SHARE,
    QDISC_WAIT_RAISE_NS,
    QDISC_WAIT_RAISE_SHARE,
    RAISE_AFTER_S,
    RATE_WINDOW_S,
    REQUEUES_HOLD_PER_S,
    REQUEUES_RAISE_PER_S,
    SERIES_MAX,
    SLOW_COMPLETION_HOLD_NS,
    SLOW_COMPLETION_RAISE_NS,
    SOFTIRQ_HOLD_SHARE,
    SOFTIRQ_MIN_PCT,
    SOFTIRQ_MIN_PER_S,
    SOFTIRQ_RAISE_SHARE,
    SOFTNET_DROPS_HOLD_PER_S,
    SOFTNET_DROPS_RAISE_PER_S,
    SQUEEZE_HOLD_PER_S,
    SQUEEZE_RAISE_PER_S,
    WINDOW_S,
)

__all__ = [
    "BQL_AT_LIMIT_HOLD",
    "BQL_AT_LIMIT_RAISE",
    "BQL_MIN_TICKS",
    "CLEAR_AFTER_S",
    "CONC_HOLD_SHARE",
    "CONC_MIN_CPUS",
    "CONC_MIN_PACKETS",
    "CONC_MIN_PPS",
    "CONC_RAISE_SHARE",
    "Context",
    "DQL_MAX_LIMIT",
    "DROPS_CRIT_SHARE",
    "DROPS_HOLD_PER_S",
    "DROPS_RAISE_PER_S",
    "FindingsEngine",
    "KEEP_CLEARED_S",
    "MAX_GAP_S",
    "MIN_SAMPLES",
    "OVERFLOW_KEYS",
    "PROBE_LOSS_HOLD_PER_S",
    "PROBE_LOSS_RAISE_PER_S",
    "PROBE_SKIP_HOLD_PER_S",
    "PROBE_SKIP_RAISE_PER_S",
    "QDISC_WAIT_HOLD_NS",
    "QDISC_WAIT_HOLD_SHARE",
    "QDISC_WAIT_RAISE_NS",
    "QDISC_WAIT_RAISE_SHARE",
    "QueueKey",
    "RAISE_AFTER_S",
    "RATE_WINDOW_S",
    "REQUEUES_HOLD_PER_S",
    "REQUEUES_RAISE_PER_S",
    "RULES",
    "RULE_IDS",
    "SERIES_MAX",
    "SLOW_COMPLETION_HOLD_NS",
    "SLOW_COMPLETION_RAISE_NS",
    "SOFTIRQ_HOLD_SHARE",
    "SOFTIRQ_MIN_PCT",
    "SOFTIRQ_MIN_PER_S",
    "SOFTIRQ_RAISE_SHARE",
    "SOFTNET_DROPS_HOLD_PER_S",
    "SOFTNET_DROPS_RAISE_PER_S",
    "SQUEEZE_HOLD_PER_S",
    "SQUEEZE_RAISE_PER_S",
    "WINDOW_S",
    "bql_limits",
    "bql_stalls",
    "conditions",
    "evaluate_once",
    "mean",
    "probes",
    "qdisc_drops",
    "qdisc_wait",
    "requeues",
    "slow_completion",
    "softirq_concentration",
    "softnet",
    "summarize",
    "tx_queue_concentration",
    "txqueuelen_drops",
    "with_findings",
]
