"""Monte Carlo: N market paths by block bootstrap of the window's own history, every configuration on every path.

A path is a coherent variant of the window's de-peg: the ratio q = market price / (exchange rate x underlying
price), read once per sample (hourly by default, the lake's peg resolution), has its log-returns resampled in
blocks of ``block_days`` days (a circular block bootstrap, so a de-peg's run of down-hours stays together) and
cumulated from the window's first ratio. The walk is held at or below the window's highest ratio (a reflecting
ceiling: a path never trades at a premium history did not show). The path enters the core as the factor
q_path / q_history on the collateral's price (backtest.paths.Paths, ext/_paths.pxi).

``resample`` ([montecarlo] or --resample; default ["discount"], the de-peg ratio alone) adds series drawn from
the same blocks of history, so their cross-correlation with the de-peg is kept: "exchange_rate" (the rate's
hourly log growth, slash cuts included, cumulated from the window's first rate), "eth_usd" (the gas token's
USD price, log returns), "gas" (levels) and "borrow_rate" (levels, as an additive delta). With any of them a
path's market is built explicitly and replayed in one core pass per path (backtest.paths.scale_market, the
same market the reference engine replays); the discount alone stays on the core's one-pass paths axis.

Determinism: path k's draws come from numpy's Generator seeded with (seed, k) only, so a path is the same
whichever batch, worker or executor builds it, and ``path=K`` replays it alone. Paths are generated in batches
at the sample resolution and replayed batch by batch, so memory does not grow with N; each finished batch is
a Parquet part of the work folder (resume skips it).

Statistics per configuration (``summarize``): quantiles use numpy's default linear interpolation (type 7);
losses are capital - ending equity in the debt asset; ``var95`` is the loss at the 5 % quantile of ending
equity, ``cvar95`` (the expected shortfall at 95 %) the mean loss over the worst ceil(5 % x N) paths,
``expected_shortfall`` the mean shortfall below the starting capital over all paths (max(0, loss)).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl

from backtest import numerics
from backtest.config_types import MC_MAX_PATHS, MC_SERIES, MonteCarloConfig
from backtest.errors import BacktestError, ConfigError, DataError
from backtest.paths import Paths

SAMPLE_SECONDS = 3600          # the lake's peg series are hourly
PAIR_BUDGET = 4096             # (configuration, path) pairs per replayed batch: bounds the output buffers
EVENT_CAP = 16                 # events per pair before the core regrows its buffer (MC keeps none)
TAIL = 0.05                    # VaR / CVaR at 95 %
BY_MARKET_PATHS = 64           # paths per batch when each path's market is built explicitly
MAX_PATHS = MC_MAX_PATHS


@dataclass(frozen=True)
class MonteCarlo:
    paths: int
    seed: int = 0
    block_days: float = 7.0
    path: int | None = None            # replay this one path alone
    interval: int = SAMPLE_SECONDS
    borrow_rate: bool = False          # also resample the borrow rate (the same as "borrow_rate" in resample)
    resample: tuple[str, ...] = ("discount",)   # the series a path resamples (MC_SERIES), in the same blocks

    def __post_init__(self) -> None:
        if isinstance(self.paths, bool) or not isinstance(self.paths, int) or not 1 <= self.paths <= MAX_PATHS:
            raise ConfigError(f"--paths {self.paths!r}: must be a whole number from 1 to {MAX_PATHS}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"--seed {self.seed!r}: must be a whole number >= 0")
        if not (isinstance(self.block_days, (int, float)) and math.isfinite(self.block_days)
                and self.block_days > 0):
            raise ConfigError(f"--block-days {self.block_days!r}: must be a number of days > 0")
        if self.path is not None and not 0 <= self.path < self.paths:
            raise ConfigError(f"--path {self.path!r}: must be a path id from 0 to {self.paths - 1}")
        rs = (self.resample,) if isinstance(self.resample, str) else tuple(self.resample)
        bad = [x for x in rs if x not in MC_SERIES]
        if bad or not rs or len(set(rs)) != len(rs):
            raise ConfigError(f"--resample {','.join(map(str, rs))!r}: must list, once each, some of "
                              f"{', '.join(MC_SERIES)}")
        if self.borrow_rate and "borrow_rate" not in rs:
            rs = rs + ("borrow_rate",)
        object.__setattr__(self, "resample", tuple(x for x in MC_SERIES if x in rs))   # one canonical order
        object.__setattr__(self, "borrow_rate", "borrow_rate" in rs)

    def path_ids(self) -> list[int]:
        return [self.path] if self.path is not None else list(range(self.paths))

    @property
    def by_market(self) -> bool:
        """A series beyond the de-peg ratio: each path's market is built explicitly (one core pass per path)."""
        return any(x != "discount" for x in self.resample)

    def manifest(self) -> dict:
        names = {"discount": "de-peg ratio (market price / exchange rate)", "exchange_rate": "exchange-rate steps",
                 "eth_usd": "ETH/USD", "gas": "gas price", "borrow_rate": "borrow rate"}
        return {"paths": self.paths, "seed": self.seed, "block_days": self.block_days, "path": self.path,
                "sample_seconds": self.interval, "series": ", ".join(names[x] for x in self.resample),
                "resample": list(self.resample),
                "method": "circular block bootstrap of hourly log-returns, ceiling at the window's highest ratio",
                "tail": TAIL, "quantiles": "numpy linear (type 7)"}


FLAG_NAMES = {"paths": "--paths", "seed": "--seed", "block_days": "--block-days", "path": "--path",
              "vary_borrow_rate": "--vary-borrow-rate", "resample": "--resample"}


def resolve(table: MonteCarloConfig | None, flags: dict | None = None) -> MonteCarlo | None:
    """The run's Monte Carlo options: the [montecarlo] table's, each flag given (not None) replacing its key
    (a --resample list replaces the table's, --vary-borrow-rate adds "borrow_rate"); None when neither asks
    for paths. A flag without paths from either is refused."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None and v is not False}
    unknown = sorted(set(flags) - set(FLAG_NAMES))
    if unknown:
        raise ConfigError(f"montecarlo: unknown option {unknown[0]!r}; use one of {', '.join(FLAG_NAMES)}")
    opts = dataclasses.asdict(table) if table is not None else {}
    if "resample" in flags and opts.get("vary_borrow_rate") and "vary_borrow_rate" not in flags:
        opts["vary_borrow_rate"] = False           # the table's borrow rate is folded into its replaced list
    opts.update(flags)
    if "paths" not in opts:
        if flags:
            given = ", ".join(FLAG_NAMES[k] for k in flags)
            raise ConfigError(f"{given}: go with --paths N (or a [montecarlo] table with paths = N)")
        return None
    return MonteCarlo(opts["paths"], opts.get("seed", 0), opts.get("block_days", 7.0), opts.get("path"),
                      borrow_rate=bool(opts.get("vary_borrow_rate", False)),
                      resample=tuple(opts.get("resample", ("discount",))))


# --- the bootstrap -----------------------------------------------------------------------------------------
def history_samples(market, interval: int = SAMPLE_SECONDS, with_first: bool = False):
    """(sample_idx per block, the de-peg ratio at each sample's first block; an empty sample reads the last
    block before it) [, that block per sample]."""
    ts = np.asarray(market.ts, dtype=np.int64)
    sidx = (ts - ts[0]) // int(interval)
    ns = int(sidx[-1]) + 1
    s = np.arange(ns)
    idx = np.searchsorted(sidx, s, side="left")          # the first block at or after each sample
    first = np.where(sidx[idx] == s, idx, idx - 1)         # an empty sample reads the last block before it
    q = np.asarray(market.price) / (np.asarray(market.xrate) * np.asarray(market.underlying_price))
    qs = q[first]
    if not np.all(np.isfinite(qs) & (qs > 0)):
        s = int(np.flatnonzero(~(np.isfinite(qs) & (qs > 0)))[0])
        raise DataError(f"montecarlo: the de-peg ratio at sample {s} (ts {int(ts[first[s]])}) is not positive")
    return (sidx, qs, first) if with_first else (sidx, qs)


def bootstrap_returns(r: np.ndarray, n_out: int, block: int, rng: np.random.Generator) -> tuple[np.ndarray,
                                                                                               np.ndarray]:
    """n_out returns made of blocks of `block` consecutive entries of r (circularly), each block starting at a
    uniform draw; returns (returns, block starts)."""
    m = len(r)
    if n_out == 0 or m == 0:
        return np.zeros(n_out), np.zeros(0, dtype=np.int64)
    block = max(1, min(int(block), m))
    nb = -(-n_out // block)
    starts = rng.integers(0, m, nb)
    return r[block_index(starts, block, n_out, m)], starts


def block_index(starts: np.ndarray, block: int, n_out: int, m: int) -> np.ndarray:
    """The positions in r (length m) of the n_out bootstrapped entries drawn as blocks from `starts`."""
    block = max(1, min(int(block), m))
    return (starts[:, None] + np.arange(block)[None, :]).reshape(-1)[:n_out] % m


def capped_walk(x0: float, steps: np.ndarray, cap: float) -> np.ndarray:
    """x_0 = min(x0, cap), x_s = min(x_{s-1} + steps_s, cap): the walk reflected at the ceiling (Skorokhod:
    the free walk X minus the running maximum of its excess over the cap), so an uncapped stretch is the free
    walk exactly and x_0 is x0 itself when it is at or below the cap."""
    free = x0 + np.concatenate([[0.0], np.cumsum(np.asarray(steps, dtype=np.float64))])
    return free - np.maximum.accumulate(np.maximum(free - cap, 0.0))


def path_draw(qs: np.ndarray, seed: int, k: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Path k's factor on the collateral's price per sample (bootstrapped ratio / historical ratio), and the
    history sample each path sample was drawn from (sample s carries the return into history sample h[s])."""
    lq = numerics.log(qs)
    rng = np.random.default_rng([int(seed), int(k)])
    steps, starts = bootstrap_returns(np.diff(lq), len(lq) - 1, block, rng)
    h = np.concatenate([[0], block_index(starts, block, len(lq) - 1, len(lq) - 1) + 1]) if len(lq) > 1 \
        else np.zeros(1, dtype=np.int64)
    return numerics.exp(capped_walk(float(lq[0]), steps, float(lq.max())) - lq), h.astype(np.int64)


def path_factor(qs: np.ndarray, seed: int, k: int, block: int) -> np.ndarray:
    return path_draw(qs, seed, k, block)[0]


@dataclass
class History:
    """What the bootstrap reads of a market, per sample: the block -> sample index, the de-peg ratio and the
    borrow rate; the exchange rate, the gas token's USD price (ETH/USD; NaN where unknown), the gas price and
    the slash cut of each sample's step (small: one value per hour, whatever the blocks)."""
    sidx: np.ndarray
    qs: np.ndarray
    rate: np.ndarray
    xrate: np.ndarray | None = None
    eth_usd: np.ndarray | None = None
    gas: np.ndarray | None = None
    slash: np.ndarray | None = None      # slash[j]: the cut between samples j - 1 and j (slash[0] = 0)


def history_of(market, interval: int = SAMPLE_SECONDS, resample=("discount", "borrow_rate")) -> History:
    """The market's History; the exchange rate, ETH/USD, gas and slash cuts only when `resample` lists any of
    them (the slash cut reads every block)."""
    sidx, qs, first = history_samples(market, interval, with_first=True)
    rate = np.asarray(market.borrow_apr, dtype=np.float64)[first]
    if not set(resample) & {"exchange_rate", "eth_usd", "gas"}:
        return History(sidx, qs, rate)
    # the slash cut over the blocks of each step (first[j - 1], first[j]]: 1 - prod(1 - slash)
    kept = np.cumsum(numerics.log1p(-np.minimum(np.asarray(market.slash, dtype=np.float64), 1.0 - 1e-16)))
    cut = np.zeros(len(first))
    cut[1:] = -numerics.expm1(kept[first[1:]] - kept[first[:-1]])
    return History(sidx, qs, rate, np.asarray(market.xrate, dtype=np.float64)[first],
                   (np.asarray(market.eth_usd, dtype=np.float64) * market.gas_token_price)[first],
                   np.asarray(market.gas_gwei, dtype=np.float64)[first], cut)


def walk(levels: np.ndarray, h: np.ndarray, series: str, ts0: int = 0) -> np.ndarray:
    """The path of a positive series resampled by its log growth: x_0 = levels[0], x_s = x_{s-1} x
    levels[h_s] / levels[h_s - 1] (sample s carries the step into history sample h_s); DataError naming the
    series where history has no positive value."""
    bad = ~(np.isfinite(levels) & (levels > 0))
    if bad.any():
        s = int(np.flatnonzero(bad)[0])
        raise DataError(f"montecarlo resample {series}: the window's {series} at sample {s} is missing or not "
                        f"positive; a path needs it at every sample")
    lx = numerics.log(levels)
    steps = lx[h[1:]] - lx[h[1:] - 1]
    return numerics.exp(lx[0] + np.concatenate([[0.0], np.cumsum(steps)]))


def bootstrap_paths(market, mc: MonteCarlo, path_ids) -> Paths:
    """The paths of `path_ids` from a market's history (or a History). Every series of mc.resample follows
    the same blocks of history (the joint bootstrap keeps their cross-correlation): path sample s reads
    history sample h_s of path_draw. The de-peg ratio and the exchange rate (whose slash cuts move with its
    steps), ETH/USD too, walk by their log growth from the window's first value; the borrow rate and the gas
    price are the levels of the drawn samples (additive deltas on the replayed market's, so they stack on a
    rate or gas spike). A series not
    resampled stays historical (the de-peg ratio: a factor of 1.0).

    [[scenario]] overlays stack on the paths: the history is read without the overlays (api passes it) and
    the factor q_path / q_history multiplies the overlaid market, so a path's ratio is the bootstrapped one
    times the overlay's own multiple at each date, and a rate spike adds to the resampled rate."""
    h = market if isinstance(market, History) else history_of(market, mc.interval, mc.resample)
    if h.xrate is None and set(mc.resample) & {"exchange_rate", "eth_usd", "gas"}:
        raise ValueError("bootstrap_paths: the History was read without the series mc.resample lists")
    block = max(1, int(round(mc.block_days * 86400 / mc.interval)))
    draws = [path_draw(h.qs, mc.seed, k, block) for k in path_ids]
    rs = mc.resample
    f = np.stack([d[0] for d in draws]) if "discount" in rs else np.ones((len(draws), len(h.qs)))
    extra = {}
    if "borrow_rate" in rs:
        extra["borrow_delta"] = np.stack([h.rate[hk] - h.rate for _, hk in draws])
    if "exchange_rate" in rs:
        extra["xrate"] = np.stack([walk(h.xrate, hk, "exchange rate") for _, hk in draws])
        extra["slash"] = np.stack([np.where(np.arange(len(hk)) > 0, h.slash[hk], 0.0) for _, hk in draws])
    if "eth_usd" in rs:
        hist = h.eth_usd
        extra["usd_factor"] = np.stack([walk(hist, hk, "eth_usd (the gas token's USD price)") / hist
                                        for _, hk in draws])
    if "gas" in rs:
        if not np.all(np.isfinite(h.gas) & (h.gas >= 0)):
            raise DataError("montecarlo resample gas: the window's gas price is missing at some sample")
        extra["gas_delta"] = np.stack([h.gas[hk] - h.gas for _, hk in draws])
    return Paths(h.sidx, f, **extra)


# --- statistics --------------------------------------------------------------------------------------------
PAIR_COLUMNS = ("end_equity", "net_apy", "liq_count", "bad_debt", "min_hf")


def summarize(pairs: pl.DataFrame, capital: dict[int, float]) -> pl.DataFrame:
    """One row per configuration from its paths' rows (config_id, path, end_equity, net_apy, liq_count,
    bad_debt): the statistics of the module docstring."""
    rows = []
    for (cid,), g in pairs.sort(["config_id", "path"]).group_by(["config_id"], maintain_order=True):
        eq = g["end_equity"].to_numpy()
        apy = g["net_apy"].to_numpy()
        cap = float(capital[int(cid)])
        n = len(eq)
        loss = cap - eq
        k = max(1, math.ceil(TAIL * n))
        worst = np.sort(eq, kind="stable")[:k]
        w = int(np.argmin(eq))                     # first minimum: the lowest path id among equal equities
        rows.append({
            "config_id": int(cid), "n_paths": n,
            "liq_probability": float(np.mean(g["liq_count"].to_numpy() > 0)),
            "bad_debt_probability": float(np.mean(g["bad_debt"].to_numpy() > 0)),
            "net_apy_mean": float(np.mean(apy)),
            "net_apy_p5": float(np.quantile(apy, 0.05)),
            "net_apy_p50": float(np.quantile(apy, 0.50)),
            "net_apy_p95": float(np.quantile(apy, 0.95)),
            "end_equity_p5": float(np.quantile(eq, TAIL)),
            "var95": float(cap - np.quantile(eq, TAIL)),
            "cvar95": float(cap - worst.mean()),
            "expected_shortfall": float(np.mean(np.maximum(loss, 0.0))),
            "worst_path": int(g["path"][w]),
            "worst_end_equity": float(eq[w]),
        })
    return pl.DataFrame(rows)


def pair_frame(out, pair_path: np.ndarray, ids: list[int], n_paths: int) -> pl.DataFrame:
    """The per (configuration, path) rows of one batch (configuration-major, as engine.run_core_paths)."""
    s = out.summaries
    cid = np.repeat(np.asarray(ids, dtype=np.int64), n_paths)
    cols = {"config_id": cid, "path": np.asarray(pair_path, dtype=np.int64)}
    for name in PAIR_COLUMNS:
        cols[name] = s[name]
    return pl.DataFrame(cols)


# --- the driver ----------------------------------------------------------------------------------------------
def _replay(market, lanes, params, path_ids, mc: MonteCarlo, me: int, threads: int, lane_arrays=None,
            ids=None, history: History | None = None):
    from backtest.engine import CHUNK, run_core_paths

    paths = bootstrap_paths(history if history is not None else market, mc, path_ids)
    if len(paths.sample_idx) != len(market):
        raise DataError("montecarlo: the history without [[scenario]] overlays has another clock than the "
                        "overlaid market")
    out, local = run_core_paths(market, params, lanes, np.zeros(0, dtype=np.int64), me, paths, CHUNK,
                                threads=threads, event_cap=EVENT_CAP, lane_arrays=lane_arrays)
    _check_run(market, params, out, path_ids, local, paths, ids)
    return out, np.asarray(path_ids, dtype=np.int64)[local]


def _check_run(market, params, out, path_ids, local, paths, ids=None) -> None:
    """The end-of-run balances of every pair, marked at the path's own last price."""
    from backtest.invariants import check_summaries

    n = len(path_ids)
    ids = list(range(len(params))) if ids is None else ids
    names = [f"config {ids[i // n]} on path {path_ids[j]}" for i, j in enumerate(local)]
    check_summaries(out.summaries, market, params, names, local, paths)


def part_name(g: int, k0: int) -> str:
    return f"part-{g:04d}-{k0:08d}.parquet"


def batches(mc: MonteCarlo, n_configs: int) -> list[list[int]]:
    per = max(1, PAIR_BUDGET // max(1, n_configs))
    if mc.by_market:        # one core pass per path anyway: fewer [path, sample] arrays in memory
        per = min(per, BY_MARKET_PATHS)
    ids = mc.path_ids()
    return [ids[i: i + per] for i in range(0, len(ids), per)]


def run_paths(points, jobs, work_path: Path, mc: MonteCarlo, executor: str, workers: int,
              address: str | None, progress: Callable[[int, int], None] | None,
              histories: dict[int, History] | None = None) -> None:
    """Replay every configuration of every job on every path; one Parquet part per (group, path batch).
    histories: per job index, the history without [[scenario]] overlays (None: the job's own market)."""
    histories = histories or {}
    from backtest.engine import build_lanes, encode_params, CHUNK
    from backtest.legs import n_legs
    from backtest.sweep import write_parquet_atomic

    parts = work_path / "mc"
    parts.mkdir(parents=True, exist_ok=True)
    tasks = []
    for g, (prep, ids) in enumerate(jobs):
        if n_legs(prep.market) > 1:
            raise BacktestError("--paths: multi-collateral positions ([[strategy.collateral]]) do not take "
                                "paths yet")
        if "exchange_rate" in mc.resample and any(sc.kind == "slash" for i in ids for sc in points[i][1].scenarios):
            # the path's rate replaces the overlaid one: the overlay would be lost, not stacked
            raise ConfigError("montecarlo.resample exchange_rate: a [[scenario]] slash overlays the exchange rate "
                              "the paths resample; drop the overlay or exchange_rate from resample")
        params = encode_params([points[i][1] for i in ids], prep.lanes)
        for b in batches(mc, len(ids)):
            if not (parts / part_name(g, b[0])).exists():       # resume: finished batches are kept
                tasks.append((g, prep, ids, params, b))
    if executor == "dask":
        _run_dask(tasks, parts, mc, workers, address, progress, histories)
        return
    lane_cache: dict[int, dict] = {}
    for g, prep, ids, params, b in tasks:
        if g not in lane_cache:
            lane_cache.clear()
            lane_cache[g] = build_lanes(prep.market, prep.lanes, CHUNK)
        out, pp = _replay(prep.market, prep.lanes, params, b, mc, prep.metric_every, workers, lane_cache[g],
                          ids, histories.get(g))
        write_parquet_atomic(parts / part_name(g, b[0]), pair_frame(out, pp, ids, len(b)))
        if progress is not None:
            progress(len(ids) * len(b), len(ids) * len(b) * len(prep.market))


_WORKER: dict[str, dict] = {}


def _dask_task(payload: dict, params: np.ndarray, ids: list[int], path_ids: list[int], mc: MonteCarlo):
    """On a worker: the paths of this batch are built here from (seed, k), the same on every machine."""
    from backtest.engine import CHUNK, build_lanes

    key = payload["key"]
    if key not in _WORKER:
        _WORKER.clear()
        _WORKER[key] = build_lanes(payload["market"], payload["lanes"], CHUNK)
    out, pp = _replay(payload["market"], payload["lanes"], params, path_ids, mc, payload["metric_every"], 1,
                      _WORKER[key], ids, payload.get("history"))
    return pair_frame(out, pp, ids, len(path_ids))


def _run_dask(tasks, parts: Path, mc: MonteCarlo, workers: int, address: str | None, progress,
              histories: dict[int, History]) -> None:
    from backtest.sweep import dask_client, write_parquet_atomic

    client, cluster, as_completed = dask_client(workers, address)
    try:
        payloads: dict[int, object] = {}
        futs = {}
        for g, prep, ids, params, b in tasks:
            if g not in payloads:
                [payloads[g]] = client.scatter([{"market": prep.market, "lanes": prep.lanes,
                                                 "metric_every": prep.metric_every,
                                                 "history": histories.get(g),
                                                 "key": f"{prep.market.data_hash}:{g}"}], broadcast=True)
            fut = client.submit(_dask_task, payloads[g], params, ids, b, mc, pure=False)
            futs[fut] = (g, b[0], len(ids) * len(b), len(ids) * len(b) * len(prep.market))
        for done in as_completed(list(futs)):
            g, k0, pairs, blocks = futs[done]
            write_parquet_atomic(parts / part_name(g, k0), done.result())
            if progress is not None:
                progress(pairs, blocks)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def collect(points, work_path: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the per-configuration summary with its labels, capital and debt asset; the per-pair table)."""
    files = sorted((work_path / "mc").glob("part-*.parquet"))
    pairs = pl.concat([pl.read_parquet(p) for p in files]).sort(["config_id", "path"])
    capital = {i: points[i][1].strategy.capital for i in range(len(points))}
    stats = summarize(pairs, capital)
    keys: list[str] = []
    for lab, _ in points:
        for k in lab:
            if k not in keys:
                keys.append(k)
    cids = stats["config_id"].to_list()
    lab_cols = {k: [points[i][0].get(k) for i in cids] for k in keys}
    head = pl.DataFrame({"config_id": cids, **lab_cols}) if keys else pl.DataFrame({"config_id": cids})
    summary = head.join(stats, on="config_id", how="left", maintain_order="left")
    summary = summary.with_columns(
        pl.Series("capital", [points[i][1].strategy.capital for i in cids], dtype=pl.Float64),
        pl.Series("debt_asset", [points[i][1].market.debt for i in cids], dtype=pl.Utf8))
    return summary, pairs


# the manifest's column dictionary of the Monte Carlo tables: name -> (unit kind, meaning)
MC_COLUMNS = {
    "path": ("id", "the Monte Carlo path (replay it alone with --paths N --seed S --path K)"),
    "n_paths": ("count", "paths this configuration ran on"),
    "liq_probability": ("fraction", "share of paths with at least one liquidation"),
    "bad_debt_probability": ("fraction", "share of paths that left bad debt"),
    "net_apy_mean": ("apy", "mean net APY over the paths (market mark)"),
    "net_apy_p5": ("apy", "5th percentile of net APY over the paths (numpy linear quantile)"),
    "net_apy_p50": ("apy", "median net APY over the paths"),
    "net_apy_p95": ("apy", "95th percentile of net APY over the paths"),
    "end_equity_p5": ("debt", "5th percentile of ending equity over the paths"),
    "var95": ("debt", "value at risk at 95 %: capital - the 5th percentile of ending equity (a loss > 0)"),
    "cvar95": ("debt", "conditional VaR / expected shortfall at 95 %: capital - mean ending equity of the "
                       "worst ceil(5 % x paths) paths"),
    "expected_shortfall": ("debt", "mean shortfall below the capital over all paths: mean(max(0, capital - "
                                   "ending equity))"),
    "worst_path": ("id", "the path with the lowest ending equity (lowest id on ties)"),
    "worst_end_equity": ("debt", "ending equity on the worst path"),
}


def column_entries(names, debts: list[str]) -> list[dict]:
    from backtest.results import COLUMNS, _unit

    ds = sorted(set(debts))
    debt = ds[0] if len(ds) == 1 else "the row's debt_asset"
    rows = []
    for name in names:
        kind, meaning = MC_COLUMNS.get(name) or COLUMNS.get(name) or ("text", "")
        if name in MC_COLUMNS or name in COLUMNS:
            rows.append({"name": name, "unit": _unit(kind, debt, "token"), "meaning": meaning})
        elif "." in name:
            rows.append({"name": name, "unit": "config value", "meaning": f"swept parameter {name}"})
        else:
            rows.append({"name": name, "unit": "unknown", "meaning": "no dictionary entry"})
    return rows


def finish(points, work_path: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Collect the parts into the summary, write paths.parquet into the work folder; (summary, empty events)
    for WorkDir.finalize (whose part folders it creates empty). The parts stay until the result set is in
    place (the caller removes its mc/ folder), so a crash before then still resumes."""
    from backtest.results import events_frame
    from backtest.sweep import write_parquet_atomic

    summary, pairs = collect(points, work_path)
    write_parquet_atomic(work_path / "paths.parquet", pairs)
    for d in ("summary", "events"):
        (work_path / d).mkdir(exist_ok=True)

    class _NoEvents:
        events: list = []
    return summary, events_frame(_NoEvents(), None, [])
