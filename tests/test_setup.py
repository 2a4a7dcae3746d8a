"""Checks of the set-up script, CI entry point and README promise (cheap; no root needed)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SETUP = REPO / "setup.sh"
APT = Path(__file__).parent / "data" / "apt"
DEBIAN = APT / "debian12-amd64.txt"
UBUNTU = APT / "ubuntu2404-amd64.txt"
LAUNCHER = Path("/usr/local/bin/txtop")


def pick(release: str, arch: str, listing: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SETUP), "--pick-headers", release, arch, str(listing)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def readme_commands() -> list[str]:
    """Command lines in README.md's code blocks, without the `#`/`$` prompt."""
    lines, inside = [], False
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("```"):
            inside = not inside
            continue
        if inside and re.match(r"^[#$] \S", line):
            lines.append(line[2:].strip())
    return lines


def test_setup_is_executable_and_strict():
    assert os.access(SETUP, os.X_OK)
    text = SETUP.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") or text.startswith("#!/bin/bash\n")
    assert re.search(r"^set -euo pipefail$", text, re.M)


def test_setup_parses():
    res = subprocess.run(["bash", "-n", str(SETUP)], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize(
    ("release", "arch", "listing", "expected"),
    [
        # This machine: a custom VM kernel the distro has no package for -> newest cloud headers.
        ("6.18.44-fc-v782", "amd64", DEBIAN, "linux-headers-6.12.117+deb12-cloud-amd64"),
        # Debian stock kernels with an exact package.
        ("6.1.0-47-amd64", "amd64", DEBIAN, "linux-headers-6.1.0-47-amd64"),
        ("6.12.115+deb12-cloud-amd64", "amd64", DEBIAN, "linux-headers-6.12.115+deb12-cloud-amd64"),
        # Debian kernels whose exact package is gone: newest of the same flavour and series.
        ("6.1.0-30-cloud-amd64", "amd64", DEBIAN, "linux-headers-6.1.0-56-cloud-amd64"),
        ("6.1.0-30-amd64", "amd64", DEBIAN, "linux-headers-6.1.0-56-amd64"),
        ("6.12.999+deb12-rt-amd64", "amd64", DEBIAN, "linux-headers-6.12.117+deb12-rt-amd64"),
        # Ubuntu-shaped list.
        ("6.8.0-45-generic", "amd64", UBUNTU, "linux-headers-6.8.0-45-generic"),
        ("6.8.0-40-generic", "amd64", UBUNTU, "linux-headers-6.8.0-51-generic"),
        ("6.8.0-1010-aws", "amd64", UBUNTU, "linux-headers-6.8.0-1021-aws"),
        ("6.18.44-fc-v782", "amd64", UBUNTU, "linux-headers-6.11.0-19-generic"),
    ],
)
def test_pick_headers(release, arch, listing, expected):
    res = pick(release, arch, listing)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == expected


def test_pick_headers_none_fits():
    res = pick("6.18.44-fc-v782", "arm64", DEBIAN)
    assert res.returncode != 0
    assert res.stdout == ""


@pytest.mark.parametrize("release", ["6.1.0 x", "../../etc", "6.1.0;id"])
def test_pick_headers_rejects_bad_release(release):
    res = pick(release, "amd64", DEBIAN)
    assert res.returncode != 0
    assert res.stdout == ""


def test_captured_debian_list_is_real():
    names = [line.split()[0] for line in DEBIAN.read_text().splitlines() if line.strip()]
    assert len(names) > 20
    assert all(n.startswith("linux-headers-") for n in names)


def test_ci_runs_the_readme_test_command():
    ci = REPO / ".ci" / "run"
    assert os.access(ci, os.X_OK)
    assert "./setup.sh test" in readme_commands()
    assert "./setup.sh test" in ci.read_text()


def test_readme_names_both_commands():
    commands = readme_commands()
    assert "./setup.sh" in commands
    assert "./setup.sh test" in commands
    assert "screenshots/dashboard-160x50.svg" in (REPO / "README.md").read_text()


def test_setup_refuses_non_root_in_one_line():
    argv = [str(SETUP)]
    if os.geteuid() == 0:
        # Run a copy as nobody: the copy's directory must be reachable by that user.
        setpriv = shutil.which("setpriv")
        if not setpriv:
            pytest.skip("root without setpriv: cannot drop privileges")
        home = Path(tempfile.mkdtemp(prefix="txtop-setup-"))
        try:
            home.chmod(0o755)
            copy = home / "setup.sh"
            shutil.copy(SETUP, copy)
            copy.chmod(0o755)
            argv = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", str(copy)]
            res = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        finally:
            shutil.rmtree(home)
    else:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert res.returncode == 2, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert "root" in res.stderr
    assert res.stdout == ""


@pytest.mark.skipif(not LAUNCHER.exists(), reason="no launcher installed (run ./setup.sh)")
def test_launcher_points_at_an_existing_venv():
    text = LAUNCHER.read_text()
    m = re.search(r"^exec '([^']+)' \"\$@\"$", text, re.M)
    assert m, text
    target = Path(m.group(1))
    assert target.name == "txtop" and target.parent.name == "bin"
    venv = target.parent.parent
    assert (venv / "pyvenv.cfg").is_file()
    assert os.access(venv / "bin" / "python", os.X_OK)
    assert os.stat(LAUNCHER).st_mode & 0o777 == 0o755
