"""The dust rule, the same in both engines and relative to the position (issue 8 / 9).

A balance or amount at or below DUST_REL x capital (1e-12 x capital) counts as zero. With an absolute
threshold (the old 1e-12 ETH) a position of 1e-20 ETH was all dust (nothing happened) and rounding could put a
~1e-12 leftover on either side in the two engines.
"""
import numpy as np
import pytest

from backtest.reference import DUST_REL, MIN_LEFTOVER_USD
from backtest.schema import EVENT_KINDS, SUMMARY_DTYPE
from tests.helpers import both, liq_events, market, params

VALUES = [k for k in SUMMARY_DTYPE.names if SUMMARY_DTYPE[k].kind == "f" and "apy" not in k
          and k not in ("min_hf", "max_drawdown", "lev_sum", "hold_apy")]


def crash_market(n=400):
    # a slow 45 % de-peg under the market oracle: a loop at 90 % LTV (LT 95 %) is liquidated several times
    price = np.concatenate([np.ones(n // 4), np.linspace(1.0, 0.55, n - n // 4)])
    return market(price, borrow_apr=0.05, supply_apr=0.01)


@pytest.mark.parametrize("tiny", [1e-20, 1e-9])
def test_a_tiny_position_is_the_big_one_scaled(tiny):
    # without gas or USD thresholds every amount is linear in the capital: capital c gives c x the results of
    # capital 1 (to the engines' rounding), and the same events; ratios (HF, drawdown, leverage) are equal
    m = crash_market()
    kw = dict(loops=8, target_ltv=0.9, entry="swap", swap_fee=3e-4)
    big_c, big_r = both(m, params(capital=1.0, **kw), oracle="market")
    small_c, small_r = both(m, params(capital=tiny, **kw), oracle="market")
    assert big_r.summaries[0]["liq_count"] >= 2                   # the scenario does liquidate
    for small, big in ((small_c, big_c), (small_r, big_r)):
        s, b = small.summaries[0], big.summaries[0]
        assert s["liq_count"] == b["liq_count"] and s["n_events"] == b["n_events"]
        for k in VALUES:
            assert s[k] == pytest.approx(tiny * b[k], rel=1e-9, abs=1e-9 * tiny), k
        for k in ("min_hf", "max_drawdown", "lev_sum"):
            assert s[k] == pytest.approx(b[k], rel=1e-9), k
        assert np.array_equal(small.events[0]["kind"], big.events[0]["kind"])
        assert np.array_equal(small.events[0]["idx"], big.events[0]["idx"])


def leftover_case(delta):
    """Aave v3.3 from block 0, close factor 0.5 (cf_ovr), LT 0.5: a loop of capital 100 at x = 0.45 holds
    145 tokens against a debt of 45 (stake entry at rate 1, no fees, no interest). At price 0.6, HF = 145 x 0.6
    x 0.5 / 45 = 0.967. ETH/USD u = 1000 / (45 - delta) puts the debt delta above the $1,000 floor, so a 50 %
    repay would leave less than $1,000: the repay shrinks to r1 = debt - 1000 / u = delta (r2 = (87 - 45 +
    delta) / 1.01 is far larger)."""
    debt = 0.45 * 100.0
    usd = MIN_LEFTOVER_USD / (debt - delta)
    m = market(np.array([1.0, 0.6, 0.6]), eth_usd=usd, ltv=0.45, lt=0.5, bonus=0.01, pfee=0.0)
    p = params(loops=1, target_ltv=0.45, capital=100.0, v33_from=0, cf_ovr=0.5)
    return both(m, p, oracle="market")


def test_a_leftover_repay_within_the_dust_is_no_liquidation():
    dust = DUST_REL * 100.0                                       # 1e-10 ETH for capital 100
    for out in leftover_case(0.5 * dust):                         # r1 = 5e-11 <= dust: nothing to repay
        assert out.summaries[0]["liq_count"] == 0
        assert out.summaries[0]["end_debt"] == pytest.approx(45.0, rel=1e-15)


def test_a_leftover_repay_above_the_dust_is_booked_once():
    dust = DUST_REL * 100.0
    for out in leftover_case(2.0 * dust):                         # r1 = 2e-10 > dust: one liquidation of r1
        liq = liq_events(out)
        assert len(liq) == 1                                      # then debt = $1,000 exactly: r1 ~ 1e-15
        assert -liq["debt"][0] == pytest.approx(2.0 * dust, rel=1e-4)    # (45 - 1000 / u) to ~1e-14 / 2e-10
        assert liq["idx"][0] == 1
        assert out.summaries[0]["end_debt"] * MIN_LEFTOVER_USD / (45.0 - 2.0 * dust) == pytest.approx(
            MIN_LEFTOVER_USD, rel=1e-12)


def test_event_kinds_of_the_leftover_case():
    # open + one loop step, nothing else (no bad debt, no second liquidation round at the floor)
    core, ref = leftover_case(2.0 * DUST_REL * 100.0)
    for out in (core, ref):
        kinds = out.events[0]["kind"].tolist()
        assert kinds == [EVENT_KINDS["open"], EVENT_KINDS["loop"], EVENT_KINDS["liquidation"]]
