"""The file SR: VHD (default) or raw VDIs as files in a directory, served by the SR engine."""

from smapi.drivers.file.driver import FileDriver

__all__ = ["FileDriver"]
