"""smapi's classic fault codes are upstream's: every (name, code) pair must be one of sm's XE_SR_ERRORCODES.

UPSTREAM is the (name, code) table read from xapi-project/sm @471cf7e `libs/sm/core/XE_SR_ERRORCODES.xml`
(173 entries; upstream spells 201 `EGAIN`). Only the names and numbers are kept here, as facts to check against.
"""

from __future__ import annotations

import xmlrpc.client

import pytest

from smapi.interface import errors
from smapi.interface.classic_codes import CLASSIC_CODES, fault_string
from smapi.rpc.classic import error_fault

UPSTREAM = (
    ("SRInUse", 16), ("VDIInUse", 24), ("LockErr", 37), ("Unimplemented", 38), ("SRNotEmpty", 39),
    ("ConfigLUNMissing", 87), ("ConfigSCSIid", 107), ("ISODconfMissingLocation", 220),
    ("ISOMustHaveISOExtension", 221), ("ISOMountFailure", 222), ("ISOUnmountFailure", 223),
    ("ISOSharenameFailure", 224), ("ISOLocationStringError", 225), ("ISOLocalPath", 226),
    ("ISOInvalidSMBversion", 227), ("ISOInvalidXeMountOptions", 228), ("InvalidArg", 1), ("BadCharacter", 2),
    ("InvalidDev", 19), ("InvalidSecret", 20), ("SRScan", 40), ("SRLog", 41), ("SRExists", 42), ("VDIExists", 43),
    ("SRNoSpace", 44), ("VDIUnavailable", 46), ("SRUnavailable", 47), ("SRUnknownType", 48), ("SRBadXML", 49),
    ("LVMCreate", 50), ("LVMDelete", 51), ("LVMMount", 52), ("LVMUnMount", 53), ("LVMWrite", 54),
    ("LVMPartCreate", 55), ("LVMPartInUse", 56), ("LVMFilesystem", 57), ("LVMMaster", 58), ("LVMResize", 59),
    ("LVMSize", 60), ("FileSRCreate", 61), ("FileSRRmDir", 62), ("FileSRDelete", 63), ("VDIRemove", 64),
    ("VDILoad", 65), ("VDIType", 66), ("ISCSIDevice", 67), ("ISCSILogin", 68), ("ISCSILogout", 69),
    ("ISCSIInitiator", 70), ("ISCSIDaemon", 71), ("NFSVersion", 72), ("NFSMount", 73), ("NFSUnMount", 74),
    ("NFSAttached", 75), ("NFSDelete", 76), ("NFSTarget", 108), ("LVMGroupCreate", 77), ("VDICreate", 78),
    ("VDISize", 79), ("VDIDelete", 80), ("VDIClone", 81), ("VDISnapshot", 82), ("ISCSIDiscovery", 83),
    ("ISCSIIQN", 84), ("ISCSIDetach", 85), ("ISCSIQueryDaemon", 86), ("NFSCreate", 88), ("ConfigLUNIDMissing", 89),
    ("ConfigDeviceMissing", 90), ("ConfigDeviceInvalid", 91), ("VolNotFound", 92), ("PVSfailed", 93),
    ("ConfigLocationMissing", 94), ("ConfigTargetMissing", 95), ("ConfigTargetIQNMissing", 96),
    ("ConfigISCSIIQNMissing", 97), ("ConfigLUNSerialMissing", 98), ("LVMOneLUN", 99), ("LVMNoVolume", 100),
    ("ConfigServerPathMissing", 101), ("ConfigServerMissing", 102), ("ConfigServerPathBad", 103),
    ("LVMRefCount", 104), ("Rootdev", 105), ("NoRootDev", 118), ("InvalidIQN", 106), ("SnapshotChainTooLong", 109),
    ("VDIResize", 110), ("SMBMount", 111), ("SMBUnMount", 112), ("SMBAttached", 113), ("SMBDelete", 114),
    ("ConfigParamsMissing", 115), ("SMBCreate", 116), ("LVMRead", 117), ("PVMultiIDs", 119), ("APISession", 150),
    ("APILocalhost", 151), ("APIPBDQuery", 152), ("APIFailure", 153), ("APIProtocolError", 154),
    ("NAPPTarget", 120), ("NAPPUsername", 121), ("NAPPPassword", 122), ("NAPPAggregate", 123),
    ("NAPPTargetFailed", 124), ("NAPPAuthFailed", 125), ("NAPPInsufficientPriv", 126), ("NAPPFVolNum", 127),
    ("NAPPSnapLimit", 128), ("NAPPSnapNoMem", 129), ("NAPPUnsupportedVersion", 130), ("NAPPTargetIQN", 131),
    ("NAPPNoISCSIService", 132), ("NAPPAsisLicense", 133), ("NAPPAsisError", 134), ("NAPPExclActivate", 135),
    ("DNSError", 140), ("ISCSITarget", 141), ("ISCSIPort", 142), ("BadRequest", 143), ("VDIMissing", 144),
    ("EQLTarget", 160), ("EQLUsername", 161), ("EQLPassword", 162), ("EQLStoragePool", 163),
    ("EQLConnectfail", 164), ("EQLInvalidSnapReserve", 165), ("EQLInvalidSnapDepletionKey", 166),
    ("EQLVolOutofSpace", 167), ("EQLSnapshotOfSnapshot", 168), ("EQLPermDenied", 169),
    ("EQLUnsupportedVersion", 170), ("EQLTargetPort", 171), ("EQLInvalidStoragePool", 172),
    ("EQLInvalidTargetIP", 173), ("EQLInvalidSNMPResp", 174), ("EQLInvalidVolMetaData", 175),
    ("EQLInvalidEOFRecv", 176), ("LVMProvisionAttach", 180), ("MetadataError", 181), ("ISCSIDelete", 182),
    ("EIO", 200), ("EGAIN", 201), ("SMGeneral", 202), ("FistPoint", 203), ("LeafGCSkip", 204),
    ("VBDListNotStable", 205), ("XMLParse", 413), ("MultipathdCommsFailure", 430),
    ("MultipathGenericFailure", 431), ("MultipathMapperPathMissing", 432), ("MultipathDeviceNotAppeared", 433),
    ("MultipathDeviceNoScsiid", 434), ("TapdiskAlreadyRunning", 445), ("CIFSExtendedCharsNotSupported", 446),
    ("IllegalXMLChar", 447), ("UnsupportedKernel", 448), ("OCFSOneLUN", 449), ("OCFSMount", 450),
    ("OCFSUnMount", 451), ("OCFSFilesystem", 452), ("TapdiskFailed", 453), ("NoSMBLicense", 454), ("VGReg", 455),
    ("TapdiskDriveEmpty", 456), ("CBTActivateFailed", 457), ("CBTDeactivateFailed", 458),
    ("CBTMetadataInconsistent", 459), ("CBTChangedBlocksError", 460), ("SharedFileSystemNoWrite", 461),
    ("GenericException", 1200),
)
UPSTREAM_CODES = dict(UPSTREAM)


def test_upstream_table_is_consistent() -> None:
    assert len(UPSTREAM) == 173 and len(UPSTREAM_CODES) == 173


@pytest.mark.parametrize("name", sorted(CLASSIC_CODES))
def test_every_code_is_upstreams(name: str) -> None:
    assert name in UPSTREAM_CODES, f"{name} is not an error of sm's XE_SR_ERRORCODES.xml"
    assert CLASSIC_CODES[name][0] == UPSTREAM_CODES[name]


def test_the_iscsi_codes_that_were_shifted() -> None:
    assert [CLASSIC_CODES[n][0] for n in ("ISCSILogin", "ISCSILogout", "ISCSIInitiator", "ISCSIDaemon")] == [
        68, 69, 70, 71]


def test_every_error_class_uses_an_upstream_code() -> None:
    upstream_numbers = set(UPSTREAM_CODES.values())
    for cls in set(errors.REGISTRY.values()):
        code = cls.classic_code
        if isinstance(code, int):
            assert code in upstream_numbers, cls.wire_name


def _fault(err: errors.SmapiError) -> xmlrpc.client.Fault:
    with pytest.raises(xmlrpc.client.Fault) as caught:
        xmlrpc.client.loads(error_fault(err))
    return caught.value


def test_fault_strings_follow_sm() -> None:
    fault = _fault(errors.Backend_error.classic("SRNoSpace", "needs 2 GiB more"))
    assert fault.faultCode == 44
    assert fault.faultString == f"{CLASSIC_CODES['SRNoSpace'][1]} [opterr=needs 2 GiB more]"
    fault = _fault(errors.Vdi_does_not_exist("v1"))
    assert fault.faultCode == 144
    assert fault.faultString.startswith(CLASSIC_CODES["VDIMissing"][1] + " [opterr=")
    assert "v1" in fault.faultString
    assert _fault(errors.Backend_error.classic("SRNotEmpty")).faultString == CLASSIC_CODES["SRNotEmpty"][1]


def test_fault_string_keeps_a_formatted_detail() -> None:
    text = CLASSIC_CODES["VDIInUse"][1]
    assert fault_string(24, f"{text} [opterr=x]") == f"{text} [opterr=x]"
    assert fault_string(24, "") == text
    assert fault_string(99999, "raw") == "raw"
