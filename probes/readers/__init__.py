"""Readers of the kernel's own counters: sysfs (netdev, BQL), rtnetlink (qdiscs), procfs (softirqs)."""
