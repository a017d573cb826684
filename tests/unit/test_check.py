"""`backtest data check` on hand-made lakes, one kind of problem per series, and on a clean lake."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from backtest.cli import cli
from backtest.data import lake
from backtest.data import lake_write
from backtest.data.check import check_lake
from tests.synth_lake import synth_lake

H = 3600
T0 = 1_704_067_200                      # 2024-01-01
N = 200


def raw(root: Path, table: str, name: str, df: pl.DataFrame) -> None:
    """Write a file as it is (no validation, no sorting): what a hand-made or broken lake can hold."""
    folder = root / table
    folder.mkdir(parents=True, exist_ok=True)
    sch = lake.TABLES[table]
    cols = [c for c in sch.names if c in df.columns]
    pq.write_table(df.select(cols).to_arrow().cast(pl.DataFrame(schema={c: df.schema[c] for c in cols})
                                                   .to_arrow().schema), folder / f"{name}.parquet")


def prices(base: str, quote: str, values, ts=None, source: str = "test") -> pl.DataFrame:
    v = np.asarray(values, dtype=float)
    t = np.asarray(ts if ts is not None else T0 + np.arange(v.size) * H, dtype=np.int64)
    return pl.DataFrame({"ts": t, "base": base, "quote": quote, "price": v, "source": source})


def calm(n: int = N, level: float = 1.0) -> np.ndarray:
    return level * (1 + 0.0001 * np.sin(np.arange(n)))


@pytest.fixture()
def clean(tmp_path) -> Path:
    root = tmp_path / "clean"
    lake_write.write_table(root, "prices", prices("wstETH", "WETH", calm(level=1.18)), "wsteth")
    lake_write.write_table(root, "prices", prices("WETH", "USD", calm(level=3000.0)), "weth-usd")
    lake_write.write_table(root, "exchange_rates", pl.DataFrame({
        "ts": T0 + np.arange(N) * H, "token": "wstETH", "underlying": "ETH",
        "rate": 1.18 + 1e-6 * np.arange(N), "source": "test"}), "xr")
    lake_write.write_table(root, "rates", pl.DataFrame({
        "ts": T0 + np.arange(N) * H, "protocol": "aave-v3", "asset": "WETH", "supply_apr": 0.02,
        "borrow_apr": 0.028, "utilization": 0.8}), "rates")
    lake_write.write_table(root, "gas", pl.DataFrame({"ts": T0 + np.arange(N) * H, "base_fee_gwei": 5.0}), "gas")
    lake_write.write_table(root, "market_params", pl.DataFrame({
        "ts": [T0], "protocol": "aave-v3", "asset": "wstETH", "emode": "eth-correlated", "ltv": 0.93,
        "liquidation_threshold": 0.95, "liquidation_bonus": 0.01}), "params")
    return root


def kinds(rep, table: str, key: str, severity: str = "error") -> set[str]:
    return {i.kind for i in rep.find(table, key).issues if i.severity == severity}


def test_a_clean_lake_has_no_issue_and_reports_span_and_resolution(clean):
    rep = check_lake(clean)
    assert rep.errors == 0 and rep.warnings == 0 and len(rep.series) == 6
    s = rep.find("prices", "wstETH/WETH")
    assert (s.rows, s.first_ts, s.last_ts, s.resolution_s) == (N, T0, T0 + (N - 1) * H, 3600.0)
    r = CliRunner().invoke(cli, ["data", "check", "--lake", str(clean)])
    assert r.exit_code == 0, r.output
    assert "wstETH/WETH [test]" in r.output and "every     1h  ok" in r.output and "0 error(s)" in r.output


def test_each_kind_of_problem_is_found_in_its_series(clean):
    root = clean
    # a gap of 5 days in an hourly series
    ts = np.concatenate([T0 + np.arange(100) * H, T0 + 99 * H + 5 * 86400 + np.arange(100) * H])
    raw(root, "prices", "gap", prices("rETH", "WETH", calm(level=1.1), ts))
    # a time that goes back inside the file, and a repeated time with two values
    ts = T0 + np.arange(N) * H
    ts[50], ts[51] = ts[51], ts[50]
    raw(root, "prices", "order", prices("cbETH", "WETH", calm(level=1.09), ts))
    ts = T0 + np.arange(N) * H
    ts[10] = ts[9]
    raw(root, "prices", "dup", prices("osETH", "WETH", calm(level=1.03), ts))
    # a non-positive price and an absurd one-hour jump
    v = calm(level=1.05)
    v[30] = 0.0
    raw(root, "prices", "zero", prices("ezETH", "WETH", v))
    v = calm(level=1.07)
    v[80] = 0.55
    raw(root, "prices", "jump", prices("weETH", "WETH", v))
    # unit suspicions: a rate in percent, an LST/ETH price that is a USD price, ms timestamps, gas in wei,
    # an exchange rate in wei, a bonus given as 1.05
    raw(root, "rates", "pct", pl.DataFrame({"ts": T0 + np.arange(N) * H, "protocol": "spark", "asset": "WETH",
                                            "supply_apr": 2.1, "borrow_apr": 3.2}))
    raw(root, "prices", "usd-as-eth", prices("rsETH", "ETH", calm(level=3100.0)))
    raw(root, "prices", "ms", prices("ETHx", "WETH", calm(level=1.04), (T0 + np.arange(N) * H) * 1000))
    raw(root, "gas", "wei", pl.DataFrame({"ts": T0 + 10**6 + np.arange(N) * H, "base_fee_gwei": 5e9}))
    raw(root, "exchange_rates", "xr-wei", pl.DataFrame({"ts": T0 + np.arange(N) * H, "token": "rETH",
                                                        "underlying": "ETH", "rate": 1.1e18, "source": "t"}))
    raw(root, "market_params", "lb", pl.DataFrame({"ts": [T0], "protocol": "spark", "asset": "wstETH",
                                                   "emode": None, "ltv": 0.9, "liquidation_threshold": 0.93,
                                                   "liquidation_bonus": 1.05}, schema_overrides={"emode": pl.String}))
    rep = check_lake(root)
    assert kinds(rep, "prices", "rETH/WETH") == {"gap"}
    gap = rep.find("prices", "rETH/WETH").errors[0].message
    assert "1 gap(s) longer than 3d" in gap and "longest 5d" in gap
    assert kinds(rep, "prices", "cbETH/WETH") == {"non-monotonic"}
    assert "order.parquet: time goes back at row 52" in rep.find("prices", "cbETH/WETH").errors[0].message
    assert kinds(rep, "prices", "osETH/WETH") == {"duplicate"}
    assert kinds(rep, "prices", "ezETH/WETH") == {"non-positive"}
    assert kinds(rep, "prices", "weETH/WETH") == {"jump"}
    assert "largest -48.6%" in rep.find("prices", "weETH/WETH").errors[0].message
    assert kinds(rep, "rates", "spark:WETH") == {"unit"}
    assert "3.2 should be 0.032" in " ".join(i.message for i in rep.find("rates", "spark:WETH").errors)
    assert kinds(rep, "prices", "rsETH/ETH") == {"unit"}
    assert "unit" in kinds(rep, "prices", "ETHx/WETH")
    assert "look like milliseconds" in " ".join(i.message for i in rep.find("prices", "ETHx/WETH").errors)
    assert "unit" in kinds(rep, "gas", "gas")
    assert kinds(rep, "exchange_rates", "rETH/ETH") == {"unit"}
    assert kinds(rep, "market_params", "spark:wstETH:-") == {"unit"}
    # the clean series stay clean, except the gas series that now shares its key with the wei file
    for table, key in (("prices", "wstETH/WETH"), ("exchange_rates", "wstETH/ETH"), ("rates", "aave-v3:WETH")):
        assert rep.find(table, key).issues == []
    r = CliRunner().invoke(cli, ["data", "check", "--lake", str(root), "--quiet"])
    assert r.exit_code == 1
    assert f"{rep.errors} error(s) found" in r.output and "wstETH/WETH" not in r.output


def test_warnings_do_not_fail_the_check(clean):
    # an exchange rate that falls once (a slashing?) and the same points imported under two names
    rate = 1.18 + 1e-6 * np.arange(N)
    rate[120:] -= 0.001
    lake_write.write_table(clean, "exchange_rates", pl.DataFrame({"ts": T0 + np.arange(N) * H, "token": "weETH",
                                                            "underlying": "ETH", "rate": rate, "source": "t"}), "we")
    lake_write.write_table(clean, "prices", prices("wstETH", "WETH", calm(level=1.18)), "wsteth-again")
    (clean / "stray").mkdir()
    (clean / "prices" / ".x.parquet.tmp-123").write_bytes(b"")
    rep = check_lake(clean)
    assert rep.errors == 0 and rep.warnings == 5
    assert kinds(rep, "exchange_rates", "weETH/ETH", "warning") == {"decrease"}
    assert kinds(rep, "prices", "wstETH/WETH", "warning") == {"duplicate", "overlap"}
    assert {i.kind for _, i in rep.issues} == {"unknown", "temporary"}
    assert CliRunner().invoke(cli, ["data", "check", "--lake", str(clean)]).exit_code == 0


def test_unreadable_or_wrong_schema_files_are_errors(clean):
    (clean / "gas" / "broken.parquet").write_bytes(b"PAR1 not really")
    raw(clean, "prices", "noquote", prices("X", "WETH", [1.0]).drop("quote"))
    rep = check_lake(clean)
    found = {(where, i.kind) for where, i in rep.issues}
    assert ("gas/broken.parquet", "unreadable") in found and ("prices/noquote.parquet", "schema") in found
    assert rep.errors == 2
    r = CliRunner().invoke(cli, ["data", "check", "--lake", str(clean / "nope")])
    assert r.exit_code == 2 and "no such lake folder" in r.output


# ------------------------------------------------------------------------------------------ windows (issue 8)
ROOT = Path(__file__).resolve().parents[2]


def test_the_bundled_lake_passes_its_own_check():
    # its scenario years are separate periods (a warning listing them), not a 610-day "gap" error
    r = CliRunner().invoke(cli, ["data", "check", "--lake", str(synth_lake())])     # the synthetic scenarios
    assert r.exit_code == 0, r.output
    assert "0 error(s)" in r.output and "2 separate periods (2022-05-01 to 2022-09-29, 2024-06-01 to" in r.output


def spiked(clean: Path) -> Path:
    """The clean lake with one 10x exchange-rate point at T0 + 100 h (2024-01-05 04:00 UTC)."""
    rate = 1.18 + 1e-6 * np.arange(N)
    rate[100] *= 10
    raw(clean, "exchange_rates", "xr", pl.DataFrame({
        "ts": T0 + np.arange(N) * H, "token": "wstETH", "underlying": "ETH", "rate": rate, "source": "test"}))
    return clean


def test_a_window_checks_only_the_points_a_replay_of_it_reads(clean):
    spiked(clean)
    whole = CliRunner().invoke(cli, ["data", "check", "--lake", str(clean)])
    assert whole.exit_code == 1 and "jump" in whole.output
    # the window 2024-01-01 to 2024-01-04 reads points up to T0 + 71 h: the spike at T0 + 100 h is not in it
    before = CliRunner().invoke(cli, ["data", "check", "--lake", str(clean), "--start", "2024-01-01",
                                      "--end", "2024-01-04"])
    assert before.exit_code == 0, before.output
    assert "window: 2024-01-01 00:00 UTC to 2024-01-04 00:00 UTC" in before.output
    # a window from T0 + 102 h reads the point in force at its start (T0 + 102 h) onwards: clean again
    after = check_lake(clean, start=T0 + 102 * H, end=T0 + 150 * H)
    assert after.errors == 0 and after.find("exchange_rates", "wstETH/ETH").rows == 48   # 102 h .. 149 h
    # a window from T0 + 100 h starts on the spike (100 -> 101 is a jump back down)
    assert check_lake(clean, start=T0 + 100 * H, end=T0 + 150 * H).errors == 1


def test_the_window_can_come_from_a_run_config(clean, tmp_path):
    spiked(clean)
    cfg = tmp_path / "loop.toml"
    cfg.write_text((ROOT / "tests" / "golden" / "configs" / "loop.toml").read_text()
                   .replace('data   = "data"', f'data   = "{clean.as_posix()}"')
                   .replace('start  = "2024-06-01"', 'start  = "2024-01-05"')
                   .replace('end    = "2025-06-01"', 'end    = "2024-01-06"'))
    r = CliRunner().invoke(cli, ["data", "check", "--config", str(cfg)])
    assert r.exit_code == 1 and "jump" in r.output and "window: 2024-01-05 00:00 UTC" in r.output, r.output
    # the run's key for that series is "exchange_rates wstETH" (data check's is wstETH/ETH): its allow entry
    cfg.write_text(cfg.read_text().replace('record = "1h"', 'record = "1h"\nallow = ["jump:exchange_rates wstETH"]'))
    r = CliRunner().invoke(cli, ["data", "check", "--config", str(cfg)])
    assert r.exit_code == 0 and 'allowed: run.allow has "jump:exchange_rates wstETH"' in r.output, r.output


@pytest.mark.parametrize("args, part", [
    (["--start", "2024-13-01"], "--start '2024-13-01': expected a UTC date"),
    (["--start", "2024-02-01", "--end", "2024-01-01"], "--end 2024-01-01 must be after --start 2024-02-01"),
    (["--config", "loop.toml", "--start", "2024-01-01"], "--config gives the window"),
])
def test_a_bad_window_is_an_input_error(clean, tmp_path, args, part):
    (tmp_path / "loop.toml").write_text((ROOT / "tests" / "golden" / "configs" / "loop.toml").read_text())
    args = [str(tmp_path / a) if a == "loop.toml" else a for a in args]
    r = CliRunner().invoke(cli, ["data", "check", "--lake", str(clean), *args])
    assert r.exit_code == 2 and part in r.output, r.output


def test_data_import_needs_into_and_writes_nothing_without_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "quotes.csv"
    f.write_text("time,close\n1704067200,1.18\n1704070800,1.181\n")
    args = ["data", "import", "csv", str(f), "--table", "prices", "--map", "ts=time", "--map", "price=close",
            "--set", "base=wstETH", "--set", "quote=WETH", "--set", "source=test"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2 and "--into DIR is required" in r.output, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quotes.csv"]         # no data/ folder appeared
    r = CliRunner().invoke(cli, [*args, "--into", "mylake"])
    assert r.exit_code == 0, r.output
    assert f"lake: {tmp_path / 'mylake'}" in r.output and (tmp_path / "mylake" / "prices").is_dir()


SHARED = Path("/work/shared/data")


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs the shared real data")
def test_a_lake_of_readmes_real_imports_passes_for_the_window_a_user_replays(tmp_path):
    from backtest.data.derive import derive_ratio
    from backtest.data.sources.registry import import_files

    lk = tmp_path / "data-2022"          # the lake examples/real-steth-2022-aave-v2.toml says how to build
    cg = SHARED / "coingecko-steth-weth-hourly"
    import_files("coingecko", [cg / "stETH_usd.csv", cg / "WETH_usd.csv"], lk)
    derive_ratio(lk, "stETH", "WETH", rebase_apr=0.04)
    es = SHARED / "etherscan-daily"
    import_files("etherscan", [es / "export-AvgGasPrice.csv", es / "export-EtherPrice.csv"], lk)
    # the whole lake: Etherscan's 2015-08-07 -> 08 ETH/USD move of -70.8 % is an error
    assert CliRunner().invoke(cli, ["data", "check", "--lake", str(lk)]).exit_code == 1
    # July to September 2022 reads neither that nor CoinGecko's 2022-06-13 print
    r = CliRunner().invoke(cli, ["data", "check", "--lake", str(lk), "--start", "2022-07-01", "--end", "2022-09-30"])
    assert r.exit_code == 0 and "0 error(s)" in r.output, r.output
    # the example's own window reads the print; its run.allow makes it a warning, as in the run
    r = CliRunner().invoke(cli, ["data", "check", "--lake", str(lk), "--config",
                                 str(ROOT / "examples" / "real-steth-2022-aave-v2.toml")])
    assert r.exit_code == 0 and 'allowed: run.allow has "jump:prices stETH/WETH"' in r.output, r.output


def test_check_window_names_the_series_the_first_bad_point_and_the_allow_key():
    import warnings

    from backtest.data.check import DataWarning, check_window
    from backtest.errors import DataError

    # hourly rates in milliseconds: the first ts, 1704067200000, is the bad point and its value
    ms = pl.DataFrame({"ts": (T0 + np.arange(3) * H) * 1000, "rate": [1.18, 1.18, 1.18], "token": "wstETH",
                       "underlying": "ETH", "filename": "x.parquet"})
    with pytest.raises(DataError) as e:
        check_window("exchange_rates", "wstETH", "lido", ms, start=T0, end=T0 + 3 * H)
    text = str(e.value)
    assert text.startswith("exchange_rates wstETH source=lido: unit error in the run window 2024-01-01T00:00:00Z")
    assert "look like milliseconds" in text and "first bad point ts=1704067200000" in text
    assert "--start 2024-01-01T00:00:00Z --end 2024-01-01T03:00:00Z" in text and '"unit:exchange_rates wstETH"' in text
    # allowed: a DataWarning, returned as text
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        out = check_window("exchange_rates", "wstETH", "lido", ms, start=T0, end=T0 + 3 * H,
                           allow=["unit:exchange_rates wstETH"])
    assert len(out) == 1 and [w.category for w in seen] == [DataWarning]
