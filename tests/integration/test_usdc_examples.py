"""The stablecoin-debt examples (examples/wsteth-usdc-aave.toml, weeth-usdc-aave.toml) end to end on the bundled
lake: every amount in USDC, the USD figures beside them, both engines equal, and the bare exchange-rate oracle
refused with exit code 2.

They read the bundled lake's USDC series (USDC/USD prices and aave-v3 USDC rates, from `backtest data synth`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

import backtest
from backtest.cli import cli
from tests.synth_lake import synth_lake

REPO = Path(__file__).resolve().parents[2]
LAKE = synth_lake()




@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("usdc-examples")
    cache = {}

    def run(name: str, **ov):
        key = (name, tuple(sorted(ov.items())))
        if key not in cache:
            cache[key] = backtest.run(REPO / "examples" / f"{name}.toml",
                                      overrides={"run.output": str(out / str(len(cache))),
                                                 "run.data": str(LAKE), **ov})
        return cache[key]
    return run


@pytest.mark.parametrize("name,token", [("wsteth-usdc-aave", "wstETH"), ("weeth-usdc-aave", "weETH")])
def test_the_usdc_loop_reports_in_usdc_and_usd(runs, name, token):
    res = runs(name)
    s = res["summary"]
    assert s["debt_asset"].to_list() == ["USDC"] * s.height
    units = {r["name"]: r["unit"] for r in res["manifest"]["columns"]["summary"]}
    assert units["end_equity"] == "USDC" and units["pnl_usd"] == "USD" and units["end_collateral"] == f"{token} tokens"
    for row in s.iter_rows(named=True):
        # gas: ~1.8 M units at a few gwei is ~0.005-0.05 ETH, i.e. several USDC (in ETH units it would be < 1)
        assert row["gas_cost"] > 1.0
        # staking yield: ~3 %/yr on ~$100-300k of tokens is thousands of USDC, not the ~3 "USDC" of bare rate steps
        assert row["staking_yield"] > 500.0
        assert np.isfinite(row["pnl_usd"]) and np.isfinite(row["total_costs_usd"])
        # USDC/USD stays ~1: the USD figures are the USDC ones within a few percent
        assert row["end_equity_usd"] == pytest.approx(row["end_equity"], rel=0.05)
        assert row["capital_usd"] == pytest.approx(row["capital"], rel=0.05)


def test_the_reference_engine_equals_the_core(runs):
    ov = {"run.end": "2024-06-22"}
    core = runs("wsteth-usdc-aave", **ov)["summary"]
    ref = backtest.run(REPO / "examples" / "wsteth-usdc-aave.toml", engine="reference", write=False,
                       overrides={"run.data": str(LAKE), **ov})["summary"]
    for col in ("end_equity", "staking_yield", "gas_cost", "interest_paid", "min_hf", "pnl_usd"):
        assert np.allclose(core[col].to_numpy(), ref[col].to_numpy(), rtol=1e-9, atol=1e-9), col


def test_the_bare_exchange_rate_is_refused_with_exit_code_2(tmp_path):
    r = CliRunner().invoke(cli, ["run", str(REPO / "examples" / "wsteth-usdc-aave.toml"),
                                 "--set", f'run.output="{tmp_path}"', "--set", f'run.data="{LAKE}"',
                                 "--set", 'market.oracle="exchange-rate"'])
    assert r.exit_code == 2, r.output
    assert "market.oracle" in r.output and '"capo"' in r.output
    assert not any(tmp_path.rglob("*.parquet"))
