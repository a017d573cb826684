# Index accrual by rate model and Morpho's AdaptiveCurveIRM, inline and nogil (PROTOCOLS.md). A venue names its
# rate model in its registry record (backtest/venues/*: Venue.growth); the codes below are the positions of the
# names in backtest.venues.base.SUPPLY_GROWTH / BORROW_GROWTH (_core.growth_codes(), tests/unit/test_schema.py).
from libc.math cimport exp
from _math cimport (SECONDS_PER_YEAR, aave_borrow_growth, aave_supply_growth, morpho_borrow_growth,
                    linear_growth)

cdef extern from *:
    """
    #define BT_IRM_TARGET_U 0.9
    #define BT_IRM_STEEPNESS 4.0
    #define BT_IRM_SPEED 50.0
    #define BT_IRM_MIN_RT 0.001
    #define BT_IRM_MAX_RT 2.0
    """
    const double IRM_TARGET_U "BT_IRM_TARGET_U"        # ConstantsLib.TARGET_UTILIZATION = 0.9
    const double IRM_STEEPNESS "BT_IRM_STEEPNESS"      # CURVE_STEEPNESS = 4
    const double IRM_SPEED "BT_IRM_SPEED"              # ADJUSTMENT_SPEED = 50 / year
    const double IRM_MIN_RT "BT_IRM_MIN_RT"            # MIN_RATE_AT_TARGET = 0.1 % / year
    const double IRM_MAX_RT "BT_IRM_MAX_RT"            # MAX_RATE_AT_TARGET = 200 % / year


cdef enum:
    SUPPLY_LINEAR = 0       # Aave's liquidity index (Aave family, generic, Aave v4's supplied assets)
    SUPPLY_NONE = 1         # collateral is not lent out: it earns nothing (Morpho Blue, Comet)
    N_SUPPLY_MODELS = 2
    BORROW_BINOMIAL = 0     # Aave's variable borrow index: 3-term binomial
    BORROW_TAYLOR = 1       # Morpho's wTaylorCompounded
    BORROW_LINEAR = 2       # simple interest per accrual (Comet's baseBorrowIndex, Aave v4's drawn index)
    N_BORROW_MODELS = 3


cdef inline void index_growth(long supply_model, long borrow_model, double supply_apr, double borrow_apr,
                              double dt, double* gs, double* gb) noexcept nogil:
    # growth of the collateral's supply index (gs) and of the debt's borrow index (gb) over dt seconds
    if supply_model == SUPPLY_NONE:
        gs[0] = 1.0
    else:
        gs[0] = aave_supply_growth(supply_apr, dt)
    if borrow_model == BORROW_TAYLOR:
        gb[0] = morpho_borrow_growth(borrow_apr, dt)
    elif borrow_model == BORROW_LINEAR:
        gb[0] = linear_growth(borrow_apr, dt)
    else:
        gb[0] = aave_borrow_growth(borrow_apr, dt)


cdef inline double supply_increment(long supply_model, double supply_apr, double dt) noexcept nogil:
    # gs - 1 computed directly: subtracting 1 from gs (~1 + 1e-10 per block) keeps only ~6 digits of it
    if supply_model == SUPPLY_NONE or dt <= 0:
        return 0.0
    return supply_apr * dt / SECONDS_PER_YEAR


cdef inline double irm_err(double u) noexcept nogil:
    # normalised distance to the target utilisation, in [-1, 1] (u is clamped to [0, 1] first)
    if u < 0.0:
        u = 0.0
    elif u > 1.0:
        u = 1.0
    if u > IRM_TARGET_U:
        return (u - IRM_TARGET_U) / (1.0 - IRM_TARGET_U)
    return (u - IRM_TARGET_U) / IRM_TARGET_U


cdef inline double irm_curve(double rate_at_target, double err) noexcept nogil:
    # ((1 - 1/C) err + 1) r_T below target, ((C - 1) err + 1) r_T above
    if err < 0:
        return ((1.0 - 1.0 / IRM_STEEPNESS) * err + 1.0) * rate_at_target
    return ((IRM_STEEPNESS - 1.0) * err + 1.0) * rate_at_target


cdef inline double irm_new_rate_at_target(double start, double linear_adaptation) noexcept nogil:
    # r_T exp(adaptation), bounded to [MIN, MAX]
    cdef double r = start * exp(linear_adaptation)
    if r < IRM_MIN_RT:
        return IRM_MIN_RT
    if r > IRM_MAX_RT:
        return IRM_MAX_RT
    return r


cdef inline double irm_step(double start_rt, double u, double dt, double* end_rt) noexcept nogil:
    # the average borrow rate charged over an interval of dt seconds that starts at utilisation u with rate
    # at target start_rt; end_rt receives the rate at target at its end (AdaptiveCurveIrm._borrowRate)
    cdef double err = irm_err(u), lin, mid, avg
    lin = IRM_SPEED * err * dt / SECONDS_PER_YEAR
    if lin == 0.0:
        end_rt[0] = start_rt
        return irm_curve(start_rt, err)
    end_rt[0] = irm_new_rate_at_target(start_rt, lin)
    mid = irm_new_rate_at_target(start_rt, lin / 2.0)
    avg = (start_rt + end_rt[0] + 2.0 * mid) / 4.0        # trapezoid with N = 2
    return irm_curve(avg, err)
