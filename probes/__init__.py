"""Kernel-facing data sources of txtop: the BPF tracer (``bpf/``), the sysfs/netlink/procfs readers
(``readers/``), and the collector that merges them into the core's snapshots.

Nothing in here draws anything; the UI lives in ``txtop.tui``.
"""
