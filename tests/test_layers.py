"""The layers at run time (the static side is lint-imports, configured in pyproject.toml): importing
every module of a layer in a fresh interpreter pulls in nothing the layer must not depend on.

lint-imports sees import statements; this sees what an import really loads (a module reached
through importlib, a plugin, a re-export), so a violation cannot hide from both.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# layer -> third-party or txtop packages it must never load
FORBIDDEN = {
    "core": ["textual", "rich", "bcc", "pyroute2", "txtop.probes", "txtop.tui", "txtop.lab"],
    "probes": ["textual", "rich", "txtop.tui", "txtop.lab"],
    "recordings": ["textual", "rich", "bcc", "txtop.tui", "txtop.lab"],
    "lab": ["textual", "rich", "txtop.tui"],
    "themes": ["textual", "rich", "bcc"],
    "exporters": [
        "textual",
        "rich",
        "bcc",
        "pyroute2",
        "txtop.probes",
        "txtop.tui",
        "txtop.lab",
        "txtop.recordings",
    ],
}

# one module each walk must reach: proves the walk imported the layer, not just its __init__
REACHED = {
    "core": "txtop.core.model",
    "probes": "txtop.probes.bpf.tracer",
    "recordings": "txtop.recordings.replay",
    "lab": "txtop.lab.demo",
    "themes": "txtop.themes",
    "exporters": "txtop.exporters.server",
}

PROBE = """
import importlib, json, pkgutil, sys
import txtop.{layer} as pkg
for info in pkgutil.walk_packages(pkg.__path__, "txtop.{layer}."):
    importlib.import_module(info.name)
print(json.dumps(sorted(sys.modules)))
"""


def modules_loaded_by(layer: str) -> set[str]:
    res = subprocess.run(
        [sys.executable, "-c", PROBE.format(layer=layer)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return set(json.loads(res.stdout))


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_loads_nothing_it_must_not(layer: str) -> None:
    loaded = modules_loaded_by(layer)
    assert REACHED[layer] in loaded
    bad = sorted(m for m in loaded for f in FORBIDDEN[layer] if m == f or m.startswith(f + "."))
    assert not bad, f"txtop.{layer} loads {bad[:10]}"


def test_every_product_folder_is_a_checked_layer() -> None:
    """A new top-level package must join the contracts, not slip past them."""
    text = (REPO / "pyproject.toml").read_text()
    for folder in ("core", "probes", "recordings", "lab", "themes", "tui", "exporters"):
        assert f'"txtop.{folder}"' in text
        assert (REPO / folder / "__init__.py").is_file()


def test_every_package_folder_is_installed() -> None:
    """setuptools installs only the packages pyproject.toml lists: a new sub-package missing
    there works from the editable checkout and breaks a normal install."""
    text = (REPO / "pyproject.toml").read_text()
    for folder in ("core", "probes", "recordings", "lab", "themes", "tui", "exporters"):
        for init in (REPO / folder).rglob("__init__.py"):
            dotted = ".".join(("txtop",) + init.parent.relative_to(REPO).parts)
            assert f'"{dotted}"' in text, f"{dotted} is missing from [tool.setuptools] packages"


# ---- sizes (issue 11: no module over ~600 lines, no class over ~25 methods) -------------------

MAX_MODULE_LINES = 650
MAX_CLASS_METHODS = 26
SOURCE_FOLDERS = ("core", "probes", "recordings", "lab", "themes", "tui", "exporters")
SOURCE_FOLDERS += ("bench", "scripts")


def _oversize(path: Path) -> list[str]:
    """What in ``path`` is over the limits: its length, and each class with too many
    methods (properties and async methods count)."""
    rel = path.relative_to(REPO).as_posix()
    text = path.read_text()
    out = []
    if len(text.splitlines()) > MAX_MODULE_LINES:
        out.append(f"{rel}: {len(text.splitlines())} lines")
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef):
            defs = (ast.FunctionDef, ast.AsyncFunctionDef)
            methods = sum(isinstance(item, defs) for item in node.body)
            if methods > MAX_CLASS_METHODS:
                out.append(f"{rel}: class {node.name} has {methods} methods")
    return out


def test_no_module_or_class_is_too_big() -> None:
    """Every module outside tests/ (bench and scripts included) is at most MAX_MODULE_LINES
    lines and every class has at most MAX_CLASS_METHODS methods, no exemptions."""
    paths = sorted(p for folder in SOURCE_FOLDERS for p in (REPO / folder).rglob("*.py"))
    assert len(paths) > 50
    too_big = [line for path in paths for line in _oversize(path)]
    assert not too_big, "split these: " + "; ".join(too_big)
