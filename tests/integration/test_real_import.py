"""Import the real files of ../shared/data into a lake and align a run over them.

The real-data tests skip only when ../shared/data (relative to the repo root) is absent; the malformed-input
tests use small files written here and always run.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from backtest.config_types import Config, CostsConfig, MarketConfig, RunConfig, StrategyConfig
from backtest.data import lake
from backtest.data.sources.aavescan import import_aavescan
from backtest.data.sources.gas_hourly import import_gas_hourly
from backtest.data.sources.peg_hourly import import_peg_hourly
from backtest.plan import market_for
from backtest.errors import DataError

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
AAVESCAN = SHARED / "aavescan-v3-eth-rates-daily"
WETH_CSV = AAVESCAN / "aave_v3_aave-v3-ethereum_WETH_rates_2024-01-01_2025-09-18.csv"
WSTETH_CSV = AAVESCAN / "aave_v3_aave-v3-ethereum_wstETH_rates_2024-05-12_2025-09-18.csv"
PEG_CSV = SHARED / "lst-peg-dex-vs-oracle-hourly" / "wstETH_peg_analysis_2024-01-01_2025-09-18.csv"
GAS_CSV = SHARED / "eth-gas-hourly-2024-2025" / "ethereum_gas_prices_2024-01-01_2025-09-26.csv"

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent")


def T(s: str) -> int:
    return int(dt.datetime.fromisoformat(s).replace(tzinfo=dt.timezone.utc).timestamp())


@pytest.fixture(scope="module")
def real_lake(tmp_path_factory) -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent")
    d = tmp_path_factory.mktemp("real")
    import_aavescan(WETH_CSV, d)
    import_aavescan(WSTETH_CSV, d)
    import_peg_hourly(PEG_CSV, d)
    import_gas_hourly(GAS_CSV, d)
    return d


@needs_shared
def test_row_counts(real_lake):
    assert lake.read_series(real_lake, "rates", asset="WETH").height == 638
    assert lake.read_series(real_lake, "rates", asset="wstETH").height == 506
    assert lake.read_series(real_lake, "prices", base="WETH", quote="USD").height == 638
    assert lake.read_series(real_lake, "prices", base="wstETH", quote="WETH").height == 12068
    assert lake.read_series(real_lake, "exchange_rates", token="wstETH").height == 12068
    assert lake.read_table(real_lake, "gas").height == 15240


@needs_shared
def test_spot_values_from_the_files(real_lake):
    # WETH row 2024-07-17: timestamp 1721174400, block 20322520
    r = lake.read_series(real_lake, "rates", protocol="aave-v3", asset="WETH").filter(pl.col("ts") == 1721174400)
    row = r.row(0, named=True)
    assert row["block"] == 20322520
    assert row["borrow_apr"] == 0.0257980295296125 and row["supply_apr"] == 0.0188569192823048
    assert row["supply_index"] == 1.027770295711414 and row["borrow_index"] == 1.0469904892585096
    assert row["utilization"] == pytest.approx(818762.5358651002 / 952072.7599586745, rel=1e-15)
    usd = lake.read_series(real_lake, "prices", base="WETH", quote="USD").filter(pl.col("ts") == 1721174400)
    assert usd["price"].to_list() == [3446.48587759] and usd["source"][0].startswith("aavescan")
    # wstETH first row 2024-05-12
    w = lake.read_series(real_lake, "rates", asset="wstETH").row(0, named=True)
    assert (w["ts"], w["block"], w["supply_apr"], w["borrow_apr"]) == (1715472000, 19850229, 1.40369429193e-05,
                                                                       0.0030427367484768)
    # peg row "2024-12-07 05:00:00+00:00"
    t = T("2024-12-07 05:00")
    p = lake.read_series(real_lake, "prices", base="wstETH", start=t, end=t + 1)
    x = lake.read_series(real_lake, "exchange_rates", token="wstETH", start=t, end=t + 1)
    assert p["price"].to_list() == [1.186487323515285] and p["quote"][0] == "WETH"
    assert x["rate"].to_list() == [1.1869939458698966] and x["underlying"][0] == "ETH"
    first = lake.read_series(real_lake, "prices", base="wstETH").row(0, named=True)
    assert first["ts"] == T("2024-05-12 23:00") and first["price"] == 1.16584614426892
    # gas row labelled 2025-02-20T14:00 is block 21887734 at 1740056507 (13:01:47)
    g = lake.read_table(real_lake, "gas").filter(pl.col("ts") == 1740056507).row(0, named=True)
    assert (g["block"], g["base_fee_gwei"], g["priority_fee_gwei"]) == (21887734, 1.3, 0.74)


@needs_shared
def test_reimport_is_idempotent(real_lake):
    before = lake.read_table(real_lake, "prices")
    import_peg_hourly(PEG_CSV, real_lake)
    import_aavescan(WETH_CSV, real_lake)
    assert lake.read_table(real_lake, "prices").equals(before)


@needs_shared
def test_align_over_the_real_files(real_lake):
    cfg = Config(run=RunConfig(name="real", start=T("2024-05-13"), end=T("2025-09-18"), data=real_lake),
                 market=MarketConfig(protocol="aave-v3", collateral="wstETH", debt="WETH", emode="eth-correlated"),
                 strategy=StrategyConfig(), costs=CostsConfig())
    m = market_for(cfg)
    assert len(m) == (T("2025-09-18") - T("2024-05-13")) // 12
    k = lambda t: (t - T("2024-05-13")) // 12   # noqa: E731
    # peg file at 2024-12-07 05:00 (a block time): market_rate / protocol_rate of that row, and until 05:59:48
    i = k(T("2024-12-07 05:00"))
    assert m.price[i] == 1.186487323515285 and m.xrate[i] == 1.1869939458698966
    assert m.xrate[i + 299] == 1.1869939458698966 and m.xrate[i + 300] == 1.186997865078611   # 06:00 row
    # daily aavescan rows hold all day: WETH 2024-07-17 and wstETH 2025-03-06
    i = k(T("2024-07-17 06:00"))
    assert m.borrow_apr[i] == 0.0257980295296125 and m.eth_usd[i] == 3446.48587759
    assert m.supply_apr[k(T("2025-03-06 12:00"))] == 0.0011652076111697
    # gas: block 21887733 at 1740056495 (1.32 + 0.62), then block 21887734 at 1740056507 (1.3 + 0.74)
    assert m.gas_gwei[k(1740056496)] == pytest.approx(1.94) and m.gas_gwei[k(1740056508)] == pytest.approx(2.04)
    assert m.gas_gwei[k(1740056496) - 1] != pytest.approx(1.94)
    # no market_params in the lake: E-mode defaults 93 / 95 / 1 %, fee 10 %
    assert np.all(m.ltv == 0.93) and np.all(m.lt == 0.95) and np.all(m.bonus == 0.01) and np.all(m.pfee == 0.1)
    assert np.isnan(m.oracle_feed).all() and np.isfinite(m.eth_usd).all()
    assert len(m.data_hash) == 64 and {s.table for s in m.series} >= {"prices", "exchange_rates", "rates", "gas"}


@needs_shared
def test_window_before_the_wsteth_files_is_a_coverage_error(real_lake):
    cfg = Config(run=RunConfig(name="real", start=T("2024-03-01"), end=T("2024-06-01"), data=real_lake),
                 market=MarketConfig(), strategy=StrategyConfig(), costs=CostsConfig())
    with pytest.raises(DataError, match=r"prices wstETH/WETH: no point at or before the run start 2024-03-01"):
        market_for(cfg)


# ---------------------------------------------------------------------------------- malformed input
def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


AAVESCAN_HEADER = ("targetDate,timestamp,blockNumber,reserve,symbol,liquidityIndex,currentLiquidityRate,"
                   "variableBorrowIndex,currentVariableBorrowRate,currentStableBorrowRate,totalAToken,"
                   "totalStableDebt,totalVariableDebt,price,date\n")


def test_aavescan_non_numeric_value_names_file_and_column(tmp_path):
    f = _write(tmp_path / "weth.csv", AAVESCAN_HEADER
               + "2024-01-01T00:00:00Z,1704067200,18908894,0xC0,WETH,1.01,0.017,1.03,0.026,0.09,500,0,384,2280,"
                 "2024-01-01\n"
               + "2024-01-02T00:00:00Z,1704153600,18916001,0xC0,WETH,1.01,abc,1.03,0.026,0.09,500,0,384,2350,"
                 "2024-01-02\n")
    lk = tmp_path / "lake"
    with pytest.raises(DataError, match=r"weth\.csv: column 'currentLiquidityRate' has a non-numeric value 'abc'"):
        import_aavescan(f, lk)
    assert not lk.exists() or not any(lk.rglob("*.parquet"))


def test_aavescan_missing_column_writes_nothing(tmp_path):
    f = _write(tmp_path / "w.csv", "timestamp,blockNumber,symbol\n1,2,WETH\n")
    with pytest.raises(DataError, match=r"w\.csv: missing column 'liquidityIndex'"):
        import_aavescan(f, tmp_path / "lake")
    assert not (tmp_path / "lake").exists()


def test_peg_bad_timestamp_and_missing_value(tmp_path):
    head = "timestamp,protocol_rate,asset,market_rate,dex\n"
    f = _write(tmp_path / "peg.csv", head + "2024-05-12 23:00:00+00:00,1.16,wstETH,1.165,uniswap\n"
                                          "yesterday,1.16,wstETH,1.165,uniswap\n")
    with pytest.raises(DataError, match=r"peg\.csv: column 'timestamp' has an unparsable timestamp 'yesterday'"):
        import_peg_hourly(f, tmp_path / "lake")
    g = _write(tmp_path / "peg2.csv", head + "2024-05-12 23:00:00+00:00,1.16,wstETH,,uniswap\n")
    with pytest.raises(DataError, match=r"peg2\.csv: column 'market_rate' has an empty value"):
        import_peg_hourly(g, tmp_path / "lake")
    assert not (tmp_path / "lake").exists()


def test_peg_parses_utc_timestamps(tmp_path):
    f = _write(tmp_path / "peg.csv", "timestamp,protocol_rate,asset,market_rate\n"
                                     "2024-05-12 23:00:00+00:00,1.16,wstETH,1.165\n"
                                     "2024-05-13T01:00:00Z,1.17,wstETH,1.166\n"
                                     "2024-05-13 04:00:00+02:00,1.18,wstETH,1.167\n")
    import_peg_hourly(f, tmp_path / "lake")
    ts = lake.read_table(tmp_path / "lake", "prices")["ts"].to_list()
    assert ts == [T("2024-05-12 23:00"), T("2024-05-13 01:00"), T("2024-05-13 02:00")]


def test_gas_non_numeric_names_file_and_column(tmp_path):
    f = _write(tmp_path / "gas.csv", "block_number,block_timestamp,base_fee_gwei,priority_fee_p50_gwei\n"
                                     "1,100,10.0,0.1\n2,112,ten,0.1\n")
    with pytest.raises(DataError, match=r"gas\.csv: column 'base_fee_gwei' has a non-numeric value 'ten'"):
        import_gas_hourly(f, tmp_path / "lake")
    assert not (tmp_path / "lake").exists()
    h = _write(tmp_path / "gas2.csv", "block_number,block_timestamp,base_fee_gwei\n1,100,10.0\n")
    with pytest.raises(DataError, match=r"gas2\.csv: missing column 'priority_fee_p50_gwei'"):
        import_gas_hourly(h, tmp_path / "lake")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        import_gas_hourly(tmp_path / "nope.csv", tmp_path / "lake")
