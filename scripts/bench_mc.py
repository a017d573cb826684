#!/usr/bin/env python
"""Monte Carlo benchmark: N paths x M configurations x one year of 12-second blocks, end to end.

    python scripts/bench_mc.py                       # 200 x 50, then 1,000 x 100 (each in its own process)
    python scripts/bench_mc.py --paths 1000 --configs 100 [--workers 0] [--executor local|dask]
    python scripts/bench_mc.py --paths 20 --configs 100 --resample discount,exchange_rate,eth_usd,gas,borrow_rate

The configurations are examples/loop.toml's wstETH/WETH loop in Aave v3's E-mode, with the market oracle, over
one year of the bundled real-history lake (2024-06-01 to 2025-06-01): target LTV (M / 10 values from 0.50 to
0.92) x loops 1-10. The paths are block-bootstrapped from the window's own de-peg history (backtest/montecarlo.py, 7-day blocks, seed 1). End to end = load the
config, align the market (2.6 M blocks), build the paths batch by batch, replay every (configuration, path)
pair in the core, write the result set (summary + paths.parquet). Prints wall time by phase,
configuration-path-blocks per second and the process's peak RSS. Targets (DESIGN.md section 7): 1,000 x 100
under 120 s and 2 GB on 2 cores. The machine may be shared: the figures are one run's, not a best of.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHAPES = ((200, 50), (1000, 100))


def one(paths: int, configs: int, workers: int, executor: str, config: str,
        resample: tuple[str, ...] = ("discount",)) -> None:
    import backtest
    from backtest.montecarlo import MonteCarlo

    n_ltv = max(1, configs // 10)
    grids = {"strategy.target_ltv": [round(float(x), 4) for x in np.linspace(0.50, 0.92, n_ltv)],
             "strategy.loops": list(range(1, 11))}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        res = backtest.run(config, overrides={"run.output": tmp, "run.record": "none", "market.oracle": "market",
                                                "run.start": "2024-06-01", "run.end": "2025-06-01"},
                           grids=grids, workers=workers, executor=executor,
                           montecarlo=MonteCarlo(paths=paths, seed=1, block_days=7.0, resample=resample))
        wall = time.perf_counter() - t
    m = res["manifest"]
    s = res["summary"]
    n_cfg, n_blocks = s.height, m["blocks"]
    ru = resource.getrusage(resource.RUSAGE_SELF)
    rss = ru.ru_maxrss / 1024
    work = n_cfg * paths * n_blocks
    tm = m["timings"]
    print(f"{paths} paths x {n_cfg} configurations x {n_blocks:,} blocks = {work:.3e} configuration-path-blocks "
          f"({executor}, workers={workers or 'all'}, resampling {', '.join(resample)})")
    print(f"  wall time end to end: {wall:.2f} s   ({' + '.join(f'{k} {v:.2f}' for k, v in tm.items())} s)")
    print(f"  end to end: {work / wall:.3e} configuration-path-blocks/s; replay phase {work / tm['replay']:.3e}/s")
    print(f"  peak RSS: {rss:.0f} MB; process CPU time {ru.ru_utime + ru.ru_stime:.1f} s (all threads; on a loaded "
          f"machine wall time is far above CPU time / threads)")
    print(f"  liquidation probability over the configurations: min {s['liq_probability'].min():.3f}, "
          f"max {s['liq_probability'].max():.3f}; worst VaR95 {s['var95'].max():.4f} {s['debt_asset'][0]}")
    sys.stdout.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=None)
    ap.add_argument("--configs", type=int, default=None)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--executor", default="local", choices=("local", "dask"))
    ap.add_argument("--config", default=str(ROOT / "examples" / "loop.toml"))
    ap.add_argument("--resample", default="discount", help="the series the paths resample (comma-separated)")
    args = ap.parse_args()
    if args.paths is not None or args.configs is not None:
        one(args.paths or 200, args.configs or 50, args.workers, args.executor, args.config,
            tuple(args.resample.split(",")))
        return
    for p, c in SHAPES:       # each shape in its own process: its own peak RSS
        subprocess.run([sys.executable, __file__, "--paths", str(p), "--configs", str(c), "--workers",
                        str(args.workers), "--executor", args.executor, "--config", args.config], check=True)


if __name__ == "__main__":
    main()
