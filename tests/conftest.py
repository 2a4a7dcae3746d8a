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


def pytest_collection_modifyitems(config, items):
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
