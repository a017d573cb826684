"""Hand-worked rules of the strategy book (lp, vault, basket, farm), through both engines.

Every expected number is derived here from the rule (PROTOCOLS.md "Pools and farms", DESIGN.md section 3);
the StableSwap invariant D of an unbalanced pool is found by bisection on the invariant itself (not the
engines' Newton iteration).
"""
import numpy as np
import pytest

from backtest import _core
from backtest import reference_book as ref
from backtest.schema import EVENT_KINDS
from backtest.venues import growth_codes

Y = 365 * 86400
ENGINES = {"core": _core, "reference": ref}


def named(fields, vec):
    return dict(zip(fields, vec))


def invariant_d(x0, x1, A):
    """D solving 4A (x0 + x1) + D = 4A D + D^3 / (4 x0 x1), by bisection on [0, x0 + x1]."""
    lo, hi = 0.0, x0 + x1
    f = lambda d: 4 * A * (x0 + x1) + d - 4 * A * d - d ** 3 / (4 * x0 * x1)   # noqa: E731
    for _ in range(200):
        mid = (lo + hi) / 2
        if f(mid) > 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


# ------------------------------------------------------------------------------------------------- lp
def test_a_balanced_pool_has_d_equal_to_its_balances_and_price_one():
    assert _core.stableswap_invariant(100.0, 100.0, 50.0) == pytest.approx(200.0, rel=1e-14)
    assert ref.stableswap_d(100.0, 100.0, 50.0) == pytest.approx(200.0, rel=1e-14)
    assert _core.stableswap_pool_price(100.0, 100.0, 50.0) == pytest.approx(1.0, rel=1e-14)


def test_an_unbalanced_pools_invariant_and_price():
    x0, x1, A = 40.0, 160.0, 50.0            # 80 % stETH, as in June 2022
    d = invariant_d(x0, x1, A)
    assert ref.stableswap_d(x0, x1, A) == pytest.approx(d, rel=1e-12)
    assert _core.stableswap_invariant(x0, x1, A) == pytest.approx(d, rel=1e-12)
    # price of stETH in ETH = F_x1 / F_x0 = (4A + D^3 / (4 x1^2 x0)) / (4A + D^3 / (4 x1 x0^2))
    want = (4 * A + d ** 3 / (4 * x1 * x1 * x0)) / (4 * A + d ** 3 / (4 * x1 * x0 * x0))
    assert want < 1.0                        # the pool prices the over-supplied coin below par
    assert _core.stableswap_pool_price(x0, x1, A) == pytest.approx(want, rel=1e-12)
    assert ref.stableswap_price(x0, x1, A) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_lp_fee_income_through_the_virtual_price_and_no_loss_in_a_balanced_pool(engine):
    # block 0: 100 ETH + 100 stETH, D = 200, vp 1.0 -> supply 200; 10 ETH buys 10 LP tokens (each worth
    # (100 + 100 x 1) / 200 = 1 ETH) standing for 5 ETH + 5 stETH. Block 1: 110 + 110, vp 1.01, stETH 0.98 ETH
    r0, r1, vp, A = np.array([100.0, 110.0]), np.array([100.0, 110.0]), np.array([1.0, 1.01]), np.full(2, 50.0)
    price, gas = np.array([1.0, 0.98]), np.zeros(2)
    out, value, hold, share = ENGINES[engine].book_lp(r0, r1, vp, A, price, gas, 10.0, 0.0, 0.0)
    s = named(ref.LP_FIELDS, out)
    assert s["lp_tokens"] == pytest.approx(10.0, rel=1e-14)
    # value = tokens x (x0 + x1 P) / (D / vp) = 10 x (110 + 107.8) x 1.01 / 220 = 9.999
    assert value[1] == pytest.approx(10 * 217.8 * 1.01 / 220, rel=1e-13)
    assert hold[1] == pytest.approx(5 + 5 * 0.98, rel=1e-13)            # the deposit's coins held: 9.9
    assert s["fee_income"] == pytest.approx(10 * 0.01, rel=1e-12)       # tokens x (vp1 - vp0)
    # the share without its fee growth (9.999 / 1.01 = 9.9) against the coins held (9.9): no IL
    assert s["impermanent_loss"] == pytest.approx(0.0, abs=1e-12)
    assert share[1] == pytest.approx(0.5)


@pytest.mark.parametrize("engine", ENGINES)
def test_lp_in_a_depeg_holds_mostly_steth_and_loses_against_the_deposit(engine):
    # block 1: the pool went to 40 ETH + 160 stETH (80 %), stETH 0.95 ETH on the market, vp 1.001
    r0, r1 = np.array([100.0, 40.0]), np.array([100.0, 160.0])
    vp, A, price = np.array([1.0, 1.001]), np.full(2, 50.0), np.array([1.0, 0.95])
    gas = np.array([20.0, 30.0])
    out, value, hold, share = ENGINES[engine].book_lp(r0, r1, vp, A, price, gas, 10.0, 500000.0, 400000.0)
    s = named(ref.LP_FIELDS, out)
    g0, g1 = 500000 * 20e-9, 400000 * 30e-9                      # 0.01 and 0.012 ETH of gas
    tokens = 10.0 - g0                                            # each token worth 1 ETH at the deposit
    d1 = invariant_d(40.0, 160.0, 50.0)
    want = tokens * (40 + 160 * 0.95) * 1.001 / d1
    assert value[1] == pytest.approx(want, rel=1e-11)
    held = tokens / 200 * 100 + tokens / 200 * 100 * 0.95      # half ETH, half stETH held
    assert hold[1] == pytest.approx(held, rel=1e-13)
    assert s["impermanent_loss"] == pytest.approx(want / 1.001 - held, rel=1e-9)
    assert s["impermanent_loss"] < 0
    assert s["max_lst_share"] == pytest.approx(0.8) and s["lst_share_at_min"] == pytest.approx(0.8)
    assert s["end_value"] == pytest.approx(want - g1, rel=1e-11)
    assert s["gas_cost"] == pytest.approx(g0 + g1, rel=1e-13)
    assert s["max_drawdown"] == pytest.approx((value[0] - want) / value[0], rel=1e-9)


# ---------------------------------------------------------------------------------------------- vault
def vault_params(loop, target_ltv=0.8, band=0.05, every=3600, fee=0.0, mgmt=0.0, perf=0.0, gas=(0, 0, 0)):
    return np.array([0, loop, 100.0, target_ltv, band, every, fee, *gas, mgmt, perf, *growth_codes("aave-v3")],
                    dtype=np.float64)


@pytest.mark.parametrize("engine", ENGINES)
def test_vault_charges_management_and_performance_fees_as_shares(engine):
    # a lend vault, one year between two blocks, the token up 10 %, no supply interest: NAV 100 -> 110.
    # management 2 %/yr on assets: 110 x 0.02 = 2.2; performance 10 % of the gain over the high-water mark
    # (price per share 1.0 -> 1.1): 0.1 x 0.1 x 100 shares = 1.0. The holder keeps 110 - 3.2 = 106.8
    ts = np.array([0, Y], dtype=np.int64)
    px = np.array([1.0, 1.1])
    z, one = np.zeros(2), np.ones(2)
    out, value, _ = ENGINES[engine].book_vault(ts, px, px, z, z, one * 0.9, one * 0.05, z,
                                               vault_params(0, mgmt=0.02, perf=0.1))
    s = named(ref.VAULT_FIELDS, out)
    assert s["management_fee_paid"] == pytest.approx(2.2, rel=1e-12)
    assert s["performance_fee_paid"] == pytest.approx(1.0, rel=1e-12)
    assert s["end_value"] == pytest.approx(106.8, rel=1e-12)
    assert s["vault_end_value"] == pytest.approx(110.0, rel=1e-12)   # the assets stay invested
    assert s["hold_end_value"] == pytest.approx(110.0, rel=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_vault_loop_opens_at_the_target_and_releverages_back_to_it(engine):
    # open: F = x q C / (1 - x q), q = 1: 0.8 x 100 / 0.2 = 400 borrowed, 500 tokens, LTV 0.8.
    # a day later the token is worth 1.25: LTV 400 / 625 = 0.64 < 0.75 -> borrow
    # F = (0.8 x 500 x 1.25 - 400) / (1 - 0.8 x 1.25 / 1.25) = 500, buying 400 tokens: 900 tokens, debt 900
    ts = np.array([0, 86400], dtype=np.int64)
    px = np.array([1.0, 1.25])
    z, one = np.zeros(2), np.ones(2)
    out, value, ev = ENGINES[engine].book_vault(ts, px, px, z, z, one * 0.95, one * 0.01, z, vault_params(1))
    s = named(ref.VAULT_FIELDS, out)
    assert s["n_rebalances"] == 1
    # events: the open (500 tokens, 400 borrowed) and the releverage (+400 tokens, +500 debt), HF 0.95 / 0.8
    assert ev[:, 1].tolist() == [EVENT_KINDS["open"], EVENT_KINDS["rebalance"]]
    assert ev[0, 2:4].tolist() == pytest.approx([500.0, 400.0]) and ev[1, 2:4].tolist() == pytest.approx([400, 500])
    assert ev[1, 5] == pytest.approx(900 * 1.25 * 0.95 / 900)
    assert s["end_collateral"] == pytest.approx(900.0, rel=1e-12)
    assert s["end_debt"] == pytest.approx(900.0, rel=1e-12)
    assert s["end_value"] == pytest.approx(900 * 1.25 - 900, rel=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_vault_loop_deleverages_back_to_the_target(engine):
    # the token falls to 0.9: LTV 400 / 450 = 0.889 > 0.85 -> sell s = (400 - 0.8 x 500 x 0.9) / (0.9 - 0.8 x 0.9)
    # = 222.2 tokens, repaying 200: 277.8 tokens against 200, LTV 0.8 (HF 277.8 x 0.9 x 0.95 / 200 = 1.1875)
    ts = np.array([0, 86400], dtype=np.int64)
    px = np.array([1.0, 0.9])
    z, one = np.zeros(2), np.ones(2)
    out, _, ev = ENGINES[engine].book_vault(ts, px, px, z, z, one * 0.95, one * 0.01, z, vault_params(1))
    s = named(ref.VAULT_FIELDS, out)
    sold = (400 - 0.8 * 500 * 0.9) / (0.9 - 0.8 * 0.9)
    assert s["end_collateral"] == pytest.approx(500 - sold, rel=1e-12)
    assert s["end_debt"] == pytest.approx(400 - sold * 0.9, rel=1e-12)
    assert s["end_debt"] / (s["end_collateral"] * 0.9) == pytest.approx(0.8, rel=1e-12)
    assert s["liq_count"] == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_vault_is_liquidated_by_aaves_close_factor_until_healthy(engine):
    # no rebalance check falls inside the window; the oracle drops to 0.85 with LT 0.9, bonus 5 %:
    # HF 500 x 0.85 x 0.9 / 400 = 0.956 (> 0.95: half the debt per call), repeated while HF < 1
    ts = np.array([0, 60], dtype=np.int64)
    px = np.array([1.0, 0.85])
    z, one = np.zeros(2), np.ones(2)
    out, _, ev = ENGINES[engine].book_vault(ts, px, px, z, z, one * 0.9, one * 0.05, z, vault_params(1, every=86400))
    s = named(ref.VAULT_FIELDS, out)
    coll, debt, calls, pen = 500.0, 400.0, 0, 0.0
    while coll * 0.85 * 0.9 / debt < 1:
        rep = 0.5 * debt
        seize = rep * 1.05 / 0.85
        coll, debt, calls, pen = coll - seize, debt - rep, calls + 1, pen + seize * 0.85 - rep
    assert calls == 3                        # 0.956 -> 0.968 -> 0.990 -> 1.035
    assert s["liq_count"] == calls
    liq = ev[ev[:, 1] == EVENT_KINDS["liquidation"]]
    assert liq[:, 3].tolist() == pytest.approx([-200.0, -100.0, -50.0])       # half the debt each call
    assert liq[:, 4].tolist() == pytest.approx([10.0, 5.0, 2.5])             # 5 % of the repay each
    assert (liq[:, 0] == 1).all() and liq[-1, 5] == pytest.approx(coll * 0.85 * 0.9 / debt)
    assert s["end_collateral"] == pytest.approx(coll, rel=1e-12)
    assert s["end_debt"] == pytest.approx(debt, rel=1e-12)
    assert s["liq_penalty"] == pytest.approx(0.05 * (200 + 100 + 50), rel=1e-12)
    assert pen == pytest.approx(17.5)


# --------------------------------------------------------------------------------------------- basket
@pytest.mark.parametrize("engine", ENGINES)
def test_basket_reweighting_against_holding_and_the_natives(engine):
    # 1,000 split 50/50; A doubles at block 1 and falls back at block 2, B is flat. Re-weighted at block 1:
    # 1,500 -> 750 / 750 (375 A at 2, 750 B), so block 2 is 375 + 750 = 1,125; never re-weighted: 500 + 500
    ts = np.array([0, 86400, 2 * 86400], dtype=np.int64)
    px = np.array([[1.0, 2.0, 1.0], [1.0, 1.0, 1.0]])
    nat = np.array([[1.0, 1.9, 1.0], [1.0, 1.0, 1.0]])
    w = np.array([0.5, 0.5])
    eng = ENGINES[engine]
    out, value, bench, units, ev = eng.book_basket(ts, px, nat, w, 1000.0, 0.0, 86400)
    s = named(ref.BASKET_FIELDS, out)
    assert value[1] == pytest.approx(1500.0) and s["end_value"] == pytest.approx(1125.0, rel=1e-13)
    # the natives re-weighted on the same schedule: 1,450 -> 725 / 725 (381.58 A at 1.9), then 381.58 + 725
    assert s["bench_end_value"] == pytest.approx(725 / 1.9 + 725, rel=1e-13)
    assert s["n_rebalances"] == 2
    # events: the open and both re-weightings, debt = the notional traded (|1000 - 750| + |500 - 750| = 500)
    assert ev[:, 1].tolist() == [EVENT_KINDS["open"], EVENT_KINDS["rebalance"], EVENT_KINDS["rebalance"]]
    assert ev[1, 3] == pytest.approx(500.0)
    out, *_ = eng.book_basket(ts, px, nat, w, 1000.0, 0.0, 0)
    assert named(ref.BASKET_FIELDS, out)["end_value"] == pytest.approx(1000.0, rel=1e-13)
    assert named(ref.BASKET_FIELDS, out)["max_drawdown"] == pytest.approx(1 / 3, rel=1e-13)


@pytest.mark.parametrize("engine", ENGINES)
def test_basket_pays_the_swap_fee_on_every_leg_traded(engine):
    # fee 0.1 %: entry 1,000 x 0.001 = 1 (499.5 of each). Block 1: 999 + 499.5 = 1,498.5, legs off target by
    # 249.75 each, traded 499.5 -> fee 0.4995, value 1,498.0005
    ts = np.array([0, 86400], dtype=np.int64)
    px = np.array([[1.0, 2.0], [1.0, 1.0]])
    out, value, _, _, _ = ENGINES[engine].book_basket(ts, px, px.copy(), np.array([0.5, 0.5]), 1000.0, 0.001, 86400)
    s = named(ref.BASKET_FIELDS, out)
    assert s["swap_fee_cost"] == pytest.approx(1.0 + 0.4995, rel=1e-12)
    assert s["end_value"] == pytest.approx(1498.5 - 0.4995, rel=1e-12)


# ----------------------------------------------------------------------------------------------- farm
@pytest.mark.parametrize("engine", ENGINES)
def test_farm_emissions_halve_rewards_are_sold_on_schedule_and_the_deposit_exits(engine):
    # 1,000 deposited at 1.0; 0.01 reward tokens per deposited token per day, halving every 2 days; sold every
    # 2 days; exit after 3 days. Day 1: 10 accrued (1000 x 0.01). Day 2: + 1000 x 0.01 x 0.5^(1/2) = 7.071,
    # sold at 2 -> 34.14. Day 3: + 1000 x 0.01 x 0.5^1 = 5, sold at the exit at 2 -> 10, the deposit sold at 1.
    d = 86400
    ts = np.arange(5, dtype=np.int64) * d
    rate = np.full(5, 0.01 / d)
    rprice = np.array([4.0, 4.0, 2.0, 2.0, 1.0])
    out, value, ev = ENGINES[engine].book_farm(ts, np.ones(5), rate, rprice, 1000.0, 0.0, 2.0 * d, 2 * d, 3 * d)
    s = named(ref.FARM_FIELDS, out)
    day2 = 1000 * 0.01 * 0.5 ** 0.5
    assert value[1] == pytest.approx(1000 + 10 * 4, rel=1e-12)
    assert value[2] == pytest.approx(1000 + (10 + day2) * 2, rel=1e-12)
    assert s["reward_tokens_earned"] == pytest.approx(10 + day2 + 5, rel=1e-12)
    assert s["rewards_sold_value"] == pytest.approx((10 + day2) * 2 + 5 * 2, rel=1e-12)
    assert s["exit_idx"] == 3
    assert s["end_value"] == pytest.approx(1000 + (10 + day2) * 2 + 10, rel=1e-12)   # nothing accrues after
    assert s["hold_end_value"] == pytest.approx(1000.0)
    # events: open, the day-2 sale (10 + 7.07 tokens for 34.14), the exit's sale (5 for 10) and the exit
    kinds = [EVENT_KINDS[k] for k in ("open", "reward_sale", "reward_sale", "exit")]
    assert ev[:, 1].tolist() == kinds and ev[:, 0].tolist() == [0, 2, 3, 3]
    assert ev[1, 2:4].tolist() == pytest.approx([10 + day2, (10 + day2) * 2]) and ev[3, 3] == pytest.approx(1000.0)


@pytest.mark.parametrize("engine", ENGINES)
def test_farm_halving_counts_from_the_first_emission_not_the_window_start(engine):
    # no emission over day 0 -> 1; from day 1 on 0.01 per token per day, halving daily: day 1 -> 2 earns
    # 1000 x 0.01 x 0.5^0 = 10, day 2 -> 3 earns 1000 x 0.01 x 0.5^1 = 5 (halvings counted from day 1)
    d = 86400
    ts = np.arange(4, dtype=np.int64) * d
    rate = np.array([0.0, 0.01 / d, 0.01 / d, 0.01 / d])
    out, _, _ = ENGINES[engine].book_farm(ts, np.ones(4), rate, np.ones(4), 1000.0, 0.0, float(d), 100 * d, 100 * d)
    s = named(ref.FARM_FIELDS, out)
    assert s["reward_tokens_earned"] == pytest.approx(15.0, rel=1e-12)
    assert s["reward_tokens_sold"] == 0 and s["unsold_reward_value"] == pytest.approx(15.0, rel=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_management_fee_is_charged_every_block(engine):
    # a flat NAV of 100 for 1,000 blocks of 12 s at 2 %/yr: each block mints fee / (NAV - fee) of the shares,
    # so the holder keeps 1 - 0.02 x 12 / Y per block: 100 x (1 - 0.02 x 12 / Y)^999 after the 999 accruals
    n = 1000
    ts = (np.arange(n) * 12).astype(np.int64)
    z, one = np.zeros(n), np.ones(n)
    out, value, _ = ENGINES[engine].book_vault(ts, one, one, z, z, one * 0.9, one * 0.05, z,
                                               vault_params(0, mgmt=0.02))
    s = named(ref.VAULT_FIELDS, out)
    want = 100 * (1 - 0.02 * 12 / Y) ** (n - 1)
    assert s["end_value"] == pytest.approx(want, rel=1e-12)
    assert s["management_fee_paid"] == pytest.approx(100 - want, abs=1e-10)   # 999 roundings of ~1e-14
    assert value[1] == pytest.approx(100 * (1 - 0.02 * 12 / Y), rel=1e-14)
    # charged once over the same time it would be 100 x (1 - 0.02 x 999 x 12 / Y): block by block is less
    assert s["end_value"] > 100 * (1 - 0.02 * (n - 1) * 12 / Y)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_vault_opened_in_a_deep_discount_borrows_at_cost_and_opens_below_target(engine):
    # the DEX at 0.8 against an oracle of 1: q = 1.25, x q = 0.85 x 1.25 >= 1, no finite loan reaches 85 %;
    # F = 100 x 0.85 / 0.15 = 566.67 buys 666.67 / 0.8 = 833.33 tokens: LTV 566.67 / 833.33 = 0.68
    ts = np.array([0, 60], dtype=np.int64)
    z, one = np.zeros(2), np.ones(2)
    out, _, ev = ENGINES[engine].book_vault(ts, one * 0.8, one, z, z, one * 0.95, one * 0.01, z,
                                            vault_params(1, target_ltv=0.85, every=86400))
    f = 100 * 0.85 / 0.15
    assert ev[0, 3] == pytest.approx(f, rel=1e-12) and ev[0, 2] == pytest.approx((100 + f) / 0.8, rel=1e-12)
    assert ev[0, 3] / ev[0, 2] == pytest.approx(0.68, rel=1e-12)
