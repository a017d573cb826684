"""The Parquet lake: schemas, validation, idempotent atomic writes, reads, catalog, data hash."""
from __future__ import annotations

import shutil

import polars as pl
import pyarrow.parquet as pq
import pytest

from backtest.data import lake

from backtest.data import lake_write
from backtest.errors import DataError, InputError


def _prices(ts, price, base="wstETH", quote="WETH", source="dex"):
    n = len(ts)
    return pl.DataFrame({"ts": ts, "base": [base] * n, "quote": [quote] * n, "price": price, "source": [source] * n})


def test_tables_have_the_design_columns():
    assert lake.TABLES["prices"].names == ["ts", "block", "base", "quote", "price", "source"]
    assert lake.TABLES["exchange_rates"].names == ["ts", "block", "token", "underlying", "rate", "source"]
    assert lake.TABLES["oracle_prices"].names == ["ts", "block", "protocol", "asset", "quote", "price"]
    assert lake.TABLES["rates"].names == ["ts", "block", "protocol", "asset", "supply_apr", "borrow_apr",
                                          "utilization", "supply_index", "borrow_index"]
    assert lake.TABLES["market_params"].names == ["ts", "protocol", "asset", "emode", "ltv",
                                                  "liquidation_threshold", "liquidation_bonus", "protocol_fee"]
    assert lake.TABLES["gas"].names == ["ts", "block", "base_fee_gwei", "priority_fee_gwei"]
    assert lake.TABLES["blocks"].names == ["ts", "block"]
    nullable = {f.name for f in lake.TABLES["rates"] if f.nullable}
    assert nullable == {"block", "utilization", "supply_index", "borrow_index"}
    assert lake.TABLES["market_params"].field("emode").nullable
    assert not lake.TABLES["market_params"].field("ltv").nullable


def test_write_then_read_roundtrip_with_exact_schema(tmp_path):
    path = lake_write.write_table(tmp_path, "prices", _prices([30, 10, 20], [1.3, 1.1, 1.2]), "dex")
    assert path == tmp_path / "prices" / "dex.parquet"
    on_disk = pq.read_schema(path)
    assert on_disk.names == lake.TABLES["prices"].names
    assert str(on_disk.field("ts").type) == "int64" and str(on_disk.field("price").type) == "double"
    df = lake.read_table(tmp_path, "prices")
    assert df["ts"].to_list() == [10, 20, 30]             # sorted on write
    assert df["price"].to_list() == [1.1, 1.2, 1.3]
    assert df["block"].null_count() == 3                   # optional column filled with nulls


def test_write_is_idempotent_and_new_rows_win(tmp_path):
    df = _prices([10, 20, 30], [1.1, 1.2, 1.3])
    p = lake_write.write_table(tmp_path, "prices", df, "dex")
    first = pq.read_table(p)
    lake_write.write_table(tmp_path, "prices", df, "dex")
    assert pq.read_table(p).equals(first)                   # same rows after a re-import
    lake_write.write_table(tmp_path, "prices", _prices([20, 40], [9.0, 4.0]), "dex")
    out = lake.read_table(tmp_path, "prices")
    assert out["ts"].to_list() == [10, 20, 30, 40]
    assert out["price"].to_list() == [1.1, 9.0, 1.3, 4.0]   # ts 20 replaced by the newer write


def test_dedupe_is_per_key_so_other_series_survive(tmp_path):
    lake_write.write_table(tmp_path, "prices", _prices([10], [1.0], source="a"), "f")
    lake_write.write_table(tmp_path, "prices", _prices([10], [2.0], source="b"), "f")
    out = lake.read_table(tmp_path, "prices")
    assert sorted(zip(out["source"], out["price"])) == [("a", 1.0), ("b", 2.0)]


def test_market_params_null_emode_is_a_key_value(tmp_path):
    df = pl.DataFrame({"ts": [1, 1], "protocol": ["aave-v2", "aave-v3"], "asset": ["stETH", "wstETH"],
                       "emode": [None, "eth-correlated"], "ltv": [0.69, 0.9],
                       "liquidation_threshold": [0.81, 0.93], "liquidation_bonus": [0.075, 0.01]})
    lake_write.write_table(tmp_path, "market_params", df, "p")
    lake_write.write_table(tmp_path, "market_params", df, "p")
    out = lake.read_table(tmp_path, "market_params")
    assert out.height == 2
    assert out.filter(pl.col("emode").is_null())["ltv"].to_list() == [0.69]
    assert out["protocol_fee"].null_count() == 2


def test_missing_required_column_names_table_and_column(tmp_path):
    with pytest.raises(DataError, match=r"prices: missing required column 'price'"):
        lake_write.write_table(tmp_path, "prices", _prices([1], [1.0]).drop("price"), "x")
    assert not (tmp_path / "prices" / "x.parquet").exists()


def test_wrong_type_names_the_column(tmp_path):
    bad = _prices([1], [1.0]).with_columns(pl.lit("one").alias("price"))
    with pytest.raises(DataError, match=r"prices: column 'price' must be numeric"):
        lake_write.write_table(tmp_path, "prices", bad, "x")
    bad_ts = _prices([1], [1.0]).with_columns(pl.lit(1.5).alias("ts"))
    with pytest.raises(DataError, match=r"prices: column 'ts' must be an integer"):
        lake.validate("prices", bad_ts)


def test_unknown_column_and_nulls_and_nan_are_rejected():
    with pytest.raises(DataError, match=r"gas: unknown column 'gas_price'"):
        lake.validate("gas", pl.DataFrame({"ts": [1], "base_fee_gwei": [1.0], "gas_price": [1.0]}))
    with pytest.raises(DataError, match=r"gas: column 'base_fee_gwei' has 1 null"):
        lake.validate("gas", pl.DataFrame({"ts": [1, 2], "base_fee_gwei": [1.0, None]}))
    with pytest.raises(DataError, match=r"gas: column 'base_fee_gwei' has 1 non-finite"):
        lake.validate("gas", pl.DataFrame({"ts": [1, 2], "base_fee_gwei": [1.0, float("nan")]}))


def test_value_ranges_catch_unit_mistakes():
    # an LTV given in percent (93) instead of a fraction
    df = pl.DataFrame({"ts": [1], "protocol": ["aave-v3"], "asset": ["wstETH"], "ltv": [93.0],
                       "liquidation_threshold": [0.95], "liquidation_bonus": [0.01]})
    with pytest.raises(DataError, match=r"market_params: column 'ltv' has 1 value\(s\) outside"):
        lake.validate("market_params", df)
    with pytest.raises(DataError, match=r"prices: column 'price'"):
        lake.validate("prices", _prices([1], [0.0]))


def test_datetime_ts_is_converted_to_epoch_seconds():
    df = _prices([0], [1.0]).with_columns(pl.lit("2024-01-21 00:00:00").str.to_datetime(time_zone="UTC").alias("ts"))
    assert lake.validate("prices", df)["ts"].to_list() == [1705795200]


def test_unknown_table_and_bad_names(tmp_path):
    with pytest.raises(DataError, match="unknown lake table 'price'"):
        lake_write.write_table(tmp_path, "price", _prices([1], [1.0]), "x")
    with pytest.raises(DataError, match="bad lake file name"):
        lake_write.write_table(tmp_path, "prices", _prices([1], [1.0]), "../x")
    assert isinstance(DataError("x"), InputError)


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    p = lake_write.write_table(tmp_path, "prices", _prices([1], [1.0]), "dex")
    before = p.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(lake_write.pq, "write_table", boom)
    with pytest.raises(OSError):
        lake_write.write_table(tmp_path, "prices", _prices([2], [2.0]), "dex")
    assert p.read_bytes() == before
    assert [f.name for f in (tmp_path / "prices").iterdir()] == ["dex.parquet"]


def test_read_series_filters(tmp_path):
    lake_write.write_table(tmp_path, "prices", _prices([1, 2, 3], [1.0, 2.0, 3.0], quote="ETH"), "a")
    lake_write.write_table(tmp_path, "prices", _prices([1, 2], [5.0, 6.0], base="ETH", quote="USD"), "b")
    got = lake.read_series(tmp_path, "prices", base="wstETH", quote=["ETH", "WETH"], start=2)
    assert got["price"].to_list() == [2.0, 3.0]
    assert got["filename"].str.ends_with("a.parquet").all()
    assert lake.read_series(tmp_path, "rates").height == 0                       # absent table: empty frame
    with pytest.raises(DataError, match="unknown column 'symbol'"):
        lake.read_series(tmp_path, "prices", symbol="x")


def test_files_in_partition_folders_are_read(tmp_path):
    lake_write.write_table(tmp_path, "gas", pl.DataFrame({"ts": [1], "base_fee_gwei": [1.0]}), "a")
    sub = tmp_path / "gas" / "year=2024"
    sub.mkdir()
    shutil.copy(tmp_path / "gas" / "a.parquet", sub / "b.parquet")
    assert len(lake.table_files(tmp_path, "gas")) == 2
    assert lake.read_table(tmp_path, "gas").height == 2


def test_catalog_one_row_per_series(tmp_path):
    lake_write.write_table(tmp_path, "prices", _prices([0, 3600, 7200, 14400], [1.0] * 4), "a")
    lake_write.write_table(tmp_path, "prices", _prices([100, 200], [1.0, 1.0], source="other"), "b")
    lake_write.write_table(tmp_path, "gas", pl.DataFrame({"ts": [0, 12, 24], "base_fee_gwei": [1.0, 2.0, 3.0]}), "g")
    cat = lake.catalog(tmp_path)
    assert cat.columns == ["table", "key", "source", "rows", "first_ts", "last_ts", "median_spacing_s"]
    row = cat.filter((pl.col("table") == "prices") & (pl.col("source") == "dex")).row(0, named=True)
    assert (row["key"], row["rows"], row["first_ts"], row["last_ts"]) == ("wstETH/WETH", 4, 0, 14400)
    assert row["median_spacing_s"] == 3600.0
    assert cat.filter(pl.col("source") == "other")["rows"].to_list() == [2]
    gas = cat.filter(pl.col("table") == "gas").row(0, named=True)
    assert (gas["key"], gas["rows"], gas["median_spacing_s"]) == ("gas", 3, 12.0)
    assert lake.catalog(tmp_path / "empty").height == 0


def test_data_hash_depends_on_bytes_and_relative_paths_only(tmp_path):
    a = tmp_path / "a"
    p1 = lake_write.write_table(a, "prices", _prices([1, 2], [1.0, 2.0]), "dex")
    p2 = lake_write.write_table(a, "gas", pl.DataFrame({"ts": [1], "base_fee_gwei": [1.0]}), "g")
    h = lake.data_hash([p1, p2], root=a)
    assert len(h) == 64
    assert lake.data_hash([p2, p1, p1], root=a) == h                   # order and duplicates do not matter
    b = tmp_path / "elsewhere" / "lake"
    shutil.copytree(a, b)
    assert lake.data_hash([b / "prices" / "dex.parquet", b / "gas" / "g.parquet"], root=b) == h
    assert lake.data_hash([p1, p2]) == lake.data_hash([b / "prices" / "dex.parquet", b / "gas" / "g.parquet"])
    lake_write.write_table(a, "prices", _prices([3], [3.0]), "dex")
    assert lake.data_hash([p1, p2], root=a) != h                       # content changed
    assert lake.data_hash([p1], root=a) != lake.data_hash([p1, p2], root=a)
