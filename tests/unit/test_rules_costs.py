"""Costs by hand, through both engines: each slippage model inside a swap entry, and gas (fixed or series).

A `lend` position with a swap entry buys tokens once at block 0: fee = amount x swap_fee, the rest (net) goes
through the pool model, tokens = (net - slippage) / price. Prices are 1 unless said, so tokens = WETH out.
"""
import numpy as np
import pytest

from tests.helpers import check_both, market, params


def swap_entry(**kw):
    return params(kind="lend", entry="swap", **kw)


def stableswap_dy_by_hand(dx, depth, amp):
    """Solve the 2-coin invariant 4A(x + y) + D = 4AD + D^3 / (4xy) for y at x = depth + dx by bisection
    (D = 2 depth at balance); the output is depth - y. Independent of the engines' closed form."""
    D, x = 2.0 * depth, depth + dx

    def f(y):       # increasing in y
        return 4 * amp * (x + y) + D - 4 * amp * D - D ** 3 / (4 * x * y)
    lo, hi = 1e-9, depth
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) < 0 else (lo, mid)
    return depth - (lo + hi) / 2


# --- slippage models --------------------------------------------------------------------------------
def test_constant_product_output_is_x_y_k():
    # x y = k with balances (1000, 1000): fee 0.3 % of 100 leaves 99.7, out = 1000 * 99.7 / (1000 + 99.7)
    # = 90.6611 (the price impact 99.7 - 90.6611 = 9.0389 is the slippage cost)
    m = market(np.ones(3))
    p = swap_entry(swap_fee=0.003, slip_model="constant-product", pool_depth=1000.0)
    out_tokens = 1000 * 99.7 / (1000 + 99.7)
    assert out_tokens == pytest.approx(90.6611, rel=1e-5)

    def fn(out):
        s = out.summaries[0]
        assert s["end_collateral"] == pytest.approx(out_tokens, rel=1e-12)
        assert s["swap_fee_cost"] == pytest.approx(0.3, rel=1e-12)
        assert s["slippage_cost"] == pytest.approx(99.7 - out_tokens, rel=1e-12)
    check_both(m, p, fn)


def test_constant_product_at_a_price_converts_the_output():
    # the pool trades value: out value = depth * net / (depth + net) WETH, tokens = that / P. P = 0.8,
    # depth 500, no fee: 500 * 100 / 600 = 83.333 WETH of tokens = 104.1667 tokens
    m = market(np.full(3, 0.8))
    p = swap_entry(slip_model="constant-product", pool_depth=500.0)

    def fn(out):
        assert out.summaries[0]["end_collateral"] == pytest.approx(500 * 100 / 600 / 0.8, rel=1e-12)
    check_both(m, p, fn)


@pytest.mark.parametrize("amp", [2.0, 200.0])
def test_stableswap_output_depends_on_the_amplification(amp):
    # 100 into a (1000, 1000) pool: A = 2 gives 98.03, A = 200 gives 99.97 (flatter curve, less impact); both
    # from the invariant solved by bisection above, and far from the constant-product 90.909
    m = market(np.ones(3))
    p = swap_entry(slip_model="stableswap", pool_depth=1000.0, amp=amp)
    dy = stableswap_dy_by_hand(100.0, 1000.0, amp)
    other = stableswap_dy_by_hand(100.0, 1000.0, 202.0 - amp)
    assert abs(dy - other) > 1.9           # the two amplifications really differ
    assert 98.0 < dy < 100.0

    def fn(out):
        s = out.summaries[0]
        assert s["end_collateral"] == pytest.approx(dy, rel=1e-10)
        assert s["slippage_cost"] == pytest.approx(100.0 - dy, rel=1e-8)
    check_both(m, p, fn)


def test_linear_slippage_on_every_loop_leg():
    # 2 loops at x = 0.5, swap entry, linear 1 bp per WETH: each buy of a keeps a (1 - a / 1e4)
    # c0 = 100 (1 - .01) = 99; leg 1 borrows .5 * 99 = 49.5 -> 49.5 (1 - .00495) = 49.254975;
    # leg 2 borrows .5 * 49.254975 = 24.6274875 -> 24.6274875 (1 - .00246274875)
    m = market(np.ones(3))
    p = params(entry="swap", loops=2, target_ltv=0.5, slip_model="linear", slip_param=1.0)
    c0 = 100 * (1 - 100 / 1e4)
    b1 = 0.5 * c0
    c1 = b1 * (1 - b1 / 1e4)
    b2 = 0.5 * c1
    c2 = b2 * (1 - b2 / 1e4)

    def fn(out):
        s = out.summaries[0]
        assert s["end_collateral"] == pytest.approx(c0 + c1 + c2, rel=1e-12)
        assert s["end_debt"] == pytest.approx(b1 + b2, rel=1e-12)
        assert s["slippage_cost"] == pytest.approx(100 + b1 + b2 - (c0 + c1 + c2), rel=1e-10)
    check_both(m, p, fn)


# --- gas ----------------------------------------------------------------------------------------------
def test_a_fixed_gas_price_ignores_the_markets_series():
    # gas_gwei = 50 is the price; the market says 20 gwei: open 600k + 2 loops of 250k = 1.1e6 units
    # -> 1.1e6 * 50 * 1e-9 = 0.055 WETH (0.022 if the series were read)
    m = market(np.ones(3), gas=20.0)
    p = params(loops=2, gas_gwei=50.0, gas_open=6e5, gas_loop=2.5e5)

    def fn(out):
        s = out.summaries[0]
        assert s["gas_cost"] == pytest.approx(1.1e6 * 50 * 1e-9, rel=1e-12)
        assert s["end_equity"] == pytest.approx(100 - 1.1e6 * 50 * 1e-9, rel=1e-12)
    check_both(m, p, fn)


def test_gas_series_is_read_at_the_block_of_each_action():
    # series 10, 40, 40 gwei: open + 2 loops at block 0 (1.1e6 units x 10 gwei = 0.011 WETH); the unwind at
    # the last block (gas_close 3e5 x 40 gwei = 0.012). Gas is paid in ETH = the WETH debt asset.
    m = market(np.ones(3))
    m.gas_gwei[:] = [10.0, 40.0, 40.0]
    p = params(loops=2, gas_gwei=np.nan, gas_open=6e5, gas_loop=2.5e5, gas_close=3e5, unwind_at_end=1)
    gas = 1.1e6 * 10e-9 + 3e5 * 40e-9

    def fn(out):
        s = out.summaries[0]
        assert s["gas_cost"] == pytest.approx(gas, rel=1e-12)
        assert s["end_equity"] == pytest.approx(100 - gas, rel=1e-12)
    check_both(m, p, fn)


def test_gas_of_a_rebalance_at_a_fixed_price():
    # a deleverage at block 1 (P = 0.5, HF 1.0028 < 1.05) pays gas_reb 4e5 units at the fixed 30 gwei = 0.012,
    # while the series says 500 gwei; open 6e5 and one loop 2.5e5 also at 30 gwei
    m = market([1.0, 0.5, 0.5], gas=500.0)
    p = params(gas_gwei=30.0, gas_open=6e5, gas_loop=2.5e5, gas_reb=4e5, reb_on=1, check_every=12,
               delev_below=1.05, target_hf=1.2)

    def fn(out):
        s = out.summaries[0]
        assert s["n_rebalances"] == 1
        assert s["gas_cost"] == pytest.approx((6e5 + 2.5e5 + 4e5) * 30e-9, rel=1e-12)
    check_both(m, p, fn)
