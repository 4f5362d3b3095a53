"""Allocating writes with flushes until the server dies (run by the system Python: libnbd).

argv: uri seed conns slot_size slots.  Each write goes to its own slot (disjoint ranges, random offset and length
inside it, unaligned included); after a flush returns, the ids of every write completed before it began are printed
as "F id,id,...", so the test knows what must have survived a crash.
"""

import random
import sys
import threading

import nbd

uri, seed, conns, slot, slots = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
order = list(range(slots))
random.Random(seed).shuffle(order)
lock = threading.Lock()
done = []
next_id = [0]


def write_params(i):
    r = random.Random(seed * 100003 + i)
    off = r.randrange(slot - 1)
    n = r.randrange(1, slot - off + 1)
    return order[i] * slot + off, r.randbytes(n)


def worker(ci):
    h = nbd.NBD()
    h.connect_uri(uri)
    r = random.Random(seed + ci)
    try:
        while True:
            with lock:
                i = next_id[0]
                next_id[0] += 1
            if i >= slots:
                return
            off, data = write_params(i)
            h.pwrite(data, off)
            with lock:
                done.append(i)
            if r.random() < 0.2:
                with lock:
                    before = list(done)
                h.flush()
                with lock:
                    print("F " + ",".join(map(str, before)), flush=True)
    except nbd.Error:
        return  # the server was killed


threads = [threading.Thread(target=worker, args=(c,)) for c in range(conns)]
for t in threads:
    t.start()
for t in threads:
    t.join()
