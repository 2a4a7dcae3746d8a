"""Header discovery and the fallback tree (probes/bpf/headers.py), on fake trees and the real one."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from txtop.probes.bpf import headers
from txtop.probes.bpf.headers import HeadersError, build_merged_tree, plan_headers

DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n'
FEDORA = "NAME=Fedora\nID=fedora\n"


def touch(p: Path, text: str = "") -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def debian_pair(src: Path, ver: str, flavour: str = "cloud-amd64") -> tuple[Path, Path]:
    """A Debian-style linux-headers-<ver>-<flavour> + linux-headers-<ver>-common pair."""
    common = src / f"linux-headers-{ver}-common"
    arch = src / f"linux-headers-{ver}-{flavour}"
    touch(common / "include/linux/kconfig.h", "common kconfig")
    touch(common / "include/linux/both.h", "from common")
    touch(common / "Makefile", "# top makefile")
    touch(arch / "include/generated/autoconf.h", "#define CONFIG_X 1")
    touch(arch / "include/linux/both.h", "from arch")
    touch(arch / "Makefile", f"include {common}/Makefile\n")
    return arch, common


def plan(tmp: Path, release: str = "6.18.44-custom", **kw):
    kw.setdefault("modules_root", tmp / "modules")
    kw.setdefault("src_root", tmp / "src")
    kw.setdefault("cache_root", tmp / "cache")
    kw.setdefault("kheaders", tmp / "no-kheaders")
    kw.setdefault("os_release_text", DEBIAN)
    return plan_headers(release, **kw)


def test_running_kernel_headers_win(tmp_path: Path) -> None:
    touch(tmp_path / "modules/6.18.44-custom/build/include/generated/autoconf.h")
    debian_pair(tmp_path / "src", "6.12.1")
    p = plan(tmp_path)
    assert p.kind == "running" and p.tree is None and p.notice == ""


def test_kheaders_used_when_no_running_headers(tmp_path: Path) -> None:
    touch(tmp_path / "kheaders.tar.xz")
    p = plan(tmp_path, kheaders=tmp_path / "kheaders.tar.xz")
    assert p.kind == "kheaders"


def test_debian_fallback_found_through_makefile_include(tmp_path: Path) -> None:
    arch, common = debian_pair(tmp_path / "src", "6.12.115+deb12")
    p = plan(tmp_path)
    assert p.kind == "build"
    assert p.arch_dir == arch and p.common_dir == common
    assert p.tree == tmp_path / "cache" / "6.12.115+deb12-cloud-amd64"
    assert "6.18.44-custom" in p.notice and str(p.tree) in p.notice


def test_closest_version_is_chosen(tmp_path: Path) -> None:
    debian_pair(tmp_path / "src", "6.1.99")
    debian_pair(tmp_path / "src", "6.12.5")
    debian_pair(tmp_path / "src", "5.10.3")
    assert plan(tmp_path, release="6.18.0-x").arch_dir.name.startswith("linux-headers-6.12.5")
    assert plan(tmp_path, release="6.1.140-y").arch_dir.name.startswith("linux-headers-6.1.99")


def test_exact_release_wins_over_a_newer_one(tmp_path: Path) -> None:
    debian_pair(tmp_path / "src", "6.1.99")
    debian_pair(tmp_path / "src", "6.1.120")
    p = plan(tmp_path, release="6.1.99-cloud-amd64")
    assert p.arch_dir is not None and p.arch_dir.name == "linux-headers-6.1.99-cloud-amd64"


def test_arch_dir_without_common_is_not_a_candidate(tmp_path: Path) -> None:
    touch(tmp_path / "src/linux-headers-6.12.1-amd64/include/generated/autoconf.h")
    p = plan(tmp_path)
    assert p.kind == "none"
    assert "no kernel headers for 6.18.44-custom" in p.reason
    assert p.fix == "apt-get install linux-headers-6.18.44-custom"


def test_fedora_complete_tree_needs_no_merge(tmp_path: Path) -> None:
    tree = tmp_path / "src/kernels/6.11.4-301.fc41.x86_64"
    touch(tree / "include/generated/autoconf.h")
    touch(tree / "include/linux/kconfig.h")
    p = plan(tmp_path, os_release_text=FEDORA)
    assert p.kind == "cached" and p.tree == tree and p.common_dir is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (DEBIAN, "apt-get install linux-headers-6.18.44-custom"),
        ("ID=ubuntu\nID_LIKE=debian\n", "apt-get install linux-headers-6.18.44-custom"),
        (FEDORA, "dnf install kernel-devel-6.18.44-custom"),
        ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', "dnf install kernel-devel-6.18.44-custom"),
        ("ID=arch\n", "pacman -S linux-headers"),
        ("", "install your distribution's kernel headers package for 6.18.44-custom"),
    ],
)
def test_fix_command_per_distro(text: str, expected: str) -> None:
    assert headers.fix_command("6.18.44-custom", text) == expected


def test_hostile_release_string_is_refused(tmp_path: Path) -> None:
    p = plan(tmp_path, release="../../etc")
    assert p.kind == "none" and "unexpected kernel release" in p.reason


def test_builder_merges_arch_over_common_privately(tmp_path: Path) -> None:
    arch, common = debian_pair(tmp_path / "src", "6.12.1")
    p = plan(tmp_path)
    tree = build_merged_tree(p)
    assert (tree / "include/linux/kconfig.h").read_text() == "common kconfig"
    assert (tree / "include/generated/autoconf.h").read_text() == "#define CONFIG_X 1"
    assert (tree / "include/linux/both.h").read_text() == "from arch"  # arch wins
    assert (tree / "include/linux/both.h").is_symlink()
    for d in (tmp_path / "cache", tree):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE((tree / headers.MARKER).stat().st_mode) == 0o600
    assert not [x for x in (tmp_path / "cache").iterdir() if x.name.startswith(".building")]
    # The next run reuses it; a changed source pairing forces a rebuild.
    assert plan(tmp_path).kind == "cached"
    (tree / headers.MARKER).write_text('{"version": 0}')
    assert plan(tmp_path).kind == "build"


def test_builder_refuses_world_writable_cache(tmp_path: Path) -> None:
    debian_pair(tmp_path / "src", "6.12.1")
    cache = tmp_path / "cache"
    cache.mkdir()
    os.chmod(cache, 0o777)
    with pytest.raises(HeadersError, match="not group/world-writable"):
        build_merged_tree(plan(tmp_path))


def test_real_distro_headers_build_a_usable_tree(tmp_path: Path) -> None:
    """On this machine kind: the installed Debian headers merge into a tree bcc can use."""
    release = os.uname().release
    p = plan_headers(release, cache_root=tmp_path / "cache", os_release_text=DEBIAN)
    if p.kind in ("running", "kheaders"):
        pytest.skip("the running kernel has its own headers here")
    if p.kind == "none":
        pytest.skip(f"no distro headers installed: {p.reason}")
    tree = build_merged_tree(p) if p.kind == "build" else p.tree
    assert tree is not None
    assert (tree / "include/linux/kconfig.h").is_file()
    assert (tree / "include/generated/autoconf.h").is_file()
    assert (tree / "arch/x86/include/asm/ptrace.h").is_file() or os.uname().machine != "x86_64"


def test_a_users_bcc_kernel_source_wins(tmp_path, monkeypatch):
    tree = tmp_path / "mytree"
    (tree / "include").mkdir(parents=True)
    monkeypatch.setattr(headers, "_USER_KERNEL_SOURCE", str(tree))
    monkeypatch.delenv("BCC_KERNEL_SOURCE", raising=False)
    plan, notice = headers.prepare_headers(tmp_path / "cache")
    assert plan.kind == "user" and plan.tree == tree
    with headers.kernel_source_env(plan):
        assert os.environ["BCC_KERNEL_SOURCE"] == str(tree)
    assert "BCC_KERNEL_SOURCE" not in os.environ  # only while bcc compiles
    assert "set by you" in notice
    assert not (tmp_path / "cache").exists()  # no fallback tree was built


def test_a_users_bcc_kernel_source_without_headers_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(headers, "_USER_KERNEL_SOURCE", str(tmp_path / "empty"))
    with pytest.raises(HeadersError) as exc:
        headers.prepare_headers(tmp_path / "cache")
    assert "BCC_KERNEL_SOURCE" in str(exc.value) and "\n" not in str(exc.value)
