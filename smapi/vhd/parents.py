"""Read a child's parent locators (bounded, validated) and produce the candidate names to resolve."""

from typing import Iterator, List, Tuple, Union

from . import constants as C
from . import locators
from .errors import CorruptImage, UnsafeParentPath
from .image import VhdImage


def read_locators(img: VhdImage) -> List[Tuple[int, int, str]]:
    """``(index, platform code, decoded text)`` of every path locator, in on-disk order.

    A payload is only read when it lies inside the file and is of sane length, so a forged ``data_length`` can
    neither make us read outside the image nor allocate more than :data:`locators.MAX_LOCATOR_BYTES`.
    """
    assert img.header is not None
    out = []
    for i, loc in enumerate(img.header.locators):
        if loc.code == C.PLAT_NONE:
            continue
        if loc.code not in C.KNOWN_PLATFORMS:
            raise CorruptImage(f"unknown platform code {loc.code:#010x}", field=f"header.locator[{i}].code",
                               image=img.name)
        if loc.code == C.PLAT_MAC:
            continue  # opaque Mac OS alias: nothing to resolve
        if loc.data_length > locators.MAX_LOCATOR_BYTES or loc.data_length > loc.space_bytes:
            raise CorruptImage(f"data length {loc.data_length} exceeds its space {loc.space_bytes}",
                               field=f"header.locator[{i}].data_length", image=img.name)
        if loc.data_offset + loc.data_length > img.file_size or loc.data_offset < C.SECTOR:
            raise CorruptImage(f"payload {loc.data_length}@{loc.data_offset} outside the file",
                               field=f"header.locator[{i}].data_offset", image=img.name)
        payload = img.backing.pread(loc.data_length, loc.data_offset)
        out.append((i, loc.code, locators.decode(loc.code, payload, image=img.name, index=i)))
    return out


def parent_candidates(img: VhdImage) -> Iterator[Union[str, UnsafeParentPath]]:
    """Safe relative names in blktap's lookup order, then the header's parent name; unsafe ones as exceptions."""
    assert img.header is not None
    texts = [text for _, code, text in sorted(read_locators(img), key=lambda t: _rank(t[1]))]
    if img.header.parent_name:
        texts.append(img.header.parent_name)
    for text in texts:
        try:
            yield locators.safe_relative_name(text, image=img.name)
        except UnsafeParentPath as e:
            yield e


def _rank(code: int) -> int:
    order = {C.PLAT_MACX: 0, C.PLAT_W2KU: 1, C.PLAT_W2RU: 2}
    return order.get(code, 3)
