#!/usr/bin/env bash
# The test suite as `make test` runs it (after bootstrap and ruff): two phases.
#   1. Everything but the NFS stack, on several workers: most tests wait on subprocesses and I/O.
#   2. The NFS tests (ganesha + the userspace FUSE client, sanlock leases) on two workers of their own, after
#      phase 1 is done. They mostly wait (each SR joins its sanlock lockspace, ~3 s at io_timeout 1 s), so two
#      workers halve the time; more would load the userspace NFS client on a 2-core machine.
# Extra arguments go to both pytest runs.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WORKERS=${TEST_WORKERS:-4}

"$PY" -m pytest -q -p no:cacheprovider -n "$WORKERS" -k "not nfs" "$@"
first=$?
"$PY" -m pytest -q -p no:cacheprovider -n "${NFS_WORKERS:-2}" -k "nfs" "$@"
second=$?
# pytest's 5 means "no test selected": the NFS phase selects nothing when asked for a subset without NFS tests.
[ "$second" -eq 5 ] && second=0
[ "$first" -ne 0 ] && exit "$first"
exit "$second"
