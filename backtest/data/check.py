"""`backtest data check`: a lake that checks itself.

:func:`check_lake` reads every Parquet file of every lake table (each file on its own, so problems are
pinned to a file) and reports, per series (the table's key columns, and ``source`` where the table has one):
rows, span, resolution (median spacing of distinct point times), and issues of two severities.

Errors (``backtest data check`` exits 1):

- a file that cannot be read, or whose columns/types do not match the table's schema;
- timestamps that are not increasing inside a file (non-monotonic) or repeated with different values
  (duplicates), timestamps that look like milliseconds or lie before 2009 / after 2100;
- gaps longer than ``max_gap`` (default 3 days, the replay's own limit) or than ``gap_factor`` × the
  series' resolution, whichever is longer (without a window, gaps over ``segment_gap``, 30 days, separate
  periods stored side by side, such as the bundled lake's scenario years: a warning listing them);
- non-positive prices / exchange rates / indices, negative rates / gas / utilization, non-finite values;
- absurd moves between consecutive points: a price of a USD-quoted series more than doubling or halving,
  any other price (a peg ratio such as stETH/ETH, an LST/ETH oracle) or an exchange rate moving by more than
  ``max_jump`` (default 20 %);
- unit suspicions: a rate whose median is above 1 (3.2 where 0.032 was meant: percent stored as a
  fraction), an LST/ETH price or exchange rate far from 1 (a USD price or a wei amount under the wrong
  label), a gas price above 100,000 gwei (wei stored as gwei), market parameters above 1 or a liquidation
  bonus above 0.5 (1.05 instead of 0.05), LTV above the liquidation threshold.

The replay's gate: ``run`` / ``sweep`` / the API hold the points of every series they read in their window
(from the last point at or before ``run.start``) to the same error rules, gaps aside (align's 3-day coverage
rule is stricter), through :func:`check_window`: the first error is a DataError (exit 2) naming the series
(``prices wstETH/WETH source=coingecko``), the first bad time and value, and the ``run.allow`` entry
(``"jump:exchange_rates wstETH"``) that downgrades it to a :class:`DataWarning`. ``data check --start/--end``
or ``--config`` checks what such a window reads.

Warnings (reported, exit 0): gaps longer than ``warn_factor`` × resolution, an exchange rate that falls (it
should only rise, except on a slashing), smaller jumps (over ``warn_jump`` for pegged series), a few rate
spikes above 100 %, utilization above 1, the same points stored in several files, unknown folders and
temporary files left by an interrupted write.
"""
from __future__ import annotations

import datetime as _dt
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from backtest.data import lake as _lake

DAY = 86400
MAX_GAP = 3 * DAY
#: without a window, a gap this long separates periods imported on their own (a warning listing them)
SEGMENT_GAP = 30 * DAY
#: symbols whose price in ETH should sit near 1 (LSTs/LRTs and ETH itself)
ETH_LIKE = frozenset({"ETH", "WETH", "stETH", "wstETH", "weETH", "eETH", "rETH", "cbETH", "osETH", "ezETH", "rsETH",
                      "rswETH", "ETHx", "tETH", "sfrxETH", "frxETH", "swETH", "pufETH", "mETH", "ankrETH"})


def _iso(ts: int | float | None) -> str:
    if ts is None:
        return "?"
    try:
        return _dt.datetime.fromtimestamp(int(ts), _dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
    except (ValueError, OverflowError, OSError):
        return f"ts={int(ts)}"


def _dur(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "-"
    if s >= DAY:
        return f"{s / DAY:.3g}d"
    if s >= 3600:
        return f"{s / 3600:.3g}h"
    if s >= 60:
        return f"{s / 60:.3g}m"
    return f"{s:.3g}s"


@dataclass
class Issue:
    severity: str            # "error" | "warning"
    kind: str                # gap, duplicate, non-monotonic, non-positive, jump, unit, schema, ...
    message: str
    ts: int | None = None    # the first bad point (what `run` names when it refuses the series)
    value: float | None = None


@dataclass
class SeriesCheck:
    table: str
    key: str
    source: str | None
    rows: int
    first_ts: int | None
    last_ts: int | None
    resolution_s: float | None
    files: list[str] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)

    def add(self, severity: str, kind: str, message: str, ts=None, value=None) -> None:
        self.issues.append(Issue(severity, kind, message, None if ts is None else int(ts),
                                 None if value is None else float(value)))

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]


@dataclass
class CheckReport:
    lake: str
    series: list[SeriesCheck] = field(default_factory=list)
    issues: list[tuple[str, Issue]] = field(default_factory=list)   # (file or folder, issue) outside a series

    @property
    def errors(self) -> int:
        return sum(len(s.errors) for s in self.series) + sum(i.severity == "error" for _, i in self.issues)

    @property
    def warnings(self) -> int:
        return sum(len(s.warnings) for s in self.series) + sum(i.severity == "warning" for _, i in self.issues)

    def find(self, table: str, key: str, source: str | None = None) -> SeriesCheck:
        for s in self.series:
            if s.table == table and s.key == key and (source is None or s.source == source):
                return s
        raise KeyError(f"{table} {key}")

    def lines(self) -> list[str]:
        out = []
        for where, i in self.issues:
            out.append(f"{i.severity.upper():<7} {where}: {i.message}")
        for s in self.series:
            status = "ok" if not s.issues else f"{len(s.errors)} error(s), {len(s.warnings)} warning(s)"
            src = f" [{s.source}]" if s.source else ""
            out.append(f"{s.table:<15} {s.key + src:<52} {s.rows:>7} rows  {_iso(s.first_ts)} -> {_iso(s.last_ts)}"
                       f"  every {_dur(s.resolution_s):>6}  {status}")
            for i in s.issues:
                out.append(f"    {i.severity.upper():<7} {i.kind}: {i.message}")
        out.append(f"{len(self.series)} series, {self.errors} error(s), {self.warnings} warning(s)")
        return out


# ------------------------------------------------------------------------------------------------ reading
def _read_file(path: Path, table: str, report: CheckReport, rel: str) -> pl.DataFrame | None:
    sch = _lake.TABLES[table]
    try:
        tab = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - a corrupt file is what we are here to find
        report.issues.append((rel, Issue("error", "unreadable", f"cannot read as Parquet: {exc}")))
        return None
    names = tab.column_names
    extra = [c for c in names if c not in sch.names]
    missing = [f.name for f in sch if f.name not in names and not f.nullable]
    if extra or missing:
        what = []
        if missing:
            what.append(f"missing required column(s) {', '.join(missing)}")
        if extra:
            what.append(f"unknown column(s) {', '.join(extra)}")
        report.issues.append((rel, Issue("error", "schema", f"{table}: {'; '.join(what)}")))
        return None
    cols = {}
    for f in sch:
        if f.name not in names:
            cols[f.name] = pa.nulls(tab.num_rows, f.type)
            continue
        col = tab.column(f.name)
        try:
            cols[f.name] = col.cast(f.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            report.issues.append((rel, Issue("error", "schema", f"{table}.{f.name}: type {col.type}, expected "
                                                                 f"{f.type} ({exc})")))
            return None
        if not f.nullable and col.null_count:
            report.issues.append((rel, Issue("error", "null", f"{table}.{f.name}: {col.null_count} null value(s) in "
                                                               "a required column")))
            return None
    df = pl.from_arrow(pa.table(cols))
    return df.with_columns(pl.lit(rel).alias("_file"), pl.int_range(pl.len()).alias("_row"))


def _keys(table: str) -> list[str]:
    keys = list(_lake.KEYS[table])
    return keys


def _key_text(table: str, row: dict) -> str:
    return _lake.series_key(table, row)


# ------------------------------------------------------------------------------------------------ checks
def check_lake(lake: str | os.PathLike, *, max_gap: float = MAX_GAP, gap_factor: float = 10.0,
               warn_factor: float = 4.0, max_jump: float = 0.20, warn_jump: float = 0.05,
               start: int | None = None, end: int | None = None, segment_gap: float = SEGMENT_GAP) -> CheckReport:
    """Check every series of the lake at ``lake``; see the module docstring for what is checked.

    With ``start`` / ``end`` only the points a replay of that window reads are checked (per series: from
    its last point at or before ``start`` to its last point before ``end``); series with none are left out,
    and every gap in what remains is judged by ``max_gap`` (no ``segment_gap``: the replay would cross it)."""
    if start is not None or end is not None:
        segment_gap = math.inf
    root = Path(lake)
    report = CheckReport(str(root))
    if not root.is_dir():
        report.issues.append((str(root), Issue("error", "missing", "lake folder not found")))
        return report
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and not entry.name.startswith(".") and entry.name not in _lake.TABLES:
            report.issues.append((entry.name, Issue("warning", "unknown", "not a lake table; ignored")))
    for table in _lake.TABLES:
        folder = root / table
        if not folder.is_dir():
            continue
        for tmp in sorted(folder.rglob(".*.tmp-*")):
            report.issues.append((os.path.relpath(tmp, root), Issue(
                "warning", "temporary", "left by an interrupted write; safe to delete")))
        frames = []
        for path in _lake.table_files(root, table):
            rel = os.path.relpath(path, root)
            df = _read_file(path, table, report, rel)
            if df is not None and df.height:
                frames.append(df)
        if not frames:
            continue
        all_rows = pl.concat(frames, how="vertical")
        keys = _keys(table)
        groups = all_rows.group_by(keys, maintain_order=True) if keys else [((), all_rows)]
        for _, g in groups:
            g = window_rows(g, start, end)
            if not g.height:
                continue
            row = g.row(0, named=True)
            sc = SeriesCheck(table, _key_text(table, row), row.get("source"), g.height, None, None, None,
                             sorted(g["_file"].unique().to_list()))
            _check_series(sc, table, g, max_gap=max_gap, gap_factor=gap_factor, warn_factor=warn_factor,
                          max_jump=max_jump, warn_jump=warn_jump, segment_gap=segment_gap)
            report.series.append(sc)
    report.series.sort(key=lambda s: (s.table, s.key, s.source or ""))
    return report


def window_rows(g: pl.DataFrame, start: int | None, end: int | None) -> pl.DataFrame:
    """The rows of one series a replay of [start, end) reads: from the last point at or before ``start``
    (the value in force at the first block) to the last point before ``end``."""
    if start is not None:
        before = g.filter(pl.col("ts") <= start)["ts"]
        lo = before.max() if before.len() else None
        if lo is None:
            lo = g["ts"].min()
        g = g.filter(pl.col("ts") >= lo)
    if end is not None:
        g = g.filter(pl.col("ts") < end)
    return g


_VALUE = {"prices": "price", "exchange_rates": "rate", "oracle_prices": "price"}


def _check_series(sc: SeriesCheck, table: str, g: pl.DataFrame, *, max_gap: float, gap_factor: float,
                  warn_factor: float, max_jump: float, warn_jump: float, segment_gap: float = math.inf) -> None:
    ts_all = g["ts"].to_numpy()
    sc.first_ts, sc.last_ts = int(ts_all.min()), int(ts_all.max())
    # times that cannot be epoch seconds
    ms = ts_all > 1e11
    if ms.any():
        sc.add("error", "unit", f"{int(ms.sum())} ts value(s) look like milliseconds (e.g. {int(ts_all[ms][0])}); "
                                "the lake stores epoch seconds", ts_all[ms][0], ts_all[ms][0])
    old = ts_all < 1_230_000_000
    if old.any():
        sc.add("error", "time", f"{int(old.sum())} ts value(s) before 2009 (e.g. {int(ts_all[old][0])}): "
                                "not epoch seconds?", ts_all[old][0], ts_all[old][0])
    # order inside each file (write_table keeps files sorted; a hand-made or appended file may not be)
    for f, fg in g.group_by("_file", maintain_order=True):
        t = fg.sort("_row")["ts"].to_numpy()
        back = np.nonzero(np.diff(t) < 0)[0]
        if back.size:
            i = int(back[0])
            sc.add("error", "non-monotonic", f"{f[0]}: time goes back at row {i + 2} ({_iso(t[i])} then "
                                             f"{_iso(t[i + 1])}); {back.size} place(s)")
    # duplicates: the same ts more than once
    value_cols = [c for c in g.columns if c not in ("_file", "_row", "ts", *(_lake.KEYS[table]))]
    dup = g.filter(pl.col("ts").is_duplicated())
    if dup.height:
        distinct = dup.select("ts", *value_cols).unique()
        n_ts = dup["ts"].n_unique()
        conflicting = distinct.height > n_ts
        files = dup["_file"].n_unique()
        if conflicting:
            first = int(distinct.filter(pl.col("ts").is_duplicated())["ts"].min())
            at = distinct.filter(pl.col("ts") == first)
            vals = [at[c].to_list() for c in value_cols if at[c].n_unique() > 1]
            shown = ", ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in (vals[0] if vals else []))
            sc.add("error", "duplicate", f"{n_ts} timestamp(s) appear more than once with different values (first "
                                         f"{_iso(first)}: {shown}; files: {', '.join(sorted(dup['_file'].unique()))})",
                   first, next((x for x in (vals[0] if vals else []) if isinstance(x, (int, float))), None))
        elif files > 1 and dup.group_by("ts").agg(pl.col("_file").n_unique()).get_column("_file").max() > 1:
            sc.add("warning", "duplicate", f"{n_ts} timestamp(s) stored identically in several files "
                                           f"({', '.join(sorted(dup['_file'].unique()))}): imported twice under "
                                           "different names?")
        else:
            sc.add("error", "duplicate", f"{n_ts} timestamp(s) repeated inside one file (first "
                                         f"{_iso(int(dup['ts'].min()))})", int(dup['ts'].min()))
    anchors = table == "blocks"     # (ts, block) anchors: any file, any spacing; each point is true on its own
    if len(sc.files) > 1 and not anchors:
        spans = g.group_by("_file").agg(pl.col("ts").min().alias("lo"), pl.col("ts").max().alias("hi")).sort("lo")
        lo, hi = spans["lo"].to_numpy(), spans["hi"].to_numpy()
        if (lo[1:] <= np.maximum.accumulate(hi)[:-1]).any():
            sc.add("warning", "overlap", f"one series in {len(sc.files)} files with overlapping spans "
                                         f"({', '.join(sc.files)}): mixed sources or resolutions?")
    s = g.sort("ts").unique(subset=["ts"], keep="last", maintain_order=True)
    t = s["ts"].to_numpy()
    gaps = np.diff(t).astype(np.float64)
    pos = gaps[gaps > 0]
    res = float(np.median(pos)) if pos.size else None
    sc.resolution_s = res
    if res is not None and table != "market_params" and not anchors:   # market_params is a step function
        limit = max(max_gap, gap_factor * res)
        seg = np.nonzero(gaps > max(limit, segment_gap))[0]
        if seg.size:
            # separate periods (the bundled lake's scenario years): no replay crosses them (its 3-day coverage
            # rule refuses that), a windowed check calls them errors
            spans = ", ".join(f"{_iso(a)[:10]} to {_iso(b)[:10]}" for a, b in
                              zip(np.append(t[0], t[seg + 1]), np.append(t[seg], t[-1])))
            sc.add("warning", "segments", f"{seg.size + 1} separate periods ({spans}): a replay window must lie "
                                          f"inside one")
        big = np.nonzero((gaps > limit) & (gaps <= max(limit, segment_gap)))[0]
        if big.size:
            worst = int(big[np.argmax(gaps[big])])
            sc.add("error", "gap", f"{big.size} gap(s) longer than {_dur(limit)}; longest {_dur(gaps[worst])} from "
                                   f"{_iso(t[worst])} to {_iso(t[worst + 1])}; first from {_iso(t[big[0]])}")
        warn = np.nonzero((gaps > warn_factor * res) & (gaps <= limit))[0]
        if warn.size:
            worst = int(warn[np.argmax(gaps[warn])])
            sc.add("warning", "gap", f"{warn.size} gap(s) longer than {warn_factor:g}x the resolution "
                                     f"({_dur(warn_factor * res)}); longest {_dur(gaps[worst])} from {_iso(t[worst])}")
    checker = {"prices": _check_price, "oracle_prices": _check_price, "exchange_rates": _check_rate_series,
               "rates": _check_rates, "market_params": _check_params, "gas": _check_gas,
               "blocks": _check_blocks}.get(table)
    if checker is not None:
        checker(sc, s, max_jump=max_jump, warn_jump=warn_jump)


def _finite(sc: SeriesCheck, s: pl.DataFrame, col: str) -> np.ndarray:
    v = s[col].to_numpy().astype(np.float64)
    bad = s[col].is_not_null().to_numpy() & ~np.isfinite(v)
    if bad.any():
        i = int(np.argmax(bad))
        sc.add("error", "non-finite", f"{col}: {int(bad.sum())} NaN/inf value(s) of {v.size}, first at "
                                      f"{_iso(s['ts'][i])}", s['ts'][i], v[i])
    return v


def _first(s: pl.DataFrame, v: np.ndarray, mask: np.ndarray | None = None) -> tuple[int | None, float | None]:
    """(ts, value) of the first point where ``mask`` holds (default: the first finite point)."""
    m = np.isfinite(v) if mask is None else (mask & np.isfinite(v))
    if not m.any():
        return None, None
    i = int(np.argmax(m))
    return int(s["ts"][i]), float(v[i])


def _jumps(sc: SeriesCheck, s: pl.DataFrame, v: np.ndarray, bound: float, warn: float | None, what: str) -> None:
    ok = np.isfinite(v) & (v > 0)
    t = s["ts"].to_numpy()[ok]
    lv = np.log(v[ok])
    if lv.size < 2:
        return
    d = np.diff(lv)
    hard = np.nonzero(np.abs(d) > math.log1p(bound))[0]
    if hard.size:
        i = int(hard[np.argmax(np.abs(d[hard]))])
        j = int(hard[0])
        sc.add("error", "jump", f"{hard.size} move(s) of more than {bound:.0%} between consecutive points "
                                f"({what}); largest {math.expm1(d[i]):+.1%} from {_iso(t[i])} to {_iso(t[i + 1])}; "
                                f"first {math.exp(lv[j]):.6g} -> {math.exp(lv[j + 1]):.6g} at {_iso(t[j + 1])}",
               t[j + 1], math.exp(lv[j + 1]))
    if warn is not None:
        soft = np.nonzero((np.abs(d) > math.log1p(warn)) & (np.abs(d) <= math.log1p(bound)))[0]
        if soft.size:
            i = int(soft[np.argmax(np.abs(d[soft]))])
            sc.add("warning", "jump", f"{soft.size} move(s) of more than {warn:.0%} between consecutive points; "
                                      f"largest {math.expm1(d[i]):+.1%} at {_iso(t[i + 1])}")


def _check_price(sc: SeriesCheck, s: pl.DataFrame, *, max_jump: float, warn_jump: float) -> None:
    v = _finite(sc, s, "price")
    bad = np.isfinite(v) & (v <= 0)
    if bad.any():
        i = int(np.argmax(bad))
        sc.add("error", "non-positive", f"{int(bad.sum())} price(s) <= 0, first at {_iso(s['ts'][i])}",
               s['ts'][i], v[i])
    row = s.row(0, named=True)
    base = row.get("base") or row.get("asset")
    quote = row["quote"]
    med = float(np.nanmedian(v)) if v.size else float("nan")
    eth_quote = quote in ("ETH", "WETH")
    if quote == "USD":
        _jumps(sc, s, v, 1.0, None, "USD price")
        if base in ("ETH", "WETH") and not (10 <= med <= 1e6):
            sc.add("error", "unit", f"median ETH/USD price {med:.4g}: not a USD price of ETH (ETH-quoted or "
                                    "wei?)", *_first(s, v))
    else:
        _jumps(sc, s, v, max_jump, warn_jump if eth_quote and base in ETH_LIKE else None, f"{base}/{quote}")
        if eth_quote and base in ETH_LIKE and not (0.5 <= med <= 3.0):
            sc.add("error", "unit", f"median {base}/{quote} {med:.4g} is far from 1: a USD price or a wei amount "
                                    f"under an ETH label?", *_first(s, v))


def _check_rate_series(sc: SeriesCheck, s: pl.DataFrame, *, max_jump: float, warn_jump: float) -> None:
    v = _finite(sc, s, "rate")
    bad = np.isfinite(v) & (v <= 0)
    if bad.any():
        i = int(np.argmax(bad))
        sc.add("error", "non-positive", f"{int(bad.sum())} exchange rate(s) <= 0, first at {_iso(s['ts'][i])}",
               s['ts'][i], v[i])
    med = float(np.nanmedian(v)) if v.size else float("nan")
    if not (0.5 <= med <= 5.0):
        sc.add("error", "unit", f"median exchange rate {med:.4g}: an LST/LRT redemption rate is ~1-2 (1e18-scaled "
                                "or a USD price?)", *_first(s, v))
    _jumps(sc, s, v, max_jump, None, "exchange rate")
    ok = np.isfinite(v) & (v > 0)
    d = np.diff(v[ok])
    falls = np.nonzero(d < -1e-9 * np.abs(v[ok][:-1]))[0]
    if falls.size:
        i = int(falls[np.argmin(d[falls] / v[ok][falls])])
        t = s["ts"].to_numpy()[ok]
        sc.add("warning", "decrease", f"the exchange rate falls {falls.size} time(s) (largest "
                                      f"{d[i] / v[ok][i]:+.4%} at {_iso(t[i + 1])}); it should only rise, except "
                                      "on a slashing")


def _check_rates(sc: SeriesCheck, s: pl.DataFrame, **_) -> None:
    for col in ("supply_apr", "borrow_apr"):
        if col not in s.columns:
            continue
        v = _finite(sc, s, col)
        fin = v[np.isfinite(v)]
        if not fin.size:
            continue
        neg = fin < 0
        if neg.any():
            sc.add("error", "negative", f"{col}: {int(neg.sum())} negative value(s), min {fin.min():.4g}",
                   *_first(s, v, v < 0))
        med = float(np.median(fin))
        if med > 1.0:
            sc.add("error", "unit", f"{col}: median {med:.4g} means {med:.0%}/yr: percent stored as a fraction "
                                    f"({med:g} should be {med / 100:g})?", *_first(s, v, v > 1.0))
        elif (fin > 1.0).any():
            sc.add("warning", "spike", f"{col}: {int((fin > 1.0).sum())} value(s) above 100 %/yr (max {fin.max():.4g})")
    if "utilization" in s.columns:
        u = s["utilization"].drop_nulls().to_numpy()
        if (u < 0).any():
            sc.add("error", "negative", f"utilization: {int((u < 0).sum())} negative value(s)")
        if (u > 1.0).any():
            sc.add("warning", "range", f"utilization: {int((u > 1.0).sum())} value(s) above 1 (max {u.max():.4g})")
        if u.size and np.median(u) > 1.5:
            sc.add("error", "unit", f"utilization median {np.median(u):.4g}: percent stored as a fraction?")
    for col in ("supply_index", "borrow_index"):
        if col in s.columns:
            x = s[col].drop_nulls().to_numpy()
            if (x <= 0).any():
                sc.add("error", "non-positive", f"{col}: {int((x <= 0).sum())} value(s) <= 0")
            elif x.size and np.median(x) > 1e20:
                sc.add("error", "unit", f"{col}: median {np.median(x):.4g} looks like ray (1e27-scaled)")


def _check_params(sc: SeriesCheck, s: pl.DataFrame, **_) -> None:
    for col in ("ltv", "liquidation_threshold", "liquidation_bonus", "protocol_fee"):
        x = s[col].drop_nulls().to_numpy()
        if not x.size:
            continue
        if (x < 0).any():
            sc.add("error", "negative", f"{col}: negative value(s)")
        if (x > 1.0).any():
            sc.add("error", "unit", f"{col}: value(s) above 1 (max {x.max():g}): percent or basis points?")
    b = s["liquidation_bonus"].drop_nulls().to_numpy()
    if b.size and (b > 0.5).any() and not (b > 1.0).any():
        sc.add("error", "unit", f"liquidation_bonus up to {b.max():g}: the lake wants the bonus (0.05), not the "
                                "LB multiplier (1.05)")
    over = s.filter(pl.col("ltv") > pl.col("liquidation_threshold"))
    if over.height:
        sc.add("error", "range", f"ltv above liquidation_threshold in {over.height} row(s), first at "
                                 f"{_iso(over['ts'][0])}")


def _check_gas(sc: SeriesCheck, s: pl.DataFrame, **_) -> None:
    for col in ("base_fee_gwei", "priority_fee_gwei"):
        if col not in s.columns:
            continue
        v = _finite(sc, s, col)
        fin = v[np.isfinite(v)]
        if not fin.size:
            continue
        if (fin < 0).any():
            sc.add("error", "negative", f"{col}: {int((fin < 0).sum())} negative value(s)", *_first(s, v, v < 0))
        med = float(np.median(fin))
        if med > 1e5:
            sc.add("error", "unit", f"{col}: median {med:.4g} gwei: wei stored as gwei?", *_first(s, v, v > 1e5))
        elif col == "base_fee_gwei" and 0 < med < 1e-3:
            sc.add("warning", "unit", f"{col}: median {med:.3g} gwei is implausibly small (ETH stored as gwei?)")


def _check_blocks(sc: SeriesCheck, s: pl.DataFrame, **_) -> None:
    b = s["block"].to_numpy()
    back = np.nonzero(np.diff(b) <= 0)[0]
    if back.size:
        t = s["ts"].to_numpy()
        sc.add("error", "non-monotonic", f"block numbers do not increase with time at {back.size} place(s), "
                                         f"first at {_iso(t[back[0] + 1])}")


# ------------------------------------------------------------------------------------------ the replay's gate
#: the error kinds a replay refuses (``data check``'s errors on the points it reads); a gap is left to the
#: replay's own coverage rule, which is stricter (3 days whatever the resolution)
RUN_KINDS = ("duplicate", "non-finite", "non-positive", "negative", "unit", "time", "jump", "range")
#: tables whose values a replay reads through a checker
RUN_TABLES = ("prices", "exchange_rates", "oracle_prices", "rates", "market_params", "gas")


class DataWarning(UserWarning):
    """A check that ``run.allow`` downgraded: the replay goes on and says so."""


def iso_utc(ts: int | None) -> str:
    if ts is None:
        return "?"
    try:
        return _dt.datetime.fromtimestamp(int(ts), _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError, OSError):      # ms or ns epochs: beyond year 9999
        return f"ts={int(ts)}"


def allow_tag(kind: str, table: str, key: str) -> str:
    """The ``run.allow`` entry that downgrades ``kind`` on one series, e.g. ``jump:exchange_rates wstETH``."""
    return f"{kind}:{table} {key}"


def allowed(kind: str, table: str, key: str, allow: Iterable[str]) -> str | None:
    """The ``run.allow`` entry that covers an error of ``data check``'s series ``table key`` (whose keys are
    the lake's: ``wstETH/stETH`` for the exchange rate a run calls ``wstETH``, ``aave-v3:WETH`` for its
    ``aave-v3:WETH:borrow_apr``, ``gas`` for any gas key), or None."""
    for tag in allow:
        k, _, rest = tag.partition(":")
        t, _, run_key = rest.partition(" ")
        if k != kind or t != table:
            continue
        if (run_key == key or table == "gas" or (table == "exchange_rates" and key.split("/")[0] == run_key)
                or (table == "rates" and run_key.startswith(key + ":"))):
            return tag
    return None


def downgrade(report: CheckReport, allow: Iterable[str]) -> int:
    """Turn the errors a config's ``run.allow`` covers into warnings (what its run does); returns how many."""
    allow = list(allow)
    n = 0
    for sc in report.series:
        for i in sc.issues:
            tag = allowed(i.kind, sc.table, sc.key, allow) if i.severity == "error" else None
            if tag is not None:
                i.severity = "warning"
                i.message += f" (allowed: run.allow has \"{tag}\")"
                n += 1
    return n


def check_window(table: str, key: str, source: str | None, rows: pl.DataFrame, *, start: int, end: int,
                 allow: Iterable[str] = (), lake: str = "data") -> list[str]:
    """Refuse (DataError) the first ``data check`` error in the points of one series a replay reads.

    ``rows``: the window's raw rows (``ts``, the value columns read, the key columns, ``filename``) in time
    order, duplicates kept. Errors downgraded by ``allow`` (entries as :func:`allow_tag`) are issued as a
    :class:`DataWarning` and returned as text."""
    from backtest.errors import DataError

    if table not in RUN_TABLES or not rows.height:
        return []
    g = (rows.rename({"filename": "_file"}) if "filename" in rows.columns
         else rows.with_columns(pl.lit("?").alias("_file")))
    g = g.with_columns(pl.int_range(pl.len()).alias("_row"))
    sc = SeriesCheck(table, key, source, g.height, None, None, None, sorted(g["_file"].unique().to_list()))
    _check_series(sc, table, g, max_gap=float("inf"), gap_factor=10.0, warn_factor=float("inf"),
                  max_jump=0.20, warn_jump=0.05)
    label = f"{table} {key}" + (f" source={source}" if source else "")
    allowed = set(allow)
    warned = []
    for i in sc.errors:
        if i.kind not in RUN_KINDS:
            continue
        tag = allow_tag(i.kind, table, key)
        at = f"first bad point {iso_utc(i.ts)}" + ("" if i.value is None else f" value {i.value:.6g}")
        if tag in allowed:
            text = f"{label}: {i.message}; {at} (replayed anyway: run.allow has \"{tag}\")"
            warnings.warn(text, DataWarning, stacklevel=2)
            warned.append(text)
            continue
        raise DataError(
            f"{label}: {i.kind} error in the run window {iso_utc(start)} to {iso_utc(end)}: {i.message}; {at}. "
            f"Fix or re-import the series (`backtest data check --lake {lake} --start {iso_utc(start)} "
            f"--end {iso_utc(end)}` lists every problem), or, if the data is right, add \"{tag}\" to "
            f"run.allow to replay it with a warning")
    return warned


def check_lakes(lakes: Iterable[str | os.PathLike], **kw) -> list[CheckReport]:
    return [check_lake(lk, **kw) for lk in lakes]


__all__ = ["CheckReport", "DataWarning", "Issue", "SeriesCheck", "RUN_KINDS", "allow_tag", "check_lake",
           "check_window", "MAX_GAP"]
