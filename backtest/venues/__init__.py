"""The venue registry: ``market.protocol`` -> its :class:`~backtest.venues.base.Venue`.

One module per venue holds what is specific to it outside the kernel (its [market] keys and messages, rules,
dated defaults, the series it needs, its checks, its rate model, its liquidation rule's name in the engines):
``aave_v3`` (Aave v3, Aave v2, Spark), ``morpho_blue``, ``compound_v3``, ``generic`` and ``aave_v4`` (whose
module also holds its rules in plain Python, the spec of ext/venues/_aave_v4.pxd). The config, the engine,
the reference engine and the sweep ask this registry; each kernel venue has one header in ext/ and one
dispatch line in ext/_venues.pxd.

A new venue: a module here with its Venue record(s) in ``VENUES`` (found by :func:`_discover`), its code in
``backtest.schema.PROTOCOLS`` and ext/_types.pxd (with any Params fields of its own), its kernel header in
ext/venues/ and its dispatch line (and name) in ext/_venues.pxd.
"""
from __future__ import annotations

import datetime as _dt
import importlib
import pkgutil
from typing import Any, Mapping

from backtest.errors import DataError
from backtest.schema import PROTOCOLS as _CODES
from backtest.venues import aave_v3
from backtest.venues.base import BORROW_GROWTH, NEVER, SUPPLY_GROWTH, VENUE_KEYS, Entry, Venue


def _discover() -> dict[str, Venue]:
    """Every module of this package with a ``VENUES`` tuple (a new venue is a new module: nothing to list
    here), ordered by the protocol codes of backtest.schema; a venue without a code, or a code without a
    venue, is an error at import."""
    found: dict[str, Venue] = {}
    for info in pkgutil.iter_modules(__path__):
        mod = importlib.import_module(f"{__name__}.{info.name}")
        for v in getattr(mod, "VENUES", ()):
            found[v.protocol] = v
    if set(found) != set(_CODES):
        raise ImportError(f"venue modules {sorted(found)} do not match backtest.schema.PROTOCOLS {sorted(_CODES)}")
    return {p: found[p] for p in sorted(found, key=_CODES.__getitem__)}


#: market.protocol -> its Venue, in the order of backtest.schema.PROTOCOLS
REGISTRY: dict[str, Venue] = _discover()
PROTOCOLS = tuple(REGISTRY)
#: every venue's own keys (the [market] keys only one venue takes): key -> (meaning, default)
OWN_KEYS: dict[str, tuple[str, float]] = {k: kv for v in REGISTRY.values() for k, kv in v.own_keys.items()}
#: the keys a venue may refuse, in the order they are checked: the shared ones, then each venue's own
REFUSABLE = VENUE_KEYS + tuple(OWN_KEYS)
#: key -> what it means on the venue that takes it, told to a venue that does not
MEANINGS: dict[str, str] = {k: s for v in REGISTRY.values() for k, s in v.meanings.items()}


def venue(protocol: str) -> Venue:
    """The Venue of ``market.protocol`` (KeyError for a name the config would have refused)."""
    return REGISTRY[protocol]


def chain_protocols(chain: str) -> tuple[str, ...]:
    """The venues that run on ``chain``."""
    return tuple(p for p, v in REGISTRY.items() if v.chains is None or chain in v.chains)


def market_rules(ctx: Any, protocol: str, m: dict, table: Mapping) -> None:
    """The venue's own config rules on the parsed [market] keys: what it refuses and what it implies."""
    v = venue(protocol)

    def refuse() -> None:
        for key in REFUSABLE:
            if key in table and key not in v.takes and key not in v.own_keys:
                if key == "emode" and m.get("emode") is None:
                    continue                       # emode = "none" is harmless anywhere
                why = v.refusals.get(key) or MEANINGS[key]
                raise ctx.fail(("market", key), why.format(protocol=protocol, p=f'market.protocol = "{protocol}"',
                                                           key=key), table[key])

    v.rules(ctx, protocol, m, table, refuse)


def growth_codes(protocol: str) -> tuple[int, int]:
    """The kernel's codes of ``protocol``'s rate model (supply, borrow): the positions of Venue.growth's names in
    SUPPLY_GROWTH / BORROW_GROWTH (ext/_rates.pxd; tests/unit/test_schema.py checks the kernel agrees)."""
    supply, borrow = venue(protocol).growth
    return SUPPLY_GROWTH.index(supply), BORROW_GROWTH.index(borrow)


def supply_yield(protocol: str) -> bool:
    """Whether collateral on ``protocol`` is lent out and earns the reserve's supply rate."""
    return venue(protocol).supply_yield


def no_supply_yield() -> tuple[str, ...]:
    """The venues whose collateral earns nothing (their supply index stays 1; no supply_apr series is read)."""
    return tuple(p for p, v in REGISTRY.items() if not v.supply_yield)


def v33_from(protocol: str) -> int:
    """When ``protocol`` adopted Aave v3.3's liquidation rules (epoch seconds), or NEVER."""
    return aave_v3.v33_from(protocol)


def default_params(protocol: str, asset: str, emode: str | None, debt: str = "WETH") -> list[Entry]:
    """The dated default parameters of ``asset`` as collateral on ``protocol`` in E-mode ``emode`` (against
    the loan asset ``debt``, which picks the Morpho Blue / Compound III market).

    Returns a list of ``(ts, ltv, lt, bonus, protocol_fee)`` sorted by ts. Raises DataError naming the
    protocol, asset and E-mode when no defaults are known (the lake must then hold ``market_params`` or the
    config must override them).
    """
    v = REGISTRY.get(protocol)
    entries = v.defaults(asset, emode, debt) if v is not None else None
    if entries is None:
        keys = v.default_keys if v is not None else Venue(protocol, ()).default_keys
        market = f" debt={debt!r}" if v is not None and v.defaults_by_debt else ""
        raise DataError(
            f"no default market parameters for protocol={protocol!r} asset={asset!r} emode={emode!r}{market}: "
            f"add market_params rows to the lake or set {keys} in the config"
        )
    return list(entries)


def params_at(protocol: str, asset: str, emode: str | None, ts: int, debt: str = "WETH") -> Entry:
    """The default entry in force at ``ts``; DataError if the defaults start after ``ts``."""
    entries = default_params(protocol, asset, emode, debt)
    current = None
    for e in entries:
        if e[0] <= ts:
            current = e
    if current is None:
        start = _dt.datetime.fromtimestamp(entries[0][0], _dt.timezone.utc).date().isoformat()
        raise DataError(
            f"default market parameters for protocol={protocol!r} asset={asset!r} emode={emode!r} "
            f"start on {start}, after the requested time"
        )
    return current


class RiskParameters(Mapping):
    """A venue's risk parameters over one aligned market, by the venue's own names (Compound III's
    liquidation_factor, Morpho Blue's lltv, Aave's liquidation_bonus, ...): name -> per-block array."""

    def __init__(self, protocol: str, market: Any):
        self.protocol = protocol
        self._arrays = {name: get(market) for name, get in venue(protocol).risk_fields.items()}

    def __getitem__(self, name: str):
        try:
            return self._arrays[name]
        except KeyError:
            raise KeyError(f"{self.protocol} has no risk parameter {name!r}; it has {', '.join(self._arrays)}") from None

    def __iter__(self):
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)


def risk_parameters(protocol: str, market: Any) -> RiskParameters:
    """``market``'s risk parameters as ``protocol`` names them (Venue.risk_fields)."""
    return RiskParameters(protocol, market)


def check_target(cfg: Any, market: Any, coll: str) -> None:
    """strategy.target_ltv against the venue's limits in force at the start (ConfigError)."""
    venue(cfg.market.protocol).check_target(cfg, market, coll)


__all__ = ["REGISTRY", "PROTOCOLS", "Venue", "Entry", "NEVER", "venue", "chain_protocols", "market_rules",
           "supply_yield", "no_supply_yield", "v33_from", "default_params", "params_at", "check_target",
           "RiskParameters", "risk_parameters", "growth_codes"]
