"""Static checks the test command runs beside ruff: mypy over the whole txtop package and the
import-layer contracts (lint-imports), both configured in pyproject.toml.

mypy cannot follow setuptools' editable-install finder, and the repository's folders are named
``core/``, ``tui/``... rather than ``txtop/core``, so it is pointed at a throw-away tree of
symbolic links ``txtop/<folder> -> <repo>/<folder>``: the modules then carry their real names
(``txtop.core.model``) and the ``txtop.core.*`` strict override applies.

Usage: .venv/bin/python scripts/static_checks.py [mypy|imports ...]   (default: both)
Exit status: 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "probes", "recordings", "lab", "themes", "tui", "exporters")
BIN = Path(sys.executable).parent


def run_mypy() -> int:
    with tempfile.TemporaryDirectory(prefix="txtop-mypy-") as tmp:
        root = Path(tmp) / "txtop"
        root.mkdir()
        for name in PACKAGES:
            (root / name).symlink_to(REPO / name, target_is_directory=True)
        cmd = [
            str(BIN / "mypy"),
            "--config-file",
            str(REPO / "pyproject.toml"),
            "--cache-dir",
            str(REPO / ".mypy_cache"),
            "-p",
            "txtop",
        ]
        return subprocess.run(cmd, cwd=tmp, check=False).returncode


def run_import_contracts() -> int:
    cmd = [str(BIN / "lint-imports"), str(REPO / "pyproject.toml"), "--no-cache"]
    return subprocess.run(cmd, cwd=REPO, check=False).returncode


CHECKS = {"mypy": run_mypy, "imports": run_import_contracts}


def main(argv: list[str]) -> int:
    names = argv or list(CHECKS)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        print(f"static_checks: unknown check {unknown[0]!r} (choose from {', '.join(CHECKS)})")
        return 2
    failed = [n for n in names if CHECKS[n]() != 0]
    if failed:
        print(f"static_checks: failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
