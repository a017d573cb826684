"""The bundled lake (data/) is real history (issue 11): what it holds, that it is what scripts/build_lake.py makes
from ../shared/data, that `data check` passes on it, that both book windows replay from it, that the ether.fi
rewards are per weETH where a weETH holder reads them, and that a run's manifest names the lake's assumptions.

The expected numbers come from the vendor CSVs, read here with plain polars, not from the lake's code."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import backtest
from backtest.data import lake
from backtest.data.check import check_lake
from tests import pins
from tests.integration.test_pinned_outputs import compare
from tests.synth_lake import HASHES, file_hashes, synth_lake

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data"
SHARED = REPO.parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent")


def T(s: str) -> int:
    return int(dt.datetime.fromisoformat(s).replace(tzinfo=dt.timezone.utc).timestamp())


@pytest.fixture(scope="module")
def prov() -> dict:
    return json.loads((DATA / "provenance.json").read_text())


def test_every_file_has_provenance_and_its_bytes(prov):
    import hashlib
    files = {p.relative_to(DATA).as_posix() for p in DATA.rglob("*.parquet")}
    assert files == set(prov["files"])
    for rel, entry in prov["files"].items():
        assert hashlib.sha256((DATA / rel).read_bytes()).hexdigest() == entry["sha256"], rel
    steps = {s["step"] for s in prov["steps"]}
    assert {e["step"] for e in prov["files"].values()} <= steps


def test_small_and_labelled(prov):
    size = sum(p.stat().st_size for p in DATA.rglob("*.parquet"))
    assert 1_000_000 < size < 5_000_000
    # synthetic rows only for the chains without real data, and every one says so in its source
    synth = {r for r, e in prov["files"].items() if e["synthetic"]}
    assert synth == {"prices/synth-calm-other-chains.parquet", "exchange_rates/synth-calm-other-chains.parquet",
                     "rates/synth-calm-other-chains.parquet"}
    pr = lake.read_table(DATA, "prices")
    synth_bases = set(pr.filter(pl.col("source").str.starts_with("synth"))["base"].unique())
    assert synth_bases == {"mSOL", "SOL", "stATOM", "ATOM"}
    assert not set(lake.read_table(DATA, "exchange_rates").filter(
        pl.col("source").str.starts_with("synth"))["token"].unique()) - {"mSOL", "stATOM"}


def test_data_check_finds_no_error():
    report = check_lake(DATA)
    assert report.errors == 0 and len(report.series) > 80, "\n".join(report.lines())[-3000:]
    r = subprocess.run([sys.executable, "-m", "backtest.cli", "data", "check", "--lake", str(DATA), "--quiet"],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def test_one_source_per_price_series_at_any_time():
    pr = lake.read_table(DATA, "prices")
    spans = pr.group_by("base", "quote", "source").agg(pl.col("ts").min().alias("lo"), pl.col("ts").max().alias("hi"))
    for (b, q), g in spans.group_by("base", "quote"):
        rows = g.sort("lo").rows(named=True)
        for a, c in zip(rows, rows[1:]):
            assert a["hi"] < c["lo"], f"{b}/{q}: {a['source']} and {c['source']} overlap"


@needs_shared
def test_the_build_script_reproduces_the_lake_byte_for_byte():
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "build_lake.py"), "--check"], capture_output=True,
                       text=True, cwd=REPO)
    assert r.returncode == 0 and "0 differ" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]


@needs_shared
def test_the_weeth_rewards_are_the_eeth_ones_times_the_rate():
    # week 2024-10-06 .. 10-12: 0.179 EIGEN per eETH (eigen_earned / all eETH: 358,681 / 2,005,754 = 0.1788)
    raw = pl.read_csv(SHARED / "etherfi-eigen-rewards" / "eigen_distributions_raw.csv")
    row = raw.filter(pl.col("staking_period_start") == "2024-10-06").row(0, named=True)
    assert row["eigen_earned"] / (row["eth_restaked"] + row["eth_not_restaked"]) == pytest.approx(0.179, abs=5e-4)
    peg = pl.read_csv(SHARED / "lst-peg-dex-vs-oracle-hourly" / "weETH_peg_analysis_2024-01-01_2025-09-18.csv")
    rate = peg.filter(pl.col("timestamp") == "2024-10-06 00:00:00+00:00")["protocol_rate"][0]
    t = T("2024-10-06")
    e = lake.read_series(DATA, "rewards", token="eETH", kind="EIGEN").filter(pl.col("ts") == t)
    w = lake.read_series(DATA, "rewards", token="weETH", kind="EIGEN").filter(pl.col("ts") == t)
    assert e["amount"].to_list() == [0.179] and e["unit"][0].startswith("EIGEN per eETH per week")
    assert w["amount"][0] == pytest.approx(0.179 * rate, rel=1e-12) and "per weETH" in w["unit"][0]
    assert 1.04 < rate < 1.06
    # the last period ends 2025-08-02: a 0 row the day after, nothing extrapolated
    last = lake.read_series(DATA, "rewards", token="weETH", kind="EIGEN").sort("ts").row(-1, named=True)
    assert (last["ts"], last["amount"]) == (T("2025-08-03"), 0.0)


@needs_shared
def test_an_ethfi_top_up_is_spread_over_its_staking_period():
    # 0.248 ETHFI per eETH for 2024-08-15 .. 2024-10-05 (52 days, both ends included): 0.248 / 52 x 7 a week;
    # the next period starts 2024-10-06, the day after, so no 0 row between them
    ethfi = lake.read_series(DATA, "rewards", token="eETH", kind="ETHFI").sort("ts")
    first = ethfi.row(0, named=True)
    assert first["ts"] == T("2024-08-15") and first["amount"] == pytest.approx(0.248 / 52 * 7, rel=1e-12)
    assert ethfi.filter(pl.col("ts") == T("2024-10-06"))["amount"].to_list() == [pytest.approx(0.020)]
    # 2024-10-13 .. 19 then 2024-11-10: a gap, so 0 from 2024-10-20
    assert ethfi.filter(pl.col("ts") == T("2024-10-20"))["amount"].to_list() == [0.0]


@needs_shared
def test_june_2022_is_the_coingecko_ratio_without_the_bad_print():
    cg = SHARED / "coingecko-steth-weth-hourly"
    weth = pl.read_csv(cg / "WETH_usd.csv")
    assert 1655092942430 in weth["timestamp"].to_list()          # the 1,067.63 print is in the vendor file
    # the hours around it in the lake: 1,349 (03:02) and 1,364 (05:03), nothing below 1,300 in between
    usd = lake.read_series(DATA, "prices", base="WETH", quote="USD", start=T("2022-06-13 03:00"),
                           end=T("2022-06-13 06:00"))
    assert usd.height == 2 and usd["price"].min() > 1300 and 1655092942 not in usd["ts"].to_list()
    ratio = lake.read_series(DATA, "prices", base="stETH", quote="WETH", start=T("2022-05-01"), end=T("2022-09-30"))
    xr = lake.read_series(DATA, "exchange_rates", token="stETH", start=T("2022-05-01"), end=T("2022-09-30"))
    market = ratio.join(xr.select("ts", "rate"), on="ts").with_columns(m=pl.col("price") / pl.col("rate"))
    worst = market.sort("m").row(0, named=True)
    # the de-peg: stETH/ETH below 0.95 in mid June 2022 (CoinGecko hourly), back above 0.97 by September
    assert 0.90 < worst["m"] < 0.95 and T("2022-06-10") < worst["ts"] < T("2022-06-25")
    assert market.filter(pl.col("ts") >= T("2022-09-20"))["m"].min() > 0.97


def _run(cfg: Path, out: Path, **ov):
    return backtest.run(cfg, overrides={"run.output": str(out), "run.data": str(DATA), **ov})


@pytest.mark.parametrize("window", [("2024-05-14", "2025-09-18"), ("2022-05-01", "2022-09-30")])
def test_both_book_windows_replay_from_the_bundled_lake(tmp_path, window):
    # real-2024: the E-mode wstETH loop; june-2022: an Aave v2 stETH loop on the lake's (assumed) v2 rates
    if window[0].startswith("2022"):
        import re
        text = (REPO / "examples" / "real-steth-2022-aave-v2.toml").read_text().split("[sweep]")[0]
        text = re.sub(r"^(borrow_rate|supply_rate) .*$", "", text, flags=re.M)      # the lake's v2 rates instead
        cfg, ov = tmp_path / "v2.toml", {"strategy.target_ltv": 0.78}
        cfg.write_text(text)
    else:
        cfg, ov = REPO / "examples" / "loop.toml", {}
    res = _run(cfg, tmp_path, **{"run.start": window[0], "run.end": window[1], **ov})
    s = res["summary"].row(0, named=True)
    lp = res["manifest"]["lake_provenance"]
    assert lp is not None and not lp["synthetic"] and not lp["without_provenance"]
    if window[0].startswith("2022"):
        # the market-oracle loop at 0.78 is liquidated as the de-peg begins (2022-06-10, test_real_replays); the v2 rates read are the assumed ones
        assert s["liq_count"] > 0
        assert "rates/assumed-aave-v2-2022.parquet" in lp["assumed"]
        # 2022 lies wholly before the lake's 2024-25 blocks table: block numbers from the Merge anchor (block
        # 15,537,394 at 1,663,224,179, one per 12 s), not extrapolated back from 2024
        ev = res["events"]
        assert (ev["block"] == 15537394 + (ev["ts"] - 1663224179) // 12).all()
        assert any("Aave v2 2022 rates are assumed" in a for a in lp["assumptions"])
    else:
        assert s["liq_count"] == 0 and np.isfinite(s["net_apy"])
        assert any("E-mode" in a for a in lp["assumptions"]) and not lp["assumed"]


def test_the_solana_example_on_the_bundled_lake_is_its_pinned_synthetic_case():
    # its series in data/ are the synthetic ones, and the Ethereum blocks table is not its clock
    golden = pins.load_golden()["example:solana-msol-loop"]
    with tempfile.TemporaryDirectory() as tmp:
        got = pins.run_case(REPO / "examples" / "solana-msol-loop.toml", {"run.data": str(DATA)}, None, Path(tmp),
                            "solana")
        man = json.loads(next(Path(tmp).glob("*/manifest.json")).read_text())
    assert not compare("solana", golden, got)
    assert "prices/synth-calm-other-chains.parquet" in man["lake_provenance"]["synthetic"]
    assert any(a.startswith("SYNTHETIC") for a in man["lake_provenance"]["assumptions"])


def test_the_real_aave_v3_example_on_the_bundled_lake_is_its_pinned_case():
    # pinned on a lake imported from ../shared/data at test time: data/ holds the same rows for these series
    golden = pins.load_golden()["example:real-aave-v3-lst-loops"]
    with tempfile.TemporaryDirectory() as tmp:
        got = pins.run_case(REPO / "examples" / "real-aave-v3-lst-loops.toml", {"run.data": str(DATA)}, None,
                            Path(tmp), "real-v3")
    assert not compare("real-v3", golden, got)


def test_a_lake_without_provenance_gives_none(tmp_path):
    res = backtest.run(REPO / "tests" / "golden" / "configs" / "loop.toml",
                       overrides={"run.output": str(tmp_path), "run.data": str(synth_lake()), "run.end": "2024-06-02"})
    assert res["manifest"]["lake_provenance"] is None


def test_the_synthetic_lake_is_the_old_bundled_one_bit_for_bit():
    want = json.loads(HASHES.read_text())["files"]
    assert len(want) == 17 and file_hashes(synth_lake()) == want
