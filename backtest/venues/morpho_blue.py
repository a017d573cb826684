"""Morpho Blue (``morpho-blue``): one collateral, one loan asset, one oracle, one IRM and one LLTV per market.

Rules (PROTOCOLS.md "Morpho Blue"; morpho-org/morpho-blue src/Morpho.sol; the kernel's ext/_morpho.pxd):
unhealthy iff collateral x oracle x LLTV < debt; no close factor (the liquidator repays everything), seized =
repaid x LIF / price with LIF = min(1.15, 1 / (0.3 LLTV + 0.7)); no fee; collateral at zero writes the rest of
the debt off. Interest: wTaylorCompounded on the debt; collateral is not lent out and earns nothing.

Defaults (no E-mode; a market's LLTV never changes): the WETH markets PROTOCOLS.md lists, wstETH/WETH at LLTV
94.5 % and ezETH/WETH at 86 % (the 96.5 % wstETH and 77 % ezETH markets are picked with ``market.lltv``). The
entry is (0, LLTV, LLTV, LIF - 1, 0): borrowing stops at the LLTV, the bonus column carries the liquidation
incentive LIF - 1 for information (the engines compute the LIF from the LLTV), and there is no fee. Defaults
only for a WETH (or ETH) loan asset.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from backtest.errors import ConfigError
from backtest.venues.base import NO_EMODE, NO_PROTOCOL_FEE, NO_SUPPLY_RATE, Entry, Venue

MORPHO_WETH_LLTV = {"wstETH": 0.945, "ezETH": 0.86}


def morpho_lif(lltv: float) -> float:
    """Morpho Blue's liquidation incentive factor min(1.15, 1 / (0.3 LLTV + 0.7))."""
    return min(1.15, 1.0 / (1.0 - 0.3 * (1.0 - lltv)))


def morpho_entry(lltv: float) -> Entry:
    """A Morpho Blue market's parameters as an entry: ltv = lt = LLTV, bonus = LIF - 1, no fee."""
    return (0, lltv, lltv, morpho_lif(lltv) - 1.0, 0.0)


#: one LLTV (the market's lt, = ltv); the liquidation incentive factor LIF = 1 + the bonus column (information:
#: the engines compute it from the LLTV)
RISK_FIELDS = {"lltv": lambda m: m.lt, "liquidation_incentive_factor": lambda m: 1.0 + m.bonus}


def _param_overrides(req: Any) -> dict[str, float | None]:
    """market.lltv fixes ltv = lt = LLTV, the bonus LIF - 1 and no fee (None: the lake's / default LLTV)."""
    v = req.lltv
    return {"ltv": v, "lt": v, "bonus": None if v is None else morpho_lif(v) - 1.0, "pfee": None if v is None else 0.0}


def _derive_params(par: dict) -> None:
    """One LLTV (the lake's / default liquidation_threshold): borrowing stops where liquidation starts."""
    import numpy as np

    par["ltv"] = par["lt"].copy()
    par["bonus"] = np.minimum(1.15, 1.0 / (1.0 - 0.3 * (1.0 - par["lt"]))) - 1.0
    par["pfee"] = np.zeros(len(par["lt"]))


def _defaults(asset: str, emode: str | None, debt: str) -> list[Entry] | None:
    em = emode.lower() if isinstance(emode, str) else None
    if em is None and debt in ("WETH", "ETH") and asset in MORPHO_WETH_LLTV:
        return [morpho_entry(MORPHO_WETH_LLTV[asset])]
    return None


# ---------------------------------------------------------------------------------------------- config
KEYS = ("lltv", "irm", "utilization", "rate_at_target")
REFUSALS = {
    "emode": NO_EMODE,
    "ltv": "a morpho-blue market has one LLTV for borrowing and liquidation: set market.lltv",
    "liquidation_threshold": "a morpho-blue market has one LLTV for borrowing and liquidation: set market.lltv",
    "liquidation_bonus": ("morpho-blue's liquidation incentive follows from the LLTV "
                          "(LIF = min(1.15, 1 / (0.3 LLTV + 0.7))); remove it"),
    "liquidation_protocol_fee": NO_PROTOCOL_FEE,
    "close_factor": "morpho-blue has no close factor: a liquidator may repay all the debt",
    "supply_rate": NO_SUPPLY_RATE,
}
_ADAPTIVE_CURVE_KEY = ("{key} belongs to Morpho Blue's AdaptiveCurveIRM (market.protocol = \"morpho-blue\", "
                       "market.irm = \"adaptive-curve\"); {protocol} reads its borrow rate from the lake or "
                       "market.borrow_rate")
MEANINGS = {
    "lltv": ("lltv is the liquidation LTV of a morpho-blue market; with {p} set market.ltv and "
             "market.liquidation_threshold"),
    "irm": _ADAPTIVE_CURVE_KEY,
    "utilization": _ADAPTIVE_CURVE_KEY,
    "rate_at_target": _ADAPTIVE_CURVE_KEY,
}


def _rules(ctx: Any, protocol: str, m: dict, table: Mapping, refuse: Callable[[], None]) -> None:
    """No E-mode; the AdaptiveCurveIRM computes the borrow rate, its keys need it."""
    refuse()
    m["emode"] = None
    irm = m.get("irm", "data")
    if irm == "adaptive-curve" and "borrow_rate" in table:
        raise ctx.fail(("market", "borrow_rate"), 'conflicts with market.irm = "adaptive-curve", which computes '
                                                  "the borrow rate from the utilisation: remove one",
                       table["borrow_rate"])
    if irm == "data":
        for key in ("utilization", "rate_at_target"):
            if key in table:
                raise ctx.fail(("market", key), 'only used with market.irm = "adaptive-curve"', table[key])


def _target_ltv_rule(ctx: Any, market: Any, target: float, strat_t: Mapping) -> None:
    """A morpho-blue position opens below the market's LLTV."""
    if market.lltv is not None and target >= market.lltv:
        raise ctx.fail(("strategy", "target_ltv"),
                       f"must be below market.lltv ({market.lltv:g}): the position would open liquidatable",
                       strat_t.get("target_ltv", target))


def check_target(cfg: Any, market: Any, coll: str) -> None:
    """One LLTV: the borrow limit and the liquidation line are the same number."""
    st, mk = cfg.strategy, cfg.market
    if st.kind not in ("loop", "flash-loan"):
        return
    lt0 = float(market.lt[0])
    if st.target_ltv >= lt0:
        raise ConfigError(
            f"strategy.target_ltv = {st.target_ltv} is at or above the LLTV {lt0:g} of the morpho-blue "
            f"{coll}/{mk.debt} market: the position would open liquidatable; lower it or pick "
            f"another market (market.lltv)"
        )


MORPHO_BLUE = Venue("morpho-blue", takes=KEYS, refusals=REFUSALS, meanings=MEANINGS, rules=_rules,
                    target_ltv_rule=_target_ltv_rule, defaults=_defaults, default_keys="market.lltv",
                    defaults_by_debt=True, supply_yield=False, growth=("none", "taylor"),
                    check_target=check_target, liquidation="morpho", param_overrides=_param_overrides,
                    derive_params=_derive_params, risk_fields=RISK_FIELDS,
                    one_collateral=("a Morpho Blue market has one collateral token (MarketParams.collateralToken): "
                                    "one [[strategy.collateral]] only; run one config per market instead"))
VENUES = (MORPHO_BLUE,)
