"""What the engine gives today, pinned before the position / market / venue redesign (issue 10).

``digest(result_folder)`` reduces a result set to, per table (summary, events, timeseries), its row count
and, per column, the dtype and a sha256 of the values' exact bits; the summary's rows are also kept as
values, so a change shows which number moved. ``cases()`` lists what is pinned: every example config on
the bundled lake, the two real-history examples on lakes imported from ../shared/data, and a matrix of
venue x strategy x oracle x automation configurations on the three synthetic lakes.

A pin is a tripwire, not a derivation: it says the redesign changed no result, not that a result is right
(the rule tests say that). Columns added later are not compared; a pinned column must stay bit-identical.
Rows of kinds added later are not compared either: the events digest leaves out the rows of LATER_KINDS (the
depeg_start / depeg_end rows derived from the episodes), so the rows the engine gave keep their pin.
``python scripts/pin_outputs.py`` rewrites tests/golden/outputs.json (only before a redesign, on purpose).
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
GOLDEN = REPO / "tests" / "golden" / "outputs.json"
CONFIGS = REPO / "tests" / "golden" / "configs"      # pinned configs of examples that changed since
#: examples that replay the bundled real lake (data/): pinned as ``real:NAME`` on it
REAL_BUNDLED = ("loop",)
# columns that are not results: where the run happened
VOLATILE: set[str] = set()
# event kinds added to events.parquet after the pins (backtest.schema.DERIVED_EVENT_KINDS): not compared
LATER_KINDS = ("depeg_start", "depeg_end")


def _column_hash(s: pl.Series) -> str:
    h = hashlib.sha256()
    if s.dtype.is_numeric() or s.dtype == pl.Boolean:
        h.update(s.to_numpy(allow_copy=True).tobytes())
        h.update(s.is_null().to_numpy().tobytes())
    else:
        for v in s.cast(pl.Utf8).to_list():
            h.update(b"\x00" if v is None else v.encode() + b"\x01")
    return h.hexdigest()[:32]


def _value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    return v


def table_digest(df: pl.DataFrame) -> dict:
    return {"rows": df.height,
            "columns": {c: [str(df[c].dtype), _column_hash(df[c])] for c in df.columns if c not in VOLATILE}}


def digest(folder: Path) -> dict:
    summary = pl.read_parquet(folder / "summary.parquet")
    events = pl.read_parquet(folder / "events.parquet")
    events = events.filter(~pl.col("kind").is_in(LATER_KINDS))
    ts_dir = folder / "timeseries"
    parts = sorted(ts_dir.rglob("*.parquet")) if ts_dir.is_dir() else []
    frames = []
    for p in parts:
        cid = int(p.parent.name.split("=")[1]) if p.parent.name.startswith("config_id=") else -1
        frames.append(pl.read_parquet(p).with_columns(pl.lit(cid, pl.Int64).alias("_config_id")))
    series = pl.concat(frames, how="diagonal_relaxed").sort(["_config_id", "block"]) if frames else pl.DataFrame()
    rows = [{k: _value(v) for k, v in r.items()} for r in summary.to_dicts()]
    return {"summary": table_digest(summary), "summary_rows": rows, "events": table_digest(events),
            "timeseries": table_digest(series)}


def _import_real_lakes(root: Path) -> dict[str, Path]:
    from backtest.data.derive import derive_ratio
    from backtest.data.sources.aavescan import import_aavescan
    from backtest.data.sources.gas_hourly import import_gas_hourly
    from backtest.data.sources.peg_hourly import import_peg_hourly
    from backtest.data.sources.registry import import_files
    lakes = {}
    lk = root / "real-aave-v3"
    for f in sorted((SHARED / "aavescan-v3-eth-rates-daily").glob("*.csv")):
        import_aavescan(f, lk)
    for peg in sorted((SHARED / "lst-peg-dex-vs-oracle-hourly").glob("*.csv")):
        import_peg_hourly(peg, lk)
    import_gas_hourly(SHARED / "eth-gas-hourly-2024-2025" / "ethereum_gas_prices_2024-01-01_2025-09-26.csv", lk)
    lakes["real-aave-v3-lst-loops"] = lk
    lk = root / "real-2022"
    cg, es = SHARED / "coingecko-steth-weth-hourly", SHARED / "etherscan-daily"
    import_files("coingecko", [cg / "stETH_usd.csv", cg / "WETH_usd.csv"], lk)
    derive_ratio(lk, "stETH", "WETH", rebase_apr=0.04)
    import_files("etherscan", [es / "export-AvgGasPrice.csv", es / "export-EtherPrice.csv"], lk)
    lakes["real-steth-2022-aave-v2"] = lk
    return lakes


# the matrix: each entry is (name, example it starts from, overrides, sweep grid)
MATRIX = [
    ("aave-v3-automation", "loop", {},
     {"strategy.kind": ["loop", "flash-loan"], "market.oracle": ["exchange-rate", "market", "capo"],
      "strategy.target_ltv": [0.6, 0.85, 0.92]}),
    ("aave-v3-kinds", "loop", {},
     {"strategy.kind": ["hold", "lend"], "costs.slippage": ["none", "linear", "stableswap"]}),
    ("aave-v3-depeg-lake", "depeg-exit", {},
     {"market.oracle": ["market", "exchange-rate"], "strategy.target_ltv": [0.7, 0.85, 0.9],
      "strategy.loops": [3, 8]}),
    ("aave-v2-depeg", "steth-2022-v2", {},
     {"market.oracle": ["market", "exchange-rate"], "strategy.target_ltv": [0.6, 0.68]}),
    ("spark-depeg", "depeg-exit", {"market.protocol": "spark", "market.rates_from": "aave-v3"},
     {"market.oracle": ["market"], "strategy.target_ltv": [0.85, 0.9]}),
    ("morpho-depeg", "morpho-depeg", {},
     {"strategy.target_ltv": [0.8, 0.9, 0.94], "strategy.kind": ["loop", "flash-loan"]}),
    ("comet-depeg", "compound-depeg", {},
     {"strategy.target_ltv": [0.8, 0.88], "strategy.kind": ["loop", "flash-loan"]}),
    ("entry-and-exit-route", "depeg-exit", {},
     {"strategy.entry": ["swap", "stake"], "strategy.exit.route": ["dex", "queue"], "strategy.loops": [2, 6]}),
    ("rate-spike", "rate-spike", {},
     {"strategy.target_ltv": [0.8, 0.9], "costs.slippage": ["linear", "stableswap"]}),
]


def cases(tmp: Path) -> list[tuple[str, Path, dict, dict | None]]:
    """(case name, config path, overrides, grid) for everything pinned; real-data cases when ../shared is here."""
    from tests.synth_lake import synth_lake
    synth = str(synth_lake())
    out = []
    for ex in sorted((REPO / "examples").glob("*.toml")):
        if ex.stem.startswith("real-"):
            continue
        out.append((f"example:{ex.stem}", pinned_config(ex.stem), {"run.data": synth}, None))
        if ex.stem in REAL_BUNDLED:
            out.append((f"real:{ex.stem}", ex, {"run.data": str(REPO / "data")}, None))
    for name, ex, ov, grid in MATRIX:
        ov = {"run.data": synth, **ov}
        out.append((f"matrix:{name}", pinned_config(ex), ov, grid))
    from backtest.data.synth import synth as write_synth
    capo = tmp / "lakes" / "capo-2026"
    write_synth("capo-2026", capo)       # examples/stress: synthetic markets of their own
    out.append(("example:stress-capo-march-2026", REPO / "examples" / "stress" / "capo-march-2026.toml",
                {"run.data": str(capo)}, None))
    ezeth = tmp / "lakes" / "ezeth-2024"
    write_synth("ezeth-2024", ezeth)
    out.append(("example:stress-ezeth-april-2024", REPO / "examples" / "stress" / "ezeth-april-2024.toml",
                {"run.data": str(ezeth)}, None))
    if SHARED.is_dir():
        for name, lake in _import_real_lakes(tmp / "lakes").items():
            out.append((f"example:{name}", REPO / "examples" / f"{name}.toml", {"run.data": str(lake)}, None))
            if name == "real-steth-2022-aave-v2":
                out.append(("example:stress-real-june-2022-deeper",
                            REPO / "examples" / "stress" / "real-june-2022-deeper.toml", {"run.data": str(lake)}, None))
    return out


def pinned_config(stem: str) -> Path:
    """The config an example had when it was pinned: its copy in tests/golden/configs/ if it changed since."""
    kept = CONFIGS / f"{stem}.toml"
    return kept if kept.is_file() else REPO / "examples" / f"{stem}.toml"


def run_case(path: Path, overrides: dict, grid: dict | None, output: Path, name: str) -> dict:
    import backtest
    ov = {**overrides, "run.output": str(output), "run.name": name.replace(":", "-")}
    res = backtest.run(path, overrides=ov, grids=grid)
    return digest(Path(res["path"]))


def load_golden() -> dict:
    return json.loads(GOLDEN.read_text())


def write_golden(data: dict) -> None:
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
