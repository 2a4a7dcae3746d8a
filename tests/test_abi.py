"""probes/bpf/abi.py against probes/bpf/txtop.bpf.c, by parsing the C source (no compiler), and
the compile-time check (abi.compile_defines -> _Static_assert) biting on a wrong layout."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from txtop.core.model import STAGES
from txtop.probes.bpf import abi

BPF_SRC = Path(__file__).parent.parent / "probes" / "bpf" / "txtop.bpf.c"
C_TYPES = {"u64": "Q", "s64": "q", "u32": "I", "s32": "i", "u16": "H", "u8": "B", "char": "s"}
FAMILIES = ("ST_", "N_", "END_", "FREE_", "SYS_", "F_", "P_", "S_", "VIA_", "FL_", "L3_", "SLOT_")


def c_source() -> str:
    """txtop.bpf.c without comments."""
    text = BPF_SRC.read_text()
    return re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", text, flags=re.S))


def c_constants(text: str) -> dict[str, int]:
    """Every enumerator (implicit and ``= a + b`` values) and every integer #define."""
    out: dict[str, int] = {}
    for name, value in re.findall(r"^#define\s+(\w+)\s+(0x[0-9a-fA-F]+|\d+)\w*\s*$", text, re.M):
        out[name] = int(value, 0)
    for body in re.findall(r"\benum\s*\{(.*?)\}", text, re.S):
        nxt = 0
        for item in (i.strip() for i in body.split(",")):
            if not item:
                continue
            name, _, expr = (p.strip() for p in item.partition("="))
            if expr:
                nxt = sum(
                    out[t.strip()] if t.strip() in out else int(t, 0) for t in expr.split("+")
                )
            out[name] = nxt
            nxt += 1
    return out


def c_struct(text: str, name: str, consts: dict[str, int]) -> tuple[tuple[str, str], ...]:
    """(field, struct format) of ``struct name`` in declaration order, as abi.py writes them:
    arrays as a count, char[] and u8[] as bytes, pad* fields as padding."""
    body = re.search(rf"^struct {name} \{{(.*?)^\}};", text, re.S | re.M)
    assert body is not None, name
    fields = []
    for ctype, field, dim in re.findall(r"^\s*(\w+)\s+(\w+)(?:\[(\w+)\])?;", body.group(1), re.M):
        n = (consts[dim] if dim in consts else int(dim)) if dim else 1
        code = C_TYPES[ctype]
        if field.startswith("pad"):
            fmt = f"{n * struct.calcsize(code)}x"
        elif code == "s" or (code == "B" and dim):
            fmt = f"{n}s"
        else:
            fmt = f"{n}{code}" if dim else code
        fields.append((field, fmt))
    return tuple(fields)


TEXT = c_source()
CONSTS = c_constants(TEXT)


# ---- the C source and abi.py agree -------------------------------------------------------------


def test_every_constant_abi_names_has_its_value_in_the_c_source() -> None:
    for name, value in abi.VALUES.items():
        assert CONSTS.get(name) == value, name


def test_abi_knows_every_constant_of_the_shared_families() -> None:
    shared = {n for n in CONSTS if n.startswith(FAMILIES)}
    assert len(shared) == len(abi.VALUES) > 40
    assert shared == set(abi.VALUES), sorted(shared ^ set(abi.VALUES))


def test_stage_order_is_the_models_and_the_c_enums() -> None:
    assert abi.STAGE_ORDER == STAGES
    c_stages = sorted((v, n) for n, v in CONSTS.items() if n.startswith("ST_"))
    assert tuple(n.removeprefix("ST_").lower() for _, n in c_stages) == STAGES
    assert (abi.ST_SENDTO, abi.ST_FREE, abi.N_STAGES) == (0, 6, len(STAGES))


def test_probe_ids_name_the_c_probes_in_order() -> None:
    c_probes = sorted((v, n) for n, v in CONSTS.items() if n.startswith("P_"))
    assert len(c_probes) == abi.N_PROBES == CONSTS["N_PROBES"]
    for (_, c_name), py_name in zip(c_probes, abi.PROBE_IDS, strict=True):
        assert py_name.endswith(c_name.removeprefix("P_").lower()), (c_name, py_name)


def test_stat_slots_and_the_stats_array_size() -> None:
    assert CONSTS["N_STATS"] == abi.N_STATS == abi.S_RB_FULL + abi.N_PROBES
    assert "BPF_PERCPU_ARRAY(stats, u64, N_STATS)" in TEXT


@pytest.mark.parametrize("name", sorted(abi.LAYOUTS))
def test_struct_layouts_match_field_by_field(name: str) -> None:
    assert c_struct(TEXT, name, CONSTS) == abi.LAYOUTS[name]


def test_record_sizes() -> None:
    assert abi.RECORD_SIZE == 248 and abi.EXIT_RECORD_SIZE == 32
    assert abi.PENDING.size == 24 and abi.GATE.size == 16
    offs = abi.offsets(abi.RECORD_FIELDS)
    assert offs["ts"] == 16 and offs["cpu"] == 176 and offs["comm"] == 212 and offs["dev"] == 228
    # the identity fields: addresses 8-byte aligned, the owner's cgroup id a u64
    assert offs["saddr"] == 144 and offs["daddr"] == 160 and offs["cgroup_id"] == 96
    assert abi.RECORD_SIZE % 8 == 0


# ---- the compile-time check ---------------------------------------------------------------------


def test_compile_defines_cover_every_size_offset_and_value() -> None:
    (define,) = abi.compile_defines()
    name, _, checks = define.partition("=")
    assert name == "TXTOP_ABI" and " " not in name
    sizes = dict(re.findall(r"TXTOP_ABI_SIZE\((\w+),(\d+)\)", checks))
    assert {k: int(v) for k, v in sizes.items()} == {
        k: abi.layout(v).size for k, v in abi.LAYOUTS.items()
    }
    found = re.findall(r"TXTOP_ABI_OFFSET\((\w+),(\w+),(\d+)\)", checks)
    offsets = {(s, f): int(o) for s, f, o in found}
    for struct_name, fields in abi.LAYOUTS.items():
        for field, off in abi.offsets(fields).items():
            if not field.startswith("pad"):
                assert offsets.pop((struct_name, field)) == off
    assert not offsets
    values = dict(re.findall(r"TXTOP_ABI_VALUE\((\w+),(\d+)\)", checks))
    assert {k: int(v) for k, v in values.items()} == abi.VALUES


def test_the_c_source_expands_the_checks() -> None:
    raw = BPF_SRC.read_text()
    assert re.search(r"^TXTOP_ABI$", raw, re.M)
    assert "#error" in raw.split("TXTOP_ABI_SIZE(s, size)")[0]  # refuses to build without them
    for macro in ("TXTOP_ABI_SIZE", "TXTOP_ABI_OFFSET", "TXTOP_ABI_VALUE"):
        assert re.search(rf"#define {macro}\(.*\) \\\n\t_Static_assert\(", raw), macro


@pytest.mark.root
def test_a_layout_that_differs_fails_the_compile_with_its_name() -> None:
    from txtop.probes.bpf import hooks, prerequisites
    from txtop.probes.bpf.headers import prepare_headers

    why = prerequisites.probe_prerequisites()
    if why:
        pytest.skip(f"probes cannot run here: {why}")
    plan, _ = prepare_headers()
    defines = sorted({p.define for p in hooks.PROBES})
    wrong = abi.compile_defines()[0].replace(
        "TXTOP_ABI_OFFSET(txtop_record,cpu,176)", "TXTOP_ABI_OFFSET(txtop_record,cpu,178)"
    )
    assert wrong != abi.compile_defines()[0]
    with (
        pytest.raises(prerequisites.TracerError) as exc,
        prerequisites.compiled([*defines, wrong], plan),
    ):
        pass
    assert "BPF compile/load failed" in str(exc.value)
    assert "abi.py: offset of txtop_record.cpu" in str(exc.value)
