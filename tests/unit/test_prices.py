"""Price series from what the lake holds (backtest/data/prices.py): direct, inverse, cross via USD, chain via
ETH, the missing leg, the oracle's USD rows, and exact ones where the underlying / gas token is the debt.

Tiny lakes written here; the window has four 30-minute blocks t0..t3 = S0, S0+30m, S0+60m, S0+90m, and each
expected array is the ASOF value (last point at or before the block) worked out by hand."""
from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from backtest.data import lake_write
from backtest.data.build import build
from backtest.data.request import MarketRequest
from backtest.errors import DataError

M = 60
S0 = int(dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc).timestamp())
CONSTS = dict(ltv=0.7, liquidation_threshold=0.75, liquidation_bonus=0.05, liquidation_protocol_fee=0.1,
              borrow_rate=0.05, supply_rate=0.001, gas_gwei=10.0)


def req(d, debt="USDC", **kw) -> MarketRequest:
    base = dict(lake=d, start=S0, end=S0 + 120 * M, block_time=30 * M, collateral="wstETH", hold="wstETH",
                debt=debt, emode=None, **CONSTS)
    return MarketRequest(**{**base, **kw})


def prices(d, base, quote, points, name=None):
    ts = [S0 + m * M for m, _ in points]
    lake_write.write_table(d, "prices", pl.DataFrame({"ts": ts, "base": base, "quote": quote,
                                                "price": [float(p) for _, p in points], "source": "t"}),
                     name or f"p-{base}-{quote}")


def oracle(d, asset, quote, points):
    ts = [S0 + m * M for m, _ in points]
    lake_write.write_table(d, "oracle_prices", pl.DataFrame({"ts": ts, "protocol": "aave-v3", "asset": asset,
                                                       "quote": quote, "price": [float(p) for _, p in points]}),
                     f"o-{asset}-{quote}")


def xrate(d):
    lake_write.write_table(d, "exchange_rates", pl.DataFrame({"ts": [S0 - 60 * M], "token": "wstETH",
                                                        "underlying": "stETH", "rate": [1.2], "source": "lido"}), "x")


def usd_lake(d):
    """wstETH/USD, WETH/USD and USDC/USD, no direct wstETH/USDC."""
    xrate(d)
    prices(d, "wstETH", "USD", [(-60, 3600), (45, 3720)])
    prices(d, "WETH", "USD", [(-60, 3000), (15, 2900), (75, 2800)])
    prices(d, "USDC", "USD", [(-60, 1.0), (50, 0.998)])
    return d


def test_cross_via_usd_prices_the_collateral_underlying_and_gas_in_usdc(tmp_path):
    m = build(req(usd_lake(tmp_path)))
    # wstETH/USD at t0..t3: 3600, 3600, 3720, 3720; USDC/USD: 1.0, 1.0, 0.998, 0.998
    assert m.price.tolist() == [3600 / 1.0, 3600 / 1.0, 3720 / 0.998, 3720 / 0.998]
    assert m.derived["price"] == "wstETH/USDC = wstETH/USD / USDC/USD"
    # ETH/USD (the lake's WETH/USD): 3000, 2900, 2900, 2800
    eth = [3000 / 1.0, 2900 / 1.0, 2900 / 0.998, 2800 / 0.998]
    assert m.underlying_price.tolist() == eth
    assert m.gas_token_price.tolist() == eth
    assert m.derived["gas_token"] == "ETH/USDC = WETH/USD / USDC/USD"
    assert m.eth_usd.tolist() == [1.0, 1.0, 0.998, 0.998]          # USD per unit of the debt asset (USDC)


def test_the_direct_pair_wins_over_a_cross(tmp_path):
    usd_lake(tmp_path)
    prices(tmp_path, "wstETH", "USDC", [(-30, 3590), (70, 3700)])
    m = build(req(tmp_path))
    assert m.price.tolist() == [3590.0, 3590.0, 3590.0, 3700.0]
    assert "price" not in m.derived


def test_inverse_pair(tmp_path):
    xrate(tmp_path)
    prices(tmp_path, "WETH", "wstETH", [(-60, 0.85), (40, 0.84)])
    m = build(req(tmp_path, debt="WETH"))
    assert m.price.tolist() == [1 / 0.85, 1 / 0.85, 1 / 0.84, 1 / 0.84]
    assert m.derived["price"] == "wstETH/WETH = 1 / WETH/wstETH"


def test_chain_through_eth_then_usd(tmp_path):
    xrate(tmp_path)
    prices(tmp_path, "wstETH", "WETH", [(-60, 1.17), (80, 1.18)])
    prices(tmp_path, "WETH", "USD", [(-60, 3000), (20, 2950)])
    prices(tmp_path, "USDC", "USD", [(-60, 1.0), (65, 0.999)])
    m = build(req(tmp_path))
    # wstETH/WETH: 1.17, 1.17, 1.17, 1.18; WETH/USD: 3000, 2950, 2950, 2950; USDC/USD: 1, 1, 1, 0.999
    assert m.price.tolist() == [1.17 * 3000 / 1.0, 1.17 * 2950 / 1.0, 1.17 * 2950 / 1.0, 1.18 * 2950 / 0.999]
    assert m.derived["price"] == "wstETH/USDC = wstETH/WETH x WETH/USD / USDC/USD"


def test_a_missing_leg_is_named(tmp_path):
    xrate(tmp_path)
    prices(tmp_path, "wstETH", "USD", [(-60, 3600)])
    prices(tmp_path, "WETH", "USD", [(-60, 3000)])
    with pytest.raises(DataError, match=r"prices wstETH/USDC: no data .*wstETH/USD is there, USDC/USD is missing"):
        build(req(tmp_path))


def test_a_usdc_debt_needs_eth_in_usdc_for_gas(tmp_path):
    xrate(tmp_path)
    prices(tmp_path, "wstETH", "USDC", [(-60, 3600)])
    with pytest.raises(DataError, match=r"prices ETH/USDC: .*collateral's underlying.*ETH/USD is missing, "
                                        r"USDC/USD is missing"):
        build(req(tmp_path))


def test_a_leg_is_held_to_the_coverage_rule(tmp_path):
    xrate(tmp_path)
    prices(tmp_path, "wstETH", "USD", [(-60, 3600)])
    prices(tmp_path, "WETH", "USD", [(-60, 3000)])
    prices(tmp_path, "USDC", "USD", [(10, 1.0)])           # starts after the run start
    with pytest.raises(DataError, match=r"prices USDC/USD: no point at or before the run start"):
        build(req(tmp_path))


def test_weth_debt_gives_exact_ones(tmp_path):
    xrate(tmp_path)
    prices(tmp_path, "wstETH", "WETH", [(-60, 1.17)])
    m = build(req(tmp_path, debt="WETH"))
    assert m.underlying_price.dtype == np.float64 and np.array_equal(m.underlying_price, np.ones(4))
    assert np.array_equal(m.gas_token_price, np.ones(4)) and m.derived == {}
    assert np.isnan(m.eth_usd).all()                               # no ETH/USD in this lake, none needed


def test_chainlink_oracle_from_usd_rows_and_direct_rows_win(tmp_path):
    usd_lake(tmp_path)
    oracle(tmp_path, "wstETH", "USD", [(-60, 3610), (35, 3700)])
    oracle(tmp_path, "USDC", "USD", [(-60, 1.0), (95, 0.9999)])
    m = build(req(tmp_path, oracle="chainlink"))
    assert m.oracle_feed.tolist() == [3610 / 1.0, 3610 / 1.0, 3700 / 1.0, 3700 / 1.0]
    assert m.derived["oracle"] == "aave-v3:wstETH/USDC = aave-v3:wstETH/USD / aave-v3:USDC/USD"
    oracle(tmp_path, "wstETH", "USDC", [(-60, 3605)])
    assert build(req(tmp_path, oracle="chainlink")).oracle_feed.tolist() == [3605.0] * 4


def test_hold_benchmark_price_is_resolved_too(tmp_path):
    usd_lake(tmp_path)
    lake_write.write_table(tmp_path, "exchange_rates", pl.DataFrame({"ts": [S0 - 60 * M], "token": "weETH",
                                                               "underlying": "eETH", "rate": [1.05],
                                                               "source": "etherfi"}), "x-weETH")
    prices(tmp_path, "weETH", "WETH", [(-60, 1.04)])
    m = build(req(tmp_path, collateral="weETH", hold="wstETH"))
    assert m.hold_price.tolist() == [3600 / 1.0, 3600 / 1.0, 3720 / 0.998, 3720 / 0.998]
    # weETH/USDC = weETH/WETH x WETH/USD / USDC/USD (no USD pair of its own)
    assert m.price.tolist() == [1.04 * 3000 / 1.0, 1.04 * 2900 / 1.0, 1.04 * 2900 / 0.998, 1.04 * 2800 / 0.998]
