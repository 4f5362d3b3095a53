"""Numeric error codes of the classic storage manager (the XE_SR_ERRORCODES numbering).

xapi turns a classic driver's fault N into `SR_BACKEND_FAILURE_N` (or a few special XenAPI errors: 16, 24,
38, 39, 144), so drivers that want toolstack-compatible errors must use the same numbers: every (name, code) here is
upstream's (sm `libs/sm/core/XE_SR_ERRORCODES.xml`, checked by tests/interface/test_classic_codes.py; upstream
spells 201 `EGAIN`). The descriptions are our own wording.

A fault's string follows sm's `XenError`: the description, then ` [opterr=<detail>]` when there is a detail.
xapi passes that string on as the reason of `SR_BACKEND_FAILURE_<code>`.
"""

from typing import Dict, Tuple

#: name -> (code, description)
CLASSIC_CODES: Dict[str, Tuple[int, str]] = {
    "InvalidArg": (1, "Invalid argument"),
    "SRInUse": (16, "The SR device is currently in use"),
    "InvalidDev": (19, "The device is not a valid block device"),
    "VDIInUse": (24, "The VDI is currently in use"),
    "LockErr": (37, "A lock could not be taken"),
    "Unimplemented": (38, "The requested method is not supported or implemented"),
    "SRNotEmpty": (39, "The SR is not empty"),
    "SRScan": (40, "The SR scan failed"),
    "SRExists": (42, "An SR already exists at this location"),
    "VDIExists": (43, "A VDI with this identity already exists"),
    "SRNoSpace": (44, "There is insufficient space"),
    "VDIUnavailable": (46, "The VDI is not available"),
    "SRUnavailable": (47, "The SR is not available"),
    "SRUnknownType": (48, "Unknown SR type"),
    "SRBadXML": (49, "Malformed XML string"),
    "LVMCreate": (50, "Logical volume creation failed"),
    "LVMDelete": (51, "Logical volume deletion failed"),
    "LVMMount": (52, "Logical volume activation failed"),
    "LVMUnMount": (53, "Logical volume deactivation failed"),
    "LVMWrite": (54, "Logical volume write failed"),
    "LVMPartCreate": (55, "Logical volume partition creation failed"),
    "LVMPartInUse": (56, "The logical volume partition is in use"),
    "LVMFilesystem": (57, "Logical volume filesystem creation failed"),
    "LVMMaster": (58, "Logical volume operation must run on the SR master"),
    "LVMResize": (59, "Logical volume resize failed"),
    "LVMSize": (60, "Logical volume size is invalid"),
    "FileSRCreate": (61, "The file SR could not be created"),
    "FileSRRmDir": (62, "The file SR directory could not be removed"),
    "FileSRDelete": (63, "The file SR could not be deleted"),
    "VDIRemove": (64, "The VDI could not be removed"),
    "VDILoad": (65, "The VDI could not be loaded"),
    "VDIType": (66, "The VDI type is invalid"),
    "ISCSIDevice": (67, "The iSCSI device failed to appear"),
    "ISCSILogin": (68, "iSCSI login failed: check the target, CHAP user and secret"),
    "ISCSILogout": (69, "iSCSI logout failed"),
    "ISCSIInitiator": (70, "iSCSI initiator configuration failed"),
    "ISCSIDaemon": (71, "The iSCSI initiator daemon could not be started"),
    "NFSVersion": (72, "The requested NFS version is not supported by the server"),
    "NFSMount": (73, "The NFS export could not be mounted"),
    "NFSUnMount": (74, "The NFS export could not be unmounted"),
    "NFSAttached": (75, "The NFS SR is already attached"),
    "NFSDelete": (76, "The NFS SR could not be deleted"),
    "LVMGroupCreate": (77, "The volume group could not be created"),
    "VDICreate": (78, "VDI creation failed"),
    "VDISize": (79, "The VDI size is invalid"),
    "VDIDelete": (80, "VDI deletion failed"),
    "VDIClone": (81, "VDI clone failed"),
    "VDISnapshot": (82, "VDI snapshot failed"),
    "ISCSIDiscovery": (83, "iSCSI discovery failed"),
    "ISCSIIQN": (84, "The iSCSI target IQN is invalid or unknown"),
    "ISCSIDetach": (85, "iSCSI detach failed"),
    "ISCSIQueryDaemon": (86, "The iSCSI initiator daemon could not be queried"),
    "ConfigLUNMissing": (87, "The LUN is missing from the configuration"),
    "NFSCreate": (88, "The NFS SR directory could not be created"),
    "ConfigDeviceMissing": (90, "The device is missing from the configuration"),
    "ConfigDeviceInvalid": (91, "The device given in the configuration is invalid"),
    "ConfigLocationMissing": (94, "The location is missing from the configuration"),
    "ConfigTargetMissing": (95, "The target is missing from the configuration"),
    "ConfigTargetIQNMissing": (96, "The target IQN is missing from the configuration"),
    "ConfigServerPathMissing": (101, "The server path is missing from the configuration"),
    "ConfigServerMissing": (102, "The server is missing from the configuration"),
    "LVMRefCount": (104, "Logical volume reference counting failed"),
    "ConfigSCSIid": (107, "The SCSIid is missing or invalid"),
    "NFSTarget": (108, "The NFS server could not be reached"),
    "SnapshotChainTooLong": (109, "The snapshot chain is too long"),
    "VDIResize": (110, "VDI resize failed"),
    "ISCSITarget": (141, "The iSCSI target could not be reached"),
    "ISCSIPort": (142, "The iSCSI port is invalid"),
    "BadRequest": (143, "The request was malformed"),
    "VDIMissing": (144, "The VDI is missing"),
    "MetadataError": (181, "SR metadata could not be read or written"),
    "ISCSIDelete": (182, "iSCSI delete failed"),
    "EIO": (200, "An I/O error occurred"),
    "EGAIN": (201, "The resource is temporarily unavailable; try again"),
    "SMGeneral": (202, "General storage manager error"),
    "FistPoint": (203, "An injected failure point was hit"),
    "LeafGCSkip": (204, "Leaf coalesce skipped"),
    "XMLParse": (413, "The XML could not be parsed"),
    "IllegalXMLChar": (447, "The string contains characters XML cannot carry"),
    "CBTActivateFailed": (457, "Changed-block tracking could not be turned on"),
    "CBTDeactivateFailed": (458, "Changed-block tracking could not be turned off"),
    "CBTMetadataInconsistent": (459, "The changed-block tracking metadata is inconsistent"),
    "CBTChangedBlocksError": (460, "The changed blocks could not be computed"),
    "GenericException": (1200, "Unexpected error"),
}


#: code -> description
_DESCRIPTIONS: Dict[int, str] = {code: text for code, text in CLASSIC_CODES.values()}


def fault_string(code: int, detail: str) -> str:
    """sm's fault string for `code`: `description [opterr=detail]` (a detail already in that form is kept)."""
    description = _DESCRIPTIONS.get(code)
    if description is None:
        return detail
    if not detail or detail == description:
        return description
    if detail.startswith(description + " [opterr="):
        return detail
    return f"{description} [opterr={detail}]"
