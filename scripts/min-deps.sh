#!/usr/bin/env bash
# CI step: smapi on the lowest dependency versions setup.cfg allows (every `name>=X` of install_requires pinned to
# `name==X`, environment markers kept), in a virtualenv of its own (.venv-mindeps, rebuilt only when the pins
# change), running a small fast subset: CLI (help, selectors, progress), packaging, import/export through the
# CLI, a conformance slice.
# A floor that does not work fails here instead of on a user's machine. `vermin` then checks that the package
# needs no Python newer than python_requires (only 3.11 is installed here, so 3.9 is checked from the source).
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
tools=("pytest>=7" "hypothesis>=6.50" "vermin>=1.6")
stamp="$VENV/.smapi-pins"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$pins ${tools[*]}" ]; then
    echo "min-deps: building $VENV with:" $pins
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    mapfile -t reqs <<< "$pins"
    "$VENV/bin/python" -m pip install -q "${reqs[@]}" "${tools[@]}" 2>&1 | grep -v "^WARNING: Location" || true
    echo "$pins ${tools[*]}" > "$stamp"
fi
# smapi itself without dependencies: the pinned ones must be enough (pip check says so)
"$VENV/bin/python" -m pip install -q --no-deps -e . 2>&1 | grep -v "^WARNING: Location\|^ \|^$" || true
"$VENV/bin/python" -m pip check
"$VENV/bin/python" -m pip list --format=freeze 2>/dev/null | grep -iE "^(click|jsonrpclib-pelix|xxhash|mfusepy|pyudev|nfs-rs)==" \
    | tr '\n' ' ' | sed 's/^/min-deps: /;s/$/\n/'
floor=$("$PY" -c 'import configparser, re; c = configparser.ConfigParser(); c.read("setup.cfg"); print(re.search(r">=\s*([0-9.]+)", c["options"]["python_requires"]).group(1))')
"$VENV/bin/vermin" --no-tips --quiet --violations --eval-annotations --backport typing --target="$floor-" smapi xapi
echo "min-deps: vermin finds nothing that needs a Python newer than $floor"
SMAPI_CONFORMANCE_DRIVERS=file exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider \
    tests/exec/test_cli.py tests/cli/test_selectors_help.py tests/transfer/test_cli_import.py tests/test_packaging.py \
    tests/core \
    tests/conformance/test_vdi.py "$@"
