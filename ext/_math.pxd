# Pure math, inline and nogil: index growth (Aave MathUtils), slippage models, StableSwap.
from libc.math cimport fabs, sqrt

cdef extern from *:
    """
    #define BT_SECONDS_PER_YEAR 31536000.0
    """
    const double SECONDS_PER_YEAR "BT_SECONDS_PER_YEAR"   # Aave MathUtils: 365 days


cdef inline double aave_borrow_growth(double rate, double dt) noexcept nogil:
    # calculateCompoundedInterest: 1 + rt/Y + t(t-1)(r/Y)^2/2 + t(t-1)(t-2)(r/Y)^3/6
    cdef double rps
    if dt <= 0:
        return 1.0
    rps = rate / SECONDS_PER_YEAR
    return (1.0 + rps * dt + dt * (dt - 1.0) * rps * rps / 2.0
            + dt * (dt - 1.0) * (dt - 2.0) * rps * rps * rps / 6.0)


cdef inline double aave_supply_growth(double rate, double dt) noexcept nogil:
    # calculateLinearInterest: 1 + rt/Y
    if dt <= 0:
        return 1.0
    return 1.0 + rate * dt / SECONDS_PER_YEAR


cdef inline double stableswap_out(double dx, double depth, double amp) noexcept nogil:
    # 2-coin StableSwap with balances (depth, depth), A n^n = ann = 4 amp. A balanced pool has D = 2 depth
    # exactly; with x = depth + dx the new balance y = depth - u solves Curve's get_y quadratic
    # y^2 + (x + D/ann - D) y = D^3 / (4 ann x). Expanding around the balanced point (where it holds) gives
    # u^2 - B u + C = 0, B = depth + dx + 2 depth / ann, C = dx (depth + 2 depth^2 / (ann (depth + dx))),
    # whose smaller root 2C / (B + sqrt(B^2 - 4C)) has no cancellation: Newton on y then y0 - y loses
    # ~1e-15 x depth absolutely, which for a small trade in a deep pool is the whole slippage.
    cdef double ann = amp * 4.0, bq, cq
    if dx <= 0:
        return 0.0
    bq = depth + dx + 2.0 * depth / ann
    cq = dx * (depth + 2.0 * depth * depth / (ann * (depth + dx)))
    return 2.0 * cq / (bq + sqrt(bq * bq - 4.0 * cq))


cdef inline double slippage_fraction(long model, double notional, double slip_param,
                                     double depth, double amp) noexcept nogil:
    # fraction of the trade's value lost to price impact (0 = none, 1 = linear, 2 = stableswap, 3 = x*y=k)
    if notional <= 0 or model == 0:
        return 0.0
    if model == 1:
        return min(slip_param * notional / 1e4, 0.99)
    if model == 3:
        return notional / (depth + notional)
    return 1.0 - stableswap_out(notional, depth, amp) / notional


cdef inline double morpho_borrow_growth(double rate, double dt) noexcept nogil:
    # Morpho Blue MathLib.wTaylorCompounded: 1 + x + x^2/2 + x^3/6 with x = rate * dt / Y (e^x to 3 terms)
    cdef double x
    if dt <= 0:
        return 1.0
    x = rate * dt / SECONDS_PER_YEAR
    return 1.0 + x + x * x / 2.0 + x * x * x / 6.0


cdef inline double linear_growth(double rate, double dt) noexcept nogil:
    # Compound III accruedInterestIndices: index += index * rate * dt (simple interest between accruals)
    if dt <= 0:
        return 1.0
    return 1.0 + rate * dt / SECONDS_PER_YEAR


cdef inline double morpho_lif(double lltv) noexcept nogil:
    # Morpho.sol liquidate(): LIF = min(1.15, 1 / (1 - 0.3 * (1 - LLTV))) = min(1.15, 1 / (0.3 LLTV + 0.7))
    cdef double f = 1.0 / (1.0 - 0.3 * (1.0 - lltv))
    return f if f < 1.15 else 1.15
