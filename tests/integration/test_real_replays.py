"""Real-history replays over ../shared/data, run from the example configs (skipped only when it is absent).

(1) ``examples/real-aave-v3-lst-loops.toml``: 5-step wstETH/WETH and weETH/WETH loops at target LTV 0.80 and
0.90 in Aave v3's ETH-correlated E-mode, 2024-05-14 -> 2025-09-18, on the real AaveScan daily rates (WETH
borrow, wstETH / weETH supply), the hourly DEX price and Aave oracle rate of the peg files (``import_peg_hourly``
on each token's file) and the hourly gas samples. Oracle: the exchange rate (Aave's since 2023).

(2) ``examples/real-steth-2022-aave-v2.toml``: the June 2022 stETH de-peg on Aave v2 -- stETH/WETH loops
(10 steps) priced by the stETH/ETH market price (CoinGecko stETH/USD ÷ WETH/USD, floored to the hour and
inner-joined), stETH LT 81 % / bonus 7.5 % / close factor 50 %, swept over the target LTV 0.60 -> 0.80, with
Etherscan's daily average gas price. ASSUMPTIONS, because the shared data has no 2022 Aave v2 rates and no
2022 stETH exchange rate:

- stETH's exchange rate grows at a constant 4 %/yr (Lido's APR in 2022 was ~4 %), written into the test lake
  by ``derive_ratio(..., rebase_apr=0.04)``: stETH is accounted in shares (price = market ratio x rate), so
  the rebase is staking yield and price / rate is still the market ratio;
- WETH variable borrow APR 3 % (``market.borrow_rate``): the earliest documented WETH rate model in
  PROTOCOLS.md (base 1 %, slope1 3.8 % up to the 80 % kink) spans 1-4.8 % below the kink, and
  ``test_the_liquidated_loops_do_not_depend_on_the_assumed_borrow_rate`` shows that the set of liquidated
  loops is the same at 1 % and at 4.8 %;
- stETH supply APR 0 (``market.supply_rate``): stETH was not borrowable on Aave v2;
- ``market.ltv = 0.80`` so that the sweep can go past v2's 69 % max LTV: a target above 0.69 stands for a
  position that was already that levered on 1 May 2022.

The figures asserted here are the ones quoted in README.md ("Real data") and the issue's closing note.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

import backtest
from backtest.cli import cli
from backtest.data.derive import derive_ratio
from backtest.data.sources.aavescan import import_aavescan
from backtest.data.sources.gas_hourly import import_gas_hourly
from backtest.data.sources.peg_hourly import import_peg_hourly
from backtest.data.sources.registry import import_files

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
EXAMPLES = REPO / "examples"
pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent")


def day(ts: int) -> str:
    return dt.datetime.fromtimestamp(int(ts), dt.timezone.utc).strftime("%Y-%m-%d")


# ============================================================================================ (1) 2024-25
@pytest.fixture(scope="module")
def lst_loops(tmp_path_factory):
    lk = tmp_path_factory.mktemp("real-2024")
    aavescan = SHARED / "aavescan-v3-eth-rates-daily"
    for f in sorted(aavescan.glob("*.csv")):            # WETH, weETH, wstETH
        import_aavescan(f, lk)
    for token in ("wstETH", "weETH"):
        peg = SHARED / "lst-peg-dex-vs-oracle-hourly" / f"{token}_peg_analysis_2024-01-01_2025-09-18.csv"
        import_peg_hourly(peg, lk)
    import_gas_hourly(SHARED / "eth-gas-hourly-2024-2025" / "ethereum_gas_prices_2024-01-01_2025-09-26.csv", lk)
    out = tmp_path_factory.mktemp("real-2024-out")
    res = backtest.run(EXAMPLES / "real-aave-v3-lst-loops.toml",
                       overrides={"run.data": str(lk), "run.output": str(out)}, write=True)
    s = res["summary"].with_columns(pl.col("market.collateral").alias("coll"),
                                    pl.col("strategy.target_ltv").alias("ltv"))
    return res, {(r["coll"], round(r["ltv"], 2)): r for r in s.iter_rows(named=True)}


def test_lst_loops_survive_with_a_wide_margin(lst_loops):
    res, rows = lst_loops
    assert set(rows) == {("wstETH", 0.8), ("wstETH", 0.9), ("weETH", 0.8), ("weETH", 0.9)}
    for r in rows.values():
        assert r["liq_count"] == 0 and r["bad_debt"] == 0.0
        assert r["gas_cost"] > 0                                   # paid at the real hourly gas price
    # min HF: 1.303 / 1.208 (wstETH at 0.80 / 0.90), 1.303 / 1.208 (weETH)
    assert rows[("wstETH", 0.8)]["min_hf"] == pytest.approx(1.3034, abs=5e-4)
    assert rows[("wstETH", 0.9)]["min_hf"] == pytest.approx(1.2079, abs=5e-4)
    assert rows[("weETH", 0.9)]["min_hf"] == pytest.approx(1.2081, abs=5e-4)
    manifest = res["manifest"]
    keys = {(s["table"], s["key"]) for s in manifest["series"]}
    assert ("prices", "weETH/WETH") in keys and ("exchange_rates", "weETH") in keys
    assert ("gas", "base_fee_gwei+priority_fee_gwei") in keys


def test_wsteth_loops_beat_holding_and_weeth_loops_do_not(lst_loops):
    _, rows = lst_loops
    w8, w9 = rows[("wstETH", 0.8)], rows[("wstETH", 0.9)]
    e8, e9 = rows[("weETH", 0.8)], rows[("weETH", 0.9)]
    # wstETH: net APY 3.56 % / 3.78 % against 2.93 % for holding: the carry (staking ~2.9 % vs WETH ~2.6 %)
    # is thin, so 3.7-4.7x leverage adds well under one point
    assert w8["net_apy"] == pytest.approx(0.0356, abs=1e-3) and w9["net_apy"] == pytest.approx(0.0378, abs=1e-3)
    assert w9["net_apy"] > w8["net_apy"] > w8["hold_apy"] == pytest.approx(0.0293, abs=1e-3)
    # weETH: its staking yield (~2.65 %, restaking rewards not modelled) hardly covers the WETH borrow rate,
    # so leverage loses to holding, and more leverage loses more: 2.54 % / 2.48 % against 2.65 %
    assert e8["net_apy"] == pytest.approx(0.0254, abs=1e-3) and e9["net_apy"] == pytest.approx(0.0248, abs=1e-3)
    assert e9["net_apy"] < e8["net_apy"] < e8["hold_apy"]


# ============================================================================================ (2) June 2022
@pytest.fixture(scope="module")
def lake_2022(tmp_path_factory) -> Path:
    lk = tmp_path_factory.mktemp("real-2022")
    cg = SHARED / "coingecko-steth-weth-hourly"
    import_files("coingecko", [cg / "stETH_usd.csv", cg / "WETH_usd.csv"], lk)
    derive_ratio(lk, "stETH", "WETH", rebase_apr=0.04)
    es = SHARED / "etherscan-daily"
    import_files("etherscan", [es / "export-AvgGasPrice.csv", es / "export-EtherPrice.csv"], lk)
    return lk


@pytest.fixture(scope="module")
def depeg(lake_2022, tmp_path_factory):
    out = tmp_path_factory.mktemp("real-2022-out")
    r = CliRunner().invoke(cli, ["run", str(EXAMPLES / "real-steth-2022-aave-v2.toml"), "--set",
                                 f'run.data="{lake_2022}"', "--set", f'run.output="{out}"'])
    assert r.exit_code == 0, r.output
    root = out / "real-steth-2022-aave-v2"
    return pl.read_parquet(root / "summary.parquet"), pl.read_parquet(root / "events.parquet"), r.output


def test_the_june_2022_depeg_sweep(depeg):
    s, ev, output = depeg
    assert "11 configuration(s)" in output
    ltv = s["strategy.target_ltv"].round(2).to_list()
    assert ltv == [0.6, 0.62, 0.64, 0.66, 0.68, 0.7, 0.72, 0.74, 0.76, 0.78, 0.8]
    liq = dict(zip(ltv, s["liq_count"].to_list()))
    # every loop up to 0.76 survives; 0.78 and 0.80 are liquidated once each (50 % close factor)
    assert [k for k, n in liq.items() if n] == [0.78, 0.8] and liq[0.78] == liq[0.8] == 1
    assert (s["bad_debt"] == 0).all()
    # the survivors' lowest HF is at the de-peg's hourly low, 2022-06-18 20:00-21:00 (stETH/ETH 0.9306)
    ok = s.filter(pl.col("liq_count") == 0)
    assert {day(t) for t in ok["min_hf_ts"]} == {"2022-06-18"}
    hf = dict(zip(ltv, s["min_hf"].to_list()))
    # the loops Aave v2 let you open (target <= 0.69) kept HF >= 1.117; 0.76 came within 0.9 % of liquidation
    assert hf[0.68] == pytest.approx(1.1171, abs=1e-3) and hf[0.6] == pytest.approx(1.2605, abs=1e-3)
    assert 1.0 < hf[0.76] < 1.01
    # when: 0.80 on the Terra/UST wobble (2022-05-11, stETH/ETH ~0.95), 0.78 as the de-peg began (06-10)
    events = ev.filter(pl.col("kind") == "liquidation").join(
        s.select("config_id", pl.col("strategy.target_ltv").round(2).alias("ltv")), on="config_id")
    when = {r["ltv"]: dt.datetime.fromtimestamp(r["ts"], dt.timezone.utc) for r in events.iter_rows(named=True)}
    assert when[0.8].strftime("%Y-%m-%d %H") == "2022-05-11 21"
    assert when[0.78].strftime("%Y-%m-%d %H") == "2022-06-10 22"
    # a liquidation costs the loop about a quarter of its equity (-47.9 % / -44.9 % annualised over 5 months);
    # the survivors end near break-even at the market price (-0.9 % to -1.1 %): stETH/ETH closed September
    # below its 1 May level, and opening on 1 May 2022 paid 1.47 ETH of gas (Etherscan's average that day:
    # 474.6 gwei, the Otherside mint) for 600k + 10 x 250k gas units
    net = dict(zip(ltv, s["net_apy"].to_list()))
    assert net[0.78] == pytest.approx(-0.479, abs=5e-3) and net[0.8] == pytest.approx(-0.449, abs=5e-3)
    assert all(-0.012 < net[k] < -0.008 for k in ltv[:9])
    assert s["gas_cost"][0] == pytest.approx(3.1e6 * 474.571337241e-9, rel=1e-3)


def test_the_liquidated_loops_do_not_depend_on_the_assumed_borrow_rate(lake_2022, tmp_path):
    for rate in (0.01, 0.048):
        res = backtest.run(EXAMPLES / "real-steth-2022-aave-v2.toml",
                           overrides={"run.data": str(lake_2022), "run.output": str(tmp_path),
                                      "market.borrow_rate": rate}, write=False)
        s = res["summary"]
        liquidated = s.filter(pl.col("liq_count") > 0)["strategy.target_ltv"].round(2).to_list()
        assert liquidated == [0.78, 0.8], rate


def test_the_june_2022_episodes(lake_2022, tmp_path):
    # README's episode table (threshold 2 %): six episodes, the deepest 6.94 % at 2022-06-18 20:00; each
    # liquidated loop loses in one episode, at fair value well beyond the bonus
    r = backtest.run(EXAMPLES / "real-steth-2022-aave-v2.toml",
                     overrides={"run.data": str(lake_2022), "run.output": str(tmp_path), "episodes.threshold": 0.02})
    ep, s = r["episodes"], r["summary"]
    eps = ep.unique("episode_id").sort("episode_id")
    assert eps.height == 6 and (eps["episode_kind"] == "market").all()
    deep = eps.sort("worst_discount").row(-1, named=True)
    assert round(deep["worst_discount"], 4) == 0.0694 and deep["worst_utc"].strftime("%Y-%m-%d %H:%M") == \
        "2022-06-18 20:00" and day(deep["start_ts"]) == "2022-06-02"
    by = ep.join(s.select("config_id", "strategy.target_ltv"), on="config_id")
    liq = by.filter(pl.col("episode_liq_count") > 0).sort("strategy.target_ltv")
    assert liq["strategy.target_ltv"].to_list() == [0.78, 0.80]
    assert [day(t) for t in liq["start_ts"]] == ["2022-06-02", "2022-05-11"]
    for row in liq.iter_rows(named=True):
        assert 1.5 < row["episode_liq_loss_rate"] / row["episode_liq_penalty"] < 2.0
        assert row["episode_liq_loss_market"] == pytest.approx(row["episode_liq_penalty"], rel=1e-12)  # market oracle
        assert row["episode_pnl"] < -19 and row["hold_pnl"] > -3
    # the summary's totals are the episodes' (every liquidation fell inside one)
    for cid in liq["config_id"]:
        sm = s.filter(pl.col("config_id") == cid).row(0, named=True)
        e = liq.filter(pl.col("config_id") == cid).row(0, named=True)
        assert sm["liq_loss_rate"] == e["episode_liq_loss_rate"] and sm["liq_penalty"] == e["episode_liq_penalty"]
