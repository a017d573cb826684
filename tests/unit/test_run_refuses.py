"""`run` (and sweep, and the API) refuses what `data check` calls an error in the window it reads (issue 8).

Each case copies the bundled lake into tmp_path, spoils one series with polars (bypassing the lake writer,
which would refuse it: these are files a user or another tool wrote) and replays examples/loop.toml on it
(window 2024-06-01 to 2025-06-01). Every refusal is exit 2, one message naming the lake series, the first bad
time (UTC ISO) and value and the key that would downgrade it, and no result folder.
"""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

import backtest
from backtest.cli import cli
from backtest.data.check import DataWarning
from backtest.errors import ConfigError, DataError
from tests.synth_lake import synth_lake

ROOT = Path(__file__).resolve().parents[2]
T0 = 1717200000                 # 2024-06-01 00:00 UTC, the example's run.start
SPIKE = T0 + 30 * 86400         # 2024-07-01 00:00 UTC: an hourly price point inside the window
XSPIKE = SPIKE + 43200          # 2024-07-01 12:00 UTC: a daily exchange-rate point (they fall at noon)


@pytest.fixture()
def lake(tmp_path):
    dst = tmp_path / "lake"
    shutil.copytree(synth_lake(), dst)
    return dst


def config(tmp_path, lake, extra_run: str = "", name: str = "loop") -> Path:
    text = (ROOT / "tests" / "golden" / "configs" / "loop.toml").read_text()     # the synthetic-year loop
    text = text.replace('data   = "data"', f'data   = "{lake.as_posix()}"{extra_run}')
    text = text.replace('output = "results"', f'output = "{(tmp_path / "out").as_posix()}"')
    assert extra_run == "" or extra_run in text
    p = tmp_path / f"{name}.toml"
    p.write_text(text)
    return p


def spoil(lake: Path, table: str, fn) -> None:
    """Rewrite the calm year's file of `table` with `fn(df)`."""
    f = lake / table / "synth-calm.parquet"
    fn(pl.read_parquet(f)).write_parquet(f)


def run_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def refused(r, tmp_path, *parts):
    assert r.exit_code == 2, r.output
    for p in parts:
        assert p in r.output, (p, r.output)
    assert nothing_written(tmp_path)


def nothing_written(tmp_path) -> bool:
    """No result set and no file under run.output (the output check may have made the empty folder)."""
    out = tmp_path / "out"
    return not out.exists() or not any(out.rglob("*"))


# ------------------------------------------------------------------------------ the four cases of the issue
def test_a_duplicate_timestamp_with_a_conflicting_price_is_refused(tmp_path, lake):
    def dup(df):
        row = df.filter((pl.col("base") == "wstETH") & (pl.col("quote") == "WETH") & (pl.col("ts") == SPIKE))
        assert row.height == 1
        return pl.concat([df, row.with_columns(pl.col("price") * 1.5)])
    spoil(lake, "prices", dup)
    r = run_cli("run", config(tmp_path, lake))
    refused(r, tmp_path, "prices wstETH/WETH source=synth:calm", "duplicate", "2024-07-01T00:00:00Z",
            '"duplicate:prices wstETH/WETH" to run.allow')


def test_rates_stored_in_percent_are_refused(tmp_path, lake):
    pct = (pl.col("protocol") == "aave-v3") & (pl.col("asset") == "WETH")
    spoil(lake, "rates", lambda df: df.with_columns(
        pl.when(pct).then(pl.col("borrow_apr") * 100).otherwise(pl.col("borrow_apr")).alias("borrow_apr")))
    r = run_cli("run", config(tmp_path, lake))
    # the first point read is the one at the start: 0.0255 (synth calm) x 100
    refused(r, tmp_path, "rates aave-v3:WETH:borrow_apr", "unit error", "percent stored as a fraction",
            "first bad point 2024-06-01T00:00:00Z value 2.55", '"unit:rates aave-v3:WETH:borrow_apr"')


def test_an_all_nan_gas_series_is_refused(tmp_path, lake):
    spoil(lake, "gas", lambda df: df.with_columns(pl.lit(float("nan")).alias("base_fee_gwei")))
    r = run_cli("run", config(tmp_path, lake))
    refused(r, tmp_path, "gas base_fee_gwei+priority_fee_gwei", "non-finite", "NaN/inf",
            "first bad point 2024-06-01T00:00:00Z value nan")


def spike(df):
    hit = (pl.col("token") == "wstETH") & (pl.col("ts") == XSPIKE)
    assert df.filter(hit).height == 1
    return df.with_columns(pl.when(hit).then(pl.col("rate") * 10).otherwise(pl.col("rate")).alias("rate"))


def test_a_one_point_10x_exchange_rate_spike_is_refused(tmp_path, lake):
    spoil(lake, "exchange_rates", spike)
    r = run_cli("run", config(tmp_path, lake))
    refused(r, tmp_path, "exchange_rates wstETH source=synth:calm", "jump error", "2024-07-01T12:00:00Z",
            '"jump:exchange_rates wstETH" to run.allow')


def test_the_sweep_command_and_the_python_api_refuse_the_same(tmp_path, lake):
    spoil(lake, "exchange_rates", spike)
    cfg = config(tmp_path, lake)
    r = run_cli("sweep", cfg, "--grid", "strategy.loops=1..2")
    refused(r, tmp_path, "exchange_rates wstETH", "jump")
    with pytest.raises(DataError, match="exchange_rates wstETH source=synth:calm: jump error"):
        backtest.run(cfg)
    with pytest.raises(DataError, match="jump"):
        backtest.sweep(cfg, {"strategy.loops": [1, 2]})
    assert nothing_written(tmp_path)


def test_a_bad_point_outside_the_window_does_not_stop_the_run(tmp_path, lake):
    # the same 10x spike in 2025-07 (the rate-spike scenario's year): outside the example's window
    late = 1751328000 + 43200       # 2025-07-01 12:00 UTC
    f = lake / "exchange_rates" / "synth-rate-spike.parquet"
    df = pl.read_parquet(f)
    hit = (pl.col("token") == "wstETH") & (pl.col("ts") == late)
    assert df.filter(hit).height == 1
    df.with_columns(pl.when(hit).then(pl.col("rate") * 10).otherwise(pl.col("rate")).alias("rate")).write_parquet(f)
    r = run_cli("run", config(tmp_path, lake))
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "wsteth-aave-emode-loop" / "manifest.json").is_file()


# ------------------------------------------------------------------------------ downgrading a check
def test_run_allow_downgrades_the_named_check_to_a_warning(tmp_path, lake):
    spoil(lake, "exchange_rates", spike)
    cfg = config(tmp_path, lake, '\nallow = ["jump:exchange_rates wstETH"]')
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        res = backtest.run(cfg)
    texts = [str(w.message) for w in seen if issubclass(w.category, DataWarning)]
    assert len(texts) == 1 and "exchange_rates wstETH" in texts[0] and "run.allow" in texts[0]
    assert res["path"] is not None and res["summary"].height == 1


def test_run_allow_downgrades_only_the_check_it_names(tmp_path, lake):
    spoil(lake, "exchange_rates", spike)
    cfg = config(tmp_path, lake, '\nallow = ["jump:prices wstETH/WETH"]')
    refused(run_cli("run", cfg), tmp_path, '"jump:exchange_rates wstETH"')


@pytest.mark.parametrize("value, part", [
    ('"jump"', "must be a list"),
    ('["spike:exchange_rates wstETH"]', "is not CHECK:TABLE KEY"),
    ('["jump:exchange_rate wstETH"]', "is not CHECK:TABLE KEY"),
    ('["jump:exchange_rates"]', "is not CHECK:TABLE KEY"),
])
def test_a_malformed_run_allow_is_a_config_error(tmp_path, lake, value, part):
    r = run_cli("run", config(tmp_path, lake, f"\nallow = {value}"))
    refused(r, tmp_path, "run.allow", part)


def test_a_nan_that_run_allow_lets_through_still_cannot_be_priced(tmp_path, lake):
    # a NaN exchange rate allowed by run.allow reaches the block clock: the message names the lake series and
    # the block time, not an internal array ("market series xrate")
    def nan(df):
        hit = (pl.col("token") == "wstETH") & (pl.col("ts") == XSPIKE)
        return df.with_columns(pl.when(hit).then(float("nan")).otherwise(pl.col("rate")).alias("rate"))
    spoil(lake, "exchange_rates", nan)
    cfg = config(tmp_path, lake, '\nallow = ["non-finite:exchange_rates wstETH"]')
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        r = run_cli("run", cfg)
    refused(r, tmp_path, "exchange_rates wstETH source=synth:calm: the value read at block time "
                         "2024-07-01T12:00:00Z is nan", "cannot downgrade")
    assert "market series" not in r.output


# ------------------------------------------------------------------------------ several sources
def second_source(lake: Path, base="ETH", quote="USD", source="coingecko", shift=0) -> None:
    df = pl.read_parquet(lake / "prices" / "synth-calm.parquet")
    other = df.filter((pl.col("base") == base) & (pl.col("quote") == quote))
    assert other.height > 0
    other.with_columns(pl.lit(source).alias("source"), pl.col("ts") + shift).write_parquet(
        lake / "prices" / f"{source}.parquet")


def test_two_sources_in_the_window_are_ambiguous_and_the_message_names_the_key(tmp_path, lake):
    second_source(lake)
    r = run_cli("run", config(tmp_path, lake))
    refused(r, tmp_path, "prices ETH/USD: ambiguous, 2 sources", "coingecko (2024-06-01",
            'run.sources = { "prices ETH/USD" = "coingecko" }')


def test_run_sources_chooses_between_sources(tmp_path, lake):
    second_source(lake)
    cfg = config(tmp_path, lake, '\nsources = { "prices ETH/USD" = "synth:calm" }')
    res = backtest.run(cfg)
    assert res["summary"].height == 1
    assert "ETH/USD" in [s["key"] for s in res["manifest"]["series"]], res["manifest"]["series"]


def test_run_sources_naming_a_missing_source_or_an_unread_series_is_refused(tmp_path, lake):
    second_source(lake)
    r = run_cli("run", config(tmp_path, lake, '\nsources = { "prices ETH/USD" = "kaiko" }'))
    refused(r, tmp_path, '"prices ETH/USD" = "kaiko"', "no such source", "coingecko, synth:calm")
    r = run_cli("run", config(tmp_path, lake, '\nsources = { "prices ETH/USD" = "coingecko", '
                                              '"prices rETH/WETH" = "coingecko" }', name="unread"))
    refused(r, tmp_path, "'prices rETH/WETH' is not a series this run reads")


def test_a_malformed_run_sources_is_a_config_error(tmp_path, lake):
    r = run_cli("run", config(tmp_path, lake, '\nsources = { "WETH/USD" = "coingecko" }'))
    refused(r, tmp_path, "run.sources", 'must name a lake series that has sources')
    with pytest.raises(ConfigError, match="must be a source name"):
        backtest.run(config(tmp_path, lake, '\nsources = { "prices ETH/USD" = 3 }', name="num"))


def test_a_window_outside_the_data_is_not_called_ambiguous(tmp_path, lake):
    # two wstETH/WETH sources from 2024-06-01 (one scenario year kept); a window from 2024-03-01 starts before
    # both: the old rule, which took every row from the first one, called that "ambiguous"
    second_source(lake, "wstETH", "WETH")
    for f in ("synth-rate-spike", "synth-steth-depeg"):
        (lake / "prices" / f"{f}.parquet").unlink()
    cfg = config(tmp_path, lake)
    cfg.write_text(cfg.read_text().replace('start  = "2024-06-01"', 'start  = "2024-03-01"')
                   .replace('end    = "2025-06-01"', 'end    = "2024-08-01"'))
    r = run_cli("run", cfg)
    assert r.exit_code == 2 and "ambiguous" not in r.output, r.output
    assert "prices wstETH/WETH: no point at or before the run start 2024-03-01" in r.output
    assert "sources in the lake: coingecko (2024-06-01" in r.output and nothing_written(tmp_path)


# ------------------------------------------------------------------------------ the other error kinds
def _on(pred, col, fn):
    return lambda df: df.with_columns(pl.when(pred).then(fn(pl.col(col))).otherwise(pl.col(col)).alias(col))


WST_PX = (pl.col("base") == "wstETH") & (pl.col("quote") == "WETH")
WST_XR = pl.col("token") == "wstETH"


@pytest.mark.parametrize("table, fn, parts", [
    # gas stored in wei: 8 gwei at the start -> 8e9 (median far above 1e5 gwei)
    ("gas", lambda df: df.with_columns(pl.col("base_fee_gwei") * 1e9),
     ["gas base_fee_gwei+priority_fee_gwei", "unit error", "wei stored as gwei", "value 8e+09"]),
    # one zero price at 2024-07-01 00:00
    ("prices", _on(WST_PX & (pl.col("ts") == SPIKE), "price", lambda c: c * 0),
     ["prices wstETH/WETH source=synth:calm", "non-positive", "first bad point 2024-07-01T00:00:00Z value 0"]),
    # a negative borrow rate from 2024-07-01 00:00 on
    ("rates", _on((pl.col("protocol") == "aave-v3") & (pl.col("asset") == "WETH") & (pl.col("ts") >= SPIKE),
                  "borrow_apr", lambda c: -c),
     ["rates aave-v3:WETH:borrow_apr", "negative", "first bad point 2024-07-01T00:00:00Z"]),
    # every wstETH exchange rate in milliseconds: the lake reader may name the file first (lake.py), else the
    # gate names the series ("... look like milliseconds", the first row 1717200000000)
    ("exchange_rates", _on(WST_XR, "ts", lambda c: c * 1000), ["exchange_rates", "milliseconds"]),
])
def test_each_other_error_kind_is_refused(tmp_path, lake, table, fn, parts):
    spoil(lake, table, fn)
    if table == "exchange_rates":       # the other years' files would still cover the window's start
        for f in ("synth-rate-spike", "synth-steth-depeg"):
            (lake / table / f"{f}.parquet").unlink()
    refused(run_cli("run", config(tmp_path, lake)), tmp_path, *parts)


def test_run_allow_can_be_given_on_the_command_line(tmp_path, lake):
    spoil(lake, "exchange_rates", spike)
    cfg = config(tmp_path, lake)
    r = run_cli("run", cfg, "--set", "run.allow=jump")
    refused(r, tmp_path, "run.allow", "(from override): must be a list")
    r = run_cli("run", cfg, "--set", 'run.allow=["jump:exchange_rates wstETH"]')
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "wsteth-aave-emode-loop" / "manifest.json").is_file()
