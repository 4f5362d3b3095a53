"""Features (xapi's capability names) as the verbs that implement them: the one table drivers are judged by.

A driver advertises a feature exactly when it implements every verb the feature stands for (its implementation
class overrides the skeleton's method); `smapi.core.driver.Driver.features` derives the list from this table,
so it cannot claim a verb it lacks. Features no verb stands for (SR_CACHING, THIN_PROVISIONING, ...) are
declared by the driver itself (`Driver.extra_features`).
"""

from __future__ import annotations

from typing import Collection, Dict, List, Mapping, Sequence, Tuple

#: storage interface (SMAPIv2): feature -> the verbs it needs, in the order drivers list them. The classic
#: executable's commands show why each verb is needed (`smapi.rpc.classic.ClassicAdapter`): sr_update is SR.stat,
#: vdi_update VDI.stat, vdi_clone/vdi_snapshot stat the VDI first, vdi_generate_config attaches from the config.
STORAGE_FEATURES: Dict[str, Tuple[str, ...]] = {
    "SR_PROBE": ("SR.probe",),
    "SR_CREATE": ("SR.create",),
    "SR_DELETE": ("SR.destroy",),
    "SR_ATTACH": ("SR.attach",),
    "SR_DETACH": ("SR.detach",),
    "SR_SCAN": ("SR.scan",),
    "SR_UPDATE": ("SR.stat",),
    "VDI_CREATE": ("VDI.create",),
    "VDI_DELETE": ("VDI.destroy",),
    "VDI_ATTACH": ("VDI.attach",),
    "VDI_DETACH": ("VDI.detach",),
    "VDI_ACTIVATE": ("VDI.activate",),
    "VDI_DEACTIVATE": ("VDI.deactivate",),
    "VDI_CLONE": ("VDI.clone", "VDI.stat"),
    "VDI_SNAPSHOT": ("VDI.snapshot", "VDI.stat"),
    "VDI_RESIZE": ("VDI.resize",),
    "VDI_UPDATE": ("VDI.stat",),
    "VDI_COMPOSE": ("VDI.compose",),
    "VDI_RESET_ON_BOOT/2": ("VDI.epoch_begin", "VDI.epoch_end"),
    "VDI_GENERATE_CONFIG": ("VDI.attach", "VDI.detach"),
    "VDI_CONFIG_CBT": ("VDI.enable_cbt", "VDI.disable_cbt", "VDI.data_destroy", "VDI.list_changed_blocks"),
}

#: SMAPIv3 volume plugins: feature -> the Plugin/SR/Volume verbs (scripts) it needs; xapi-storage-script derives
#: the same names from the scripts present. SMAPIv3 calls deletion VDI_DESTROY (the bridge renames it VDI_DELETE).
V3_FEATURES: Dict[str, Tuple[str, ...]] = {
    "SR_PROBE": ("SR.probe",),
    "SR_CREATE": ("SR.create",),
    "SR_DELETE": ("SR.destroy",),
    "SR_ATTACH": ("SR.attach",),
    "SR_DETACH": ("SR.detach",),
    "SR_SCAN": ("SR.ls",),
    "SR_UPDATE": ("SR.stat",),
    "VDI_CREATE": ("Volume.create",),
    "VDI_DESTROY": ("Volume.destroy",),
    "VDI_CLONE": ("Volume.clone",),
    "VDI_SNAPSHOT": ("Volume.snapshot",),
    "VDI_RESIZE": ("Volume.resize",),
    "VDI_UPDATE": ("Volume.stat",),
}

#: storage-interface feature names that SMAPIv3 spells differently
_V3_NAMES = {"VDI_DELETE": "VDI_DESTROY"}


def features_of(table: Mapping[str, Sequence[str]], implemented: Collection[str]) -> List[str]:
    """The features of `table` whose verbs (wire names, "SR.attach") are all in `implemented`, in table order."""
    have = {v.lower() for v in implemented}
    return [feature for feature, verbs in table.items() if all(v.lower() in have for v in verbs)]


def v3_names(features: Sequence[str]) -> List[str]:
    """Storage-interface feature names as a SMAPIv3 `Plugin.query` reports them."""
    return [_V3_NAMES.get(f, f) for f in features]
