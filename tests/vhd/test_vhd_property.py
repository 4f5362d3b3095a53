"""Property tests: random writes through random chains read exactly like a flat bytearray."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vhd_testlib import MemChain, rand_bytes

from smapi.vhd.constants import KiB, MiB

GEOMETRIES = st.sampled_from([
    (4 * KiB, 40 * KiB + 512),   # last block partial, odd sector count
    (16 * KiB, 128 * KiB),
    (64 * KiB, 256 * KiB + 3 * 512),
    (2 * MiB, 4 * MiB),
])


def op_strategy(size: int):
    write = st.tuples(st.just("w"), st.integers(0, size - 1), st.integers(1, 70 * KiB), st.integers(0, 2**31))
    return st.one_of(
        write, write, write,
        st.tuples(st.just("snap")),
        st.tuples(st.just("coalesce"), st.integers(1, 40)),
        st.tuples(st.just("read"), st.integers(0, size - 1), st.integers(1, 70 * KiB)),
        st.tuples(st.just("grow"), st.integers(1, 3)),
    )


@st.composite
def scenario(draw):
    bs, size = draw(GEOMETRIES)
    ops = draw(st.lists(op_strategy(size), min_size=1, max_size=40))
    return bs, size, ops


def run_scenario(bs: int, size: int, ops) -> None:
    mc = MemChain(size, bs)
    model = bytearray(size)
    for op in ops:
        chain = mc.chain
        assert chain is not None
        if op[0] == "w":
            _, off, n, seed = op
            n = min(n, size - off)
            data = rand_bytes(seed, n)
            chain.write(off, data)
            model[off : off + n] = data
        elif op[0] == "snap":
            if len(mc.names) < 30:
                mc.snapshot()
        elif op[0] == "coalesce":
            if len(mc.names) > 1:
                mc.coalesce(1 + op[1] % (len(mc.names) - 1))
        elif op[0] == "grow":
            from smapi.vhd.resize import resize_image

            new = resize_image(chain.leaf, len(model) + op[1] * bs)
            model.extend(bytes(new - len(model)))
        else:
            _, off, n = op
            n = min(n, size - off)
            assert chain.read(off, n) == model[off : off + n]
    assert mc.chain is not None
    assert mc.chain.size == len(model)
    assert mc.chain.read(0, len(model)) == model
    mc.reopen()  # from disk state only, no caches
    assert mc.chain.read(0, len(model)) == model


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_random_chains_match_flat_model(sc):
    run_scenario(*sc)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 64 * KiB - 1), st.integers(1, 9 * KiB), st.integers(0, 2**31)),
                min_size=30, max_size=60))
def test_deep_chain_depth_30(writes):
    """One snapshot per write up to depth 30, then coalesces from the middle back down."""
    ops = []
    for i, (off, n, seed) in enumerate(writes):
        ops.append(("w", off, n, seed))
        if i < 29:
            ops.append(("snap",))
    ops += [("coalesce", k) for k in (7, 3, 11, 1, 1)]
    ops += [("w", off, n, seed + 1) for off, n, seed in writes[:5]]
    run_scenario(4 * KiB, 64 * KiB, ops)
