"""Alignment onto the block clock, on small hand-built lakes."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from backtest.config_types import (Config, CostsConfig, MarketConfig, RunConfig, ScenarioConfig,
                                   StrategyConfig)
from backtest.data import lake_write
from backtest.plan import market_for
from backtest.data.clock import MERGE_BLOCK, MERGE_TS, block_clock, estimate_blocks
from backtest.data.scenarios import apply_scenarios, scenario_shape
from backtest.data.market import Market
from backtest.errors import DataError

H = 3600
D = 86400


def T(s: str) -> int:
    return int(dt.datetime.fromisoformat(s).replace(tzinfo=dt.timezone.utc).timestamp())


S0 = T("2024-06-01")            # window used by most tests: two days
S1 = S0 + 2 * D


def cfg(lake_dir: Path, start: int = S0, end: int = S1, *, scenarios=(), gas="data", block_time=12,
        **market) -> Config:
    return Config(
        run=RunConfig(name="t", start=start, end=end, data=Path(lake_dir), block_time=block_time),
        market=MarketConfig(**market), strategy=StrategyConfig(), costs=CostsConfig(gas=gas),
        scenarios=tuple(scenarios),
    )


def hourly(start: int, end: int) -> np.ndarray:
    return np.arange(start, end, H, dtype=np.int64)


def write_prices(d, ts, price, base="wstETH", quote="WETH", source="dex", name=None):
    n = len(ts)
    lake_write.write_table(d, "prices", pl.DataFrame({"ts": ts, "base": [base] * n, "quote": [quote] * n,
                                                "price": price, "source": [source] * n}), name or f"p-{base}-{source}")


def write_xrate(d, ts, rate, token="wstETH", source="lido", name=None):
    n = len(ts)
    df = pl.DataFrame({"ts": ts, "token": [token] * n, "underlying": ["stETH"] * n, "rate": rate,
                       "source": [source] * n})
    lake_write.write_table(d, "exchange_rates", df, name or f"x-{token}-{source}")


def write_rates(d, ts, asset, borrow, supply, protocol="aave-v3"):
    n = len(ts)
    lake_write.write_table(d, "rates", pl.DataFrame({"ts": ts, "protocol": [protocol] * n, "asset": [asset] * n,
                                               "supply_apr": np.broadcast_to(supply, (n,)),
                                               "borrow_apr": np.broadcast_to(borrow, (n,))}), f"r-{protocol}-{asset}")


def write_gas(d, ts, base, prio=None):
    df = pl.DataFrame({"ts": ts, "base_fee_gwei": np.broadcast_to(base, (len(ts),)).astype(float)})
    if prio is not None:
        df = df.with_columns(pl.Series("priority_fee_gwei", prio))
    lake_write.write_table(d, "gas", df, "gas")


def base_lake(d: Path, start: int = S0 - D, end: int = S1 + D, *, skip=()) -> Path:
    """A lake covering [start, end) hourly with every series an aave-v3 wstETH/WETH run needs."""
    ts = hourly(start, end)
    n = len(ts)
    if "price" not in skip:
        write_prices(d, ts, 1.17 + np.arange(n) * 1e-6)
    if "xrate" not in skip:
        write_xrate(d, ts[::24], 1.18 + np.arange(len(ts[::24])) * 1e-4)
    if "rates" not in skip:
        write_rates(d, ts, "WETH", 0.025, 0.018)
        write_rates(d, ts, "wstETH", 0.003, 0.0001)
    if "gas" not in skip:
        write_gas(d, ts, 8.0, np.full(n, 0.5))
    return d


# ---------------------------------------------------------------------------------------------- clock
def test_clock_length_and_times(tmp_path):
    m = market_for(cfg(base_lake(tmp_path)))
    assert len(m) == 2 * D // 12 == 14400
    assert m.ts[0] == S0 and m.ts[1] == S0 + 12 and m.ts[-1] == S1 - 12
    assert np.all(np.diff(m.ts) == 12)
    assert block_clock(0, 25, 12).tolist() == [0, 12, 24]           # ceil((end - start) / block_time)
    for name in Market.ARRAYS:
        arr = getattr(m, name)
        assert arr.shape == (14400,) and arr.flags.c_contiguous


def test_asof_takes_the_last_value_at_or_before_each_block(tmp_path):
    base_lake(tmp_path, skip=("price",))
    # points off the block grid and one exactly on a block time
    write_prices(tmp_path, [S0 - 5, S0 + 30, S0 + 36, S0 + 1000], [1.0, 2.0, 3.0, 4.0])
    write_prices(tmp_path, hourly(S0 + H, S1 + D), 5.0 + np.zeros(len(hourly(S0 + H, S1 + D))), name="rest")
    m = market_for(cfg(tmp_path))
    # blocks at S0, +12, +24 see the point at S0-5; +36 is exactly a point (3.0) and +30 was superseded
    assert m.price[:5].tolist() == [1.0, 1.0, 1.0, 3.0, 3.0]        # ts S0, +12, +24, +36, +48
    k = (1000 // 12)                                                # block at S0+996: before the 4.0 point
    assert m.price[k] == 3.0 and m.price[k + 1] == 4.0                # S0+1008 >= S0+1000
    assert m.price[H // 12 - 1] == 4.0 and m.price[H // 12] == 5.0


def test_eth_and_weth_quotes_are_the_same_series(tmp_path):
    base_lake(tmp_path, skip=("price",))
    ts = hourly(S0 - D, S1 + D)
    write_prices(tmp_path, ts, np.full(len(ts), 1.16), quote="ETH")
    m = market_for(cfg(tmp_path))
    assert np.all(m.price == 1.16)


# ------------------------------------------------------------------------------------------ coverage
def test_gap_inside_the_window_names_series_and_dates(tmp_path):
    base_lake(tmp_path, start=S0 - D, end=S0 + 2 * H, skip=())
    # price resumes 4 days later: a gap inside a 10-day window
    ts2 = hourly(S0 + 4 * D, S0 + 11 * D)
    write_prices(tmp_path, ts2, np.full(len(ts2), 1.17), name="late")
    ts = hourly(S0 - D, S0 + 11 * D)
    write_xrate(tmp_path, ts, np.full(len(ts), 1.18))
    write_rates(tmp_path, ts, "WETH", 0.02, 0.01)
    write_rates(tmp_path, ts, "wstETH", 0.003, 0.0001)
    write_gas(tmp_path, ts, 8.0)
    with pytest.raises(DataError) as exc:
        market_for(cfg(tmp_path, S0, S0 + 10 * D))
    msg = str(exc.value)
    assert msg.startswith("prices wstETH/WETH: gap of 4.0 days")
    assert "from 2024-06-01 01:00 UTC to 2024-06-05 00:00 UTC" in msg


def test_last_point_too_early_is_an_error(tmp_path):
    base_lake(tmp_path)
    ts = hourly(S0 - D, S0 + 10 * D)
    write_xrate(tmp_path, ts, np.full(len(ts), 1.2))
    write_prices(tmp_path, hourly(S0 - D, S0 + 10 * D), np.full(11 * 24, 1.17))
    write_rates(tmp_path, ts, "WETH", 0.02, 0.01)
    write_rates(tmp_path, ts, "wstETH", 0.003, 0.0001)
    # gas (from base_lake) stops at S1 + 1 day - 1 h, the run ends at S0 + 10 days
    with pytest.raises(DataError, match=r"gas base_fee_gwei\+priority_fee_gwei: last point 2024-06-03 23:00 UTC "
                                        r"is 7\.0 days before the run end 2024-06-11 00:00 UTC"):
        market_for(cfg(tmp_path, S0, S0 + 10 * D))


def test_no_point_at_or_before_start(tmp_path):
    base_lake(tmp_path, start=S0 + H)      # everything starts an hour after the run
    with pytest.raises(DataError, match=r"prices wstETH/WETH: no point at or before the run start "
                                        r"2024-06-01 00:00 UTC \(first point 2024-06-01 01:00 UTC\)"):
        market_for(cfg(tmp_path))


def test_gap_under_three_days_is_accepted(tmp_path):
    base_lake(tmp_path, skip=("xrate",))
    write_xrate(tmp_path, [S0 - 2 * D, S0 + D - 1, S1 + D], [1.1, 1.2, 1.3])   # steps < 3 days apart
    m = market_for(cfg(tmp_path))
    assert m.xrate[0] == 1.1 and m.xrate[-1] == 1.2


def test_missing_series_is_an_error_naming_it(tmp_path):
    base_lake(tmp_path, skip=("xrate",))
    with pytest.raises(DataError, match=r"exchange_rates wstETH: no data in the lake"):
        market_for(cfg(tmp_path))
    base2 = base_lake(tmp_path / "b", skip=("rates",))
    with pytest.raises(DataError, match=r"rates aave-v3:WETH:borrow_apr: no data"):
        market_for(cfg(base2))


def test_missing_lake_folder(tmp_path):
    with pytest.raises(DataError, match="data lake not found"):
        market_for(cfg(tmp_path / "nope"))


def test_ambiguous_sources_inside_the_window(tmp_path):
    base_lake(tmp_path)
    write_prices(tmp_path, hourly(S0, S1), np.full(48, 1.2), source="curve")
    with pytest.raises(DataError, match=r"prices wstETH/WETH: ambiguous, 2 sources inside the run window: curve, dex"):
        market_for(cfg(tmp_path))


def test_other_sources_outside_the_window_are_not_ambiguous(tmp_path):
    base_lake(tmp_path)
    old = hourly(S0 - 30 * D, S0 - 20 * D)
    write_prices(tmp_path, old, np.full(len(old), 0.9), source="synth:old")
    m = market_for(cfg(tmp_path))
    assert m.price[0] > 1.1


# ----------------------------------------------------------------------------------------- overrides
def test_overrides_replace_arrays_and_skip_series(tmp_path):
    base_lake(tmp_path, skip=("rates", "gas"))        # no rates, no gas in the lake at all
    m = market_for(cfg(tmp_path, ltv=0.8, liquidation_threshold=0.85, liquidation_bonus=0.05,
                  liquidation_protocol_fee=0.2, borrow_rate=0.04, supply_rate=0.001, gas=12.5,
                  protocol="generic", emode=None))
    assert np.all(m.ltv == 0.8) and np.all(m.lt == 0.85) and np.all(m.bonus == 0.05) and np.all(m.pfee == 0.2)
    assert np.all(m.borrow_apr == 0.04) and np.all(m.supply_apr == 0.001) and np.all(m.gas_gwei == 12.5)
    assert {s.table for s in m.series} == {"prices", "exchange_rates"}


def test_partial_param_override_keeps_the_rest_from_defaults(tmp_path):
    base_lake(tmp_path)
    m = market_for(cfg(tmp_path, liquidation_threshold=0.9))
    assert np.all(m.lt == 0.9) and np.all(m.ltv == 0.93) and np.all(m.bonus == 0.01) and np.all(m.pfee == 0.10)


# -------------------------------------------------------------------------------------- market params
def test_emode_defaults_switch_on_2024_01_21(tmp_path):
    s, e = T("2024-01-20"), T("2024-01-22")
    base_lake(tmp_path, start=s - D, end=e + D)
    m = market_for(cfg(tmp_path, s, e))
    k = np.searchsorted(m.ts, T("2024-01-21"))
    assert m.ts[k] == T("2024-01-21")
    assert m.ltv[k - 1] == 0.90 and m.lt[k - 1] == 0.93
    assert m.ltv[k] == 0.93 and m.lt[k] == 0.95
    assert np.all(m.bonus == 0.01) and np.all(m.pfee == 0.10)
    assert any(si.table == "params" for si in m.series)


def test_lake_params_take_precedence_and_fill_null_fee_from_defaults(tmp_path):
    base_lake(tmp_path)
    lake_write.write_table(tmp_path, "market_params", pl.DataFrame({
        "ts": [S0 - D, S0 + D], "protocol": ["aave-v3"] * 2, "asset": ["wstETH"] * 2,
        "emode": ["eth-correlated"] * 2, "ltv": [0.91, 0.92], "liquidation_threshold": [0.94, 0.945],
        "liquidation_bonus": [0.02, 0.015], "protocol_fee": [0.05, None]}), "mp")
    m = market_for(cfg(tmp_path))
    k = (S0 + D - S0) // 12
    assert m.ltv[k - 1] == 0.91 and m.ltv[k] == 0.92
    assert m.bonus[0] == 0.02 and m.bonus[-1] == 0.015
    assert m.pfee[0] == 0.05 and m.pfee[-1] == 0.10          # null fee -> default 10 %
    assert any(si.table == "market_params" for si in m.series)


def test_defaults_fill_the_time_before_the_lake_first_row(tmp_path):
    base_lake(tmp_path)
    lake_write.write_table(tmp_path, "market_params", pl.DataFrame({
        "ts": [S0 + D], "protocol": ["aave-v3"], "asset": ["wstETH"], "emode": ["eth-correlated"],
        "ltv": [0.5], "liquidation_threshold": [0.6], "liquidation_bonus": [0.05], "protocol_fee": [0.0]}), "mp")
    m = market_for(cfg(tmp_path))
    assert m.ltv[0] == 0.93 and m.ltv[-1] == 0.5


def test_unknown_params_without_lake_rows_is_an_error(tmp_path):
    base_lake(tmp_path)
    with pytest.raises(DataError, match=r"market_params aave-v3:wstETH:lrt-weth: no rows in the lake"):
        market_for(cfg(tmp_path, emode="lrt-weth"))


def test_liquid_emode_defaults_start_in_march_2025(tmp_path):
    base_lake(tmp_path)
    with pytest.raises(DataError, match=r"market_params aave-v3:wstETH:wsteth-weth: no parameters in force"):
        market_for(cfg(tmp_path, emode="wsteth-weth"))


# ------------------------------------------------------------------------------------- optional series
def test_eth_usd_nan_when_absent_and_values_when_present(tmp_path):
    base_lake(tmp_path)
    m = market_for(cfg(tmp_path))
    assert np.isnan(m.eth_usd).all()
    write_prices(tmp_path, [S0 - D, S0 + D], [3000.0, 3100.0], base="ETH", quote="USD", source="cg")
    m = market_for(cfg(tmp_path))
    assert m.eth_usd[0] == 3000.0 and m.eth_usd[-1] == 3100.0


def test_eth_usd_prefers_the_debt_series_and_goes_nan_when_stale(tmp_path):
    base_lake(tmp_path)
    write_prices(tmp_path, [S0 - D], [2000.0], base="ETH", quote="USD", source="cg")
    write_prices(tmp_path, [S0 - 2 * D - H], [3000.0], base="WETH", quote="USD", source="aave")
    m = market_for(cfg(tmp_path))
    # WETH/USD is used; its only point is 2 days + 1 h old at the start: valid for 23 h, then NaN
    k = (D - H) // 12
    assert m.eth_usd[0] == 3000.0 and m.eth_usd[k] == 3000.0 and np.isnan(m.eth_usd[k + 1])


def test_chainlink_oracle_feed_required_and_aligned(tmp_path):
    base_lake(tmp_path)
    m = market_for(cfg(tmp_path))
    assert np.isnan(m.oracle_feed).all()
    with pytest.raises(DataError, match=r"oracle_prices aave-v3:wstETH/WETH: no data"):
        market_for(cfg(tmp_path, oracle="chainlink"))
    lake_write.write_table(tmp_path, "oracle_prices", pl.DataFrame({
        "ts": [S0 - H, S0 + D], "protocol": ["aave-v3"] * 2, "asset": ["wstETH"] * 2, "quote": ["ETH"] * 2,
        "price": [1.15, 1.16]}), "cl")
    m = market_for(cfg(tmp_path, oracle="chainlink"))
    assert m.oracle_feed[0] == 1.15 and m.oracle_feed[-1] == 1.16


def test_gas_is_base_plus_priority_with_null_priority_as_zero(tmp_path):
    base_lake(tmp_path, skip=("gas",))
    lake_write.write_table(tmp_path, "gas", pl.DataFrame({"ts": [S0 - H, S0 + D], "base_fee_gwei": [10.0, 20.0],
                                                    "priority_fee_gwei": [1.5, None]}), "g")
    m = market_for(cfg(tmp_path))
    assert m.gas_gwei[0] == 11.5 and m.gas_gwei[-1] == 20.0


# ---------------------------------------------------------------------------------------- block numbers
def test_block_numbers_from_the_merge_anchor():
    ts = np.array([MERGE_TS, MERGE_TS + 12, MERGE_TS + 120, MERGE_TS + 11, MERGE_TS - 24])
    assert estimate_blocks(ts).tolist() == [MERGE_BLOCK, MERGE_BLOCK + 1, MERGE_BLOCK + 10, MERGE_BLOCK,
                                            MERGE_BLOCK - 2]
    assert estimate_blocks(np.array([0])).tolist() == [0]            # never negative


def test_block_numbers_interpolated_from_the_blocks_table(tmp_path):
    base_lake(tmp_path)
    lake_write.write_table(tmp_path, "blocks", pl.DataFrame({"ts": [S0 - 100, S0 + 1100], "block": [1000, 1100]}), "b")
    m = market_for(cfg(tmp_path))
    # linear: 100 blocks over 1200 s -> one per 12 s; at S0 (100 s after the first point) ~ 1008.33 -> 1008
    assert m.block[0] == 1008 and m.block[1] == 1009
    assert m.block[1100 // 12] == 1099                                # S0+1092: 1000 + 1192/12 = 1099.33
    # beyond the table: 12 s slots from the last known point
    assert m.block[-1] == 1100 + (S1 - 12 - (S0 + 1100)) // 12
    assert any(s.table == "blocks" for s in m.series)


def test_block_interpolation_values():
    kt = np.array([100, 200, 400])
    kb = np.array([10, 20, 30])
    got = estimate_blocks(np.array([100, 150, 200, 300, 400, 412, 76]), kt, kb)
    assert got.tolist() == [10, 15, 20, 25, 30, 31, 8]


def test_lake_without_blocks_table_uses_merge_estimate(tmp_path):
    m = market_for(cfg(base_lake(tmp_path)))
    assert m.block[0] == MERGE_BLOCK + (S0 - MERGE_TS) // 12
    assert np.all(np.diff(m.block) == 1)


# --------------------------------------------------------------------------------------------- scenarios
def test_v_shape_values():
    at, d = 1000, 400
    ts = np.array([900, 1000, 1100, 1200, 1300, 1400, 1500])
    assert scenario_shape(ts, at, d, "v").tolist() == [0.0, 0.0, 0.5, 1.0, 0.5, 0.0, 0.0]


def test_step_shape_values():
    ts = np.array([999, 1000, 1399, 1400])
    assert scenario_shape(ts, 1000, 400, "step").tolist() == [0.0, 1.0, 1.0, 0.0]


def test_depeg_and_rate_spike_overlays(tmp_path):
    base_lake(tmp_path)
    at = S0 + 6 * H
    sc = [ScenarioConfig(kind="depeg", asset="wstETH", at=at, depth=0.08, duration=4 * H, shape="v"),
          ScenarioConfig(kind="rate_spike", asset="WETH", at=S0 + D, depth=0.30, duration=2 * H),
          ScenarioConfig(kind="depeg", asset="weETH", at=S0, depth=0.5, duration=D, shape="step")]
    plain = market_for(cfg(tmp_path))
    m = market_for(cfg(tmp_path, scenarios=sc))
    k = lambda t: (t - S0) // 12   # noqa: E731
    ratio = m.price / plain.price
    assert ratio[k(at)] == pytest.approx(1.0)
    assert ratio[k(at + H)] == pytest.approx(1 - 0.08 * 0.5)
    assert ratio[k(at + 2 * H)] == pytest.approx(0.92)
    assert ratio[k(at + 3 * H)] == pytest.approx(1 - 0.08 * 0.5)
    assert ratio[k(at + 4 * H)] == pytest.approx(1.0)
    assert ratio[k(at) - 1] == 1.0 and ratio[:k(at)].min() == 1.0     # the weETH depeg did not apply
    spike = m.borrow_apr - plain.borrow_apr
    assert spike[k(S0 + D) - 1] == 0.0 and spike[k(S0 + D)] == pytest.approx(0.30)
    assert spike[k(S0 + D + 2 * H) - 1] == pytest.approx(0.30) and spike[k(S0 + D + 2 * H)] == 0.0
    assert np.count_nonzero(spike) == 2 * H // 12


def test_step_depeg_hand_values():
    m = Market.from_arrays(10, ts=np.arange(10) * 100, price=2.0, xrate=1.0, borrow_apr=0.02, supply_apr=0.0,
                           ltv=0.9, lt=0.93, bonus=0.01, pfee=0.1, gas_gwei=1.0)
    out = apply_scenarios(m, [ScenarioConfig("depeg", "stETH", at=200, depth=0.25, duration=300, shape="step")])
    assert out.price.tolist() == [2.0, 2.0, 1.5, 1.5, 1.5, 2.0, 2.0, 2.0, 2.0, 2.0]
    assert m.price.tolist() == [2.0] * 10                             # input untouched


# ------------------------------------------------------------------------------------------- provenance
def test_series_info_and_data_hash(tmp_path):
    base_lake(tmp_path)
    m = market_for(cfg(tmp_path))
    keys = {(s.table, s.key) for s in m.series}
    assert ("prices", "wstETH/WETH") in keys and ("rates", "aave-v3:WETH:borrow_apr") in keys
    assert ("rates", "aave-v3:wstETH:supply_apr") in keys and ("exchange_rates", "wstETH") in keys
    price = next(s for s in m.series if s.key == "wstETH/WETH")
    assert price.first_ts == S0 and price.last_ts == S1 - H and price.max_gap == H and price.rows == 48
    h = m.data_hash
    assert len(h) == 64
    # an unrelated file does not change the hash; a change to a file read does
    lake_write.write_table(tmp_path, "prices", pl.DataFrame({"ts": [1], "base": ["rETH"], "quote": ["WETH"],
                                                       "price": [1.1], "source": ["x"]}), "unrelated")
    assert market_for(cfg(tmp_path)).data_hash == h
    write_gas(tmp_path, [S0 + 5 * H], 99.0)
    assert market_for(cfg(tmp_path)).data_hash != h


def test_other_chains_number_blocks_by_index(tmp_path):
    base_lake(tmp_path)
    c = cfg(tmp_path, block_time=2)
    c = Config(run=RunConfig(name="t", start=S0, end=S0 + 3600, data=tmp_path, block_time=2, chain="base"),
               market=c.market, strategy=c.strategy, costs=c.costs)
    m = market_for(c)
    assert len(m) == 1800 and m.block[:3].tolist() == [0, 1, 2] and m.ts[1] - m.ts[0] == 2
