"""Shared fixtures. Root-only tests build a private netns lab and remove it afterwards."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property tests run on a loaded 2-core CI machine: example generation may be slow there, which
# says nothing about the code under test, so no per-example deadline and no too_slow check.
settings.register_profile(
    "txtop", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.load_profile("txtop")

DATA = Path(__file__).parent / "data"
IS_ROOT = os.geteuid() == 0


# Test tiers (README "Tests"): every test gets exactly one of unit / ui / lab / soak, so that
# `./setup.sh test -m unit` is the seconds-long loop and `-m lab` the real-BPF one.
SOAK_TESTS = {"test_dashboard_soak_under_a_flood", "test_collector_soak_under_churn"}
# Files whose tests drive Textual (Pilot, SVG snapshots) or the dashboard in a pseudo-terminal.
UI_FILES = {
    "test_app.py",
    "test_degraded.py",
    "test_findings_ui.py",
    "test_history_view.py",
    "test_replay_cli.py",
    "test_sessions.py",
    "test_snapshots.py",
    "test_waterfall.py",
    "test_waterfall_live.py",
    "test_waterfall_snapshots.py",
}


def tier(item: pytest.Item) -> str:
    if getattr(item, "originalname", item.name) in SOAK_TESTS:
        return "soak"
    if "root" in item.keywords:
        return "lab"
    if item.path.name in UI_FILES:
        return "ui"
    return "unit"


def pytest_collection_modifyitems(config, items):
    for item in items:
        item.add_marker(getattr(pytest.mark, tier(item)))
    if IS_ROOT and shutil.which("ip") and shutil.which("tc"):
        return
    skip = pytest.mark.skip(reason="needs root with iproute2 (netns lab / BPF); run as root")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def lab():
    """A veth lab with 4 TX queues: TX end in this namespace, peer in a private netns."""
    from txtop.lab.netns import Lab, free_subnet

    tag = f"p{os.getpid() % 10000}"
    # 20..199: test labs (200..219 tracer tests and benchmarks, 220..250 the demo)
    with Lab(tag=tag, queues=4, subnet=free_subnet(range(20, 200), start=os.getpid())) as created:
        yield created
