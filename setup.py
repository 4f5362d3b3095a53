"""Build step for the native parts: the nbdkit VHD plugin (smapi/datapath/native/*.c).

Everything else is declared in setup.cfg.  The plugin is an ordinary shared object that nbdkit loads by path; it is
built as an *optional* extension, so a machine without gcc or nbdkit-plugin-dev still installs smapi and the
datapath falls back to the Python plugin (smapi.datapath.native decides at activate time and says why).
"""

import runpy

from setuptools import Extension, setup

NATIVE = "smapi/datapath/native/"
# The plugin carries the hash of its sources (its nbdkit version), so a stale build is noticed at activate time.
_hashing = runpy.run_path(NATIVE + "sourcehash.py")

nbdkit_plugin = Extension(
    "smapi.datapath.native._nbdkit_smapivhd",
    sources=[NATIVE + f for f in _hashing["SOURCES"]],
    depends=[NATIVE + f for f in _hashing["HEADERS"]],
    define_macros=[("SMAPI_SOURCES_HASH", '"%s"' % _hashing["sources_hash"](NATIVE))],
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wno-unused-parameter", "-fvisibility=hidden"],
    libraries=["pthread"],
    optional=True,
)

setup(ext_modules=[nbdkit_plugin])
