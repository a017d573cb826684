"""The summary's honest figures: the liquidation loss at fair value beside the penalty at the oracle price, the
window return beside the APY, the hold benchmark at the exchange rate. Expected numbers are worked out here
from the formulas (PROTOCOLS.md's Aave liquidation: seized = repaid x LB / oracle price)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from backtest.engine import Lane, Outputs, run_core
from backtest.episodes import liquidation_losses as per_event
from backtest.results import liquidation_losses, summary_frame
from backtest.schema import EVENT_DTYPE, EVENT_KINDS, RECORD_FIELDS, SUMMARY_DTYPE
from tests.helpers import market, params

RATE = 1.2              # wstETH's exchange rate: 1.2 ETH per token, a WETH debt (underlying price 1.0)
DEPEG = 0.94            # the DEX price falls 6 % below the rate; the market oracle follows it
LB = 1.05               # liquidation bonus 5 %, no protocol fee


def test_fair_value_loss_of_a_market_oracle_depeg_liquidation():
    # a 30-step loop (target LTV 0.9) opened at the peg; at block 2 the DEX price, and with it the market
    # oracle, is 1.128: the position is liquidated until nothing is left
    p_depeg = RATE * DEPEG
    m = market(np.array([RATE, RATE, p_depeg, p_depeg]), xrate=RATE, bonus=LB - 1, pfee=0.0, lt=0.95, ltv=0.93)
    lanes = [Lane("market", 0.0, 86400, "aave-v3")]
    out = run_core(m, params(target_ltv=0.9, loops=30), lanes, np.arange(4), 300)
    rec = out.records[0]
    c1, d1 = rec[1, RECORD_FIELDS.index("collateral")], rec[1, RECORD_FIELDS.index("debt")]
    assert c1 * p_depeg * 0.95 / d1 < 1.0                # liquidatable at block 2 (the premise)
    s = out.summaries[0]
    assert s["liq_count"] >= 2
    losses = liquidation_losses(out, m, ["aave-v3"], None, None)
    row = summary_frame(out, m, [{}], [0], [100.0], ["WETH"], losses=losses).row(0, named=True)
    repaid = float(s["liq_debt_repaid"])
    # every call: seized = repaid x LB / price, so the penalty at the oracle price is repaid x (LB - 1) ...
    assert row["liq_penalty"] == pytest.approx(repaid * (LB - 1), rel=1e-12)
    # ... while the collateral seized is worth seized x rate: a loss of repaid x (LB x rate / price - 1)
    want_rate = repaid * (LB * RATE / p_depeg - 1)
    assert row["liq_loss_rate"] == pytest.approx(want_rate, rel=1e-12)
    assert row["liq_loss_rate"] / row["liq_penalty"] == pytest.approx((LB * RATE / p_depeg - 1) / (LB - 1))
    assert row["liq_loss_rate"] > 2 * row["liq_penalty"]        # 2.34 x the bonus
    # at the market price (= this oracle) the fair-value loss is the penalty
    assert row["liq_loss_market"] == pytest.approx(row["liq_penalty"], rel=1e-12)
    # the books close: the equity at the exchange rate before (c1 x rate - d1) is gone, which is the loss
    # at fair value less the bad debt the borrower walks away from
    assert rec[3, RECORD_FIELDS.index("collateral")] == 0.0
    assert c1 * RATE - d1 == pytest.approx(row["liq_loss_rate"] - row["bad_debt"], rel=1e-9)


def _ev(rows):
    ev = np.zeros(len(rows), dtype=EVENT_DTYPE)
    for j, r in enumerate(rows):
        ev[j] = r
    return ev


def test_compound_absorb_credits_the_collateral_value_less_the_penalty():
    # Comet absorbs all 10 tokens at an oracle price of 1.1 with a liquidation factor of 0.93 (bonus 0.07):
    # credit = 10 x 1.1 x 0.93 = 10.23, of which 9 repays the debt and 1.23 comes back as cash; the penalty is
    # 10 x 1.1 x 0.07 = 0.77. At the rate (1.2) the tokens were worth 12: the loss is 12 - 10.23 = 1.77; at the
    # DEX price 1.05: 10.5 - 10.23 = 0.27
    m = market(np.array([1.2, 1.05]), xrate=1.2, bonus=0.07)
    ev = _ev([(1, EVENT_KINDS["liquidation"], -10.0, -9.0, 10 * 1.1 * 0.07, math.inf)])
    por = np.array([[1.2, 1.1]])
    rate, mkt = per_event(ev, None, m, "compound-v3", por)
    assert rate[0] == pytest.approx(12.0 - 10.23)
    assert mkt[0] == pytest.approx(10.5 - 10.23)
    # an Aave-family liquidation credits the debt repaid: 12 - 9 and 10.5 - 9
    rate, mkt = per_event(ev, None, m, "aave-v3", None)
    assert (rate[0], mkt[0]) == (pytest.approx(3.0), pytest.approx(1.5))


def test_a_multi_collateral_liquidation_of_every_leg_has_no_fair_value():
    from backtest.legs import legs_market

    a, b = market(np.array([1.2, 1.1]), xrate=1.2), market(np.array([1.05, 1.0]), xrate=1.05)
    m = legs_market((a, b), ("wstETH", "weETH"))
    ev = _ev([(1, EVENT_KINDS["liquidation"], -10.0, -9.0, 1.0, 1.0)] * 2)
    rate, mkt = per_event(ev, np.array([1, -1]), m, "aave-v3", None)
    assert rate[0] == pytest.approx(10 * 1.05 - 9) and mkt[0] == pytest.approx(10 * 1.0 - 9)   # the weETH leg
    assert math.isnan(rate[1]) and math.isnan(mkt[1])


def test_window_return_and_the_benchmark_at_the_exchange_rate():
    # a 3-day window; the rate grows 0.1 %, the DEX price ends 8 % below it
    day = 86400
    xr = np.array([1.2, 1.2006, 1.2 * 1.001])
    hp = np.array([1.2, 1.2, 1.2 * 1.001 * 0.92])
    m = market(hp, xrate=xr, dt=int(1.5 * day))
    s = np.zeros(1, dtype=SUMMARY_DTYPE)
    s["end_equity"], s["end_equity_rate"], s["net_apy_rate"] = 97.0, 100.5, 0.3
    s["min_hf_idx"] = s["exit_idx"] = -1
    tokens = 100.0 / 1.2                        # the benchmark bought at the peg
    s["hold_end_equity"] = tokens * hp[-1]
    out = Outputs(s, [np.zeros(0, dtype=EVENT_DTYPE)], np.zeros((1, 0, 11)), np.zeros(0, dtype=np.int64))
    row = summary_frame(out, m, [{}], [0], [100.0], ["WETH"]).row(0, named=True)
    assert row["window_return"] == pytest.approx(-0.03)
    assert row["window_return_rate"] == pytest.approx(0.005)
    assert row["hold_return"] == pytest.approx(1.001 * 0.92 - 1)
    assert row["hold_end_equity_rate"] == pytest.approx(100.0 * 1.001)
    years = 3 * day / (365 * day)
    assert row["hold_apy_rate"] == pytest.approx(1.001 ** (1 / years) - 1)
    assert row["excess_apy_rate"] == pytest.approx(0.3 - (1.001 ** (1 / years) - 1))
    # without the losses the fair-value columns are unknown, not zero
    assert math.isnan(row["liq_loss_rate"])
