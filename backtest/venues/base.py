"""What a venue is to the rest of the program: the :class:`Venue` record every venue module fills in, and the
pieces venues share (dated defaults, key refusals).

A venue module (``aave_v3``, ``morpho_blue``, ``compound_v3``, ``generic``, ``aave_v4``) holds everything
specific to its protocol(s) outside the kernel: the [market] keys it takes and what it says about the ones it
does not, its config rules, its dated default risk parameters, the market series it needs, its checks against
the aligned market, its rate model and the name of its liquidation rule in the engines. The registry
(``backtest.venues``) maps ``market.protocol`` to its Venue.

This layer imports no other layer of the package (only ``backtest.errors``): the config, the data alignment, the
engine and the reference engine all ask it. Config rules receive the config's ``Context`` and call its
``fail``; nothing here imports the config module.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

Entry = tuple[int, float, float, float, float]   # (ts, ltv, liquidation_threshold, liquidation_bonus, protocol_fee)
NEVER = 2 ** 62                  # an int64 time no block reaches: "these rules never apply"

#: the [market] keys that only some venues take, in the order they are checked (a venue that does not take one
#: refuses it in its own words, or else says what the key means on the venue that takes it)
VENUE_KEYS = ("emode", "ltv", "liquidation_threshold", "liquidation_bonus", "liquidation_protocol_fee",
              "close_factor", "supply_rate", "v33_from", "lltv", "liquidation_factor", "irm", "utilization",
              "rate_at_target")
# refusals several venues share ({protocol} is the venue, {p} its market.protocol line, {key} the key)
NO_EMODE = "{protocol} has no E-mode; remove market.emode"
NO_PROTOCOL_FEE = "{protocol} takes no liquidation protocol fee; remove it"
NO_SUPPLY_RATE = "collateral on {protocol} is not lent out and earns no interest; remove it"

# growth of the reserve indices per accrual (ext/_rates.pxd, reference.index_growth)
SUPPLY_GROWTH = ("linear", "none")                   # Aave's liquidity index | collateral earns nothing
BORROW_GROWTH = ("binomial", "taylor", "linear")     # Aave's 3-term binomial | Morpho's wTaylorCompounded |
                                                     # simple interest per accrual (Comet, Aave v4's drawn index)


def utc_date(date: str) -> int:
    """UTC midnight of an ISO date as epoch seconds."""
    d = _dt.date.fromisoformat(date)
    return int(_dt.datetime(d.year, d.month, d.day, tzinfo=_dt.timezone.utc).timestamp())


def _no_rules(ctx: Any, protocol: str, m: dict, table: Mapping, refuse: Callable[[], None]) -> None:
    refuse()


def _no_defaults(asset: str, emode: str | None, debt: str) -> list[Entry] | None:
    return None


def _no_check(cfg: Any, market: Any, coll: str) -> None:
    return None


#: the Aave family's (and the generic venue's) risk parameters, named, from the market's arrays (ltv, lt, bonus,
#: pfee: the kernel's four columns, whose meaning is the venue's)
AAVE_RISK_FIELDS: Mapping[str, Callable[[Any], Any]] = {
    "ltv": lambda m: m.ltv,
    "liquidation_threshold": lambda m: m.lt,
    "liquidation_bonus": lambda m: m.bonus,                  # a fraction: LB = 1 + bonus
    "liquidation_protocol_fee": lambda m: m.pfee,            # the protocol's share of the bonus
}


def aave_param_overrides(req: Any) -> dict[str, float | None]:
    """The Aave family's (and the generic venue's) risk constants from the [market] keys: each of ltv,
    liquidation_threshold, liquidation_bonus, liquidation_protocol_fee optional (None: read the lake / defaults)."""
    return {"ltv": req.ltv, "lt": req.liquidation_threshold, "bonus": req.liquidation_bonus,
            "pfee": req.liquidation_protocol_fee}


@dataclass(frozen=True)
class Venue:
    """One ``market.protocol``: what the config, the data alignment, the engines and the sweep need to know."""
    protocol: str
    #: of VENUE_KEYS, the ones this venue takes
    takes: tuple[str, ...]
    #: key -> message when this venue is given a key it does not take (default: what the key means elsewhere)
    refusals: Mapping[str, str] = field(default_factory=dict)
    #: key -> what this venue's own key means, told to a venue that does not take it
    meanings: Mapping[str, str] = field(default_factory=dict)
    #: the venue's own [market] keys no other venue has: key -> (meaning, default); kept in MarketConfig.venue
    own_keys: Mapping[str, tuple[str, float]] = field(default_factory=dict)
    #: of own_keys, those that are per-configuration parameters (Params fields) rather than series of the aligned
    #: market: configurations differing only in them share one aligned market (sweep.market_key)
    per_config_keys: tuple[str, ...] = ()
    #: config rules after the keys are parsed: (ctx, protocol, parsed keys, table as written, refuse) -> None,
    #: calling refuse() where the venue refuses the keys it does not take; may set keys (emode = None,
    #: v33_from, the resolved risk parameters)
    rules: Callable[[Any, str, dict, Mapping, Callable[[], None]], None] = _no_rules
    #: strategy.target_ltv against this venue's own limit: (ctx, market config, target, strategy table)
    target_ltv_rule: Callable[[Any, Any, float, Mapping], None] | None = None
    #: the venue's risk parameters by their own names, each from the aligned market's four columns (ltv, lt, bonus,
    #: pfee): name -> (market) -> array (backtest.venues.risk_parameters; what the reference engine reads)
    risk_fields: Mapping[str, Callable[[Any], Any]] = field(default_factory=lambda: dict(AAVE_RISK_FIELDS))
    #: what the venue calls the borrow limit market.ltv sets, in messages
    ltv_name: str = "max LTV"
    #: chains it runs on (None: any chain)
    chains: tuple[str, ...] | None = ("ethereum",)
    #: dated default parameters: (collateral asset, emode, debt asset) -> entries, or None when unknown
    defaults: Callable[[str, str | None, str], list[Entry] | None] = _no_defaults
    #: the config keys that replace missing defaults, for the message
    default_keys: str = "market.ltv / liquidation_threshold / liquidation_bonus / liquidation_protocol_fee"
    #: whether the defaults depend on the debt asset (the message then names it)
    defaults_by_debt: bool = False
    #: follows Aave v3.3's liquidation rules from market.v33_from (its USD thresholds need Market.eth_usd there)
    v33: bool = False
    #: an Aave-family liquidation's fixed close factor (Aave v2: 50 %), or None: 50 % / 100 % by the HF (v3)
    close_factor: float | None = None
    #: an Aave-family liquidation pays the reserve's liquidation protocol fee out of the bonus (not Aave v2)
    protocol_fee: bool = True
    #: the close factor comes from the config only (market.close_factor required: the generic venue)
    requires_close_factor: bool = False
    #: collateral is lent out and earns the reserve's supply rate (the supply_apr series is read)
    supply_yield: bool = True
    #: the market key picks an E-mode (emode is part of the market_params key)
    emode: bool = False
    #: the risk constants the request's [market] keys fix: (MarketRequest) -> {"ltv", "lt", "bonus", "pfee": value,
    #: or None to read market_params / the defaults} (the data build's arrays of those names)
    param_overrides: Callable[[Any], dict[str, float | None]] = aave_param_overrides
    #: the risk arrays derived from others after the read, in place: ({"ltv", "lt", "bonus", "pfee": array}) ->
    #: None (Morpho Blue: borrowing stops at the LLTV, the bonus is LIF - 1, no fee), or None
    derive_params: Callable[[dict], None] | None = None
    #: rate model: (supply index growth, borrow index growth), from SUPPLY_GROWTH / BORROW_GROWTH
    growth: tuple[str, str] = ("linear", "binomial")
    #: USD per debt-asset unit (Market.eth_usd) at every block of the window, not only after v33_from
    needs_usd: bool = False
    #: the start-of-run checks of strategy.target_ltv against the aligned risk parameters:
    #: (config, market, collateral token) -> None, raising ConfigError
    check_target: Callable[[Any, Any, str], None] = _no_check
    #: checks of the aligned market once per market: (market) -> None, raising DataError
    check_market: Callable[[Any], None] | None = None
    #: the reference engine's liquidation rule: "aave" (Aave v3 / v2, Spark, generic), "morpho", "comet" (its
    #: methods), or the venue's own step (replay, block) -> None (Aave v4: aave_v4.reference_liquidation); the
    #: kernel dispatches on the protocol code (ext/_venues.pxd)
    liquidation: str | Callable[[Any, int], None] = "aave"
    #: why the venue takes one collateral leg only ([[strategy.collateral]]), or "" (several are modelled)
    one_collateral: str = ""
    #: the debt carries a premium on shares (Aave v4): the reference keeps a PremiumDebtPosition
    premium_debt: bool = False
    #: Params fields of the venue's own keys: (MarketConfig) -> {field: value}
    encode: Callable[[Any], dict[str, float]] | None = None
    #: of own_keys, the per-configuration ones -> their Params field (what the reference engine reads by name)
    params_fields: Mapping[str, str] = field(default_factory=dict)

    def problems(self) -> Sequence[str]:
        """Inconsistencies of the record itself (tests/unit/test_venue_registry.py)."""
        out = [k for k in self.takes if k not in VENUE_KEYS]
        if self.growth[0] not in SUPPLY_GROWTH or self.growth[1] not in BORROW_GROWTH:
            out.append(f"growth {self.growth}")
        if (self.growth[0] == "none") == self.supply_yield:
            out.append("supply_yield and growth disagree")
        return out
