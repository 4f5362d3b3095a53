"""Build step for the native parts: the nbdkit VHD plugin (smapi/datapath/native/*.c).

Everything else is declared in setup.cfg.  The plugin is an ordinary shared object that nbdkit loads by path; it is
built as an *optional* extension, so a machine without gcc or nbdkit-plugin-dev still installs smapi and the
datapath falls back to the Python plugin (smapi.datapath.native decides at activate time and says why).
"""

from setuptools import Extension, setup

NATIVE = "smapi/datapath/native/"

nbdkit_plugin = Extension(
    "smapi.datapath.native._nbdkit_smapivhd",
    sources=[NATIVE + f for f in ("plugin.c", "vhdchain.c", "vhdcommit.c", "vhdopen.c", "vhdfmt.c", "vhdio.c")],
    depends=[NATIVE + f for f in ("vhdchain.h", "vhdfmt.h", "vhdio.h")],
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wno-unused-parameter", "-fvisibility=hidden"],
    libraries=["pthread"],
    optional=True,
)

setup(ext_modules=[nbdkit_plugin])
