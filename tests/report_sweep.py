"""Real sweeps for the report's tests, on the bundled lake (data/: real history, data/README.md): the June 2022
stETH de-peg on Aave v2 (examples/real-steth-2022-aave-v2.toml), as shipped (11 target LTVs) or swept over
target LTV x loops (15 configurations, the deepest one liquidated)."""
from __future__ import annotations

import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "real-steth-2022-aave-v2.toml"
GRID = {"strategy.target_ltv": [0.6, 0.65, 0.7, 0.75, 0.8], "strategy.loops": [2, 5, 10]}


def _run(out: Path, name: str, grids: dict | None) -> Path:
    import backtest

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # data checks the example allows, said once per run
        res = backtest.run(EXAMPLE, overrides={"run.data": str(REPO / "data"), "run.output": str(out),
                                               "run.name": name}, grids=grids)
    return Path(res["path"])


def run_sweep(out: Path, name: str = "report-sweep") -> Path:
    return _run(out, name, GRID)


def run_real_2022(out: Path) -> Path:
    """The example as shipped: its own [sweep] of 11 target LTVs."""
    return _run(out, "real-steth-2022-aave-v2", None)
