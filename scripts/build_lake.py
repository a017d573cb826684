"""Build the bundled lake (data/) from the real history in ../shared/data with the project's own importers.

    python scripts/build_lake.py [--shared ../shared/data] [--into data] [--check]

Every step parses its vendor files with ``backtest.data.sources`` (the code behind ``backtest data import``),
keeps what the lake must hold (the ``keep`` rules below: one source per series and time, so a run never has to
choose), and commits it. The lake is built in a temporary folder next to ``--into`` and swapped in, so a failed
build leaves the old lake as it was. ``data/provenance.json`` lists every file with its source, the vendor
files it came from, its span and the assumptions it carries; a run's manifest repeats the entries of the files
it read (``backtest.data.provenance``). ``--check`` rebuilds into a temporary folder and compares it with
``--into`` file by file (exit 1 on a difference).

The synthetic series for chains without real data (mSOL, stATOM and their debt assets, the ``kamino`` and
``mars`` labels) are copied from ``backtest data synth calm`` and labelled ``synth:calm``; the full synthetic
scenarios are not in this lake (``backtest data synth calm|steth-depeg|rate-spike --into synth``).
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backtest.data import lake as _lake  # noqa: E402
from backtest.data.derive import derive_ratio  # noqa: E402
from backtest.data.lake_write import write_table  # noqa: E402
from backtest.data.sources.commit import commit  # noqa: E402
from backtest.data.sources.registry import normalise  # noqa: E402
from backtest.data.synth import synth  # noqa: E402

PROVENANCE = "provenance.json"


def T(s: str) -> int:
    return int(dt.datetime.fromisoformat(s).replace(tzinfo=dt.timezone.utc).timestamp())


def iso(ts: int) -> str:
    return dt.datetime.fromtimestamp(int(ts), dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


# --------------------------------------------------------------------------------------- the assumptions
# Written where the lake holds a value that is not a vendor's observation, or where a series is cut to keep one
# source per series and time. Each is attached to the files it concerns (provenance.json, run manifests).
A_STETH_REBASE = ("stETH rebases at a constant 4 %/yr over 2021-2023: the shared data has no stETH exchange "
                  "rate before 2024, so exchange_rates stETH/ETH is exp(0.04 t) from the first CoinGecko hour and "
                  "prices stETH/WETH is the CoinGecko stETH/USD / WETH/USD ratio in shares (ratio x rate); Lido's "
                  "APR in 2022 was ~4 %")
A_V2_RATES = ("Aave v2 2022 rates are assumed constants (no 2022 Aave v2 rate history in the shared data): WETH "
              "variable borrow 3 % apr (inside the 1-4.8 % the earliest documented WETH model gives below the "
              "kink), WETH supply 0.2 % apr, stETH supply 0 (stETH could not be borrowed on Aave v2, its aToken "
              "earned nothing); the values examples/real-steth-2022-aave-v2.toml sets in its config")
A_V2_PARAMS = ("Aave v2 stETH risk parameters held constant over 2021-2023 at LTV 69 %, LT 81 %, bonus 7.5 % "
               "(backtest/params.py's dated defaults for the de-peg; the real history of those parameters is not "
               "in the shared data)")
A_EMODE = ("No E-mode (eth-correlated) parameters in the lake: the Aave v3 snapshots hold only the non-E-mode "
           "values, so an E-mode run uses backtest/params.py's defaults (93 / 95 / 1 %)")
A_DAILY_RATES = ("AaveScan rates are one snapshot a day (00:00 UTC), held for the whole day by the replay")
A_PEG_MEDIAN = ("The DEX price is a 24 h rolling median of the hourly pool close (intraday wicks smoothed away); "
                "the exchange rate is Aave's daily oracle value linearly interpolated to hours")
A_GAS_DAILY = ("Before 2024 gas is Etherscan's daily average gas price paid (base fee + tip, in base_fee_gwei; "
               "priority fee null); the Etherscan rows from 2024-01-01 on are left out, the hourly samples cover "
               "that time")
A_FROM_2020 = ("Etherscan's daily series are kept from 2020-01-01 (the lake serves 2021 on; its 2015 rows hold "
               "the exchange's first erratic days)")
A_SNAPSHOT_CUT = ("Aave v3 snapshot rates of WETH, wstETH and weETH are kept only after the last AaveScan row "
                  "(2025-09-29 00:00), so one source holds each day; the other snapshot assets are kept whole")
A_CURVE_AMP = ("The Curve stETH/ETH pool's amplification A is not in the file: amp = 50 is assumed (the value the "
               "project's 2022 example uses for its stableswap slippage); reserves are ~daily")
A_CURVE_VP = ("The Curve LP token's virtual price is stored as exchange_rates steCRV/ETH (the pool's "
              "get_virtual_price, ETH per LP token): the liquidity table has no column for it")
A_WEETH_REWARDS = ("ether.fi reward amounts are published per eETH (eigen_per_eeth_weekly = eigen_earned / "
                   "(eth_restaked + eth_not_restaked), e.g. 358,681 / 2,005,754 = 0.179 for 2024-10-06..12): the "
                   "rows with token eETH are as published; the rows with token weETH are the same amounts x the "
                   "weETH->eETH rate at the row's time (peg-analysis weETH/ETH, 1 eETH = 1 ETH), i.e. per weETH "
                   "held; the APY chart rows (Base, Reward) are yields on value and are the same for both tokens")
A_NO_WETH_CG = ("CoinGecko 2025-26 ETH and WETH rows are left out (ETH/USD is Etherscan's, WETH/USD AaveScan's "
                "oracle price); the LST/LRT USD prices are kept, their ETH price is derived at run time "
                "(TOKEN/USD / ETH/USD)")
A_NO_COMET_WETH = ("Compound v3's WETH/USD is kept only as oracle_prices (compound-v3); prices WETH/USD is "
                   "CoinGecko's until 2023-02 and AaveScan's from 2024-01, one source per time")
A_WETH_PRINT = ("CoinGecko's WETH/USD print of 1,067.63 at 2022-06-13 04:02 (the hours around it: 1,349 and 1,364) "
                "is left out as a bad print; with it the derived stETH/WETH ratio jumps to 1.28 for one hour")
A_REWARD_HELD = ("The eETH Reward APY cells are empty from 2025-06-26 to 2025-07-15 (20 days; Base is present): "
                 "the last value (0.45 %, 2025-06-25) is held over them, as an ASOF replay would")
A_REWARD_PERIODS = ("ether.fi EIGEN and ETHFI amounts are dated at the start of the staking period they pay for "
                    "(the importer dates them at its end / the top-up day) and end with a 0 row after the period, so "
                    "a replay credits each period's amount during that period, nothing in the gaps between "
                    "periods and nothing after the last one (2025-08-02 for EIGEN, 2024-12-08 for ETHFI: "
                    "later rewards are not in the shared data, not extrapolated); an ETHFI top-up (ETHFI per eETH "
                    "for its whole staking period) is spread evenly over that period as a weekly amount")
A_REWARD_PRICES = ("ASSUMED prices: the shared data has no EIGEN or ETHFI market price; prices EIGEN/USD = 3.5 and "
                   "ETHFI/USD = 2.8, held constant, are the constants the ether.fi dataset's author used "
                   "(etherfi_seasonal_rewards, eigen_price_usd / ethfi_price_usd); value the rewards at your "
                   "own price (strategy.rewards) or show the result without them")
A_SYNTH_CHAINS = ("SYNTHETIC: no real mSOL or stATOM history in the shared data; these daily series are copied from "
                  "`backtest data synth calm` (fixed seeds, 2024-06-01..2025-06-01), source synth:calm; the "
                  "kamino / mars rates are not those protocols' rates")


# ---------------------------------------------------------------------------------------------- steps
def _drop_items(items, pred):
    return [it for it in items if not pred(it)]


def _trim(items, keep_row):
    """Keep the rows of every item for which ``keep_row(item)`` (a polars expression or None) holds."""
    out = []
    for it in items:
        expr = keep_row(it)
        if expr is not None:
            it.df = it.df.filter(expr)
        if it.df.height:
            out.append(it)
    return out


def build(shared: Path, lake: Path) -> list[dict]:
    """Import everything into the empty folder ``lake``; return the provenance entries (one per step)."""
    steps: list[dict] = []

    def step(name: str, source: str, files: list[Path], what: str, assumptions=(), sets=None, keep=None):
        items = normalise(source, files, sets=sets)
        if keep is not None:
            items = keep(items)
        report = commit(lake, items)
        steps.append({"step": name, "importer": f"backtest data import {source}"
                      + "".join(f" --set {k}={v}" for k, v in (sets or {}).items()),
                      "inputs": [str(f.relative_to(shared)) for f in files], "what": what,
                      "assumptions": list(assumptions), "notes": sorted(set(report.notes)),
                      "files": sorted({str(Path(p).relative_to(lake)) for p in report})})

    def derived(name: str, fn, what: str, assumptions=()):
        before = _files(lake)
        fn()
        steps.append({"step": name, "importer": "derived in scripts/build_lake.py", "inputs": [], "what": what,
                      "assumptions": list(assumptions), "notes": [], "files": sorted(_files(lake) - before)})

    cg, es = shared / "coingecko-steth-weth-hourly", shared / "etherscan-daily"
    # 1. June 2022: CoinGecko hourly stETH and WETH in USD, the stETH/WETH ratio in shares
    step("coingecko-2022", "coingecko", [cg / "stETH_usd.csv", cg / "WETH_usd.csv"],
         "hourly stETH/USD and WETH/USD 2021-01..2023-02 (the June 2022 de-peg)", [A_WETH_PRINT],
         keep=_drop_weth_print)
    derived("steth-weth-ratio", lambda: derive_ratio(lake, "stETH", "WETH", rebase_apr=0.04),
            "prices stETH/WETH (hourly ratio of the two CoinGecko series, in shares) and exchange_rates stETH/ETH",
            [A_STETH_REBASE])
    step("curve-steth-pool", "curve", [shared / "curve-steth-pool-balances-2021-2022" / "stETH.csv"],
         "Curve stETH/ETH pool reserves (liquidity, ~daily 2021-09..2022-06)", [A_CURVE_AMP],
         sets={"amp": 50.0})
    derived("curve-virtual-price", lambda: _curve_virtual_price(shared, lake),
            "exchange_rates steCRV/ETH: the pool's virtual price", [A_CURVE_VP])
    derived("aave-v2-2022", lambda: _aave_v2_2022(lake), "Aave v2 WETH / stETH rates and stETH params, 2021-2023",
            [A_V2_RATES, A_V2_PARAMS])
    # 2. 2024-25: AaveScan daily rates, indices and oracle prices; the hourly DEX / oracle peg series; hourly gas
    step("aavescan", "aavescan", sorted((shared / "aavescan-v3-eth-rates-daily").glob("*.csv")),
         "Aave v3 WETH / wstETH / weETH daily rates, indices, utilization, oracle USD prices (WETH/USD), blocks",
         [A_DAILY_RATES, A_EMODE])
    step("peg-hourly", "peg-hourly", sorted((shared / "lst-peg-dex-vs-oracle-hourly").glob("*.csv")),
         "hourly wstETH/WETH and weETH/WETH DEX prices and their exchange rates (Aave oracle), 2024-05..2025-09",
         [A_PEG_MEDIAN])
    step("gas-hourly", "gas-hourly", sorted((shared / "eth-gas-hourly-2024-2025").glob("*.csv")),
         "hourly base fee and median priority fee (exact block times), 2024-01..2025-09")
    first_hourly = T("2024-01-01")
    step("etherscan", "etherscan", [es / "export-AvgGasPrice.csv", es / "export-EtherPrice.csv"],
         "daily ETH/USD 2020..2026 and daily average gas price 2020..2023", [A_GAS_DAILY, A_FROM_2020],
         keep=lambda items: _trim(items, lambda it: (pl.col("ts") >= T("2020-01-01"))
                                  & ((pl.col("ts") < first_hourly) if it.table == "gas" else True)))
    # 3. rETH, Compound's oracles, ether.fi rewards, 2025-26 prices and Aave snapshots
    step("rocketpool", "rocketpool", sorted((shared / "rocketpool-reth-rate").glob("*.csv")),
         "rETH/ETH exchange rate from Rocket Pool's balance reports, ~daily 2021-10..2024-09")
    step("comet-oracles", "comet", sorted((shared / "compound-v3-oracle-prices-hourly").glob("*.csv")),
         "Compound v3 oracle prices (WETH, wstETH in USD; cbETH, rETH, weETH, ezETH, rsETH, osETH, rswETH in ETH), "
         "~hourly 2022-08..2024-11", [A_NO_COMET_WETH],
         keep=lambda items: _drop_items(items, lambda it: it.table == "prices"))
    ef = shared / "etherfi-eigen-rewards"
    ef_files = [ef / "bar-chart-supply-apy-2025-09-29-eeth.csv", ef / "eigen_distributions_raw.csv",
                ef / "ethfi_topups_raw.csv"]
    step("etherfi-eeth", "etherfi", ef_files, "ether.fi eETH APY (base, reward), EIGEN and ETHFI per eETH, "
         "as published", [A_WEETH_REWARDS, A_REWARD_HELD, A_REWARD_PERIODS], sets={"token": "eETH"},
         keep=lambda items: _reward_periods(_hold_reward_gaps(items), ef))
    step("etherfi-weeth", "etherfi", ef_files, "the same rewards per weETH held",
         [A_WEETH_REWARDS, A_REWARD_HELD, A_REWARD_PERIODS], sets={"token": "weETH"},
         keep=lambda items: _per_weeth(_reward_periods(_hold_reward_gaps(items), ef), lake))
    derived("reward-token-prices", lambda: _reward_prices(lake), "ASSUMED constant EIGEN/USD and ETHFI/USD",
            [A_REWARD_PRICES])
    step("coingecko-2025-26", "coingecko", [shared / "coingecko-lst-lrt-usd-daily-2025-26" / "price_history.csv"],
         "daily USD prices of LSTs, LRTs and other Aave assets, 2025-02..2026-02", [A_NO_WETH_CG],
         keep=lambda items: _drop_items(items, lambda it: it.df["base"][0] in ("ETH", "WETH")))
    last_aavescan = int(_lake.read_table(lake, "rates").filter(pl.col("protocol") == "aave-v3")["ts"].max())
    assert iso(last_aavescan) == "2025-09-29 00:00", "A_SNAPSHOT_CUT names the last AaveScan day"
    step("aave-v3-snapshots", "aave-snapshots", sorted((shared / "aave-v3-daily-snapshots-2025").glob("*.csv")),
         "Aave v3 daily reserve snapshots: rates and non-E-mode risk parameters of 10 ETH-like assets, "
         "2025-07..2026-08", [A_SNAPSHOT_CUT, A_EMODE],
         keep=lambda items: _trim(items, lambda it: (pl.col("ts") > last_aavescan)
                                  if it.table == "rates" and it.df["asset"][0] in ("WETH", "wstETH", "weETH")
                                  else None))
    # 4. synthetic, labelled: the other chains' series
    derived("synth-other-chains", lambda: _synth_chains(lake),
            "SYNTHETIC daily mSOL/SOL, stATOM/ATOM rates and prices, SOL/USD, ATOM/USD, kamino SOL and mars ATOM "
            "rates (synth:calm)", [A_SYNTH_CHAINS])
    return steps


BAD_WETH_PRINT = 1655092942          # 2022-06-13 04:02:22, CoinGecko WETH/USD 1,067.63


def _drop_weth_print(items):
    for it in items:
        if it.table == "prices" and it.df["base"][0] == "WETH":
            df = it.df.sort("ts")
            i = df["ts"].to_list().index(BAD_WETH_PRINT)
            p = df["price"]
            # the row is a print far from both neighbours (> 15 %), not a move
            assert p[i] < 0.85 * p[i - 1] and p[i] < 0.85 * p[i + 1], "the WETH print is no outlier"
            it.df = df.filter(pl.col("ts") != BAD_WETH_PRINT)
    return items


def _hold_reward_gaps(items):
    """Reward APY rows on every day from the first to the last, the last value held over empty cells."""
    for it in items:
        if it.table == "rewards" and it.df["kind"][0] == "reward_apy":
            df = it.df.sort("ts")
            grid = pl.DataFrame({"ts": pl.int_range(df["ts"].min(), df["ts"].max() + 1, 86400, eager=True)})
            it.df = grid.join(df, on="ts", how="left").select(df.columns).with_columns(pl.all().forward_fill())
    return items


def _reward_periods(items, ef: Path):
    """EIGEN / ETHFI amounts re-dated to their staking periods (from the same files' period columns), a weekly
    amount while a period runs and 0 between periods and after the last."""
    from backtest.data.sources.toolkit import numeric, parse_times, read_text_table
    tables = {"EIGEN": ("eigen_distributions_raw.csv", "eigen_per_eeth_weekly", 1.0),
              "ETHFI": ("ethfi_topups_raw.csv", "ethfi_per_eeth_distributed", None)}
    for it in items:
        kind = it.df["kind"][0]
        if it.table != "rewards" or kind not in tables:
            continue
        name, col, weekly = tables[kind]
        path = ef / name
        df = read_text_table(path, ["staking_period_start", "staking_period_end", col])
        start = parse_times(df["staking_period_start"], path, "staking_period_start").to_list()
        end = [t + 86400 for t in parse_times(df["staking_period_end"], path, "staking_period_end").to_list()]
        amount = numeric(df, path, col).to_list()
        rows = []
        for i, (a, b, v) in enumerate(zip(start, end, amount)):
            per_week = v if weekly else v / ((b - a) / 86400) * 7       # a top-up spread over its period
            rows.append((a, per_week))
            if i + 1 == len(start) or start[i + 1] > b:
                rows.append((b, 0.0))
        unit = (f"{kind} per {it.df['token'][0]} per week" + (" (as published)" if weekly else
                                                            " (top-up spread over its staking period)"))
        it.df = pl.DataFrame({"ts": [r[0] for r in rows], "token": it.df["token"][0], "kind": kind,
                              "apr": None, "amount": [r[1] for r in rows], "unit": unit},
                             schema_overrides={"apr": pl.Float64}).unique("ts", keep="last").sort("ts")
    return items


def _reward_prices(lake: Path) -> None:
    ts = list(range(T("2024-03-01"), T("2025-10-01"), 86400))
    df = pl.DataFrame({"ts": ts * 2, "base": ["EIGEN"] * len(ts) + ["ETHFI"] * len(ts), "quote": "USD",
                       "price": [3.5] * len(ts) + [2.8] * len(ts), "source": "assumed:etherfi-dataset-constant"})
    write_table(lake, "prices", df, "assumed-EIGEN-ETHFI-USD", metadata={"source": "assumed:etherfi-dataset-constant"})


def _files(lake: Path) -> set[str]:
    return {str(p.relative_to(lake)) for p in lake.rglob("*.parquet")}


def _curve_virtual_price(shared: Path, lake: Path) -> None:
    from backtest.data.sources.toolkit import numeric, parse_times, read_text_table
    path = shared / "curve-steth-pool-balances-2021-2022" / "stETH.csv"
    df = read_text_table(path, ["UNIX TimeStamp", "Virtual Price"])
    xr = pl.DataFrame({"ts": parse_times(df["UNIX TimeStamp"], path, "UNIX TimeStamp", "s"), "token": "steCRV",
                       "underlying": "ETH", "rate": numeric(df, path, "Virtual Price") * 1e-18,
                       "source": "curve:virtual-price"}).sort("ts")
    write_table(lake, "exchange_rates", xr, "curve-steCRV-ETH",
                metadata={"source": "curve:virtual-price", "file": path.name})


def _aave_v2_2022(lake: Path) -> None:
    # daily points over the CoinGecko span, so the 3-day coverage rule holds anywhere in 2021-01..2023-02
    ts = pl.Series("ts", list(range(T("2021-01-01"), T("2023-03-01"), 86400)), dtype=pl.Int64)
    n = len(ts)
    rates = pl.DataFrame({"ts": pl.concat([ts, ts]), "protocol": "aave-v2", "asset": ["WETH"] * n + ["stETH"] * n,
                          "supply_apr": [0.002] * n + [0.0] * n, "borrow_apr": [0.03] * n + [0.0] * n})
    write_table(lake, "rates", rates, "assumed-aave-v2-2022", metadata={"source": "assumed:aave-v2-2022"})
    params = pl.DataFrame({"ts": [T("2021-01-01")], "protocol": "aave-v2", "asset": "stETH", "emode": None,
                           "ltv": 0.69, "liquidation_threshold": 0.81, "liquidation_bonus": 0.075},
                          schema_overrides={"emode": pl.String})
    write_table(lake, "market_params", params, "assumed-aave-v2-2022", metadata={"source": "assumed:aave-v2-2022"})


def _per_weeth(items, lake: Path):
    """The eETH amounts x the weETH->eETH rate (peg-analysis weETH/ETH, ASOF at or before the row; the first
    rate before the series starts): per weETH held. APR rows are unchanged (a yield on value)."""
    xr = _lake.read_series(lake, "exchange_rates", token="weETH").select("ts", "rate").sort("ts")
    out = []
    for it in items:
        if it.df["amount"].is_not_null().any():
            j = it.df.sort("ts").join_asof(xr, on="ts", strategy="backward")
            j = j.with_columns(pl.col("rate").fill_null(xr["rate"][0]))
            it.df = j.with_columns((pl.col("amount") * pl.col("rate")).alias("amount"),
                                   pl.col("unit").str.replace("per eETH", "per weETH")).drop("rate")
        it.name = it.name.replace("eETH", "weETH") if "weETH" not in it.name else it.name
        out.append(it)
    return out


#: steps whose values are assumptions, not observations (provenance "assumed": true)
ASSUMED_STEPS = ("aave-v2-2022", "steth-weth-ratio", "reward-token-prices")
SYNTH_CHAIN_ASSETS = ("mSOL", "SOL", "stATOM", "ATOM")


def _synth_chains(lake: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="synth-") as tmp:
        synth("calm", tmp)
        filters = {"prices": pl.col("base").is_in(SYNTH_CHAIN_ASSETS),
                   "exchange_rates": pl.col("token").is_in(SYNTH_CHAIN_ASSETS),
                   "rates": pl.col("protocol").is_in(["kamino", "mars"])}
        for table, expr in filters.items():
            df = _lake.read_table(tmp, table).filter(expr)
            write_table(lake, table, df, "synth-calm-other-chains", metadata={"source": "synth:calm"})


# ------------------------------------------------------------------------------------------ provenance
def provenance(lake: Path, steps: list[dict]) -> dict:
    """The machine-readable provenance: per Parquet file its table, series, span, rows, sha256 and the step
    (source, vendor files, assumptions) that wrote it; and the lake's assumptions by id."""
    files = {}
    for st in steps:
        for rel in st["files"]:
            df = pl.read_parquet(lake / rel)
            table = rel.split("/")[0]
            keys = [k for k in _lake.KEYS[table] if k in df.columns]
            series = (sorted(":".join(str(v) for v in r) for r in df.select(keys).unique().iter_rows())
                      if keys else [table])
            files[rel] = {"table": table, "step": st["step"], "series": series, "rows": df.height,
                          "first": iso(df["ts"].min()), "last": iso(df["ts"].max()),
                          "synthetic": st["step"].startswith("synth"),
                          "assumed": st["step"] in ASSUMED_STEPS,
                          "sha256": hashlib.sha256((lake / rel).read_bytes()).hexdigest()}
    return {"format": "backtest lake provenance", "built_by": "scripts/build_lake.py",
            "inputs_root": "../shared/data", "steps": steps, "files": dict(sorted(files.items()))}


def write_lake(shared: Path, dest: Path) -> Path:
    """Build into a fresh folder beside ``dest`` and swap it in; data/README.md is kept."""
    dest = dest.resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.build-", dir=dest.parent))
    try:
        steps = build(shared, tmp)
        prov = provenance(tmp, steps)
        (tmp / PROVENANCE).write_text(json.dumps(prov, indent=1, sort_keys=False) + "\n")
        if (dest / "README.md").is_file():
            shutil.copy2(dest / "README.md", tmp / "README.md")
        old = dest.with_name(f".{dest.name}.old")
        if dest.exists():
            shutil.rmtree(old, ignore_errors=True)
            dest.rename(old)
        tmp.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--into", type=Path, default=REPO / "data")
    ap.add_argument("--check", action="store_true", help="rebuild in a temporary folder and compare with --into")
    a = ap.parse_args(argv)
    if not a.shared.is_dir():
        print(f"{a.shared}: not found (the real data, ../shared/data)", file=sys.stderr)
        return 2
    if a.check:
        with tempfile.TemporaryDirectory(prefix="lake-check-") as tmp:
            fresh = write_lake(a.shared, Path(tmp) / "data")
            want = {p: (fresh / p).read_bytes() for p in sorted(_files(fresh)) + [PROVENANCE]}
            have = {p: (a.into / p).read_bytes() for p in sorted(_files(a.into)) + [PROVENANCE]
                    if (a.into / p).is_file()}
            bad = sorted(p for p in set(want) | set(have) if want.get(p) != have.get(p))
            for p in bad:
                print(f"differs: {p}")
            print(f"{len(want)} files, {len(bad)} differ")
            return 1 if bad else 0
    out = write_lake(a.shared, a.into)
    size = sum(p.stat().st_size for p in out.rglob("*.parquet"))
    print(f"wrote {out} ({len(_files(out))} Parquet files, {size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
