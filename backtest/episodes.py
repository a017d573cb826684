"""De-peg episodes read from the replayed market, and what each configuration (and its hold benchmark) did in
each: the rows of ``episodes.parquet`` (README, "Episodes"; the column dictionary in backtest/results.py).

An episode is a stretch of blocks where a price of the collateral is below its exchange-rate value (exchange
rate x the underlying's price in the debt asset) by more than ``[episodes] threshold``; stretches closer than
``merge_gap`` seconds are one. Kind ``market``: the DEX price (every configuration of the market); kind
``oracle``: the lending protocol's oracle price of one oracle lane (capo, chainlink; the configurations that
use it). A ``market`` oracle is the DEX price, so its episodes are the market episodes and none is repeated.

Detection reads the aligned market at every block (not the sampled time series). A configuration's equity is
read from records the core takes at the block before each episode and at its last block (added to the
time-series samples and split off again, so the time series is what it was); its events are read by block.

The same episodes also give rows of ``events.parquet`` (depeg_event_frame): per configuration paired with an
episode here, a ``depeg_start`` at its first block and a ``depeg_end`` at its last, none while it is still on
at the window's last block (a depeg_end there would claim a recovery the window never saw).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from backtest.schema import EVENT_KINDS, RECORD_FIELDS

HF, EQUITY, EQUITY_RATE = (RECORD_FIELDS.index(k) for k in ("hf", "equity", "equity_rate"))
LIQ, BAD = EVENT_KINDS["liquidation"], EVENT_KINDS["bad_debt"]
COSTS = tuple(EVENT_KINDS[k] for k in ("open", "loop", "rebalance", "exit", "unwind"))
COMET = "compound-v3"

EPISODE_SCHEMA = {
    "episode_id": pl.Int64, "episode_kind": pl.Utf8, "token": pl.Utf8, "oracle": pl.Utf8, "threshold": pl.Float64,
    "start_block": pl.Int64, "end_block": pl.Int64, "start_ts": pl.Int64, "end_ts": pl.Int64,
    "start_utc": pl.Datetime("us", "UTC"), "end_utc": pl.Datetime("us", "UTC"), "duration_s": pl.Int64,
    "worst_discount": pl.Float64, "worst_block": pl.Int64, "worst_ts": pl.Int64,
    "worst_utc": pl.Datetime("us", "UTC"), "at_window_start": pl.Boolean, "at_window_end": pl.Boolean,
    "config_id": pl.Int64, "debt_asset": pl.Utf8,
    "equity_before": pl.Float64, "equity_after": pl.Float64, "episode_pnl": pl.Float64,
    "episode_return": pl.Float64, "episode_pnl_rate": pl.Float64, "episode_min_hf": pl.Float64,
    "episode_liq_count": pl.Int64, "episode_liq_debt_repaid": pl.Float64, "episode_liq_penalty": pl.Float64,
    "episode_liq_loss_rate": pl.Float64, "episode_liq_loss_market": pl.Float64, "episode_bad_debt": pl.Float64,
    "episode_costs": pl.Float64, "episode_events": pl.Int64,
    "hold_pnl": pl.Float64, "hold_episode_return": pl.Float64, "excess_pnl": pl.Float64,
}


@dataclass
class Episode:
    kind: str               # "market" | "oracle"
    token: str              # the collateral token (a leg's token on a multi-collateral market)
    leg: int                # its leg index (0 for a one-collateral market)
    oracle: str | None      # kind oracle: the lane's oracle mode
    lane: int | None        # kind oracle: the lane index (its configurations only)
    start: int              # block indices into the market clock, inclusive
    end: int
    worst: int
    worst_discount: float
    episode_id: int = -1    # numbered over the result set (number_episodes)

    def key(self) -> tuple:
        return (self.kind, self.token, self.oracle, self.start, self.end, self.worst)


# --- detection -------------------------------------------------------------------------------------------
def find_runs(ts: np.ndarray, discount: np.ndarray, threshold: float, merge_gap: int) -> list[tuple[int, int, int]]:
    """(start, end, worst) block indices of the stretches where discount > threshold, merging stretches whose
    gap (first block of the next minus last block of the previous, in seconds) is below merge_gap."""
    above = np.flatnonzero(discount > threshold)
    if len(above) == 0:
        return []
    cut = np.flatnonzero(np.diff(above) > 1)
    starts = np.concatenate(([above[0]], above[cut + 1]))
    ends = np.concatenate((above[cut], [above[-1]]))
    runs: list[list[int]] = []
    for s, e in zip(starts.tolist(), ends.tolist()):
        if runs and ts[s] - ts[runs[-1][1]] < merge_gap:
            runs[-1][1] = e
        else:
            runs.append([s, e])
    out = []
    for s, e in runs:
        w = s + int(np.argmax(discount[s: e + 1]))        # the first block of the deepest discount
        out.append((s, e, w))
    return out


def fair_value(leg_market) -> np.ndarray:
    """The exchange-rate value of one collateral token in the debt asset, per block."""
    return leg_market.xrate * leg_market.underlying_price


def discount(price: np.ndarray, fair: np.ndarray) -> np.ndarray:
    return 1.0 - price / fair


def leg_markets(market) -> tuple:
    legs = getattr(market, "legs", ())
    return tuple(legs) if len(legs) > 1 else (market,)


def find_episodes(market, tokens: tuple[str, ...], lanes, oracle_prices: np.ndarray | None, threshold: float,
                  merge_gap: int) -> list[Episode]:
    """Every episode of the market: per leg, its market episodes, then those of each capo / chainlink lane.
    oracle_prices: [lane, leg, block] (the lanes' oracle prices), None to find market episodes only."""
    out: list[Episode] = []
    for k, (lm, tok) in enumerate(zip(leg_markets(market), tokens)):
        fair = fair_value(lm)
        for s, e, w in find_runs(market.ts, d := discount(lm.price, fair), threshold, merge_gap):
            out.append(Episode("market", tok, k, None, None, s, e, w, float(d[w])))
        if oracle_prices is None:
            continue
        for j, ln in enumerate(lanes):
            if ln.oracle in ("market", "exchange-rate"):    # the DEX price's episodes / the rate itself
                continue
            d = discount(oracle_prices[j, k], fair)
            for s, e, w in find_runs(market.ts, d, threshold, merge_gap):
                out.append(Episode("oracle", tok, k, ln.oracle, j, s, e, w, float(d[w])))
    return out


def number_episodes(groups: list[list[Episode]]) -> None:
    """Episode ids over the result set: one id per distinct episode (groups that share a market share them)."""
    ids: dict[tuple, int] = {}
    for eps in groups:
        for ep in eps:
            ep.episode_id = ids.setdefault(ep.key(), len(ids))


def extra_record_indices(episodes: list[Episode], samples: np.ndarray | None = None) -> np.ndarray:
    """The blocks the core must record for the episodes: the one before each (when there is one), its first
    (the depeg_start event's health factor) and its last, and the blocks of `samples` (e.g. hourly, for the
    lowest HF) inside it."""
    idx = {ep.end for ep in episodes} | {ep.start for ep in episodes} | {ep.start - 1 for ep in episodes
                                                                         if ep.start > 0}
    out = np.array(sorted(idx), dtype=np.int64)
    if samples is not None and len(episodes):
        inside = np.zeros(len(samples), dtype=bool)
        for ep in episodes:
            inside |= (samples >= ep.start) & (samples <= ep.end)
        out = np.union1d(out, samples[inside])
    return out.astype(np.int64)


# --- fair-value liquidation loss -------------------------------------------------------------------------
def liquidation_losses(ev: np.ndarray, legs: np.ndarray | None, market, protocol: str,
                       oracle_price: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per event (0 for every event but a liquidation): the borrower's loss with the seized collateral valued
    at the exchange rate, and at the DEX price, minus the value the liquidation credited. The credit is the
    debt repaid, except on Compound III, whose absorb credits the whole collateral's oracle value less the
    penalty (the excess over the debt comes back as cash). legs: per event the leg seized (-1: every leg,
    whose split is not in the event: NaN); oracle_price: [leg, block] of the configuration's lane (Comet)."""
    n = len(ev)
    rate, mkt = np.zeros(n), np.zeros(n)
    liq = np.flatnonzero(ev["kind"] == LIQ)
    if len(liq) == 0:
        return rate, mkt
    lms = leg_markets(market)
    for i in liq.tolist():
        b = int(ev["idx"][i])
        k = 0 if legs is None else int(legs[i])
        if k < 0 and len(lms) > 1:
            rate[i] = mkt[i] = np.nan
            continue
        lm = lms[max(k, 0)]
        seized = -float(ev["coll"][i])
        if protocol == COMET:
            credit = seized * float(oracle_price[max(k, 0), b]) - float(ev["cost"][i])
        else:
            credit = -float(ev["debt"][i])
        rate[i] = seized * float(lm.xrate[b]) * float(lm.underlying_price[b]) - credit
        mkt[i] = seized * float(lm.price[b]) - credit
    return rate, mkt


def hold_tokens(hold_end_equity: float, market) -> float:
    """The hold benchmark's tokens (one-collateral markets; NaN for several legs, whose split is not kept)."""
    if len(getattr(market, "legs", ())) > 1:
        return float("nan")
    return hold_end_equity / float(market.hold_price[-1])


# --- rows ----------------------------------------------------------------------------------------------
def episode_frame(episodes: list[Episode], market, threshold: float, config_ids: list[int], lanes_of: list[int],
                  capital: list[float], debt: list[str], summaries: np.ndarray, events: list[np.ndarray],
                  losses: list[tuple[np.ndarray, np.ndarray]], records: np.ndarray, run_idx: np.ndarray
                  ) -> pl.DataFrame:
    """The rows of one batch: every (episode, configuration) pair; oracle episodes only for the configurations
    of their lane. records: [config, record, field] at the blocks run_idx (time-series samples plus
    extra_record_indices). Vectorised over the configurations (a sweep has thousands)."""
    n_cfg, n = len(config_ids), len(market)
    ts, blk = market.ts, market.block
    cids = np.asarray(config_ids, dtype=np.int64)
    lanes = np.asarray(lanes_of, dtype=np.int64)
    cap = np.asarray(capital, dtype=np.float64)
    # every event of the batch in one table: its configuration, and its fair-value losses
    counts = [len(ev) for ev in events]
    owner = np.repeat(np.arange(n_cfg), counts)
    ev = np.concatenate(events)
    l_rate = np.concatenate([lo[0] for lo in losses])
    l_mkt = np.concatenate([lo[1] for lo in losses])
    tokens = np.array([hold_tokens(float(h), market) for h in summaries["hold_end_equity"]])
    min_idx = summaries["min_hf_idx"]
    frames = []
    for ep in episodes:
        sel = np.arange(n_cfg) if ep.lane is None else np.flatnonzero(lanes == ep.lane)
        if len(sel) == 0:
            continue
        m = len(sel)
        pos_end = int(np.searchsorted(run_idx, ep.end))
        lo = int(np.searchsorted(run_idx, ep.start))
        if ep.start == 0:
            before = before_rate = cap[sel]
            h_before = cap[sel]
        else:
            pb = int(np.searchsorted(run_idx, ep.start - 1))
            before, before_rate = records[sel, pb, EQUITY], records[sel, pb, EQUITY_RATE]
            h_before = tokens[sel] * float(market.hold_price[ep.start - 1])
        after, after_rate = records[sel, pos_end, EQUITY], records[sel, pos_end, EQUITY_RATE]
        h_after = tokens[sel] * float(market.hold_price[ep.end])
        # the lowest health factor: samples inside, events inside, the run's min when its block is inside
        hf = records[:, lo: pos_end + 1, HF][sel]         # only this field is copied
        low = np.where(np.isfinite(hf), hf, np.inf).min(axis=1) if hf.shape[1] else np.full(m, np.inf)
        run_min = summaries["min_hf"][sel]
        low = np.where((min_idx[sel] >= ep.start) & (min_idx[sel] <= ep.end) & np.isfinite(run_min),
                       np.minimum(low, run_min), low)
        inside = (ev["idx"] >= ep.start) & (ev["idx"] <= ep.end) if len(ev) else np.zeros(0, dtype=bool)
        slot = np.full(n_cfg, -1, dtype=np.int64)
        slot[sel] = np.arange(m)
        k = slot[owner[inside]] if len(ev) else np.zeros(0, dtype=np.int64)
        keep = k >= 0
        k, e_in = k[keep], ev[inside][keep]
        lr, lmk = l_rate[inside][keep], l_mkt[inside][keep]
        ev_hf = np.where(np.isfinite(e_in["hf"]), e_in["hf"], np.inf)
        np.minimum.at(low, k, ev_hf)
        is_liq, is_bad = e_in["kind"] == LIQ, e_in["kind"] == BAD
        is_cost = np.isin(e_in["kind"], COSTS)

        def total(w, mask):
            return np.bincount(k[mask], weights=w[mask], minlength=m) if len(k) else np.zeros(m)

        pnl, hold_pnl = after - before, h_after - h_before
        with np.errstate(divide="ignore", invalid="ignore"):
            ret = np.where(before > 0, pnl / before, np.nan)
            h_ret = np.where(h_before > 0, hold_pnl / h_before, np.nan)
        const = {
            "episode_id": ep.episode_id, "episode_kind": ep.kind, "token": ep.token, "oracle": ep.oracle,
            "threshold": threshold, "start_block": int(blk[ep.start]), "end_block": int(blk[ep.end]),
            "start_ts": int(ts[ep.start]), "end_ts": int(ts[ep.end]), "start_utc": int(ts[ep.start]),
            "end_utc": int(ts[ep.end]), "duration_s": int(ts[ep.end] - ts[ep.start]),
            "worst_discount": ep.worst_discount, "worst_block": int(blk[ep.worst]), "worst_ts": int(ts[ep.worst]),
            "worst_utc": int(ts[ep.worst]), "at_window_start": ep.start == 0, "at_window_end": ep.end == n - 1,
        }
        cols = {name: [v] * m for name, v in const.items()}
        cols.update({
            "config_id": cids[sel], "debt_asset": [debt[j] for j in sel.tolist()],
            "equity_before": before, "equity_after": after, "episode_pnl": pnl, "episode_return": ret,
            "episode_pnl_rate": after_rate - before_rate,
            "episode_min_hf": np.where(np.isfinite(low), low, np.nan),
            "episode_liq_count": np.bincount(k[is_liq], minlength=m) if len(k) else np.zeros(m, dtype=np.int64),
            "episode_liq_debt_repaid": -total(e_in["debt"], is_liq) + 0.0,       # + 0.0: never -0.0
            "episode_liq_penalty": total(e_in["cost"], is_liq),
            "episode_liq_loss_rate": total(lr, is_liq), "episode_liq_loss_market": total(lmk, is_liq),
            "episode_bad_debt": total(e_in["cost"], is_bad), "episode_costs": total(e_in["cost"], is_cost),
            "episode_events": np.bincount(k, minlength=m) if len(k) else np.zeros(m, dtype=np.int64),
            "hold_pnl": hold_pnl, "hold_episode_return": h_ret, "excess_pnl": pnl - hold_pnl,
        })
        frames.append(pl.DataFrame({name: pl.Series(cols[name], dtype=pl.Int64 if name in UTC else dtype)
                                    for name, dtype in EPISODE_SCHEMA.items()}))
    if not frames:
        return empty_frame()
    return pl.concat(frames).with_columns([utc_column(pl.col(c)).alias(c) for c in UTC])


UTC = ("start_utc", "end_utc", "worst_utc")


def utc_column(expr: pl.Expr) -> pl.Expr:
    """Epoch seconds -> a UTC timestamp (microseconds)."""
    return (expr * 1_000_000).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def empty_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=EPISODE_SCHEMA)


# --- depeg_start / depeg_end rows of events.parquet ----------------------------------------------------------
#: the columns events.parquet has for the depeg rows (null on the position's events), after its own
DEPEG_EVENT_SCHEMA = {"episode_id": pl.Int64, "discount": pl.Float64, "worst_discount": pl.Float64}
#: events.parquet's columns, the position's and the depeg rows' (an empty table still has them all)
EVENTS_SCHEMA = {"config_id": pl.Int64, "block": pl.Int64, "ts": pl.Int64, "kind": pl.Utf8,
                 "collateral_change": pl.Float64, "debt_change": pl.Float64, "cost": pl.Float64,
                 "hf_after": pl.Float64, "time_utc": pl.Datetime("us", "UTC"), **DEPEG_EVENT_SCHEMA}
START, END = EVENT_KINDS["depeg_start"], EVENT_KINDS["depeg_end"]


def episode_discount(ep: Episode, market, oracle_prices: np.ndarray | None, b: int) -> float:
    """The discount of the episode's price (the DEX price, or its lane's oracle price) at block b, computed as
    find_episodes computes it."""
    lm = leg_markets(market)[ep.leg]
    price = lm.price if ep.lane is None else oracle_prices[ep.lane, ep.leg]
    fair = lm.xrate[b: b + 1] * lm.underlying_price[b: b + 1]          # fair_value at block b only
    return float(discount(price[b: b + 1], fair)[0])


def depeg_event_frame(episodes: list[Episode], market, config_ids: list[int], lanes_of: list[int],
                      records: np.ndarray, run_idx: np.ndarray, oracle_prices: np.ndarray | None = None
                      ) -> pl.DataFrame:
    """The depeg_start / depeg_end rows of one batch, for the (episode, configuration) pairs episode_frame
    lists: depeg_start at the episode's first block, depeg_end at its last (none when that is the window's
    last block: still on). Amounts: no collateral or debt change and no cost; hf_after the configuration's
    health factor recorded at that block (after its events there); discount the episode price's discount
    there; worst_discount the episode's deepest (depeg_end rows only). Sorted by config_id, block,
    episode_id, depeg_start before depeg_end. records: [config, record, field] at the blocks run_idx."""
    n = len(market)
    lanes = np.asarray(lanes_of, dtype=np.int64)
    cids = np.asarray(config_ids, dtype=np.int64)
    cols: dict[str, list] = {k: [] for k in ("config_id", "idx", "kind", "hf_after", "episode_id", "discount",
                                             "worst_discount")}
    for ep in episodes:
        sel = np.arange(len(cids)) if ep.lane is None else np.flatnonzero(lanes == ep.lane)
        if len(sel) == 0:
            continue
        ends = [(START, ep.start, None)] + ([(END, ep.end, ep.worst_discount)] if ep.end < n - 1 else [])
        for kind, b, worst in ends:
            pos = int(np.searchsorted(run_idx, b))
            if pos >= len(run_idx) or run_idx[pos] != b:
                raise ValueError(f"depeg_event_frame: block index {b} is not recorded (extra_record_indices)")
            m = len(sel)
            cols["config_id"].append(cids[sel])
            cols["idx"].append(np.full(m, b, dtype=np.int64))
            cols["kind"].append(np.full(m, kind, dtype=np.int64))
            cols["hf_after"].append(records[sel, pos, HF])
            cols["episode_id"].append(np.full(m, ep.episode_id, dtype=np.int64))
            cols["discount"].append(np.full(m, episode_discount(ep, market, oracle_prices, b)))
            cols["worst_discount"].append(np.full(m, np.nan if worst is None else worst))
    if not cols["idx"]:
        return pl.DataFrame(schema=EVENTS_SCHEMA)
    a = {k: np.concatenate(v) for k, v in cols.items()}
    order = np.lexsort((a["kind"], a["episode_id"], a["idx"], a["config_id"]))     # last key first
    a = {k: v[order] for k, v in a.items()}
    idx, zero = a["idx"], np.zeros(len(a["idx"]))
    return pl.DataFrame({
        "config_id": a["config_id"], "block": market.block[idx].astype(np.int64),
        "ts": market.ts[idx].astype(np.int64),
        "kind": pl.Series([("depeg_start", "depeg_end")[k == END] for k in a["kind"].tolist()], dtype=pl.Utf8),
        "collateral_change": zero, "debt_change": zero.copy(), "cost": zero.copy(), "hf_after": a["hf_after"],
        "time_utc": pl.Series(market.ts[idx].astype(np.int64)),
        "episode_id": a["episode_id"], "discount": a["discount"],
        "worst_discount": pl.Series(a["worst_discount"]).fill_nan(None),
    }).with_columns(utc_column(pl.col("time_utc")).alias("time_utc"))
