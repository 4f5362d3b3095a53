"""Shared helpers of the VHD tests: in-memory stores, a dict resolver, a crash-injecting backing."""

import random
from typing import Dict, List, Optional

from smapi.vhd import MemoryBacking, ParentNotFound, ParentResolver, VhdImage
from smapi.vhd.chain import Chain, build_chain
from smapi.vhd.create import create_child_on, create_sparse_on


class DictResolver(ParentResolver):
    """Names -> in-memory backings; the test analogue of an LVM resolver."""

    def __init__(self) -> None:
        self.stores: Dict[str, MemoryBacking] = {}

    def open_parent(self, name: str, *, writable: bool = False) -> MemoryBacking:
        try:
            return self.stores[name]
        except KeyError:
            raise ParentNotFound(f"{name} not in the test store") from None


class CrashAfter(Exception):
    """Raised by :class:`CrashingBacking` to simulate a power cut."""


class CrashingBacking(MemoryBacking):
    """A memory store that lets ``budget`` mutating calls (pwrite/resize) through, then raises."""

    def __init__(self, data: bytes, budget: int, name: str = "<crash>") -> None:
        super().__init__(data, name=name)
        self.budget = budget
        self.calls = 0

    def _tick(self) -> None:
        if self.calls >= self.budget:
            raise CrashAfter(f"crash at write {self.calls}")
        self.calls += 1

    def pwrite(self, data, offset):  # type: ignore[override]
        self._tick()
        super().pwrite(data, offset)

    def pwritev(self, buffers, offset):  # type: ignore[override]
        self._tick()  # one vectored write is one I/O
        for b in buffers:
            MemoryBacking.pwrite(self, b, offset)
            offset += len(b)

    def resize(self, size):  # type: ignore[override]
        self._tick()
        super().resize(size)


class MemChain:
    """A chain of in-memory images built by snapshots, with helpers to reopen it after structural changes."""

    def __init__(self, size: int, block_size: int) -> None:
        self.resolver = DictResolver()
        self.names: List[str] = []  # base first
        self.counter = 0
        base = self._new_name()
        create_sparse_on(self.resolver.stores.setdefault(base, MemoryBacking(name=base)), size,
                         block_size=block_size, round_to_block=False)
        self.names.append(base)
        self.chain: Optional[Chain] = None
        self.reopen()

    def _new_name(self) -> str:
        self.counter += 1
        return f"img{self.counter}.vhd"

    def reopen(self) -> Chain:
        if self.chain is not None:
            self.chain.close()
        leaf = self.names[-1]
        img = VhdImage.open(self.resolver.stores[leaf], name=leaf, writable=True)
        self.chain = build_chain(img, self.resolver)
        return self.chain

    def snapshot(self) -> None:
        assert self.chain is not None
        self.chain.flush()
        name = self._new_name()
        store = self.resolver.stores.setdefault(name, MemoryBacking(name=name))
        create_child_on(store, self.chain.leaf, self.names[-1])
        self.names.append(name)
        self.reopen()

    def coalesce(self, level: int) -> None:
        """Coalesce image ``names[level]`` (level >= 1) into its parent and drop it from the chain."""
        from smapi.vhd.coalesce import coalesce_images
        from smapi.vhd.meta import set_parent_image

        assert self.chain is not None
        self.chain.close()
        self.chain = None
        child_name, parent_name = self.names[level], self.names[level - 1]
        child = VhdImage.open(self.resolver.stores[child_name], name=child_name, writable=False)
        parent = VhdImage.open(self.resolver.stores[parent_name], name=parent_name, writable=True)
        coalesce_images(child, parent, batch_bytes=64 * 1024)
        if level + 1 < len(self.names):
            gc_name = self.names[level + 1]
            gc = VhdImage.open(self.resolver.stores[gc_name], name=gc_name, writable=True)
            set_parent_image(gc, parent, parent_name)
            gc.close()
        child.close()
        parent.close()
        del self.resolver.stores[child_name]
        del self.names[level]
        self.reopen()


def rand_bytes(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)
