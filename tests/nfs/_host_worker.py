"""A second host in its own process: `python -m tests.nfs._host_worker SR DEVICE_CONFIG_JSON PREFIX COUNT`.

Runs under its own SMAPI_RUN_DIR (set by the caller), attaches the SR and makes COUNT changes of SR metadata
(create a VDI, write it, rename it), printing the VDI uuids it made as JSON on the last line.
"""

from __future__ import annotations

import json
import sys

from smapi.core.driver import load_driver


def main(sr: str, device_config: str, prefix: str, count: int) -> None:
    driver = load_driver("smapi.drivers.nfs:NfsDriver")
    d = driver.dispatcher("storage")
    d.call("SR.attach", {"dbg": prefix, "sr": sr, "device_config": json.loads(device_config)})
    made = []
    for i in range(count):
        info = d.call("VDI.create", {"dbg": prefix, "sr": sr, "vdi_info": {"virtual_size": 1 << 20,
                                                                           "name_label": f"{prefix}-{i}"}})
        h = driver.open_vdi(sr, info["vdi"], writable=True)
        h.write(0, f"{prefix}-{i}".encode() * 100)
        h.flush()
        h.close()
        d.call("VDI.set_name_description", {"dbg": prefix, "sr": sr, "vdi": info["vdi"],
                                            "new_name_description": f"by {prefix}"})
        made.append(info["vdi"])
    d.call("SR.detach", {"dbg": prefix, "sr": sr})
    print(json.dumps(made))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
