"""What the reference engine reads of a configuration: the resolved [strategy], [costs] and [market] values in
the config's own words (strategy "loop", slippage "stableswap", exit route "queue", no rebalance = None), not
the kernel's encoded row of codes and flags.

:meth:`Settings.of_config` reads a resolved :class:`~backtest.config_types.Config` (with the engine's defaults
for what the config leaves to the token: the withdrawal queue's delays); :meth:`Settings.of_params` decodes a
``PARAMS_DTYPE`` row (what the kernel gets; the tests build rows directly). Both give the same Settings for the
same configuration (tests/unit/test_reference_settings.py), so the reference replays a config the way the
kernel replays its row. The oracle mode and its CAPO parameters are the lane's (``backtest.engine.Lane``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

from backtest.schema import ENTRIES, EXIT_ROUTES, PROTOCOL_NAMES, SLIPPAGE, STRATEGIES
from backtest.venues import venue

def _name(table: Mapping[str, int], code) -> str:
    for name, c in table.items():
        if c == int(code):
            return name
    raise ValueError(f"unknown code {int(code)} (one of {dict(table)})")


@dataclass(frozen=True)
class Rebalance:
    """[strategy.rebalance]: check the HF every ``check_every`` seconds; below ``deleverage_below_hf`` sell
    back to ``target_hf``, above ``releverage_above_hf`` (inf: never) borrow back to it."""
    check_every: int
    deleverage_below_hf: float
    target_hf: float
    releverage_above_hf: float


@dataclass(frozen=True)
class Exit:
    """[strategy.exit]: leave when the market price over the exchange-rate value falls below ``depeg_below``,
    through the DEX or the withdrawal queue (which pays out ``queue_delay`` seconds later, or
    ``queue_delay_late`` when requested at or after ``queue_late_from``, if that is > 0)."""
    route: str
    depeg_below: float
    queue_delay: int
    queue_delay_late: int = 0
    queue_late_from: int = 0
    queue_frozen_from: int = 0       # [[scenario]] withdrawals_frozen: a request on [from, until) waits until `until`
    queue_frozen_until: int = 0


@dataclass(frozen=True)
class Costs:
    """[costs]: gas at ``gas_gwei`` (None: the lake's gas series) for the gas units of each action; the swap
    fee, the slippage model and its parameters; the flash-loan fee. Fractions, not bps (but slippage_bps)."""
    gas_gwei: float | None
    gas_open: float
    gas_loop: float
    gas_rebalance: float
    gas_close: float
    swap_fee: float
    slippage: str
    slippage_bps: float
    pool_depth: float
    amp: float
    flash_fee: float


@dataclass(frozen=True)
class Settings:
    """One configuration as the reference engine reads it."""
    protocol: str                    # market.protocol
    strategy: str                    # strategy.kind: hold | lend | loop | flash-loan
    entry: str                       # strategy.entry: swap | stake
    capital: float                   # in the debt asset
    target_ltv: float
    loops: int
    rebalance: Rebalance | None
    exit: Exit | None
    unwind_at_end: bool
    costs: Costs
    close_factor: float | None       # market.close_factor (the generic venue's; an Aave override), or None
    v33_from: int                    # when the Aave v3.3 liquidation rules start (epoch seconds)
    #: the venue's own per-configuration keys by their [market] names (Aave v4's Spoke: liquidation_bonus_factor,
    #: health_factor_for_max_bonus, target_health_factor, collateral_risk)
    venue: Mapping[str, float] = field(default_factory=dict)
    liquidation_delay: int = 0       # market.liquidation_delay: blocks HF stays below 1 before liquidators act
    liquidation_gas: float = 0.0     # market.liquidation_gas: > 0, liquidators size their repay for profit

    @property
    def levered(self) -> bool:
        """A strategy that borrows (loop, flash-loan): the one a rebalance acts on."""
        return self.strategy in ("loop", "flash-loan")

    @classmethod
    def of_params(cls, p) -> "Settings":
        """Decode a PARAMS_DTYPE row."""
        protocol = PROTOCOL_NAMES[int(p["protocol"])]
        reb = None
        if p["reb_on"]:
            reb = Rebalance(int(p["check_every"]), float(p["delev_below"]), float(p["target_hf"]),
                            float(p["relev_above"]))
        ex = None
        if p["exit_on"]:
            ex = Exit(_name(EXIT_ROUTES, p["exit_route"]), float(p["depeg_below"]), int(p["queue_delay"]),
                      int(p["queue_delay_late"]), int(p["queue_late_from"]), int(p["queue_frozen_from"]),
                      int(p["queue_frozen_until"]))
        gas = float(p["gas_gwei"])
        costs = Costs(None if math.isnan(gas) else gas, float(p["gas_open"]), float(p["gas_loop"]),
                      float(p["gas_reb"]), float(p["gas_close"]), float(p["swap_fee"]),
                      _name(SLIPPAGE, p["slip_model"]), float(p["slip_param"]), float(p["pool_depth"]),
                      float(p["amp"]), float(p["flash_fee"]))
        cf = float(p["cf_ovr"])
        fields = venue(protocol).params_fields
        return cls(protocol, _name(STRATEGIES, p["kind"]), _name(ENTRIES, p["entry"]), float(p["capital"]),
                   float(p["target_ltv"]), int(p["loops"]), reb, ex, bool(p["unwind_at_end"]), costs,
                   None if math.isnan(cf) else cf, int(p["v33_from"]),
                   {key: float(p[f]) for key, f in fields.items()}, int(p["liq_delay"]), float(p["liq_gas"]))

    @classmethod
    def of_config(cls, cfg) -> "Settings":
        """Read a resolved Config (the engine's defaults for the withdrawal queue: backtest.engine.queue_delays)."""
        from backtest.engine import queue_delays, queue_frozen

        st, co, mk = cfg.strategy, cfg.costs, cfg.market
        r = st.rebalance
        reb = None if r is None else Rebalance(
            int(r.check_every), float(r.deleverage_below_hf), float(r.target_hf),
            math.inf if r.releverage_above_hf is None else float(r.releverage_above_hf))
        ex = None
        if st.exit is not None:
            ex = Exit(st.exit.route, float(st.exit.depeg_below), *queue_delays(cfg), *queue_frozen(cfg))
        units = co.gas_units
        costs = Costs(None if co.gas == "data" else float(co.gas), float(units.get("open", 0.0)),
                      float(units.get("loop_step", 0.0)), float(units.get("rebalance", 0.0)),
                      float(units.get("close", 0.0)), float(co.swap_fee), co.slippage, float(co.slippage_bps),
                      float(co.pool_depth), float(co.amp), float(co.flash_fee))
        v = venue(mk.protocol)
        own = v.encode(mk) if v.encode is not None else {}
        return cls(mk.protocol, st.kind, st.entry, float(st.capital), float(st.target_ltv), int(st.loops), reb, ex,
                   bool(cfg.run.unwind_at_end), costs, None if mk.close_factor is None else float(mk.close_factor),
                   int(mk.v33_from), {key: float(own[f]) for key, f in v.params_fields.items()},
                   int(mk.liquidation_delay), float(mk.liquidation_gas))

