"""The Aave v4 kernel helpers (ext/venues/_aave_v4.pxd, through the test-only backtest._venue_probe) equal the
Python spec (backtest/venues/aave_v4.py) on hypothesis-generated inputs.

Equality is exact (==): the header and the spec evaluate the same formulas in the same order on doubles, and
the probe is compiled with -ffp-contract=off, so no fused multiply-add can round differently. One spec
property is checked on the same inputs: a liquidation that neither hits a dust rule nor the collateral cap
leaves the health factor at the target (to 1e-9, the rounding of a difference of nearly equal values).
"""
import math

from hypothesis import given, strategies as st

from backtest import _venue_probe as probe
from backtest.venues import aave_v4 as v4

finite = dict(allow_nan=False, allow_infinity=False)


@st.composite
def spokes(draw):
    cf = draw(st.floats(0.01, 0.99, **finite))
    mb = draw(st.floats(0.0, min(0.5, 1.0 / cf - 1.0), **finite)) * 0.999     # (1 + mb) cf < 1
    return v4.resolve({
        "collateral_factor": cf,
        "max_liquidation_bonus": mb,
        "liquidation_bonus_factor": draw(st.floats(0.0, 1.0, **finite)),
        "health_factor_for_max_bonus": draw(st.floats(0.0, 0.99, **finite)),
        "target_health_factor": draw(st.floats(1.0, 2.0, **finite)),
        "liquidation_fee": draw(st.floats(0.0, 1.0, **finite)),
        "collateral_risk": draw(st.floats(0.0, 10.0, **finite)),
    })


amounts = st.floats(1e-6, 1e7, **finite)
usd_prices = st.floats(0.01, 1e5, **finite)


@st.composite
def positions(draw):
    """(spoke, coll, debt, p_coll, p_debt): mostly liquidatable (HF drawn in (0, 1.2))."""
    sp = draw(spokes())
    debt = draw(amounts)
    p_debt = draw(usd_prices)
    p_coll = draw(usd_prices)
    hf = draw(st.floats(0.01, 1.2, **finite))
    coll = hf * debt * p_debt / (p_coll * sp.collateral_factor)
    return sp, coll, debt, p_coll, p_debt


def spec_tuple(q):
    if q is None:
        return None
    return (q.repaid, q.seized, q.fee, q.coll_after, q.debt_after, q.deficit, q.hf, q.lb)


@given(spokes(), st.floats(0.0, 1.5, **finite))
def test_bonus_equals_spec(sp, hf):
    args = (hf, sp.max_lb, sp.liquidation_bonus_factor, sp.health_factor_for_max_bonus)
    assert probe.liquidation_bonus(*args) == v4.liquidation_bonus(*args)


@given(spokes(), amounts, st.floats(0.0, 1.0, **finite), usd_prices)
def test_debt_to_target_and_health_factor_equal_spec(sp, value, hf, p_debt):
    lb = v4.liquidation_bonus(hf, sp.max_lb, sp.liquidation_bonus_factor, sp.health_factor_for_max_bonus)
    args = (value, hf, sp.target_health_factor, lb, sp.collateral_factor, p_debt)
    assert probe.debt_to_target(*args) == v4.debt_to_target(*args)
    hargs = (value, p_debt, sp.collateral_factor, value * hf, p_debt)
    assert probe.health_factor(*hargs) == v4.health_factor(*hargs)


@given(positions(), st.one_of(st.just(math.inf), st.floats(0.0, 1.5, **finite)), st.booleans())
def test_liquidation_amounts_equal_spec(pos, offer_share, other):
    sp, coll, debt, p_coll, p_debt = pos
    offered = offer_share if math.isinf(offer_share) else offer_share * debt
    expect = spec_tuple(v4.liquidate(coll, debt, p_coll, p_debt, sp, offered=offered, other_collateral=other))
    assert probe.liquidation_amounts(coll, debt, p_coll, p_debt, sp, offered, other) == expect


@given(positions(), st.floats(0.01, 0.999, **finite), st.floats(1.0, 10.0, **finite))
def test_account_liquidation_equals_spec(pos, hf, debt_scale):
    # a reserve of a larger account: its HF and total debt value are the account's
    sp, coll, debt, p_coll, p_debt = pos
    tdv = debt * p_debt * debt_scale
    expect = spec_tuple(v4.liquidate(coll, debt, p_coll, p_debt, sp, other_collateral=True, hf=hf,
                                     total_debt_value=tdv))
    got = probe.liquidation_amounts(coll, debt, p_coll, p_debt, sp, math.inf, True, hf, tdv)
    assert got == expect


@given(positions())
def test_liquidation_to_target_restores_the_target_health_factor(pos):
    sp, coll, debt, p_coll, p_debt = pos
    q = v4.liquidate(coll, debt, p_coll, p_debt, sp)
    if q is None or q.coll_after == 0.0 or q.debt_after == 0.0:
        return                                           # healthy, collateral exhausted, or debt cleared
    after = v4.health_factor(q.coll_after, p_coll, sp.collateral_factor, q.debt_after, p_debt)
    assert math.isclose(after, sp.target_health_factor, rel_tol=1e-9)
    assert q.debt_after * p_debt >= v4.DUST_LIQUIDATION_THRESHOLD_USD
    assert q.coll_after * p_coll >= v4.DUST_LIQUIDATION_THRESHOLD_USD


@given(st.lists(st.tuples(st.floats(0.0, 1e7, **finite), st.sampled_from([0.0, 0.05, 0.18, 0.5, 1.0, 10.0])),
                max_size=16),
       st.floats(0.0, 2e7, **finite))
def test_risk_premium_equals_spec(cols, debt_value):
    values = [v for v, _ in cols]
    risks = [r for _, r in cols]
    assert probe.risk_premium(values, risks, debt_value) == v4.user_risk_premium(cols, debt_value)


def test_risk_premium_beyond_the_kernel_limit_is_nan():
    # the header sorts at most V4_MAX_COLLATERALS = 16 collaterals; more gives NaN rather than a wrong premium
    assert math.isnan(probe.risk_premium([1.0] * 17, [0.1] * 17, 5.0))


@given(st.floats(0.0, 2.0, **finite), st.floats(0.0, 10.0, **finite), st.floats(-10.0, 4e7, **finite))
def test_rates_equal_spec(rate, rp, dt):
    assert probe.borrow_rate(rate, rp) == v4.borrow_rate(rate, rp)
    assert probe.drawn_index_growth(rate, dt) == v4.drawn_index_growth(rate, dt)


debts = st.tuples(amounts, st.floats(0.0, 10.0, **finite)).map(
    lambda t: v4.refresh(v4.Debt(t[0], 0.0, 0.0), 1.0, t[1]))
indices = st.floats(1.0, 3.0, **finite)


@given(debts, indices, st.floats(0.0, 2e7, **finite), st.floats(0.0, 10.0, **finite))
def test_premium_accounting_equals_spec(d, index, amount, rp):
    t = (d.drawn_shares, d.premium_shares, d.premium_offset)
    assert probe.premium(t, index) == d.premium(index)
    assert probe.total_debt(t, index) == d.total(index)
    r = v4.refresh(d, index, rp)
    assert probe.refresh(t, index, rp) == (r.drawn_shares, r.premium_shares, r.premium_offset)
    w = v4.draw(d, index, amount, rp)
    assert probe.draw(t, index, amount, rp) == (w.drawn_shares, w.premium_shares, w.premium_offset)
    s = v4.restore(d, index, amount, rp)
    assert probe.restore(t, index, amount, rp) == (s.drawn_shares, s.premium_shares, s.premium_offset)


@given(positions(), indices, st.floats(0.01, 10.0, **finite), st.sampled_from([0.0, 1e-9, 1e-3]))
def test_state_liquidation_equals_spec(pos, index, por, dust_share):
    # aave_v4_liquidate on the engine's State / Mkt / Out (one block, supply index 1) against the spec's
    # liquidation_step, with and without engine dust
    sp, coll, debt, p_coll, p_debt = pos
    usd = p_coll / por
    dust = dust_share * debt
    d = v4.refresh(v4.Debt(debt / index, 0.0, 0.0), index, sp.collateral_risk)
    got = probe.liquidate_state(coll, (d.drawn_shares, d.premium_shares, d.premium_offset), por, usd, 1.0,
                                index, sp, dust)
    step = v4.liquidation_step(coll, d, index, por, usd, sp, dust)
    q = step.liquidation
    assert got["coll"] == step.coll
    assert got["debt"] == (step.debt.drawn_shares, step.debt.premium_shares, step.debt.premium_offset)
    assert got["drawn_shares"] == step.debt.drawn_shares
    assert got["bad_debt"] == step.bad_debt
    if q is None:
        assert got["liq_count"] == 0 and got["events"] == []
        return
    assert got["liq_count"] == 1
    assert got["liq_debt_repaid"] == q.repaid and got["liq_coll_seized"] == q.seized
    assert got["liq_protocol_fee"] == q.fee * por
    assert got["liq_penalty"] == q.seized * por - q.repaid
    assert len(got["events"]) == (2 if step.bad_debt > 0.0 else 1)
