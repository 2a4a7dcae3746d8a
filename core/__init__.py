"""txtop's pure core: what every layer shares, testable on plain data.

- ``model``: the immutable ``Snapshot`` (devices, TX queues, CPUs, sampled packets, probe state)
  every source produces and every panel, recording and exporter reads;
- ``readings`` and ``merge``: the plain readings one tick gathers (sysfs, netlink, procfs, BPF
  counters) and the pure merge that turns them, with the previous tick's state, into rows and rates;
- ``rates``, ``latency``, ``filters``: counter deltas, per-stage latency summaries, packet filters;
- ``source`` and ``controls``: the snapshot-source base class and what the UI may ask of a source;
- ``text``: one-line reasons and durations, written the same way everywhere.

Nothing in here touches the kernel, bcc, pyroute2 or Textual (import-linter contract and
tests/test_layers.py).
"""
