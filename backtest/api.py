"""The Python API: run a config (and every point of its sweep), write the result set, return frames."""
from __future__ import annotations

import datetime as dt
import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import polars as pl

from backtest import __version__
from backtest.config_types import Config
from backtest.data.market import Market
from backtest.engine import (
    CHUNK,
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
from backtest.errors import ConfigError
from backtest.results import ResultWriter, events_frame, summary_frame, timeseries_frame

RECORD_BUDGET_BYTES = 256 * 1024 * 1024   # time-series buffer per batch of configurations


def _load(config, overrides=None) -> Config:
    from backtest.config import load_config

    if isinstance(config, Config):
        if overrides:
            raise ConfigError("overrides need a config file path, not a Config object")
        return config
    return load_config(Path(config), overrides)


def _market_key(cfg: Config) -> str:
    """Configurations with equal keys share one aligned market (only the oracle lane may differ)."""
    mk = asdict(cfg.market)
    for k in ("oracle", "capo_growth", "capo_snapshot_age", "v33_from", "close_factor"):
        mk.pop(k)
    run = cfg.run
    key = {
        "run": [run.start, run.end, str(run.data), run.chain, run.block_time],
        "market": mk,
        "scenarios": [asdict(s) for s in cfg.scenarios],
        "gas": cfg.costs.gas,
    }
    return json.dumps(key, sort_keys=True, default=str)


def _align(cfg: Config) -> Market:
    from backtest.data.align import align

    return align(cfg)


def replay_points(points: list[tuple[dict, Config]], engine: str = "core", dense: bool = False,
                  workers: int = 0, progress: Callable[[int], None] | None = None,
                  on_batch: Callable[[list[int], Outputs, Market], None] | None = None):
    """Replay every (labels, config) point; calls on_batch(config_ids, outputs, market) per batch and
    returns (summary frame, events frame, markets by group)."""
    groups: dict[str, list[int]] = {}
    for i, (_, cfg) in enumerate(points):
        groups.setdefault(_market_key(cfg), []).append(i)
    summaries, events, markets = [], [], []
    for ids in groups.values():
        first = points[ids[0]][1]
        market = _align(first)
        for i in ids:
            check_against_market(points[i][1], market)
        lanes: list[Lane] = []
        for i in ids:
            ln = lane_of(points[i][1])
            if ln not in lanes:
                lanes.append(ln)
        rec_idx = record_indices(market, first.run.record)
        me = metric_every(first.run.block_time)
        lane_arrays = build_lanes(market, lanes, CHUNK) if engine == "core" else None
        per_cfg = max(1, len(rec_idx) * 11 * 8)
        batch = max(1, min(len(ids), RECORD_BUDGET_BYTES // per_cfg))
        for lo in range(0, len(ids), batch):
            sub = ids[lo: lo + batch]
            params = encode_params([points[i][1] for i in sub], lanes)
            if engine == "core":
                out = run_core(market, params, lanes, rec_idx, me, CHUNK, dense, workers,
                               lane_arrays=lane_arrays)
            elif engine == "reference":
                out = run_reference_batch(market, params, lanes, rec_idx, me)
            else:
                raise ConfigError(f"--engine {engine!r}: use 'core' or 'reference'")
            summaries.append(summary_frame(out, market, [points[i][0] for i in sub], sub,
                                           [points[i][1].strategy.capital for i in sub]))
            events.append(events_frame(out, market, sub))
            if on_batch is not None:
                on_batch(sub, out, market)
            if progress is not None:
                progress(len(sub))
        markets.append(market)
    summary = pl.concat(summaries, how="diagonal_relaxed").sort("config_id")
    ev = pl.concat(events).sort(["config_id", "block"], maintain_order=True)
    return summary, ev, markets


def run(config, overrides: dict | None = None, grids: dict | None = None, zip_: bool = False,
        engine: str = "core", dense: bool = False, workers: int = 0, write: bool = True,
        progress: Callable[[int], None] | None = None, on_start: Callable[[int], None] | None = None
        ) -> dict[str, Any]:
    """Replay a config (a TOML path or a Config) and every point of its sweep.

    Returns {"summary", "events": polars DataFrames, "path": the result set folder or None,
    "manifest": dict}. With write=True the result set goes to <run.output>/<run.name>/ atomically."""
    from backtest.config import config_hash, config_to_dict, expand_sweep

    started = time.time()
    cfg = _load(config, overrides)
    points = expand_sweep(cfg, grids, zip_)
    if on_start is not None:
        on_start(len(points))
    writer = ResultWriter(Path(cfg.run.output) / cfg.run.name) if write else None
    try:
        def keep_timeseries(ids, out: Outputs, market: Market) -> None:
            if writer is None or len(out.rec_idx) == 0:
                return
            for j, cid in enumerate(ids):
                writer.write_timeseries(cid, timeseries_frame(out, market, j))

        summary, events, markets = replay_points(points, engine, dense, workers, progress, keep_timeseries)
        manifest = {
            "name": cfg.run.name,
            "config": config_to_dict(cfg),
            "config_hash": config_hash(cfg),
            "points": [{"config_id": i, "labels": lab, "config_hash": config_hash(c)}
                       for i, (lab, c) in enumerate(points)],
            "data_hash": sorted({m.data_hash for m in markets}),
            "series": [asdict(s) for m in markets for s in m.series],
            "blocks": int(sum(len(m) for m in markets)),
            "engine": engine,
            "package_version": __version__,
            "started": dt.datetime.fromtimestamp(started, dt.timezone.utc).isoformat(),
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(),
            "wall_seconds": round(time.time() - started, 3),
            "status": "complete",
        }
        path = None
        if writer is not None:
            writer.write_parquet("summary.parquet", summary)
            writer.write_parquet("events.parquet", events)
            writer.write_json("manifest.json", manifest)
            path = writer.commit()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return {"summary": summary, "events": events, "path": path, "manifest": manifest}


def sweep(config, grids: dict | None = None, **kwargs) -> dict[str, Any]:
    """`run` with command-line style grids ({dotted key: [values]}) added to the config's [sweep]."""
    return run(config, grids=grids, **kwargs)
