"""Replays rounds of NBD operations over several concurrent connections (run by the *system* Python: libnbd).

stdin: {"uri", "conns", "rounds": [[op, ...], ...]}; ops of one round touch disjoint byte ranges and run
concurrently, one thread per connection (op i of a round on connection i % conns); rounds run one after another.
    ["w", off, len, seed]   write random.Random(seed).randbytes(len)
    ["W", off, len, seed]   the same with FUA
    ["r", off, len]         read; its sha256 goes to stdout
    ["z", off, len]         write zeroes
    ["t", off, len]         trim
    ["f"]                   flush
stdout: {"reads": [sha256, ...]} in (round, op) order.
"""

import hashlib
import json
import random
import sys
import threading

import nbd


def data_for(seed, n):
    return random.Random(seed).randbytes(n)


def run_op(h, op, out, slot):
    kind = op[0]
    if kind in ("w", "W"):
        h.pwrite(data_for(op[3], op[2]), op[1], nbd.CMD_FLAG_FUA if kind == "W" else 0)
    elif kind == "r":
        out[slot] = hashlib.sha256(h.pread(op[2], op[1])).hexdigest()
    elif kind == "z":
        h.zero(op[2], op[1])
    elif kind == "t":
        h.trim(op[2], op[1])
    elif kind == "f":
        h.flush()


def main():
    spec = json.load(sys.stdin)
    handles = []
    for _ in range(spec["conns"]):
        h = nbd.NBD()
        h.connect_uri(spec["uri"])
        handles.append(h)
    reads = []
    for rnd in spec["rounds"]:
        out = {}
        errors = []

        def worker(ci, rnd=rnd, out=out, errors=errors):
            try:
                for i, op in enumerate(rnd):
                    if i % len(handles) == ci:
                        run_op(handles[ci], op, out, i)
            except Exception as e:  # reported to the test, which fails on it
                errors.append(repr(e))

        threads = [threading.Thread(target=worker, args=(ci,)) for ci in range(len(handles))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            json.dump({"error": errors}, sys.stdout)
            return
        reads += [out[i] for i in sorted(out)]
    for h in handles:
        h.shutdown()
    json.dump({"reads": reads}, sys.stdout)


main()
