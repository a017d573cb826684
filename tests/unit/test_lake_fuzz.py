"""Fuzzing the lake reader: random tables, column sets, types, timestamp units and zones, Hive folders, extra
columns and random bytes as files. The reader gives a table with the lake's exact schema (and, for files
built to be valid, the expected rows and epoch seconds) or one DataError naming a file or folder of the
lake, never another exception; through the CLI only exit codes 0, 1 or 2, with a message and no traceback."""
from __future__ import annotations

import calendar
import re
import datetime as dt
import shutil
import tempfile
from pathlib import Path
from urllib.parse import quote

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from backtest.cli import cli
from backtest.data import lake
from backtest.errors import DataError
from tests.synth_lake import synth_lake

REPO = Path(__file__).resolve().parents[2]
T0 = calendar.timegm(dt.date(2024, 6, 1).timetuple())
UNITS = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}
ZONES = [None, "UTC", "Asia/Kolkata", "-03:00"]

_seconds = st.integers(min_value=0, max_value=4_000_000_000)          # epoch seconds up to 2096
_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)
_float = st.floats(allow_nan=True, allow_infinity=True)


def _rare(draw, k: int) -> bool:
    # one time in k (not "== 0": hypothesis favours boundary values, which would make it far more often)
    return draw(st.integers(0, k - 1)) == k // 2


def _forms(draw, right: list[str], wrong: list[str]) -> str:
    # mostly a right type (so the deeper checks and the happy path are reached), one time in ten a wrong one
    return draw(st.sampled_from(wrong if _rare(draw, 10) else right))


@st.composite
def column(draw, field: pa.Field, n: int) -> tuple[pa.Array, bool, list | None]:
    """(array, valid by construction, the epoch seconds it stands for when it is ts)."""
    kind = "ts" if field.name == "ts" else {pa.int64(): "int", pa.float64(): "float"}.get(field.type, "str")
    if kind == "ts":
        form = _forms(draw, ["int64", "int32", "timestamp", "timestamp", "date"],
                      ["ms-int", "us-int", "float", "string"])
        secs = draw(st.lists(_seconds, min_size=n, max_size=n))
        if form == "int64":
            return pa.array(secs, pa.int64()), True, secs
        if form == "int32":
            secs = [s % 2**31 for s in secs]
            return pa.array(secs, pa.int32()), True, secs
        if form == "timestamp":
            unit, tz = draw(st.sampled_from(sorted(UNITS))), draw(st.sampled_from(ZONES))
            return pa.array([s * UNITS[unit] for s in secs], pa.timestamp(unit, tz)), True, secs
        if form == "date":
            days = [s // 86400 for s in secs]
            return pa.array(days, pa.date32()), True, [d * 86400 for d in days]
        if form in ("ms-int", "us-int"):
            per = 10**3 if form == "ms-int" else 10**6
            # seconds since 2001 (>= 1e9) in ms / us are >= 1e12: never epoch seconds
            return pa.array([(s + 10**9) * per for s in secs], pa.int64()), not n, None
        if form == "float":
            return pa.array([float(s) for s in secs], pa.float64()), False, None
        return pa.array([str(s) for s in secs], pa.string()), False, None
    # a null in a required column is wrong (one time in eight); optional columns have gaps half the time
    nulls = draw(st.booleans()) if field.nullable else _rare(draw, 10)
    gap = (lambda vals: [None if nulls and i % 2 else v for i, v in enumerate(vals)])
    valid_nulls = field.nullable or not nulls or n < 2
    if kind == "int":
        form = _forms(draw, ["int64", "uint32", "float-whole"], ["float-any", "string"])
        vals = gap(draw(st.lists(st.integers(0, 2**31 - 1), min_size=n, max_size=n)))
        if form == "int64":
            return pa.array(vals, pa.int64()), valid_nulls, None
        if form == "uint32":
            return pa.array(vals, pa.uint32()), valid_nulls, None
        if form == "float-whole":
            return pa.array([None if v is None else float(v) for v in vals], pa.float64()), valid_nulls, None
        if form == "float-any":
            return pa.array(draw(st.lists(_float, min_size=n, max_size=n)), pa.float64()), not n, None
        return pa.array([str(v) for v in vals], pa.string()), False, None
    if kind == "float":
        form = _forms(draw, ["float64", "float32", "int64"], ["string", "bool"])
        if form == "string":
            return pa.array(draw(st.lists(_text, min_size=n, max_size=n)), pa.string()), False, None
        if form == "bool":
            return pa.array(draw(st.lists(st.booleans(), min_size=n, max_size=n))), False, None
        if form == "int64":
            vals = gap(draw(st.lists(st.integers(-10**6, 10**6), min_size=n, max_size=n)))
            return pa.array(vals, pa.int64()), valid_nulls, None
        vals = gap(draw(st.lists(_float, min_size=n, max_size=n)))
        return pa.array(vals, pa.float64() if form == "float64" else pa.float32()), valid_nulls, None
    form = _forms(draw, ["string", "large", "dict"], ["int", "binary"])
    vals = gap(draw(st.lists(_text, min_size=n, max_size=n)))
    if form == "string":
        return pa.array(vals, pa.string()), valid_nulls, None
    if form == "large":
        return pa.array(vals, pa.large_string()), valid_nulls, None
    if form == "dict":
        return pa.array(vals, pa.string()).dictionary_encode(), valid_nulls, None
    if form == "int":
        return pa.array(range(n), pa.int64()), False, None
    return pa.array([v.encode() if v is not None else None for v in vals], pa.binary()), False, None


@st.composite
def lake_file(draw, table: str):
    """(relative path, bytes or an Arrow table, valid by construction, expected epoch seconds)."""
    name = draw(st.sampled_from(["a", "b", "part-0"])) + ".parquet"
    if _rare(draw, 12):                                  # random bytes, sometimes dressed as Parquet
        body = draw(st.binary(max_size=64))
        if draw(st.booleans()):
            body = b"PAR1" + body + b"PAR1"
        return name, body, False, None
    n = draw(st.integers(0, 5))
    cols, valid, ts = {}, True, None
    hive: list[str] = []
    for field in lake.TABLES[table]:
        present = not _rare(draw, 16) if not field.nullable else draw(st.booleans())
        if not present:
            valid &= field.nullable
            continue
        arr, ok, secs = draw(column(field, n))
        valid &= ok
        if field.name == "ts":
            ts = secs
        if (field.type == pa.string() and ok and n and not arr.null_count and _rare(draw, 4)
                and len(set(arr.to_pylist())) == 1):
            # a Hive folder for this key column; the file keeps the column or drops it (pyarrow's way)
            value = arr.to_pylist()[0]
            hive.append(f"{field.name}={quote(value, safe='')}")
            if draw(st.booleans()):
                continue
        cols[field.name] = arr
    for extra in draw(st.lists(st.sampled_from(["__index_level_0__", "note", "capo_snapshot_ratio"]),
                               max_size=2, unique=True)):
        cols[extra] = pa.array(range(n), pa.int64())
    if _rare(draw, 6):
        hive.insert(0, "year=2024")                      # a folder that is not a column
    rel = "/".join([*hive, name])
    return rel, pa.table(cols) if cols else pa.table({"__index_level_0__": pa.array(range(n), pa.int64())}), \
        valid and bool(cols), ts


def _write(root: Path, table: str, files, writer: str) -> tuple[list[Path], bool, list[int]]:
    paths, valid, all_ts = [], True, []
    for rel, body, ok, ts in files:
        path = root / table / rel
        if path in paths:                                  # the same name drawn twice: keep the first
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(body, bytes):
            path.write_bytes(body)
        elif writer == "polars" and ok:
            pl.from_arrow(body).write_parquet(path)
        else:
            pq.write_table(body, path)
        paths.append(path)
        valid &= ok
        all_ts += ts or []
    return paths, valid, all_ts


def _assert_named(exc: DataError, root: Path) -> None:
    msg = str(exc)
    assert msg and "Traceback" not in msg
    # the message names the file or folder it is about (all of them live under the lake root)
    assert str(root) in msg and ("lake file" in msg or "lake folder" in msg), msg


_TABLES = st.sampled_from(sorted(lake.TABLES))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=_TABLES, data=st.data(), writer=st.sampled_from(["pyarrow", "polars"]))
def test_the_reader_returns_the_lake_schema_or_a_data_error_naming_the_file(table, data, writer):
    files = data.draw(st.lists(lake_file(table), min_size=1, max_size=3))
    root = Path(tempfile.mkdtemp(prefix="lakefuzz-"))
    try:
        try:
            paths, valid, ts = _write(root, table, files, writer)
        except (pa.ArrowException, pl.exceptions.PolarsError):
            return                                       # a table the writer itself refuses: nothing to read
        try:
            got = lake.read_table(root, table)
        except DataError as exc:
            assert not valid, f"a valid lake was refused: {exc}"
            _assert_named(exc, root)
            event("refused: " + re.sub(r"'[^']*'|\S*/\S*|\d+|\(.*", "_", str(exc))[:60])
            return
        event("read, valid by construction" if valid else "read")
        sch = lake.TABLES[table]
        assert got.columns == sch.names
        assert [got.schema[c] for c in sch.names] == [lake._pl_type(t) for t in sch.types]
        if valid:
            assert sorted(got["ts"].to_list()) == sorted(ts)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def base_lake(tmp_path_factory) -> tuple[Path, pa.Table]:
    """The bundled calm lake without its prices (each example writes them), and those prices around the
    window (required columns only)."""
    root = tmp_path_factory.mktemp("base") / "lake"
    shutil.copytree(synth_lake(), root, ignore=shutil.ignore_patterns("README.md"))
    shutil.rmtree(root / "prices")
    prices = pl.read_parquet(synth_lake() / "prices" / "synth-calm.parquet").filter(
        pl.col("ts").is_between(T0 - 86400, T0 + 2 * 86400)).drop("block")
    return root, prices.to_arrow()


CONFIG = """[run]
name = "fuzz"
start = "2024-06-01"
end = "2024-06-02"
record = "1h"

[market]
protocol = "aave-v3"

[strategy]
kind = "loop"
target_ltv = 0.8
loops = 2
"""

#: what a user may do to the prices before writing them: (name, still a valid lake)
MUTATIONS = [("timestamp", True), ("pandas index", True), ("float32 price", True), ("hive base", True),
             ("millisecond ts", False), ("drop price", False), ("price as text", False), ("null price", False),
             ("random bytes", False), ("truncate", False)]
#: mutations of the same thing exclude each other (one change to ts, one to price, one to the file)
GROUP = {"timestamp": "ts", "millisecond ts": "ts", "float32 price": "price", "drop price": "price",
         "price as text": "price", "null price": "price", "random bytes": "file", "truncate": "file"}


def _mutate(tab: pa.Table, name: str, draw) -> tuple[pa.Table | bytes, str]:
    """The mutated prices and the file's path under the table folder."""
    rel = "part.parquet"
    i = tab.schema.get_field_index
    if name == "timestamp":
        unit, tz = draw(st.sampled_from(sorted(UNITS))), draw(st.sampled_from(ZONES))
        ts = pa.array([t * UNITS[unit] for t in tab.column("ts").to_pylist()], pa.timestamp(unit, tz))
        tab = tab.set_column(i("ts"), "ts", ts)
    elif name == "pandas index":
        tab = tab.append_column("__index_level_0__", pa.array(range(tab.num_rows), pa.int64()))
    elif name == "float32 price":
        tab = tab.set_column(i("price"), "price", tab.column("price").cast(pa.float32()))
    elif name == "hive base":
        if len(set(tab.column("base").to_pylist())) == 1:
            rel = f"base={tab.column('base')[0].as_py()}/part.parquet"
            tab = tab.drop_columns(["base"])
    elif name == "millisecond ts":
        tab = tab.set_column(i("ts"), "ts", pa.array([t * 1000 for t in tab.column("ts").to_pylist()]))
    elif name == "drop price":
        tab = tab.drop_columns(["price"])
    elif name == "price as text":
        tab = tab.set_column(i("price"), "price", tab.column("price").cast(pa.string()))
    elif name == "null price":
        vals = tab.column("price").to_pylist()
        vals[draw(st.integers(0, len(vals) - 1))] = None
        tab = tab.set_column(i("price"), "price", pa.array(vals, pa.float64()))
    elif name == "random bytes":
        return draw(st.binary(max_size=200)), rel
    return tab, rel


@settings(max_examples=24, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=st.data(), command=st.sampled_from(["run", "run", "list"]))
def test_through_the_cli_only_exit_codes_0_1_2_with_a_message(base_lake, data, command):
    root, prices = base_lake
    chosen = data.draw(st.lists(st.sampled_from(MUTATIONS), max_size=3,
                                unique_by=lambda m: GROUP.get(m[0], m[0])))
    valid = all(ok for _, ok in chosen)
    shutil.rmtree(root / "prices", ignore_errors=True)
    body, rel = prices, "part.parquet"
    for name, _ in chosen:
        if isinstance(body, pa.Table):
            body, rel = _mutate(body, name, data.draw)
    path = root / "prices" / rel
    path.parent.mkdir(parents=True)
    if isinstance(body, bytes):
        path.write_bytes(body)
    else:
        pq.write_table(body, path)
        if ("truncate", False) in chosen:
            path.write_bytes(path.read_bytes()[: data.draw(st.integers(0, path.stat().st_size - 1))])
    work = Path(tempfile.mkdtemp(prefix="lakefuzz-cli-"))
    try:
        cfg = work / "fuzz.toml"
        cfg.write_text(CONFIG)
        args = (["run", str(cfg), "--set", f'run.data="{root}"', "--set", f'run.output="{work / "out"}"']
                if command == "run" else ["data", "list", "--lake", str(root)])
        r = CliRunner().invoke(cli, args)
        event(f"{command}: exit {r.exit_code}")
        assert r.exit_code in (0, 1, 2), r.output
        assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
        assert "Traceback" not in r.output
        # a valid lake replays; a broken prices file is refused by name, whatever else was done to it
        assert r.exit_code == (0 if valid else 2), (chosen, r.output)
        if not valid:
            assert r.output.startswith(f"Error: lake file {root / 'prices'}"), (chosen, r.output)
    finally:
        shutil.rmtree(work, ignore_errors=True)
