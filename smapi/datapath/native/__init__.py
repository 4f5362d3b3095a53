"""The native datapath: which nbdkit plugin serves an image, decided when the image is activated.

The C plugin (``plugin.c`` and the ``vhd*.c`` engine beside this file) is compiled by the project's build
(``setup.py``: an optional extension, so installs without gcc or nbdkit-plugin-dev still work). It serves file
images (VHD chains and raw files) with nbdkit's PARALLEL thread model and multi-conn. Everything it cannot serve
goes to the Python plugin, and :func:`choose` says why, for ``Datapath`` stat and ``Plugin.diagnostics``:

* the plugin was not built (no compiler or headers at install time), nbdkit cannot load it, or it is stale (built
  from other sources than the ones beside it: a rebuild that failed left the previous build in place);
* a volume opened by a driver's opener (LVM/iSCSI) that cannot be served from its block devices
  (:mod:`.mapped` says why: no device map, or a writable leaf its LV has no room for);
* ``SMAPI_DATAPATH=python`` in the environment (an operator's switch, and how tests compare both engines).

The chain's parent files are resolved here with :mod:`smapi.vhd` (locators, UUID checks, depth limit) and handed
to the plugin in order, so the C code needs no locator or path logic; an opener's volumes are handed as device
maps (:mod:`.mapped`).
"""

from __future__ import annotations

import glob
import os
import subprocess
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..model import DatapathError, ImageSpec
from .mapped import Layout, NotMappable, resolve
from .sourcehash import sources_hash

HERE = os.path.dirname(os.path.abspath(__file__))
ENV_SWITCH = "SMAPI_DATAPATH"
#: "1": the native plugin opens the chain's files with O_DIRECT (no server-side page cache)
ENV_DIRECT = "SMAPI_DATAPATH_DIRECT"
NATIVE = "native"
PYTHON = "python"

#: (nbdkit, plugin) -> error text, or "" when it loads (one --dump-plugin per process is enough)
_loadable: Dict[Tuple[str, str], str] = {}


def plugin_path() -> Optional[str]:
    """The built plugin (a shared object next to this file), or None if the build skipped it."""
    found = sorted(glob.glob(os.path.join(HERE, "_nbdkit_smapivhd*.so")))
    return found[-1] if found else None


@dataclass(frozen=True)
class Engine:
    """The plugin chosen for one image, and the reason (shown to operators)."""

    name: str  # NATIVE or PYTHON
    reason: str
    plugin: Optional[str] = None  # the shared object, for NATIVE
    #: an opener's volume mapped onto its devices (NATIVE only), not part of the record
    layout: Optional[Layout] = field(default=None, compare=False)

    def to_json(self) -> Dict[str, Optional[str]]:
        return {"engine": self.name, "reason": self.reason, "plugin": self.plugin}


def _dump_error(nbdkit: str, plugin: str) -> str:
    """Empty if ``nbdkit`` loads ``plugin`` and it was built from the sources beside it, else why not."""
    try:
        res = subprocess.run([nbdkit, plugin, "--dump-plugin"], capture_output=True, text=True, timeout=20,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"nbdkit cannot load the native plugin: {e}"
    if res.returncode != 0:
        return f"nbdkit cannot load the native plugin: {res.stderr.strip() or f'status {res.returncode}'}"
    built = next((line[8:] for line in res.stdout.splitlines() if line.startswith("version=")), "")
    try:
        current = sources_hash()
    except OSError:
        return ""  # an install without the sources: nothing to compare against
    if built != current:
        return (f"the native plugin is stale (built from sources {built or 'unknown'}, the sources are {current}: "
                "a rebuild failed or was not run; `pip install -e .` shows why)")
    return ""


def _load_error(nbdkit: str, plugin: str) -> str:
    """Empty if the native plugin can be used (one ``--dump-plugin`` per process and build), else why not."""
    try:
        stamp = os.stat(plugin).st_mtime_ns
    except OSError as e:
        return f"nbdkit cannot load the native plugin: {e}"
    key = (nbdkit, f"{plugin}@{stamp}")
    if key not in _loadable:
        _loadable[key] = _dump_error(nbdkit, plugin)
    return str(_loadable[key])


def availability(nbdkit: str) -> Engine:
    """Whether the native plugin can be used on this host at all (for diagnostics)."""
    plugin = plugin_path()
    if plugin is None:
        return Engine(PYTHON, "native plugin not built (gcc or nbdkit-plugin-dev missing at install time)")
    err = _load_error(nbdkit, plugin)
    if err:
        return Engine(PYTHON, err)
    return Engine(NATIVE, "native plugin built and loadable", plugin)


def choose(image: ImageSpec, nbdkit: str, *, readonly: bool = True) -> Engine:
    """The engine for ``image``: native when it can serve it, Python otherwise (with the reason).

    An opener's volume is opened here (``readonly`` as the server will) to map it onto its devices."""
    if os.environ.get(ENV_SWITCH, "") == PYTHON:
        return Engine(PYTHON, f"{ENV_SWITCH}=python")
    engine = availability(nbdkit)
    if engine.name != NATIVE or image.opener is None:
        return engine
    try:
        layout = resolve(image, writable=not readonly)
    except NotMappable as e:
        return Engine(PYTHON, f"volume opened by a driver opener, not servable from its devices: {e}")
    return Engine(NATIVE, "native plugin on the volume's block devices (segment map)", engine.plugin, layout)


def chain_paths(image: ImageSpec) -> List[str]:
    """The image's files, leaf first: parents found through the VHD locators inside ``resolver_dir``."""
    if image.kind == "raw":
        return [image.path]
    from ...vhd import DirectoryResolver, VhdError, open_chain

    resolver = DirectoryResolver(image.resolver_dir or os.path.dirname(image.path))
    try:
        chain = open_chain(image.path, resolver=resolver)
    except (OSError, VhdError) as e:
        raise DatapathError(f"cannot open the VHD chain of {image.path}: {e}") from e
    try:
        return [image.path] + [resolver.path_of(name) for name in chain.names[1:]]
    finally:
        chain.close()


def plugin_args(engine: Engine, image: ImageSpec, *, readonly: bool, export: str) -> List[str]:
    """nbdkit's plugin and its parameters for a native engine."""
    assert engine.plugin is not None
    args = [engine.plugin]
    if engine.layout is not None:
        for i, img in enumerate(engine.layout.images):
            args += img.args("parent" if i else "image")
        if engine.layout.size is not None:
            args.append(f"size={engine.layout.size}")
    else:
        paths = chain_paths(image)
        args += [f"image={paths[0]}"] + [f"parent={p}" for p in paths[1:]]
    if os.environ.get(ENV_DIRECT, "") == "1":
        args.append("direct=true")
    return args + [f"kind={image.kind}", f"mode={'ro' if readonly else 'rw'}", f"export={export}"]


def diagnostics_line() -> str:
    """One line for ``Plugin.diagnostics``: which engine file images get on this host, and why."""
    import shutil

    engine = availability(shutil.which("nbdkit") or "/usr/sbin/nbdkit")
    if os.environ.get(ENV_SWITCH, "") == PYTHON:
        engine = Engine(PYTHON, f"{ENV_SWITCH}=python")
    return f"datapath engine for file images: {engine.name} ({engine.reason})"
