"""Turning the failures of lower layers into the storage interface's typed errors."""

from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from typing import Any, Iterator

from smapi.interface.errors import Backend_error, SmapiError
from smapi.sr.locks import LockTimeout
from smapi.vhd import ChainTooDeep, VhdError


def no_space(detail: str) -> Backend_error:
    return Backend_error.classic("SRNoSpace", detail)


class NoSpaceError(Backend_error, OSError):
    """SRNoSpace from a data write (`open_vdi(...).write`, an upload's scratch): typed for SMAPI callers, and still
    an OSError with errno ENOSPC for code that passes OS errors on by number (a FUSE file system serving a VDI
    must answer ENOSPC, not EIO)."""

    def __init__(self, *params: Any) -> None:
        super().__init__(*params)
        self.errno = errno.ENOSPC
        self.strerror = os.strerror(errno.ENOSPC)


@contextmanager
def data_write_errors(what: str) -> Iterator[None]:
    """A data write's ENOSPC/EDQUOT leaves as `NoSpaceError`; every other error as it came."""
    try:
        yield
    except SmapiError:
        raise
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise NoSpaceError.classic("SRNoSpace", f"{what}: {e.strerror}") from e
        raise


def is_no_space(err: BaseException) -> bool:
    """An ENOSPC/EDQUOT OSError, or the SRNoSpace error made of one."""
    if isinstance(err, OSError):
        return err.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(err, Backend_error) and err.code == no_space("").code


def chain_too_long(vdi: str, depth: int) -> Backend_error:
    return Backend_error.classic(
        "SnapshotChainTooLong",
        f"VDI {vdi} already has a chain of {depth} images (limit 30); destroy unused snapshots and run "
        f"`smapi sr-gc` so the chain can be coalesced",
    )


@contextmanager
def mapped_errors(what: str) -> Iterator[None]:
    """Run a step of `what`; VHD-library and OS errors leave as Backend_error with their own message."""
    try:
        yield
    except SmapiError:
        raise
    except ChainTooDeep as e:
        raise Backend_error.classic("SnapshotChainTooLong", f"{what}: {e}") from e
    except VhdError as e:
        raise Backend_error("VHD_ERROR", [what, str(e)]) from e
    except LockTimeout as e:
        raise Backend_error.classic("LockErr", f"{what}: {e}; another operation holds it") from e
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise no_space(f"{what}: {e.strerror}") from e
        raise Backend_error.classic("EIO", f"{what}: {e}") from e
