"""Kernel struct member offsets from the running kernel's BTF, read through libbpf (ctypes).

bcc compiles our probes against fallback headers that are not the running kernel's (see
headers.py), so their struct layouts are wrong here. The one true layout is the kernel's own BTF
(``/sys/kernel/btf/vmlinux``). This module lets libbpf parse it (no BTF parser of our own: libbpf
validates the blob and owns the format), walks the members of the structs the probes need, and
turns each member path into constants for the BPF compile::

    offsets = resolve_fields()                  # DEFAULT_FIELDS from /sys/kernel/btf/vmlinux
    BPF(text=..., cflags=CFLAGS + offsets.cflags())
    # in C: bpf_probe_read_kernel(&len, TXTOP_SIZE_SK_BUFF_LEN, (void *)skb + TXTOP_OFF_SK_BUFF_LEN)

Nothing is cached between calls: offsets belong to one kernel build, and loading plus resolving
the default set costs a few milliseconds (``Offsets.load_ms`` / ``resolve_ms``).

Failures are one-line reasons: ``BtfUnavailable`` (no libbpf, no/empty/unreadable BTF: the caller
shows "identity unavailable: <reason>" and runs without identity) and ``FieldNotFound`` (a struct
or member this kernel does not have). Layout constants come from libbpf's UAPI header linux/btf.h.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

DEFAULT_BTF = Path("/sys/kernel/btf/vmlinux")
MACRO_PREFIX = "TXTOP"

# Where Debian/Ubuntu/Fedora put libbpf when ctypes.util.find_library cannot tell (it needs
# ldconfig or gcc, which minimal images may lack).
_LIBBPF_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/libbpf.so.1",
    "/usr/lib/aarch64-linux-gnu/libbpf.so.1",
    "/usr/lib64/libbpf.so.1",
    "/usr/lib/libbpf.so.1",
    "/usr/lib/x86_64-linux-gnu/libbpf.so.0",
    "/usr/lib64/libbpf.so.0",
)

# linux/btf.h (UAPI): BTF kinds and the bit layout of btf_type.info / btf_member.offset.
KIND_INT = 1
KIND_PTR = 2
KIND_ARRAY = 3
KIND_STRUCT = 4
KIND_UNION = 5
KIND_ENUM = 6
KIND_FWD = 7
KIND_TYPEDEF = 8
KIND_VOLATILE = 9
KIND_CONST = 10
KIND_RESTRICT = 11
KIND_FUNC = 12
KIND_FUNC_PROTO = 13
KIND_FLOAT = 16
KIND_TYPE_TAG = 18
KIND_ENUM64 = 19

_KIND_NAMES = {
    KIND_INT: "int",
    KIND_PTR: "ptr",
    KIND_ARRAY: "array",
    KIND_STRUCT: "struct",
    KIND_UNION: "union",
    KIND_ENUM: "enum",
    KIND_FWD: "fwd",
    KIND_TYPEDEF: "typedef",
    KIND_VOLATILE: "volatile",
    KIND_CONST: "const",
    KIND_RESTRICT: "restrict",
    KIND_FUNC: "func",
    KIND_FUNC_PROTO: "func_proto",
    KIND_FLOAT: "float",
    KIND_TYPE_TAG: "type_tag",
    KIND_ENUM64: "enum",
}
# Qualifiers and aliases that do not change a member's layout: skipped to reach the real type.
_MODIFIERS = frozenset({KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG})
_COMPOSITES = frozenset({KIND_STRUCT, KIND_UNION})
_MAX_DEPTH = 32  # kernel BTF nests far less; this only bounds walks over a corrupt (cyclic) blob

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_PATH_RE = re.compile(rf"{_IDENT}(\.{_IDENT})+")
_KEY_RE = re.compile(rf"{_IDENT}(\.{_IDENT})*")


class BtfError(RuntimeError):
    """A one-line reason an offset could not be resolved."""

    def __init__(self, reason: str) -> None:
        super().__init__(" ".join(reason.split()))  # one line, whatever libbpf said


class BtfUnavailable(BtfError):
    """libbpf or the BTF itself cannot be loaded: no offsets at all on this machine."""


class FieldNotFound(BtfError):
    """This kernel's BTF lacks a struct or member, or the path cannot be resolved."""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A member to resolve: ``path`` is ``struct.member[.member...]`` through named or anonymous
    struct/union members (never through pointers). ``key`` names the result and its macros
    (default: the path); ``optional`` members missing from this kernel are listed in
    ``Offsets.missing`` instead of raising (e.g. IPv6 addresses without CONFIG_IPV6)."""

    path: str
    key: str = ""
    optional: bool = False

    def __post_init__(self) -> None:
        if not _PATH_RE.fullmatch(self.path):
            raise ValueError(f"field path {self.path!r} is not struct.member[.member...]")
        if not self.key:
            object.__setattr__(self, "key", self.path)
        if not _KEY_RE.fullmatch(self.key):
            raise ValueError(f"field key {self.key!r} is not a dotted C identifier")

    @property
    def macro(self) -> str:
        """The key as a macro suffix: "sk_buff.sk" -> "SK_BUFF_SK"."""
        return macro_suffix(self.key)


def macro_suffix(key: str) -> str:
    return key.replace(".", "_").upper()


@dataclass(frozen=True, slots=True)
class Field:
    """Where a member lives, in bytes from the start of the outermost struct of its path.

    For a bitfield, ``offset``/``size`` are the smallest 1/2/4/8-byte window holding it (read
    that many bytes at ``offset``), ``bit_offset`` is its first bit counted from the window's
    first byte in BTF/C numbering, ``bit_size`` its width, and ``shift`` how far to shift the
    window's value (read in host byte order) right before masking ``bit_size`` bits.
    """

    key: str
    path: str
    offset: int
    size: int
    kind: str  # of the member's type with typedefs/qualifiers removed: int, ptr, struct, ...
    type_name: str  # as declared, e.g. "__u16", "struct net_device *", "unsigned char *"
    bit_offset: int | None = None
    bit_size: int | None = None

    @property
    def is_bitfield(self) -> bool:
        return self.bit_size is not None

    @property
    def shift(self) -> int:
        if self.bit_offset is None or self.bit_size is None:
            return 0
        if sys.byteorder == "little":
            return self.bit_offset
        # Big-endian compilers number bitfield bits from the most significant end.
        return self.size * 8 - self.bit_offset - self.bit_size


@dataclass(frozen=True)
class Offsets(Mapping[str, Field]):
    """Resolved fields by key (a read-only mapping), what was optional and missing (key ->
    reason), where the BTF came from and what it cost."""

    fields: Mapping[str, Field]
    missing: Mapping[str, str] = field(default_factory=dict)
    btf_path: Path | None = None  # None: libbpf's own vmlinux BTF search
    load_ms: float = 0.0
    resolve_ms: float = 0.0

    def __getitem__(self, key: str) -> Field:
        return self.fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def cflags(self) -> list[str]:
        return cflags(self)


def cflags(offsets: Offsets) -> list[str]:
    """``-D`` flags for the BPF compile. Per key K (see ``FieldSpec.macro``):
    ``TXTOP_HAS_K`` 1/0, and when resolved ``TXTOP_OFF_K`` and ``TXTOP_SIZE_K`` (bytes), plus
    ``TXTOP_SHIFT_K`` and ``TXTOP_BITS_K`` for a bitfield. ``TXTOP_BTF`` says offsets exist."""
    flags = [f"-D{MACRO_PREFIX}_BTF=1"]
    for key, f in offsets.fields.items():
        m = macro_suffix(key)
        flags += [
            f"-D{MACRO_PREFIX}_HAS_{m}=1",
            f"-D{MACRO_PREFIX}_OFF_{m}={f.offset}",
            f"-D{MACRO_PREFIX}_SIZE_{m}={f.size}",
        ]
        if f.bit_size is not None:
            flags += [
                f"-D{MACRO_PREFIX}_SHIFT_{m}={f.shift}",
                f"-D{MACRO_PREFIX}_BITS_{m}={f.bit_size}",
            ]
    flags += [f"-D{MACRO_PREFIX}_HAS_{macro_suffix(key)}=0" for key in offsets.missing]
    return flags


def _sk(member: str, optional: bool = False) -> FieldSpec:
    # struct sock embeds struct sock_common as its first member __sk_common; probes hold a
    # struct sock *, so the offsets are taken through it (sk->sk_family is that in C too).
    return FieldSpec(f"sock.__sk_common.{member}", key=f"sock.{member}", optional=optional)


# What flow and sender identity needs (issue 12).
DEFAULT_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("sk_buff.head"),
    FieldSpec("sk_buff.data"),
    # skb_shared_info (gso_*) sits at head + end: end is a u32 offset from head on 64-bit
    # kernels (NET_SKBUFF_DATA_USES_OFFSET), a pointer elsewhere (Field.kind says which).
    FieldSpec("sk_buff.end"),
    FieldSpec("sk_buff.network_header"),  # the header fields are offsets from head
    FieldSpec("sk_buff.transport_header"),
    FieldSpec("sk_buff.mac_header"),
    FieldSpec("sk_buff.len"),
    FieldSpec("sk_buff.queue_mapping"),
    FieldSpec("sk_buff.protocol"),
    FieldSpec("sk_buff.sk"),
    FieldSpec("sk_buff.dev"),
    FieldSpec("sk_buff.vlan_tci"),
    FieldSpec("sk_buff.vlan_proto"),  # non-zero when a tag is held out of band (6.x)
    FieldSpec("skb_shared_info.gso_segs"),
    FieldSpec("skb_shared_info.gso_size"),
    FieldSpec("net_device.ifindex"),
    _sk("skc_family"),
    _sk("skc_daddr"),
    _sk("skc_rcv_saddr"),
    _sk("skc_dport"),
    _sk("skc_num"),
    _sk("skc_v6_daddr", optional=True),  # only with CONFIG_IPV6
    _sk("skc_v6_rcv_saddr", optional=True),
    FieldSpec("sock.sk_protocol"),  # u16 on recent kernels, an 8-bit bitfield on older ones
)


# ---- libbpf through ctypes ----------------------------------------------------------------------


class _BtfType(ctypes.Structure):
    # struct btf_type: name_off; info (vlen 0-15, kind 24-28, kind_flag 31); size or type.
    _fields_ = [
        ("name_off", ctypes.c_uint32),
        ("info", ctypes.c_uint32),
        ("size_or_type", ctypes.c_uint32),
    ]


class _BtfMember(ctypes.Structure):
    # struct btf_member: offset is in bits, or bitfield_size << 24 | bit offset with kind_flag.
    _fields_ = [
        ("name_off", ctypes.c_uint32),
        ("type", ctypes.c_uint32),
        ("offset", ctypes.c_uint32),
    ]


class _BtfArray(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_uint32),
        ("index_type", ctypes.c_uint32),
        ("nelems", ctypes.c_uint32),
    ]


_lib_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


def _find_libbpf() -> str | None:
    name = ctypes.util.find_library("bpf")
    if name:
        return name
    return next((p for p in _LIBBPF_CANDIDATES if os.path.exists(p)), None)


def _libbpf() -> ctypes.CDLL:
    """The loaded libbpf with prototypes declared. The handle is process state, not kernel
    state, so keeping it is safe (and bcc has it mapped anyway)."""
    global _lib
    with _lib_lock:
        if _lib is None:
            _lib = _load_libbpf()
        return _lib


def _load_libbpf() -> ctypes.CDLL:
    name = _find_libbpf()
    if name is None:
        raise BtfUnavailable("libbpf not found (install libbpf1)")
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise BtfUnavailable(f"cannot load {name}: {exc}") from None
    protos: list[tuple[str, type | None, list[type]]] = [
        ("btf__parse", ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_void_p]),
        ("btf__load_vmlinux_btf", ctypes.c_void_p, []),
        ("btf__free", None, [ctypes.c_void_p]),
        ("btf__type_cnt", ctypes.c_uint32, [ctypes.c_void_p]),
        (
            "btf__find_by_name_kind",
            ctypes.c_int32,
            [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32],
        ),
        ("btf__type_by_id", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_uint32]),
        ("btf__name_by_offset", ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_uint32]),
        ("btf__resolve_size", ctypes.c_int64, [ctypes.c_void_p, ctypes.c_uint32]),
        ("libbpf_set_print", ctypes.c_void_p, [ctypes.c_void_p]),
        ("libbpf_strerror", ctypes.c_int, [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]),
    ]
    for sym, restype, argtypes in protos:
        try:
            fn = getattr(lib, sym)
        except AttributeError:
            raise BtfUnavailable(f"{name} lacks {sym} (need libbpf >= 0.6)") from None
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


def _strerror(lib: ctypes.CDLL, err: int) -> str:
    if err <= 0:
        return "unknown error"
    buf = ctypes.create_string_buffer(128)
    # libbpf's own codes (4000+, e.g. "Invalid ELF format") are unknown to os.strerror.
    if lib.libbpf_strerror(err, buf, len(buf)) == 0 and buf.value:
        return buf.value.decode(errors="replace")
    return os.strerror(err)


def _precheck(path: Path) -> None:
    """Name the common failures plainly before libbpf turns them into an errno."""
    try:
        with open(path, "rb") as f:
            first = f.read(1)
    except FileNotFoundError:
        hint = " (kernel built without CONFIG_DEBUG_INFO_BTF?)" if path == DEFAULT_BTF else ""
        raise BtfUnavailable(f"no BTF at {path}{hint}") from None
    except OSError as exc:
        raise BtfUnavailable(f"cannot read BTF {path}: {exc.strerror or exc}") from None
    if not first:
        raise BtfUnavailable(f"BTF file {path} is empty")


class Btf:
    """One parsed BTF (libbpf ``struct btf *``). Use as a context manager: ``close`` frees it,
    and every Field it returned stays valid (they are plain numbers)."""

    def __init__(self, path: Path | None = DEFAULT_BTF) -> None:
        self.path = path
        self._lib = _libbpf()
        if path is not None:
            _precheck(path)
        with _lib_lock:
            # libbpf prints parse warnings on stderr (the dashboard's terminal): silence them
            # for this call only, restoring whatever bcc or others had set.
            old = self._lib.libbpf_set_print(None)
            try:
                ctypes.set_errno(0)
                if path is None:
                    handle = self._lib.btf__load_vmlinux_btf()
                else:
                    handle = self._lib.btf__parse(os.fsencode(path), None)
                err = ctypes.get_errno()
            finally:
                self._lib.libbpf_set_print(old)
        where = str(path) if path is not None else "the kernel's BTF (libbpf search)"
        if not handle:
            raise BtfUnavailable(f"libbpf cannot load {where}: {_strerror(self._lib, err)}")
        self._btf: int | None = handle
        if self._lib.btf__type_cnt(handle) <= 1:  # id 0 is void: one "type" means none
            self.close()
            raise BtfUnavailable(f"{where} holds no types")

    def __enter__(self) -> Btf:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._btf:
            self._lib.btf__free(self._btf)
        self._btf = None

    # ---- raw type access ------------------------------------------------------------------------

    def _handle(self) -> int:
        if not self._btf:
            raise BtfError("BTF already freed")
        return self._btf

    def _type(self, tid: int) -> _BtfType:
        addr: int | None = self._lib.btf__type_by_id(self._handle(), tid)
        if not addr:
            raise FieldNotFound(f"BTF type id {tid} does not exist")
        return _BtfType.from_address(addr)

    def _name(self, name_off: int) -> str:
        raw = self._lib.btf__name_by_offset(self._handle(), name_off)
        return raw.decode(errors="replace") if raw else ""

    @staticmethod
    def _kind(t: _BtfType) -> int:
        return int(t.info >> 24) & 0x1F

    def _members(self, tid: int) -> list[tuple[str, int, int]]:
        """(name, type id, raw offset) of a struct/union's members, copied out of libbpf."""
        t = self._type(tid)
        vlen = t.info & 0xFFFF
        arr = (_BtfMember * vlen).from_address(ctypes.addressof(t) + ctypes.sizeof(_BtfType))
        return [(self._name(m.name_off), m.type, m.offset) for m in arr]

    def _skip_modifiers(self, tid: int) -> int:
        for _ in range(_MAX_DEPTH):
            if tid == 0:
                return 0
            t = self._type(tid)
            if self._kind(t) not in _MODIFIERS:
                return tid
            tid = t.size_or_type
        raise FieldNotFound(f"BTF type id {tid}: typedef/qualifier chain too deep")

    def type_name(self, tid: int, depth: int = 0) -> str:
        """A C-like spelling of a type, for messages and ``Field.type_name``."""
        if tid == 0:
            return "void"
        if depth > _MAX_DEPTH:
            return "..."
        t = self._type(tid)
        kind, name = self._kind(t), self._name(t.name_off)
        if kind in (KIND_INT, KIND_FLOAT, KIND_TYPEDEF):
            return name
        if kind in (KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_ENUM64):
            return f"{_KIND_NAMES[kind]} {name or '(anonymous)'}"
        if kind == KIND_FWD:
            return f"{'union' if t.info >> 31 else 'struct'} {name}"
        if kind == KIND_PTR:
            return f"{self.type_name(t.size_or_type, depth + 1)} *"
        if kind in (KIND_CONST, KIND_VOLATILE, KIND_RESTRICT):
            return f"{_KIND_NAMES[kind]} {self.type_name(t.size_or_type, depth + 1)}"
        if kind == KIND_TYPE_TAG:
            return self.type_name(t.size_or_type, depth + 1)
        if kind == KIND_ARRAY:
            a = _BtfArray.from_address(ctypes.addressof(t) + ctypes.sizeof(_BtfType))
            return f"{self.type_name(a.type, depth + 1)}[{a.nelems}]"
        return _KIND_NAMES.get(kind, f"kind {kind}")

    # ---- lookups ---------------------------------------------------------------------------------

    def find_composite(self, name: str) -> int:
        """The type id of ``struct name`` (or ``union name``)."""
        for kind in (KIND_STRUCT, KIND_UNION):
            tid = self._lib.btf__find_by_name_kind(self._handle(), name.encode(), kind)
            if tid > 0:
                return int(tid)
        raise FieldNotFound(f"no struct {name} in {self._where()}")

    def sizeof(self, name: str) -> int:
        return self._size(self.find_composite(name))

    def _size(self, tid: int) -> int:
        size = int(self._lib.btf__resolve_size(self._handle(), tid))
        if size < 0:
            raise FieldNotFound(f"type {self.type_name(tid)} has no size")
        return size

    def _where(self) -> str:
        return str(self.path) if self.path is not None else "the kernel's BTF"

    def _find_member(self, tid: int, name: str, depth: int = 0) -> tuple[int, int, int] | None:
        """(bit offset, type id, bitfield bits or 0) of member ``name`` of the struct/union
        ``tid``, looking inside anonymous struct/union members as C does."""
        if depth > _MAX_DEPTH:
            return None
        kind_flag = self._type(tid).info >> 31
        for mname, mtype, raw in self._members(tid):
            if kind_flag:
                bit_off, bits = raw & 0xFFFFFF, raw >> 24
            else:
                bit_off, bits = raw, 0
            if mname == name:
                return bit_off, mtype, bits
            if not mname:  # anonymous member: its members are the parent's in C
                inner = self._skip_modifiers(mtype)
                if inner and self._kind(self._type(inner)) in _COMPOSITES:
                    found = self._find_member(inner, name, depth + 1)
                    if found is not None:
                        return bit_off + found[0], found[1], found[2]
        return None

    def field(self, path: str, key: str | None = None) -> Field:
        """Resolve ``struct.member[.member...]`` (see FieldSpec)."""
        if not _PATH_RE.fullmatch(path):
            raise FieldNotFound(f"field path {path!r} is not struct.member[.member...]")
        root, *members = path.split(".")
        tid = self.find_composite(root)
        bits_total = 0
        bitfield = 0
        mtype = tid
        walked = root
        for i, member in enumerate(members):
            if i:  # descending into the previous member: it must be a struct or union
                inner = self._skip_modifiers(mtype)
                if not inner or self._kind(self._type(inner)) not in _COMPOSITES:
                    why = f"{walked} is {self.type_name(mtype)}, not a struct or union"
                    if inner and self._kind(self._type(inner)) == KIND_PTR:
                        why += ": paths do not follow pointers (resolve the pointee's separately)"
                    raise FieldNotFound(why)
                tid = inner
            found = self._find_member(tid, member)
            if found is None:
                raise FieldNotFound(f"{self.type_name(tid)} ({walked}) has no member {member}")
            bit_off, mtype, bitfield = found
            bits_total += bit_off
            walked = f"{walked}.{member}"
        resolved = self._skip_modifiers(mtype)
        if resolved == 0:
            raise FieldNotFound(f"{path} has type void")
        rt = self._type(resolved)
        kind = self._kind(rt)
        if not bitfield and kind == KIND_INT:
            # Old encoders (no kind_flag) describe a bitfield as an int narrower than its size.
            enc = ctypes.c_uint32.from_address(ctypes.addressof(rt) + ctypes.sizeof(_BtfType)).value
            nr_bits, int_off = enc & 0xFF, (enc >> 16) & 0xFF
            if int_off or nr_bits != rt.size_or_type * 8:
                bitfield = nr_bits
                bits_total += int_off
        f_key = key or path
        kind_name = _KIND_NAMES.get(kind, f"kind {kind}")
        tname = self.type_name(mtype)
        if bitfield:
            start, first = divmod(bits_total, 8)
            window = next((w for w in (1, 2, 4, 8) if first + bitfield <= w * 8), 0)
            if not window:
                raise FieldNotFound(
                    f"{path}: a {bitfield}-bit bitfield at bit {first} spans 9 bytes"
                )
            return Field(f_key, path, start, window, kind_name, tname, first, bitfield)
        if bits_total % 8:
            raise FieldNotFound(f"{path} starts at bit {bits_total}, not on a byte")
        return Field(f_key, path, bits_total // 8, self._size(mtype), kind_name, tname)


def resolve_fields(
    specs: Iterable[FieldSpec] = DEFAULT_FIELDS, btf_path: Path | None = DEFAULT_BTF
) -> Offsets:
    """Resolve ``specs`` from the BTF at ``btf_path`` (None: wherever libbpf finds the running
    kernel's). Raises BtfUnavailable when the BTF cannot be used at all, FieldNotFound when a
    required member is missing, ValueError when two keys would give the same macro."""
    specs = list(specs)
    seen: dict[str, str] = {}
    for s in specs:
        if seen.setdefault(s.macro, s.key) != s.key:
            raise ValueError(f"keys {seen[s.macro]!r} and {s.key!r} give the same macro {s.macro}")
    t0 = time.perf_counter()
    with Btf(btf_path) as btf:
        t1 = time.perf_counter()
        fields: dict[str, Field] = {}
        missing: dict[str, str] = {}
        for s in specs:
            try:
                fields[s.key] = btf.field(s.path, s.key)
            except FieldNotFound as exc:
                if not s.optional:
                    raise
                missing[s.key] = str(exc)
        t2 = time.perf_counter()
    return Offsets(fields, missing, btf_path, (t1 - t0) * 1e3, (t2 - t1) * 1e3)


def unavailable_reason(exc: BaseException) -> str:
    """The one line to show when identity cannot work: "identity unavailable: <reason>"."""
    return f"identity unavailable: {' '.join(str(exc).split()) or type(exc).__name__}"


__all__ = [
    "DEFAULT_BTF",
    "DEFAULT_FIELDS",
    "Btf",
    "BtfError",
    "BtfUnavailable",
    "Field",
    "FieldNotFound",
    "FieldSpec",
    "Offsets",
    "cflags",
    "resolve_fields",
    "unavailable_reason",
]
