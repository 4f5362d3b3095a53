"""Error text for people at the shell: the next step named as a `smapi` command, not as a wire verb.

Errors are written once, for every caller (`... list the SR's VDIs with SR.scan`); the CLI rewrites the verbs it
has a command for (`smapi vdi-list --sr SR`) before printing.
"""

from __future__ import annotations

import re
from typing import Container

_VERB = re.compile(r"\b(SR|VDI|Query)\.([a-z_]+)\b")

#: verbs whose command is not simply `<iface>-<verb>`
_SPECIAL = {
    "SR.scan": "smapi vdi-list --sr SR",
    "SR.ls": "smapi sr-list",
    "Query.query": "smapi sm-query",
    "SR.set_name_label": "smapi sr-set-name",
    "SR.set_name_description": "smapi sr-set-description",
    "VDI.set_name_label": "smapi vdi-set-name",
    "VDI.set_name_description": "smapi vdi-set-description",
    "VDI.add_to_sm_config": "smapi vdi-sm-config",
    "VDI.remove_from_sm_config": "smapi vdi-sm-config",
}
#: verbs whose command needs its object named
_ARGS = {"SR.attach": " SR", "SR.detach": " SR", "SR.destroy": " SR", "VDI.detach": " --sr SR VDI",
         "VDI.destroy": " --sr SR VDI", "VDI.clone": " --sr SR VDI", "VDI.resize": " --sr SR --size SIZE VDI"}


def cli_hints(message: str, commands: Container[str]) -> str:
    """`message` with each wire verb that has a command in `commands` replaced by that command, in backquotes."""

    def command_for(m: re.Match[str]) -> str:
        verb = m.group(0)
        special = _SPECIAL.get(verb)
        if special is not None:
            return f"`{special}`"
        name = f"{m.group(1).lower()}-{m.group(2).replace('_', '-')}"
        if name not in commands:
            return verb
        return f"`smapi {name}{_ARGS.get(verb, '')}`"

    return _VERB.sub(command_for, message)
