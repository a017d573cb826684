"""Results in the debt asset and in USD, and the manifest's column dictionary.

The summary names its debt asset and converts the headline amounts with eth_usd (USD per debt unit) at the
block each refers to: equity at the last block, capital at the first, each cost and liquidation at its event's
block; a block without a USD price gives NaN (unknown), never a guess.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import backtest
from backtest.engine import Outputs
from backtest.results import column_dictionary, summary_frame
from backtest.schema import EVENT_DTYPE, EVENT_KINDS, SUMMARY_DTYPE
from tests.helpers import market

REPO = Path(__file__).resolve().parents[2]


def outputs(events: list[tuple[int, str, float]], end_equity: float) -> Outputs:
    s = np.zeros(1, dtype=SUMMARY_DTYPE)
    s["end_equity"] = end_equity
    s["min_hf_idx"] = -1
    s["exit_idx"] = -1
    ev = np.zeros(len(events), dtype=EVENT_DTYPE)
    for j, (idx, kind, cost) in enumerate(events):
        ev[j]["idx"], ev[j]["kind"], ev[j]["cost"] = idx, EVENT_KINDS[kind], cost
    return Outputs(s, [ev], np.zeros((1, 0, 11)), np.zeros(0, dtype=np.int64))


def test_headline_amounts_are_converted_at_their_own_blocks():
    # USD per USDC: 1.0, 0.99, 0.98, 1.01. Costs: open 10 at block 0 and a rebalance 4 at block 2; a liquidation
    # penalty of 50 at block 1 and 20 of bad debt at block 1; a slash's loss (not a cost) of 7 at block 3.
    m = market(np.ones(4), eth_usd=np.array([1.0, 0.99, 0.98, 1.01]))
    out = outputs([(0, "open", 10.0), (1, "liquidation", 50.0), (1, "bad_debt", 20.0), (2, "rebalance", 4.0),
                   (3, "slash", 7.0)], end_equity=900.0)
    df = summary_frame(out, m, [{}], [0], [1000.0], ["USDC"])
    row = df.row(0, named=True)
    assert row["debt_asset"] == "USDC"
    assert row["pnl"] == pytest.approx(900.0 - 1000.0)
    assert row["capital_usd"] == pytest.approx(1000.0 * 1.0)
    assert row["end_equity_usd"] == pytest.approx(900.0 * 1.01)
    assert row["pnl_usd"] == pytest.approx(900.0 * 1.01 - 1000.0 * 1.0)
    assert row["total_costs_usd"] == pytest.approx(10.0 * 1.0 + 4.0 * 0.98)
    assert row["liq_penalty_usd"] == pytest.approx(50.0 * 0.99)
    assert row["bad_debt_usd"] == pytest.approx(20.0 * 0.99)


def test_a_block_without_a_usd_price_gives_an_unknown_usd_figure():
    # no USD price at block 2: the rebalance's USD cost is unknown, so is the total; the liquidation (block 1)
    # is still known
    m = market(np.ones(4), eth_usd=np.array([1.0, 0.99, np.nan, 1.01]))
    out = outputs([(0, "open", 10.0), (1, "liquidation", 50.0), (2, "rebalance", 4.0)], end_equity=900.0)
    row = summary_frame(out, m, [{}], [0], [1000.0], ["USDC"]).row(0, named=True)
    assert math.isnan(row["total_costs_usd"])
    assert row["liq_penalty_usd"] == pytest.approx(50.0 * 0.99)
    assert row["bad_debt_usd"] == 0.0
    assert row["pnl_usd"] == pytest.approx(900.0 * 1.01 - 1000.0)


def test_the_dictionary_names_units_in_the_debt_asset_usd_and_tokens():
    d = column_dictionary({"summary": ["end_equity", "end_equity_usd", "net_apy", "max_drawdown",
                                       "end_collateral", "strategy.target_ltv"],
                           "timeseries": ["market_price"]}, ["USDC"], ["wstETH"])
    units = {r["name"]: r["unit"] for r in d["summary"]}
    assert units == {"end_equity": "USDC", "end_equity_usd": "USD", "net_apy": "apy (per year, compounded)",
                     "max_drawdown": "fraction", "end_collateral": "wstETH tokens",
                     "strategy.target_ltv": "config value"}
    assert d["timeseries"][0]["unit"] == "USDC per wstETH"
    mixed = column_dictionary({"summary": ["pnl"]}, ["USDC", "WETH"], ["wstETH"])
    assert mixed["summary"][0]["unit"] == "the row's debt_asset"


def test_a_run_names_every_column_in_the_manifest(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    res = backtest.run(REPO / "examples" / "loop.toml",
                       overrides={"run.output": str(tmp_path), "run.end": "2024-06-03"})
    manifest = json.loads((Path(res["path"]) / "manifest.json").read_text())
    cols = manifest["columns"]
    assert [r["name"] for r in cols["summary"]] == res["summary"].columns
    assert [r["name"] for r in cols["events"]] == res["events"].columns
    for table, rows in cols.items():
        for r in rows:
            assert r["unit"] != "unknown" and r["meaning"], (table, r)
    units = {r["name"]: r["unit"] for r in cols["summary"]}
    assert units["end_equity"] == "WETH" and units["pnl_usd"] == "USD" and units["liq_coll_seized"] == "wstETH tokens"
    row = res["summary"].row(0, named=True)
    assert row["debt_asset"] == "WETH"
    assert row["pnl"] == row["end_equity"] - row["capital"]
    # a loop without liquidations: its costs are all its open / loop / rebalance events, each at its block
    # (the synthetic ETH/USD of the calm lake stays between $1,000 and $10,000)
    assert row["liq_penalty_usd"] == 0.0 and 1000 < row["total_costs_usd"] / row["total_costs"] < 10_000
