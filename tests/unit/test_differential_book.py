"""Differential test of the strategy book: ext/_book.pxi equals backtest/reference_book.py bit for bit.

The two engines perform the same IEEE operations in the same order (the core is built with
-ffp-contract=off), so the summary vectors and the per-block arrays must be identical, not merely close, on
hypothesis-drawn markets: de-pegging pools, irregular clocks, crashes that liquidate a vault, weights and
schedules of every size. The fixed cases (STABLESWAP_CASES, VAULT_CASES, the @examples) push the engines into
the kernel's rare branches that scripts/kernel_branches.py found the draws missing, and compare them there.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
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


# an empty pool (D = 0), a pool so lopsided that Newton stops at its 255-iteration cap still moving, and one
# whose D^3 / (4 x0 x1) overflows (D is NaN in both: never a step within 1e-15 D, the cap again)
STABLESWAP_CASES = [(0.0, 0.0, 50.0), (1e-300, 1.0, 50.0), (1.0, 1e-300, 2000.0), (1e-200, 1e200, 50.0), (1.0, 2.0, 0.1)]


@pytest.mark.parametrize("x0, x1, amp", STABLESWAP_CASES)
def test_stableswap_core_equals_reference(x0, x1, amp):
    np.testing.assert_array_equal(_core.stableswap_invariant(x0, x1, amp), ref.stableswap_d(x0, x1, amp))


@SETTINGS
@example(seed=7, n=5, capital=1e-6, gas_open=1e6, gas_close=0.0)    # the open's gas exceeds the capital: value < 0
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


# Vault markets built by hand (zero rates and fees: the indices stay 1, the products are exact). The open at
# orc = price = 1 with target x borrows f = x cap / (1 - x) (cap = 1000): coll = cap + f tokens, debt = f.
# Per case: orc, price (block 0 is the open), lt, bonus, x, check_every; and what the case must show.
VAULT_CASES = {
    # hf = 2000 x 0.96875 x 0.5 / 1000 = 0.96875 = lt (1 + bonus): a 50 % close seizes exactly the share that
    # leaves hf where it was, so blocks 1 and 2 each run into the 64-liquidation cap
    "liquidation-cap": ([1.0, 0.96875, 0.96875], [1.0, 0.96875, 0.96875], 0.5, 0.9375, 0.5, 10**9,
                        {"liq_count": 128.0}),
    # hf = 2 x 0.5625 x 0.8 = 0.9 <= 0.95: the whole debt is repaid and the seizure (1000 x 1.05 / 0.5625 =
    # 1866.7 < 2000 tokens) fits: debt 0
    "full-close": ([1.0, 0.5625, 0.5625], [1.0, 0.5625, 0.5625], 0.8, 0.05, 0.5, 10**9,
                   {"liq_count": 1.0, "end_debt": 0.0}),
    # a DEX price at half the oracle: x q = 0.6 x 2 >= 1, the loan is sized at cost, 1000 x 0.6 / 0.4 = 1500
    "open-at-cost": ([1.0, 1.0, 1.0], [0.5, 0.5, 0.5], 0.9, 0.05, 0.6, 3600, {"end_debt": 1500.0}),
    # market 0.45, oracle 0.8: restoring x needs s = (1000 - 0.5 x 2000 x 0.8) / (0.45 - 0.4) = 4000 > 2000
    # tokens: all are sold, 1000 - 2000 x 0.45 = 100 of debt stays
    "sell-everything": ([1.0, 0.8, 0.8], [1.0, 0.45, 0.45], 0.99, 0.05, 0.5, 3600,
                        {"end_collateral": 0.0, "end_debt": 100.0, "n_rebalances": 1.0}),
    # coll x price = 2000 x 0.5 = debt: s = 0.25 / 0.125 = 2000, every token, repays the debt exactly
    "sell-to-zero-debt": ([1.0, 0.75, 0.75], [1.0, 0.5, 0.5], 0.9, 0.05, 0.5, 3600,
                          {"end_collateral": 0.0, "end_debt": 0.0, "n_rebalances": 1.0}),
    # coll x price = debt again (x = 0.259), but the sale's proceeds round past the debt: the excess is cash
    "sell-past-the-debt": ([1.0, 0.4036, 0.4036], [1.0, 0.259, 0.259], 0.99, 0.05, 0.259, 3600,
                           {"end_debt": 0.0}),
}


@pytest.mark.parametrize("case", sorted(VAULT_CASES))
def test_vault_branches_core_equals_reference(case):
    orc, price, lt, bonus, x, every, expect = VAULT_CASES[case]
    n = len(orc)
    ts = (1_700_000_000 + 3600 * np.arange(n)).astype(np.int64)
    zero = np.zeros(n)
    params = np.array([0, 1.0, 1000.0, x, 0.0, every, 0.0, 6e5, 4e5, 5e5, 0.0, 0.0, *growth_codes(PROTOCOL_NAMES[0])])
    args = (ts, np.array(price), np.array(orc), zero, zero, np.full(n, lt), np.full(n, bonus), zero, params, 200)
    core = _core.book_vault(*args)
    same(core, ref.book_vault(*args))
    got = dict(zip(ref.VAULT_FIELDS, core[0]))
    for field, want in expect.items():
        assert got[field] == pytest.approx(want, rel=1e-12, abs=1e-9), (case, field, got[field])


@SETTINGS
@example(seed=3, n=6, k=2, irregular=False, fee=1.0, every=3600)       # a 100 % fee buys nothing: value 0, no peak
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
@example(seed=5, n=6, irregular=False, fee=1.0, halving=0.0, sell=3600, exit_after=7200)   # nothing deposited
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
