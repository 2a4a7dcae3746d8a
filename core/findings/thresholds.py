"""The findings engine's numbers: its time hysteresis and each rule's thresholds (raise, and
the lower hold once active), each with the reason for its value."""

# ---- time hysteresis ------------------------------------------------------------------------

# A condition must hold this long before its finding is raised: one tick that straddles a
# burst is not a finding. Two ticks at the default 1 s refresh.
RAISE_AFTER_S = 2.0
# ...and be gone this long before the finding clears: a queue that drops with every other burst
# keeps one finding instead of one that blinks.
CLEAR_AFTER_S = 5.0
# A cleared finding stays listed (greyed) this long: long enough to notice it happened.
KEEP_CLEARED_S = 60.0
# Snapshots kept for windowed rules, and the span rates are averaged over (a few ticks: a
# single interval's rate is too jumpy to hold a threshold against).
WINDOW_S = 10.0
RATE_WINDOW_S = 5.0
# The window keeps a snapshot at most every WINDOW_SPACING_S (and always the newest): rates come
# from cumulative counters at the window's ends and series use at most SERIES_MAX points, so
# denser snapshots add nothing but memory (at 10 Hz a 10 s window held 100 whole snapshots;
# now at most 41, whatever the refresh).
WINDOW_SPACING_S = 0.25
# Gauges and per-tick rates over the window are averaged from at most this many snapshots
# spread over it (counters use the first and the last): bounded work per tick at any refresh.
SERIES_MAX = 10
# A gap this long (or time going backwards: a seek, another recording) starts over.
MAX_GAP_S = 120.0

# ---- thresholds (raise / hold once active), each with why ---------------------------------------

# A qdisc drop is a packet the sender already built and the stack threw away: one a second,
# sustained over the rate window, is a policy or sizing problem, not noise. Crit when it is
# a real share of what the queue carries.
DROPS_RAISE_PER_S = 1.0
DROPS_HOLD_PER_S = 0.2
DROPS_CRIT_SHARE = 0.05
# Percentiles from fewer sampled packets than this are noise (p99 of 20 is the maximum).
MIN_SAMPLES = 20
# Qdisc wait that dominates: above a millisecond a packet is queued behind others (below it is
# CPU scheduling of the NET_TX softirq), and more than half of its lifetime in the qdisc.
QDISC_WAIT_RAISE_NS = 1_000_000
QDISC_WAIT_HOLD_NS = 500_000
QDISC_WAIT_RAISE_SHARE = 0.5
QDISC_WAIT_HOLD_SHARE = 0.4
# BQL: bytes in flight at the limit most of the time means the driver queue is the bottleneck
# (the rest waits in the qdisc); needs a few ticks of evidence.
BQL_AT_LIMIT_RAISE = 0.5
BQL_AT_LIMIT_HOLD = 0.3
BQL_MIN_TICKS = 3
# lib/dynamic_queue_limits.h DQL_MAX_LIMIT: limit_max's default. Below it, someone capped it.
DQL_MAX_LIMIT = (0xFFFFFFFF // 2) - (0xFFFFFFFF // 16)
# Requeues: the odd one happens when two CPUs race for a queue's lock; tens a second mean the
# driver keeps handing packets back (NETDEV_TX_BUSY: ring full, queue stopped late).
REQUEUES_RAISE_PER_S = 10.0
REQUEUES_HOLD_PER_S = 2.0
# One TX queue of several carrying (nearly) everything while several CPUs send: XPS or the
# flow hash is not spreading. Below CONC_MIN_PPS a device is too quiet to care.
CONC_MIN_PPS = 100.0
CONC_RAISE_SHARE = 0.9
CONC_HOLD_SHARE = 0.8
CONC_MIN_PACKETS = 10
CONC_MIN_CPUS = 2
# NET_TX/NET_RX softirqs of the machine concentrated on one CPU (of two or more): the
# interrupts or RPS steer everything there. Below SOFTIRQ_MIN_PER_S it does not matter.
SOFTIRQ_MIN_PER_S = 1000.0
# ...and only when that CPU is busy with softirqs at all: one spending under a tenth of its
# time there still has room, and concentration costs nothing yet.
SOFTIRQ_MIN_PCT = 10.0
SOFTIRQ_RAISE_SHARE = 0.8
SOFTIRQ_HOLD_SHARE = 0.7
# softnet_stat: a time squeeze is net_rx_action stopping with work left (budget or time used
# up); a drop is the per-CPU backlog (netdev_max_backlog) full. Sustained once a second, not
# one stray event.
SQUEEZE_RAISE_PER_S = 1.0
SQUEEZE_HOLD_PER_S = 0.2
SOFTNET_DROPS_RAISE_PER_S = 1.0
SOFTNET_DROPS_HOLD_PER_S = 0.2
# TX completion (net_dev_xmit -> the free after the NIC said it was sent) slower than a
# millisecond at p99 holds skbs, BQL budget and socket memory: interrupt coalescing or a busy
# CPU taking the completion interrupt.
SLOW_COMPLETION_RAISE_NS = 1_000_000
SLOW_COMPLETION_HOLD_NS = 500_000
# txtop's own probes: any sustained loss means holes in the waterfall; a few a second is a
# sampling setting too aggressive for the ring buffer.
PROBE_LOSS_RAISE_PER_S = 1.0
PROBE_LOSS_HOLD_PER_S = 0.1
PROBE_SKIP_RAISE_PER_S = 1.0
PROBE_SKIP_HOLD_PER_S = 0.1
# Probe losses that mean "sampling too aggressive" (probes/bpf/counters.py breakdown keys);
# aged/lost tracks are packets held in a qdisc or replaced skbs, not overflow.
OVERFLOW_KEYS = ("ringbuf_full:", "track_full", "counter_map_full", "track_evicted")
