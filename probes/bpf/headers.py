"""Kernel headers for bcc: find them, or build a private fallback tree, or say how to get them.

bcc compiles the probes at run time and needs kernel headers. Tracepoint-only programs that
never dereference kernel structs (ours) only need headers that *compile*, not ones that match
the running kernel's struct layouts, so when the running kernel has none we can borrow an
installed distro headers package (e.g. Debian's ``linux-headers-<ver>-cloud-amd64`` plus its
``-common``) merged into one symlink tree under a private cache directory, and point
``BCC_KERNEL_SOURCE`` at it for txtop's own process only. /lib/modules is never touched.

``plan_headers`` is pure apart from looking at the directories it is given (tests feed it fake
trees); ``build_merged_tree`` does the work; ``prepare_headers`` is the thin glue the tracer uses.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CACHE_ROOT = Path("/var/cache/txtop/headers")
MODULES_ROOT = Path("/lib/modules")
SRC_ROOT = Path("/usr/src")
KHEADERS = Path("/sys/kernel/kheaders.tar.xz")  # CONFIG_IKHEADERS; bcc unpacks it itself
MARKER = ".txtop-tree.json"
MARKER_VERSION = 1

# A headers directory name ends up in a path under the cache root: keep it boring.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_MAKEFILE_INCLUDE_RE = re.compile(r"^\s*include\s+(/\S+)/Makefile\s*$", re.MULTILINE)
_VERSION_RE = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


class HeadersError(RuntimeError):
    """A one-line reason why no usable header tree could be prepared."""


@dataclass(frozen=True, slots=True)
class HeaderPlan:
    """What to do about kernel headers for one kernel release.

    kind:
      "running"  - the running kernel's own headers are installed; bcc finds them itself.
      "kheaders" - the kernel carries its headers (/sys/kernel/kheaders.tar.xz); bcc uses them.
      "cached"   - a fallback tree built earlier is ready at ``tree``.
      "build"    - a fallback tree must be built at ``tree`` from ``arch_dir`` + ``common_dir``.
      "none"     - nothing usable: ``reason`` says why and ``fix`` how to fix it.
      "user"     - the user exported BCC_KERNEL_SOURCE; it is used as given.
    """

    kind: str
    release: str
    tree: Path | None = None  # what BCC_KERNEL_SOURCE should point at (fallback kinds)
    arch_dir: Path | None = None  # e.g. /usr/src/linux-headers-6.12.1-cloud-amd64
    common_dir: Path | None = None  # its -common part, or None when arch_dir is complete
    reason: str = ""
    fix: str = ""

    @property
    def usable(self) -> bool:
        return self.kind != "none"

    @property
    def notice(self) -> str:
        """One line for the status bar when a fallback is used; empty otherwise."""
        if self.kind in ("cached", "build") and self.arch_dir is not None:
            return (
                f"no kernel headers for {self.release}: using {self.arch_dir.name} "
                f"via BCC_KERNEL_SOURCE={self.tree}"
            )
        return ""


@dataclass(frozen=True, slots=True)
class _Candidate:
    name: str
    arch_dir: Path
    common_dir: Path | None

    @property
    def version(self) -> str:
        """The cache directory name: the package's version (linux-headers-<version>)."""
        return self.name.removeprefix("linux-headers-")


def version_key(text: str) -> tuple[int, int, int]:
    """(major, minor, patch) of the first version number in ``text``; zeros when none."""
    m = _VERSION_RE.search(text)
    if not m:
        return (0, 0, 0)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


def _has_generated(d: Path) -> bool:
    return (d / "include" / "generated" / "autoconf.h").is_file()


def _has_source(d: Path) -> bool:
    return (d / "include" / "linux" / "kconfig.h").is_file()


def _common_of(arch_dir: Path) -> Path | None:
    """The -common directory a Debian-style arch headers dir includes from its Makefile."""
    try:
        text = (arch_dir / "Makefile").read_text(errors="replace")
    except OSError:
        text = ""
    m = _MAKEFILE_INCLUDE_RE.search(text)
    if m:
        common = Path(m.group(1))
        if _has_source(common):
            return common
    # No usable include line: try the Debian naming convention (<ver>-<flavour> -> <ver>-common).
    parts = arch_dir.name.rsplit("-", 2)
    if len(parts) == 3:
        guess = arch_dir.parent / f"{parts[0]}-common"
        if _has_source(guess):
            return guess
    return None


def find_candidates(src_root: Path) -> list[_Candidate]:
    """Installed header trees under ``src_root`` that bcc can compile against."""
    found: list[_Candidate] = []
    dirs: list[Path] = []
    for pattern in ("linux-headers-*", "kernels/*"):  # Debian/Ubuntu, Fedora/RHEL
        try:
            dirs.extend(sorted(src_root.glob(pattern)))
        except OSError:
            continue
    for d in dirs:
        if not d.is_dir() or not _NAME_RE.match(d.name) or not _has_generated(d):
            continue
        if _has_source(d):
            found.append(_Candidate(d.name, d, None))  # a complete tree (Fedora style)
            continue
        common = _common_of(d)
        if common is not None:
            found.append(_Candidate(d.name, d, common))
    return found


def _pick(candidates: list[_Candidate], release: str) -> _Candidate | None:
    """Prefer the running kernel's own release, then its major.minor, then the newest."""
    if not candidates:
        return None
    running = version_key(release)

    def score(c: _Candidate) -> tuple[int, int, tuple[int, int, int], str]:
        v = version_key(c.name)
        return (c.version == release, v[:2] == running[:2], v, c.name)

    return max(candidates, key=score)


def fix_command(release: str, os_release_text: str = "") -> str:
    """The package-manager command that installs headers for ``release`` on this distro."""
    ids: set[str] = set()
    for line in os_release_text.splitlines():
        key, _, value = line.partition("=")
        if key in ("ID", "ID_LIKE"):
            ids.update(value.strip().strip('"').lower().split())
    if ids & {"debian", "ubuntu"}:
        return f"apt-get install linux-headers-{release}"
    if ids & {"fedora", "rhel", "centos"}:
        return f"dnf install kernel-devel-{release}"
    if ids & {"suse", "opensuse"}:
        return "zypper install kernel-devel"
    if "arch" in ids:
        return "pacman -S linux-headers"
    return f"install your distribution's kernel headers package for {release}"


def _marker_for(c: _Candidate) -> dict[str, object]:
    return {
        "version": MARKER_VERSION,
        "arch_dir": str(c.arch_dir),
        "common_dir": str(c.common_dir) if c.common_dir else None,
    }


def _tree_ready(tree: Path, c: _Candidate) -> bool:
    try:
        data = json.loads((tree / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return data == _marker_for(c) and _has_generated(tree) and _has_source(tree)


def plan_headers(
    release: str,
    *,
    modules_root: Path = MODULES_ROOT,
    src_root: Path = SRC_ROOT,
    cache_root: Path = DEFAULT_CACHE_ROOT,
    kheaders: Path = KHEADERS,
    os_release_text: str = "",
) -> HeaderPlan:
    """Decide where bcc's headers come from for kernel ``release`` (looks, never writes)."""
    if not _NAME_RE.match(release):
        return HeaderPlan("none", release, reason=f"unexpected kernel release {release!r}")
    build = modules_root / release / "build"
    if _has_generated(build) or _has_source(build):
        return HeaderPlan("running", release)
    if kheaders.exists():
        return HeaderPlan("kheaders", release)
    chosen = _pick(find_candidates(src_root), release)
    if chosen is None:
        return HeaderPlan(
            "none",
            release,
            reason=f"no kernel headers for {release} and none installed under {src_root}",
            fix=fix_command(release, os_release_text),
        )
    if chosen.common_dir is None:
        # A complete tree needs no merging: point bcc straight at it.
        return HeaderPlan("cached", release, tree=chosen.arch_dir, arch_dir=chosen.arch_dir)
    tree = cache_root / chosen.version
    kind = "cached" if _tree_ready(tree, chosen) else "build"
    return HeaderPlan(kind, release, tree, chosen.arch_dir, chosen.common_dir)


def _check_private_dir(d: Path) -> None:
    """Refuse a cache directory others could write to: its headers go into our compiler."""
    st = d.stat()
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise HeadersError(f"{d} must be owned by uid {os.geteuid()} and not group/world-writable")


def _make_private_dirs(d: Path) -> None:
    missing = []
    p = d
    while not p.exists():
        missing.append(p)
        p = p.parent
    for p in reversed(missing):
        p.mkdir(mode=0o700)
        os.chmod(p, 0o700)  # mkdir's mode is filtered by the umask
    _check_private_dir(d)


def _link_tree(src: Path, dst: Path) -> None:
    """Mirror ``src`` into ``dst`` as directories of symlinks; later calls override files."""
    for dirpath, dirnames, filenames in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        out = dst / rel
        out.mkdir(mode=0o700, exist_ok=True)
        entries = list(filenames)
        # os.walk lists symlinked directories (scripts -> ../../lib/...) as dirs: link them.
        for name in list(dirnames):
            if (Path(dirpath) / name).is_symlink():
                dirnames.remove(name)
                entries.append(name)
        for name in entries:
            target = out / name
            if target.is_symlink() or target.is_file():
                target.unlink()
            os.symlink(Path(dirpath) / name, target)


def build_merged_tree(plan: HeaderPlan) -> Path:
    """Build the fallback tree of ``plan`` (kind "build") atomically; return its path."""
    if plan.kind != "build" or plan.tree is None or plan.arch_dir is None:
        raise HeadersError(f"nothing to build for header plan {plan.kind!r}")
    if plan.common_dir is None:
        raise HeadersError(f"{plan.arch_dir} has no -common part to merge")
    cache_root = plan.tree.parent
    try:
        _make_private_dirs(cache_root)
        tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=cache_root))
    except OSError as exc:
        raise HeadersError(f"cannot create {cache_root}: {exc.strerror or exc}") from None
    try:
        _link_tree(plan.common_dir, tmp)
        _link_tree(plan.arch_dir, tmp)
        marker = _marker_for(_Candidate(plan.arch_dir.name, plan.arch_dir, plan.common_dir))
        fd = os.open(tmp / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(marker, f)
        if plan.tree.exists():  # stale or half-built by a killed run: replace it
            shutil.rmtree(plan.tree, ignore_errors=True)
        os.rename(tmp, plan.tree)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if _tree_ready(plan.tree, _Candidate(plan.arch_dir.name, plan.arch_dir, plan.common_dir)):
            return plan.tree  # another txtop finished the same tree first
        raise HeadersError(f"cannot build header tree {plan.tree}: {exc}") from None
    return plan.tree


def _read_os_release() -> str:
    for p in (Path("/etc/os-release"), Path("/usr/lib/os-release")):
        try:
            return p.read_text(errors="replace")
        except OSError:
            continue
    return ""


def current_plan(cache_root: Path = DEFAULT_CACHE_ROOT) -> HeaderPlan:
    return plan_headers(
        os.uname().release, cache_root=cache_root, os_release_text=_read_os_release()
    )


# A BCC_KERNEL_SOURCE the user exported before starting txtop wins over our own choice.
# Read once at import: later, this process's environment also holds our own fallback choice.
_USER_KERNEL_SOURCE = os.environ.get("BCC_KERNEL_SOURCE", "")


def user_kernel_source() -> str:
    return _USER_KERNEL_SOURCE


def prepare_headers(cache_root: Path = DEFAULT_CACHE_ROOT) -> tuple[HeaderPlan, str]:
    """Make headers usable for bcc in this process. Returns (plan, notice).

    The environment is not touched here: wrap the compile in ``kernel_source_env(plan)`` so
    the variable exists only while bcc compiles (never inherited by children or later code).
    Raises HeadersError with a one-line reason (and fix command) when there are none.
    """
    if _USER_KERNEL_SOURCE:
        user_tree = Path(_USER_KERNEL_SOURCE)
        if not (user_tree / "include").is_dir():
            raise HeadersError(
                f"BCC_KERNEL_SOURCE={user_tree} has no include/ directory; fix: unset it or "
                "point it at a kernel header tree"
            )
        plan = HeaderPlan(kind="user", release=os.uname().release, tree=user_tree)
        return plan, f"kernel headers from BCC_KERNEL_SOURCE={user_tree} (set by you)"
    plan = current_plan(cache_root)
    if plan.kind == "none":
        raise HeadersError(f"{plan.reason}; fix: {plan.fix}")
    if plan.kind == "build":
        build_merged_tree(plan)
    return plan, plan.notice


@contextlib.contextmanager
def kernel_source_env(plan: HeaderPlan) -> Iterator[None]:
    """Point bcc (libbcc reads BCC_KERNEL_SOURCE with getenv at compile time) at the plan's
    tree for the duration of the block, then restore what was there."""
    if plan.tree is None:
        yield
        return
    before = os.environ.get("BCC_KERNEL_SOURCE")
    os.environ["BCC_KERNEL_SOURCE"] = str(plan.tree)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("BCC_KERNEL_SOURCE", None)
        else:
            os.environ["BCC_KERNEL_SOURCE"] = before
