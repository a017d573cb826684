"""Compound III (``compound-v3``, Comet): one base (borrowable) asset per market, collateral that is not lent out.

Rules (PROTOCOLS.md "Compound III"; compound-finance/comet contracts/Comet.sol; the kernel's ext/_comet.pxd):
liquidatable when collateral x price x liquidate collateral factor < debt; absorb() takes all the collateral and
credits the borrower value x liquidation factor; a shortfall is the reserves' (bad debt), an excess the
borrower's supplied base asset. Interest: the base borrow index grows linearly per accrual; collateral earns
nothing. ``market.ltv`` / ``market.liquidation_threshold`` are its borrow / liquidate collateral factors and the
market's ``bonus`` column holds 1 - liquidation factor (the absorb penalty).

Defaults: the WETH market (cWETHv3) at launch (PROTOCOLS.md): wstETH and cbETH borrow CF 0.90, liquidate CF
0.93, liquidation factor 0.95; weETH 0.82 / 0.87 / 0.92. The entry is (0, borrow CF, liquidate CF,
1 - liquidation factor, 0). Defaults only for the WETH base market.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from backtest.errors import DataError
from backtest.venues.aave_v3 import check_target
from backtest.venues.base import NO_EMODE, NO_PROTOCOL_FEE, NO_SUPPLY_RATE, Entry, Venue

COMET_WETH: dict[str, tuple[float, float, float]] = {     # asset -> (borrow CF, liquidate CF, liquidation factor)
    "wstETH": (0.90, 0.93, 0.95),
    "cbETH": (0.90, 0.93, 0.95),
    "weETH": (0.82, 0.87, 0.92),
}


def _defaults(asset: str, emode: str | None, debt: str) -> list[Entry] | None:
    em = emode.lower() if isinstance(emode, str) else None
    if em is None and debt in ("WETH", "ETH") and asset in COMET_WETH:
        bcf, lcf, lf = COMET_WETH[asset]
        return [(0, bcf, lcf, 1.0 - lf, 0.0)]
    return None


# ---------------------------------------------------------------------------------------------- config
KEYS = ("ltv", "liquidation_threshold", "liquidation_factor")
REFUSALS = {
    "emode": NO_EMODE,
    "liquidation_bonus": ("compound-v3 has no liquidation bonus: absorb() credits the collateral's value x "
                          "market.liquidation_factor"),
    "liquidation_protocol_fee": NO_PROTOCOL_FEE,
    "close_factor": "compound-v3 has no close factor: absorb() takes the whole position",
    "supply_rate": NO_SUPPLY_RATE,
}
MEANINGS = {
    "liquidation_factor": ("liquidation_factor is a compound-v3 parameter (the share of the collateral's value "
                           "absorb() credits); with {p} use market.liquidation_bonus"),
}


def _rules(ctx: Any, protocol: str, m: dict, table: Mapping, refuse: Callable[[], None]) -> None:
    """No E-mode, no bonus, no close factor (market.ltv and market.liquidation_threshold are its borrow and
    liquidate collateral factors)."""
    refuse()
    m["emode"] = None


def _param_overrides(req: Any) -> dict[str, float | None]:
    """ltv = borrow CF, lt = liquidate CF, bonus = 1 - liquidation_factor (the absorb penalty), no fee."""
    lf = req.liquidation_factor
    return {"ltv": req.ltv, "lt": req.liquidation_threshold, "bonus": None if lf is None else 1.0 - lf, "pfee": 0.0}


#: the market's ltv and lt are the borrow and liquidate collateral factors, its bonus column 1 - liquidation factor
RISK_FIELDS = {
    "borrow_collateral_factor": lambda m: m.ltv,
    "liquidate_collateral_factor": lambda m: m.lt,
    "liquidation_factor": lambda m: 1.0 - m.bonus,           # the share of the value absorb() credits
}


def _check_market(market: Any) -> None:
    if not np.all((market.bonus >= 0) & (market.bonus < 1)):
        raise DataError("market_params: the compound-v3 liquidation factor (1 - liquidation_bonus) must be in "
                        "(0, 1] at every block")


COMPOUND_V3 = Venue("compound-v3", takes=KEYS, refusals=REFUSALS, meanings=MEANINGS, rules=_rules,
                    defaults=_defaults, default_keys="market.ltv / liquidation_threshold / liquidation_factor",
                    defaults_by_debt=True, supply_yield=False, growth=("none", "linear"),
                    check_target=check_target, check_market=_check_market, liquidation="comet",
                    param_overrides=_param_overrides, ltv_name="borrow collateral factor", risk_fields=RISK_FIELDS)
VENUES = (COMPOUND_V3,)
