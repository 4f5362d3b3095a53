"""Finding what a command acts on: the SR (and its driver) and the VDIs, from what a person types.

An SR or VDI is selected by its UUID, a unique prefix of it, or its exact name. Several matches are an error that
lists them. A selector that matches nothing is passed on as typed, so the driver answers with its own typed error
(an unknown VDI, a malformed name).

Local commands find the SR's driver in the host configuration (`smapi.cli.hostconfig`): `-d` is needed only for
an SR created elsewhere. With `--url` the server is asked (SR.ls, SR.stat) instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from smapi.cli import hostconfig
from smapi.cli.target import Target, make_target
from smapi.interface.errors import Invalid_argument

#: (uuid, name, extra words shown when a selector is ambiguous)
Candidate = Tuple[str, str, str]

def match(selector: str, candidates: Sequence[Candidate], kind: str) -> Optional[str]:
    """The one candidate `selector` names: the exact UUID, else the exact name, else a unique UUID prefix."""
    for uuid, _, _ in candidates:
        if uuid == selector:
            return uuid
    for found in ([c for c in candidates if c[1] == selector],
                  [c for c in candidates if c[0].startswith(selector)] if selector else []):
        if len(found) == 1:
            return found[0][0]
        if found:
            listed = "; ".join(f"{u} ({n or 'no name'}{', ' + x if x else ''})" for u, n, x in found)
            raise Invalid_argument(kind, f"{selector!r} matches {len(found)} {kind.upper()}s: {listed}; "
                                         f"give more of the UUID")
    return None

def _same_driver(a: str, b: str) -> bool:
    if a == b:
        return True
    from smapi.core.driver import resolve_driver_class

    return bool(resolve_driver_class(a).name == resolve_driver_class(b).name)

@dataclass
class Selected:
    """An SR and what reaches it."""

    target: Target
    sr: str
    driver: Optional[str]
    url: Optional[str]
    record: Optional[hostconfig.SrRecord] = None

def sr_candidates_local() -> List[Candidate]:
    return [(r.sr, r.name_label, r.driver) for r in hostconfig.all_records()]

def sr_candidates_remote(t: Target) -> List[Candidate]:
    out: List[Candidate] = []
    for sr in t.call("SR.ls", dbg="select"):
        try:
            name = t.call("SR.stat", dbg="select", sr=sr).get("name_label", "")
        except Exception:  # noqa: BLE001 - a name is a convenience; an SR that cannot stat is still listed
            name = ""
        out.append((sr, name, ""))
    return out

def not_recorded(selector: str) -> Invalid_argument:
    return Invalid_argument("sr", f"no SR {selector!r} in this host's configuration ({hostconfig.state_dir()}); "
                                  f"list them with `smapi sr-list`, or add one with `smapi sr-introduce -d DRIVER`")

def select_sr(driver: Optional[str], url: Optional[str], selector: str) -> Selected:
    """The SR `selector` names, with its target: the recorded driver (or -d for an SR not recorded), or --url."""
    if url:
        t = make_target(None, url)
        found = match(selector, sr_candidates_remote(t), "sr")
        return Selected(t, found or selector, driver, url)
    found = match(selector, sr_candidates_local(), "sr")
    record = hostconfig.get(found) if found else None
    if record is None:
        driver = driver or attached_driver(selector)
        if driver is None:
            raise not_recorded(selector)
        return Selected(make_target(driver, None), selector, driver, None)
    if driver is not None and not _same_driver(driver, record.driver):
        raise Invalid_argument("driver", f"SR {record.sr} uses driver {record.driver!r}, not {driver!r} "
                                         f"(recorded in {hostconfig.state_dir()}); leave out -d")
    return Selected(make_target(record.driver, None), record.sr, record.driver, None, record)

def attached_driver(sr: str) -> Optional[str]:
    """The driver of an SR attached on this host (its run state says), recorded or not (a toolstack attached it)."""
    from smapi.sr.runstate import RunState

    try:
        attached = RunState().attached(sr)
    except Exception:  # noqa: BLE001 - a selector that is no valid file name is simply not attached
        return None
    return str(attached["driver"]) if attached and attached.get("driver") else None


def local_driver(s: Selected) -> str:
    """A driver to run in this process for SR `s` (data access and GC are host-local): with --url, the SR must be
    attached on this host, and its run state names the driver."""
    driver = s.driver if not s.url else (s.driver or attached_driver(s.sr))
    if driver is None:
        raise Invalid_argument("sr", f"SR {s.sr} is not attached on this host, and this command runs here; "
                                     f"run it on the host that serves {s.url}")
    return driver


def vdi_candidates(s: Selected) -> List[Candidate]:
    out: List[Candidate] = []
    for v in s.target.call("SR.scan", dbg="select", sr=s.sr):
        flags = "snapshot" if v.get("is_a_snapshot") else ""
        out.append((v["vdi"], v.get("name_label", ""), flags))
    return out

def select_vdi(s: Selected, selector: str) -> str:
    """The VDI of SR `s` that `selector` names (passed on unchanged when nothing matches)."""
    return match(selector, vdi_candidates(s), "vdi") or selector

# -- shell completion ------------------------------------------------------------------------------------------------
def _completions(candidates: Sequence[Candidate], incomplete: str) -> List[Any]:
    from click.shell_completion import CompletionItem

    items: Dict[str, Any] = {}
    for uuid, name, extra in candidates:
        if name and name.startswith(incomplete):
            items.setdefault(name, CompletionItem(name, help=uuid))
        if uuid.startswith(incomplete):
            items.setdefault(uuid, CompletionItem(uuid, help=name or extra))
    return list(items.values())

def complete_sr(ctx: Any, param: Any, incomplete: str) -> List[Any]:
    try:
        url = ctx.params.get("url")
        cands = sr_candidates_remote(make_target(None, url)) if url else sr_candidates_local()
        return _completions(cands, incomplete)
    except Exception:  # noqa: BLE001 - completion must never print a traceback into the shell
        return []

def complete_vdi(ctx: Any, param: Any, incomplete: str) -> List[Any]:
    try:
        s = select_sr(ctx.params.get("driver"), ctx.params.get("url"), ctx.params["sr"])
        return _completions(vdi_candidates(s), incomplete)
    except Exception:  # noqa: BLE001 - as above
        return []
