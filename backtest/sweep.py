"""Sweeps: configurations grouped by market, replayed in batches, streamed to disk, resumable.

A result set is built in a work folder beside its destination (``.<name>.work``). Every batch of
configurations is written there as its own Parquet parts (summary, events, and one time-series file per
configuration), each atomically (temporary file, then rename), so a sweep killed at any moment, SIGKILL
included, leaves only whole files. ``resume=True`` reads which configurations are finished from those parts
and replays only the others; the final step concatenates the parts, writes the manifest and renames the work
folder into place. Memory stays bounded by the aligned market plus one batch of outputs.

Executors: ``local`` replays a batch with the core's own threads (prange, GIL released); ``dask`` sends the
aligned market to every worker once (scatter, broadcast) and batches of configurations as tasks; workers
return summaries, events and time series, and the driver writes them (workers need no access to its disk;
a batch's time series are bounded by RECORD_BUDGET_BYTES).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import polars as pl

from backtest import venues as _venues
from backtest.config_types import Config
from backtest.data.market import Market
from backtest.engine import (
    CHUNK,
    collateral_token,
    Lane,
    Outputs,
    build_lanes,
    check_against_market,
    encode_params,
    lane_of,
    metric_every,
    record_indices,
    run_core,
    run_reference_batch,
)
from backtest.errors import BacktestError, ConfigError
from backtest.legs import leg_weights, n_legs
from backtest.episodes import (
    COMET,
    Episode,
    depeg_event_frame,
    empty_frame,
    episode_frame,
    extra_record_indices,
    find_episodes,
)
from backtest.results import events_frame, liquidation_losses, summary_frame, timeseries_frame, with_depeg_events

RECORD_BUDGET_BYTES = 256 * 1024 * 1024   # time-series buffer of one batch
MAX_BATCH = 256                           # configurations per batch (resume and progress granularity)
EPISODE_SAMPLE_S = 3600                   # inside a de-peg episode the core records at least hourly


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():            # a failed write (a full disk) leaves no partial file behind
            tmp.unlink()


def write_parquet_atomic(path: Path, df: pl.DataFrame) -> None:
    write_atomic(path, lambda p: df.write_parquet(p, statistics=True))


@dataclass
class Group:
    """Configurations that share one aligned market."""
    ids: list[int]
    first: Config


class WorkDir:
    """The folder a result set is built in; finished batches survive a crash."""

    def __init__(self, dest: Path, sweep_hash: str, resume: bool):
        # the caller holds the result set's lock (backtest.store.Store): one writer per result set
        self.dest = Path(dest)
        self.path = self.dest.with_name(f".{self.dest.name}.work")
        self.resumed = False
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        state = self.path / "state.json"
        if self.path.exists():
            old = None
            try:
                old = json.loads(state.read_text()).get("sweep_hash")
            except (OSError, ValueError):
                pass
            if resume and old == sweep_hash:
                self.resumed = True
            else:
                shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        write_atomic(state, lambda p: p.write_text(json.dumps({"sweep_hash": sweep_hash}) + "\n"))

    def done_ids(self) -> set[int]:
        done: set[int] = set()
        for part in sorted((self.path / "summary").glob("part-*.parquet")):
            done.update(pl.read_parquet(part, columns=["config_id"])["config_id"].to_list())
        return done

    def timeseries_path(self, config_id: int) -> Path:
        return self.path / "timeseries" / f"config_id={config_id}" / "part-0.parquet"

    def write_batch(self, first_id: int, summary: pl.DataFrame, events: pl.DataFrame,
                    episodes: pl.DataFrame | None = None) -> None:
        # events (and episodes) first: a batch counts as finished once its summary part exists
        if episodes is not None:
            write_parquet_atomic(self.path / "episodes" / f"part-{first_id:09d}.parquet", episodes)
        write_parquet_atomic(self.path / "events" / f"part-{first_id:09d}.parquet", events)
        write_parquet_atomic(self.path / "summary" / f"part-{first_id:09d}.parquet", summary)

    def collect(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        summary = pl.concat([pl.read_parquet(p) for p in sorted((self.path / "summary").glob("part-*.parquet"))],
                            how="diagonal_relaxed").sort("config_id")
        ev_parts = [pl.read_parquet(p) for p in sorted((self.path / "events").glob("part-*.parquet"))]
        # diagonal: a multi-collateral group's events carry seized_collateral (null in the others)
        events = pl.concat(ev_parts, how="diagonal_relaxed").sort(["config_id", "block"], maintain_order=True)
        return summary, events

    def collect_episodes(self) -> pl.DataFrame:
        parts = [pl.read_parquet(p) for p in sorted((self.path / "episodes").glob("part-*.parquet"))]
        if not parts:
            return empty_frame()
        return pl.concat([empty_frame(), *parts], how="vertical").sort(["episode_id", "config_id"])

    def finalize(self, summary: pl.DataFrame, events: pl.DataFrame, manifest: dict[str, Any],
                 episodes: pl.DataFrame | None = None) -> Path:
        write_parquet_atomic(self.path / "summary.parquet", summary)
        write_parquet_atomic(self.path / "events.parquet", events)
        if episodes is not None:
            write_parquet_atomic(self.path / "episodes.parquet", episodes)
            shutil.rmtree(self.path / "episodes", ignore_errors=True)
        write_atomic(self.path / "manifest.json",
                     lambda p: p.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"))
        shutil.rmtree(self.path / "summary")
        shutil.rmtree(self.path / "events")
        (self.path / "state.json").unlink()
        old = None
        if self.dest.exists():
            old = self.dest.with_name(f".{self.dest.name}.old-{os.getpid()}")
            os.replace(self.dest, old)
        os.replace(self.path, self.dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.dest


def market_key(cfg: Config) -> str:
    """Configurations with equal keys share one aligned market (only the oracle lane may differ). Groups
    whose markets differ only in constants (market.ltv, borrow_rate, a fixed gas price...) or overlays still
    share one lake read: the align callable is a backtest.plan.Markets in the API."""
    from dataclasses import asdict

    mk = asdict(cfg.market)
    for k in ("oracle", "capo_growth", "capo_snapshot_age", "v33_from", "close_factor"):
        mk.pop(k, None)
    # the venue's own keys that are per-configuration parameters (Aave v4's bonus factor, target HF...), not
    # series of the aligned market
    per_config = _venues.venue(cfg.market.protocol).per_config_keys
    mk["venue"] = [kv for kv in mk["venue"] if kv[0] not in per_config]
    run = cfg.run
    key = {"run": [run.start, run.end, str(run.data), run.chain, run.block_time, run.record],
           "market": mk, "scenarios": [asdict(s) for s in cfg.scenarios], "gas": cfg.costs.gas}
    # the held token (strategy.restake's LRT, else market.collateral) and how its rewards are valued select the
    # aligned market's price, exchange rate, venue parameters, slashes and reward series
    rw = cfg.strategy.rewards
    key["held"] = [cfg.strategy.restake, None if rw is None else [rw.value, rw.price_per_point, rw.token]]
    if cfg.strategy.collateral:             # [[strategy.collateral]]: the legs' tokens select the market
        key["legs"] = [leg.token for leg in cfg.strategy.collateral]
    return json.dumps(key, sort_keys=True, default=str)


def group_points(points: list[tuple[dict, Config]], ids: list[int]) -> list[Group]:
    groups: dict[str, Group] = {}
    for i in ids:
        cfg = points[i][1]
        groups.setdefault(market_key(cfg), Group([], cfg)).ids.append(i)
    return list(groups.values())


@dataclass
class Prepared:
    """One group's aligned market and what every batch of it needs."""
    market: Market
    lanes: list[Lane]
    rec_idx: np.ndarray
    metric_every: int
    batch: int
    # de-peg episodes (backtest/episodes.py): the core records at run_idx, the time-series samples (rows
    # ts_rows of it) plus the blocks the episodes read; oracle_prices [lane, leg, block] where an episode
    # or a Compound III loss needs them
    episodes: list[Episode] | None = None
    run_idx: np.ndarray | None = None
    ts_rows: np.ndarray | None = None
    oracle_prices: np.ndarray | None = None
    threshold: float = 0.0

    @property
    def record_at(self) -> np.ndarray:
        """The blocks the core records: run_idx (rec_idx when no episodes were looked for)."""
        return self.rec_idx if self.run_idx is None else self.run_idx

    def split(self, out: Outputs) -> tuple[Outputs, np.ndarray]:
        """The outputs as the time series sees them (its own samples) and the records at run_idx."""
        if self.run_idx is None or len(self.run_idx) == len(self.rec_idx):
            return out, out.records
        rows = self.ts_rows
        ts_out = Outputs(out.summaries, out.events, out.records[:, rows], self.rec_idx, out.event_legs,
                         out.leg_summary, None if out.leg_records is None else out.leg_records[:, rows],
                         out.tokens)
        return ts_out, out.records


def prepare(group: Group, points, align: Callable[[Config], Market], max_batch: int = MAX_BATCH) -> Prepared:
    market = align(group.first)
    lanes: list[Lane] = []
    for i in group.ids:
        check_against_market(points[i][1], market)
        ln = lane_of(points[i][1])
        if ln not in lanes:
            lanes.append(ln)
    rec_idx = record_indices(market, group.first.run.record)
    ep_cfg = group.first.episodes
    tokens = tuple(getattr(market, "tokens", ())) if n_legs(market) > 1 else (collateral_token(group.first),)
    por = None
    if any(ln.oracle in ("capo", "chainlink") for ln in lanes) or group.first.market.protocol == COMET:
        por = build_lanes(market, lanes, CHUNK)["por"]
        por = por if por.ndim == 3 else por[:, None, :]
    episodes = find_episodes(market, tokens, lanes, por, ep_cfg.threshold, ep_cfg.merge_gap)
    # inside an episode the core also records hourly, whatever run.record says: its lowest HF is read there
    hourly = record_indices(market, EPISODE_SAMPLE_S) if episodes else None
    run_idx = np.union1d(rec_idx, extra_record_indices(episodes, hourly)).astype(np.int64)
    ts_rows = np.searchsorted(run_idx, rec_idx).astype(np.int64)
    legs = n_legs(market)                   # several legs: 4 more fields a record per leg (leg_records)
    per_cfg = max(1, len(run_idx) * (11 + (4 * legs if legs > 1 else 0)) * 8)
    batch = max(1, min(max_batch, RECORD_BUDGET_BYTES // per_cfg))
    return Prepared(market, lanes, rec_idx, metric_every(group.first.run.block_time), batch, episodes, run_idx,
                    ts_rows, por, ep_cfg.threshold)


def batch_frames(points, ids: list[int], out: Outputs, market: Market, prep: Prepared | None = None,
                 records: np.ndarray | None = None):
    """(summary, events, episodes) of a batch; out: the time series' outputs; records: the core's records at
    prep.run_idx (Prepared.split); episodes None without prep. With prep, the events also hold the episodes'
    depeg_start / depeg_end rows (derived here, after the core: the kernel never emits them)."""
    cfgs = [points[i][1] for i in ids]
    protocols = [c.market.protocol for c in cfgs]
    lanes_of = [prep.lanes.index(lane_of(c)) for c in cfgs] if prep is not None else None
    losses = liquidation_losses(out, market, protocols, prep.oracle_prices if prep is not None else None,
                                lanes_of)
    capital, debt = [c.strategy.capital for c in cfgs], [c.market.debt for c in cfgs]
    summary = summary_frame(out, market, [points[i][0] for i in ids], ids, capital, debt, losses=losses)
    episodes = None
    events = events_frame(out, market, ids)
    if prep is not None and prep.episodes is not None:
        episodes = episode_frame(prep.episodes, market, prep.threshold, ids, lanes_of, capital, debt,
                                 out.summaries, out.events, losses, records, prep.record_at)
        events = with_depeg_events(events, depeg_event_frame(prep.episodes, market, ids, lanes_of, records,
                                                             prep.record_at, prep.oracle_prices))
    return summary, events, episodes


def write_timeseries(work_path: Path, ids: list[int], out: Outputs, market: Market) -> None:
    if len(out.rec_idx) == 0:
        return
    for j, cid in enumerate(ids):
        path = work_path / "timeseries" / f"config_id={cid}" / "part-0.parquet"
        write_parquet_atomic(path, timeseries_frame(out, market, j, cid))


def write_batch_outputs(points, ids: list[int], out: Outputs, prep: Prepared, work: WorkDir) -> None:
    """A replayed batch (recorded at prep.run_idx) into its parts: time series, events, episodes, summary."""
    ts_out, records = prep.split(out)
    write_timeseries(work.path, ids, ts_out, prep.market)
    work.write_batch(ids[0], *batch_frames(points, ids, ts_out, prep.market, prep, records))


def check_run(market: Market, params: np.ndarray, out: Outputs, ids: list[int]) -> None:
    """The accounting invariants at the end of every run (backtest/invariants.py); a failure names the
    configuration. Multi-collateral positions sum their legs' tokens, so they are not checked here."""
    from backtest.invariants import check_flow, check_summaries, constant_underlying

    if n_legs(market) > 1:
        return
    check_summaries(out.summaries, market, params, [f"config {i}" for i in ids])
    constant = constant_underlying(market)          # once per batch: it reads every block
    for j, i in enumerate(ids):
        check_flow(out.summaries[j], out.events[j], market, params[j], f"config {i}", constant)


def run_local(points, jobs: list[tuple[Prepared, list[int]]], work: WorkDir, engine: str, dense: bool,
              workers: int, progress: Callable[[int, int], None] | None) -> None:
    for prep, todo in jobs:
        if not todo:
            continue
        lane_arrays = build_lanes(prep.market, prep.lanes, CHUNK) if engine == "core" else None
        for lo in range(0, len(todo), prep.batch):
            ids = todo[lo: lo + prep.batch]
            params = encode_params([points[i][1] for i in ids], prep.lanes)
            weights = leg_weights([points[i][1] for i in ids], prep.market) if n_legs(prep.market) > 1 else None
            if engine == "core":
                out = run_core(prep.market, params, prep.lanes, prep.record_at, prep.metric_every, CHUNK, dense,
                               workers, lane_arrays=lane_arrays, weights=weights)
            elif engine == "reference":
                out = run_reference_batch(prep.market, params, prep.lanes, prep.record_at, prep.metric_every,
                                          weights, configs=[points[i][1] for i in ids])
            else:
                raise ConfigError(f"--engine {engine!r}: use 'core' or 'reference'")
            check_run(prep.market, params, out, ids)
            write_batch_outputs(points, ids, out, prep, work)
            if progress is not None:
                progress(len(ids), len(ids) * len(prep.market))


# --- dask ------------------------------------------------------------------------------------------------
_WORKER_LANES: dict[str, dict] = {}


def _dask_batch(payload: dict, params: np.ndarray, ids: list[int], dense: bool):
    """Runs on a Dask worker: lanes are built once per worker and market; the summaries, events and time
    series come back to the driver, which writes them (a worker on another machine has no access to the
    driver's work folder)."""
    market: Market = payload["market"]
    key = payload["key"]
    lane_arrays = _WORKER_LANES.get(key)
    if lane_arrays is None:
        _WORKER_LANES.clear()
        lane_arrays = _WORKER_LANES[key] = build_lanes(market, payload["lanes"], CHUNK)
    out = run_core(market, params, payload["lanes"], payload["rec_idx"], payload["metric_every"], CHUNK, dense,
                   1, lane_arrays=lane_arrays)
    return ids, out.summaries, out.events, out.records


def dask_client(workers: int, address: str | None):
    """(client, local cluster or None, as_completed) for ``--executor dask``: the scheduler at ``address``, else
    a local cluster of ``workers`` processes (0: one per core)."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise BacktestError("--executor dask needs dask.distributed: pip install 'backtest[dask]'") from None
    if address:
        try:
            return Client(address, timeout="20s"), None, as_completed
        except OSError as exc:
            raise BacktestError(f"--address {address}: cannot reach the Dask scheduler ({exc})") from None
    n = workers if workers > 0 else (os.cpu_count() or 1)
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster), cluster, as_completed


def run_dask(points, jobs: list[tuple[Prepared, list[int]]], work: WorkDir, dense: bool, workers: int,
             address: str | None, progress: Callable[[int, int], None] | None) -> None:
    if any(n_legs(prep.market) > 1 for prep, _ in jobs):
        raise BacktestError("--executor dask: multi-collateral positions ([[strategy.collateral]]) run locally "
                            "only for now; drop --executor dask")
    client, cluster, as_completed = dask_client(workers, address)
    try:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        for g, (prep, todo) in enumerate(jobs):
            if not todo:
                continue
            payload = {"market": prep.market, "lanes": prep.lanes, "rec_idx": prep.record_at,
                       "metric_every": prep.metric_every, "key": f"{prep.market.data_hash}:{g}"}
            [fut] = client.scatter([payload], broadcast=True)
            # enough tasks to keep every worker busy, bounded by the memory budget per batch
            size = max(1, min(prep.batch, -(-len(todo) // (4 * n_workers))))
            tasks = []
            for lo in range(0, len(todo), size):
                ids = todo[lo: lo + size]
                params = encode_params([points[i][1] for i in ids], prep.lanes)
                tasks.append(client.submit(_dask_batch, fut, params, ids, dense, pure=False))
            for done in as_completed(tasks):
                ids, summaries, events, records = done.result()
                out = Outputs(summaries, events, records, prep.record_at)
                check_run(prep.market, encode_params([points[i][1] for i in ids], prep.lanes), out, ids)
                write_batch_outputs(points, ids, out, prep, work)
                if progress is not None:
                    progress(len(ids), len(ids) * len(prep.market))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
