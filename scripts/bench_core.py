#!/usr/bin/env python
"""Core throughput: configuration-blocks per second over one year of 12-second blocks.

    python scripts/bench_core.py [--config examples/loop.toml] [--configs 1,100,1000] [--repeat 5] [--threads 0]

Aligns the config's market from the lake once (timed), builds the lanes (timed), then replays 1, 100 and 1,000
configurations (a grid of LTV x loops x rebalance) with the core, both with its exact chunk skipping (the
default) and with --dense replay of every block (the quiet-stretch fast path with the full block body where
anything can happen: the path Monte Carlo lives on), and the reference engine on a shorter window. Prints
wall times (the best of --repeat runs: the machine may be shared), configuration-blocks per second and peak
RSS. The line for 2 paths x 100 configurations replays (configuration, path) pairs (engine.run_core_paths): path 0
is the market itself, path 1 a 20 % dip of the collateral's price for a day in the middle, hourly samples.
"""
from __future__ import annotations

import argparse
import dataclasses
import resource
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def grid(cfg, n: int):
    """n configurations: target LTV x loops, half with rebalancing rules."""
    from backtest.config_types import RebalanceConfig

    out = []
    ltvs = np.linspace(0.5, 0.92, max(1, int(np.ceil(np.sqrt(n)))))
    loops = list(range(1, 11))
    i = 0
    while len(out) < n:
        ltv = float(ltvs[i % len(ltvs)])
        lp = loops[(i // len(ltvs)) % len(loops)]
        reb = RebalanceConfig(1.03, 1.08, 1.25, 3600) if i % 2 else None
        st = dataclasses.replace(cfg.strategy, target_ltv=round(ltv, 4), loops=lp, rebalance=reb)
        out.append(dataclasses.replace(cfg, strategy=st))
        i += 1
    return out


def paths_line(market, params, lanes, rec, me, repeat: int, threads: int, lane_arrays) -> str:
    """2 paths x the configurations of params: path 0 factors 1.0, path 1 a one-day 20 % dip mid-window."""
    from backtest.engine import CHUNK, run_core_paths
    from backtest.paths import Paths

    ns = int((market.ts[-1] - market.ts[0]) // 3600) + 1
    f = np.ones((2, ns))
    mid = ns // 2
    f[1, mid: mid + 24] = 0.8
    paths = Paths.from_times(market.ts, 3600, f)
    walls = []
    for _ in range(max(1, repeat)):
        t = time.perf_counter()
        out, _ = run_core_paths(market, params, lanes, rec, me, paths, CHUNK, False, threads,
                                lane_arrays=lane_arrays)
        walls.append(time.perf_counter() - t)
    wall = min(walls)
    pairs = len(out.summaries)
    liq = [int(out.summaries["liq_count"][k::2].sum()) for k in range(2)]
    return (f"core 2 paths x {len(params)} configs, skip (exact chunk skipping): {wall:8.3f} s  "
            f"{pairs * len(market) / wall:12.3e} config-path-blocks/s  (best of {len(walls)})  liquidations "
            f"path 0 {liq[0]}, path 1 {liq[1]}  peak RSS {peak_rss_mb():.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "examples" / "loop.toml"))
    ap.add_argument("--configs", default="1,100,1000")
    ap.add_argument("--repeat", type=int, default=5, help="runs per figure; the best is printed")
    ap.add_argument("--ref-blocks", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    from backtest.config import load_config
    from backtest.plan import market_for
    from backtest.engine import (CHUNK, build_lanes, encode_params, lane_of, metric_every, record_indices,
                                 run_core, run_reference_batch)

    cfg = load_config(args.config)
    t = time.perf_counter()
    market = market_for(cfg)
    t_align = time.perf_counter() - t
    n = len(market)
    days = (market.ts[-1] - market.ts[0]) / 86400
    print(f"market: {n:,} blocks ({days:.0f} days of {cfg.run.block_time}-s blocks); align {t_align:.2f} s; "
          f"peak RSS {peak_rss_mb():.0f} MB")
    lanes = [lane_of(cfg)]
    t = time.perf_counter()
    lane_arrays = build_lanes(market, lanes, CHUNK)
    t_lanes = time.perf_counter() - t
    print(f"lanes (index accrual, oracle, chunk bounds): {t_lanes:.3f} s = {n / t_lanes / 1e6:.1f} M blocks/s")
    no_rec = record_indices(market, -1)
    me = metric_every(cfg.run.block_time)
    for k in [int(x) for x in args.configs.split(",")]:
        configs = grid(cfg, k)
        params = encode_params(configs, lanes)
        for dense in (False, True):
            walls = []
            for _ in range(max(1, args.repeat)):
                t = time.perf_counter()
                out = run_core(market, params, lanes, no_rec, me, CHUNK, dense, args.threads,
                               lane_arrays=lane_arrays)
                walls.append(time.perf_counter() - t)
            wall = min(walls)
            mode = "dense (every block)" if dense else "skip (exact chunk skipping)"
            liq = int(out.summaries["liq_count"].sum())
            print(f"core {k:>5} configs, {mode:<28}: {wall:8.3f} s  {k * n / wall:12.3e} config-blocks/s  "
                  f"(best of {len(walls)})  liquidations {liq}  peak RSS {peak_rss_mb():.0f} MB")
    print(paths_line(market, encode_params(grid(cfg, 100), lanes), lanes, no_rec, me, args.repeat, args.threads,
                     lane_arrays))
    sub = market.slice(0, min(args.ref_blocks, n))
    params = encode_params(grid(cfg, 1), lanes)
    t = time.perf_counter()
    run_reference_batch(sub, params, lanes, record_indices(sub, -1), me)
    wall = time.perf_counter() - t
    print(f"reference engine, 1 config x {len(sub):,} blocks: {wall:.2f} s  {len(sub) / wall:12.3e} config-blocks/s")


if __name__ == "__main__":
    main()
