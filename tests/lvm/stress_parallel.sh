#!/bin/bash
# Reproducer of the intermittent "Volume group VG_XenStorage-... not found" (see git log of lvmcli.py): runs the
# LVM driver and datapath tests on two xdist workers N times and counts the failing runs.
#   tests/lvm/stress_parallel.sh [N] [extra pytest args]
N=${1:-10}; shift
cd "$(dirname "$0")/../.." || exit 1
pass=0; fail=0
for i in $(seq 1 "$N"); do
  out=$(.venv/bin/python -m pytest -q -p no:cacheprovider tests/lvm/test_driver.py tests/lvm/test_datapath.py -n 2 "$@" 2>&1)
  if echo "$out" | tail -1 | grep -q "failed\|error"; then
    fail=$((fail+1)); echo "run $i FAIL: $(echo "$out" | grep -E '^(FAILED|ERROR)' | head -3)"
  else
    pass=$((pass+1)); echo "run $i ok: $(echo "$out" | tail -1)"
  fi
done
echo "pass=$pass fail=$fail"
[ "$fail" -eq 0 ]
