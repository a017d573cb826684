"""Differential test of the strategy book: ext/_book.pxi equals backtest/reference_book.py bit for bit.

The two engines perform the same IEEE operations in the same order (the core is built with
-ffp-contract=off), so the summary vectors and the per-block arrays must be identical, not merely close, on
hypothesis-drawn markets: de-pegging pools, irregular clocks, crashes that liquidate a vault, weights and
schedules of every size.
"""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest import _core
from backtest import reference_book as ref
from backtest.schema import PROTOCOL_NAMES
from backtest.venues import growth_codes

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def clock(rng, n, irregular):
    steps = rng.integers(1, 7200, n - 1) if irregular else np.full(n - 1, 3600)
    return np.concatenate([[1_700_000_000], 1_700_000_000 + np.cumsum(steps)]).astype(np.int64)


def path(rng, n, lo, hi):
    walk = np.cumsum(rng.normal(0, 0.01, n))
    return lo + (hi - lo) * (np.sin(walk) + 1) / 2


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 400), capital=st.floats(1e-6, 1e9),
       gas_open=st.floats(0, 1e6), gas_close=st.floats(0, 1e6))
def test_lp_core_equals_reference(seed, n, capital, gas_open, gas_close):
    rng = np.random.default_rng(seed)
    r0 = rng.uniform(1e2, 1e6, n)
    r1 = r0 * path(rng, n, 0.2, 5.0)
    vp = 1.0 + np.cumsum(rng.uniform(0, 1e-4, n))
    amp = rng.choice([1.0, 10.0, 50.0, 100.0, 2000.0], n) if rng.random() < 0.3 else np.full(n, 50.0)
    price = path(rng, n, 0.8, 1.01)
    gas = rng.uniform(0, 300, n)
    args = (r0, r1, vp, amp, price, gas, capital, gas_open, gas_close)
    same(_core.book_lp(*args), ref.book_lp(*args))


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 400), irregular=st.booleans(), loop=st.booleans(),
       protocol=st.sampled_from([0, 1, 3, 4, 5]), target=st.floats(0.05, 0.93), band=st.floats(0, 0.2),
       every=st.integers(1, 86400 * 3), fee=st.floats(0, 0.01), mgmt=st.floats(0, 0.05), perf=st.floats(0, 0.3),
       crash=st.floats(0, 0.5))
def test_vault_core_equals_reference(seed, n, irregular, loop, protocol, target, band, every, fee, mgmt, perf,
                                     crash):
    rng = np.random.default_rng(seed)
    ts = clock(rng, n, irregular)
    orc = 1.15 * np.cumprod(1 + rng.uniform(0, 2e-5, n))
    price = orc * path(rng, n, 0.75 if rng.random() < 0.3 else 0.9, 1.0)    # a deep discount: the open at cost
    if n > 2 and crash > 0:                        # a de-peg of the oracle too: liquidations
        at = rng.integers(1, n)
        orc = orc.copy()
        orc[at:] *= 1 - crash
        price = price.copy()
        price[at:] *= 1 - crash
    sa, ba = rng.uniform(0, 0.02, n), rng.uniform(0, 0.2, n)
    lt, bonus = np.full(n, rng.uniform(0.8, 0.96)), np.full(n, rng.uniform(0, 0.1))
    gas = rng.uniform(0, 100, n)
    params = np.array([protocol, float(loop), rng.uniform(1, 1e4), target, band, every, fee,
                       6e5, 4e5, 5e5, mgmt, perf, *growth_codes(PROTOCOL_NAMES[protocol])])
    args = (ts, price, orc, sa, ba, lt, bonus, gas, params, int(rng.integers(1, 50)))
    same(_core.book_vault(*args), ref.book_vault(*args))


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 300), k=st.integers(1, 6), irregular=st.booleans(),
       fee=st.floats(0, 0.01), every=st.integers(0, 86400 * 10))
def test_basket_core_equals_reference(seed, n, k, irregular, fee, every):
    rng = np.random.default_rng(seed)
    ts = clock(rng, n, irregular)
    natives = np.ascontiguousarray(np.stack([path(rng, n, 1, 4000) for _ in range(k)]))
    prices = np.ascontiguousarray(natives * np.stack([path(rng, n, 0.9, 1.3) for _ in range(k)]))
    w = rng.dirichlet(np.ones(k))
    args = (ts, prices, natives, w, rng.uniform(1, 1e6), fee, every, int(rng.integers(1, 20)))
    same(_core.book_basket(*args), ref.book_basket(*args))


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 300), irregular=st.booleans(), fee=st.floats(0, 0.01),
       halving=st.sampled_from([0.0, 3600.0, 7 * 86400.0, 21 * 86400.0]), sell=st.integers(1, 86400 * 7),
       exit_after=st.integers(0, 86400 * 30))
def test_farm_core_equals_reference(seed, n, irregular, fee, halving, sell, exit_after):
    rng = np.random.default_rng(seed)
    ts = clock(rng, n, irregular)
    rate = np.where(rng.random(n) < 0.2, 0.0, rng.uniform(0, 1e-5, n))
    args = (ts, path(rng, n, 0.9, 1.1), rate, path(rng, n, 0.01, 10), rng.uniform(1, 1e6), fee, halving, sell,
            exit_after, int(rng.integers(1, 20)))
    same(_core.book_farm(*args), ref.book_farm(*args))
