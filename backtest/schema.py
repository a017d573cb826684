"""Enums and numpy record dtypes shared by the Python side and the Cython core.

Each dtype here mirrors a packed C struct in ``ext/_types.pxd`` field for field (all fields are 8 bytes,
so there is no padding); ``tests/unit/test_schema.py`` asserts that the two agree.
"""
from __future__ import annotations

import numpy as np

SECONDS_PER_YEAR = 365 * 24 * 3600  # Aave MathUtils.SECONDS_PER_YEAR

# --- enums: small int codes with a Python mirror (must equal the values in ext/_types.pxd) -----------
PROTOCOLS = {"aave-v3": 0, "aave-v2": 1, "spark": 2, "morpho-blue": 3, "compound-v3": 4, "generic": 5,
             "aave-v4": 6}
PROTOCOL_NAMES = {v: k for k, v in PROTOCOLS.items()}
STRATEGIES = {"hold": 0, "lend": 1, "loop": 2, "flash-loan": 3,
              # the strategy book (ext/_book.pxi, backtest/reference_book.py): replayed by backtest.strategy_book
              "basket": 4, "lp": 5, "vault": 6, "farm": 7}
ENTRIES = {"swap": 0, "stake": 1}
SLIPPAGE = {"none": 0, "linear": 1, "stableswap": 2, "constant-product": 3}
EXIT_ROUTES = {"dex": 0, "queue": 1}
#: market.oracle: "exchange-rate" the bare exchange rate (fits only a debt in the collateral's underlying),
#: "market" the DEX price, "capo" Aave's CAPO (capped exchange rate x the underlying's price), "chainlink" the
#: lake's oracle_prices feed
ORACLE_CODES = {"exchange-rate": 0, "market": 1, "capo": 2, "chainlink": 3}
ORACLES = tuple(ORACLE_CODES)

#: the kinds the kernel emits (EV_* in ext/_types.pxd)
KERNEL_EVENT_KINDS = {
    "open": 0,
    "loop": 1,
    "rebalance": 2,
    "liquidation": 3,
    "bad_debt": 4,
    "exit": 5,
    "queue_release": 6,
    "unwind": 7,
    "slash": 8,             # the collateral token's exchange rate was cut (restaking slash), cost = value lost
    "reward_sale": 9,       # a farm sold its accrued reward tokens (coll = tokens sold, debt = proceeds)
}
#: kinds the kernel never emits: rows events.parquet derives in Python after the core (backtest/episodes.py
#: depeg_event_frame), numbered after the kernel's codes
DERIVED_EVENT_KINDS = {
    "depeg_start": 10,      # first block of a de-peg episode of episodes.parquet
    "depeg_end": 11,        # its last block (none while the episode is still on at the window's last block)
}
EVENT_KINDS = {**KERNEL_EVENT_KINDS, **DERIVED_EVENT_KINDS}
EVENT_NAMES = {v: k for k, v in EVENT_KINDS.items()}

#: every enum the kernel has (ext/_types.pxd), by the name backtest._core.enum_codes() gives it
KERNEL_ENUMS = {"protocol": PROTOCOLS, "kind": STRATEGIES, "entry": ENTRIES, "slippage": SLIPPAGE,
                "exit_route": EXIT_ROUTES, "oracle": ORACLE_CODES, "event": KERNEL_EVENT_KINDS}

# Per-configuration parameters (one row per configuration). Market-level overrides (ltv, LT, bonus, fee,
# rates) are applied to the aligned Market itself; only the close factor is a per-config override.
PARAMS_DTYPE = np.dtype(
    [
        ("protocol", "i8"),        # PROTOCOLS code
        ("kind", "i8"),            # STRATEGIES code
        ("entry", "i8"),           # ENTRIES code: how debt asset becomes collateral on every buy leg
        ("lane", "i8"),            # index of the market lane (oracle mode + LT/rate overrides)
        ("loops", "i8"),           # loop count for kind=loop
        ("slip_model", "i8"),      # SLIPPAGE code
        ("reb_on", "i8"),          # 1 if [strategy.rebalance] is set
        ("exit_on", "i8"),         # 1 if [strategy.exit] is set
        ("exit_route", "i8"),      # EXIT_ROUTES code
        ("check_every", "i8"),     # seconds between rebalance checks
        ("queue_delay", "i8"),     # seconds a queued withdrawal waits
        ("v33_from", "i8"),        # unix ts from which Aave v3.3 liquidation rules apply
        ("unwind_at_end", "i8"),   # 1: close the position through the DEX at the last block
        ("queue_delay_late", "i8"),  # seconds a queued withdrawal waits when requested at or after queue_late_from
        ("queue_late_from", "i8"),   # unix ts from which queue_delay_late applies; 0 = never (queue_delay only)
        ("capital", "f8"),         # debt-asset units put in at the start
        ("target_ltv", "f8"),      # LTV aimed at by loop / flash-loan
        ("delev_below", "f8"),     # deleverage when HF < this (inf-safe: 0 disables)
        ("target_hf", "f8"),       # HF to rebalance back to
        ("relev_above", "f8"),     # releverage when HF > this (inf disables)
        ("depeg_below", "f8"),     # exit when market/exchange-rate < this
        ("gas_gwei", "f8"),        # fixed gas price; NaN = the lake's gas series
        ("gas_open", "f8"),        # gas units
        ("gas_loop", "f8"),
        ("gas_reb", "f8"),
        ("gas_close", "f8"),
        ("swap_fee", "f8"),        # fraction of the notional
        ("slip_param", "f8"),      # linear: bps of slippage per unit of debt asset traded
        ("pool_depth", "f8"),      # stableswap / constant-product: pool balance per side, debt-asset units
        ("amp", "f8"),             # stableswap amplification A
        ("flash_fee", "f8"),       # fraction of the flash-loaned amount
        ("cf_ovr", "f8"),          # close factor override: a fixed fraction of debt per liquidation call
        # Aave v4's Spoke (backtest/venues/aave_v4.py; 0 for other venues): CF, max bonus and fee are the
        # market's lt, bonus and pfee
        ("v4_bonus_factor", "f8"),     # liquidationBonusFactor: minLB = 1 + max bonus x this
        ("v4_hf_max_bonus", "f8"),     # healthFactorForMaxBonus
        ("v4_target_hf", "f8"),        # targetHealthFactor a liquidation restores
        ("v4_collateral_risk", "f8"),  # the user risk premium (one collateral: its collateral risk)
        ("queue_frozen_from", "i8"),   # [[scenario]] withdrawals_frozen: a queue request in [from, until) waits
        ("queue_frozen_until", "i8"),  # until `until`, then its delay; 0, 0 = never frozen
        ("liq_delay", "i8"),           # blocks HF must stay below 1 before liquidators act (0 = at once)
        ("liq_gas", "f8"),             # gas units per liquidation: > 0, the liquidator sizes its repay for profit
    ]
)

SUMMARY_DTYPE = np.dtype(
    [
        ("end_equity", "f8"),            # equity at end, marked at market price, debt-asset units
        ("end_equity_rate", "f8"),       # same, collateral marked at the exchange rate
        ("net_apy", "f8"),
        ("net_apy_rate", "f8"),
        ("hold_end_equity", "f8"),       # the same capital held as the token (same entry costs)
        ("hold_apy", "f8"),
        ("staking_yield", "f8"),         # exchange-rate growth on collateral held, debt-asset units
        ("supply_yield", "f8"),          # aToken interest on the collateral, valued at the exchange rate
        ("interest_paid", "f8"),
        ("restaking_rewards", "f8"),     # reward value accrued on collateral tokens held (Market.reward), debt-asset
                                         # units; NOT in equity / net APY (reported beside them)
        ("gas_cost", "f8"),
        ("swap_fee_cost", "f8"),
        ("slippage_cost", "f8"),
        ("flash_fee_cost", "f8"),
        ("liq_count", "i8"),
        ("liq_debt_repaid", "f8"),
        ("liq_coll_seized", "f8"),       # collateral tokens taken from the borrower (incl. protocol fee)
        ("liq_coll_seized_value", "f8"), # at the oracle price, debt-asset units
        ("liq_penalty", "f8"),           # seized value - debt repaid
        ("liq_protocol_fee", "f8"),      # value of the protocol's cut (inside the penalty)
        ("bad_debt", "f8"),
        ("min_hf", "f8"),
        ("min_hf_idx", "i8"),            # block index (into the market clock) of min_hf; -1 if never borrowed
        ("blocks_below_105", "i8"),
        ("max_drawdown", "f8"),          # on metric samples (market mark)
        ("lev_sum", "f8"),               # sum of leverage over metric samples
        ("lev_n", "i8"),
        ("n_rebalances", "i8"),
        ("n_events", "i8"),
        ("events_dropped", "i8"),
        ("exit_idx", "i8"),              # block index of a de-peg exit, -1 if none
        ("end_collateral", "f8"),        # tokens
        ("end_debt", "f8"),
        ("end_cash", "f8"),
    ]
)

EVENT_DTYPE = np.dtype(
    [
        ("idx", "i8"),    # block index
        ("kind", "i8"),   # EVENT_KINDS code
        ("coll", "f8"),   # collateral change, tokens (negative = out of the position)
        ("debt", "f8"),   # debt change, debt-asset units (negative = repaid)
        ("cost", "f8"),   # costs / penalty of this event, debt-asset units
        ("hf", "f8"),     # health factor after the event (inf when no debt)
    ]
)

# time-series record fields, in order (the core writes a float64 row per sample)
RECORD_FIELDS = (
    "collateral", "debt", "cash", "hf", "ltv", "leverage", "oracle_price", "market_price",
    "exchange_rate", "equity", "equity_rate",
)
N_RECORD = len(RECORD_FIELDS)
