"""The VDI datapath automaton, per dp and combined, and its persistence between driver instances."""

from __future__ import annotations

import pytest

from smapi.interface.errors import Backend_error, Illegal_transition
from smapi.sr import automaton as A
from tests.sr.helpers import FileSR, MiB


def test_rules() -> None:
    assert A.after_attach({}, "a", True) == "Attached(RW)"
    with pytest.raises(Illegal_transition) as e:
        A.after_activate({}, "a")
    assert e.value.params == ("Detached", "Activated(RW)")
    with pytest.raises(Illegal_transition):
        A.after_detach({"a": "Activated(RO)"}, "a")
    with pytest.raises(Illegal_transition) as e:
        A.after_attach({"r": "Attached(RO)"}, "w", True)
    assert e.value.params == ("Attached(RO)", "Attached(RW)")
    with pytest.raises(Illegal_transition):
        A.after_attach({"a": "Attached(RO)"}, "a", True)
    assert A.after_attach({"w": "Activated(RW)"}, "r", False) == "Attached(RO)"
    assert A.superstate({"w": "Attached(RW)", "r": "Activated(RO)"}) == "Activated(RW)"
    assert A.after_deactivate({}, "x") == "Detached" and A.after_detach({}, "x") == "Detached"


def test_destroy_refuses_an_attached_vdi_and_sr_detach_releases_it(fsr: FileSR, fresh_run_dir) -> None:
    vdi = fsr.create(MiB)
    info = fsr.v("VDI.attach", dp="dp", vdi=vdi, read_write=True)
    assert info["params"].startswith("nbd:unix:") and info["params"].endswith(f":exportname={vdi}")
    fsr.v("VDI.activate", dp="dp", vdi=vdi)
    fsr.reload()  # a new process sees the same state
    with pytest.raises(Backend_error, match="SR_BACKEND_FAILURE_24"):
        fsr.v("VDI.destroy", vdi=vdi)
    fsr.v("SR.detach")
    fsr.attach()
    with pytest.raises(Illegal_transition):
        fsr.v("VDI.activate", dp="dp", vdi=vdi)  # SR.detach deactivated and detached it
    fsr.v("VDI.destroy", vdi=vdi)
