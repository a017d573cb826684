"""backtest: leverage-loop and liquidation backtester for liquid staking and restaking.

Python API: ``backtest.run(config)`` and ``backtest.sweep(config, grids)`` return polars DataFrames. They raise
the CLI's typed errors (``backtest.errors``): a ``ConfigError`` / ``DataError`` is also a ``ValueError``
(exit code 2 on the command line), a ``BacktestError`` any other failure (exit code 1).
"""
import sys as _sys
import types as _types

__version__ = "0.1.0"


def run(config, **kwargs):
    from backtest.api import run as _run

    return _run(config, **kwargs)


def sweep(config, grids=None, **kwargs):
    from backtest.api import sweep as _sweep

    return _sweep(config, grids, **kwargs)


_API = {"run": run, "sweep": sweep}


class _Package(_types.ModuleType):
    """The package module, keeping its API functions: importing the submodule ``backtest.sweep`` (which
    ``backtest.api`` does) makes the import system set the package attribute ``sweep`` to that module, and
    ``backtest.sweep(...)`` would then fail on every call after the first. The submodule stays importable
    with ``from backtest.sweep import ...`` and in ``sys.modules``."""

    def __setattr__(self, name, value):
        if name in _API and isinstance(value, _types.ModuleType):
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
