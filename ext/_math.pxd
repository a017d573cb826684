# Pure math, inline and nogil: index growth (Aave MathUtils), slippage models, StableSwap.
from libc.math cimport fabs

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
    # 2-coin StableSwap with balances (depth, depth): Newton on D, then on the new output balance y.
    cdef double x0 = depth, y0 = depth, ann = amp * 4.0
    cdef double s = x0 + y0, d = s, d_p, d_prev, x, c, b, y, y_prev
    cdef int i
    if dx <= 0:
        return 0.0
    for i in range(255):
        d_p = d * d * d / (4.0 * x0 * y0)
        d_prev = d
        d = (ann * s + 2.0 * d_p) * d / ((ann - 1.0) * d + 3.0 * d_p)
        if fabs(d - d_prev) <= 1e-15 * d:
            break
    x = x0 + dx
    c = d * d / (2.0 * x) * d / (2.0 * ann)
    b = x + d / ann
    y = d
    for i in range(255):
        y_prev = y
        y = (y * y + c) / (2.0 * y + b - d)
        if fabs(y - y_prev) <= 1e-15 * y:
            break
    return y0 - y


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
