"""The C engine's format constants (smapi/datapath/native/vhdfmt.h) equal the Python library's (smapi.vhd.constants),
the one place they are defined for Python; a change to either side fails here."""

from __future__ import annotations

import os
import re

from smapi.datapath import native
from smapi.vhd import constants as C

HEADER = os.path.join(native.HERE, "vhdfmt.h")

EXPECTED = {
    "VHD_SECTOR": C.SECTOR, "VHD_FOOTER_SIZE": C.FOOTER_SIZE, "VHD_HEADER_SIZE": C.HEADER_SIZE,
    "VHD_FEATURES_RESERVED": C.FEATURES_RESERVED, "VHD_FILE_FORMAT_VERSION": C.FILE_FORMAT_VERSION,
    "VHD_HEADER_VERSION": C.HEADER_VERSION, "VHD_DISK_FIXED": C.DISK_FIXED, "VHD_DISK_DYNAMIC": C.DISK_DYNAMIC,
    "VHD_DISK_DIFF": C.DISK_DIFF, "VHD_BAT_UNUSED": C.BAT_UNUSED, "VHD_MIN_BLOCK_SIZE": C.MIN_BLOCK_SIZE,
    "VHD_MAX_BLOCK_SIZE": C.MAX_BLOCK_SIZE, "VHD_MAX_VIRTUAL_SIZE": C.MAX_VIRTUAL_SIZE,
    "VHD_MAX_CHAIN_DEPTH": C.MAX_CHAIN_DEPTH, "VHD_DATA_ALIGNMENT": C.DATA_ALIGNMENT,
    "VHD_LOCATOR_COUNT": C.LOCATOR_COUNT, "VHD_FOOTER_COOKIE": C.FOOTER_COOKIE,
    "VHD_HEADER_COOKIE": C.HEADER_COOKIE, "VHD_BATMAP_COOKIE": C.BATMAP_COOKIE,
}


def _c_value(expr: str) -> object:
    expr = expr.strip()
    if expr.startswith('"'):
        return expr.strip('"').encode()
    expr = re.sub(r"(?<=[0-9A-Fa-f])(ull|u|ULL|U)\b", "", expr)
    return eval(expr, {"__builtins__": {}})  # integer arithmetic of our own header only


def test_c_constants_equal_python_constants():
    with open(HEADER) as f:
        defines = dict(re.findall(r"^#define (VHD_\w+) (.+)$", f.read(), re.M))
    assert set(defines) == set(EXPECTED), "a constant was added to one side only: list it in EXPECTED"
    for name, want in EXPECTED.items():
        assert _c_value(defines[name]) == want, name
