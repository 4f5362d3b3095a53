"""Where image bytes live: the small storage protocol every image operation goes through.

The VHD engine never calls ``open()`` on a path by itself once an image is open; it only uses a :class:`Backing`, so
the same code serves a regular file, an LV reached through a segment map or a LUN. A backing is a flat byte array with
positional I/O; it knows nothing about VHD.
"""

import mmap
import os
from abc import ABC, abstractmethod
from typing import Optional, TypeVar, Union

from .errors import InvalidArgument, ReadOnlyImage

B = TypeVar("B", bound="Backing")

# os.preadv exists on Linux/BSD; fall back to pread + copy elsewhere.
_preadv = getattr(os, "preadv", None)


class Backing(ABC):
    """The contract (an abstract base class) of a byte store holding one image.

    Required (abstract): :meth:`pread`, :meth:`pwrite`, :meth:`size`, :meth:`resize`, and the attributes ``name``
    (for messages) and ``writable``. ``resize`` growing the store must make the new bytes read as zeros (a sparse
    file does; an LV substrate must discard or zero the new extent).

    Optional, with a documented default that is correct for any store: :meth:`readinto` and :meth:`pwritev`
    (through ``pread``/``pwrite``), :meth:`flush` and :meth:`close` (nothing to do: a store without buffers or
    handles), :meth:`mtime` (no modification time).
    """

    name: str = "<backing>"
    writable: bool = False

    @abstractmethod
    def pread(self, length: int, offset: int) -> bytes:
        """Return up to ``length`` bytes at ``offset``; fewer only at the end of the store."""

    def readinto(self, buf: memoryview, offset: int) -> int:
        """Fill ``buf`` from ``offset``; return the byte count (short only at the end of the store)."""
        data = self.pread(len(buf), offset)
        buf[: len(data)] = data
        return len(data)

    @abstractmethod
    def pwrite(self, data: Union[bytes, bytearray, memoryview], offset: int) -> None:
        """Write all of ``data`` at ``offset``, growing the store if needed."""

    def pwritev(self, buffers: "list[Union[bytes, bytearray, memoryview]]", offset: int) -> None:
        """Write ``buffers`` back to back from ``offset`` (one syscall where the store supports it)."""
        for buf in buffers:
            self.pwrite(buf, offset)
            offset += len(buf)

    @abstractmethod
    def size(self) -> int:
        """The store's length in bytes."""

    @abstractmethod
    def resize(self, size: int) -> None:
        """Grow (new bytes read as zeros) or shrink the store to ``size`` bytes."""

    def flush(self) -> None:
        """Make every completed write durable (a write barrier for the ordering rules of the engine)."""
        return None

    def can_punch(self) -> bool:
        """True if :meth:`punch_hole` may release space here (a writable regular file)."""
        return False

    def punch_hole(self, offset: int, length: int) -> bool:
        """Make ``[offset, offset + length)`` read as zeros and give its space back, keeping the size; False when
        the store cannot (nothing changed). Callers pass ranges of whole file-system blocks."""
        return False

    def device_extents(self) -> "Optional[list[tuple[str, int, int]]]":
        """Where the store's bytes lie on block devices, in order: ``(device, offset, length)`` runs, for a server
        that does its own I/O on the devices (the native datapath on an LV). None: no such map (a file)."""
        return None

    def close(self) -> None:
        """Release the store; further calls are undefined."""
        return None

    def mtime(self) -> Optional[float]:
        """Modification time (Unix seconds) if the store has one; blktap records it as the parent timestamp."""
        return None

    def __enter__(self: B) -> B:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FileBacking(Backing):
    """A regular file or block device, by path or by an already open descriptor."""

    def __init__(
        self,
        target: Union[str, "os.PathLike[str]", int],
        *,
        writable: bool = False,
        create: bool = False,
        sync: bool = True,
    ) -> None:
        """Open ``target``. ``create`` makes a new file and fails if it exists; ``sync`` makes :meth:`flush` call
        ``fdatasync`` (turn it off only for scratch images whose durability does not matter)."""
        self.writable = writable or create
        self._sync = sync
        self._punch_refused = False
        if isinstance(target, int):
            self._fd = target
            self._owns_fd = False
            self.name = f"<fd {target}>"
        else:
            path = os.fspath(target)
            flags = os.O_RDWR if self.writable else os.O_RDONLY
            if create:
                flags |= os.O_CREAT | os.O_EXCL
            flags |= getattr(os, "O_CLOEXEC", 0)
            self._fd = os.open(path, flags, 0o644)
            self._owns_fd = True
            self.name = path

    @property
    def fd(self) -> int:
        return self._fd

    def pread(self, length: int, offset: int) -> bytes:
        return os.pread(self._fd, length, offset)

    def readinto(self, buf: memoryview, offset: int) -> int:
        if _preadv is None:  # pragma: no cover
            return super().readinto(buf, offset)
        total = 0
        view = memoryview(buf).cast("B")
        while total < len(view):
            n = _preadv(self._fd, [view[total:]], offset + total)
            if n <= 0:
                break
            total += n
        return total

    def pwrite(self, data: Union[bytes, bytearray, memoryview], offset: int) -> None:
        if not self.writable:
            raise ReadOnlyImage("write to a read-only backing", image=self.name)
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            done += os.pwrite(self._fd, view[done:], offset + done)

    def pwritev(self, buffers: "list[Union[bytes, bytearray, memoryview]]", offset: int) -> None:
        if not self.writable:
            raise ReadOnlyImage("write to a read-only backing", image=self.name)
        views = [memoryview(b).cast("B") for b in buffers]
        total = sum(len(v) for v in views)
        done = os.pwritev(self._fd, views, offset)
        if done < total:  # rare partial write: finish piecewise
            flat = b"".join(bytes(v) for v in views)
            self.pwrite(memoryview(flat)[done:], offset + done)

    def size(self) -> int:
        st = os.fstat(self._fd)
        if st.st_size == 0 and not _is_regular(st.st_mode):
            # Block devices report 0 in st_size; seeking to the end gives their capacity.
            return os.lseek(self._fd, 0, os.SEEK_END)
        return st.st_size

    def resize(self, size: int) -> None:
        if not self.writable:
            raise ReadOnlyImage("resize of a read-only backing", image=self.name)
        os.ftruncate(self._fd, size)

    def flush(self) -> None:
        if self.writable and self._sync:
            os.fdatasync(self._fd)

    def can_punch(self) -> bool:
        return self.writable and not self._punch_refused and _is_regular(os.fstat(self._fd).st_mode)

    def punch_hole(self, offset: int, length: int) -> bool:
        if not self.writable:
            raise ReadOnlyImage("hole punch in a read-only backing", image=self.name)
        if not self.can_punch():
            return False
        if _punch(self._fd, offset, length):
            return True
        self._punch_refused = True  # this file system cannot (later calls return at once)
        return False

    def close(self) -> None:
        if self._owns_fd and self._fd >= 0:
            os.close(self._fd)
        self._fd = -1

    def mtime(self) -> Optional[float]:
        return os.fstat(self._fd).st_mtime


class _Punch:
    """``fallocate(PUNCH_HOLE | KEEP_SIZE)`` through libc (the os module has no fallocate): True when done, False
    when the file system cannot (EOPNOTSUPP: NFS before 4.2); other errors raise."""

    FLAGS = 0x01 | 0x02  # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE (linux/falloc.h)

    def __init__(self) -> None:
        self._fn: Optional[object] = None

    def __call__(self, fd: int, offset: int, length: int) -> bool:
        import ctypes
        import errno

        if self._fn is None:
            fn = getattr(ctypes.CDLL(None, use_errno=True), "fallocate", None)
            if fn is None:  # pragma: no cover - not glibc
                return False
            fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
            fn.restype = ctypes.c_int
            self._fn = fn
        if self._fn(fd, self.FLAGS, offset, length) == 0:  # type: ignore[operator]
            return True
        err = ctypes.get_errno()
        if err in (errno.EOPNOTSUPP, errno.ENOSYS):
            return False
        raise OSError(err, os.strerror(err))


_punch = _Punch()


def _is_regular(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)


class MemoryBacking(Backing):
    """An in-memory store; used by tests, fuzzing and for building small images before copying them out."""

    def __init__(self, data: Union[bytes, bytearray, None] = None, *, writable: bool = True, name: str = "<memory>"):
        self.buf = bytearray(data or b"")
        self.writable = writable
        self.name = name

    def pread(self, length: int, offset: int) -> bytes:
        if length < 0 or offset < 0:
            raise InvalidArgument(f"negative read {length}@{offset}", image=self.name)
        return bytes(self.buf[offset : offset + length])

    def pwrite(self, data: Union[bytes, bytearray, memoryview], offset: int) -> None:
        if not self.writable:
            raise ReadOnlyImage("write to a read-only backing", image=self.name)
        end = offset + len(data)
        if end > len(self.buf):
            self.buf.extend(bytes(end - len(self.buf)))
        self.buf[offset:end] = data

    def size(self) -> int:
        return len(self.buf)

    def resize(self, size: int) -> None:
        if not self.writable:
            raise ReadOnlyImage("resize of a read-only backing", image=self.name)
        if size < len(self.buf):
            del self.buf[size:]
        else:
            self.buf.extend(bytes(size - len(self.buf)))


def aligned_buffer(size: int) -> mmap.mmap:
    """A page-aligned scratch buffer: ``preadv`` into it runs 2-3x faster than into a ``bytearray`` (ref. doc §5)."""
    return mmap.mmap(-1, max(size, 1))
