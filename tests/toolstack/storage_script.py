"""A stand-in for xapi-storage-script's plugin calls, faithful to what upstream does (facts from xen-api
`ocaml/xapi-storage-script/main.ml`: `fork_exec_rpc`, `Datapath_plugins.register`, `choose_datapath`).

* scripts are looked up case-insensitively in the plugin directory; missing or non-executable scripts fail
  with SCRIPT_MISSING / SCRIPT_NOT_EXECUTABLE;
* argv is `[script, "--json"]`, the environment is inherited, stdin is the named arguments as ONE compact JSON
  object with no trailing newline, then closed;
* exit 0: stdout must be JSON (a unit result is `null`); other exits: stdout must be the error object
  `{code: string, params: string list, backtrace: {error: string, files: string list, lines: int list}}`,
  otherwise SCRIPT_FAILED;
* a datapath plugin registers by answering `Plugin.Query` (dbg "register") with a supported
  `required_api_version`; a volume's datapath is the registered plugin named by the scheme of one of its URIs,
  otherwise MISSING_URI.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

SUPPORTED_API_VERSIONS = ("3.0", "5.0")


class StorageScriptError(Exception):
    """What xapi-storage-script would raise to xapi."""

    def __init__(self, code: str, params: List[str]) -> None:
        super().__init__(code, params)
        self.code = code
        self.params = params


def _is_string_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_error_object(value: Any) -> bool:
    if not isinstance(value, dict) or not isinstance(value.get("code"), str) or not _is_string_list(
            value.get("params")):
        return False
    bt = value.get("backtrace")
    return (isinstance(bt, dict) and isinstance(bt.get("error"), str) and _is_string_list(bt.get("files"))
            and isinstance(bt.get("lines"), list) and all(isinstance(n, int) for n in bt["lines"]))


def find_script(script_dir: str, name: str) -> str:
    by_lower = {entry.lower(): entry for entry in sorted(os.listdir(script_dir))}
    found = by_lower.get(name.lower())
    if found is None:
        raise StorageScriptError("SCRIPT_MISSING", [os.path.join(script_dir, name)])
    path = os.path.join(script_dir, found)
    if not os.access(path, os.X_OK):
        raise StorageScriptError("SCRIPT_NOT_EXECUTABLE", [path])
    return path


def fork_exec_rpc(script_dir: str, verb: str, args: Dict[str, Any], timeout: float = 120) -> Any:
    script = find_script(script_dir, verb)
    stdin = json.dumps(args, separators=(",", ":"))
    p = subprocess.run([script, "--json"], input=stdin, capture_output=True, text=True, timeout=timeout)
    try:
        out = json.loads(p.stdout)
    except ValueError:
        raise StorageScriptError("SCRIPT_FAILED", [script, "stdout is not JSON", p.stdout, p.stderr]) from None
    if p.returncode == 0:
        return out
    if not _is_error_object(out):
        raise StorageScriptError("SCRIPT_FAILED", [script, "not an error object", p.stdout, p.stderr])
    raise StorageScriptError(out["code"], out["params"])


class StorageScript:
    """One plugin root: its volume plugins and the datapath plugins registered from it."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.datapaths: Dict[str, Dict[str, Any]] = {}
        datapath_root = os.path.join(root, "datapath")
        for scheme in sorted(os.listdir(datapath_root)) if os.path.isdir(datapath_root) else []:
            query = fork_exec_rpc(os.path.join(datapath_root, scheme), "Plugin.Query", {"dbg": "register"})
            if query["required_api_version"] not in SUPPORTED_API_VERSIONS:
                raise StorageScriptError("NO_STORAGE_PLUGIN_FOR_SR", [scheme, query["required_api_version"]])
            self.datapaths[scheme] = query

    def volume(self, plugin: str, verb: str, **args: Any) -> Any:
        return fork_exec_rpc(os.path.join(self.root, "volume", plugin), verb, args)

    def choose_datapath(self, uris: List[str], persistent: bool = True) -> Tuple[str, str]:
        """(scheme, uri) as upstream chooses them; non-persistent use prefers NONPERSISTENT plugins."""
        possible = [(urlsplit(u).scheme, u) for u in uris if urlsplit(u).scheme in self.datapaths]
        if not persistent:
            possible.sort(key=lambda su: "NONPERSISTENT" not in self.datapaths[su[0]]["features"])
        if not possible:
            raise StorageScriptError("MISSING_URI", [json.dumps(uris)])
        return possible[0]

    def datapath(self, scheme: str, verb: str, **args: Any) -> Any:
        return fork_exec_rpc(os.path.join(self.root, "datapath", scheme), verb, args)

    def supports(self, scheme: str, feature: str) -> bool:
        return feature in self.datapaths[scheme]["features"]


def implementation(backend: Dict[str, Any], kind: str) -> Optional[Dict[str, Any]]:
    for name, value in backend["implementations"]:
        if name == kind:
            return value
    return None
