#!/usr/bin/env bash
# CI step: smapi on the lowest dependency versions setup.cfg allows (every `name>=X` of install_requires pinned to
# `name==X`, environment markers kept), in a virtualenv of its own (.venv-mindeps, rebuilt only when the pins
# change), running a small fast subset: CLI, packaging, import/export through the CLI, a conformance slice.
# A floor that does not work fails here instead of on a user's machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${SMAPI_MIN_VENV:-.venv-mindeps}

pins=$("$PY" - <<'PYEOF'
import configparser
import re

cfg = configparser.ConfigParser()
cfg.read("setup.cfg")
for line in cfg["options"]["install_requires"].strip().splitlines():
    req, _, marker = line.strip().partition(";")
    m = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*>=\s*([^,\s]+)\s*", req)
    if not m:
        raise SystemExit(f"min-deps: {line!r} has no plain >= floor to test")
    print(f"{m.group(1)}=={m.group(2)}" + (f"; {marker.strip()}" if marker else ""))
PYEOF
)
stamp="$VENV/.smapi-pins"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$pins" ]; then
    echo "min-deps: building $VENV with:" $pins
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    mapfile -t reqs <<< "$pins"
    "$VENV/bin/python" -m pip install -q "${reqs[@]}" "pytest>=7" "hypothesis>=6.50" 2>&1 | grep -v "^WARNING: Location" || true
    echo "$pins" > "$stamp"
fi
# smapi itself without dependencies: the pinned ones must be enough (pip check says so)
"$VENV/bin/python" -m pip install -q --no-deps -e . 2>&1 | grep -v "^WARNING: Location\|^ \|^$" || true
"$VENV/bin/python" -m pip check
"$VENV/bin/python" -m pip list --format=freeze 2>/dev/null | grep -iE "^(click|jsonrpclib-pelix|xxhash|mfusepy|pyudev|nfs-rs)==" \
    | tr '\n' ' ' | sed 's/^/min-deps: /;s/$/\n/'
SMAPI_CONFORMANCE_DRIVERS=file exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider \
    tests/exec/test_cli.py tests/transfer/test_cli_import.py tests/test_packaging.py tests/core \
    tests/conformance/test_vdi.py "$@"
