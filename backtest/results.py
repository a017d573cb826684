"""Engine outputs -> polars frames of the result set of DESIGN.md section 6 (backtest/sweep.py writes them), and
the column dictionary (name, unit, meaning) the manifest carries for each table.

Amounts are in the debt asset (the summary's ``debt_asset`` column names it); the headline amounts also come in
USD, converted with ``Market.eth_usd`` (USD per debt unit) at the block each amount refers to: the ending equity
at the last block, the capital at the first, each cost and each liquidation at its own event's block. Where the
lake has no USD price for the debt at such a block the USD figure is NaN (unknown), never a guess.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from backtest import numerics
from backtest.data.market import Market
from backtest.engine import Outputs
from backtest.episodes import DEPEG_EVENT_SCHEMA, EVENTS_SCHEMA, utc_column
from backtest.schema import EVENT_KINDS, EVENT_NAMES, RECORD_FIELDS

SUMMARY_METRICS = (
    "net_apy", "net_apy_rate", "hold_apy", "excess_apy", "staking_yield", "supply_yield", "interest_paid",
    "restaking_rewards", "gas_cost", "swap_fee_cost", "slippage_cost", "flash_fee_cost", "total_costs",
    "liq_count", "liq_debt_repaid", "liq_coll_seized", "liq_coll_seized_value", "liq_penalty",
    "liq_protocol_fee", "bad_debt", "min_hf", "min_hf_block", "min_hf_ts", "blocks_below_105",
    "max_drawdown", "avg_leverage", "n_rebalances", "exit_block", "end_equity", "end_equity_rate",
    "end_equity_usd", "hold_end_equity", "end_collateral", "end_debt", "end_cash", "n_events",
)
# in the debt asset and in USD (added after the columns above, which keep their values)
DEBT_AND_USD = ("debt_asset", "pnl", "capital_usd", "pnl_usd", "total_costs_usd", "liq_penalty_usd", "bad_debt_usd")
# events whose cost is what the strategy paid (gas, swap fee, slippage, flash fee): their sum is total_costs
COST_EVENTS = tuple(EVENT_KINDS[k] for k in ("open", "loop", "rebalance", "exit", "unwind"))
# per-leg columns of a multi-collateral position, each suffixed with the leg's token (end_collateral_weETH);
# the order of backtest.reference_legs.LEG_SUMMARY / LEG_RECORD
LEG_SUMMARY_COLUMNS = ("end_collateral", "liq_coll_seized", "liq_coll_seized_value")
LEG_RECORD_COLUMNS = ("collateral", "oracle_price", "market_price", "exchange_rate")


def usd_at_events(out: Outputs, market: Market, kinds: tuple[int, ...]) -> np.ndarray:
    """Per configuration: the sum of its events' cost of these kinds, each in USD at its own block."""
    usd = market.eth_usd
    res = np.zeros(len(out.events))
    for i, ev in enumerate(out.events):
        sel = ev[np.isin(ev["kind"], kinds)]
        if len(sel):
            res[i] = float(np.sum(sel["cost"] * usd[sel["idx"]]))
    return res


def annualise(end_equity: np.ndarray, capital: np.ndarray, years: float) -> np.ndarray:
    """As the engines annualise (backtest.reference.annualise): 0 for an empty window, -1 once equity is gone."""
    if years <= 0:
        return np.zeros(len(end_equity))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        g = numerics.power(end_equity / capital, 1.0 / years) - 1.0
    return np.where(end_equity <= 0, -1.0, g)


def liquidation_losses(out: Outputs, market: Market, protocols: list[str] | None,
                       oracle_prices: np.ndarray | None, lanes_of: list[int] | None) -> list[tuple]:
    """Per configuration, per event: the fair-value liquidation loss at the exchange rate and at the market
    (backtest.episodes.liquidation_losses). oracle_prices: [lane, leg, block]; a Compound III configuration
    without them gets NaN (its credit needs the oracle price)."""
    from backtest.episodes import COMET, LIQ
    from backtest.episodes import liquidation_losses as per_event

    res = []
    for j, ev in enumerate(out.events):
        protocol = protocols[j] if protocols is not None else ""
        legs = out.event_legs[j] if out.event_legs is not None else None
        if protocol == COMET and (oracle_prices is None or lanes_of is None):
            nan = np.where(ev["kind"] == LIQ, np.nan, 0.0)
            res.append((nan, nan.copy()))
            continue
        por = oracle_prices[lanes_of[j]] if protocol == COMET else None
        res.append(per_event(ev, legs, market, protocol, por))
    return res


def honest_columns(out: Outputs, market: Market, cap: np.ndarray, losses: list[tuple] | None,
                   on_paths: bool) -> dict[str, np.ndarray]:
    """The summary's fair-value loss, window returns and the benchmark at the exchange rate (new columns;
    NaN on Monte Carlo paths, whose prices are not the market's)."""
    from backtest.episodes import hold_tokens
    from backtest.schema import SECONDS_PER_YEAR

    s = out.summaries
    n = len(s)
    cols: dict[str, np.ndarray] = {}
    if losses is None or on_paths:
        cols["liq_loss_rate"] = cols["liq_loss_market"] = np.full(n, np.nan)
    else:
        cols["liq_loss_rate"] = np.array([float(np.sum(r)) for r, _ in losses])
        cols["liq_loss_market"] = np.array([float(np.sum(m)) for _, m in losses])
    cols["window_return"] = s["end_equity"] / cap - 1.0
    cols["window_return_rate"] = s["end_equity_rate"] / cap - 1.0
    cols["hold_return"] = s["hold_end_equity"] / cap - 1.0
    if on_paths:
        rate_end = np.full(n, np.nan)
    else:
        fair_end = float(market.hold_xrate[-1]) * float(market.underlying_price[-1])
        rate_end = np.array([hold_tokens(float(h), market) * fair_end for h in s["hold_end_equity"]])
    years = float(market.ts[-1] - market.ts[0]) / SECONDS_PER_YEAR
    cols["hold_end_equity_rate"] = rate_end
    cols["hold_apy_rate"] = np.where(np.isnan(rate_end), np.nan, annualise(rate_end, cap, years))
    cols["excess_apy_rate"] = s["net_apy_rate"] - cols["hold_apy_rate"]
    return cols


def summary_frame(out: Outputs, market: Market, labels: list[dict[str, Any]], config_ids: list[int],
                  capital: list[float], debt: list[str] | None = None,
                  path: np.ndarray | None = None, losses: list[tuple] | None = None) -> pl.DataFrame:
    """One row per configuration; debt: each configuration's market.debt (the unit of its amounts);
    path: each row's path (engine.run_core_paths), a `path` column after config_id (none without paths);
    losses: liquidation_losses(...) of the configurations (None: the fair-value loss columns are NaN)."""
    s = out.summaries
    n = len(s)
    blocks, ts = market.block, market.ts
    min_idx = s["min_hf_idx"]
    exit_idx = s["exit_idx"]
    lev = np.where(s["lev_n"] > 0, s["lev_sum"] / np.maximum(s["lev_n"], 1), np.nan)
    cols: dict[str, Any] = {"config_id": np.asarray(config_ids, dtype=np.int64)}
    if path is not None:
        cols["path"] = np.asarray(path, dtype=np.int64)
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
    cap = np.asarray(capital, dtype=np.float64)
    cols["capital"] = cap
    if debt is not None and len(debt) != n:
        raise ValueError("summary_frame: one debt asset per configuration")
    usd_start = float(market.eth_usd[0])
    cols["debt_asset"] = list(debt) if debt is not None else [None] * n
    cols["pnl"] = s["end_equity"] - cap
    cols["capital_usd"] = cap * usd_start
    cols["pnl_usd"] = s["end_equity"] * usd_end - cap * usd_start
    cols["total_costs_usd"] = usd_at_events(out, market, COST_EVENTS)
    cols["liq_penalty_usd"] = usd_at_events(out, market, (EVENT_KINDS["liquidation"],))
    cols["bad_debt_usd"] = usd_at_events(out, market, (EVENT_KINDS["bad_debt"],))
    # a multi-collateral position: its token amounts above are summed over the legs; per leg (new columns)
    for k, tok in enumerate(out.tokens):
        for j, name in enumerate(LEG_SUMMARY_COLUMNS):
            cols[f"{name}_{tok}"] = out.leg_summary[:, k, j]
    cols.update(honest_columns(out, market, cap, losses, path is not None))
    return pl.DataFrame(cols)


def events_frame(out: Outputs, market: Market, config_ids: list[int]) -> pl.DataFrame:
    """Every configuration's events in one frame, built from concatenated arrays (one frame per configuration
    cost 0.4 s in a 1,000-configuration sweep)."""
    # the depeg rows' columns (backtest.episodes.depeg_event_frame), null on the position's events
    depeg = [pl.lit(None, dtype).alias(name) for name, dtype in DEPEG_EVENT_SCHEMA.items()]
    kept = [(j, cid, ev) for j, (cid, ev) in enumerate(zip(config_ids, out.events)) if len(ev) > 0]
    if not kept:
        return pl.DataFrame(schema=EVENTS_SCHEMA)
    idx = np.concatenate([ev["idx"] for _, _, ev in kept])
    kinds = np.concatenate([ev["kind"] for _, _, ev in kept]).astype(np.int64)
    names = np.array([EVENT_NAMES.get(k) for k in range(max(EVENT_NAMES) + 1)], dtype=object)
    cols = {
        "config_id": np.concatenate([np.full(len(ev), cid, dtype=np.int64) for _, cid, ev in kept]),
        "block": market.block[idx],
        "ts": market.ts[idx],
        "kind": pl.Series(names[kinds].tolist(), dtype=pl.Utf8),
        "collateral_change": np.concatenate([ev["coll"] for _, _, ev in kept]),
        "debt_change": np.concatenate([ev["debt"] for _, _, ev in kept]),
        "cost": np.concatenate([ev["cost"] for _, _, ev in kept]),
        "hf_after": np.concatenate([ev["hf"] for _, _, ev in kept]),
    }
    if out.tokens:      # a multi-collateral position: the leg an Aave-family liquidation seized (null: every leg)
        legs = np.concatenate([np.asarray(out.event_legs[j], dtype=np.int64) for j, _, _ in kept])
        cols["seized_collateral"] = pl.Series([out.tokens[int(k)] if k >= 0 else None for k in legs],
                                              dtype=pl.Utf8)
    return pl.DataFrame(cols).with_columns(utc_column(pl.col("ts")).alias("time_utc")).with_columns(depeg)


def with_depeg_events(events: pl.DataFrame, depeg: pl.DataFrame) -> pl.DataFrame:
    """The position's events and the depeg rows of the same configurations in one table, by config_id and
    block; at one block the position's events first (in the order the engine gave them), then the depeg rows
    (in depeg_event_frame's order). The sort is stable, so the position's rows keep their order."""
    if depeg.height == 0:
        return events
    return pl.concat([events, depeg], how="diagonal_relaxed").sort(["config_id", "block"], maintain_order=True)


def timeseries_frame(out: Outputs, market: Market, i: int, config_id: int = -1) -> pl.DataFrame:
    idx = out.rec_idx
    cols = {"block": market.block[idx], "ts": market.ts[idx]}
    for j, name in enumerate(RECORD_FIELDS):
        cols[name] = out.records[i, :, j]
    # a multi-collateral position: per leg (oracle_price, market_price and exchange_rate above are NaN)
    for k, tok in enumerate(out.tokens):
        for j, name in enumerate(LEG_RECORD_COLUMNS):
            cols[f"{name}_{tok}"] = out.leg_records[i, :, k, j]
    # the Hive partition's config_id also as a plain column, and the time as a UTC timestamp (new columns)
    cols["config_id"] = np.full(len(idx), config_id, dtype=np.int64)
    return pl.DataFrame(cols).with_columns(utc_column(pl.col("ts")).alias("time_utc"))


# --- the column dictionary ------------------------------------------------------------------------------------
# unit kinds: "debt" (the debt asset's symbol), "usd", "tokens" (the collateral token), "price" (debt asset per
# collateral token), "rate" (underlying per collateral token), "fraction", "apy", "ratio", "count", "block", "ts",
# "utc", "seconds", "bool", "id", "text"
COLUMNS: dict[str, tuple[str, str]] = {
    "config_id": ("id", "configuration number (the manifest's points)"),
    "block": ("block", "block number"),
    "ts": ("ts", "block time, UTC epoch seconds"),
    "net_apy": ("apy", "equity growth at the market mark, annualised (compounded)"),
    "net_apy_rate": ("apy", "equity growth with the collateral at the exchange rate, annualised (compounded)"),
    "hold_apy": ("apy", "the hold-the-LST benchmark over the same window, annualised (compounded)"),
    "excess_apy": ("apy", "net_apy - hold_apy"),
    "staking_yield": ("debt", "exchange-rate growth on the tokens held, valued at each step"),
    "supply_yield": ("debt", "supply interest on the collateral, valued at the exchange rate"),
    "interest_paid": ("debt", "borrow interest accrued on the debt"),
    "restaking_rewards": ("debt", "reward value accrued on the tokens held (not in equity)"),
    "gas_cost": ("debt", "gas paid, gas-token units x gas price converted at each action's block"),
    "swap_fee_cost": ("debt", "DEX swap fees"),
    "slippage_cost": ("debt", "DEX price impact"),
    "flash_fee_cost": ("debt", "flash-loan fees"),
    "total_costs": ("debt", "gas + swap fees + slippage + flash-loan fees"),
    "liq_count": ("count", "liquidation calls"),
    "liq_debt_repaid": ("debt", "debt repaid by liquidators"),
    "liq_coll_seized": ("tokens", "collateral taken by liquidators (incl. the protocol's fee)"),
    "liq_coll_seized_value": ("debt", "collateral taken, at the oracle price"),
    "liq_penalty": ("debt", "collateral value taken (oracle price) minus debt repaid"),
    "liq_protocol_fee": ("debt", "the protocol's cut of the liquidation bonus (inside the penalty)"),
    "bad_debt": ("debt", "debt left with no collateral, written off"),
    "min_hf": ("ratio", "lowest health factor while borrowing (NaN: never borrowed)"),
    "min_hf_block": ("block", "block of min_hf (-1: never borrowed)"),
    "min_hf_ts": ("ts", "time of min_hf, UTC epoch seconds (-1: never borrowed)"),
    "blocks_below_105": ("count", "blocks with a health factor below 1.05"),
    "max_drawdown": ("fraction", "largest fall of equity from its peak (market mark, hourly samples)"),
    "avg_leverage": ("ratio", "mean of exposure / equity over the hourly samples"),
    "n_rebalances": ("count", "deleverage and releverage actions"),
    "exit_block": ("block", "block of the de-peg exit (-1: none)"),
    "end_equity": ("debt", "equity at the last block, collateral at the market price"),
    "end_equity_rate": ("debt", "equity at the last block, collateral at the exchange rate"),
    "end_equity_usd": ("usd", "end_equity at the last block's USD price of the debt asset"),
    "hold_end_equity": ("debt", "the benchmark's value at the last block"),
    "end_collateral": ("tokens", "collateral tokens held at the last block"),
    "end_debt": ("debt", "debt at the last block"),
    "end_cash": ("debt", "debt asset in the wallet (and in a withdrawal queue) at the last block"),
    "n_events": ("count", "events recorded"),
    "capital": ("debt", "capital put in at the first block"),
    "debt_asset": ("text", "the debt asset: the unit of every amount not in USD or tokens"),
    "pnl": ("debt", "end_equity - capital"),
    "capital_usd": ("usd", "capital at the first block's USD price of the debt asset"),
    "pnl_usd": ("usd", "end_equity_usd - capital_usd (includes the debt asset's own USD move)"),
    "total_costs_usd": ("usd", "total_costs, each action's costs at its own block's USD price"),
    "liq_penalty_usd": ("usd", "liq_penalty, each liquidation at its own block's USD price"),
    "bad_debt_usd": ("usd", "bad_debt at its block's USD price"),
    # honest figures (issue 12), after the columns above
    "liq_loss_rate": ("debt", "liquidation loss at fair value: collateral seized valued at the exchange rate "
                              "(x the underlying's price) minus the value credited (the debt repaid; Comet: the "
                              "absorb's credit); NaN: a multi-collateral liquidation of every leg, or Monte "
                              "Carlo paths"),
    "liq_loss_market": ("debt", "liquidation loss with the collateral seized valued at the market (DEX) price "
                                "minus the value credited"),
    "window_return": ("fraction", "end_equity / capital - 1 over the window (not annualised)"),
    "window_return_rate": ("fraction", "end_equity_rate / capital - 1 over the window (not annualised)"),
    "hold_return": ("fraction", "hold_end_equity / capital - 1 over the window (not annualised)"),
    "hold_end_equity_rate": ("debt", "the benchmark's value at the last block, its tokens at the exchange rate "
                                     "(NaN: multi-collateral, or Monte Carlo paths)"),
    "hold_apy_rate": ("apy", "the hold benchmark at the exchange-rate mark, annualised (compounded; NaN as "
                             "hold_end_equity_rate)"),
    "excess_apy_rate": ("apy", "net_apy_rate - hold_apy_rate"),
    "time_utc": ("utc", "block time as a UTC timestamp (the same instant as ts)"),
    # episodes.parquet (backtest/episodes.py): one row per (episode, config_id)
    "episode_id": ("id", "episode number in the result set (by market group, kind, start); events: the "
                         "episode of a depeg row (null on the position's events)"),
    "episode_kind": ("text", "market: the DEX price below the exchange-rate value; oracle: the lending "
                             "protocol's oracle price below it"),
    "token": ("text", "the collateral token whose price fell below its exchange-rate value"),
    "oracle": ("text", "kind oracle: the market.oracle mode whose price was below (null for kind market)"),
    "threshold": ("fraction", "discount an episode must exceed ([episodes] threshold)"),
    "start_block": ("block", "first block with the discount above the threshold"),
    "end_block": ("block", "last block with the discount above the threshold (gaps shorter than "
                           "[episodes] merge_gap merged)"),
    "start_ts": ("ts", "start_block's time, UTC epoch seconds"),
    "end_ts": ("ts", "end_block's time, UTC epoch seconds"),
    "start_utc": ("utc", "start_ts as a UTC timestamp"),
    "end_utc": ("utc", "end_ts as a UTC timestamp"),
    "duration_s": ("seconds", "end_ts - start_ts"),
    "worst_discount": ("fraction", "largest discount in the episode: 1 - price / (exchange rate x underlying) "
                                   "(events: on depeg_end rows, null on the others)"),
    "worst_block": ("block", "block of worst_discount"),
    "worst_ts": ("ts", "time of worst_discount, UTC epoch seconds"),
    "worst_utc": ("utc", "worst_ts as a UTC timestamp"),
    "at_window_start": ("bool", "the episode was already on at the window's first block"),
    "at_window_end": ("bool", "the episode was still on at the window's last block"),
    "equity_before": ("debt", "equity (market mark) at the block before the episode; capital if it starts at "
                              "the first block"),
    "equity_after": ("debt", "equity (market mark) at end_block"),
    "episode_pnl": ("debt", "equity_after - equity_before"),
    "episode_return": ("fraction", "episode_pnl / equity_before"),
    "episode_pnl_rate": ("debt", "the same P&L with the collateral at the exchange rate"),
    "episode_min_hf": ("ratio", "lowest health factor seen in the episode: hourly and at its time-series "
                                "samples, its first and last block, after its events, and the run's min_hf if "
                                "that block is inside (NaN: no debt)"),
    "episode_liq_count": ("count", "liquidation calls inside the episode"),
    "episode_liq_debt_repaid": ("debt", "debt repaid by liquidators inside the episode"),
    "episode_liq_penalty": ("debt", "liquidation penalty (oracle price) inside the episode"),
    "episode_liq_loss_rate": ("debt", "liq_loss_rate of the liquidations inside the episode"),
    "episode_liq_loss_market": ("debt", "liq_loss_market of the liquidations inside the episode"),
    "episode_bad_debt": ("debt", "bad debt written off inside the episode"),
    "episode_costs": ("debt", "gas + swap fees + slippage + flash fees of the actions inside the episode"),
    "episode_events": ("count", "events inside the episode"),
    "hold_pnl": ("debt", "the hold benchmark's P&L over the episode (market mark; NaN: multi-collateral)"),
    "hold_episode_return": ("fraction", "hold_pnl / the benchmark's value before the episode"),
    "excess_pnl": ("debt", "episode_pnl - hold_pnl"),
    # events
    "kind": ("text", "open, loop, rebalance, liquidation, bad_debt, exit, queue_release, unwind, slash; "
                     "depeg_start / depeg_end: first / last block of an episode of episodes.parquet (no "
                     "depeg_end while it is still on at the window's last block)"),
    "collateral_change": ("tokens", "collateral change (negative: out of the position; 0 on depeg rows)"),
    "debt_change": ("debt", "debt change (negative: repaid; 0 on depeg rows)"),
    "cost": ("debt", "costs of the action, the liquidation penalty, the bad debt or the slash's loss (0 on "
                     "depeg rows)"),
    "hf_after": ("ratio", "health factor after the event; depeg rows: at the end of that block (inf: no debt)"),
    "discount": ("fraction", "depeg rows: the episode price's discount at that block, 1 - price / (exchange "
                             "rate x underlying) (null on the position's events)"),
    "seized_collateral": ("text", "multi-collateral: the token an Aave-family liquidation seized (null: every leg)"),
    # time series
    "collateral": ("tokens", "collateral tokens held"),
    "debt": ("debt", "debt"),
    "cash": ("debt", "debt asset in the wallet and in a withdrawal queue"),
    "hf": ("ratio", "health factor (inf: no debt)"),
    "ltv": ("fraction", "debt / collateral value at the oracle price"),
    "leverage": ("ratio", "exposure at the market price / equity"),
    "oracle_price": ("price", "the lending protocol's oracle price of the collateral"),
    "market_price": ("price", "DEX price of the collateral"),
    "exchange_rate": ("rate", "redemption rate: underlying per collateral token"),
    "equity": ("debt", "equity, collateral at the market price"),
    "equity_rate": ("debt", "equity, collateral at the exchange rate"),
}


def _unit(kind: str, debt: str, collateral: str) -> str:
    return {"debt": debt, "usd": "USD", "tokens": collateral, "price": f"{debt} per {collateral}",
            "rate": f"underlying per {collateral}", "fraction": "fraction", "apy": "apy (per year, compounded)",
            "ratio": "ratio", "count": "count", "block": "block number", "ts": "s (UTC epoch)", "id": "id",
            "text": "text", "utc": "UTC timestamp (microseconds)", "seconds": "s", "bool": "true/false"}[kind]


def _leg_column(name: str, table: str) -> tuple[str, str] | None:
    """(base column, token) of a per-leg column such as end_collateral_weETH, else None."""
    bases = {"summary": LEG_SUMMARY_COLUMNS, "timeseries": LEG_RECORD_COLUMNS}.get(table, ())
    for base in sorted(bases, key=len, reverse=True):
        if name.startswith(base + "_") and name not in COLUMNS:
            return base, name[len(base) + 1:]
    return None


def column_dictionary(tables: dict[str, list[str]], debts: list[str], collaterals: list[str]) -> dict[str, list]:
    """{table: [{name, unit, meaning}]} for the manifest. debts / collaterals: the symbols of the result set's
    configurations; when a sweep mixes several, the unit names the column or config key that says which.
    Swept parameters (dotted config keys) are config values; a column without an entry is "unknown"."""
    ds, cs = sorted(set(debts)), sorted(set(collaterals))
    debt = ds[0] if len(ds) == 1 else "the row's debt_asset"
    coll = f"{cs[0]} tokens" if len(cs) == 1 else "collateral tokens (market.collateral / strategy.restake)"
    out: dict[str, list] = {}
    for table, names in tables.items():
        rows = []
        for name in names:
            leg = _leg_column(name, table)
            if leg is not None:
                base, tok = leg
                kind, meaning = COLUMNS[base]
                unit = _unit(kind, debt, f"{tok} tokens" if kind == "tokens" else tok)
                meaning = f"{meaning}: the {tok} leg"
            elif name in COLUMNS:
                kind, meaning = COLUMNS[name]
                unit = _unit(kind, debt, coll if kind == "tokens" else (cs[0] if len(cs) == 1 else "token"))
            elif "." in name:
                unit, meaning = "config value", f"swept parameter {name}"
            else:
                unit, meaning = "unknown", "no dictionary entry"
            rows.append({"name": name, "unit": unit, "meaning": meaning})
        out[table] = rows
    return out
