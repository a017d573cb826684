"""The lake reader accepts what DESIGN section 4 allows and refuses broken files (issue 8).

A lake written by pandas, polars, pyarrow or DuckDB with only the required columns replays exactly as the
same rows written by the project's own writer; ``ts`` may be epoch seconds or a Parquet timestamp of any unit
and zone; a pandas index column is ignored; Hive ``key=value`` folders give key columns. Integer epochs in
ms / us / ns, and zero-byte, truncated, non-Parquet, corrupt or unreadable files and folders are one
DataError naming the file (the CLI: exit 2, nothing written, no traceback)."""
from __future__ import annotations

import calendar
import datetime as dt
import json
import os
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from backtest.cli import cli
from backtest.data import lake
from backtest.data import lake_write
from backtest.errors import DataError
from tests.synth_lake import synth_lake

REPO = Path(__file__).resolve().parents[2]
START, END = "2024-06-01", "2024-06-03"
T0 = calendar.timegm(dt.date(2024, 6, 1).timetuple())        # 1717200000
USED = ("prices", "exchange_rates", "rates", "gas", "market_params")

CONFIG = f"""[run]
name = "formats"
start = "{START}"
end = "{END}"
record = "1h"

[market]
protocol = "aave-v3"

[strategy]
kind = "loop"
target_ltv = 0.8
loops = 5
"""


def required(table: str) -> list[str]:
    return [f.name for f in lake.TABLES[table] if not f.nullable]


@pytest.fixture(scope="module")
def frames() -> dict[str, pa.Table]:
    """The bundled calm market around the window, required columns only (a week before the start so the
    daily series have a point at or before it)."""
    out = {}
    for table in USED:
        tab = pq.read_table(synth_lake() / table / "synth-calm.parquet").select(required(table))
        if table != "market_params":
            ts = tab.column("ts")
            tab = tab.filter(pc.and_(pc.greater_equal(ts, T0 - 7 * 86400), pc.less(ts, T0 + 4 * 86400)))
        out[table] = tab
    return out


def replay(tmp: Path, data: Path) -> tuple[int, str, Path]:
    """`backtest run` of the small config on ``data``: (exit code, output, result folder)."""
    cfg = tmp / "formats.toml"
    cfg.write_text(CONFIG)
    out = tmp / "out"
    r = CliRunner().invoke(cli, ["run", str(cfg), "--set", f'run.data="{data}"', "--set", f'run.output="{out}"'])
    return r.exit_code, r.output, out / "formats"


def summary(folder: Path) -> pl.DataFrame:
    return pl.read_parquet(folder / "summary.parquet")


@pytest.fixture(scope="module")
def canonical(frames, tmp_path_factory) -> pl.DataFrame:
    """The replay of the same rows written by lake_write.write_table (optional columns filled as nulls)."""
    tmp = tmp_path_factory.mktemp("canonical")
    for table, tab in frames.items():
        lake_write.write_table(tmp / "lake", table, pl.from_arrow(tab), "calm")
    code, output, folder = replay(tmp, tmp / "lake")
    assert code == 0, output
    return summary(folder)


# ---------------------------------------------------------------------------------------------- writers
def write_pyarrow(root: Path, table: str, tab: pa.Table) -> None:
    (root / table).mkdir(parents=True, exist_ok=True)
    pq.write_table(tab, root / table / "part.parquet")


def write_polars(root: Path, table: str, tab: pa.Table) -> None:
    (root / table).mkdir(parents=True, exist_ok=True)
    pl.from_arrow(tab).write_parquet(root / table / "part.parquet")


def write_duckdb(root: Path, table: str, tab: pa.Table) -> None:
    (root / table).mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.register("t", tab)
    con.execute(f"COPY t TO '{root / table / 'part.parquet'}' (FORMAT parquet)")
    con.close()


def pandas_like(tab: pa.Table) -> pa.Table:
    """What pandas' ``to_parquet`` writes for a frame with ``ts`` as datetime64[ns, UTC] and a filtered
    (non-range) index: the index as a ``__index_level_0__`` column and the b"pandas" schema metadata."""
    ts = pc.multiply(tab.column("ts").cast(pa.int64()), 10**9).cast(pa.timestamp("ns", "UTC"))
    tab = tab.set_column(0, "ts", ts)
    index = pa.array(np.arange(tab.num_rows, dtype=np.int64) * 3 + 7)
    tab = tab.append_column("__index_level_0__", index)
    cols = [{"name": n, "field_name": n, "pandas_type": "unicode" if pa.types.is_string(t) else "float64",
             "numpy_type": "object", "metadata": None} for n, t in zip(tab.schema.names, tab.schema.types)]
    meta = {"index_columns": ["__index_level_0__"], "column_indexes": [], "columns": cols,
            "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.2"}
    return tab.replace_schema_metadata({b"pandas": json.dumps(meta).encode()})


def write_pandas(root: Path, table: str, tab: pa.Table) -> None:
    (root / table).mkdir(parents=True, exist_ok=True)
    try:
        import pandas as pd
    except ImportError:              # not installed here: write what pandas would write, with pyarrow
        pq.write_table(pandas_like(tab), root / table / "part.parquet")
        return
    df = tab.to_pandas()
    df["ts"] = pd.to_datetime(df["ts"], unit="s", utc=True)
    df.index = df.index * 3 + 7     # a non-range index is stored as __index_level_0__
    df.to_parquet(root / table / "part.parquet")


WRITERS = {"pyarrow": write_pyarrow, "polars": write_polars, "pandas": write_pandas, "duckdb": write_duckdb}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_required_columns_lake_from_any_writer_replays_like_the_projects_own(writer, frames, canonical,
                                                                                 tmp_path):
    for table, tab in frames.items():
        WRITERS[writer](tmp_path / "lake", table, tab)
    # the file really lacks the optional columns (that is what used to crash with a binder error)
    names = pq.read_schema(tmp_path / "lake" / "prices" / "part.parquet").names
    assert "block" not in names
    code, output, folder = replay(tmp_path, tmp_path / "lake")
    assert code == 0, output
    assert_frame_equal(summary(folder), canonical)


def test_the_pandas_index_column_is_ignored_and_timestamps_become_seconds(frames, tmp_path):
    write_pyarrow(tmp_path, "prices", pandas_like(frames["prices"]))
    got = lake.read_table(tmp_path, "prices")
    assert "__index_level_0__" not in got.columns
    assert got.columns == lake.TABLES["prices"].names
    want = pl.from_arrow(frames["prices"]).sort(["base", "quote", "source", "ts"])
    assert got["ts"].dtype == pl.Int64
    assert got["ts"].to_list() == want["ts"].to_list()
    assert got["block"].null_count() == got.height          # absent optional column: typed nulls


# ---------------------------------------------------------------------------------------------- ts forms
def prices_with_ts(ts: pa.Array) -> pa.Table:
    n = len(ts)
    return pa.table({"ts": ts, "base": ["wstETH"] * n, "quote": ["WETH"] * n, "price": [1.17] * n,
                     "source": ["dex"] * n})


@pytest.mark.parametrize("tz", [None, "UTC", "Asia/Tokyo", "-05:00"])
@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_ts_as_a_parquet_timestamp_of_any_unit_and_zone_is_epoch_seconds(unit, tz, tmp_path):
    secs = [T0, T0 + 3600, T0 + 86400]
    per = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[unit]
    # a zone only changes how the instant is displayed: Parquet stores UTC, so epoch seconds are the same
    write_pyarrow(tmp_path, "prices", prices_with_ts(pa.array([s * per for s in secs], pa.timestamp(unit, tz))))
    assert lake.read_table(tmp_path, "prices")["ts"].to_list() == secs


def test_sub_second_timestamps_are_floored_to_their_second(tmp_path):
    # 0.999 s after T0 still belongs to T0's second; 0.5 s before 1970 belongs to second -1
    ms = pa.array([T0 * 1000 + 999, -500], pa.timestamp("ms"))
    ns = pa.array([T0 * 10**9 + 999_999_999, -1], pa.timestamp("ns", "UTC"))
    for name, arr in (("ms", ms), ("ns", ns)):
        root = tmp_path / name
        write_pyarrow(root, "prices", prices_with_ts(arr))
        assert sorted(lake.read_table(root, "prices")["ts"].to_list()) == [-1, T0]


def test_ts_as_a_date_is_midnight_utc(tmp_path):
    days = T0 // 86400                                          # 2024-06-01 as days since 1970
    write_pyarrow(tmp_path, "prices", prices_with_ts(pa.array([days, days + 1], pa.date32())))
    assert lake.read_table(tmp_path, "prices")["ts"].to_list() == [T0, T0 + 86400]


@pytest.mark.parametrize("unit, per, word", [("ms", 10**3, "millisecond"), ("us", 10**6, "microsecond"),
                                             ("ns", 10**9, "nanosecond")])
def test_integer_epochs_in_ms_us_ns_are_named_with_file_column_and_value(unit, per, word, tmp_path):
    value = (T0 + 3600) * per
    write_pyarrow(tmp_path, "prices", prices_with_ts(pa.array([T0 * per, value], pa.int64())))
    with pytest.raises(DataError) as exc:
        lake.connect(tmp_path)
    msg = str(exc.value)
    path = tmp_path / "prices" / "part.parquet"
    assert str(path) in msg and "'ts'" in msg and str(value) in msg and word in msg
    assert "2024-06-01 01:00" in msg                           # the value read in that unit: T0 + 1 h
    assert f"divide by {per:,}" in msg


# ----------------------------------------------------------------------------------- mixed files, types
def test_optional_columns_present_in_one_file_and_absent_in_another(tmp_path):
    with_block = prices_with_ts(pa.array([T0, T0 + 60], pa.int64())).append_column(
        "block", pa.array([20_000_000, 20_000_005], pa.int64()))
    without = prices_with_ts(pa.array([T0 + 120], pa.int32()))        # and a 32-bit ts
    (tmp_path / "prices").mkdir()
    pq.write_table(with_block, tmp_path / "prices" / "a.parquet")
    pq.write_table(without, tmp_path / "prices" / "b.parquet")
    got = lake.read_table(tmp_path, "prices")
    assert got.schema == pl.Schema({n: lake._pl_type(t) for n, t in zip(lake.TABLES["prices"].names,
                                                                       lake.TABLES["prices"].types)})
    assert got["block"].to_list() == [20_000_000, 20_000_005, None]
    assert got["ts"].to_list() == [T0, T0 + 60, T0 + 120]


def test_widened_types_dictionary_strings_decimals_and_whole_float_blocks(tmp_path):
    import decimal
    tab = pa.table({
        "ts": pa.array([T0, T0 + 60], pa.uint32()),
        "block": pa.array([20_000_000.0, None], pa.float64()),      # pandas: an int column with a gap
        "base": pa.array(["wstETH", "wstETH"]).dictionary_encode(),  # pandas categorical
        "quote": pa.array(["WETH", "WETH"], pa.large_string()),
        "price": pa.array([decimal.Decimal("1.17"), decimal.Decimal("1.18")], pa.decimal128(6, 2)),
        "source": pa.array(["dex", "dex"], pa.string_view()),
    })
    write_pyarrow(tmp_path, "prices", tab)
    got = lake.read_table(tmp_path, "prices")
    assert got["block"].to_list() == [20_000_000, None] and got["block"].dtype == pl.Int64
    assert got["price"].to_list() == [1.17, 1.18] and got["base"].to_list() == ["wstETH"] * 2


# ------------------------------------------------------------------------------------------------- hive
def test_hive_partition_folders_give_the_key_columns(frames, tmp_path):
    # pyarrow drops the partition columns from the files; values with '/' or ' ' are URL-encoded
    tab = frames["prices"]
    odd = prices_with_ts(pa.array([T0], pa.int64())).set_column(4, "source", pa.array(["dex pool/v2"]))
    pq.write_to_dataset(pa.concat_tables([tab, odd.cast(tab.schema)]), tmp_path / "prices", partition_cols=["base", "source"])
    assert "base" not in pq.read_schema(next((tmp_path / "prices").rglob("*.parquet"))).names
    got = lake.read_series(tmp_path, "prices", base="wstETH", quote="WETH", source="dex pool/v2")
    assert got["ts"].to_list() == [T0] and got["price"].to_list() == [1.17]
    whole = lake.read_table(tmp_path, "prices").filter(pl.col("source") != "dex pool/v2")
    want = pl.from_arrow(tab).sort(["base", "quote", "source", "ts"])
    assert_frame_equal(whole.select(want.columns), want)


def test_a_hive_partitioned_lake_from_polars_replays_like_the_projects_own(frames, canonical, tmp_path):
    # polars keeps the partition columns in the files too: they must agree with the folder (checked)
    for table, tab in frames.items():
        if table == "prices":
            pl.from_arrow(tab).write_parquet(tmp_path / "lake" / table, partition_by=["base", "quote"], mkdir=True)
        else:
            write_polars(tmp_path / "lake", table, tab)
    assert (tmp_path / "lake" / "prices" / "base=wstETH" / "quote=WETH").is_dir()
    code, output, folder = replay(tmp_path, tmp_path / "lake")
    assert code == 0, output
    assert_frame_equal(summary(folder), canonical)


def test_other_partition_folders_are_plain_folders(tmp_path):
    (tmp_path / "prices" / "year=2024").mkdir(parents=True)
    pq.write_table(prices_with_ts(pa.array([T0], pa.int64())), tmp_path / "prices" / "year=2024" / "p.parquet")
    assert lake.read_table(tmp_path, "prices")["ts"].to_list() == [T0]


# ------------------------------------------------------------------------------------ refused, via the CLI
def refused(tmp_path: Path, data: Path, *fragments: str) -> str:
    """`backtest run` on ``data``: exit 2, one message with every fragment, no traceback, nothing written."""
    code, output, folder = replay(tmp_path, data)
    assert code == 2, output
    assert "Traceback" not in output and output.startswith("Error: "), output
    for frag in fragments:
        assert frag in output, output
    out = folder.parent
    assert not out.exists() or not any(out.rglob("*")), list(out.rglob("*"))
    return output


@pytest.fixture
def good_lake(frames, tmp_path) -> Path:
    for table, tab in frames.items():
        write_pyarrow(tmp_path / "lake", table, tab)
    return tmp_path / "lake"


def test_a_zero_byte_file_is_refused_by_name(good_lake, tmp_path):
    bad = good_lake / "prices" / "empty.parquet"
    bad.touch()
    refused(tmp_path, good_lake, str(bad), "is empty (0 bytes)")


def test_a_truncated_file_is_refused_by_name(good_lake, tmp_path):
    bad = good_lake / "rates" / "part.parquet"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    refused(tmp_path, good_lake, str(bad), "is truncated", "no Parquet footer")


def test_a_csv_named_parquet_is_refused_by_name(good_lake, tmp_path):
    bad = good_lake / "gas" / "export.parquet"
    bad.write_text("ts,base_fee_gwei\n1717200000,5.0\n")
    refused(tmp_path, good_lake, str(bad), "is not a Parquet file", "b'ts,b'")


def test_a_file_with_a_broken_footer_is_refused_by_name(good_lake, tmp_path):
    bad = good_lake / "exchange_rates" / "part.parquet"
    data = bytearray(bad.read_bytes())
    # the footer is the metadata length (4 bytes) + "PAR1" at the end: point the length past the file start
    data[-8:-4] = (len(data) + 100).to_bytes(4, "little")
    bad.write_bytes(bytes(data))
    refused(tmp_path, good_lake, str(bad), "is not a readable Parquet file")


def test_a_file_with_corrupt_compressed_pages_is_refused_by_name(good_lake, tmp_path):
    bad = good_lake / "prices" / "part.parquet"
    tab = pq.read_table(bad)
    pq.write_table(tab, bad, compression="snappy")
    data = bytearray(bad.read_bytes())
    # the first column chunk's pages follow the leading "PAR1": scramble their bytes (the snappy stream)
    rng = np.random.default_rng(8)
    data[4 + 64: 4 + 64 + 256] = rng.integers(0, 256, 256, dtype=np.uint8).tobytes()
    bad.write_bytes(bytes(data))
    refused(tmp_path, good_lake, str(bad), "is corrupt")


def test_a_dangling_link_named_parquet_is_refused_by_name(good_lake, tmp_path):
    bad = good_lake / "prices" / "moved.parquet"
    os.symlink(tmp_path / "nowhere.parquet", bad)
    refused(tmp_path, good_lake, str(bad), "cannot be read", "No such file")


def _unreadable(path: Path, monkeypatch) -> None:
    """chmod 000; as root (where permissions are not enforced) the file system calls of the reader are
    made to fail for this path the way they fail for an ordinary user."""
    os.chmod(path, 0)
    if os.geteuid() != 0:
        return
    real_scandir, real_open = os.scandir, open

    def scandir(p=".", *a, **k):
        if Path(p) == path:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(p, *a, **k)

    def fake_open(p, *a, **k):
        if Path(p) == path:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(p, *a, **k)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(lake, "open", fake_open, raising=False)


def test_an_unreadable_folder_is_refused_by_name(good_lake, tmp_path, monkeypatch):
    sub = good_lake / "rates" / "2024"
    sub.mkdir()
    pq.write_table(pq.read_table(good_lake / "rates" / "part.parquet"), sub / "more.parquet")
    _unreadable(sub, monkeypatch)
    try:
        refused(tmp_path, good_lake, f"lake folder {sub} cannot be read", "Permission denied")
    finally:
        os.chmod(sub, 0o755)


def test_an_unreadable_file_is_refused_by_name(good_lake, tmp_path, monkeypatch):
    bad = good_lake / "gas" / "part.parquet"
    _unreadable(bad, monkeypatch)
    try:
        refused(tmp_path, good_lake, f"lake file {bad} cannot be read", "Permission denied")
    finally:
        os.chmod(bad, 0o644)


def test_a_missing_required_column_names_file_column_and_what_the_file_has(good_lake, tmp_path):
    bad = good_lake / "prices" / "part.parquet"
    pq.write_table(pq.read_table(bad).rename_columns(["ts", "base", "quote", "close", "source"]), bad)
    refused(tmp_path, good_lake, str(bad), "missing required column 'price' of prices",
            "the file has: ts, base, quote, close, source")


def test_a_price_stored_as_text_is_refused_with_its_type(good_lake, tmp_path):
    bad = good_lake / "prices" / "part.parquet"
    tab = pq.read_table(bad)
    pq.write_table(tab.set_column(3, "price", tab.column("price").cast(pa.string())), bad)
    refused(tmp_path, good_lake, str(bad), "column 'price' of prices must be a number, got VARCHAR")


def test_nulls_in_a_required_column_are_refused_with_the_count(good_lake, tmp_path):
    bad = good_lake / "gas" / "part.parquet"
    tab = pq.read_table(bad)
    fee = tab.column("base_fee_gwei").to_pylist()
    fee[3] = fee[9] = None
    pq.write_table(tab.set_column(1, "base_fee_gwei", pa.array(fee, pa.float64())), bad)
    refused(tmp_path, good_lake, str(bad), "required column 'base_fee_gwei' of gas has 2 null value(s)")


def test_a_block_with_a_fraction_is_refused(good_lake, tmp_path):
    bad = good_lake / "gas" / "part.parquet"
    tab = pq.read_table(bad)
    blocks = np.arange(tab.num_rows, dtype=np.float64) + 20_000_000
    blocks[5] += 0.5
    pq.write_table(tab.append_column("block", pa.array(blocks)), bad)
    refused(tmp_path, good_lake, str(bad), "column 'block' has 1 value(s) that are not whole numbers")


def test_a_float_block_beyond_int64_is_refused_by_name(good_lake, tmp_path):
    # hypothesis drew a whole float block of 2^63 (~9.22e18) in test_lake_fuzz: one past int64's largest, so
    # the cast failed inside DuckDB; the reader names the column first (9.22e18 itself fits and is kept)
    bad = good_lake / "gas" / "part.parquet"
    tab = pq.read_table(bad)
    blocks = np.arange(tab.num_rows, dtype=np.float64) + 20_000_000
    blocks[2] = 9.22e18
    blocks[7] = float(2**63)
    pq.write_table(tab.append_column("block", pa.array(blocks)), bad)
    refused(tmp_path, good_lake, str(bad), "column 'block' has 1 value(s) that are not whole numbers within int64")

def test_a_millisecond_lake_is_refused_through_the_cli(good_lake, tmp_path):
    bad = good_lake / "prices" / "part.parquet"
    tab = pq.read_table(bad)
    pq.write_table(tab.set_column(0, "ts", pc.multiply(tab.column("ts"), 1000)), bad)
    biggest = max(tab.column("ts").to_pylist()) * 1000
    refused(tmp_path, good_lake, str(bad), "column 'ts'", str(biggest), "a millisecond epoch", "divide by 1,000")


def test_a_file_disagreeing_with_its_partition_folder_is_refused(good_lake, tmp_path):
    src = good_lake / "prices" / "part.parquet"
    wrong = good_lake / "prices" / "base=rETH" / "part.parquet"
    wrong.parent.mkdir()
    src.rename(wrong)                       # its rows say base = wstETH and ETH
    refused(tmp_path, good_lake, str(wrong), "column 'base' has", "other than its partition folder's base=rETH")


def test_a_bad_partition_value_for_a_number_column_is_refused(tmp_path):
    folder = tmp_path / "lake" / "gas" / "block=latest"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"ts": [T0], "base_fee_gwei": [5.0]}), folder / "g.parquet")
    with pytest.raises(DataError, match=r"partition folder block=latest is not an integer"):
        lake.connect(tmp_path / "lake")


def test_the_python_api_raises_the_typed_error(good_lake, tmp_path):
    import backtest
    (good_lake / "prices" / "empty.parquet").touch()
    cfg = tmp_path / "api.toml"
    cfg.write_text(CONFIG)
    with pytest.raises(DataError, match="is empty"):
        backtest.run(cfg, overrides={"run.data": str(good_lake), "run.output": str(tmp_path / "out")})


def test_read_file_maps_one_file_like_the_lake_for_per_file_tools(tmp_path):
    folder = tmp_path / "prices" / "source=dex"
    folder.mkdir(parents=True)
    ts = pa.array([T0 * 10**9, (T0 + 60) * 10**9], pa.timestamp("ns", "UTC"))
    pq.write_table(prices_with_ts(ts).drop_columns(["source"]), folder / "p.parquet")
    got = lake.read_file(folder / "p.parquet", "prices")
    assert got.columns == lake.TABLES["prices"].names
    assert got["ts"].to_list() == [T0, T0 + 60] and got["source"].to_list() == ["dex", "dex"]
    (folder / "bad.parquet").write_bytes(b"")
    with pytest.raises(DataError, match="is empty"):
        lake.read_file(folder / "bad.parquet", "prices")
