"""Which verbs take which names: one hostile value in one argument, every other argument valid."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

MiB = 1 << 20

#: (verb, named arguments) with the hostile SR name put in `sr`
def sr_calls(bad: str, config: Dict[str, str], vdi: str) -> List[Tuple[str, Dict[str, Any]]]:
    return [
        ("SR.create", {"sr": bad, "device_config": {"path": config["path"] + "-new"}, "physical_size": 0}),
        ("SR.attach", {"sr": bad, "device_config": config}),
        ("SR.stat", {"sr": bad}),
        ("SR.scan", {"sr": bad}),
        ("SR.set_name_label", {"sr": bad, "new_name_label": "x"}),
        ("SR.detach", {"sr": bad}),
        ("SR.destroy", {"sr": bad}),
        ("VDI.create", {"sr": bad, "vdi_info": {"virtual_size": MiB}}),
        ("VDI.stat", {"sr": bad, "vdi": vdi}),
        ("VDI.attach", {"sr": bad, "dp": "d", "vdi": vdi, "read_write": False}),
    ]


def vdi_calls(sr: str, bad: str) -> List[Tuple[str, Dict[str, Any]]]:
    return [
        ("VDI.stat", {"sr": sr, "vdi": bad}),
        ("VDI.destroy", {"sr": sr, "vdi": bad}),
        ("VDI.resize", {"sr": sr, "vdi": bad, "new_size": 2 * MiB}),
        ("VDI.set_name_label", {"sr": sr, "vdi": bad, "new_name_label": "x"}),
        ("VDI.add_to_sm_config", {"sr": sr, "vdi": bad, "key": "k", "value": "v"}),
        ("VDI.epoch_begin", {"sr": sr, "vdi": bad}),
        ("VDI.attach", {"sr": sr, "dp": "d", "vdi": bad, "read_write": True}),
        ("VDI.activate", {"sr": sr, "dp": "d", "vdi": bad}),
        ("VDI.snapshot", {"sr": sr, "vdi_info": {"vdi": bad, "virtual_size": MiB}}),
        ("VDI.clone", {"sr": sr, "vdi_info": {"vdi": bad, "virtual_size": MiB}}),
        ("VDI.compose", {"sr": sr, "vdi1": bad, "vdi2": bad}),
        ("VDI.similar_content", {"sr": sr, "vdi": bad}),
    ]


def text_calls(sr: str, vdi: str, bad: str) -> List[Tuple[str, Dict[str, Any]]]:
    return [
        ("VDI.set_name_label", {"sr": sr, "vdi": vdi, "new_name_label": bad}),
        ("VDI.set_name_description", {"sr": sr, "vdi": vdi, "new_name_description": bad}),
        ("VDI.add_to_sm_config", {"sr": sr, "vdi": vdi, "key": "k", "value": bad}),
        ("VDI.add_to_sm_config", {"sr": sr, "vdi": vdi, "key": bad, "value": "v"}),
        ("VDI.create", {"sr": sr, "vdi_info": {"virtual_size": MiB, "name_label": bad}}),
        ("VDI.create", {"sr": sr, "vdi_info": {"virtual_size": MiB, "sm_config": {"k": bad}}}),
        ("SR.set_name_label", {"sr": sr, "new_name_label": bad}),
        ("SR.set_name_description", {"sr": sr, "new_name_description": bad}),
    ]


Calls = Callable[..., List[Tuple[str, Dict[str, Any]]]]
