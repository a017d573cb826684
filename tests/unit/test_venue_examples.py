"""The venue examples (examples/morpho-*.toml, compound-*.toml, generic-venue.toml) run on the bundled lake,
through the public API, and their results follow the venue's rules (numbers pinned at 1e-6 where they are
this lake's outcome, checked exactly where they are a rule)."""
from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

import backtest
from tests.synth_lake import synth_lake

REPO = Path(__file__).resolve().parents[2]
LIF_945 = 1 / (0.3 * 0.945 + 0.7)          # 1.0167768


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("venue-examples")
    cache = {}

    def run(name: str):
        if name not in cache:
            cache[name] = backtest.run(REPO / "examples" / f"{name}.toml",
                                       overrides={"run.output": str(out), "run.data": str(synth_lake())})
        return cache[name]
    return run


def liquidations(res) -> pl.DataFrame:
    return res["events"].filter(pl.col("kind") == "liquidation")


def test_morpho_loop_example(runs):
    s = runs("morpho-wsteth-loop")["summary"]
    assert s["liq_count"][0] == 0 and s["flash_fee_cost"][0] == 0.0
    assert s["supply_yield"][0] == 0.0                       # Morpho collateral earns nothing
    # a flash loan to LTV 0.90 on 100 WETH: ~10x; the HF stays in the [1.02, 1.08] band
    assert 9.5 < s["avg_leverage"][0] < 10.5
    assert 1.02 < s["min_hf"][0] < 1.0501
    assert s["net_apy"][0] == pytest.approx(0.038797, abs=2e-6)
    assert s["interest_paid"][0] == pytest.approx(26.300882, rel=1e-6)


def test_morpho_adaptive_irm_example_pays_for_the_shock(runs):
    data = runs("morpho-wsteth-loop")["summary"]
    irm = runs("morpho-adaptive-irm")["summary"]
    # same position (same staking yield); the utilisation shock ratchets the rate at target up by ~1.45x
    assert irm["staking_yield"][0] == pytest.approx(data["staking_yield"][0], rel=1e-12)
    assert irm["interest_paid"][0] > 1.2 * data["interest_paid"][0]
    assert irm["interest_paid"][0] == pytest.approx(33.38179, rel=1e-6)
    assert irm["liq_count"][0] == 0


def test_morpho_depeg_example_liquidates_the_whole_debt_once(runs):
    res = runs("morpho-depeg")
    s = res["summary"].sort("config_id")
    assert s["market.oracle"].to_list() == ["market", "exchange-rate"]
    liq = liquidations(res)
    assert liq.height == 1 and liq["config_id"][0] == 0
    # no close factor: the whole debt is repaid in one call, seized value = repaid x LIF, no fee, no bad debt
    assert s["end_debt"][0] == 0.0 and s["bad_debt"][0] == 0.0 and s["liq_protocol_fee"][0] == 0.0
    assert s["liq_coll_seized_value"][0] == pytest.approx(s["liq_debt_repaid"][0] * LIF_945, rel=1e-12)
    assert s["liq_penalty"][0] == pytest.approx(s["liq_debt_repaid"][0] * (LIF_945 - 1), rel=1e-9)
    assert s["liq_debt_repaid"][0] == pytest.approx(897.565843, rel=1e-6)
    assert s["min_hf"][0] < 1.0 and s["liq_count"][1] == 0 and s["min_hf"][1] > 1.04


def test_compound_loop_example(runs):
    s = runs("compound-wsteth-loop")["summary"]
    assert s["liq_count"][0] == 0 and s["supply_yield"][0] == 0.0
    assert s["min_hf"][0] > 1.03
    assert s["net_apy"][0] == pytest.approx(0.011489, abs=2e-6)


def test_compound_depeg_example_absorbs_with_an_excess(runs):
    res = runs("compound-depeg")
    s = res["summary"]
    liq = liquidations(res)
    assert liq.height == 1
    # absorb: all the collateral goes, the credit is 95 % of its value; it exceeds the debt, so no bad debt
    # and the excess is the borrower's base-asset balance (cash)
    value = s["liq_coll_seized_value"][0]
    assert s["end_collateral"][0] == 0.0 and s["end_debt"][0] == 0.0 and s["bad_debt"][0] == 0.0
    assert s["liq_penalty"][0] == pytest.approx(0.05 * value, rel=1e-12)
    assert s["liq_protocol_fee"][0] == pytest.approx(s["liq_penalty"][0], rel=1e-12)
    excess = 0.95 * value - s["liq_debt_repaid"][0]
    assert excess > 0
    # the wallet held -gas (the open's gas was paid from outside) before the absorb credited the excess
    assert s["end_cash"][0] == pytest.approx(excess - s["gas_cost"][0], rel=1e-9)
    assert s["end_equity"][0] == s["end_cash"][0]
    assert s["end_equity"][0] == pytest.approx(16.876318, rel=1e-6)


def test_generic_venue_example(runs):
    s = runs("generic-venue")["summary"]
    assert s["liq_count"][0] == 0
    assert s["supply_yield"][0] > 0                          # Aave-style supply index (Aave's wstETH rate)
    assert s["net_apy"][0] == pytest.approx(0.044026, abs=2e-6)
