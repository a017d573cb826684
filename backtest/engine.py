"""Check inputs, build the parameter table and the market lanes, allocate outputs, call an engine.

Python validates everything here; the core (``backtest._core``) only does arithmetic. The reference engine
(``backtest.reference``) takes the same inputs and must give the same outputs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from backtest import venues as _venues
from backtest.config_types import Config
from backtest.data.market import Market
from backtest.errors import ConfigError, DataError
from backtest.schema import (
    ENTRIES,
    EVENT_DTYPE,
    EXIT_ROUTES,
    N_RECORD,
    ORACLE_CODES,
    PARAMS_DTYPE,
    PROTOCOLS,
    SLIPPAGE,
    STRATEGIES,
    SUMMARY_DTYPE,
)
from backtest.venues import aave_v3 as _aave_v3
from backtest.venues import venue

# CAPO max yearly ratio growth per asset (PROTOCOLS.md: 9.68 %/yr wstETH, 9.3 % rETH; weETH 8.75 %, bgd-labs/aave-capo
# scripts/DeployEthereumWeEth.s.sol maxYearlyRatioGrowthPercent 8_75)
CAPO_GROWTH = {"wstETH": 0.0968, "rETH": 0.093, "weETH": 0.0875}
# EigenLayer withdrawal delay (the queue exit of a restaked LRT, unless strategy.exit.queue_delay is set):
# 7 days (MIN_WITHDRAWAL_DELAY_BLOCKS 50,400) through 2024, 14 days (100,800 blocks) from 2025-01-01
EIGEN_DELAY = 7 * 86400
EIGEN_DELAY_LATE = 14 * 86400
EIGEN_DELAY_LATE_FROM = 1735689600          # 2025-01-01 00:00 UTC
DEFAULT_QUEUE_DELAY = 5 * 86400             # any other token's withdrawal queue
CHUNK = 256                 # blocks per chunk of the core's skip test
DEFAULT_EVENT_CAP = 256     # events per configuration before the buffer is regrown


@dataclass(frozen=True)
class Lane:
    """One market lane: the oracle mode (and CAPO parameters) of a group of configurations, and the protocol
    whose index math the market-level indices follow (every lane of one replay has the same protocol)."""
    oracle: str
    capo_growth: float
    capo_age: int
    protocol: str = "aave-v3"


@dataclass
class Outputs:
    summaries: np.ndarray           # SUMMARY_DTYPE, one per configuration
    events: list[np.ndarray]        # EVENT_DTYPE per configuration
    records: np.ndarray             # [config, record, field]
    rec_idx: np.ndarray             # block indices of the records
    # multi-collateral markets only (backtest/engine_legs.py): per event the leg seized (-1: every leg),
    # [config, leg, (end collateral, seized, seized value)], [config, record, leg, (tokens, oracle, market, rate)]
    event_legs: list | None = None
    leg_summary: np.ndarray | None = None
    leg_records: np.ndarray | None = None
    tokens: tuple = ()


def collateral_token(cfg: Config) -> str:
    """The token the position holds: the LRT of strategy.restake, else market.collateral."""
    r = cfg.strategy.restake
    return cfg.market.collateral if r in (None, "none") else r


def lane_of(cfg: Config) -> Lane:
    mk = cfg.market
    growth = 0.0
    if mk.oracle == "capo":
        token = collateral_token(cfg)
        growth = mk.capo_growth if mk.capo_growth is not None else CAPO_GROWTH.get(token, math.nan)
        if math.isnan(growth):
            raise ConfigError(
                f"market.capo_growth: no default CAPO growth for {token}; set market.capo_growth"
            )
    return Lane(mk.oracle, float(growth), int(mk.capo_snapshot_age), mk.protocol)


def queue_frozen(cfg: Config) -> tuple[int, int]:
    """(from, until) of the run's [[scenario]] withdrawals_frozen (one per run: config rules), or (0, 0): a replay
    parameter of both engines, not a market array."""
    for sc in cfg.scenarios:
        if sc.kind == "withdrawals_frozen":
            return sc.at, sc.at + sc.duration
    return 0, 0


def queue_delays(cfg: Config) -> tuple[int, int, int]:
    """(seconds a queued withdrawal waits, the same when requested at or after the third value, 0 = never):
    strategy.exit.queue_delay, else EigenLayer's dated delays for a restaked LRT, else DEFAULT_QUEUE_DELAY."""
    ex = cfg.strategy.exit
    if ex is not None and ex.queue_delay is not None:
        return int(ex.queue_delay), 0, 0
    if cfg.strategy.restake not in (None, "none"):
        return EIGEN_DELAY, EIGEN_DELAY_LATE, EIGEN_DELAY_LATE_FROM
    return DEFAULT_QUEUE_DELAY, 0, 0


def encode_params(configs: list[Config], lanes: list[Lane]) -> np.ndarray:
    """One PARAMS_DTYPE row per configuration."""
    out = np.zeros(len(configs), dtype=PARAMS_DTYPE)
    for i, cfg in enumerate(configs):
        st, co, mk = cfg.strategy, cfg.costs, cfg.market
        row = out[i]
        row["protocol"] = PROTOCOLS[mk.protocol]
        row["kind"] = STRATEGIES[st.kind]
        row["entry"] = ENTRIES[st.entry]
        row["lane"] = lanes.index(lane_of(cfg))
        row["loops"] = st.loops
        row["slip_model"] = SLIPPAGE[co.slippage]
        reb = st.rebalance
        row["reb_on"] = 1 if reb is not None else 0
        row["check_every"] = reb.check_every if reb is not None else 3600
        row["delev_below"] = reb.deleverage_below_hf if reb is not None else 0.0
        row["target_hf"] = reb.target_hf if reb is not None else 0.0
        row["relev_above"] = (reb.releverage_above_hf if reb is not None and reb.releverage_above_hf
                              is not None else math.inf)
        ex = st.exit
        row["exit_on"] = 1 if ex is not None else 0
        row["exit_route"] = EXIT_ROUTES[ex.route] if ex is not None else 0
        if ex is not None:
            row["queue_delay"], row["queue_delay_late"], row["queue_late_from"] = queue_delays(cfg)
        row["depeg_below"] = ex.depeg_below if ex is not None else 0.0
        row["liq_delay"] = mk.liquidation_delay
        row["liq_gas"] = mk.liquidation_gas
        if mk.liquidation_gas > 0 and (venue(mk.protocol).liquidation != "aave" or st.collateral):
            raise ConfigError(f"market.liquidation_gas = {mk.liquidation_gas:g}: a profit-sized liquidation is "
                              f"modelled for the Aave family and the generic venue with one collateral (not "
                              f"{mk.protocol}{' with [[strategy.collateral]]' if st.collateral else ''})")
        row["queue_frozen_from"], row["queue_frozen_until"] = queue_frozen(cfg)
        row["v33_from"] = mk.v33_from
        row["unwind_at_end"] = 1 if cfg.run.unwind_at_end else 0
        row["capital"] = st.capital
        row["target_ltv"] = st.target_ltv
        row["gas_gwei"] = math.nan if co.gas == "data" else float(co.gas)
        units = co.gas_units
        row["gas_open"] = units.get("open", 0.0)
        row["gas_loop"] = units.get("loop_step", 0.0)
        row["gas_reb"] = units.get("rebalance", 0.0)
        row["gas_close"] = units.get("close", 0.0)
        row["swap_fee"] = co.swap_fee
        row["slip_param"] = co.slippage_bps
        row["pool_depth"] = co.pool_depth
        row["amp"] = co.amp
        row["flash_fee"] = co.flash_fee
        row["cf_ovr"] = mk.close_factor if mk.close_factor is not None else math.nan
        encode = _venues.venue(mk.protocol).encode      # the venue's own Params fields (Aave v4's Spoke)
        if encode is not None:
            for name, value in encode(mk).items():
                row[name] = value
        if _venues.venue(mk.protocol).requires_close_factor and mk.close_factor is None:
            raise ConfigError(f"market.close_factor: missing; a {mk.protocol} venue takes its close factor from the "
                              f"config")
    return out


def check_against_market(cfg: Config, market: Market) -> None:
    """Checks that need the data: reject before any work (exit code 2)."""
    if len(getattr(market, "legs", ())) > 1:       # [[strategy.collateral]]: per leg (backtest/engine_legs.py)
        from backtest.engine_legs import check_legs_against_market
        return check_legs_against_market(cfg, market)
    mk = cfg.market
    _venues.check_target(cfg, market, collateral_token(cfg))    # the venue's limits in force at the start
    _check_market(market, mk.protocol, mk.v33_from, mk.debt, cfg.market.oracle == "chainlink")
    _check_oracle_fits_debt(cfg, market)        # after: the underlying's price is known at every block


def debt_is_underlying(market: Market) -> bool:
    """Whether the debt asset is the collateral's underlying (WETH against an ETH LST, SOL against mSOL): the
    market then prices the underlying at exactly 1.0 debt unit at every block."""
    up = market.underlying_price
    cached = market.__dict__.get("_debt_is_underlying")
    if cached is not None and cached[0] is up:     # once per market, not per configuration (a full scan)
        return cached[1]
    answer = bool(np.all(up == 1.0))
    market.__dict__["_debt_is_underlying"] = (up, answer)
    return answer


def _check_oracle_fits_debt(cfg: Config, market: Market) -> None:
    """A bare exchange rate is a price in the underlying: with any other debt it would value wstETH at "1.2 USDC".
    (A config rule in spirit, here because whether the debt is the underlying is read from the market.)"""
    mk = cfg.market
    if mk.oracle != "exchange-rate" or debt_is_underlying(market):
        return
    coll = collateral_token(cfg)
    raise ConfigError(
        f'market.oracle = "exchange-rate": the bare exchange rate prices {coll} in its underlying, not in the '
        f"debt asset {mk.debt}; it only fits a debt in the collateral's underlying (WETH for an ETH LST). Use "
        f'"capo" (Aave\'s CAPO: the capped exchange rate times the underlying\'s USD feed, over {mk.debt}/USD), '
        f'"chainlink" (the lake\'s oracle_prices feed) or "market" (the DEX price)'
    )


def _check_market(market: Market, protocol: str, v33_from: int, debt: str, feed: bool) -> None:
    """Market-level checks, done once per market and key (a sweep of 1,000 configs scans 2.6 M blocks once)."""
    done = market.__dict__.setdefault("_checked", set())
    key = (protocol, v33_from, feed)
    if key in done:
        return
    venue = _venues.venue(protocol)
    if venue.v33:                                # the v3.3 rules (USD thresholds) apply to these only
        _aave_v3.check_v33_usd(market, v33_from, debt)
    for name in ("price", "xrate", "lt", "ltv", "hold_price", "hold_xrate"):
        arr = getattr(market, name)
        if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
            raise DataError(f"market series {name} has missing or non-positive values in the window")
    # every value of the exchange rate and every gas cost is converted into the debt asset through these
    for name, what in (("underlying_price", f"the collateral's underlying in {debt}"),
                       ("gas_token_price", f"the chain's gas token in {debt}")):
        arr = getattr(market, name)
        bad = ~np.isfinite(arr) | (arr <= 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"market series {name} ({what}): missing or non-positive at ts {int(market.ts[i])} "
                            f"(block {int(market.block[i])}); the lake needs a price to convert it")
    if feed and not np.all(np.isfinite(market.oracle_feed)):
        raise DataError("oracle_prices: the chainlink oracle mode needs an oracle price at every block")
    if venue.check_market is not None:          # the venue's own series checks
        venue.check_market(market)
    done.add(key)


def record_indices(market: Market, record: int) -> np.ndarray:
    """Blocks sampled into the time series: every block (0), none (-1), or the first block of each
    `record`-second interval from the start plus the last block."""
    n = len(market)
    if record < 0:
        return np.zeros(0, dtype=np.int64)
    if record == 0:
        return np.arange(n, dtype=np.int64)
    bucket = (market.ts - market.ts[0]) // record
    idx = np.flatnonzero(np.diff(bucket, prepend=-1) > 0)
    if idx[-1] != n - 1:
        idx = np.append(idx, n - 1)
    return idx.astype(np.int64)


def metric_every(block_time: int) -> int:
    """Metric samples (drawdown, average leverage) once an hour of blocks."""
    return max(1, 3600 // max(1, int(block_time)))


def capo_history(market: Market) -> tuple[np.ndarray, np.ndarray]:
    """The exchange-rate points before the window (increasing ts; empty when the market has none)."""
    ts = getattr(market, "capo_pre_ts", None)
    x = getattr(market, "capo_pre_xrate", None)
    if ts is None or x is None or len(ts) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    ts = np.ascontiguousarray(ts, dtype=np.int64)
    x = np.ascontiguousarray(x, dtype=np.float64)
    if len(ts) != len(x) or np.any(np.diff(ts) <= 0) or ts[-1] >= market.ts[0]:
        raise ValueError("market.capo_pre_ts: pre-window rate points must be increasing and before the window")
    if not np.all(np.isfinite(x)) or np.any(x <= 0):
        raise DataError("exchange_rates: the rates before the window (CAPO snapshots) must be positive")
    return ts, x


def build_lanes(market: Market, lanes: list[Lane], chunk: int = CHUNK) -> dict[str, np.ndarray]:
    """The market-level indices (shared by every lane), each lane's oracle price and `a`, and the per-chunk
    bounds the core's skip test reads. Arrays are allocated once and filled in place by the core."""
    from backtest import _core

    if len(getattr(market, "legs", ())) > 1:
        from backtest.engine_legs import build_lanes_legs
        return build_lanes_legs(market, lanes, chunk)
    n, nl = len(market), len(lanes)
    nch = (n + chunk - 1) // chunk
    protocols = {ln.protocol for ln in lanes}
    if len(protocols) != 1:
        raise ValueError(f"build_lanes: one replay follows one protocol's index math, got {sorted(protocols)}")
    out = _core.build_indices(market.ts, market.xrate, market.supply_apr, market.borrow_apr,
                              *_venues.growth_codes(protocols.pop()), market.underlying_price)
    out["por"] = np.empty((nl, n))
    out["a"] = np.empty((nl, n))
    out["amin"] = np.empty((nl, nch))
    out["amax"] = np.empty((nl, nch))
    out["aarg"] = np.empty((nl, nch), dtype=np.int64)
    # CAPO snapshots taken before the window read the lake's rates from before it (align fills these)
    pre_ts, pre_x = capo_history(market)
    for i, ln in enumerate(lanes):
        _core.build_lane(market.ts, market.xrate, market.price, market.oracle_feed, market.lt, out["sidx"],
                         out["bidx"], ORACLE_CODES[ln.oracle], ln.capo_growth, ln.capo_age, chunk,
                         out["por"][i], out["a"][i], out["amin"][i], out["amax"][i], out["aarg"][i],
                         pre_ts, pre_x, market.underlying_price, market.oracle_scale, market.oracle_cap)
    out["qmin"] = _core.chunk_qmin(market.price, market.xrate, chunk, market.underlying_price)
    # rewards per scaled token (as K for the staking yield): KR[b] = sum_j sidx[j-1] (reward[j] - reward[j-1])
    kr = np.zeros(n)
    if n > 1:
        kr[1:] = np.cumsum(out["sidx"][:-1] * np.diff(market.reward))
    out["KR"] = kr
    starts = np.arange(0, n, chunk)
    out["schunk"] = np.ascontiguousarray(np.maximum.reduceat(market.slash, starts), dtype=np.float64)
    out["chunk"] = chunk
    return out


def run_core(market: Market, params: np.ndarray, lanes: list[Lane], rec_idx: np.ndarray, me: int,
             chunk: int = CHUNK, dense: bool = False, threads: int = 0,
             event_cap: int = DEFAULT_EVENT_CAP, lane_arrays: dict | None = None,
             weights: np.ndarray | None = None) -> Outputs:
    """weights: [config, leg] for a multi-collateral market (backtest.legs.leg_weights), else None."""
    from backtest import _core

    n = len(params)
    codes = np.array([PROTOCOLS[ln.protocol] for ln in lanes], dtype=np.int64)
    lane = params["lane"]
    if n and np.all((lane >= 0) & (lane < len(lanes))):
        wrong = np.flatnonzero(codes[lane] != params["protocol"])
        if len(wrong):
            i = int(wrong[0])
            raise ValueError(f"configuration {i}: protocol code {int(params[i]['protocol'])} but its lane follows "
                             f"{lanes[int(lane[i])].protocol}")
    if len(getattr(market, "legs", ())) > 1:
        from backtest.engine_legs import run_core_legs
        return run_core_legs(market, params, weights, lanes, rec_idx, me, chunk, dense, threads, event_cap,
                             lane_arrays)
    if lane_arrays is None or lane_arrays["chunk"] != chunk:
        lane_arrays = build_lanes(market, lanes, chunk)
    qmin = lane_arrays["qmin"]
    mk = {name: getattr(market, name) for name in
          ("ts", "price", "xrate", "eth_usd", "ltv", "lt", "bonus", "pfee", "gas_gwei", "reward", "slash",
           "hold_price", "hold_xrate", "underlying_price", "gas_token_price")}
    summaries = np.zeros(n, dtype=SUMMARY_DTYPE)
    events = np.zeros((n, event_cap), dtype=EVENT_DTYPE)
    records = np.zeros((n, len(rec_idx), N_RECORD))
    _core.run_batch(params, mk, lane_arrays, qmin, rec_idx, me, chunk, summaries, events, records,
                    dense, threads)
    ev_list = [events[i, : min(int(summaries[i]["n_events"]), event_cap)].copy() for i in range(n)]
    overflow = np.flatnonzero(summaries["events_dropped"] > 0)
    if len(overflow):
        cap = int(summaries["n_events"][overflow].max()) + 1
        sub = params[overflow].copy()
        again = run_core(market, sub, lanes, rec_idx, me, chunk, dense, threads, cap, lane_arrays)
        for j, i in enumerate(overflow):
            summaries[i] = again.summaries[j]
            ev_list[i] = again.events[j]
            records[i] = again.records[j]
    return Outputs(summaries, ev_list, records, rec_idx)


def run_reference_batch(market: Market, params: np.ndarray, lanes: list[Lane], rec_idx: np.ndarray,
                        me: int, weights: np.ndarray | None = None, configs: list[Config] | None = None) -> Outputs:
    """The reference engine on every configuration: it reads each one's resolved Config (``configs``, the
    configurations ``params`` encodes) or, without them, decodes the rows (tests build rows directly); the
    rows' lane indices pick the oracle mode either way."""
    from backtest.reference import Settings, run_reference

    settings = [Settings.of_config(c) for c in configs] if configs is not None else list(params)
    if len(getattr(market, "legs", ())) > 1:
        from backtest.engine_legs import run_reference_legs
        return run_reference_legs(market, params, weights, lanes, rec_idx, me, settings)
    n = len(params)
    summaries = np.zeros(n, dtype=SUMMARY_DTYPE)
    records = np.zeros((n, len(rec_idx), N_RECORD))
    ev_list = []
    for i in range(n):
        ln = lanes[int(params[i]["lane"])]
        res = run_reference(market, settings[i], ln.oracle, ln.capo_growth, ln.capo_age, rec_idx, me)
        for k, v in res.summary.items():
            summaries[i][k] = v
        ev = np.zeros(len(res.events), dtype=EVENT_DTYPE)
        for j, e in enumerate(res.events):
            ev[j] = e
        ev_list.append(ev)
        records[i] = res.records
    return Outputs(summaries, ev_list, records, rec_idx)


def run_core_paths(market: Market, params: np.ndarray, lanes: list[Lane], rec_idx: np.ndarray, me: int,
                   paths, chunk: int = CHUNK, dense: bool = False, threads: int = 0,
                   event_cap: int = DEFAULT_EVENT_CAP, lane_arrays: dict | None = None,
                   pair_path: np.ndarray | None = None) -> tuple[Outputs, np.ndarray]:
    """Replay every (configuration, path) pair of `params` x `paths` (backtest.paths.Paths) in the core.
    Rows are configuration-major (row i * n_paths + k is configuration i on path k), unless pair_path is given:
    then params already holds one row per pair and pair_path[i] is row i's path. Returns the outputs and the
    path of each row (the results' `path` column)."""
    from backtest import _core
    from backtest.paths import hold_follows_price

    if len(getattr(market, "legs", ())) > 1:
        raise ConfigError("paths: multi-collateral positions do not take paths yet")
    if len(paths.sample_idx) != len(market):
        raise DataError(f"paths: sample_idx has {len(paths.sample_idx)} blocks, the market {len(market)}")
    if pair_path is None:
        pair_path = np.tile(np.arange(paths.n_paths, dtype=np.int64), len(params))
        params = np.repeat(params, paths.n_paths)
    pair_path = np.ascontiguousarray(pair_path, dtype=np.int64)
    params = np.ascontiguousarray(params)
    if paths.by_market:
        return _run_paths_by_market(market, params, lanes, rec_idx, me, paths, chunk, dense, threads, event_cap,
                                    pair_path)
    n = len(params)
    if lane_arrays is None or lane_arrays["chunk"] != chunk:
        lane_arrays = build_lanes(market, lanes, chunk)
    pre_ts, pre_x = capo_history(market)
    modes = {"oracle": np.array([ORACLE_CODES[ln.oracle] for ln in lanes], dtype=np.int32),
             "capo_growth": np.array([ln.capo_growth for ln in lanes], dtype=np.float64),
             "capo_age": np.array([ln.capo_age for ln in lanes], dtype=np.int64),
             "oracle_feed": np.ascontiguousarray(market.oracle_feed, dtype=np.float64),
             "pre_ts": pre_ts, "pre_xrate": pre_x}
    mk = {name: getattr(market, name) for name in
          ("ts", "price", "xrate", "eth_usd", "ltv", "lt", "bonus", "pfee", "gas_gwei", "reward", "slash",
           "hold_price", "hold_xrate", "underlying_price", "gas_token_price")}
    summaries = np.zeros(n, dtype=SUMMARY_DTYPE)
    events = np.zeros((n, event_cap), dtype=EVENT_DTYPE)
    records = np.zeros((n, len(rec_idx), N_RECORD))
    if n:
        _core.run_batch_paths(params, pair_path, mk, lane_arrays, paths.sample_idx, paths.price_factor, modes,
                              rec_idx, me, chunk, summaries, events, records, hold_follows_price(market),
                              dense, threads)
    ev_list = [events[i, : min(int(summaries[i]["n_events"]), event_cap)].copy() for i in range(n)]
    overflow = np.flatnonzero(summaries["events_dropped"] > 0)
    if len(overflow):
        cap = int(summaries["n_events"][overflow].max()) + 1
        again, _ = run_core_paths(market, params[overflow].copy(), lanes, rec_idx, me, paths, chunk, dense,
                                  threads, cap, lane_arrays, pair_path[overflow])
        for j, i in enumerate(overflow):
            summaries[i] = again.summaries[j]
            ev_list[i] = again.events[j]
            records[i] = again.records[j]
    return Outputs(summaries, ev_list, records, rec_idx), pair_path


def _run_paths_by_market(market, params, lanes, rec_idx, me, paths, chunk, dense, threads, event_cap, pair_path):
    """Paths that vary more than the price (the borrow rate, exchange rate, ETH/USD, gas): each path's market
    built explicitly (backtest.paths.scale_market), its lanes and borrow index rebuilt, and its configurations
    replayed in one run_core pass; one path in memory."""
    from backtest.paths import hold_follows_price, scale_market

    n = len(params)
    summaries = np.zeros(n, dtype=SUMMARY_DTYPE)
    records = np.zeros((n, len(rec_idx), N_RECORD))
    ev_list: list = [None] * n
    scale_hold = hold_follows_price(market)
    for k in np.unique(pair_path):
        rows = np.flatnonzero(pair_path == k)
        out = run_core(scale_market(market, paths, int(k), scale_hold), params[rows].copy(), lanes, rec_idx, me,
                       chunk, dense, threads, event_cap)
        summaries[rows] = out.summaries
        records[rows] = out.records
        for j, i in enumerate(rows):
            ev_list[i] = out.events[j]
    return Outputs(summaries, ev_list, records, rec_idx), pair_path
