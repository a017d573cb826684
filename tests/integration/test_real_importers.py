"""Every importer on its real file under ../shared/data: row counts, spans and values read in the files.

Skipped only when ../shared/data is absent. Values quoted in the comments are the files' own cells.
"""
from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from backtest.data import lake
from backtest.data.check import check_lake
from backtest.data.derive import derive_oracle_rate, derive_ratio
from backtest.data.sources.registry import import_files, normalise
from backtest.errors import DataError

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent")


def one(df: pl.DataFrame, ts: int) -> dict:
    rows = df.filter(pl.col("ts") == ts)
    assert rows.height == 1, f"{rows.height} rows at {ts}"
    return rows.row(0, named=True)


@pytest.fixture(scope="module")
def lk(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("real-importers")


def test_coingecko_hourly_ms_csv_and_the_steth_eth_ratio(lk):
    d = SHARED / "coingecko-steth-weth-hourly"
    rep = import_files("coingecko", [d / "stETH_usd.csv", d / "WETH_usd.csv"], lk)
    st = lake.read_series(lk, "prices", base="stETH", quote="USD")
    we = lake.read_series(lk, "prices", base="WETH", quote="USD")
    assert (st.height, we.height) == (18410, 18861) and sum(s["missing"] for s in rep.series) == 0
    # first stETH row: stETH,1609471801103,738.2150453118472 (ms -> s)
    assert st.row(0, named=True)["ts"] == 1609471801 and st["price"][0] == 738.2150453118472
    # last WETH row: WETH,1677366252250,1597.7179983343294
    assert (we["ts"][-1], we["price"][-1]) == (1677366252, 1597.7179983343294)
    derive_ratio(lk, "stETH", "WETH")
    r = lake.read_series(lk, "prices", base="stETH", quote="WETH")
    assert r.height == 18366                                      # SOURCE.md: floor to hour, inner join -> 18,366
    june = r.filter((pl.col("ts") >= 1654646400) & (pl.col("ts") < 1656460800))   # 2022-06-08 .. 06-29
    lo = june.sort("price").row(0, named=True)
    assert lo["ts"] == 1655582400 and lo["price"] == pytest.approx(0.930592, abs=1e-6)   # 2022-06-18 20:00


def test_coingecko_daily_long_table(lk):
    rep = import_files("coingecko", [SHARED / "coingecko-lst-lrt-usd-daily-2025-26" / "price_history.csv"], lk)
    assert len(rep.series) == 28 and sum(s["rows"] for s in rep.series) == 10220
    w = lake.read_series(lk, "prices", base="wstETH", quote="USD")
    assert w.height == 365 and w["ts"][0] == 1740441600                 # 2025-02-25
    assert one(w, 1771891200)["price"] == 2275.398246465611             # 2026-02-24,wstETH,2275.398246465611


def test_aavescan_adds_oracle_prices(lk):
    d = SHARED / "aavescan-v3-eth-rates-daily"
    import_files("aavescan", sorted(d.glob("*.csv")), lk)
    o = lake.read_series(lk, "oracle_prices", protocol="aave-v3", asset="wstETH", quote="USD")
    assert o.height == 506 and o.row(0, named=True)["price"] == 3393.15612341 and o["block"][0] == 19850229
    derive_oracle_rate(lk, "aave-v3", "wstETH", quote="WETH")
    ratio = lake.read_series(lk, "oracle_prices", protocol="aave-v3", asset="wstETH", quote="WETH")
    # 2024-05-12: 3393.15612341 / WETH 2909.32... ~ 1.1663, the stEthPerToken of the day (peg file: 1.16639)
    assert ratio.height == 506 and ratio["price"][0] == pytest.approx(1.1663, abs=2e-4)


def test_aave_snapshot_table(lk):
    rep = import_files("aave-snapshots", [SHARED / "aave-v3-daily-snapshots-2025" /
                                          "aave_v3_ethereum_eth_assets_daily.csv"], lk)
    counts = {s["key"]: s["rows"] for s in rep.series if s["table"] == "rates"}
    assert sum(counts.values()) == 3923 and counts["aave-v3:ezETH"] == 369 and counts["aave-v3:WETH"] == 398
    # first WETH snapshot 2025-07-22T21:38:59.079868+00:00: rates 0.036447 / 0.044958, LTV .805 LT .83 bonus .05
    w = one(lake.read_series(lk, "rates", protocol="aave-v3", asset="WETH"), 1753220339)
    assert (w["supply_apr"], w["borrow_apr"], w["supply_index"]) == (0.036447, 0.044958, 1.049424)
    mp = lake.read_series(lk, "market_params", asset="WETH").row(0, named=True)
    assert (mp["ts"], mp["ltv"], mp["liquidation_threshold"], mp["liquidation_bonus"]) == (1753220339, 0.805, 0.83,
                                                                                             0.05)
    assert mp["emode"] is None and mp["protocol_fee"] is None        # mis-decoded in the file: not imported
    ws = lake.read_series(lk, "market_params", asset="wstETH").row(0, named=True)
    assert (ws["ltv"], ws["liquidation_threshold"], ws["liquidation_bonus"]) == (0.785, 0.81, 0.06)


def test_comet_oracle_prices(lk):
    d = SHARED / "compound-v3-oracle-prices-hourly"
    rep = import_files("comet", sorted(d.glob("*.csv")), lk)
    rows = {s["key"]: (s["rows"], s["missing"]) for s in rep.series if s["table"] == "oracle_prices"}
    # SOURCE.md non-empty rows: WETH 19,831, cbETH 16,170, rETH 9,408, weETH 3,362, wstETH 3,191
    assert rows["compound-v3:WETH/USD"] == (19831, 1) and rows["compound-v3:cbETH/ETH"] == (16170, 0)
    assert rows["compound-v3:rETH/ETH"] == (9408, 6762) and rows["compound-v3:weETH/ETH"][0] == 3362
    assert rows["compound-v3:wstETH/USD"][0] == 3191
    r = lake.read_series(lk, "oracle_prices", protocol="compound-v3", asset="rETH")
    assert (r["ts"][-1], r["price"][-1], r["quote"][-1]) == (1730817059, 1.11622076, "ETH")
    assert one(lake.read_series(lk, "prices", base="WETH", source="comet:chainlink"), 1660372939)["price"] == 2015.2666


def test_etherscan_exports(lk):
    d = SHARED / "etherscan-daily"
    rep = import_files("etherscan", [d / "export-AvgGasPrice.csv", d / "export-EtherPrice.csv"], lk)
    assert [(s["table"], s["rows"], s["missing"]) for s in rep.series] == [("gas", 3953, 8), ("prices", 3953, 8)]
    gas = lake.read_table(lk, "gas")
    assert one(gas, 1780358400)["base_fee_gwei"] == pytest.approx(1.36660675)     # "1366606750" wei
    eth = lake.read_series(lk, "prices", base="ETH", source="etherscan")
    assert one(eth, 1780272000)["price"] == 2004.32 and eth["ts"][0] == 1438905600   # zeros of 2015 are gaps
    with pytest.raises(DataError, match="no lake table"):
        normalise("etherscan", [d / "export-GasUsed.csv"])


def test_rocketpool_reports(lk):
    rep = import_files("rocketpool", [SHARED / "rocketpool-reth-rate" / "reth_balances_updated.csv"], lk)
    x = lake.read_series(lk, "exchange_rates", token="rETH", source="rocketpool:balances")
    # 1,245 rows: the all-zero first one is a gap and 4 repeat a reference block
    assert x.height == 1240 and rep.series[0]["missing"] == 1
    assert x["rate"][0] == 1.0 and x["ts"][0] == 1633162653
    last = x.row(-1, named=True)
    assert last["ts"] == 1725516767
    assert last["rate"] == pytest.approx(548931903633032450548968 / 492190776028154186561409, rel=1e-15)
    assert last["rate"] == pytest.approx(1.1152827935191385, rel=1e-15)        # the file's reth_eth_rate


def test_curve_balances_and_etherfi_tables_parse(lk):
    (c,) = normalise("curve", [SHARED / "curve-steth-pool-balances-2021-2022" / "stETH.csv"])
    assert c.df.height == 322 and c.df["ts"][0] == 1630746903 and c.df["ts"][-1] == 1655895720
    newest = c.df.row(-1, named=True)
    assert newest["reserve0"] == pytest.approx(128361.12269481699) and newest["reserve1"] == pytest.approx(
        503780.9348947206)
    share = newest["reserve1"] / (newest["reserve0"] + newest["reserve1"])
    assert share == pytest.approx(0.797, abs=1e-3)                      # the pool's stETH share in June 2022
    d = SHARED / "etherfi-eigen-rewards"
    base, reward = normalise("etherfi", [d / "bar-chart-supply-apy-2025-09-29-eeth.csv"])
    assert base.df.height == 482 and reward.df.height == 292 and reward.missing == 190
    assert base.df["apr"][-1] == pytest.approx(math.log(1.018))          # 2025-09-29 Base 1.80 %
    (eig,) = normalise("etherfi", [d / "eigen_distributions_raw.csv"])
    assert eig.df.height == 44 and eig.df["amount"][0] == 0.205
    (top,) = normalise("etherfi", [d / "ethfi_topups_raw.csv"])
    assert top.df.height == 7


def test_reimport_is_idempotent_and_the_lake_checks_clean(tmp_path):
    def load(into: Path) -> dict:
        import_files("comet", sorted((SHARED / "compound-v3-oracle-prices-hourly").glob("*.csv")), into)
        import_files("rocketpool", [SHARED / "rocketpool-reth-rate" / "reth_balances_updated.csv"], into)
        return {p.relative_to(into): p.read_bytes() for p in into.rglob("*.parquet")}

    once = load(tmp_path / "twice")
    assert len(once) == 11 and load(tmp_path / "twice") == once
    # aavescan + peg + hourly gas, the lake of the real-history replays: no error, no warning
    clean = tmp_path / "clean"
    import_files("aavescan", sorted((SHARED / "aavescan-v3-eth-rates-daily").glob("*.csv")), clean)
    import_files("peg-hourly", sorted((SHARED / "lst-peg-dex-vs-oracle-hourly").glob("*.csv")), clean)
    gas = SHARED / "eth-gas-hourly-2024-2025" / "ethereum_gas_prices_2024-01-01_2025-09-26.csv"
    import_files("gas-hourly", [gas], clean)
    rep = check_lake(clean)
    # 12 series + the blocks table the aavescan and gas-hourly importers fill (real block numbers)
    assert rep.errors == 0 and rep.warnings == 0 and len(rep.series) == 13
    assert [s.table for s in rep.series].count("blocks") == 1
