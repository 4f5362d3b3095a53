"""The one place the version of smapi is written (setup.cfg and `smapi.__version__` read it from here)."""

__version__ = "0.1.0"
