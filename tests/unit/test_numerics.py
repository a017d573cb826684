"""backtest.numerics: the C library's exp / log / pow per element, with NumPy's answers at the edges."""
import math

import numpy as np

from backtest import numerics


def test_exp_is_the_c_librarys_per_element():
    x = np.array([0.0, 1.0, -1.0, 0.5, 709.0, 710.0, -800.0])
    got = numerics.exp(x)
    assert got[0] == 1.0 and got[1] == math.exp(1.0) and got[2] == math.exp(-1.0)
    assert got[3] == math.exp(0.5) and got[4] == math.exp(709.0)
    assert got[5] == math.inf            # past the float range: NumPy's inf, not math's OverflowError
    assert got[6] == 0.0
    assert got.dtype == np.float64 and got.shape == x.shape


def test_log_edges_follow_numpy():
    got = numerics.log(np.array([1.0, math.e, 0.0, -1.0, np.nan]))
    assert got[0] == 0.0 and got[1] == 1.0
    assert got[2] == -math.inf and math.isnan(got[3]) and math.isnan(got[4])


def test_power_and_scalars():
    got = numerics.power(np.array([4.0, 2.0, 0.0, -8.0, 1e300]), np.array([0.5, 10.0, -1.0, 1.0 / 3.0, 2.0]))
    assert got[0] == 2.0 and got[1] == 1024.0
    assert got[2] == math.inf            # 0 to a negative power
    assert math.isnan(got[3])            # a negative base to a fraction has no real value
    assert got[4] == math.inf            # overflow
    assert numerics.power(1.21, 0.5) == math.pow(1.21, 0.5)
    assert float(numerics.exp(2.0)) == math.exp(2.0) and float(numerics.log(10.0)) == math.log(10.0)


def test_matches_math_on_many_draws():
    x = np.random.default_rng(7).normal(0.0, 5.0, 10_000)
    assert np.array_equal(numerics.exp(x), np.array([math.exp(v) for v in x]))
    y = np.abs(x) + 1e-3
    assert np.array_equal(numerics.log(y), np.array([math.log(v) for v in y]))
    assert np.array_equal(numerics.power(y, 1.0 / 3.0), np.array([math.pow(v, 1.0 / 3.0) for v in y]))


def test_log1p_and_expm1_near_zero_and_at_the_edges():
    assert numerics.log1p(np.array([1e-20]))[0] == 1e-20        # log(1 + 1e-20) would round to 0
    assert numerics.expm1(np.array([1e-20]))[0] == 1e-20
    got = numerics.log1p(np.array([-1.0, -2.0, 1.0]))
    assert got[0] == -math.inf and math.isnan(got[1]) and got[2] == math.log(2.0)
    assert numerics.expm1(np.array([800.0]))[0] == math.inf
    assert float(numerics.expm1(1.0)) == math.expm1(1.0) and float(numerics.log1p(0.5)) == math.log1p(0.5)
