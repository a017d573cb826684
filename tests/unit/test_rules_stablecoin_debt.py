"""A stablecoin debt by hand, through both engines: wstETH against USDC on Aave v3.

The market is built from an ETH/USD path and USDC/USD (tests/helpers.py ``usdc_market``): the underlying (ETH)
and the gas token cost ETH/USD / USDC/USD USDC (``underlying_price`` = ``gas_token_price``), wstETH trades at
xrate x that, and ``eth_usd`` is USD per debt unit (USDC/USD). Every number below is worked out in the test
from the protocol's formula; the liquidation is worked out in USD, as Aave's oracle (base currency USD) does.
"""
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from backtest.config import load_config
from backtest.data.market import Market
from backtest.engine import check_against_market
from backtest.errors import ConfigError
from tests.helpers import check_both, liq_events, market, params, usdc_market

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
REL = 1e-12
CAPO = (0.0968, 7 * 86400)


def usdc_loop(capital, **kw):
    """A one-step loop bought by staking (debt -> ETH -> wstETH at the exchange rate), Aave v3.3 rules on."""
    base = dict(protocol="aave-v3", kind="loop", entry="stake", loops=1, target_ltv=0.75, capital=capital,
                v33_from=0)
    base.update(kw)
    return params(**base)


# --- liquidation by an ETH/USD fall --------------------------------------------------------------------------
def test_wsteth_usdc_loop_liquidated_by_an_eth_usd_fall_with_the_50_percent_close_factor():
    # wstETH (xrate 1.2) against USDC (USDC/USD 0.999) on Aave v3: LTV 80 %, LT 81 %, bonus 6 %, protocol fee
    # 10 %. 10,000 USDC at ETH = $3,000; ETH falls to $1,550 at block 1. CAPO oracle (the cap does not bind:
    # the rate is flat), so the oracle price in USD is 1.2 x ETH/USD.
    usdc, xr, lt, lb, pf = 0.999, 1.2, 0.81, 1.06, 0.10
    m = usdc_market([3000.0, 1550.0, 1550.0], xrate=xr, usdc_usd=usdc, ltv=0.80, lt=lt, bonus=lb - 1, pfee=pf)
    # open at block 0: 10,000 USDC buy 10,000 x 0.999 / 3000 ETH, minted into / 1.2 wstETH
    t0 = 10_000 / (3000 / usdc) / xr
    borrow = 0.75 * t0 * (xr * 3000 / usdc)          # 75 % of the collateral's value in USDC = 7,500
    assert borrow == pytest.approx(7500.0, rel=REL)
    t1 = borrow / (3000 / usdc) / xr
    coll = t0 + t1
    # block 1, in USD: collateral at 1.2 x $1,550, debt 7,500 USDC x $0.999
    coll_usd = coll * xr * 1550.0
    debt_usd = borrow * usdc
    hf = coll_usd * lt / debt_usd
    assert 0.95 < hf < 1.0                           # liquidatable, above the 0.95 full-close threshold
    assert coll_usd >= 2000 and debt_usd >= 2000     # v3.3: above $2,000 both ways -> 50 % close factor
    repay_usd = 0.5 * debt_usd
    seized_usd = repay_usd * lb                      # the bonus, in USD
    price_usd = xr * 1550.0
    seized = seized_usd / price_usd                  # wstETH taken
    repay = repay_usd / usdc                         # USDC repaid = 3,750
    assert repay == pytest.approx(3750.0, rel=REL)
    # v3.3 leftovers: at least $1,000 of debt and of collateral stay
    assert (debt_usd - repay_usd) >= 1000 and (coll_usd - seized_usd) >= 1000
    fee_tokens = (seized - seized / lb) * pf          # the protocol's cut of the bonus, in tokens
    pc = price_usd / usdc                            # the oracle price in USDC
    penalty = seized * pc - repay
    hf_after = (coll - seized) * price_usd * lt / (debt_usd - repay_usd)
    assert hf_after > 1.0                            # one call restores the position

    def fn(out):
        s = out.summaries[0]
        assert s["liq_count"] == 1
        assert s["liq_debt_repaid"] == pytest.approx(repay, rel=REL)
        assert s["liq_coll_seized"] == pytest.approx(seized, rel=REL)
        assert s["liq_coll_seized_value"] == pytest.approx(seized_usd / usdc, rel=REL)
        assert s["liq_penalty"] == pytest.approx(penalty, rel=REL)
        assert s["liq_protocol_fee"] == pytest.approx(fee_tokens * pc, rel=REL)
        assert s["min_hf"] == pytest.approx(hf, rel=REL)
        assert s["end_debt"] == pytest.approx(borrow - repay, rel=REL)
        assert s["end_collateral"] == pytest.approx(coll - seized, rel=REL)
        ev = liq_events(out)
        assert len(ev) == 1 and ev[0]["hf"] == pytest.approx(hf_after, rel=REL)
    check_both(m, usdc_loop(10_000.0), fn, oracle="capo", capo=CAPO)


def test_a_small_usdc_debt_is_closed_in_full_below_2000_usd():
    # the same loop with 1,000 USDC: debt 750 USDC = $750 < $2,000, so the v3.3 close factor is 100 %. (Were the
    # debt's USD value taken as debt x ETH/USD, 750 x 1,550 would be above $2,000 and only half repaid.)
    xr, lt, lb = 1.2, 0.81, 1.06
    m = usdc_market([3000.0, 1550.0, 1550.0], xrate=xr, ltv=0.80, lt=lt, bonus=lb - 1, pfee=0.10)
    t0 = 1000 / 3000 / xr
    borrow = 0.75 * t0 * xr * 3000                   # 750
    coll = t0 + borrow / 3000 / xr
    price_usd = xr * 1550.0
    debt_usd = borrow * 1.0
    hf = coll * price_usd * lt / debt_usd
    assert 0.95 < hf < 1.0 and debt_usd < 2000
    seized = debt_usd * lb / price_usd               # all the debt repaid, with the 6 % bonus
    assert seized < coll

    def fn(out):
        s = out.summaries[0]
        assert s["liq_count"] == 1
        assert s["liq_debt_repaid"] == pytest.approx(borrow, rel=REL)
        assert s["liq_coll_seized"] == pytest.approx(seized, rel=REL)
        assert s["end_debt"] == 0.0
    check_both(m, usdc_loop(1000.0), fn, oracle="capo", capo=CAPO)


def test_the_v33_leftover_rule_is_in_usd():
    # Debt 2,500 USDC at USDC/USD 1: above $2,000, so 50 % -> $1,250 repaid would leave $1,250 >= $1,000: no
    # change. At USDC/USD 0.75 the same debt is $1,875 < $2,000: 100 % close factor. A mistaken ETH/USD factor
    # would keep the 50 % in both.
    xr, lt, lb = 1.2, 0.81, 1.06
    for usdc, full in ((1.0, False), (0.75, True)):
        eth = np.array([3000.0, 1550.0, 1550.0])
        m = usdc_market(eth, xrate=xr, usdc_usd=usdc, ltv=0.80, lt=lt, bonus=lb - 1, pfee=0.10)
        cap = 2500.0 / 0.75                            # borrows 2,500 USDC
        borrow = 0.75 * cap
        assert borrow == pytest.approx(2500.0, rel=REL)
        want = borrow if full else 0.5 * borrow

        def fn(out, want=want):
            assert out.summaries[0]["liq_debt_repaid"] == pytest.approx(want, rel=REL)
        check_both(m, usdc_loop(cap), fn, oracle="capo", capo=CAPO)


# --- gas and fees in USDC ----------------------------------------------------------------------------------
def test_gas_and_swap_fees_are_charged_in_usdc():
    # gas: units x gwei x 1e-9 ETH, x ETH/USDC. 20 gwei at ETH = 3,000 USDC: open 600,000 units = 36 USDC, one
    # loop step 250,000 units = 15 USDC. Swap entry with a 5 bp fee: 10,000 USDC pays 5 USDC, the loop's borrow
    # (75 % of what the 9,995 USDC bought, at the market oracle) pays 0.05 % of it.
    m = usdc_market(np.full(3, 3000.0), xrate=1.2, gas=20.0, ltv=0.80, lt=0.81)
    p = usdc_loop(10_000.0, entry="swap", swap_fee=0.0005, gas_open=600_000.0, gas_loop=250_000.0)
    p[0]["gas_gwei"] = math.nan                        # the gas series
    gas_open = 600_000 * 20 * 1e-9 * 3000
    gas_loop = 250_000 * 20 * 1e-9 * 3000
    assert (gas_open, gas_loop) == (pytest.approx(36.0), pytest.approx(15.0))
    fee0 = 10_000 * 0.0005
    borrow = 0.75 * (10_000 - fee0)                   # tokens x price = net USDC
    fee1 = borrow * 0.0005

    def fn(out):
        s = out.summaries[0]
        assert s["gas_cost"] == pytest.approx(gas_open + gas_loop, rel=REL)
        assert s["swap_fee_cost"] == pytest.approx(fee0 + fee1, rel=REL)
        assert s["end_cash"] == pytest.approx(-(gas_open + gas_loop), rel=REL)
        ev = out.events[0]
        assert ev["cost"][0] == pytest.approx(fee0 + gas_open, rel=REL)
        assert ev["cost"][1] == pytest.approx(fee1 + gas_loop, rel=REL)
    check_both(m, p, fn)


def test_a_fixed_gas_price_is_also_gwei_of_eth():
    # costs.gas = 10 gwei, ETH at 2,500 USDC: a 600,000-unit open costs 600,000 x 10e-9 x 2,500 = 15 USDC
    m = usdc_market(np.full(3, 2500.0), gas=99.0)
    p = params(kind="hold", capital=1000.0, gas_gwei=10.0, gas_open=600_000.0)

    def fn(out):
        assert out.summaries[0]["gas_cost"] == pytest.approx(600_000 * 10 * 1e-9 * 2500, rel=REL)
    check_both(m, p, fn)


def test_with_a_weth_debt_gas_is_the_eth_amount_to_the_bit():
    # gas_token_price = 1.0 exactly: the conversion leaves the ETH amount unchanged, bit for bit
    m = market(np.ones(3), gas=7.3)
    p = params(kind="hold", capital=1.0, gas_gwei=math.nan, gas_open=612_345.0)

    def fn(out):
        assert out.summaries[0]["gas_cost"] == 612_345.0 * 7.3 * 1e-9
    check_both(m, p, fn)


# --- staking yield, the exchange-rate mark, the hold benchmark in USDC -------------------------------------
@pytest.mark.parametrize("kind", ["lend", "hold"])
def test_staking_yield_is_valued_in_usdc_at_each_step(kind):
    # 3,600 USDC staked at ETH = 3,000 and xrate 1.2: 3600 / 3000 / 1.2 = 1 wstETH. The rate steps by 0.0012 at
    # block 1 (ETH = 3,100) and again at block 2 (ETH = 2,900): the yield is each step x ETH/USDC at its block,
    # 0.0012 x 3,100 + 0.0012 x 2,900 = 7.2 USDC (not 0.0024 "USDC"). The exchange-rate mark at the end is
    # 1 x 1.2024 x 2,900 USDC.
    xrate = np.array([1.2, 1.2012, 1.2024])
    eth = np.array([3000.0, 3100.0, 2900.0])
    m = usdc_market(eth, xrate=xrate)
    tokens = 3600 / 3000 / 1.2
    yield_usdc = tokens * (1.2012 - 1.2) * 3100 + tokens * (1.2024 - 1.2012) * 2900
    assert yield_usdc == pytest.approx(7.2, rel=1e-9)
    p = params(kind=kind, entry="stake", capital=3600.0)

    def fn(out):
        s = out.summaries[0]
        assert s["end_collateral"] == pytest.approx(tokens, rel=REL)
        assert s["staking_yield"] == pytest.approx(yield_usdc, rel=REL)
        assert s["end_equity_rate"] == pytest.approx(tokens * 1.2024 * 2900, rel=REL)
        assert s["end_equity"] == pytest.approx(tokens * 1.2024 * 2900, rel=REL)       # at the peg
        assert s["hold_end_equity"] == pytest.approx(tokens * 1.2024 * 2900, rel=REL)
        assert out.records[0, 2, 10] == pytest.approx(tokens * 1.2024 * 2900, rel=REL)  # equity_rate
        assert out.records[0, 2, 8] == 1.2024                                          # the bare rate
    check_both(m, p, fn)


def test_supply_yield_is_valued_in_usdc():
    # aToken interest at 3.1536 %/yr for 12 s on 1 token: 1 x 0.031536 x 12 / 31,536,000 tokens, worth
    # xrate x ETH/USDC = 1.2 x 3,000 each
    m = usdc_market(np.full(2, 3000.0), xrate=1.2, supply_apr=0.031536)
    p = params(kind="lend", entry="stake", capital=3600.0)

    def fn(out):
        assert out.summaries[0]["supply_yield"] == pytest.approx(0.031536 * 12 / 31_536_000 * 1.2 * 3000, rel=1e-9)
    check_both(m, p, fn)


# --- de-peg exit and the queue in USDC ---------------------------------------------------------------------
@pytest.mark.parametrize("peg,exits", [(0.96, True), (0.98, False)])
def test_the_depeg_ratio_compares_usdc_prices(peg, exits):
    # de-peg = price / (xrate x ETH/USDC): wstETH at 0.96 x 1.2 x 3,000 USDC is a 4 % discount (below 0.97: exit);
    # at 0.98 it is not. (price / xrate alone would be ~2,900 and never exit.)
    m = usdc_market(np.full(3, 3000.0), xrate=1.2, peg=np.array([1.0, peg, peg]))
    p = params(kind="hold", entry="stake", capital=3600.0, exit_on=1, depeg_below=0.97, exit_route=0)

    def fn(out):
        s = out.summaries[0]
        assert s["exit_idx"] == (1 if exits else -1)
        if exits:
            assert s["end_cash"] == pytest.approx(1.0 * peg * 1.2 * 3000, rel=REL)     # 1 token sold on the DEX
    check_both(m, p, fn)


def test_the_queue_exit_redeems_at_the_exchange_rate_in_usdc():
    # the queue route redeems the token at the exchange rate: 1 token x 1.2 ETH x 3,100 USDC (ETH moved to 3,100
    # at the exit block), whatever the DEX discount
    m = usdc_market(np.array([3000.0, 3100.0, 3100.0]), xrate=1.2, peg=np.array([1.0, 0.9, 0.9]))
    p = params(kind="hold", entry="stake", capital=3600.0, exit_on=1, depeg_below=0.97, exit_route=1,
               queue_delay=0)

    def fn(out):
        s = out.summaries[0]
        assert s["exit_idx"] == 1
        assert s["end_cash"] == pytest.approx(1.2 * 3100, rel=REL)
    check_both(m, p, fn)


def test_a_slash_is_valued_in_usdc():
    # a 10 % slash at block 1 (xrate 1.2 -> 1.08) on 1 token, ETH = 3,000 USDC: lost 1 x 1.08 x 0.1 / 0.9 ETH x 3,000
    m = usdc_market(np.full(3, 3000.0), xrate=np.array([1.2, 1.08, 1.08]))
    m.slash = np.array([0.0, 0.1, 0.0])
    p = params(kind="hold", entry="stake", capital=3600.0)

    def fn(out):
        ev = out.events[0]
        sl = ev[ev["kind"] == 8]
        assert len(sl) == 1 and sl[0]["cost"] == pytest.approx(1.08 * 0.1 / 0.9 * 3000, rel=REL)
    check_both(m, p, fn)


def test_capo_with_a_usdc_debt_is_the_capped_rate_times_eth_usdc():
    # CAPO with growth 0 caps the rate at its snapshot (the first block: no earlier points): a rate of 1.25 at
    # block 2 is read as 1.2, times ETH/USDC 2,000 = 2,400 USDC; the market price is 1.25 x 2,000
    m = usdc_market(np.full(3, 2000.0), xrate=np.array([1.2, 1.2, 1.25]))
    p = params(kind="lend", entry="stake", capital=2400.0)

    def fn(out):
        assert out.records[0, 2, 6] == pytest.approx(1.2 * 2000, rel=REL)      # oracle_price
        assert out.records[0, 2, 7] == pytest.approx(1.25 * 2000, rel=REL)     # market_price
    check_both(m, p, fn, oracle="capo", capo=(0.0, 7 * 86400))


# --- the oracle mode must fit the debt -----------------------------------------------------------------------
def _usdc_config(oracle):
    cfg = load_config(EXAMPLES / "loop.toml")
    return dataclasses.replace(cfg, market=dataclasses.replace(cfg.market, debt="USDC", oracle=oracle))


def test_the_bare_exchange_rate_is_refused_with_a_usdc_debt():
    m = usdc_market(np.full(4, 3000.0), ltv=0.93, lt=0.95)
    with pytest.raises(ConfigError) as e:
        check_against_market(_usdc_config("exchange-rate"), m)
    msg = str(e.value)
    assert e.value.exit_code == 2
    assert 'market.oracle = "exchange-rate"' in msg and "USDC" in msg
    for mode in ('"capo"', '"chainlink"', '"market"', "CAPO"):
        assert mode in msg
    # the modes that fit pass; and the bare rate passes with a WETH debt (underlying price 1.0)
    for ok in ("capo", "market"):
        check_against_market(_usdc_config(ok), m)
    weth = load_config(EXAMPLES / "loop.toml")
    assert (weth.market.debt, weth.market.oracle) == ("WETH", "exchange-rate")
    check_against_market(weth, market(np.full(4, 1.2), xrate=1.2))


def test_a_missing_conversion_price_is_a_data_error():
    from backtest.errors import DataError
    m = usdc_market(np.full(4, 3000.0), ltv=0.93, lt=0.95)
    m.gas_token_price = m.gas_token_price.copy()
    m.gas_token_price[2] = np.nan
    with pytest.raises(DataError, match="gas_token_price"):
        check_against_market(_usdc_config("capo"), m)


# --- a debt unit worth half an ETH is the ETH market, every amount x 2, to the bit ----------------------------
AMOUNTS = ("end_equity", "end_equity_rate", "hold_end_equity", "staking_yield", "supply_yield", "interest_paid",
           "restaking_rewards", "gas_cost", "swap_fee_cost", "slippage_cost", "flash_fee_cost", "liq_debt_repaid",
           "liq_coll_seized_value", "liq_penalty", "liq_protocol_fee", "bad_debt", "end_debt", "end_cash")
REC_AMOUNTS = (1, 2, 6, 7, 9, 10)       # debt, cash, oracle_price, market_price, equity, equity_rate


def halved_unit(m: Market) -> Market:
    """The same market in a debt asset worth half an ETH: prices x 2, USD per unit / 2, underlying and gas
    token cost 2 units. Multiplying by 2 is exact in binary floating point, so every result must scale exactly."""
    kw = {name: getattr(m, name).copy() for name in Market.ARRAYS}
    for name in ("price", "oracle_feed", "hold_price", "reward"):
        kw[name] = kw[name] * 2.0
    kw["eth_usd"] = kw["eth_usd"] / 2.0
    kw["underlying_price"] = np.full(len(m), 2.0)
    kw["gas_token_price"] = np.full(len(m), 2.0)
    return Market(**kw)


def halved_params(p):
    q = p.copy()
    q["capital"] *= 2.0
    q["pool_depth"] *= 2.0
    q["slip_param"] /= 2.0                  # bps per debt unit traded
    return q


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("oracle", ["market", "capo", "chainlink"])
def test_a_debt_worth_half_an_eth_scales_every_amount_exactly(seed, oracle):
    from tests.unit.test_differential import VENUES, make_market, make_params, restake_leg, venue_market
    from backtest.engine import Lane, record_indices, run_core, run_reference_batch
    rng = np.random.default_rng(seed)
    protocol = VENUES[seed % len(VENUES)]
    kind = ["hold", "lend", "loop", "flash-loan"][seed % 4]
    m = venue_market(make_market(seed, 120, seed % 2 == 0), protocol)
    if seed % 3 == 0:
        m = restake_leg(m, np.random.default_rng(seed + 2))
    p = np.concatenate([make_params(rng, m, kind, protocol) for _ in range(2)])
    m2, p2 = halved_unit(m), halved_params(p)
    lanes = [Lane(oracle, 0.0968, 3600, protocol)]
    rec = record_indices(m, 0)
    for run in (lambda mk, pk: run_core(mk, pk, lanes, rec, 7, chunk=16),
                lambda mk, pk: run_reference_batch(mk, pk, lanes, rec, 7)):
        a, b = run(m, p), run(m2, p2)
        for name in a.summaries.dtype.names:
            k = 2.0 if name in AMOUNTS else 1.0
            assert np.array_equal(a.summaries[name] * k, b.summaries[name], equal_nan=True), name
        for ea, eb in zip(a.events, b.events):
            assert np.array_equal(ea["coll"], eb["coll"]) and np.array_equal(ea["hf"], eb["hf"])
            assert np.array_equal(ea["debt"] * 2.0, eb["debt"]) and np.array_equal(ea["cost"] * 2.0, eb["cost"])
        for j in range(a.records.shape[2]):
            k = 2.0 if j in REC_AMOUNTS else 1.0
            assert np.array_equal(a.records[:, :, j] * k, b.records[:, :, j], equal_nan=True), j
