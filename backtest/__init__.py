"""backtest: leverage-loop and liquidation backtester for liquid staking and restaking.

Python API: ``backtest.run(config)`` and ``backtest.sweep(config, grids)`` return polars DataFrames.
"""
__version__ = "0.1.0"


def run(config, **kwargs):
    from backtest.api import run as _run

    return _run(config, **kwargs)


def sweep(config, grids=None, **kwargs):
    from backtest.api import sweep as _sweep

    return _sweep(config, grids, **kwargs)
