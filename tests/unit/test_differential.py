"""Differential test: the Cython core equals the plain-Python reference engine, block for block.

Hypothesis draws the structure (length, clock, oracle, venue, strategy, costs, rebalance and exit rules,
chunk size) and a seed; numpy turns the seed into the market's paths (random-walk pegs with de-pegs, rate
spikes, parameter changes, USD prices small enough to hit the Aave v3.3 $2,000 / $1,000 rules). Every venue is
drawn: Aave v3 / v2, Spark, Morpho Blue (LTV = LLTV, Taylor interest, no close factor), Compound III (absorb
with a liquidation factor of 1 - bonus, linear index) and the generic venue (a fixed close factor always set).
With ``restake`` drawn, the market carries a restaking leg (:func:`restake_leg`): a reward series accruing on
the tokens held, slashes cutting the exchange rate (each a ``slash`` event and a chunk that is never skipped), a
hold benchmark token distinct from the collateral, and a dated two-step queue delay (EigenLayer's 7 d / 14 d).

Tolerance: relative 1e-9 (absolute 1e-9 for values near zero). Both engines evaluate the same formulas in
double precision, but the core stores scaled balances (actual = scaled * index) and evaluates the health
factor as (s/d) * a[b], while the reference multiplies actual balances by each block's growth factor, so the
two drift apart by a few ulps per operation (~1e-13 relative over these lengths). Integers (counts, block
indices, event kinds) must be equal exactly. The core's dense path and its chunk-skipping path must be
bit-for-bit identical.

What used to make this test flaky, fixed in both engines rather than tolerated: an absolute dust threshold
(1e-12 ETH) that rounding could put on either side, and a v3.3 leftover repay of ~1e-15 (debt - $1,000 / usd
within rounding of zero) that one engine booked as a liquidation and the other not: dust is now relative to the
position (1e-12 x capital) and a repay at or below it is no liquidation. And StableSwap outputs computed as
y0 - y lost ~1e-15 x pool depth absolutely, the whole slippage of a small trade; it is now closed-form.
Where a value is an argmin (min_hf_idx) over a stretch where HF is flat to rounding, see `same_min_hf_block`.
Profiles (tests/conftest.py): derandomized under CI=true, fresh draws otherwise; scripts/hunt.py repeats the
differential tests with fresh seeds.
"""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.data.market import Market
from backtest.engine import Lane, build_lanes, record_indices, run_core, run_reference_batch
from backtest.schema import EVENT_KINDS, PROTOCOL_NAMES, RECORD_FIELDS, SUMMARY_DTYPE
from tests.helpers import params

RTOL, ATOL = 1e-9, 1e-9


def make_market(seed: int, n: int, irregular: bool) -> Market:
    rng = np.random.default_rng(seed)
    dts = rng.integers(1, 40, n) if irregular else np.full(n, 12)
    ts = 1_735_000_000 + np.concatenate([[0], np.cumsum(dts[1:])])
    steps = rng.random(n) < 0.05
    xrate = 1.0 + rng.uniform(0, 0.3) + np.cumsum(steps * rng.uniform(0, 0.002, n))
    peg = 1.0 + np.cumsum(rng.normal(0, 0.002, n))
    if rng.random() < 0.7:                        # a de-peg: a V of random depth and width
        c, w, depth = rng.integers(0, n), rng.integers(2, max(3, n // 2)), rng.uniform(0.02, 0.35)
        peg -= depth * np.clip(1 - np.abs(np.arange(n) - c) / w, 0, None)
    peg = np.clip(peg, 0.5, 1.1)
    borrow = np.full(n, rng.uniform(0, 0.1))
    if rng.random() < 0.5:                        # a rate spike
        a = rng.integers(0, n)
        borrow[a: a + rng.integers(1, max(n, 2))] = rng.uniform(0.2, 3.0)
    ltv = rng.uniform(0.6, 0.93)
    lt = min(ltv + rng.uniform(0.005, 0.06), 0.97)
    ltv_a, lt_a = np.full(n, ltv), np.full(n, lt)
    if rng.random() < 0.3:                        # a governance change mid-window
        k = rng.integers(1, max(n, 2))      # n = 1: k = 1, no change inside the window
        ltv_a[k:] -= 0.05
        lt_a[k:] -= 0.03
    return Market.from_arrays(
        n, ts=ts, block=19_000_000 + np.arange(n), price=xrate * peg, xrate=xrate,
        eth_usd=float(rng.choice([3.0, 12.0, 25.0, 3000.0])), borrow_apr=borrow,
        supply_apr=rng.uniform(0, 0.02), ltv=ltv_a, lt=lt_a, bonus=rng.uniform(0.005, 0.1),
        pfee=rng.uniform(0, 0.2), gas_gwei=rng.uniform(0.1, 200, n),
        oracle_feed=xrate * np.clip(peg + 0.01, 0.5, 1.1),
    )


def restake_leg(m: Market, rng: np.random.Generator) -> Market:
    """Rewards (per-block value rate per token, piecewise with zero stretches), 1-3 slashes (fraction in
    [0.1 %, 20 %], applied to xrate from their block on, recorded in ``slash``) and a hold token priced apart."""
    n = len(m)
    rate = rng.uniform(0, 3e-8, n) * (rng.random(n) < 0.7)
    m.reward = np.concatenate([[0.0], np.cumsum(rate[:-1] * np.diff(m.ts))])
    m.hold_price = m.price * rng.uniform(0.9, 1.1)
    m.hold_xrate = m.xrate * rng.uniform(0.9, 1.1)
    if n > 2:
        for b in rng.integers(1, n, int(rng.integers(1, 4))):
            f = rng.uniform(0.001, 0.2)
            m.xrate[b:] *= 1.0 - f
            m.oracle_feed[b:] *= 1.0 - f
            if rng.random() < 0.5:
                m.price[b:] *= 1.0 - f
            m.slash[b] = 1.0 - (1.0 - m.slash[b]) * (1.0 - f)
    return m


def make_params(rng: np.random.Generator, m: Market, kind: str, protocol: str) -> np.ndarray:
    n = len(m)
    ltv0 = float(m.ltv[0])
    reb = rng.random() < 0.6
    delev = rng.uniform(1.0, 1.1)
    target = delev + rng.uniform(0.01, 0.2)
    return params(
        protocol=protocol, kind=kind, entry=str(rng.choice(["swap", "stake"])), loops=int(rng.integers(0, 12)),
        target_ltv=ltv0 * rng.uniform(0.5, 1.0) ** 0.3, slip_model=str(rng.choice(["none", "linear", "stableswap",
                                                                      "constant-product"])),
        slip_param=rng.uniform(0, 2), pool_depth=rng.uniform(500, 1e5), amp=rng.uniform(5, 500),
        swap_fee=rng.uniform(0, 0.003), flash_fee=rng.choice([0.0, 0.0005, 0.0009]),
        reb_on=int(reb), delev_below=delev, target_hf=target,
        relev_above=target + rng.uniform(0.01, 0.3) if rng.random() < 0.7 else math.inf,
        check_every=int(rng.choice([12, 60, 600, 3600])),
        exit_on=int(rng.random() < 0.4), depeg_below=rng.uniform(0.85, 0.99),
        exit_route=int(rng.integers(0, 2)), queue_delay=int(rng.integers(0, 3000)),
        queue_delay_late=int(rng.integers(0, 6000)),
        queue_late_from=int(m.ts[rng.integers(0, n)]) if rng.random() < 0.5 else 0,
        v33_from=int(m.ts[rng.integers(0, n)]) if rng.random() < 0.7 else 4_000_000_000,
        unwind_at_end=int(rng.random() < 0.3), capital=float(rng.choice([1.0, 10.0, 100.0, 5000.0])),
        gas_gwei=math.nan if rng.random() < 0.7 else 5.0, gas_open=6e5, gas_loop=2.5e5, gas_reb=4e5,
        gas_close=5e5,
        cf_ovr=rng.uniform(0.1, 1.0) if protocol == "generic" or rng.random() >= 0.85 else math.nan,
        # issue 13's realism options, drawn last (the draws above are what they were): a liquidators' delay and a
        # frozen withdrawal queue ([[scenario]] withdrawals_frozen)
        **_realism(rng, m),
    )


def _realism(rng: np.random.Generator, m: Market) -> dict:
    n = len(m)
    out = {"liq_delay": int(rng.integers(1, 30)) if rng.random() < 0.3 else 0}
    if rng.random() < 0.3:
        a, b = sorted(int(m.ts[i]) for i in rng.integers(0, n, 2))
        out.update(queue_frozen_from=a, queue_frozen_until=b + int(rng.integers(0, 5000)))
    return out


def venue_market(m: Market, protocol: str) -> Market:
    """Morpho Blue has one LLTV: its max LTV is its liquidation LTV."""
    if protocol == "morpho-blue":
        m.ltv = m.lt.copy()
    return m


VENUES = ["aave-v3", "aave-v2", "spark", "morpho-blue", "compound-v3", "generic"]


APYS = ("net_apy", "net_apy_rate", "hold_apy")


AMP_ULP = 1e-14      # 100 x the double-precision ulp bound, times an amplification factor (below)


def amplification(held: np.ndarray) -> np.ndarray:
    """(peak collateral so far / collateral now) along a sequence of collateral balances, 1 where empty.

    A liquidation cascade (a close factor repeated block after block, or round after round in one block) that
    seizes nearly all the collateral subtracts nearly equal numbers: the absolute ulp-level difference between
    the core's scaled balances and the reference's actual ones stays while the collateral shrinks, so the
    relative difference of everything computed from what is left (HF, LTV, the next amounts) grows by this
    factor: up to ~1e-7 when a position is liquidated down to dust."""
    held = np.asarray(held, dtype=float)
    peak = np.maximum.accumulate(np.maximum(held, 0.0)) if held.size else held
    return np.where(held > 0, peak / np.maximum(held, 1e-300), 1.0)


def event_rtol(ev, end_collateral: float) -> np.ndarray:
    """Per-event relative tolerance: RTOL, widened by the amplification of the collateral left after each
    event, which is reconstructed backwards from the ending collateral and the later events' collateral
    changes (accrual in between is ignored: it only matters for the estimate at the 1e-4 level)."""
    if len(ev) == 0:
        return np.zeros(0)
    later = np.concatenate([np.cumsum(ev["coll"][::-1])[::-1][1:], [0.0]])
    held = end_collateral - later
    return np.maximum(RTOL, AMP_ULP * amplification(held))


SIZE_ULP = 1e-12     # 10 x the engines' relative drift (~1e-13, above), times the position (below)
# The drift is not a constant: the reference rounds its actual balances once per block (x growth factor), the
# core its scaled ones at each action, so their difference grows with the blocks replayed. Measured: 2.9e-12 of
# the position after 475 blocks of releverage every block (seed 4294967295 of the targeted relev_no_room draw),
# ~6e-15 a block; SIZE_ULP_PER_BLOCK allows ~3x that, so over 5,000 blocks a size may differ by 1e-10 of the
# position, still far below any rule error (a wrong fee or cap moves a size by >1e-6 of the position).
SIZE_ULP_PER_BLOCK = 2e-14
SIZED = (EVENT_KINDS["loop"], EVENT_KINDS["rebalance"])


def event_atol(ev, end_collateral: float) -> np.ndarray:
    """Per-event absolute tolerance: ATOL, and for loop / rebalance events SIZE_ULP x the collateral held
    before the event. Those sizes are differences of numbers of the position's size (room = ltv x coll x
    price - debt, h x debt - coll x price x LT), so each engine knows them only to its drift x the position:
    a releverage of 7e-4 tokens on 124,000 has a relative uncertainty of ~1e-8 however exact the code."""
    if len(ev) == 0:
        return np.zeros(0)
    later = np.concatenate([np.cumsum(ev["coll"][::-1])[::-1][1:], [0.0]])
    before = np.abs(end_collateral - later) + np.abs(ev["coll"])
    ulp = np.maximum(SIZE_ULP, SIZE_ULP_PER_BLOCK * ev["idx"].astype(float))
    return np.where(np.isin(ev["kind"], SIZED), np.maximum(ATOL, ulp * before), ATOL)


def assert_same(a, b, exact=False, years=1.0):
    """APYs raise (equity / capital) to 1/years, which multiplies relative differences by 1/years, so
    their tolerance is RTOL / years for windows shorter than a year."""
    for name in SUMMARY_DTYPE.names:
        x, y = a.summaries[name], b.summaries[name]
        if name == "min_hf_idx" and not exact:
            continue                            # an argmin: compared by `same_min_hf_block`
        if exact or SUMMARY_DTYPE[name].kind == "i":
            assert np.array_equal(x, y, equal_nan=True), (name, x, y)
        else:
            rtol = RTOL / min(years, 1.0) if name in APYS else RTOL
            if name == "min_hf":
                # |min a - min b| <= max over blocks of |a_b - b_b|: the minimum inherits the widest per-block
                # HF tolerance, RTOL x the amplification of the collateral left (a cascade down to dust)
                rtol = np.array([max(RTOL, float(np.max(event_rtol(ev, float(ec)), initial=RTOL)))
                                 for ev, ec in zip(b.events, b.summaries["end_collateral"])])
            if name == "lev_sum":
                # each sample L = exposure / equity carries RTOL x L (as the records' leverage, below), so the
                # sum carries at most RTOL x max L x sum, and max L <= sum (every sample is positive)
                rtol = RTOL * np.maximum(1.0, np.abs(y))
            assert np.allclose(x, y, rtol=rtol, atol=ATOL, equal_nan=True), (name, x, y)
    for k, (ea, eb) in enumerate(zip(a.events, b.events)):
        assert len(ea) == len(eb), (ea, eb)
        ertol = event_rtol(eb, float(b.summaries["end_collateral"][k]))
        eatol = event_atol(eb, float(b.summaries["end_collateral"][k]))
        assert np.array_equal(ea["idx"], eb["idx"]) and np.array_equal(ea["kind"], eb["kind"]), (ea, eb)
        for f in ("coll", "debt", "cost", "hf"):
            if exact:
                assert np.array_equal(ea[f], eb[f], equal_nan=True), f
            else:
                atol = eatol if f in ("coll", "debt") else ATOL
                if f == "cost":
                    # a loop / rebalance pays fees and slippage in proportion to its size (gas is exact), so its
                    # cost is known to the same relative precision as the size: eatol / |size| x |cost|
                    rel = np.minimum(eatol / np.maximum(np.abs(eb["coll"]), 1e-300), 1e-6)   # never looser
                    atol = np.maximum(ATOL, np.where(np.isin(eb["kind"], SIZED), rel * np.abs(eb["cost"]), 0.0))
                assert np.allclose(ea[f], eb[f], rtol=ertol, atol=atol, equal_nan=True), (f, ea, eb)
    if exact:
        assert np.array_equal(a.records, b.records, equal_nan=True)
    else:
        # ratios of what is left after a cascade (HF, LTV) are compared at RTOL x the amplification of the
        # collateral left (see `amplification`); leverage = exposure / equity also multiplies relative
        # differences by the leverage itself (the subtraction in the equity)
        rtol = np.full(b.records.shape, RTOL)
        for c in range(b.records.shape[0]):
            amp = amplification(b.records[c, :, RECORD_FIELDS.index("collateral")])
            for name in ("hf", "ltv", "leverage"):
                rtol[c, :, RECORD_FIELDS.index(name)] = np.maximum(RTOL, AMP_ULP * amp)
            lev = np.nan_to_num(np.abs(b.records[c, :, RECORD_FIELDS.index("leverage")]), posinf=1.0)
            k = RECORD_FIELDS.index("leverage")
            rtol[c, :, k] = np.maximum(rtol[c, :, k], RTOL * np.maximum(1.0, lev))
        assert np.allclose(a.records, b.records, rtol=rtol, atol=ATOL, equal_nan=True)


def same_min_hf_block(m, p, lanes, me, core, ref):
    """min_hf_idx is the block of the lowest HF: equal in both engines, unless HF is flat to within rounding
    there (a position at a cap, HF equal to ~1e-15 over a stretch), where an argmin is not defined beyond the
    tolerance of the values. Then each engine's HF at the other's block (rerun recording every block) must
    equal the minimum within RTOL: an index that is merely off (a wrong block) still fails."""
    bad = np.flatnonzero(core.summaries["min_hf_idx"] != ref.summaries["min_hf_idx"])
    if not len(bad):
        return
    every = record_indices(m, 0)
    c_all = run_core(m, p[bad], lanes, every, me)
    r_all = run_reference_batch(m, p[bad], lanes, every, me)
    k = RECORD_FIELDS.index("hf")
    a = build_lanes(m, lanes)["a"]
    for j, i in enumerate(bad):
        low = float(ref.summaries["min_hf"][i])
        ic, ir = int(core.summaries["min_hf_idx"][i]), int(ref.summaries["min_hf_idx"][i])
        assert ic >= 1 and ir >= 1, ("min_hf_idx", ic, ir)
        # HF is measured before the block's actions; the record is after them: before block b the balances
        # are those recorded after b - 1, so HF before b = HF after b - 1 x a[b] / a[b - 1]
        lane = int(p[i]["lane"])
        for out, b in ((r_all, ic), (c_all, ir)):
            hf = out.records[j, b - 1, k] * a[lane, b] / a[lane, b - 1]
            assert hf == pytest.approx(low, rel=RTOL), ("min_hf_idx", i, ic, ir, hf, low)


def check_case(seed, n, irregular, oracle, kind, protocol, chunk, record, n_configs, restake, force=None):
    """Build the market (from ``seed``: the falsifying example hypothesis prints reproduces it) and the
    configurations, optionally pushed into a rare branch (``force``, tests/unit/test_differential_hunt.py),
    run both engines and the dense core, and compare."""
    m = venue_market(make_market(seed, n, irregular), protocol)
    rng = np.random.default_rng(seed + 1)
    if restake:
        m = restake_leg(m, np.random.default_rng(seed + 2))
    p = np.concatenate([make_params(rng, m, kind, protocol) for _ in range(n_configs)])
    if force is not None:
        m, p, oracle = force(m, p, oracle, np.random.default_rng(seed + 3))
    lanes = [Lane(oracle, 0.0968, int(rng.choice([600, 3600, 7 * 86400])), PROTOCOL_NAMES[int(p[0]["protocol"])])]
    rec = record_indices(m, record)
    me = int(rng.integers(1, 50))
    core = run_core(m, p, lanes, rec, me, chunk=chunk, event_cap=int(rng.integers(1, 8)))
    ref = run_reference_batch(m, p, lanes, rec, me)
    years = max(float(m.ts[-1] - m.ts[0]), 1.0) / (365 * 86400)
    assert_same(core, ref, years=years)
    same_min_hf_block(m, p, lanes, me, core, ref)
    dense = run_core(m, p, lanes, rec, me, chunk=chunk, dense=True)
    assert_same(core, dense, exact=True)
    return m, p, lanes, rec, me


# examples per run; derandomized with a fixed seed under CI=true (the "ci" profile, tests/conftest.py), fresh
# random draws otherwise (scripts/hunt.py runs many fresh seeds)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 400),
    irregular=st.booleans(),
    oracle=st.sampled_from(["exchange-rate", "market", "capo", "chainlink"]),
    kind=st.sampled_from(["hold", "lend", "loop", "flash-loan"]),
    protocol=st.sampled_from(VENUES),
    chunk=st.integers(1, 64),
    record=st.sampled_from([-1, 0, 60, 600]),
    n_configs=st.integers(1, 3),
    restake=st.booleans(),
)
def test_core_equals_reference(seed, n, irregular, oracle, kind, protocol, chunk, record, n_configs, restake):
    check_case(seed, n, irregular, oracle, kind, protocol, chunk, record, n_configs, restake)
