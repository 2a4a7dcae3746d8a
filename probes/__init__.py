"""Kernel-side data sources of txtop: BPF probes and every collector (sysfs, netlink, procfs).

Nothing in here draws anything; the UI lives in ``txtop.tui``.
"""
