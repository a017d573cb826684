"""Importers on small hand-made files: formats, unit conversions, gaps (never zeros), clear errors with
nothing written, idempotence, the generic / Dune / DefiLlama / CoinGecko JSON paths, derived series, and the
`backtest data import|derive` commands."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from backtest.cli import cli
from backtest.data import derive, lake, lake_write
from backtest.data.sources import csv_mapping, curve, dune, gas_hourly, registry, toolkit
from backtest.errors import DataError

H = 3600
T0 = 1_700_000_000 - 1_700_000_000 % H        # 2023-11-14 22:00 UTC


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def parquet_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.parquet")) if root.exists() else []


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in parquet_files(root)}


# ------------------------------------------------------------------------------------------------ times
def test_parse_times_units_and_formats():
    s = pl.Series(["1609471801103", "1609475401103"])
    assert toolkit.parse_times(s, "f", "t").to_list() == [1609471801, 1609475401]            # ms detected
    assert toolkit.parse_times(pl.Series(["1609471801"]), "f", "t").to_list() == [1609471801]
    iso = pl.Series(["2025-07-22T20:35:32-04:00", "2024-05-12 00:00:00.000 UTC", "2024-01-01", "7/30/2015",
                     "2022-04-01T00:00:00.000Z", ""])
    out = toolkit.parse_times(iso, "f", "t").to_list()
    assert out == [1753230932, 1715472000, 1704067200, 1438214400, 1648771200, None]
    with pytest.raises(DataError, match=r"f: column 't' mixes time units \(ms, s\)"):
        toolkit.parse_times(pl.Series(["1609471801103", "1609471801"]), "f", "t")
    with pytest.raises(DataError, match=r"unparsable time 'yesterday' \(data row 2\)"):
        toolkit.parse_times(pl.Series(["2024-01-01", "yesterday"]), "f", "t")
    with pytest.raises(DataError, match="outside 2009..2100"):
        toolkit.parse_times(pl.Series(["12345"]), "f", "t")


def test_unit_conversions():
    v = pl.Series([1_366_606_750.0])
    assert toolkit.convert(v, "wei", "base_fee_gwei")[0] == pytest.approx(1.36660675)     # wei -> gwei for gas
    assert toolkit.convert(pl.Series([2.5e18]), "wei", "reserve0")[0] == 2.5                # wei -> token units
    assert toolkit.convert(pl.Series([3.2]), "percent", "supply_apr")[0] == pytest.approx(0.032)
    assert toolkit.convert(pl.Series([8100.0]), "bps", "ltv")[0] == pytest.approx(0.81)
    assert toolkit.convert(pl.Series([2.5e25]), "ray", "borrow_apr")[0] == pytest.approx(0.025)
    # APY 3 % -> the APR that compounds (continuously) to it
    assert toolkit.convert(pl.Series([3.0]), "apy-percent", "borrow_apr")[0] == pytest.approx(math.log(1.03))
    with pytest.raises(DataError, match="unknown unit 'furlong'"):
        toolkit.convert(v, "furlong", "price")
    with pytest.raises(DataError, match="makes no sense for the gas column"):
        toolkit.convert(v, "percent", "base_fee_gwei")


# ------------------------------------------------------------------------------------------------ coingecko
CG = "symbol,timestamp,USD_price\n"


def test_coingecko_csv_ms_timestamps_gaps_and_idempotence(tmp_path):
    f = write(tmp_path / "stETH_usd.csv", CG + f"stETH,{T0 * 1000 + 123},1800.5\nstETH,{(T0 + H) * 1000},\n"
                                              f"stETH,{(T0 + 2 * H) * 1000},0\nstETH,{(T0 + 3 * H) * 1000},1790.25\n")
    lk = tmp_path / "lake"
    rep = registry.import_files("coingecko", [f], lk)
    p = lake.read_series(lk, "prices", base="stETH")
    assert p["ts"].to_list() == [T0, T0 + 3 * H] and p["price"].to_list() == [1800.5, 1790.25]
    assert p["quote"][0] == "USD" and p["source"][0] == "coingecko:stETH_usd"
    # the empty and the zero price are gaps, and reported
    s = rep.series[0]
    assert (s["missing"], s["missing_first"], s["missing_last"]) == (2, T0 + H, T0 + 2 * H)
    assert any("2 missing stETH price value(s) left as gaps" in n for n in rep.notes)
    meta = pq.read_schema(rep[0]).metadata
    assert meta[b"source"] == b"coingecko:stETH_usd" and meta[b"file"] == b"stETH_usd.csv"
    before = snapshot(lk)
    registry.import_files("coingecko", [f], lk)
    assert snapshot(lk) == before                      # byte-identical lake after a second import


def test_coingecko_market_chart_json(tmp_path):
    doc = {"prices": [[T0 * 1000, 3000.0], [(T0 + H) * 1000, None], [(T0 + 2 * H) * 1000, 3010.0]],
           "market_caps": [], "total_volumes": []}
    f = write(tmp_path / "staked-ether.json", json.dumps(doc))
    rep = registry.import_files("coingecko", [f], tmp_path / "lake")
    p = lake.read_series(tmp_path / "lake", "prices", base="stETH", quote="USD")
    assert p["ts"].to_list() == [T0, T0 + 2 * H] and p["price"].to_list() == [3000.0, 3010.0]
    assert rep.series[0]["missing"] == 1
    g = write(tmp_path / "mystery.json", json.dumps(doc))
    with pytest.raises(DataError, match=r"mystery\.json: which coin is this\? pass --set base=SYMBOL"):
        registry.import_files("coingecko", [g], tmp_path / "lake2")
    registry.import_files("coingecko", [g], tmp_path / "lake2", sets={"base": "wstETH", "quote": "ETH"})
    assert lake.read_series(tmp_path / "lake2", "prices")["quote"].to_list() == ["ETH", "ETH"]
    bad = write(tmp_path / "weth.json", '{"prices": [[1700000000000, 1.0], [17')
    with pytest.raises(DataError, match=r"weth\.json: not valid JSON .*truncated download"):
        registry.import_files("coingecko", [bad], tmp_path / "lake3")


def test_multi_file_import_writes_nothing_when_one_file_is_bad(tmp_path):
    good = write(tmp_path / "a.csv", CG + f"WETH,{T0 * 1000},2000\n")
    bad = write(tmp_path / "b.csv", CG + f"stETH,{T0 * 1000},abc\n")
    lk = tmp_path / "lake"
    with pytest.raises(DataError, match=r"b\.csv: column 'USD_price' has a non-numeric value 'abc' \(data row 1\)"):
        registry.import_files("coingecko", [good, bad], lk)
    assert parquet_files(lk) == []
    with pytest.raises(DataError, match=r"not a CoinGecko CSV export"):
        registry.import_files("coingecko", [write(tmp_path / "c.csv", "x,y\n1,2\n")], lk)
    assert parquet_files(lk) == []


# ------------------------------------------------------------------------------------------------ comet, etherscan
def test_comet_units_and_quote_sanity(tmp_path):
    f = write(tmp_path / "rETH_usd.csv", f"symbol,timestamp,USD_price\nrETH,{T0},\nrETH,{T0 + H},1.1162\n")
    registry.import_files("comet", [f], tmp_path / "lake")
    o = lake.read_series(tmp_path / "lake", "oracle_prices", protocol="compound-v3", asset="rETH")
    assert o.select("quote", "price").rows() == [("ETH", 1.1162)] and o["ts"][0] == T0 + H
    usd = write(tmp_path / "cbETH_usd.csv", f"symbol,timestamp,USD_price\ncbETH,{T0},2400.5\n")
    with pytest.raises(DataError, match=r"cbETH prices look like USD .* pass --set quote=USD"):
        registry.import_files("comet", [usd], tmp_path / "lake2")
    assert parquet_files(tmp_path / "lake2") == []


def test_etherscan_wei_to_gwei_and_zero_days(tmp_path):
    f = write(tmp_path / "export-AvgGasPrice.csv", '"Date(UTC)","UnixTimeStamp","Value (Wei)"\n'
                                                   '"7/30/2015","1438214400","0"\n'
                                                   '"6/2/2026","1780358400","1366606750"\n')
    rep = registry.import_files("etherscan", [f], tmp_path / "lake")
    g = lake.read_table(tmp_path / "lake", "gas")
    assert g.select("ts", "base_fee_gwei").rows() == [(1780358400, pytest.approx(1.36660675))]
    assert g["priority_fee_gwei"].null_count() == 1
    assert rep.series[0]["missing"] == 1 and any("zero value(s) read as 'no data'" in n for n in rep.notes)
    used = write(tmp_path / "export-GasUsed.csv", '"Date(UTC)","UnixTimeStamp","Value"\n"1/1/2020","1577836800","5"\n')
    with pytest.raises(DataError, match="total gas used per day has no lake table"):
        registry.import_files("etherscan", [used], tmp_path / "lake")


# ------------------------------------------------------------------------------- snapshots, rocket pool
SNAP_HEAD = ("commit,commit_time_utc,snapshot_generated_at,symbol,current_liquidity_rate,current_variable_borrow_rate,"
             "liquidity_index,variable_borrow_index,loan_to_value,liquidation_threshold,liquidation_bonus\n")


def test_aave_snapshots_units_detected_and_params_as_steps(tmp_path):
    ray = 10 ** 27
    f = write(tmp_path / "snap.csv", SNAP_HEAD
              + f"a,x,2025-07-22T21:38:59Z,WETH,{36 * ray // 1000},{45 * ray // 1000},{ray},{ray},8050,8300,10500\n"
              + f"b,x,2025-07-23T21:38:59Z,WETH,{37 * ray // 1000},{46 * ray // 1000},{ray},{ray},8050,8300,10500\n"
              + f"c,x,2025-07-24T21:38:59Z,WETH,{37 * ray // 1000},,{ray},{ray},8000,8300,10500\n")
    rep = registry.import_files("aave-snapshots", [f], tmp_path / "lake")
    r = lake.read_series(tmp_path / "lake", "rates", asset="WETH")
    assert r["supply_apr"].to_list() == pytest.approx([0.036, 0.037]) and r["borrow_apr"][0] == pytest.approx(0.045)
    assert rep.series[0]["missing"] == 1                        # the empty borrow rate is a gap
    mp = lake.read_series(tmp_path / "lake", "market_params", asset="WETH")
    assert mp.select("ltv", "liquidation_threshold", "liquidation_bonus").rows() == [
        (pytest.approx(0.805), pytest.approx(0.83), pytest.approx(0.05)), (pytest.approx(0.80), pytest.approx(0.83),
                                                                           pytest.approx(0.05))]
    assert mp["emode"].null_count() == 2
    assert any("read as ray" in n for n in rep.notes) and any("basis points of the LB" in n for n in rep.notes)


def test_rocketpool_rate_from_balances(tmp_path):
    f = write(tmp_path / "reth.csv", "block_number,slot_timestamp,total_eth_wei,staking_eth_wei,reth_supply_wei,"
                                     "timestamp\n"
                                     f"100,0,0,0,0,{T0}\n"
                                     f"200,0,110000000000000000000,0,100000000000000000000,{T0 + 86400}\n"
                                     f"200,0,110000000000000000000,0,100000000000000000000,{T0 + 86400}\n")
    rep = registry.import_files("rocketpool", [f], tmp_path / "lake")
    x = lake.read_series(tmp_path / "lake", "exchange_rates", token="rETH")
    assert x.select("ts", "rate").rows() == [(T0 + 86400, pytest.approx(1.1))]
    assert rep.series[0]["missing"] == 1 and any("1 repeated report" in n for n in rep.notes)


# ------------------------------------------------------------------------------------------------ proposed tables
CURVE = "UNIX TimeStamp,Virtual Price, stETH Balance,ETH Balance\n"


def test_curve_and_etherfi_parse_but_the_lake_has_no_table_yet(tmp_path):
    curve_csv = write(tmp_path / "stETH.csv", CURVE + f"{T0 + 86400},1043305472446207528,503780934894720611533031,"
                                                  f"128361122694816994569276\n{T0},1,2000000000000000000,"
                                                  "3000000000000000000\n")
    (item,) = registry.normalise("curve", [curve_csv])
    assert item.table == "liquidity" and item.df["ts"].to_list() == [T0, T0 + 86400]       # newest-first, sorted
    assert item.df["reserve0"].to_list() == pytest.approx([3.0, 128361.12269481699])
    assert item.df["token1"][0] == "stETH" and item.df["reserve1"][1] == pytest.approx(503780.9348947206)
    if "liquidity" not in lake.TABLES:
        with pytest.raises(DataError, match=r"liquidity: the lake has no 'liquidity' table yet .* not written"):
            registry.import_files("curve", [curve_csv], tmp_path / "lake")
        assert parquet_files(tmp_path / "lake") == []
    apy = write(tmp_path / "bar-chart.csv", "Timestamp,Date,Base,Reward\n1717545600,2024-06-05,3.49,\n"
                                            "1759104000,2025-09-29,1.80,0.41\n")
    base, reward = registry.normalise("etherfi", [apy])
    assert base.df["apr"].to_list() == pytest.approx([math.log(1.0349), math.log(1.018)])
    assert reward.df.height == 1 and reward.missing == 1 and reward.df["kind"][0] == "reward_apy"
    drops = write(tmp_path / "seasonal_drops.csv", "start_date,end_date,reward_per_eeth,extra_yield_pct\n"
                                                   "2024-03-01,2024-03-15,~5-15,~0.2%\n")
    with pytest.raises(DataError, match="estimates"):
        registry.normalise("etherfi", [drops])


def test_proposed_tables_write_once_the_lake_defines_them(tmp_path, monkeypatch):
    """The liquidity and rewards importers write unchanged when lake.TABLES gets the proposed schemas."""
    for t, sch in toolkit.PROPOSED_TABLES.items():
        monkeypatch.setitem(lake.TABLES, t, sch)
        monkeypatch.setitem(lake.KEYS, t, toolkit.PROPOSED_KEYS[t])
        monkeypatch.setitem(lake._RANGES, t, {})
    curve_csv = write(tmp_path / "stETH.csv", CURVE + f"{T0},1,2000000000000000000,3000000000000000000\n")
    registry.import_files("curve", [curve_csv], tmp_path / "lake")
    registry.import_files("curve", [curve_csv], tmp_path / "lake")
    liq = lake.read_table(tmp_path / "lake", "liquidity")
    assert liq.select("pool", "reserve0", "reserve1").rows() == [(f"curve:{curve.CURVE_STETH_POOL}", 3.0, 2.0)]


# ------------------------------------------------------------------------------------------------ generic / dune
def test_generic_csv_with_mapping_units_and_gaps(tmp_path):
    f = write(tmp_path / "px.csv", "time,close,vol\n2024-05-12T00:00:00Z,1.1658,10\n2024-05-12T01:00:00Z,,11\n"
                                   "2024-05-12T02:00:00Z,1.1660,12\n")
    lk = tmp_path / "lake"
    rep = csv_mapping.import_csv(f, lk, "prices", ["ts=time", "price=close"], {"base": "wstETH", "quote": "WETH"})
    p = lake.read_series(lk, "prices", base="wstETH")
    assert p.select("ts", "price").rows() == [(1715472000, 1.1658), (1715479200, 1.166)]
    assert p["source"][0] == "csv:px" and rep.series[0]["missing"] == 1
    with pytest.raises(DataError, match=r"prices needs column\(s\) quote: pass --map"):
        csv_mapping.import_csv(f, tmp_path / "l2", "prices", ["ts=time", "price=close"], {"base": "wstETH"})
    with pytest.raises(DataError, match=r"--map prise=\.\.\.: prices has no column 'prise'"):
        csv_mapping.import_csv(f, tmp_path / "l2", "prices", ["ts=time", "prise=close"], {"base": "a", "quote": "b"})
    with pytest.raises(DataError, match=r"px\.csv: missing column 'clos'"):
        csv_mapping.import_csv(f, tmp_path / "l2", "prices", ["ts=time", "price=clos"], {"base": "a", "quote": "b"})
    assert parquet_files(tmp_path / "l2") == []


def test_generic_rates_percent_and_utilization_from_totals(tmp_path):
    f = write(tmp_path / "r.csv", "day,sup,bor,supplied,borrowed\n2024-01-01,1.5,2.5,1000,800\n"
                                  "2024-01-02,1.6,2.6,0,0\n")
    csv_mapping.import_csv(f, tmp_path / "lake", "rates",
                           ["ts=day", "supply_apr=sup:percent", "borrow_apr=bor:percent"],
                           {"protocol": "spark", "asset": "WETH"})
    r = lake.read_series(tmp_path / "lake", "rates", protocol="spark")
    assert r["supply_apr"].to_list() == pytest.approx([0.015, 0.016])
    assert r["utilization"].to_list() == [pytest.approx(0.8), None]      # 0/0 is unknown, not 0


def test_dune_csv_and_json(tmp_path):
    f = write(tmp_path / "q.csv", "hour,base_fee\n2024-05-12 00:00:00.000 UTC,12000000000\n")
    dune.import_dune(f, tmp_path / "lake", "gas", ["ts=hour", "base_fee_gwei=base_fee:wei"])
    assert lake.read_table(tmp_path / "lake", "gas").select("ts", "base_fee_gwei").rows() == [(1715472000, 12.0)]
    doc = {"execution_id": "x", "result": {"rows": [{"block_time": "2024-05-12 01:00:00.000 UTC", "rate": 1.17}],
                                           "metadata": {}}}
    j = write(tmp_path / "res.json", json.dumps(doc))
    dune.import_dune(j, tmp_path / "lake", "exchange_rates", ["ts=block_time"],
                     {"token": "wstETH", "underlying": "stETH"})
    x = lake.read_series(tmp_path / "lake", "exchange_rates", token="wstETH")
    assert x.select("ts", "rate", "source").rows() == [(1715475600, 1.17, "dune:res")]


# ------------------------------------------------------------------------------------------------ defillama
def test_defillama_coins_lend_borrow_and_yields(tmp_path):
    coins = {"coins": {"ethereum:0x7f39c581f595b53c5cb19bd0b3f8da6c935e2ca0": {
        "symbol": "WSTETH", "decimals": 18, "confidence": 0.99,
        "prices": [{"timestamp": T0, "price": 3500.0, "confidence": 0.99},
                   {"timestamp": T0 + H, "price": 3510.0, "confidence": 0.8}]}}}
    lb = {"status": "success", "data": [
        {"timestamp": "2024-05-12T23:01:38.000Z", "totalSupplyUsd": 1000.0, "totalBorrowUsd": 750.0,
         "debtCeilingUsd": None, "apyBase": 1.8, "apyReward": None, "apyBaseBorrow": 2.6, "apyRewardBorrow": None},
        {"timestamp": "2024-05-13T23:01:38.000Z", "totalSupplyUsd": 1000.0, "totalBorrowUsd": 760.0,
         "apyBase": None, "apyBaseBorrow": 2.7}]}
    y = {"status": "success", "data": [{"timestamp": "2022-01-01T00:00:00.000Z", "tvlUsd": 1, "apy": 4.0,
                                        "apyBase": 4.0, "apyReward": None},
                                       {"timestamp": "2022-01-02T00:00:00.000Z", "tvlUsd": 1, "apy": 4.0,
                                        "apyBase": 4.0, "apyReward": None}]}
    fc = write(tmp_path / "coins.json", json.dumps(coins))
    fl = write(tmp_path / "lb.json", json.dumps(lb))
    fy = write(tmp_path / "y.json", json.dumps(y))
    lk = tmp_path / "lake"
    with pytest.raises(DataError, match=r"lb\.json: a lend-borrow chart needs --set protocol"):
        registry.import_files("defillama", [fc, fl], lk)
    assert parquet_files(lk) == []
    rep = registry.import_files("defillama", [fc, fl], lk, sets={"protocol": "aave-v3", "asset": "WETH"})
    p = lake.read_series(lk, "prices", base="wstETH")
    assert p["price"].to_list() == [3500.0, 3510.0] and p["source"][0] == "defillama:coins"
    assert any("confidence down to 0.80" in n for n in rep.notes)
    r = lake.read_series(lk, "rates", protocol="aave-v3", asset="WETH")
    assert r.height == 1 and r["ts"][0] == 1715554898                 # the second day lacks the supply APY: a gap
    assert r["supply_apr"][0] == pytest.approx(math.log(1.018)) and r["utilization"][0] == 0.75
    with pytest.raises(DataError, match="yields chart has only the supply APY"):
        registry.import_files("defillama", [fy], lk)
    registry.import_files("defillama", [fy], lk, sets={"token": "stETH"})
    x = lake.read_series(lk, "exchange_rates", token="stETH")
    assert x["rate"].to_list() == pytest.approx([1.0, math.exp(math.log(1.04) / 365)])


# ------------------------------------------------------------------------------------------------ derived
def usd(lk: Path, base: str, pts: list[tuple[int, float]], source: str = "cg") -> None:
    lake_write.write_table(lk, "prices", pl.DataFrame({"ts": [t for t, _ in pts], "base": base, "quote": "USD",
                                                 "price": [p for _, p in pts], "source": source}), f"{base}-{source}")


def test_derive_ratio_floors_to_the_hour_and_inner_joins(tmp_path):
    lk = tmp_path / "lake"
    usd(lk, "stETH", [(T0 + 90, 990.0), (T0 + H + 30, 980.0), (T0 + H + 1800, 970.0), (T0 + 3 * H + 5, 950.0)])
    usd(lk, "WETH", [(T0 + 10, 1000.0), (T0 + H + 100, 1000.0), (T0 + 2 * H, 1000.0), (T0 + 3 * H + 9, 1000.0)])
    derive.derive_ratio(lk, "stETH", "WETH")
    r = lake.read_series(lk, "prices", base="stETH", quote="WETH")
    # hour 1: the last stETH point of the hour (970); hour 2 has no stETH point: no row (inner join)
    assert r.select("ts", "price").rows() == [(T0, 0.99), (T0 + H, 0.97), (T0 + 3 * H, 0.95)]
    assert r["source"][0] == "derived:cg/cg@3600s"
    # a rebasing token: the exchange rate is ASSUMED growth and the price is ratio x rate
    lk2 = tmp_path / "lake2"
    usd(lk2, "stETH", [(T0, 990.0), (T0 + 86400 * 365, 990.0)])
    usd(lk2, "WETH", [(T0, 1000.0), (T0 + 86400 * 365, 1000.0)])
    derive.derive_ratio(lk2, "stETH", "WETH", rebase_apr=0.04)
    x = lake.read_series(lk2, "exchange_rates", token="stETH")
    p = lake.read_series(lk2, "prices", base="stETH", quote="WETH")
    assert x["rate"].to_list() == pytest.approx([1.0, math.exp(0.04)])
    assert (p["price"] / x["rate"]).to_list() == pytest.approx([0.99, 0.99])
    assert x["source"][0] == "assumed:constant-apr-0.04"
    with pytest.raises(DataError, match=r"prices rETH/USD: no rows"):
        derive.derive_ratio(lk2, "rETH", "WETH")


def test_derive_ratio_trailing_median_removes_a_one_hour_glitch(tmp_path):
    lk = tmp_path / "lake"
    usd(lk, "stETH", [(T0 + k * H, 1000.0) for k in range(5)])
    usd(lk, "WETH", [(T0 + k * H, p) for k, p in enumerate([1000.0, 1000.0, 800.0, 1000.0, 1000.0])])
    derive.derive_ratio(lk, "stETH", "WETH", median_of=3)
    assert lake.read_series(lk, "prices", base="stETH", quote="WETH")["price"].to_list() == [1.0] * 5


def test_derive_oracle_rate_from_usd_prices(tmp_path):
    lk = tmp_path / "lake"
    for asset, px in (("WETH", [3000.0, 3100.0]), ("wstETH", [3540.0, 3658.31])):
        rows = pl.DataFrame({"ts": [T0, T0 + 86400], "block": [1, 2], "protocol": "aave-v3", "asset": asset,
                             "quote": "USD", "price": px})
        lake_write.write_table(lk, "oracle_prices", rows, asset)
    derive.derive_oracle_rate(lk, "aave-v3", "wstETH", quote="WETH", exchange_rate=True)
    o = lake.read_series(lk, "oracle_prices", asset="wstETH", quote="WETH")
    assert o["price"].to_list() == pytest.approx([1.18, 3658.31 / 3100]) and o["block"].to_list() == [1, 2]
    x = lake.read_series(lk, "exchange_rates", token="wstETH")
    assert x["source"][0] == "oracle:aave-v3" and x["rate"][0] == pytest.approx(1.18)


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_import_and_derive(tmp_path):
    f = write(tmp_path / "px.csv", "time,close\n1715472000,1.1658\n1715475600,1.1659\n")
    lk = tmp_path / "lake"
    r = CliRunner().invoke(cli, ["data", "import", "csv", str(f), "--into", str(lk), "--table", "prices",
                                 "--map", "ts=time:s", "--map", "price=close", "--set", "base=wstETH",
                                 "--set", "quote=WETH"])
    assert r.exit_code == 0, r.output
    assert "wstETH/WETH" in r.output and "2 rows" in r.output and "wrote 1 lake file(s)" in r.output
    r = CliRunner().invoke(cli, ["data", "import", "csv", str(f), "--into", str(lk), "--table", "prices",
                                 "--map", "ts=time", "--map", "price=close:furlong", "--set", "base=a",
                                 "--set", "quote=b"])
    assert r.exit_code == 2 and "unknown unit 'furlong'" in r.output
    r = CliRunner().invoke(cli, ["data", "import", "coingeko", str(f)])
    assert r.exit_code == 2 and "unknown import source 'coingeko'" in r.output and "coingecko" in r.output
    r = CliRunner().invoke(cli, ["data", "import", "aavescan", str(tmp_path / "missing.csv"), "--into", str(lk)])
    assert r.exit_code == 2 and "missing.csv: file not found" in r.output
    r = CliRunner().invoke(cli, ["data", "import", "etherscan", str(f), "--into", str(lk), "--set", "kind=x",
                                 "--set", "colour=red"])
    assert r.exit_code == 2 and "--set colour" in r.output
    usd(lk, "stETH", [(T0, 990.0)])
    usd(lk, "WETH", [(T0, 1000.0)])
    r = CliRunner().invoke(cli, ["data", "derive", "ratio", "stETH", "WETH", "--lake", str(lk)])
    assert r.exit_code == 0, r.output
    assert lake.read_series(lk, "prices", base="stETH", quote="WETH")["price"].to_list() == [0.99]


def test_cli_derive_needs_into_like_import(tmp_path, monkeypatch):
    """`data derive` writes only into a lake the user names, as `data import` does: no default into data/."""
    monkeypatch.chdir(tmp_path)
    for args in (["ratio", "stETH", "WETH"], ["oracle-rate", "aave-v3", "wstETH", "--exchange-rate"]):
        r = CliRunner().invoke(cli, ["data", "derive", *args])
        assert r.exit_code == 2, r.output
        assert (f"data derive {args[0]}: --into DIR is required (the lake to write into, e.g. --into lake; "
                "nothing was written)") in r.output
    assert list(tmp_path.iterdir()) == []                       # no data/ lake was read or made
    lk = tmp_path / "lk"
    usd(lk, "stETH", [(T0, 990.0)])
    usd(lk, "WETH", [(T0, 1000.0)])
    r = CliRunner().invoke(cli, ["data", "derive", "ratio", "stETH", "WETH", "--into", str(lk)])
    assert r.exit_code == 0, r.output
    assert lake.read_series(lk, "prices", base="stETH", quote="WETH")["price"].to_list() == [0.99]


def test_the_original_importers_keep_their_signatures(tmp_path):
    """import_aavescan / import_peg_hourly / import_gas_hourly still return the list of files written."""
    f = write(tmp_path / "gas.csv", "block_number,block_timestamp,base_fee_gwei,priority_fee_p50_gwei\n"
                                    "1,1700000000,10,0.1\n")
    out = gas_hourly.import_gas_hourly(f, tmp_path / "lake")
    assert isinstance(out, list) and out == [tmp_path / "lake" / "gas" / "gas-hourly-gas-hourly.parquet",
                                             tmp_path / "lake" / "blocks" / "blocks-gas-hourly-gas-hourly.parquet"]
    assert np.isclose(lake.read_table(tmp_path / "lake", "gas")["base_fee_gwei"][0], 10.0)
