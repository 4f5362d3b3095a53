#!/usr/bin/env bash
# Prepare this machine for smapi: the Debian packages of ci/apt-packages.txt, a virtualenv in .venv and the
# package installed into it (editable, with test extras). Idempotent and quick when nothing changed, so
# `make demo` and `make test` can call it every time.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${SMAPI_VENV:-.venv}
APT_LIST=ci/apt-packages.txt

want=()
while read -r pkg; do
    [ -z "$pkg" ] && continue
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || want+=("$pkg")
done < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$APT_LIST")

if [ "${#want[@]}" -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "bootstrap: missing Debian packages (${want[*]}); run as root or install them first" >&2
        exit 1
    fi
    echo "bootstrap: installing Debian packages: ${want[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Services in these packages must not start on install: tests start what they need themselves.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
fi

PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
    echo "bootstrap: creating virtualenv $VENV"
    "$PY" -m venv "$VENV"
fi

# Reinstall only when the package metadata changed.
stamp="$VENV/.smapi-installed"
# setup.py and the C sources: the install step also compiles the native nbdkit plugin (smapi/datapath/native).
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ] \
        || [ -n "$(find smapi/datapath/native -name '*.[ch]' -newer "$stamp" 2>/dev/null)" ]; then
    echo "bootstrap: installing smapi and test tools into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install -q -e '.[test]'
    touch "$stamp"
fi
