# Aave v4 (Hub & Spoke), inline and nogil: health factor, HF-dependent bonus, liquidation to a target HF with
# the $1,000 dust rules, deficit, user risk premium, premium debt on shares, drawn index growth.
# The rules, their sources and their units are stated in backtest/venues/aave_v4.py (the spec these functions
# match: same formulas in the same order, so the pure helpers equal the spec bit for bit on doubles).
# Values are USD (the Spoke's base currency): p_coll, p_debt are USD per token; amounts are tokens (collateral)
# and debt-asset units (debt).
from libc.math cimport INFINITY, NAN
from _types cimport Params, Mkt, State, Out
from _position cimport coll_of, settle, book_liquidation, write_off_bad_debt

cdef extern from *:
    """
    #define BT_V4_DUST_USD 1000.0
    #define BT_V4_SECONDS_PER_YEAR 31536000.0
    """
    const double V4_DUST_USD "BT_V4_DUST_USD"                   # DUST_LIQUIDATION_THRESHOLD = 1000e26 ($, 26 dec.)
    const double V4_SECONDS_PER_YEAR "BT_V4_SECONDS_PER_YEAR"   # MathUtils.SECONDS_PER_YEAR = 365 days

cdef enum:
    V4_MAX_COLLATERALS = 16         # collaterals v4_risk_premium sorts (more: NaN)


# The risk parameters of one collateral reserve on one Spoke (fractions, not bps; see aave_v4.KEYS).
cdef struct V4Spoke:
    double collateral_factor        # CF in (0, 1): HF weight and borrow limit
    double max_lb                   # maxLiquidationBonus as a multiplier (1.01); max_lb x CF < 1
    double bonus_factor             # liquidationBonusFactor in [0, 1]
    double hf_for_max_bonus         # healthFactorForMaxBonus in [0, 1)
    double target_hf                # targetHealthFactor >= 1
    double liquidation_fee          # share of the bonus to the protocol, [0, 1]
    double collateral_risk          # [0, 10]; the user risk premium with this one collateral

# A user's debt on one reserve as the Spoke stores it (UserPositionDebt): the total is
# drawn_shares x index + (premium_shares x index - premium_offset).
cdef struct V4Debt:
    double drawn_shares
    double premium_shares
    double premium_offset           # debt-asset units

# What one liquidationCall does (tokens and debt-asset units).
cdef struct V4Liq:
    double repaid
    double seized
    double fee                      # tokens of the seized paid to the protocol
    double coll_after
    double debt_after
    double deficit                  # debt cleared with no collateral left
    double hf                       # health factor before
    double lb                       # bonus applied


cdef inline double v4_health_factor(double coll, double p_coll, double cf, double debt,
                                    double p_debt) noexcept nogil:
    if debt <= 0.0:
        return INFINITY
    return coll * p_coll * cf / (debt * p_debt)


cdef inline double v4_liquidation_bonus(double hf, double max_lb, double bonus_factor,
                                        double hf_for_max_bonus) noexcept nogil:
    # maxLB at or below HF_maxBonus, else linear from minLB = 1 + (maxLB - 1) x factor at HF 1
    cdef double min_lb
    if hf <= hf_for_max_bonus:
        return max_lb
    min_lb = (max_lb - 1.0) * bonus_factor + 1.0
    return min_lb + (max_lb - min_lb) * (1.0 - hf) / (1.0 - hf_for_max_bonus)


cdef inline double v4_debt_to_target(double total_debt_value, double hf, double target_hf, double lb,
                                     double cf, double p_debt) noexcept nogil:
    return total_debt_value * (target_hf - hf) / ((target_hf - lb * cf) * p_debt)


cdef inline bint v4_liquidation_amounts(double coll, double debt, double p_coll, double p_debt, double hf,
                                        double total_debt_value, const V4Spoke* sp, double offered,
                                        bint other_collateral, V4Liq* out) noexcept nogil:
    # One liquidationCall (LiquidationLogic._calculateLiquidationAmounts) seizing coll of one collateral
    # reserve and repaying debt of one debt reserve, for an account at health factor hf owing
    # total_debt_value (USD, all debts): the debt rules (target HF, $1,000 of debt left), then the collateral
    # cap and the $1,000 of collateral left, then the offer check and the fee; the deficit when no collateral
    # is left (other_collateral: another one is). False when healthy or when the call would revert.
    cdef double cf = sp.collateral_factor, lb, repaid, to_target, seized
    cdef bint coll_dust
    if not hf < 1.0 or coll <= 0.0 or debt <= 0.0 or offered <= 0.0:
        return False
    lb = v4_liquidation_bonus(hf, sp.max_lb, sp.bonus_factor, sp.hf_for_max_bonus)
    repaid = debt if debt < offered else offered
    to_target = v4_debt_to_target(total_debt_value, hf, sp.target_hf, lb, cf, p_debt)
    if to_target < repaid:
        repaid = to_target
    if repaid < debt and (debt - repaid) * p_debt < V4_DUST_USD:
        repaid = debt
    seized = repaid * p_debt * lb / p_coll
    coll_dust = seized < coll and (coll - seized) * p_coll < V4_DUST_USD
    if seized > coll or (coll_dust and repaid < debt):
        seized = coll
        repaid = coll * p_coll / (p_debt * lb)
    if offered < repaid:
        return False                                    # MustNotLeaveDust: the call reverts
    out.repaid = repaid
    out.seized = seized
    out.fee = seized * sp.liquidation_fee * (lb - 1.0) / lb
    out.coll_after = coll - seized
    out.debt_after = debt - repaid
    out.deficit = 0.0
    out.hf = hf
    out.lb = lb
    if out.coll_after == 0.0 and not other_collateral and out.debt_after > 0.0:
        out.deficit = out.debt_after
        out.debt_after = 0.0
    return True


cdef inline double v4_risk_premium(const double* values, const double* risks, Py_ssize_t n,
                                   double total_debt_value) noexcept nogil:
    # Collaterals sorted by risk ascending, value descending (a stable insertion sort, as the spec's sorted())
    # cover the debt value in turn; RP = value-weighted risk of what covers it; 0 without debt.
    cdef Py_ssize_t order[V4_MAX_COLLATERALS]
    cdef Py_ssize_t i, j, k
    cdef double left = total_debt_value, weighted = 0.0, used, covered
    if n > V4_MAX_COLLATERALS:
        return NAN
    for i in range(n):
        k = i
        j = i
        while j > 0 and (risks[order[j - 1]] > risks[k]
                         or (risks[order[j - 1]] == risks[k] and values[order[j - 1]] < values[k])):
            order[j] = order[j - 1]
            j -= 1
        order[j] = k
    for i in range(n):
        if left <= 0.0:
            break
        k = order[i]
        used = values[k] if values[k] < left else left
        weighted += used * risks[k]
        left -= used
    covered = total_debt_value - left
    return weighted / covered if covered > 0.0 else 0.0


cdef inline double v4_borrow_rate(double drawn_rate, double risk_premium) noexcept nogil:
    return drawn_rate * (1.0 + risk_premium)


cdef inline double v4_drawn_index_growth(double drawn_rate, double dt) noexcept nogil:
    # AssetLogic.getDrawnIndex: index x (1 + rate x dt / Y) at each accrual
    if dt <= 0.0:
        return 1.0
    return 1.0 + drawn_rate * dt / V4_SECONDS_PER_YEAR


# --- premium accounting on shares ---------------------------------------------------------------------
cdef inline double v4_premium(const V4Debt* d, double index) noexcept nogil:
    return d.premium_shares * index - d.premium_offset


cdef inline double v4_total_debt(const V4Debt* d, double index) noexcept nogil:
    return d.drawn_shares * index + v4_premium(d, index)


cdef inline void v4_refresh(V4Debt* d, double index, double risk_premium, double restored_premium) noexcept nogil:
    # premium shares from the drawn shares and the new RP; the offset keeps the premium left unchanged
    cdef double premium_left = v4_premium(d, index) - restored_premium
    cdef double shares = d.drawn_shares * risk_premium
    d.premium_shares = shares
    d.premium_offset = shares * index - premium_left


cdef inline void v4_draw(V4Debt* d, double index, double amount, double risk_premium) noexcept nogil:
    d.drawn_shares = d.drawn_shares + amount / index
    v4_refresh(d, index, risk_premium, 0.0)


cdef inline void v4_restore(V4Debt* d, double index, double amount, double risk_premium) noexcept nogil:
    # the premium first, then the drawn debt; all of it at or above the total
    cdef double premium = v4_premium(d, index), restored_premium
    if amount >= v4_total_debt(d, index):
        d.drawn_shares = 0.0
        d.premium_shares = 0.0
        d.premium_offset = 0.0
        return
    restored_premium = amount if amount < premium else premium
    d.drawn_shares = d.drawn_shares - (amount - restored_premium) / index
    v4_refresh(d, index, risk_premium, restored_premium)


# --- the venue's liquidation step on the engine's state ----------------------------------------------
cdef inline void aave_v4_liquidate(State* st, const Params* p, const Mkt* m, Out* o, Py_ssize_t b,
                                   const V4Spoke* sp, V4Debt* debt) noexcept nogil:
    # One liquidationCall per block while HF < 1 (a call restores the target HF, clears the debt or takes all
    # the collateral), the liquidator offering the whole debt. Collateral is st.s x sidx; the debt is `debt`
    # on the lane's drawn index bidx (st.d mirrors its drawn shares). Prices: oracle x eth_usd (USD per token)
    # and eth_usd (USD per debt-asset unit). Engine dust (st.dust) zeroes remainders as in the other venues.
    cdef V4Liq q
    cdef double idx = m.bidx[b], pc = m.por[b], usd = m.eth_usd[b], coll, owed, rp
    settle(st, m, o, b)
    coll = coll_of(st, m, b)
    owed = v4_total_debt(debt, idx)
    if owed <= st.dust or coll <= st.dust:
        return
    if not v4_liquidation_amounts(coll, owed, pc * usd, usd,
                                  v4_health_factor(coll, pc * usd, sp.collateral_factor, owed, usd),
                                  owed * usd, sp, INFINITY, False, &q):
        return
    coll = q.coll_after if q.coll_after > st.dust else 0.0
    rp = sp.collateral_risk if coll > 0.0 else 0.0          # the refresh after the call (0 on a deficit)
    v4_restore(debt, idx, q.repaid, rp)
    owed = v4_total_debt(debt, idx)
    if owed <= st.dust:                                     # a remainder within rounding of zero is none
        debt.drawn_shares = 0.0
        debt.premium_shares = 0.0
        debt.premium_offset = 0.0
    st.s = coll / m.sidx[b]
    st.d = debt.drawn_shares
    st.ps = debt.premium_shares
    st.po = debt.premium_offset
    book_liquidation(st, m, o, b, q.seized, q.repaid, q.seized * pc, q.seized * pc - q.repaid, q.fee * pc)
    owed = v4_total_debt(debt, idx)
    if coll == 0.0 and owed > st.dust:
        debt.drawn_shares = 0.0
        debt.premium_shares = 0.0
        debt.premium_offset = 0.0
        write_off_bad_debt(st, m, o, b, owed)


cdef inline void aave_v4_step(State* st, const Params* p, const Mkt* m, Out* o, Py_ssize_t b) noexcept nogil:
    # the engines' dispatch: the Spoke from the market (CF = lt, maxLB = 1 + bonus, fee = pfee at b) and the
    # configuration (bonus factor, HF for the max bonus, target HF, collateral risk), the debt from the State
    cdef V4Spoke sp
    cdef V4Debt debt
    sp.collateral_factor = m.lt[b]
    sp.max_lb = 1.0 + m.bonus[b]
    sp.bonus_factor = p.v4_bonus_factor
    sp.hf_for_max_bonus = p.v4_hf_max_bonus
    sp.target_hf = p.v4_target_hf
    sp.liquidation_fee = m.pfee[b]
    sp.collateral_risk = p.v4_collateral_risk
    debt.drawn_shares = st.d
    debt.premium_shares = st.ps
    debt.premium_offset = st.po
    aave_v4_liquidate(st, p, m, o, b, &sp, &debt)
