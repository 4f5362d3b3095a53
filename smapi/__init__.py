"""smapi: a storage-manager (SMAPI) plugin framework with pluggable SR drivers and a native VHD engine."""

__version__ = "0.1.0"
