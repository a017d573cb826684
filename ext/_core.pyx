# cython: language_level=3
"""The replay core: lanes (index accrual, oracle, chunk bounds) and run_batch (prange over configurations,
a loop over blocks per configuration), all without the GIL and without Python objects in the loops.

A chunk of blocks whose bounds prove that nothing can happen in it for a configuration (no liquidation,
no HF below 1.05, no rebalance outside the bands, no de-peg exit, no queue release, no slash) is advanced in O(1):
its minimum HF comes from the chunk's precomputed minimum of `a`, its records and metric samples are
written from the (unchanged) scaled state. Everything else is replayed block by block. `dense=True`
turns the shortcut off; results are identical either way (tests/unit/test_differential.py).

Restaking: rewards accrue through the segment integral KR (like the staking yield through K, ext/_position.pxd
settle), so they need no block-by-block work; a slash (Market.slash, already cut into xrate and so into a)
is an event, so a chunk holding one (schunk > 0) is never skipped; the hold benchmark is bought and marked
with hprice / hxrate (the base LST of a restaked position).

Venues: the market-level indices grow by the protocol's own formula (ext/_rates.pxd), and liquidation goes
through one dispatch (ext/_venues.pxd: Aave / Spark / generic, Morpho Blue, Compound III, Aave v4). Every venue
keeps HF = (s / d) * a[b] with a = oracle * LT * sidx / bidx (LT is the LLTV on Morpho, the liquidate collateral
factor on Comet, the CF on Aave v4; sidx stays 1 where collateral earns nothing), so the chunk skip stays exact
for all of them, except an Aave v4 debt carrying a risk premium (st.ps > 0: debt = d x bidx + ps x bidx - po,
not a multiple of bidx), whose HF is computed per block and whose chunks are never skipped.
"""
from cython.parallel cimport prange, parallel
from libc.math cimport INFINITY, NAN, pow, isnan
from libc.stdint cimport int64_t
cimport numpy as cnp
import numpy as np

from _types cimport KIND_BASKET, KIND_LP, KIND_VAULT, KIND_FARM, EV_REWARD_SALE
from _types cimport (Params, Summary, Event, Mkt, State, Out, N_RECORD, KIND_HOLD, KIND_LEND, KIND_LOOP,
                     KIND_FLASH, ENTRY_SWAP, ENTRY_STAKE, SLIP_NONE, SLIP_LINEAR, SLIP_STABLESWAP, SLIP_CPMM,
                     ROUTE_DEX, ROUTE_QUEUE, ORACLE_RATE, ORACLE_MARKET, ORACLE_CAPO, ORACLE_FEED, PROTO_AAVE_V3,
                     PROTO_AAVE_V2, PROTO_SPARK, PROTO_MORPHO, PROTO_COMET, PROTO_GENERIC, EV_OPEN, EV_LOOP,
                     EV_REBALANCE, EV_LIQUIDATION, EV_BAD_DEBT, EV_EXIT, EV_QUEUE_RELEASE, EV_UNWIND, EV_SLASH)
from _types cimport N_PROTOCOLS
from _math cimport SECONDS_PER_YEAR, morpho_lif
from _rates cimport (index_growth, supply_increment, irm_step, irm_curve, irm_err, SUPPLY_LINEAR, SUPPLY_NONE,
                    N_SUPPLY_MODELS, BORROW_BINOMIAL, BORROW_TAYLOR, BORROW_LINEAR, N_BORROW_MODELS)
from _position cimport (DUST_REL, coll_of, debt_of, hf_of, settle, equity, buy_quote, push_event, rate_value,
                        depeg_ratio, sell_quote)
from _aave cimport (CLOSE_FACTOR_HF_THRESHOLD, MIN_BASE_MAX_CLOSE_FACTOR_USD, MIN_LEFTOVER_USD,
                    MAX_LIQUIDATIONS_PER_BLOCK)
from _strategies cimport FIXED_POINT_ITERS
from _venues cimport liquidate, venue_codes
from _strategies cimport strategy_step
from _quiet cimport quiet_end, quiet_run

cnp.import_array()


# ----------------------------------------------------------------------------------------------- lanes
cdef void _build_indices(Py_ssize_t n, long supply_model, long borrow_model, const int64_t* ts, const double* xrate,
                         const double* up, const double* supply_apr, const double* borrow_apr, double* sidx,
                         double* bidx, double* K, double* K2, double* KW) noexcept nogil:
    # step 2 for the whole market at once: the reserve indices are the same for every configuration of a
    # venue; its rate model (Venue.growth, as codes) decides the growth formula (ext/_rates.pxd)
    cdef Py_ssize_t b
    cdef double dt, gs, gb
    cdef bint ones = True
    for b in range(n):
        if up[b] != 1.0:
            ones = False
            break
    sidx[0] = 1.0
    bidx[0] = 1.0
    K[0] = 0.0
    K2[0] = 0.0
    # KW: with the underlying at exactly 1 debt unit (a WETH debt) the wallet's yield xrate[b] - xrate[b0] is
    # KW = xrate itself (the same bits as ever); otherwise a running sum of each step's value, since a sum by
    # parts (xrate x up minus a correction) would cancel ~1e-16 x the position's value on a flat rate
    KW[0] = xrate[0] if ones else 0.0
    # the yields are values in the debt asset: an exchange-rate step (underlying per token) is worth up[b] each
    for b in range(1, n):
        dt = <double>(ts[b] - ts[b - 1])
        index_growth(supply_model, borrow_model, supply_apr[b - 1], borrow_apr[b - 1], dt, &gs, &gb)
        sidx[b] = sidx[b - 1] * gs
        bidx[b] = bidx[b - 1] * gb
        K[b] = K[b - 1] + sidx[b - 1] * (xrate[b] - xrate[b - 1]) * up[b]
        K2[b] = K2[b - 1] + sidx[b - 1] * supply_increment(supply_model, supply_apr[b - 1], dt) * xrate[b] * up[b]
        KW[b] = xrate[b] if ones else KW[b - 1] + (xrate[b] - xrate[b - 1]) * up[b]


cdef void _build_lane(Py_ssize_t n, const int64_t* ts, const double* xrate, const double* up,
                      const double* price, const double* feed, const double* lt, const double* sidx, const double* bidx,
                      int oracle, double capo_growth, int64_t capo_age, Py_ssize_t npre, const int64_t* pre_ts,
                      const double* pre_xrate, double* por, double* a) noexcept nogil:
    _build_lane_ov(n, ts, xrate, up, price, feed, lt, sidx, bidx, oracle, capo_growth, capo_age, npre, pre_ts,
                   pre_xrate, NULL, NULL, por, a)


cdef void _build_lane_ov(Py_ssize_t n, const int64_t* ts, const double* xrate, const double* up,
                         const double* price, const double* feed, const double* lt, const double* sidx,
                         const double* bidx, int oracle, double capo_growth, int64_t capo_age, Py_ssize_t npre,
                         const int64_t* pre_ts, const double* pre_xrate, const double* oscale, const double* ocap,
                         double* por, double* a) noexcept nogil:
    # step 3: the oracle price per the lane's mode, and a = oracle * LT * sidx / bidx. The [[scenario]] oracle
    # overlays (NULL = none): ocap, a governance-set CAPO cap (ratio units; NaN = the snapshot rule) that replaces
    # the rule's cap on a CAPO lane; oscale, a factor on every lane's oracle price (1.0 = none)
    cdef Py_ssize_t b, j = 0, k = 0
    cdef int64_t snap_ts
    cdef double cap, snap
    for b in range(n):
        if oracle == ORACLE_RATE:
            por[b] = xrate[b]
        elif oracle == ORACLE_MARKET:
            por[b] = price[b]
        elif oracle == ORACLE_FEED:
            por[b] = feed[b]
        else:
            # CAPO: min(live, snapshot * (1 + g * dt / Y)); snapshot refreshed every capo_age seconds,
            # taken capo_age before its refresh time: the first block at or after snap_ts, or, when snap_ts
            # lies before the window, the lake's rate as of snap_ts (pre_ts / pre_xrate: the points before
            # the window, increasing; never a rate read inside the window). Without those points (a market
            # built from arrays) the first block stands in.
            snap_ts = (ts[b] // capo_age) * capo_age - capo_age
            if snap_ts < ts[0] and npre > 0:
                while k + 1 < npre and pre_ts[k + 1] <= snap_ts:
                    k += 1
                snap = pre_xrate[k]
            else:
                while j < b and ts[j] < snap_ts:
                    j += 1
                if j > b:
                    j = b
                snap = xrate[j]
            cap = snap * (1.0 + capo_growth * <double>(ts[b] - snap_ts) / SECONDS_PER_YEAR)
            if ocap != NULL and ocap[b] == ocap[b]:
                cap = ocap[b]
            por[b] = xrate[b] if xrate[b] < cap else cap
            # Aave's CAPO adapters price the token in USD, capped ratio x ETH/USD; over the debt's USD price
            # that is the capped ratio x the underlying in the debt asset (x 1.0 for a WETH debt)
            por[b] = por[b] * up[b]
        if oscale != NULL:
            por[b] = por[b] * oscale[b]
        a[b] = por[b] * lt[b] * sidx[b] / bidx[b]


cdef void _chunk_bounds(Py_ssize_t n, Py_ssize_t chunk, const double* a, double* amin, double* amax,
                        int64_t* aarg) noexcept nogil:
    cdef Py_ssize_t c, b, lo, hi, nch = (n + chunk - 1) // chunk
    for c in range(nch):
        lo = c * chunk
        hi = lo + chunk if lo + chunk < n else n
        amin[c] = a[lo]
        amax[c] = a[lo]
        aarg[c] = lo
        for b in range(lo + 1, hi):
            if a[b] < amin[c]:
                amin[c] = a[b]
                aarg[c] = b
            if a[b] > amax[c]:
                amax[c] = a[b]


def build_indices(const int64_t[::1] ts, const double[::1] xrate, const double[::1] supply_apr,
                  const double[::1] borrow_apr, int supply_model=SUPPLY_LINEAR, int borrow_model=BORROW_BINOMIAL,
                  const double[::1] underlying_price=None):
    """Supply index, borrow index (1 at block 0, grown per block by the venue's rate model, growth_codes():
    supply linear / none, borrow binomial / taylor / linear: Aave family and generic linear / 3-term binomial,
    Morpho none / Taylor, Comet none / linear, Aave v4 linear / linear) and the yield integrals, in the
    debt asset: K (staking yield per scaled token), K2 (supply yield per scaled token), KW (staking yield per
    wallet token: KW[b] - KW[b0]). underlying_price: the collateral's underlying in the debt asset (None: 1.0)."""
    cdef Py_ssize_t n = ts.shape[0]
    if n == 0:
        raise ValueError("build_indices needs blocks")
    if underlying_price is None:
        underlying_price = np.ones(n)
    if (xrate.shape[0] != n or supply_apr.shape[0] != n or borrow_apr.shape[0] != n
            or underlying_price.shape[0] != n):
        raise ValueError("build_indices: arrays differ in length")
    if not (0 <= supply_model < N_SUPPLY_MODELS and 0 <= borrow_model < N_BORROW_MODELS):
        raise ValueError(f"build_indices: unknown rate model codes ({supply_model}, {borrow_model})")
    out = {name: np.empty(n) for name in ("sidx", "bidx", "K", "K2", "KW")}
    cdef double[::1] sidx = out["sidx"], bidx = out["bidx"], K = out["K"], K2 = out["K2"], KW = out["KW"]
    with nogil:
        _build_indices(n, supply_model, borrow_model, &ts[0], &xrate[0], &underlying_price[0], &supply_apr[0], &borrow_apr[0],
                       &sidx[0], &bidx[0], &K[0], &K2[0], &KW[0])
    return out


def adaptive_curve_rates(const int64_t[::1] ts, const double[::1] utilization, double rate_at_target0):
    """Morpho's AdaptiveCurveIRM along a utilisation path: (borrow APR, rate at target), one per block.

    borrow[b] is the average rate charged from block b to block b+1 (the trapezoid of AdaptiveCurveIrm with
    the utilisation of block b); rate_at_target[b] is r_T at block b, starting at rate_at_target0. The last
    block's borrow rate is the curve at its own r_T (it is never charged: accrual at b uses borrow[b-1])."""
    cdef Py_ssize_t n = ts.shape[0], b
    cdef double end_rt
    if n == 0 or utilization.shape[0] != n:
        raise ValueError("adaptive_curve_rates needs blocks and one utilisation per block")
    if not (rate_at_target0 > 0):
        raise ValueError("adaptive_curve_rates: the initial rate at target must be > 0")
    rate = np.empty(n)
    rt = np.empty(n)
    cdef double[::1] r = rate, t = rt
    with nogil:
        t[0] = rate_at_target0
        for b in range(n - 1):
            r[b] = irm_step(t[b], utilization[b], <double>(ts[b + 1] - ts[b]), &end_rt)
            t[b + 1] = end_rt
        r[n - 1] = irm_curve(t[n - 1], irm_err(utilization[n - 1]))
    return rate, rt


def liquidation_incentive_factor(double lltv):
    """Morpho Blue's LIF = min(1.15, 1 / (0.3 LLTV + 0.7)) as the core computes it."""
    return morpho_lif(lltv)


def growth_codes():
    """The rate-model codes of ext/_rates.pxd by name, for the test against backtest.venues.base."""
    return ({"linear": SUPPLY_LINEAR, "none": SUPPLY_NONE},
            {"binomial": BORROW_BINOMIAL, "taylor": BORROW_TAYLOR, "linear": BORROW_LINEAR})


def protocol_codes():
    """The PROTO_* enum values, for the schema test against backtest/schema.py."""
    return venue_codes()


def enum_codes():
    """Every enum of ext/_types.pxd by its config name, for the schema test against backtest/schema.py."""
    return {
        "protocol": protocol_codes(),
        "kind": {"hold": KIND_HOLD, "lend": KIND_LEND, "loop": KIND_LOOP, "flash-loan": KIND_FLASH,
                 "basket": KIND_BASKET, "lp": KIND_LP, "vault": KIND_VAULT, "farm": KIND_FARM},
        "entry": {"swap": ENTRY_SWAP, "stake": ENTRY_STAKE},
        "slippage": {"none": SLIP_NONE, "linear": SLIP_LINEAR, "stableswap": SLIP_STABLESWAP,
                     "constant-product": SLIP_CPMM},
        "exit_route": {"dex": ROUTE_DEX, "queue": ROUTE_QUEUE},
        "oracle": {"exchange-rate": ORACLE_RATE, "market": ORACLE_MARKET, "capo": ORACLE_CAPO,
                   "chainlink": ORACLE_FEED},
        "event": {"open": EV_OPEN, "loop": EV_LOOP, "rebalance": EV_REBALANCE, "liquidation": EV_LIQUIDATION,
                  "bad_debt": EV_BAD_DEBT, "exit": EV_EXIT, "queue_release": EV_QUEUE_RELEASE,
                  "unwind": EV_UNWIND, "slash": EV_SLASH, "reward_sale": EV_REWARD_SALE},
        "n_record": N_RECORD,
    }


def build_lane(const int64_t[::1] ts, const double[::1] xrate, const double[::1] price,
               const double[::1] feed, const double[::1] lt, const double[::1] sidx, const double[::1] bidx,
               int oracle, double capo_growth, int64_t capo_age, Py_ssize_t chunk,
               double[::1] por, double[::1] a, double[::1] amin, double[::1] amax, int64_t[::1] aarg,
               const int64_t[::1] pre_ts=None, const double[::1] pre_xrate=None,
               const double[::1] underlying_price=None, const double[::1] oracle_scale=None,
               const double[::1] oracle_cap=None):
    """Fill one lane in place: oracle price, a = oracle*LT*sidx/bidx, per-chunk min/max/argmin of a.
    pre_ts / pre_xrate: exchange-rate points before the window (CAPO snapshots taken before it);
    underlying_price: the collateral's underlying in the debt asset, the CAPO price's factor (None: 1.0);
    oracle_scale / oracle_cap: the [[scenario]] oracle overlays (Market.oracle_scale / oracle_cap; None: none)."""
    cdef Py_ssize_t n = ts.shape[0], nch = (n + chunk - 1) // chunk
    cdef const double* osc = NULL
    cdef const double* ocp = NULL
    if oracle_scale is not None:
        if oracle_scale.shape[0] != n:
            raise ValueError("build_lane: oracle_scale differs in length")
        osc = &oracle_scale[0]
    if oracle_cap is not None:
        if oracle_cap.shape[0] != n:
            raise ValueError("build_lane: oracle_cap differs in length")
        ocp = &oracle_cap[0]
    if underlying_price is None:
        underlying_price = np.ones(n)
    if underlying_price.shape[0] != n:
        raise ValueError("build_lane: underlying_price differs in length")
    cdef Py_ssize_t npre = 0 if pre_ts is None else pre_ts.shape[0]
    cdef const int64_t* pts = NULL
    cdef const double* pxr = NULL
    if npre:
        if pre_xrate is None or pre_xrate.shape[0] != npre:
            raise ValueError("build_lane: pre_ts and pre_xrate differ in length")
        pts = &pre_ts[0]
        pxr = &pre_xrate[0]
    if n == 0 or chunk <= 0 or capo_age <= 0:
        raise ValueError("build_lane needs blocks, chunk > 0 and capo_age > 0")
    if por.shape[0] != n or a.shape[0] != n or amin.shape[0] != nch or amax.shape[0] != nch or aarg.shape[0] != nch:
        raise ValueError("build_lane: output arrays have the wrong length")
    with nogil:
        _build_lane_ov(n, &ts[0], &xrate[0], &underlying_price[0], &price[0], &feed[0], &lt[0], &sidx[0], &bidx[0],
                       oracle, capo_growth, capo_age, npre, pts, pxr, osc, ocp, &por[0], &a[0])
        _chunk_bounds(n, chunk, &a[0], &amin[0], &amax[0], &aarg[0])


def chunk_qmin(const double[::1] price, const double[::1] xrate, Py_ssize_t chunk,
               const double[::1] underlying_price=None):
    """Per-chunk minimum of the de-peg ratio price / (exchange rate x underlying price) (the exit test)."""
    cdef Py_ssize_t n = price.shape[0], nch = (n + chunk - 1) // chunk, c, b, lo, hi
    cdef double q
    if underlying_price is None:
        underlying_price = np.ones(n)
    if xrate.shape[0] != n or underlying_price.shape[0] != n:
        raise ValueError("chunk_qmin: arrays differ in length")
    cdef const double[::1] up = underlying_price
    res = np.empty(nch)
    cdef double[::1] qmin = res
    with nogil:
        for c in range(nch):
            lo = c * chunk
            hi = lo + chunk if lo + chunk < n else n
            qmin[c] = INFINITY
            for b in range(lo, hi):
                q = price[b] / (xrate[b] * up[b])
                if q < qmin[c]:
                    qmin[c] = q
    return res


# ------------------------------------------------------------------------------------------- replay
cdef inline void record_row(const State* st, const Mkt* m, Out* o, Py_ssize_t r, Py_ssize_t b) noexcept nogil:
    cdef double* row = o.rec + r * N_RECORD
    cdef double coll = coll_of(st, m, b), debt = debt_of(st, m, b), pc = m.por[b], px = m.price[b]
    cdef double tokens = coll + st.w, e = equity(st, m, b, px), coll_val = coll * pc
    row[0] = tokens
    row[1] = debt
    row[2] = st.cash + st.queued
    row[3] = hf_of(st, m, b)
    row[4] = debt / coll_val if coll_val > 0 else 0.0
    if e > 0:
        row[5] = tokens * px / e
    else:
        row[5] = 0.0 if tokens == 0 else INFINITY
    row[6] = pc
    row[7] = px
    row[8] = m.xrate[b]
    row[9] = e
    row[10] = equity(st, m, b, rate_value(m, b))


cdef inline void metric_sample(State* st, const Mkt* m, Out* o, Py_ssize_t b) noexcept nogil:
    cdef double e = equity(st, m, b, m.price[b]), dd, tokens
    if e > st.peak:
        st.peak = e
    if st.peak > 0:
        dd = 1.0 - e / st.peak
        if dd > o.sm.max_drawdown:
            o.sm.max_drawdown = dd
    tokens = coll_of(st, m, b) + st.w
    if e > 0 and tokens > 0:
        o.sm.lev_sum += tokens * m.price[b] / e
        o.sm.lev_n += 1


cdef inline double annualise(double end_equity, double capital, double years) noexcept nogil:
    if years <= 0:
        return 0.0
    if end_equity <= 0:
        return -1.0
    return pow(end_equity / capital, 1.0 / years) - 1.0


cdef inline bint can_skip(const State* st, const Params* p, const Mkt* m, Py_ssize_t c,
                          Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef double r
    if lo == 0 or hi == m.n:
        return False
    if m.schunk[c] > 0:         # a slash inside: its event (and the cut) is replayed block by block
        return False
    if st.ps != 0.0:            # an Aave v4 premium debt: HF is not (s / d) * a, so no chunk bound holds
        return False
    if st.queued > 0 and m.ts[hi - 1] >= st.release_ts:
        return False
    if st.d > 0:
        r = st.s / st.d
        if not (r * m.amin[c] >= 1.05):
            return False
        if (p.reb_on and not st.closed and m.ts[hi - 1] >= st.next_check
                and (p.kind == KIND_LOOP or p.kind == KIND_FLASH)):
            if not (r * m.amin[c] >= p.delev_below) or not (r * m.amax[c] <= p.relev_above):
                return False
    if p.exit_on and not st.closed and not (m.qmin[c] >= p.depeg_below):
        return False
    return True


cdef inline bint action_due(const State* st, const Params* p, const Mkt* m, Py_ssize_t b) noexcept nogil:
    # whether strategy_step could do anything at block b (it is a no-op otherwise)
    if b == 0 or b == m.n - 1:
        return True
    if st.queued > 0 and m.ts[b] >= st.release_ts:
        return True
    if st.closed:
        return False
    if p.exit_on and depeg_ratio(m, b) < p.depeg_below:
        return True
    return p.reb_on and m.ts[b] >= st.next_check


cdef inline double ratio(const State* st) noexcept nogil:
    # HF = ratio * a[b]; 0 when there is no debt (the HF is then infinite and never read)
    return st.s / st.d if st.d > 0 else 0.0


cdef inline void block_body(State* st, const Params* p, const Mkt* m, Out* o, Py_ssize_t b, double* r,
                            Py_ssize_t* rp, Py_ssize_t* nm) noexcept nogil:
    # the full block body: slash event, HF, liquidation, strategy actions, records, metric samples
    cdef double hf, tokens
    cdef Summary* sm = o.sm
    if m.slash[b] > 0:
        # the exchange rate was cut at this block (already in xrate, a and the yield integrals):
        # record what the collateral held lost, tokens x rate x f / (1 - f) (rate before the cut)
        tokens = coll_of(st, m, b) + st.w
        if tokens > 0:
            push_event(st, m, o, b, EV_SLASH, 0.0, 0.0,
                       tokens * m.xrate[b] * m.slash[b] / (1.0 - m.slash[b]) * m.up[b])
    if st.d > 0:
        hf = r[0] * m.a[b] if st.ps == 0.0 else hf_of(st, m, b)    # an Aave v4 premium: not (s / d) x a
        if hf < sm.min_hf:
            sm.min_hf = hf
            sm.min_hf_idx = b
        if hf < 1.05:
            sm.blocks_below_105 += 1
            if hf < 1.0:
                # liquidators act once HF has been below 1 for liq_delay blocks (0: at once, the default)
                if st.below_since < 0:
                    st.below_since = b
                if b - st.below_since >= p.liq_delay:
                    liquidate(st, p, m, o, b)
                    r[0] = ratio(st)
            else:
                st.below_since = -1
        else:
            st.below_since = -1
    else:
        st.below_since = -1
    if action_due(st, p, m, b):
        strategy_step(st, p, m, o, b)
        r[0] = ratio(st)
    while rp[0] < m.n_rec and m.rec_idx[rp[0]] == b:
        record_row(st, m, o, rp[0], b)
        rp[0] += 1
    if b == nm[0]:
        metric_sample(st, m, o, b)
        nm[0] += m.metric_every
    elif b == m.n - 1:
        metric_sample(st, m, o, b)


cdef bint FULL_BODY_ONLY = False     # tests only (set_full_body_only): the full body at every replayed block


def set_full_body_only(bint on):
    """Private, for tests: replay every block that the chunk skip does not skip with the full block body
    (no quiet-stretch fast path); the outputs must be bit-identical either way."""
    global FULL_BODY_ONLY
    FULL_BODY_ONLY = on


cdef void replay_one(const Params* p, const Mkt* m, Out* o, bint dense) noexcept nogil:
    cdef State st
    cdef Summary* sm = o.sm
    cdef Py_ssize_t c, b, e, lo, hi, rp = 0, n = m.n, me = m.metric_every, nm = 0
    cdef double hf, r, tokens
    cdef bint depeg, slashes
    cdef int64_t t0 = m.ts[0]
    st.s = 0.0
    st.d = 0.0
    st.w = 0.0
    st.cash = p.capital
    st.queued = 0.0
    st.release_ts = 0
    st.next_check = 0
    st.closed = 0
    st.seg0 = 0
    st.peak = -INFINITY
    st.dust = DUST_REL * p.capital
    st.n_ev = 0
    st.ps = 0.0
    st.po = 0.0
    st.rp = p.v4_collateral_risk
    st.below_since = -1
    r = 0.0
    for c in range(m.nchunks):
        lo = c * m.chunk
        hi = lo + m.chunk if lo + m.chunk < n else n
        if not dense and can_skip(&st, p, m, c, lo, hi):
            if st.d > 0:
                hf = r * m.amin[c]
                if hf < sm.min_hf:
                    sm.min_hf = hf
                    sm.min_hf_idx = m.aarg[c]
            if p.reb_on and not st.closed and m.ts[hi - 1] >= st.next_check:
                st.next_check = t0 + ((m.ts[hi - 1] - t0) // p.check_every + 1) * p.check_every
            while rp < m.n_rec and m.rec_idx[rp] < hi:
                record_row(&st, m, o, rp, m.rec_idx[rp])
                rp += 1
            while nm < hi:
                metric_sample(&st, m, o, nm)
                nm += me
            st.below_since = -1         # a skipped chunk keeps HF >= 1.05
            continue
        if FULL_BODY_ONLY:
            for b in range(lo, hi):
                block_body(&st, p, m, o, b, &r, &rp, &nm)
            continue
        # quiet stretches up to the next block where the full body must run; de-peg ratios and slashes are
        # watched per block only in the chunks whose bounds say they can matter
        depeg = p.exit_on and not st.closed and not (m.qmin[c] >= p.depeg_below)
        slashes = m.schunk[c] > 0
        b = lo
        while b < hi:
            e = quiet_end(m, b, hi, rp, nm)
            if e > b and st.ps == 0.0:   # an Aave v4 premium debt: HF is not r x a[b], the full body computes it
                e = quiet_run(&st, r, p, m, sm, b, e, depeg, slashes)
                if e > b:
                    st.below_since = -1     # the quiet stretch kept HF >= 1.05
                b = e
            if b < hi:
                block_body(&st, p, m, o, b, &r, &rp, &nm)
                b += 1
                depeg = depeg and not st.closed
    # finish: value at the last block, benchmark, APYs
    b = n - 1
    settle(&st, m, o, b)
    sm.end_equity = equity(&st, m, b, m.price[b])
    sm.end_equity_rate = equity(&st, m, b, rate_value(m, b))
    sm.end_collateral = coll_of(&st, m, b) + st.w
    sm.end_debt = debt_of(&st, m, b)
    sm.end_cash = st.cash + st.queued
    cdef double years = <double>(m.ts[b] - m.ts[0]) / SECONDS_PER_YEAR, fee, slip
    sm.net_apy = annualise(sm.end_equity, p.capital, years)
    sm.net_apy_rate = annualise(sm.end_equity_rate, p.capital, years)
    # benchmark: the capital bought at block 0 through the same entry and held, in the hold token (the base
    # LST of a restaked position; the collateral token otherwise, when hprice / hxrate are price / xrate)
    cdef Mkt hm = m[0]
    hm.price = m.hprice
    hm.xrate = m.hxrate         # the hold token's underlying is the collateral's: up applies to both
    tokens = buy_quote(p, &hm, 0, p.capital, &fee, &slip)
    sm.hold_end_equity = tokens * m.hprice[b]
    sm.hold_apy = annualise(sm.hold_end_equity, p.capital, years)


cdef void _zero_summary(Summary* sm) noexcept nogil:
    cdef char* raw = <char*>sm
    cdef Py_ssize_t i
    for i in range(sizeof(Summary)):
        raw[i] = 0
    sm.min_hf = INFINITY
    sm.min_hf_idx = -1
    sm.exit_idx = -1


cdef struct LanePtrs:
    # base pointers of the [lane, block] and [lane, chunk] arrays
    Py_ssize_t n
    Py_ssize_t nch
    const double* por
    const double* a
    const double* amin
    const double* amax
    const int64_t* aarg


cdef void _run_config(const Mkt* base, const LanePtrs* lp, const Params* p, Summary* sm, Event* ev,
                      Py_ssize_t ev_cap, double* rec, bint dense) noexcept nogil:
    # one configuration: its own market view (its lane) and output pointers, on this thread's stack
    cdef Mkt m = base[0]
    cdef Out o
    cdef Py_ssize_t off = p.lane * lp.n, coff = p.lane * lp.nch
    m.por = lp.por + off
    m.a = lp.a + off
    m.amin = lp.amin + coff
    m.amax = lp.amax + coff
    m.aarg = lp.aarg + coff
    o.sm = sm
    o.ev = ev
    o.ev_cap = ev_cap
    o.rec = rec
    _zero_summary(sm)
    replay_one(p, &m, &o, dense)


def run_batch(Params[::1] params, dict market, dict lanes, const double[::1] qmin,
              const int64_t[::1] rec_idx, Py_ssize_t metric_every, Py_ssize_t chunk,
              Summary[::1] summaries, Event[:, ::1] events, double[:, :, ::1] records,
              bint dense=False, int threads=0):
    """Replay every configuration of `params` over one market.

    market: dict of the Market arrays (ts, price, xrate, eth_usd, ltv, lt, bonus, pfee, gas_gwei, reward, slash,
    hold_price, hold_xrate, underlying_price, gas_token_price);
    lanes: 1-D market-level arrays (sidx, bidx, K, K2, KW from build_indices, KR and the per-chunk schunk from
    engine.build_lanes), 2-D [lane, block] (por, a) and
    [lane, chunk] (amin, amax, aarg) filled by build_lane; outputs are preallocated by the caller (backtest/engine.py)."""
    cdef Py_ssize_t nconf = params.shape[0], n, nch, i, ncap = events.shape[1], nrec = rec_idx.shape[0]
    cdef const int64_t[::1] ts = market["ts"]
    cdef const double[::1] price = market["price"], xrate = market["xrate"], eth_usd = market["eth_usd"]
    cdef const double[::1] ltv = market["ltv"], lt = market["lt"], bonus = market["bonus"]
    cdef const double[::1] pfee = market["pfee"], gas = market["gas_gwei"]
    cdef const double[::1] rwd = market["reward"], slash = market["slash"]
    cdef const double[::1] hprice = market["hold_price"], hxrate = market["hold_xrate"]
    cdef const double[::1] up = market["underlying_price"], gtp = market["gas_token_price"]
    cdef const double[::1] KR = lanes["KR"], schunk = lanes["schunk"]
    cdef const double[:, ::1] por = lanes["por"], a = lanes["a"]
    cdef const double[::1] sidx = lanes["sidx"], bidx = lanes["bidx"], K = lanes["K"], K2 = lanes["K2"]
    cdef const double[::1] KW = lanes["KW"]
    cdef const double[:, ::1] amin = lanes["amin"], amax = lanes["amax"]
    cdef const int64_t[:, ::1] aarg = lanes["aarg"]
    cdef Mkt base
    cdef LanePtrs lp
    cdef Py_ssize_t nlanes = por.shape[0]
    n = ts.shape[0]
    nch = (n + chunk - 1) // chunk
    if n == 0 or chunk <= 0 or metric_every <= 0 or ncap <= 0:
        raise ValueError("run_batch needs blocks, chunk > 0, metric_every > 0 and event capacity > 0")
    if (qmin.shape[0] != nch or amin.shape[1] != nch or por.shape[1] != n or a.shape[1] != n
            or sidx.shape[0] != n or bidx.shape[0] != n or K.shape[0] != n or K2.shape[0] != n
            or rwd.shape[0] != n or slash.shape[0] != n or hprice.shape[0] != n or hxrate.shape[0] != n
            or KR.shape[0] != n or schunk.shape[0] != nch or up.shape[0] != n or gtp.shape[0] != n
            or KW.shape[0] != n or xrate.shape[0] != n or price.shape[0] != n):
        raise ValueError("lane / chunk arrays do not match the market")
    if summaries.shape[0] != nconf or events.shape[0] != nconf:
        raise ValueError("output arrays do not match the number of configurations")
    if nrec > 0 and (records.shape[0] != nconf or records.shape[1] != nrec or records.shape[2] != N_RECORD):
        raise ValueError("record array has the wrong shape")
    for i in range(nconf):
        if params[i].lane < 0 or params[i].lane >= nlanes or params[i].check_every <= 0:
            raise ValueError(f"configuration {i}: bad lane or check_every")
        if params[i].protocol < 0 or params[i].protocol >= N_PROTOCOLS:
            raise ValueError(f"configuration {i}: unknown protocol code {params[i].protocol}")
        if params[i].protocol == PROTO_GENERIC and isnan(params[i].cf_ovr):
            raise ValueError(f"configuration {i}: the generic venue needs a close factor (cf_ovr)")
    base.n = n
    base.ts = &ts[0]
    base.price = &price[0]
    base.xrate = &xrate[0]
    base.up = &up[0]
    base.gtp = &gtp[0]
    base.eth_usd = &eth_usd[0]
    base.ltv = &ltv[0]
    base.lt = &lt[0]
    base.bonus = &bonus[0]
    base.pfee = &pfee[0]
    base.gas = &gas[0]
    base.qmin = &qmin[0]
    base.rwd = &rwd[0]
    base.KR = &KR[0]
    base.slash = &slash[0]
    base.schunk = &schunk[0]
    base.hprice = &hprice[0]
    base.hxrate = &hxrate[0]
    base.chunk = chunk
    base.nchunks = nch
    base.rec_idx = &rec_idx[0] if nrec > 0 else NULL
    base.n_rec = nrec
    base.metric_every = metric_every
    lp.n = n
    lp.nch = nch
    lp.por = &por[0, 0]
    lp.a = &a[0, 0]
    base.sidx = &sidx[0]
    base.bidx = &bidx[0]
    base.K = &K[0]
    base.K2 = &K2[0]
    base.KW = &KW[0]
    lp.amin = &amin[0, 0]
    lp.amax = &amax[0, 0]
    lp.aarg = &aarg[0, 0]
    with nogil, parallel(num_threads=threads if threads > 0 else 0):
        for i in prange(nconf, schedule="dynamic", chunksize=1):
            _run_config(&base, &lp, &params[i], &summaries[i], &events[i, 0], ncap,
                        &records[i, 0, 0] if nrec > 0 else NULL, dense)


def struct_sizes():
    """sizeof of the packed structs, for the schema test against backtest/schema.py."""
    return {"Params": sizeof(Params), "Summary": sizeof(Summary), "Event": sizeof(Event)}


# --------------------------------------------------------------------------- multi-collateral positions
include "_legs.pxi"
include "_legs_replay.pxi"
include "_paths.pxi"
include "_book.pxi"
