"""`backtest data import dune FILE --recipe NAME`: small results in Dune's export formats (the CSV download: times
as '2024-04-24 22:00:00.000 UTC'; the API's JSON: {"result": {"rows": [...]}}), mapped as each recipe says."""
from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from backtest.cli import cli
from backtest.data.sources import dune_recipes
from backtest.errors import DataError

T_2200 = 1_713_996_000           # 2024-04-24 22:00:00 UTC = 19837 days x 86400 + 22 x 3600
DAY_24 = 1_713_916_800           # 2024-04-24 00:00:00 UTC


def table(lake: Path, name: str) -> pl.DataFrame:
    return pl.read_parquet(sorted((lake / name).rglob("*.parquet")))


def run(*args: str):
    return CliRunner().invoke(cli, ["data", "import", "dune", *args])


def test_balancer_minute_prices_from_a_csv_export(tmp_path):
    f = tmp_path / "q5299669.csv"
    f.write_text("minute,price\n2024-04-24 22:00:00.000 UTC,0.6012\n2024-04-24 22:01:00.000 UTC,0.5980\n"
                 "2024-04-24 22:02:00.000 UTC,0.6125\n")
    r = run(str(f), "--recipe", "ezeth-balancer-minute", "--into", str(tmp_path / "lake"))
    assert r.exit_code == 0, r.output
    px = table(tmp_path / "lake", "prices").sort("ts")
    assert px["ts"].to_list() == [T_2200, T_2200 + 60, T_2200 + 120]
    assert px["price"].to_list() == [0.6012, 0.5980, 0.6125]
    assert (px["base"][0], px["quote"][0]) == ("ezETH", "WETH")
    assert dune_recipes.RECIPES["ezeth-balancer-minute"].query_id == 5299669


def test_daily_liquidations_become_four_event_series(tmp_path):
    f = tmp_path / "q5323305.csv"
    f.write_text("day,liquidations,seized_ezeth,repaid_weth,bad_debt_weth\n"
                 "2024-04-24 00:00:00.000 UTC,138,9800.5,8100.25,65\n2024-04-25 00:00:00.000 UTC,12,410,350,0\n")
    r = run(str(f), "--recipe", "ezeth-morpho-liquidations-daily", "--into", str(tmp_path / "lake"))
    assert r.exit_code == 0, r.output
    ev = table(tmp_path / "lake", "events")
    got = {(row["kind"], row["ts"]): row["value"] for row in ev.iter_rows(named=True)}
    assert got[("morpho-liquidations", DAY_24)] == 138.0
    assert got[("morpho-seized-ezeth", DAY_24)] == 9800.5
    assert got[("morpho-repaid-weth", DAY_24)] == 8100.25
    assert got[("morpho-bad-debt-weth", DAY_24 + 86400)] == 0.0
    assert len(got) == 8 and set(ev["token"]) == {"ezETH"}


def test_api_json_export_and_a_renamed_column(tmp_path):
    f = tmp_path / "rates.json"
    rows = [{"time": "2025-07-17 14:00:00.000 UTC", "block_number": 22950000, "borrow_apr": 0.12,
             "supply_apr": 0.096, "borrow_index": 1.08, "supply_index": 1.05},
            {"time": "2025-07-17 20:00:00.000 UTC", "block_number": 22951800, "borrow_apr": 0.022,
             "supply_apr": 0.017, "borrow_index": 1.0801, "supply_index": 1.0501}]
    f.write_text(json.dumps({"execution_id": "01J", "state": "QUERY_STATE_COMPLETED",
                             "result": {"rows": rows, "metadata": {"column_names": list(rows[0])}}}))
    lake = tmp_path / "lake"
    r = run(str(f), "--recipe", "aave-v3-weth-rates-intraday", "--into", str(lake))
    assert r.exit_code == 2 and "block_time" in r.output            # the recipe's time column is missing
    assert not lake.exists() or not (lake / "rates").exists()         # nothing written
    r = run(str(f), "--recipe", "aave-v3-weth-rates-intraday", "--map", "ts=time", "--into", str(lake))
    assert r.exit_code == 0, r.output
    rates = table(lake, "rates").sort("ts")
    assert rates["borrow_apr"].to_list() == [0.12, 0.022]
    assert rates["block"].to_list() == [22950000, 22951800]
    assert (rates["protocol"][0], rates["asset"][0]) == ("aave-v3", "WETH")
    assert rates["ts"][0] == 1_752_760_800                           # 2025-07-17 14:00 UTC


def test_unknown_recipe_lists_them_and_recipe_needs_dune(tmp_path):
    f = tmp_path / "x.csv"
    f.write_text("minute,price\n2024-04-24 22:00:00.000 UTC,0.6\n")
    r = run(str(f), "--recipe", "nope", "--into", str(tmp_path / "lake"))
    assert r.exit_code == 2 and "ezeth-balancer-minute" in r.output
    r = CliRunner().invoke(cli, ["data", "import", "csv", str(f), "--recipe", "ezeth-balancer-minute",
                                 "--into", str(tmp_path / "lake")])
    assert r.exit_code == 2 and "--recipe is for `data import dune`" in r.output
    with pytest.raises(DataError, match="unknown dune recipe"):
        dune_recipes.recipe("nope")


def test_every_recipe_names_a_query_or_its_sql():
    for name, rec in dune_recipes.RECIPES.items():
        assert rec.query_id or rec.sql, name
        assert rec.outputs and all(o.table for o in rec.outputs)


def test_the_published_queries_other_column_names_are_accepted(tmp_path):
    # the two queries' real column names are unverified: Dune's own names for the same values are tried in turn
    f = tmp_path / "q5299669.csv"
    f.write_text("block_time,ezeth_price\n2024-04-24 22:00:00.000 UTC,0.6012\n")
    r = run(str(f), "--recipe", "ezeth-balancer-minute", "--into", str(tmp_path / "lake"))
    assert r.exit_code == 0, r.output
    assert table(tmp_path / "lake", "prices")["price"].to_list() == [0.6012]
    # decoded Liquidate event sums keep the event's names and wei: 9800.5 ezETH = 9800.5e18
    f = tmp_path / "q5323305.csv"
    f.write_text("block_date,liquidation_count,seizedAssets,repaidAssets,badDebtAssets\n"
                 "2024-04-24,138,9800500000000000000000,8100250000000000000000,65000000000000000000\n")
    r = run(str(f), "--recipe", "ezeth-morpho-liquidations-daily", "--into", str(tmp_path / "lake2"))
    assert r.exit_code == 0, r.output
    got = {row["kind"]: row["value"] for row in table(tmp_path / "lake2", "events").iter_rows(named=True)}
    assert got == pytest.approx({"morpho-liquidations": 138.0, "morpho-seized-ezeth": 9800.5,
                                 "morpho-repaid-weth": 8100.25, "morpho-bad-debt-weth": 65.0}, rel=1e-15)
    assert set(table(tmp_path / "lake2", "events")["ts"]) == {DAY_24}


def test_a_result_with_none_of_the_names_says_which_were_tried(tmp_path):
    f = tmp_path / "q.csv"
    f.write_text("t,p\n2024-04-24 22:00:00.000 UTC,0.6\n")
    r = run(str(f), "--recipe", "ezeth-balancer-minute", "--into", str(tmp_path / "lake"))
    assert r.exit_code == 2
    assert "tried minute, block_minute, block_time" in r.output and "--map ts=COLUMN" in r.output
    r = run(str(f), "--recipe", "ezeth-balancer-minute", "--map", "ts=t", "--map", "price=p",
            "--into", str(tmp_path / "lake"))
    assert r.exit_code == 0, r.output
    assert table(tmp_path / "lake", "prices")["price"].to_list() == [0.6]
