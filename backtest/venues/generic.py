"""The generic venue (``generic``): a lending market configured by hand, on any chain.

Rules: Aave v2's liquidation (the kernel's ext/_aave.pxd) with the close factor and the protocol fee from the
config; Aave's index math (linear supply, binomial borrow). There are no defaults: ltv, liquidation_threshold,
liquidation_bonus, close_factor and liquidation_protocol_fee are required keys.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from backtest.venues.aave_v3 import check_target
from backtest.venues.base import NO_EMODE, Venue

KEYS = ("ltv", "liquidation_threshold", "liquidation_bonus", "liquidation_protocol_fee", "close_factor",
        "supply_rate")
REQUIRED = ("ltv", "liquidation_threshold", "liquidation_bonus", "close_factor", "liquidation_protocol_fee")


def _rules(ctx: Any, protocol: str, m: dict, table: Mapping, refuse: Callable[[], None]) -> None:
    """No E-mode; the risk parameters are required, there is no lake to default them from."""
    refuse()
    m["emode"] = None
    for key in REQUIRED:
        if key not in table:
            raise ctx.fail(("market", key), "missing required key in [market]: a generic venue takes ltv, "
                                            "liquidation_threshold, liquidation_bonus, close_factor and "
                                            "liquidation_protocol_fee from the config")


GENERIC = Venue("generic", takes=KEYS, refusals={"emode": NO_EMODE}, rules=_rules, chains=None,
                check_target=check_target, requires_close_factor=True)
VENUES = (GENERIC,)
