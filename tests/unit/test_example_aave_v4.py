"""examples/aave-v4-wsteth-loop.toml on the synthetic calm lake it names (`data = "synth"`), through the public API: a flash-loan loop on an Aave
v4 Spoke whose results follow the venue's rules (checked as rules, not as pinned numbers: the pinned-outputs
test pins those)."""
from __future__ import annotations

from pathlib import Path

import pytest

import backtest
from tests.synth_lake import synth_lake

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "aave-v4-wsteth-loop.toml"


def run(tmp_path, **overrides):
    ov = {"run.output": str(tmp_path), "run.data": str(synth_lake()), **overrides}
    return backtest.run(EXAMPLE, overrides=ov, write=False)["summary"]


def test_the_aave_v4_example_pays_the_risk_premium_on_the_drawn_rate(tmp_path):
    s = run(tmp_path)
    z = run(tmp_path, **{"market.collateral_risk": 0.0})
    # calm year: no liquidation, no rebalance (HF stays in [1.03, 1.10]); the debt is drawn once at the open,
    # so the premium is 18 % of the drawn interest exactly: interest(RP 0.18) = 1.18 x interest(RP 0)
    assert s["liq_count"][0] == 0 and s["n_rebalances"][0] == 0 and z["n_rebalances"][0] == 0
    assert s["interest_paid"][0] == pytest.approx(1.18 * z["interest_paid"][0], rel=1e-12)
    # HF = CF / LTV = 0.955 / 0.90 at the open (the costs shift it slightly), and CF 0.955 is the borrow limit
    assert s["min_hf"][0] == pytest.approx(0.955 / 0.90, rel=1e-3)
    # the premium costs (0.18 x 23.13 WETH of drawn interest) come straight out of equity
    assert s["end_equity"][0] == pytest.approx(z["end_equity"][0] - 0.18 * z["interest_paid"][0], rel=1e-9)
    assert s["supply_yield"][0] > 0.0                  # collateral supplied to the Hub earns its supply rate
