"""Which form each tracepoint hook is compiled in (raw with BTF offsets, classic without), the
send-syscall entry choice, counter keys by (namespace, ifindex), the in-window sampling cap,
and what the probe line and the help say about the forms. Pure: no kernel."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from txtop.core.model import ProbeStatus, Snapshot
from txtop.probes.bpf import hooks
from txtop.probes.bpf.counters import dev_of_key
from txtop.probes.bpf.hooks import PROBES, hook_forms, hook_table, raw_syscalls
from txtop.probes.bpf.settings import MAX_WINDOW_SAMPLES_PER_S, burst, window_rate
from txtop.tui.help import probe_details
from txtop.tui.panels.header import probe_frags

ALL = {p.define for p in PROBES}
PER_PACKET = ("qdisc:qdisc_enqueue", "qdisc:qdisc_dequeue", "net:net_dev_start_xmit")


def _defines(btf: bool, machine: str = "x86_64") -> tuple[set[str], list[str]]:
    defines = set(ALL)
    offsets = ["pt_regs.si", "pt_regs.r8"] if btf else []
    return defines, raw_syscalls(defines, btf, offsets, machine)


def test_with_btf_every_hook_is_raw() -> None:
    defines, nrs = _defines(btf=True)
    forms = hook_forms(hook_table(PROBES, defines, btf=True))
    assert set(forms.values()) == {"raw"}, forms
    assert forms["raw_syscalls:sys_enter"] == "raw"
    assert not any(tp.startswith("syscalls:") for tp in forms)  # no classic sys_enter_*
    assert nrs[:3] == ["TXTOP_NR_SENDTO=44", "TXTOP_NR_SENDMSG=46", "TXTOP_NR_SENDMMSG=307"]
    # sock:sock_send_length ends the send: no program on every syscall's exit
    assert hooks.EXIT_AT_SEND in nrs and "raw_syscalls:sys_exit" not in forms


def test_sys_exit_stays_without_sock_send_length() -> None:
    defines = set(ALL) - {hooks.SOCK_SEND_DEFINE}
    nrs = raw_syscalls(defines, True, ["pt_regs.si", "pt_regs.r8"], "x86_64")
    assert hooks.EXIT_AT_SEND not in nrs and hooks.SYS_EXIT_DEFINE in defines


def test_without_btf_the_argument_readers_are_classic() -> None:
    defines, nrs = _defines(btf=False)
    table = hook_table(PROBES, defines, btf=False)
    forms = hook_forms(table)
    for tp in (*PER_PACKET, "syscalls:sys_enter_sendto", "syscalls:sys_enter_sendmmsg"):
        assert forms[tp] == "classic", forms
    assert "raw_syscalls:sys_enter" not in forms and nrs == []
    # raw where no struct is read: pointers and scalars only
    for tp in ("net:net_dev_xmit", "skb:kfree_skb", "irq:softirq_entry", "raw_syscalls:sys_exit"):
        assert forms[tp] == "raw", forms
    # net_dev_queue in both forms (classic filters by name with -i)
    assert forms["net:net_dev_queue"] == "raw+classic"
    fns = {h.fn for h in table}
    assert b"tracepoint__net__net_dev_start_xmit" in fns and b"txtop_raw_start_xmit" not in fns


def test_raw_sys_enter_only_on_x86_64_with_the_registers() -> None:
    defines, nrs = _defines(btf=True, machine="aarch64")
    assert nrs == [] and hooks.SYS_ENTER_DEFINE not in defines
    assert hooks.CLASSIC_SYSCALL_DEFINES <= defines
    defines = set(ALL)
    assert raw_syscalls(defines, True, ["pt_regs.si"], "x86_64") == []  # r8 missing


def test_counter_keys_by_namespace_and_ifindex_or_by_name() -> None:
    names = {"eth0": 2}.get
    assert dev_of_key(SimpleNamespace(netns=7, ifindex=5), 7, names) == 5
    assert dev_of_key(SimpleNamespace(netns=0, ifindex=5), 7, names) == 5  # namespace unknown
    # the same ifindex in another namespace is another device: never merged into ours
    assert dev_of_key(SimpleNamespace(netns=9, ifindex=5), 7, names) is None
    assert dev_of_key(b"eth0\0\0\0\0", 7, names) == 2  # classic: by name
    assert dev_of_key(b"nu1\0", 7, names) is None


@pytest.mark.parametrize(
    ("cap", "duty", "want"),
    [
        (200, 1.0, 200),  # continuous: the cap as given
        (200, 0.05, 4000),  # the average over windows holds
        (200, 0.005, MAX_WINDOW_SAMPLES_PER_S),  # clamped for the drain
        (50_000, 0.01, 50_000),  # the user's own cap above the clamp is kept
        (0, 0.1, 0),
    ],
)
def test_in_window_cap_scales_with_the_duty(cap: int, duty: float, want: int) -> None:
    assert window_rate(cap, duty) == want


def test_bucket_depth_is_20_ms_so_a_window_is_not_spent_at_its_start() -> None:
    assert burst(4000) == 80 and burst(200) == 4 and burst(10) == 1


def _snap(forms: dict[str, str]) -> Snapshot:
    return Snapshot(
        host="h", kernel="k", time=0.0, mono_ns=0, interval_s=1.0, mode="live", interfaces=(),
        devices=(), queues=(), cpus=(), packets=(),
        probes=ProbeStatus(state="running", hooks=forms),
    )  # fmt: skip


def test_probe_line_and_help_say_which_hooks_are_classic() -> None:
    raw = {"net:net_dev_queue": "raw", "net:net_dev_start_xmit": "raw"}
    line = "".join(text for text, _ in probe_frags(_snap(raw)))
    assert "classic" not in line
    mixed = {**raw, "net:net_dev_start_xmit": "classic"}
    line = "".join(text for text, _ in probe_frags(_snap(mixed)))
    assert "1/2 hooks classic" in line
    rows = dict(probe_details(_snap(mixed)))
    assert rows["classic hooks"] == "net:net_dev_start_xmit"
    assert rows["raw hooks"] == "net:net_dev_queue"
