"""The multi-collateral reference engine moved to ``backtest.reference.legs``; this name stays importable."""
from backtest.reference.legs import LEG_RECORD, LEG_SUMMARY, LegsReplay  # noqa: F401
