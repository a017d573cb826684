"""The reference engine: the replay semantics in plain Python, slow, readable, the spec the Cython core must match.

One configuration, one block at a time, in the order of DESIGN.md section 5:
  1. read the aligned market state at block b;
  2. accrue interest since b-1 with the protocol's own index math, applied every block as the reserve is
     touched every block: Aave family and generic: per-second 3-term binomial on the variable borrow index,
     linear supply index; Morpho Blue: wTaylorCompounded x + x^2/2 + x^3/6 on the debt, collateral earns
     nothing; Compound III: linear borrow index per accrual, collateral earns nothing;
  3. price the collateral with the market's oracle mode;
  4. liquidation while HF < 1, per venue: Aave (close factor, bonus, protocol fee, v3.3 dust and deficit
     rules), generic (Aave v2 with the configured close factor and fee), Morpho Blue (no close factor, LIF from
     the LLTV, bad debt written off), Compound III (absorb with the liquidation factor);
  5. the strategy acts (open at the first block, queue release, de-peg exit, rebalance), paying gas,
     swap fee, slippage and flash-loan fees;
  6. record (time-series samples at the record blocks; metric samples every ``metric_every`` blocks).

Restaking (market-level, prepared by align): ``Market.reward`` is the cumulative reward value per collateral
token held, accrued in step 2 on the tokens held over (b-1, b] into ``restaking_rewards`` (not into equity);
``Market.slash[b]`` is the fraction the exchange rate was cut at b (already in ``xrate``): after step 2 a
configuration holding tokens records a ``slash`` event; the hold benchmark is bought and marked with
``Market.hold_price`` / ``hold_xrate`` (the base LST); a queued withdrawal requested at or after
``queue_late_from`` (when > 0) waits ``queue_delay_late`` instead of ``queue_delay``.

Unlike the core, this engine keeps *actual* balances and multiplies them by each block's growth factor,
computes every oracle price itself and evaluates the health factor from balances, so the differential test
compares two independent implementations of one semantics. All amounts are in units of the debt asset
(WETH, USDC, ...) except collateral, which is in collateral tokens. The exchange rate is underlying per token: a
value in the debt asset is xrate x ``Market.underlying_price`` (1.0 for a WETH debt, ETH/USDC for a USDC debt),
and gas (gwei of the chain's gas token) is converted at ``Market.gas_token_price``.

The engine reads a configuration's resolved values (``settings.Settings``: strategy "loop", exit route "queue",
no rebalance = None) and the aligned market, its risk parameters by the venue's own names
(``backtest.venues.risk_parameters``); every venue-specific rule comes from the venue's registry record.

The package, along the steps: ``settings`` (the configuration as the engine reads it), ``state`` (constants,
the position, the block loop), ``rates`` (step 2: index growth by the venue's rate model; the AdaptiveCurveIRM
of ``backtest.irm``), ``liquidation`` (step 4 per venue), ``costs`` (swap quotes, slippage, gas),
``strategy`` (step 5), ``replay`` (one collateral: market views, accrual, records, the summary;
:func:`run_reference`) and ``legs`` (several collateral legs against one debt). The names below are the
public interface, importable from ``backtest.reference`` as before the split.
"""
from __future__ import annotations

from backtest.reference.costs import Trading, slippage_fraction, stableswap_out
from backtest.reference.liquidation import (
    CLOSE_FACTOR_HF_THRESHOLD,
    MAX_LIQUIDATIONS_PER_BLOCK,
    MIN_BASE_MAX_CLOSE_FACTOR_USD,
    MIN_LEFTOVER_USD,
    Liquidation,
    aave_liquidation_size,
    morpho_lif,
)
from backtest.reference.rates import (
    BORROW_GROWTH,
    IRM_INITIAL_RT,
    IRM_MAX_RT,
    IRM_MIN_RT,
    IRM_SPEED,
    IRM_STEEPNESS,
    IRM_TARGET_U,
    aave_borrow_growth,
    aave_supply_growth,
    adaptive_curve_rates,
    index_growth,
    irm_curve,
    irm_err,
    irm_new_rate_at_target,
    irm_step,
    linear_growth,
    morpho_borrow_growth,
    supply_increment,
)
from backtest.reference.replay import Replay, run_reference, run_reference_paths
from backtest.reference.state import (
    DUST_REL,
    FIXED_POINT_ITERS,
    INF,
    Y,
    BlockLoop,
    Position,
    PremiumDebtPosition,
    Result,
    annualise,
    new_summary,
)
from backtest.reference.settings import Costs, Exit, Rebalance, Settings
from backtest.reference.strategy import Strategy
from backtest.schema import (  # noqa: F401  (re-exported as before the split)
    ENTRIES,
    EVENT_KINDS,
    EXIT_ROUTES,
    N_RECORD,
    PROTOCOL_NAMES,
    PROTOCOLS,
    SECONDS_PER_YEAR,
    SLIPPAGE,
    STRATEGIES,
    SUMMARY_DTYPE,
)
