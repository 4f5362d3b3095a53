"""What a conformance test needs from the driver, and whether the driver under test has it.

A test says what it needs with `@needs("VDI_SNAPSHOT", "open_vdi")`: upper-case names are features the driver
must declare in `Query.query`'s `features` (a version suffix such as `VDI_RESET_ON_BOOT/2` is ignored), lower-case
names are driver-level hooks (`open_vdi`, `gc`: see docs/writing-a-driver.md). A test whose needs are not met is
reported as skipped with the reason, so a driver is certified for exactly what it declares.
"""

from __future__ import annotations

from typing import Dict, FrozenSet, Iterable, List, Optional

import pytest

from smapi.core.driver import load_driver
from smapi.testing.client import HOOKS, lookup_hook

MARKER = "needs"


def needs(*what: str) -> pytest.MarkDecorator:
    """The mark of a test needing `what` (made on use: the marker exists once the plugin has configured pytest)."""
    return getattr(pytest.mark, MARKER)(*what)


#: VDI verbs that a driver implements only when it declares the feature (the others every driver must serve)
VERB_FEATURES: Dict[str, str] = {
    "snapshot": "VDI_SNAPSHOT", "clone": "VDI_CLONE", "resize": "VDI_RESIZE", "compose": "VDI_COMPOSE",
    "attach": "VDI_ATTACH", "detach": "VDI_DETACH", "activate": "VDI_ACTIVATE", "deactivate": "VDI_DEACTIVATE",
    # changed-block tracking
    "enable_cbt": "VDI_CONFIG_CBT", "disable_cbt": "VDI_CONFIG_CBT", "data_destroy": "VDI_CONFIG_CBT",
    "list_changed_blocks": "VDI_CONFIG_CBT", "compare": "VDI_CONFIG_CBT",
}

_capabilities: Dict[str, FrozenSet[str]] = {}


def capabilities(driver_spec: str) -> FrozenSet[str]:
    """The features the driver declares plus the hooks it offers (cached per driver for the run)."""
    if driver_spec not in _capabilities:
        driver = load_driver(driver_spec)
        query = driver.call("storage", "Query.query", dbg="conformance:features")
        declared = {str(f).split("/", 1)[0] for f in query.get("features", [])}
        hooks = {h for h in HOOKS if lookup_hook(driver, h) is not None}
        _capabilities[driver_spec] = frozenset(declared | hooks)
    return _capabilities[driver_spec]


def missing(driver_spec: str, wanted: Iterable[str]) -> List[str]:
    have = capabilities(driver_spec)
    return sorted({w for w in wanted if w not in have})


def skip_reason(driver_spec: str, wanted: Iterable[str]) -> Optional[str]:
    """Why a test needing `wanted` cannot run against this driver (None when it can)."""
    absent = missing(driver_spec, wanted)
    if not absent:
        return None
    features = [a for a in absent if a.isupper()]
    hooks = [a for a in absent if not a.isupper()]
    parts = []
    if features:
        parts.append(f"the driver does not declare {', '.join(features)}")
    if hooks:
        parts.append(f"the driver offers no {', '.join(h + '()' for h in hooks)} hook")
    return "; ".join(parts)


def wanted_by(node: pytest.Item) -> List[str]:
    out: List[str] = []
    for mark in node.iter_markers(MARKER):
        out.extend(mark.args)
    return out


def verb_needs(verb: str) -> List[str]:
    feature = VERB_FEATURES.get(verb)
    return [feature] if feature else []
