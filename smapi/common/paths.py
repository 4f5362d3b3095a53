"""Where smapi itself is installed: generated launchers put this directory on PYTHONPATH."""

from __future__ import annotations

import os


def package_root() -> str:
    """The directory holding the `smapi` package (a checkout's top, or site-packages)."""
    # smapi/common/paths.py -> smapi/common -> smapi -> the directory that holds it
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
