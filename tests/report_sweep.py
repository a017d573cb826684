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


def run_real_2022(out: Path) -> Path:
    """The June 2022 replay (examples/real-steth-2022-aave-v2.toml, 11 target LTVs) on a lake imported from
    ../shared/data as README's "Real data" builds it; the caller skips when that folder is absent."""
    import warnings

    import backtest
    from backtest.data.derive import derive_ratio
    from backtest.data.sources.registry import import_files
    from tests.pins import SHARED

    lake = out / "lake-2022"
    cg, es = SHARED / "coingecko-steth-weth-hourly", SHARED / "etherscan-daily"
    import_files("coingecko", [cg / "stETH_usd.csv", cg / "WETH_usd.csv"], lake)
    derive_ratio(lake, "stETH", "WETH", rebase_apr=0.04)
    import_files("etherscan", [es / "export-AvgGasPrice.csv", es / "export-EtherPrice.csv"], lake)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # the one known CoinGecko print, allowed by the example
        res = backtest.run(REPO / "examples" / "real-steth-2022-aave-v2.toml",
                           overrides={"run.data": str(lake), "run.output": str(out)})
    return Path(res["path"])
