"""VDI.copy: a new VDI in another SR with the same content.

The destination SR must be attached on this host (then the URL only says where its API lives): the new VDI is
created through the destination driver's own VDI.create and filled through its `open_vdi`. Copying to an SR that
is only reachable through a remote URL needs a data channel (a later issue), so it is refused with a clear error
rather than leaving an empty VDI behind.
"""

from __future__ import annotations

from typing import Any, Dict

from smapi.interface.errors import Backend_error
from smapi.sr.engine import Engine
from smapi.sr.names import check_sr

CHUNK = 2 * 1024 * 1024


def copy(engine: Engine, vdi: str, url: str, dest: str) -> str:
    from smapi.core.driver import load_driver

    with engine.locked(what="VDI.copy"):
        source_info = engine.info(engine.visible(engine.load(), vdi))
    record = engine.run.attached(check_sr(dest, "dest"))
    if record is None:
        raise Backend_error("SR_BACKEND_FAILURE", [
            "", f"cannot copy VDI {vdi} to SR {dest} at {url!r}: that SR is not attached on this host, and "
                "moving data to a remote host needs the data channel (not implemented yet). Attach SR "
                f"{dest} here, or export the VDI (smapi vdi-export) and import it on the other host.", ""])
    driver = load_driver(record["driver"])
    if not hasattr(driver, "open_vdi"):
        raise Backend_error("SR_BACKEND_FAILURE", ["", f"the driver of SR {dest} offers no data access", ""])
    wanted: Dict[str, Any] = {k: v for k, v in source_info.items() if k not in ("vdi", "physical_utilisation")}
    wanted["sm_config"] = {}
    created = driver.call("storage", "VDI.create", dbg="VDI.copy", sr=dest, vdi_info=wanted)
    new = created["vdi"]
    try:
        with engine.open_vdi(vdi) as src, driver.open_vdi(dest, new, writable=True) as dst:  # type: ignore
            size = min(src.size, dst.size)
            for off in range(0, size, CHUNK):
                data = src.read(off, min(CHUNK, size - off))
                if data.count(0) != len(data):
                    dst.write(off, data)
            dst.flush()
    except BaseException:
        driver.call("storage", "VDI.destroy", dbg="VDI.copy cleanup", sr=dest, vdi=new)
        raise
    return new
