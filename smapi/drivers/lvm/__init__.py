"""The LVM SR: VHD (default) or raw VDIs as logical volumes of a volume group, in the classic LVHD layout."""

from smapi.drivers.lvm.driver import LvmDriver

__all__ = ["LvmDriver"]
