"""`backtest book` on the bundled lake: the table, book.parquet (DESIGN section 6), exit codes, both engines."""
import json
import math
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from backtest.book import ADVERTISED, parse_window, verdict, Advertised, book
from backtest.cli import cli
from backtest.errors import InputError

REPO = Path(__file__).resolve().parents[2]
WINDOW = "2024-06-01..2024-06-15"


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    out = tmp_path_factory.mktemp("book")
    return book(WINDOW, 1000.0, str(REPO / "data"), str(out)), out / "book"


def test_every_advertised_strategy_is_a_row_with_design_columns(frame):
    f, out = frame
    assert f["strategy"].to_list() == list(ADVERTISED)
    for col in ("kind", "tokens", "venue", "window", "capital_usd", "ending_value_usd", "realized_apy",
                "advertised", "advertised_low", "advertised_high", "verdict", "liquidations", "worst_drawdown",
                "costs", "result_set", "result_row", "notes", "status"):
        assert col in f.columns
    assert pl.read_parquet(out / "book.parquet").equals(f)
    doc = json.loads((out / "book.json").read_text())          # the column dictionary, every column named
    assert [c[0] for c in doc["columns"]["book"]] == f.columns and all(c[2] for c in doc["columns"]["book"])


def test_each_replayed_row_is_its_result_sets_numbers(frame):
    f, _ = frame
    replayed = f.filter(pl.col("status") == "replayed")
    # the bundled synthetic lake has no Curve pool rows: the lp row says so instead of a number
    assert set(replayed["strategy"]) >= {"hold-lst", "hold-lrt", "basket", "lend", "vault", "loop", "restake-lrt"}
    lp = f.filter(pl.col("strategy") == "lp").row(0, named=True)
    assert lp["status"].startswith("not replayed: liquidity curve:0xDC24") and lp["result_set"] is None
    for r in replayed.iter_rows(named=True):
        folder = Path(r["result_set"])
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["format"] == "backtest result set"
        s = pl.read_parquet(folder / "summary.parquet").row(0, named=True)
        assert s.get("end_value", s.get("end_equity")) == pytest.approx(r["end_value"], rel=1e-12)
        # $1,000 grows as the strategy's own unit does
        cap = manifest["config"]["strategy"]["capital"]
        assert r["ending_value_usd"] == pytest.approx(1000.0 * r["end_value"] / cap, rel=1e-12)


def test_the_basket_row_says_its_series_are_synthetic(frame):
    b = frame[0].filter(pl.col("strategy") == "basket").row(0, named=True)
    # named from the lake's provenance.json (mSOL and stATOM have no real history)
    assert "synthetic series: prices/synth-calm-other-chains.parquet" in b["notes"]
    assert b["unit"] == "USD"


def test_the_restaking_row_shows_the_apy_with_and_without_rewards(frame):
    r = frame[0].filter(pl.col("strategy") == "restake-lrt").row(0, named=True)
    assert r["rewards_value"] >= 0
    assert "without and with" in r["notes"]
    assert r["apy_with_rewards"] >= r["realized_apy"]
    assert "assumed series: prices/assumed-EIGEN-ETHFI-USD.parquet" in r["notes"]   # EIGEN has no market price


def test_verdicts_against_absolute_and_base_relative_ranges():
    assert verdict(0.04, Advertised("3-5 %", 0.03, 0.05), None) == (0.03, 0.05, "inside")
    assert verdict(0.02, Advertised("3-5 %", 0.03, 0.05), None)[2] == "below"
    lo, hi, v = verdict(0.06, Advertised("base + 1-4 %", 0.01, 0.04, True), 0.03)
    assert (lo, hi, v) == (pytest.approx(0.04), pytest.approx(0.07), "inside")
    assert verdict(0.5, Advertised("highly variable", None, None), None)[2] == "n/a"


def test_windows_are_named_or_dated_and_a_bad_one_exits_2(tmp_path):
    assert parse_window("real-2024") == ("real-2024", "2024-05-14", "2025-09-18")
    assert parse_window("2024-06-01..2024-07-01")[1:] == ("2024-06-01", "2024-07-01")
    with pytest.raises(InputError):
        parse_window("2024-07-01..2024-06-01")
    res = CliRunner().invoke(cli, ["book", "--window", "last-year", "--output", str(tmp_path)])
    assert res.exit_code == 2 and "--window 'last-year'" in res.output
    assert not (tmp_path / "book").exists()
    res = CliRunner().invoke(cli, ["book", "--capital", "-5", "--output", str(tmp_path)])
    assert res.exit_code == 2 and "--capital" in res.output


def test_the_command_prints_what_1000_became(tmp_path):
    res = CliRunner().invoke(cli, ["book", "--window", "2024-06-01..2024-06-03", "--data", str(REPO / "data"),
                                   "--output", str(tmp_path)], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "what $1,000 became" in res.output and "book.parquet" in res.output


def test_both_engines_give_the_same_book(tmp_path):
    from backtest.book import EXAMPLES

    a = book("2024-06-01..2024-06-03", 1000.0, str(REPO / "data"), str(tmp_path / "a"), EXAMPLES, "core")
    b = book("2024-06-01..2024-06-03", 1000.0, str(REPO / "data"), str(tmp_path / "b"), EXAMPLES, "reference")
    book_kinds = pl.col("kind").is_in(["basket", "vault", "farm", "lp"])
    cols = ["strategy", "end_value", "realized_apy", "worst_drawdown", "costs"]
    assert a.filter(book_kinds).select(cols).equals(b.filter(book_kinds).select(cols))
    assert all(math.isfinite(v) for v in a.filter(book_kinds & (pl.col("status") == "replayed"))["end_value"])


def test_backtest_run_replays_a_book_kind_and_a_rerun_gives_identical_bytes(tmp_path):
    args = ["run", str(REPO / "examples" / "book" / "vault.toml"), "--set", f"run.output={tmp_path}",
            "--set", "run.start=2024-06-01", "--set", "run.end=2024-06-05", "--set", f"run.data={REPO / 'data'}"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "vault: end value" in res.output
    folder = tmp_path / "book-vault"
    first = {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert {"summary.parquet", "manifest.json", "events.parquet", "part-0.parquet"} <= set(first)
    assert CliRunner().invoke(cli, args).exit_code == 0
    assert {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == first
