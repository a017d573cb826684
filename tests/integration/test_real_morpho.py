"""Real history: a wstETH/WETH loop on a Morpho Blue 94.5 % LLTV market from 2024-05-13 to 2025-09-18 over the
real series in ../shared/data (hourly wstETH DEX price and exchange rate, hourly gas, AaveScan daily WETH rates).

There is no Morpho rate series in ../shared/data, so the borrow rate is a documented stand-in:

1. ``rates_from = "aave-v3"``: the Aave v3 WETH borrow APR (AaveScan, one snapshot a day) is charged as the
   Morpho market's borrow rate, compounded per block with Morpho's Taylor series (x + x^2/2 + x^3/6). Real
   Morpho wstETH/WETH rates were of the same order (both are WETH lending markets arbitraged by the same
   loopers) but not equal, so the returns below are "Morpho's rules at Aave's price of WETH".
2. ``irm = "adaptive-curve"`` on the Aave WETH utilisation: Morpho's AdaptiveCurveIRM run on a utilisation
   that is not Morpho's. Aave's WETH utilisation sat below Morpho's 90 % target most of the window (median
   ~87 %, above 90 % ~12 % of the time), so the rate at target decays towards its 0.1 % floor and the loop
   borrows almost for free: this variant checks the IRM's mechanics on a real path, not a real return.

Checks: Morpho's rules (collateral earns nothing: it stays exactly what was deposited; HF at the open =
LLTV / LTV; no liquidation at LTV 0.80 / 0.90 / 0.93 with the exchange-rate oracle), the Taylor-compounded debt
against Aave's own variableBorrowIndex over the same days (tolerance 5e-4 on the growth factor, as in
test_real_history.py: one rate snapshot a day held all day against an index that integrates every intraday
change), the pinned returns, and the core's AdaptiveCurveIRM against the reference one on the real path.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

import backtest
from backtest.config import load_config
from backtest.plan import market_for
from backtest.reference import adaptive_curve_rates
from tests.integration.test_real_history import index_ratio
from tests.integration.test_real_import import T, WETH_CSV, needs_shared, real_lake  # noqa: F401

START, END = "2024-05-13", "2025-09-18"
TOL = 5e-4
LTVS = [0.80, 0.90, 0.93]


def config(lake: Path, out: Path, extra: str = "") -> Path:
    path = out / "morpho-real.toml"
    path.write_text(f"""
[run]
name = "real-wsteth-morpho-945"
start = "{START}"
end = "{END}"
data = "{lake}"
output = "{out}"
record = "1d"

[market]
protocol = "morpho-blue"
collateral = "wstETH"
debt = "WETH"
lltv = 0.945
oracle = "exchange-rate"
rates_from = "aave-v3"          # stand-in: Aave v3's WETH rates (no Morpho series in ../shared/data)
{extra}

[strategy]
kind = "flash-loan"
capital = 100.0
entry = "swap"
target_ltv = 0.90

[costs]
gas = "data"
swap_fee = 0.0001
flash_fee = 0.0                 # Morpho Blue flash loans are free

[sweep]
"strategy.target_ltv" = {LTVS}
""")
    return path


@pytest.fixture(scope="module")
def replay(real_lake, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("morpho-real")
    return backtest.run(config(real_lake, out))


@pytest.fixture(scope="module")
def replay_irm(real_lake, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("morpho-real-irm")
    return backtest.run(config(real_lake, out, 'irm = "adaptive-curve"'), write=False), config(real_lake, out,
                                                                                                 'irm = "adaptive-curve"')


def opened(res) -> pl.DataFrame:
    return res["events"].filter(pl.col("kind") == "open").sort("config_id")


@needs_shared
def test_morpho_rules_on_the_real_window(replay):
    s = replay["summary"].sort("config_id")
    op = opened(replay)
    assert s["strategy.target_ltv"].to_list() == LTVS
    # a flash loan to LTV x on the oracle (the exchange rate): HF at the open = LLTV / x
    for i, x in enumerate(LTVS):
        assert op["hf_after"][i] == pytest.approx(0.945 / x, rel=1e-9)
    # the collateral is not lent out: it ends exactly as deposited, and earns no supply yield
    assert s["end_collateral"].to_list() == op["collateral_change"].to_list()
    assert (s["supply_yield"] == 0.0).all()
    # no liquidation: with the exchange-rate oracle only interest vs staking moves the HF
    assert (s["liq_count"] == 0).all() and (s["bad_debt"] == 0.0).all()


@needs_shared
def test_taylor_debt_growth_matches_the_weth_borrow_index(replay):
    s = replay["summary"].sort("config_id")
    op = opened(replay)
    aave = index_ratio(WETH_CSV, "variableBorrowIndex")
    assert aave == pytest.approx(1.0375, abs=1e-4)
    for i in range(len(LTVS)):
        engine = s["end_debt"][i] / op["debt_change"][i]
        assert engine == pytest.approx(aave, rel=TOL)
        assert s["interest_paid"][i] == pytest.approx(s["end_debt"][i] - op["debt_change"][i], rel=1e-9)


@needs_shared
def test_returns_on_the_real_window(replay):
    # Morpho's rules at Aave's price of WETH: staking ~2.9 %/yr on ~5x / ~10x / ~14x collateral, less the
    # WETH borrow (~2.5 %/yr, with the July 2024 and July 2025 spikes) on the debt
    s = replay["summary"].sort("config_id")
    assert s["hold_apy"][0] == pytest.approx(0.029366, abs=1e-5)
    assert s["net_apy"].to_list() == pytest.approx([0.035578, 0.043369, 0.050053], abs=1e-5)
    assert s["net_apy_rate"].to_list() == pytest.approx([0.040359, 0.052915, 0.063673], abs=1e-5)
    # leverage pays far less than its multiple: the excess over holding is 0.6 / 1.4 / 2.1 pt at ~5x / ~10x
    # / ~14x, because the WETH rate ate most of the staking yield
    assert s["excess_apy"].to_list() == pytest.approx([0.006212, 0.014003, 0.020688], abs=1e-5)
    assert s["avg_leverage"].to_list() == pytest.approx([4.97327, 9.880675, 14.036077], rel=1e-5)
    # staking outgrew the interest over the window, so the HF only rose after the first hour: its minimum is
    # the open's LLTV / x less an hour of interest, on 2024-05-13 before the first exchange-rate update
    assert s["min_hf"].to_list() == pytest.approx([1.181247, 1.049997, 1.016126], abs=2e-6)
    assert (s["min_hf_ts"] < T("2024-05-13 02:00")).all()
    assert s["interest_paid"].to_list() == pytest.approx([15.125593, 34.095348, 50.410915], rel=1e-6)


@needs_shared
def test_adaptive_curve_irm_on_the_aave_utilization(replay, replay_irm):
    res, path = replay_irm
    s = res["summary"].sort("config_id")
    data = replay["summary"].sort("config_id")
    m = market_for(load_config(path))
    # the engine's rate is the core's IRM; the reference IRM on the same real utilisation (first 20 days
    # of blocks, r_T from the 4 % initial rate) gives the same numbers
    k = 20 * 7200
    ref, _ = adaptive_curve_rates(m.ts[:k], m.utilization[:k], 0.04)
    assert np.allclose(m.borrow_apr[: k - 1], ref[: k - 1], rtol=1e-12, atol=0)
    # Aave's WETH utilisation sat below Morpho's 90 % target most of the time, so r_T drifts down from 4 %
    # (err ~ -0.03 at U ~0.87: exp(-50 x 0.03) ~ 0.22 a year), pushed back up by the ~12 % of the time above
    # the target (err up to ~0.4, ten times steeper): the borrow rate's median is ~1.06 %, 5-95 % ~0.40-2.2 %
    u = m.utilization
    assert 0.85 < np.median(u) < 0.89 and 0.05 < (u > 0.9).mean() < 0.2
    assert m.borrow_apr[0] == pytest.approx(0.0353, abs=1e-4)          # 4 % x (0.75 err + 1), err ~ -0.157
    assert np.median(m.borrow_apr) == pytest.approx(0.0106, abs=2e-4)
    assert np.all(m.borrow_apr >= 0.001 * 0.25) and np.all(m.borrow_apr <= 2.0 * 4)
    # a cheaper loan than the Aave-rate stand-in, same staking yield, no liquidation
    assert (s["interest_paid"] < data["interest_paid"]).all()
    assert s["staking_yield"].to_list() == pytest.approx(data["staking_yield"].to_list(), rel=1e-12)
    assert (s["liq_count"] == 0).all()
