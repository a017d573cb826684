"""A real sweep for the report's tests: the 2022 stETH de-peg example on the bundled lake, target LTV x loops
(15 configurations, the deepest ones liquidated), written once per test module into a temp folder."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "steth-2022-v2.toml"
GRID = {"strategy.target_ltv": [0.6, 0.65, 0.7, 0.75, 0.8], "strategy.loops": [2, 5, 8]}


def run_sweep(out: Path, name: str = "report-sweep") -> Path:
    import backtest

    res = backtest.run(EXAMPLE, overrides={"run.data": str(REPO / "data"), "run.output": str(out),
                                           "run.name": name, "market.ltv": 0.8}, grids=GRID)
    return Path(res["path"])
