"""Dated default risk parameters: where the data alignment and the synthetic lakes read them.

The defaults themselves, with their sources, live in each venue's module (``backtest.venues.aave_v3`` for the
Aave family, ``morpho_blue``, ``compound_v3``, ``aave_v4``); this module is the registry's lookup under the name
the data layer imports (``default_params``, ``params_at``, ``morpho_lif``, ``v33_from``). Each entry is
``(ts, ltv, liquidation_threshold, liquidation_bonus, protocol_fee)``: the values in force from ``ts`` (UTC epoch
seconds; 0 = "from the beginning of the data") until the next entry.
"""
from __future__ import annotations

from backtest.venues import NEVER, Entry, default_params, params_at, v33_from
from backtest.venues.aave_v3 import AAVE_V33_FROM, V33_FROM
from backtest.venues.morpho_blue import morpho_entry, morpho_lif

__all__ = ["Entry", "NEVER", "AAVE_V33_FROM", "V33_FROM", "default_params", "params_at", "v33_from", "morpho_lif",
           "morpho_entry"]
