# Enums and packed structs of the replay core. Each struct mirrors a numpy dtype in backtest/schema.py
# field for field (all fields 8 bytes wide, so packing adds no padding); tests/unit/test_schema.py checks.
from libc.stdint cimport int64_t

cdef enum:
    PROTO_AAVE_V3 = 0       # Aave v3 (v3.0-3.2 rules; v3.3 from Params.v33_from)
    PROTO_AAVE_V2 = 1       # Aave v2: 50 % close factor, no protocol fee
    PROTO_SPARK = 2         # SparkLend: Aave v3 rules, its own parameters
    PROTO_MORPHO = 3        # Morpho Blue: LLTV (= lt), LIF from the LLTV, no close factor, Taylor interest
    PROTO_COMET = 4         # Compound III: liquidate CF (= lt), absorb() with the liquidation factor (1 - bonus)
    PROTO_GENERIC = 5       # a venue configured by hand: Aave-v2-like with a fixed close factor (cf_ovr)
    PROTO_AAVE_V4 = 6       # Aave v4 Spoke: CF (= lt), HF-dependent bonus, liquidation to a target HF, premium debt
    N_PROTOCOLS = 7         # codes are 0 .. N_PROTOCOLS - 1

cdef enum:
    KIND_HOLD = 0
    KIND_LEND = 1
    KIND_LOOP = 2
    KIND_FLASH = 3
    KIND_BASKET = 4         # the strategy book (ext/_book.pxi): not replayed by run_batch
    KIND_LP = 5
    KIND_VAULT = 6
    KIND_FARM = 7

cdef enum:
    ENTRY_SWAP = 0
    ENTRY_STAKE = 1

cdef enum:
    SLIP_NONE = 0
    SLIP_LINEAR = 1
    SLIP_STABLESWAP = 2
    SLIP_CPMM = 3

cdef enum:
    ROUTE_DEX = 0
    ROUTE_QUEUE = 1

cdef enum:
    ORACLE_RATE = 0
    ORACLE_MARKET = 1
    ORACLE_CAPO = 2
    ORACLE_FEED = 3

cdef enum:
    EV_OPEN = 0
    EV_LOOP = 1
    EV_REBALANCE = 2
    EV_LIQUIDATION = 3
    EV_BAD_DEBT = 4
    EV_EXIT = 5
    EV_QUEUE_RELEASE = 6
    EV_UNWIND = 7
    EV_SLASH = 8
    EV_REWARD_SALE = 9      # the strategy book's farm sold its accrued reward tokens (ext/_book.pxi)

cdef enum:
    N_RECORD = 11

ctypedef packed struct Params:
    int64_t protocol        # PROTO_*
    int64_t kind            # KIND_*
    int64_t entry           # ENTRY_*: how the debt asset becomes collateral on every buy leg
    int64_t lane            # market lane (oracle mode) of this configuration
    int64_t loops           # loop count, kind = loop
    int64_t slip_model      # SLIP_*
    int64_t reb_on          # rebalance rules active
    int64_t exit_on         # de-peg exit active
    int64_t exit_route      # ROUTE_*
    int64_t check_every     # seconds between rebalance checks (> 0)
    int64_t queue_delay     # seconds a queued withdrawal waits
    int64_t v33_from        # Aave v3.3 liquidation rules apply from this unix time
    int64_t unwind_at_end   # close through the DEX at the last block
    int64_t queue_delay_late  # seconds a queued withdrawal waits when requested at or after queue_late_from
    int64_t queue_late_from   # unix time from which queue_delay_late applies; 0 = never
    double capital          # debt-asset units invested (> 0)
    double target_ltv       # in (0, 1), <= max LTV at the first block
    double delev_below      # deleverage when HF < this
    double target_hf        # rebalance back to this HF
    double relev_above      # releverage when HF > this (inf = never)
    double depeg_below      # exit when price / (exchange rate x underlying price) < this
    double gas_gwei         # fixed gas price (gwei of the gas token), NaN = the market's gas series
    double gas_open         # gas units per action
    double gas_loop
    double gas_reb
    double gas_close
    double swap_fee         # fraction of notional
    double slip_param       # linear: bps per unit traded
    double pool_depth       # pool balance per side (debt-asset units)
    double amp              # StableSwap A
    double flash_fee        # fraction of the flash-loaned amount
    double cf_ovr           # fixed close factor, NaN = protocol rule (generic: required; Morpho/Comet: unused)
    double v4_bonus_factor  # Aave v4 (0 elsewhere): liquidationBonusFactor
    double v4_hf_max_bonus  # healthFactorForMaxBonus
    double v4_target_hf     # targetHealthFactor
    double v4_collateral_risk  # the user risk premium (one collateral: its collateral risk)
    int64_t queue_frozen_from   # [[scenario]] withdrawals_frozen: a queue request at a time in [from, until)
    int64_t queue_frozen_until  # waits until `until`, then its delay; 0, 0 = never frozen
    int64_t liq_delay           # blocks HF must stay below 1 before liquidators act (0 = the first such block)
    double liq_gas              # gas units a liquidator spends (> 0: it sizes its repay for profit; 0 = full size)

ctypedef packed struct Summary:
    double end_equity
    double end_equity_rate
    double net_apy
    double net_apy_rate
    double hold_end_equity
    double hold_apy
    double staking_yield
    double supply_yield
    double interest_paid
    double restaking_rewards
    double gas_cost
    double swap_fee_cost
    double slippage_cost
    double flash_fee_cost
    int64_t liq_count
    double liq_debt_repaid
    double liq_coll_seized
    double liq_coll_seized_value
    double liq_penalty
    double liq_protocol_fee
    double bad_debt
    double min_hf
    int64_t min_hf_idx
    int64_t blocks_below_105
    double max_drawdown
    double lev_sum
    int64_t lev_n
    int64_t n_rebalances
    int64_t n_events
    int64_t events_dropped
    int64_t exit_idx
    double end_collateral
    double end_debt
    double end_cash

ctypedef packed struct Event:
    int64_t idx             # block index
    int64_t kind            # EV_*
    double coll             # collateral change, tokens
    double debt             # debt change, debt-asset units
    double cost             # costs or penalty of the event, debt-asset units
    double hf               # health factor after the event

# Read-only view of the aligned market as one configuration sees it (its lane's oracle and indices).
cdef struct Mkt:
    Py_ssize_t n            # blocks
    const int64_t* ts       # block times, increasing
    const double* price     # DEX price of collateral in debt asset
    const double* xrate     # exchange rate (underlying per token)
    const double* up        # the collateral's underlying (ETH for an ETH LST) in the debt asset: 1.0 for a WETH
                            # debt, ETH/USDC for a USDC debt; an exchange-rate value in the debt asset is xrate * up
    const double* gtp       # the chain's gas token in the debt asset (1.0 when the debt is the gas token)
    const double* eth_usd   # USD per debt-asset unit (NaN unknown)
    const double* ltv       # max LTV in force (Comet: borrow CF; Morpho: the LLTV)
    const double* lt        # liquidation threshold in force (Comet: liquidate CF; Morpho: the LLTV)
    const double* bonus     # Aave/Spark/generic: liquidation bonus (LB - 1); Comet: 1 - liquidation factor
                            # (the absorb penalty); Morpho: unused (the LIF follows from the LLTV in lt)
    const double* pfee      # liquidation protocol fee fraction
    const double* gas       # gas price, gwei
    const double* por       # lane: oracle price of collateral in debt asset
    const double* sidx      # collateral supply (liquidity) index, 1 at block 0 (stays 1 on Morpho and Comet)
    const double* bidx      # debt borrow index, 1 at block 0 (growth formula per protocol, ext/_rates.pxd)
    const double* a         # lane: por * lt * sidx / bidx, so HF = (s / d) * a
    const double* K         # cumsum sidx[j-1] * (xrate[j] - xrate[j-1]) * up[j]  (staking yield per scaled token,
                            # debt asset)
    const double* K2        # cumsum sidx[j-1] * (supply growth - 1) * xrate[j] * up[j]  (supply yield per scaled
                            # token, debt asset)
    const double* KW        # KW[b] - KW[b0] = the staking yield of one wallet token over (b0, b], debt asset:
                            # cumsum (xrate[j] - xrate[j-1]) * up[j]; xrate itself when up is all exactly 1
    const double* rwd       # cumulative reward value per collateral token held (debt asset), 0 at block 0
    const double* KR        # cumsum sidx[j-1] * (rwd[j] - rwd[j-1])       (rewards per scaled token)
    const double* slash     # fraction of the exchange rate cut at this block (0 = none)
    const double* schunk    # per chunk: max of slash (a chunk with a slash is never skipped)
    const double* hprice    # hold benchmark token (the base LST when restaking): DEX price
    const double* hxrate    # hold benchmark token: exchange rate
    const double* amin      # lane, per chunk: min of a
    const double* amax      # lane, per chunk: max of a
    const int64_t* aarg     # lane, per chunk: first block index of the min
    const double* qmin      # per chunk: min of the de-peg ratio price / (xrate * up)
    Py_ssize_t chunk        # blocks per chunk
    Py_ssize_t nchunks
    const int64_t* rec_idx  # record blocks, increasing
    Py_ssize_t n_rec
    Py_ssize_t metric_every # metric sample every this many blocks (and at the last block)

# Mutable per-configuration state: balances are scaled (actual = scaled * index at the block).
cdef struct State:
    double s                # scaled collateral supplied
    double d                # scaled variable debt
    double w                # collateral tokens held in the wallet (hold)
    double cash             # debt asset in the wallet (negative = paid from outside)
    double queued           # debt asset waiting in a withdrawal queue
    int64_t release_ts
    int64_t next_check
    int closed
    Py_ssize_t seg0         # block where the current constant-(s, d, w) segment started
    double peak             # peak equity on metric samples
    double dust             # DUST_REL x capital: balances and amounts at or below count as zero
    Py_ssize_t n_ev         # events written
    # Aave v4's premium debt (0 on every other venue, so the formulas below reduce to s and d exactly):
    # debt = d x bidx + (ps x bidx - po), d the drawn shares
    double ps               # premium shares (drawn shares x rp after each refresh)
    double po               # premium offset, debt-asset units
    double rp               # the user risk premium the refreshes use
    Py_ssize_t below_since  # first block of the current run of blocks with HF < 1 (-1: HF >= 1); for liq_delay

# Where one configuration's outputs go.
cdef struct Out:
    Summary* sm
    Event* ev
    Py_ssize_t ev_cap
    double* rec             # n_rec x N_RECORD
