"""Engine outputs -> polars frames of the result set of DESIGN.md section 6 (backtest/sweep.py writes them)."""
from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from backtest.data.market import Market
from backtest.engine import Outputs
from backtest.schema import EVENT_NAMES, RECORD_FIELDS

SUMMARY_METRICS = (
    "net_apy", "net_apy_rate", "hold_apy", "excess_apy", "staking_yield", "supply_yield", "interest_paid",
    "restaking_rewards", "gas_cost", "swap_fee_cost", "slippage_cost", "flash_fee_cost", "total_costs",
    "liq_count", "liq_debt_repaid", "liq_coll_seized", "liq_coll_seized_value", "liq_penalty",
    "liq_protocol_fee", "bad_debt", "min_hf", "min_hf_block", "min_hf_ts", "blocks_below_105",
    "max_drawdown", "avg_leverage", "n_rebalances", "exit_block", "end_equity", "end_equity_rate",
    "end_equity_usd", "hold_end_equity", "end_collateral", "end_debt", "end_cash", "n_events",
)


def summary_frame(out: Outputs, market: Market, labels: list[dict[str, Any]], config_ids: list[int],
                  capital: list[float]) -> pl.DataFrame:
    s = out.summaries
    n = len(s)
    blocks, ts = market.block, market.ts
    min_idx = s["min_hf_idx"]
    exit_idx = s["exit_idx"]
    lev = np.where(s["lev_n"] > 0, s["lev_sum"] / np.maximum(s["lev_n"], 1), np.nan)
    cols: dict[str, Any] = {"config_id": np.asarray(config_ids, dtype=np.int64)}
    keys: list[str] = []
    for lab in labels:
        for k in lab:
            if k not in keys:
                keys.append(k)
    for k in keys:
        cols[k] = [lab.get(k) for lab in labels]
    usd_end = float(market.eth_usd[-1])
    derived = {
        "excess_apy": s["net_apy"] - s["hold_apy"],
        # restaking_rewards comes from the engines (SUMMARY_DTYPE): reward value accrued on the collateral
        # tokens held, valued per [strategy.rewards]; it is reported beside equity, not inside it.
        "total_costs": s["gas_cost"] + s["swap_fee_cost"] + s["slippage_cost"] + s["flash_fee_cost"],
        "min_hf": np.where(min_idx >= 0, s["min_hf"], np.nan),
        "min_hf_block": np.where(min_idx >= 0, blocks[np.maximum(min_idx, 0)], -1),
        "min_hf_ts": np.where(min_idx >= 0, ts[np.maximum(min_idx, 0)], -1),
        "exit_block": np.where(exit_idx >= 0, blocks[np.maximum(exit_idx, 0)], -1),
        "avg_leverage": lev,
        "end_equity_usd": s["end_equity"] * usd_end,
    }
    for name in SUMMARY_METRICS:
        cols[name] = derived[name] if name in derived else s[name]
    cols["capital"] = np.asarray(capital, dtype=np.float64)
    return pl.DataFrame(cols)


def events_frame(out: Outputs, market: Market, config_ids: list[int]) -> pl.DataFrame:
    parts = []
    for cid, ev in zip(config_ids, out.events):
        if len(ev) == 0:
            continue
        idx = ev["idx"]
        parts.append(pl.DataFrame({
            "config_id": np.full(len(ev), cid, dtype=np.int64),
            "block": market.block[idx],
            "ts": market.ts[idx],
            "kind": [EVENT_NAMES[int(k)] for k in ev["kind"]],
            "collateral_change": ev["coll"],
            "debt_change": ev["debt"],
            "cost": ev["cost"],
            "hf_after": ev["hf"],
        }))
    if not parts:
        return pl.DataFrame(schema={"config_id": pl.Int64, "block": pl.Int64, "ts": pl.Int64, "kind": pl.Utf8,
                                    "collateral_change": pl.Float64, "debt_change": pl.Float64,
                                    "cost": pl.Float64, "hf_after": pl.Float64})
    return pl.concat(parts)


def timeseries_frame(out: Outputs, market: Market, i: int) -> pl.DataFrame:
    idx = out.rec_idx
    cols = {"block": market.block[idx], "ts": market.ts[idx]}
    for j, name in enumerate(RECORD_FIELDS):
        cols[name] = out.records[i, :, j]
    return pl.DataFrame(cols)
