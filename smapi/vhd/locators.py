"""Parent locators: encode them the way blktap writes them, decode them, and refuse unsafe paths.

blktap writes three locators, MacX, W2ku and W2ru, all holding the same *relative* path (``file://./p.vhd`` in UTF-8,
``.\\p.vhd`` in UTF-16LE). Decoding yields a normalised relative name with ``/`` separators; anything absolute or
climbing with ``..`` is rejected, because a parent must only ever be looked up inside a caller-given directory.
"""

from typing import Optional

from . import constants as C
from .errors import CorruptImage, UnsafeParentPath

# Order matters: blktap writes (and tries) MacX first.
WRITE_ORDER = (C.PLAT_MACX, C.PLAT_W2KU, C.PLAT_W2RU)
PLATFORM_NAMES = {C.PLAT_MACX: "MacX", C.PLAT_W2KU: "W2ku", C.PLAT_W2RU: "W2ru", C.PLAT_MAC: "Mac ",
                  C.PLAT_WI2K: "Wi2k", C.PLAT_WI2R: "Wi2r"}
MAX_LOCATOR_BYTES = 64 * 1024  # no real path needs more; bounds what a forged data_length can make us read


def safe_relative_name(path: str, *, image: Optional[str] = None, what: str = "parent locator") -> str:
    """Normalise a locator path to ``a/b.vhd`` form, or raise :class:`UnsafeParentPath`."""
    if "\0" in path:
        raise UnsafeParentPath(f"{what} contains a NUL character", image=image)
    p = path.replace("\\", "/")
    if p.startswith("file://"):
        p = p[len("file://"):]
    if len(p) >= 2 and p[1] == ":" and p[0].isalpha():
        raise UnsafeParentPath(f"{what} {path!r} is an absolute Windows path", image=image)
    if p.startswith("/"):
        raise UnsafeParentPath(f"{what} {path!r} is absolute", image=image)
    parts = [c for c in p.split("/") if c not in ("", ".")]
    if any(c == ".." for c in parts):
        raise UnsafeParentPath(f"{what} {path!r} leaves the image directory ('..')", image=image)
    if not parts:
        raise UnsafeParentPath(f"{what} {path!r} names no file", image=image)
    return "/".join(parts)


def encode(code: int, name: str) -> bytes:
    """Payload of one locator for the relative ``name`` (``/`` separated)."""
    if code == C.PLAT_MACX:
        return ("file://./" + name).encode("utf-8")
    if code in (C.PLAT_W2KU, C.PLAT_W2RU):
        return (".\\" + name.replace("/", "\\")).encode("utf-16-le")
    raise ValueError(f"cannot encode platform {code:#x}")


def decode(code: int, payload: bytes, *, image: Optional[str] = None, index: int = 0) -> str:
    """Text of a locator payload; raises CorruptImage for undecodable bytes."""
    fld = f"header.locator[{index}].data"
    try:
        if code in (C.PLAT_MACX,):
            text = payload.decode("utf-8")
        elif code in (C.PLAT_W2KU, C.PLAT_W2RU, C.PLAT_WI2K, C.PLAT_WI2R):
            text = payload[: len(payload) // 2 * 2].decode("utf-16-le")
        else:
            raise CorruptImage(f"platform {code:#010x} holds no path", field=fld, image=image)
    except UnicodeDecodeError as e:
        raise CorruptImage(f"undecodable {PLATFORM_NAMES.get(code, hex(code))} path: {e.reason}", field=fld,
                           image=image) from None
    return text.split("\0", 1)[0]

