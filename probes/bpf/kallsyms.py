"""Kernel text addresses -> ``symbol+0xoff`` from /proc/kallsyms (skb free call sites).

``parse_kallsyms`` is pure; ``KernelSymbols`` loads /proc/kallsyms once, lazily, and memoises
answers. Without root (or with kptr_restrict) kallsyms shows zero addresses: then nothing is
resolved and callers show the raw address.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass
from pathlib import Path

KALLSYMS = Path("/proc/kallsyms")
_TEXT_TYPES = frozenset("tTwW")  # text (local/global) and weak symbols


@dataclass(frozen=True, slots=True)
class SymbolTable:
    addrs: tuple[int, ...]  # sorted
    names: tuple[str, ...]  # "name" or "name [module]"

    def resolve(self, addr: int) -> str | None:
        """``name+0xoff`` for an address inside a known text symbol, else None."""
        i = bisect.bisect_right(self.addrs, addr) - 1
        if i < 0 or addr <= 0:
            return None
        # Past the last symbol we cannot know where its text ends: only trust small offsets.
        if i + 1 == len(self.addrs) and addr - self.addrs[i] > 0x100000:
            return None
        name = self.names[i]
        module = ""
        if " " in name:
            name, module = name.split(" ", 1)
            module = " " + module
        return f"{name}+0x{addr - self.addrs[i]:x}{module}"


def parse_kallsyms(text: str) -> SymbolTable:
    """Text symbols of a /proc/kallsyms dump. Zero addresses (hidden) are skipped."""
    pairs: list[tuple[int, str]] = []
    for line in text.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 3 or parts[1] not in _TEXT_TYPES:
            continue
        try:
            addr = int(parts[0], 16)
        except ValueError:
            continue
        if addr == 0:
            continue
        name = parts[2]
        if len(parts) == 4:  # "[module]"
            name = f"{name} {parts[3].strip()}"
        pairs.append((addr, name))
    pairs.sort()
    # Aliases share an address (_stext/_text): keep the first name in sort order.
    addrs: list[int] = []
    names: list[str] = []
    for addr, name in pairs:
        if addrs and addrs[-1] == addr:
            continue
        addrs.append(addr)
        names.append(name)
    return SymbolTable(tuple(addrs), tuple(names))


class KernelSymbols:
    """Thread-safe, lazy, memoised resolver over /proc/kallsyms."""

    def __init__(self, path: Path = KALLSYMS, max_cache: int = 4096) -> None:
        self._path = path
        self._table: SymbolTable | None = None
        self._loaded = False
        self._cache: dict[int, str | None] = {}
        self._max_cache = max_cache
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return bool(self._load().addrs)

    def _load(self) -> SymbolTable:
        with self._lock:
            if not self._loaded:
                try:
                    text = self._path.read_text(errors="replace")
                except OSError:
                    text = ""
                self._table = parse_kallsyms(text)
                self._loaded = True
            assert self._table is not None
            return self._table

    def resolve(self, addr: int) -> str | None:
        hit = self._cache.get(addr)
        if hit is not None or addr in self._cache:
            return hit
        result = self._load().resolve(addr)
        if len(self._cache) >= self._max_cache:
            self._cache.clear()
        self._cache[addr] = result
        return result
