"""Truthful SMAPIv3 features: a feature is advertised only when the verb behind it is implemented.

xapi-storage-script forwards a plugin's features to xapi, which then offers the operations they name; a
feature without its verb gives an operation that fails (VDI_COMPOSE once was advertised with no
Volume.compose). A verb counts as implemented when the serving class overrides the generated skeleton's
method, which raises Unimplemented.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

#: v3 feature -> (interface, verb) that must be implemented for it to be advertised
FEATURE_VERBS: Dict[str, Tuple[str, str]] = {
    "SR_PROBE": ("SR", "probe"),
    "VDI_CREATE": ("Volume", "create"),
    "VDI_DESTROY": ("Volume", "destroy"),
    "VDI_CLONE": ("Volume", "clone"),
    "VDI_SNAPSHOT": ("Volume", "snapshot"),
    "VDI_RESIZE": ("Volume", "resize"),
    "VDI_COPY": ("Volume", "copy"),
    "VDI_COMPOSE": ("Volume", "compose"),
    "VDI_RESET_ON_BOOT/2": ("Volume", "clone"),
    "VDI_CONFIG_CBT": ("Volume", "enable_cbt"),
    "VDI_ENABLE_CBT": ("Volume", "enable_cbt"),
    "VDI_DISABLE_CBT": ("Volume", "disable_cbt"),
    "VDI_DATA_DESTROY": ("Volume", "data_destroy"),
    "VDI_LIST_CHANGED_BLOCKS": ("Volume", "list_changed_blocks"),
    "VDI_MIRROR": ("Data", "mirror"),
    "VDI_MIRROR_IN": ("Datapath", "import_activate"),
}


#: set on a verb that only says why it is not implemented (see `refused`)
REFUSED = "__smapi_refused__"


def refused(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Marks a verb that exists only to raise Unimplemented with a reason: it does not count as implemented."""
    setattr(fn, REFUSED, True)
    return fn


def implemented(cls: type, verb: str) -> bool:
    """True when `cls` provides `verb` itself rather than inheriting the skeleton's Unimplemented stub."""
    for klass in cls.__mro__:
        if verb in vars(klass):
            if getattr(vars(klass)[verb], REFUSED, False):
                return False
            return not getattr(klass, "__module__", "").startswith("smapi.interface.skeletons")
    return False


def truthful(features: List[str], implementation_class: Callable[[str], Optional[type]]) -> List[str]:
    """`features` without those whose verb the serving implementation lacks.

    `implementation_class(interface)` is the class serving that v3 interface, or None when nothing serves it.
    Features this table does not know (SR_*, VDI_ATTACH, NONPERSISTENT, ...) are kept as given.
    """
    kept = []
    for feature in features:
        needed = FEATURE_VERBS.get(feature)
        if needed is not None:
            cls = implementation_class(needed[0])
            if cls is None or not implemented(cls, needed[1]):
                continue
        kept.append(feature)
    return kept


def class_lookup(implementations: Mapping[str, Any]) -> Callable[[str], Optional[type]]:
    """`implementation_class` over a driver's v3 implementations mapping (constructs only what is asked)."""
    def lookup(interface: str) -> Optional[type]:
        try:
            return type(implementations[interface])
        except KeyError:
            return None
    return lookup
