"""On-disk constants of the VHD format and of its blktap extensions (see docs: vhd-format reference, §1)."""

SECTOR = 512
KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

FOOTER_COOKIE = b"conectix"
POISON_COOKIE = b"v_poison"  # blktap: a disabled VHD
HEADER_COOKIE = b"cxsparse"
BATMAP_COOKIE = b"tdbatmap"

FOOTER_SIZE = 512
HEADER_SIZE = 1024
HEADER_OFFSET = 512  # every writer puts the dynamic header right after the footer copy
DEFAULT_TABLE_OFFSET = HEADER_OFFSET + HEADER_SIZE  # 1536

FEATURES_RESERVED = 0x2  # must be set
FEATURES_TEMPORARY = 0x1
FILE_FORMAT_VERSION = 0x00010000
HEADER_VERSION = 0x00010000
FIXED_DATA_OFFSET = 0xFFFFFFFFFFFFFFFF
HEADER_DATA_OFFSET = 0xFFFFFFFFFFFFFFFF

DISK_FIXED = 2
DISK_DYNAMIC = 3
DISK_DIFF = 4
DISK_TYPE_NAMES = {DISK_FIXED: "fixed", DISK_DYNAMIC: "dynamic", DISK_DIFF: "differencing"}

# blktap identity: qemu sizes "tap" images by current_size, not by CHS (vhd-format ref §3).
CREATOR_APP = b"tap\0"
CREATOR_VERSION = 0x00010003
CREATOR_OS = 0
BATMAP_VERSION = 0x00010002

VHD_EPOCH = 946684800  # 2000-01-01T00:00:00Z in Unix seconds

BAT_UNUSED = 0xFFFFFFFF
DEFAULT_BLOCK_SIZE = 2 * MiB
MIN_BLOCK_SIZE = SECTOR
MAX_BLOCK_SIZE = 2 * MiB  # blktap rejects larger blocks
MAX_VIRTUAL_SIZE = 2040 * GiB  # SM MAX_VHD_SIZE == qemu VHD_MAX_SECTORS
MAX_CHAIN_DEPTH = 30  # images in a chain, XenServer MAX_CHAIN_SIZE
DATA_ALIGNMENT = 4096  # blktap keeps block data 4 KiB aligned (O_DIRECT)

# Parent locator platform codes.
PLAT_NONE = 0
PLAT_W2KU = 0x57326B75
PLAT_W2RU = 0x57327275
PLAT_MACX = 0x4D616358
PLAT_MAC = 0x4D616320
PLAT_WI2K = 0x5769326B
PLAT_WI2R = 0x57693272
KNOWN_PLATFORMS = {PLAT_W2KU, PLAT_W2RU, PLAT_MACX, PLAT_MAC, PLAT_WI2K, PLAT_WI2R}
LOCATOR_COUNT = 8
# Room reserved per locator when we write one, so a later reparent to a longer name still fits in place.
LOCATOR_RESERVE = 1024


def pad512(n: int) -> int:
    return (n + SECTOR - 1) // SECTOR * SECTOR


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)
