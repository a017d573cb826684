"""Alignment: every lake series ASOF-joined onto the block clock (DESIGN.md sections 4 and 5).

The clock is ``ts[k] = run.start + k * run.block_time`` for ``k < ceil((run.end - run.start) / block_time)``.
Each series takes, at every block, its last value at or before the block's time (DuckDB ``ASOF LEFT JOIN``
against a generated range of block times; the arrays come back through Arrow, never through a Python loop
over blocks).

Series read (market = the config's ``[market]``; "ETH" and "WETH" are the same asset in every match):

=================  ==========================================================  ==============================
Market array       lake rows                                                   required
=================  ==========================================================  ==============================
price              prices base=collateral, quote=debt                          yes
xrate              exchange_rates token=collateral                             yes
eth_usd            prices base in (debt, ETH), quote=USD (debt's own first)    no: NaN
borrow_apr         rates protocol, asset=debt: borrow_apr                      unless market.borrow_rate or
                                                                               market.irm = "adaptive-curve"
utilization        rates protocol, asset=debt: utilization                     if market.irm = "adaptive-curve"
                                                                               unless market.utilization
supply_apr         rates protocol, asset=collateral: supply_apr                unless market.supply_rate; never
                                                                               on morpho-blue / compound-v3
ltv/lt/bonus/pfee  market_params protocol, asset=collateral, emode; defaults   unless the config fixes them
gas_gwei           gas: base_fee_gwei + coalesce(priority_fee_gwei, 0)         unless costs.gas is a number
oracle_feed        oracle_prices protocol, asset=collateral, quote=debt        if market.oracle = "chainlink"
hold_price/xrate   prices / exchange_rates of market.collateral                when strategy.restake is set
reward             rewards token=collateral, kind=points|<token> (amount per   if [strategy.rewards] values
                   token per day/week/year); prices TOKEN/ETH or TOKEN/USD     them (no coverage rule: 0 before
                                                                               the first row)
slash              events token=collateral, kind=slash (value = fraction)      no: none
=================  ==========================================================  ==============================

With ``strategy.restake`` set, "collateral" above is the LRT (the held token); ``market.collateral`` is the
base LST whose price and exchange rate feed only the hold benchmark. Slashes multiply the exchange rate by
``1 - value`` from the first block at or after their time (the lake's rate is taken as un-slashed).

Coverage of a required time series (not of market_params, which is a step function that holds until the
next change): it must have a point at or before ``run.start``; no point may be followed by more than
:data:`MAX_GAP` (3 days) without a newer point while inside the window, which covers both internal gaps and a
last point more than 3 days before ``run.end``. Violations are DataErrors naming the table, the series key
and the dates. Several ``source`` values for one key inside the window are ambiguous (DataError listing
them with their spans and the ``run.sources = { "prices ETH/USD" = "coingecko" }`` entry that picks one),
unless the window is not covered at all (then the coverage error, with the sources' spans). With
``align(config, checks=True)`` (run, sweep, the API) the window's raw points are first held to ``data check``'s
error rules (:func:`backtest.data.check.check_window`, ``run.allow`` downgrades named ones), and the block
arrays that must be positive (price, exchange rate, LTV, LT) are checked last, naming the lake series and block
time. The optional ``eth_usd`` is NaN wherever its last point is more than 3 days old.

Market parameters come from the lake where it has rows for the key; defaults from :mod:`backtest.params`
fill the time before the lake's first row and any null ``protocol_fee``.

Per venue ("protocol" in the rates keys is ``market.rates_from`` when set, e.g. another venue's WETH rates as
a documented stand-in, else ``market.protocol``):

- Aave v3 / v2, Spark: as above; E-mode picks the market_params key.
- generic: ltv, liquidation_threshold, liquidation_bonus, liquidation_protocol_fee all from the config
  (required there); rates from the lake under the ``rates_from`` label (default "generic") or the overrides.
- Morpho Blue: no E-mode; ``market.lltv`` (or the market_params row's liquidation_threshold, or the
  defaults) is both ``ltv`` and ``lt``; ``bonus`` carries LIF - 1 for information and ``pfee`` is 0. The
  collateral earns nothing, so no supply series is read (``supply_apr`` = 0). With ``market.irm =
  "adaptive-curve"`` the borrow APR is Morpho's AdaptiveCurveIRM run along the utilisation path (the lake's
  ``rates.utilization`` or ``market.utilization``, after ``utilization`` overlays), see :func:`apply_irm`.
- Compound III: no E-mode; ``ltv`` = borrow collateral factor, ``lt`` = liquidate collateral factor,
  ``bonus`` = 1 - liquidation factor (the lake's ``liquidation_bonus`` column holds that for compound-v3
  rows), ``pfee`` = 0; no supply series (collateral earns nothing).
"""
from __future__ import annotations

import datetime as _dt
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import duckdb
import numpy as np
import pyarrow as pa

from backtest import params as _params
from backtest.config_types import Config, ScenarioConfig
from backtest.data import lake as _lake
from backtest.data.market import Market, SeriesInfo
from backtest.errors import DataError
from backtest.schema import NO_SUPPLY_YIELD

MAX_GAP = 3 * 86400                 # seconds a required series may go without a new point
MERGE_BLOCK = 15537394              # first proof-of-stake block
MERGE_TS = 1663224179               # its timestamp (2022-09-15 06:42:59 UTC)
SLOT = 12                           # seconds per Ethereum slot after the Merge

ETH_LIKE = ("ETH", "WETH")


def _iso(ts: int | float) -> str:
    return _dt.datetime.fromtimestamp(int(ts), _dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _aliases(symbol: str) -> list[str]:
    return list(ETH_LIKE) if symbol in ETH_LIKE else [symbol]


def _same_asset(a: str, b: str) -> bool:
    return a == b or (a in ETH_LIKE and b in ETH_LIKE)


# ------------------------------------------------------------------------------------------------ clock
def block_clock(start: int, end: int, block_time: int = 12) -> np.ndarray:
    """Block times ``start + k * block_time`` for ``k < ceil((end - start) / block_time)`` (int64)."""
    if block_time <= 0:
        raise DataError(f"block_time must be positive, got {block_time}")
    n = max(0, math.ceil((int(end) - int(start)) / int(block_time)))
    return np.int64(start) + np.arange(n, dtype=np.int64) * np.int64(block_time)


def estimate_blocks(ts: np.ndarray, known_ts: np.ndarray | None = None, known_block: np.ndarray | None = None,
                    slot: int = SLOT) -> np.ndarray:
    """Block numbers at times ``ts``.

    With known (ts, block) pairs (the lake's ``blocks`` table) the numbers are linearly interpolated between
    them and extrapolated with ``slot``-second blocks beyond the ends; without, they are estimated from the
    Merge anchor (block 15537394 at 1663224179, one block per 12-second slot; an estimate before the Merge,
    when blocks averaged ~13 s). Never negative.
    """
    t = np.asarray(ts, dtype=np.int64)
    if known_ts is None or len(known_ts) == 0:
        out = MERGE_BLOCK + np.floor_divide(t - MERGE_TS, slot)
        return np.maximum(out, 0).astype(np.int64)
    kt = np.asarray(known_ts, dtype=np.float64)
    kb = np.asarray(known_block, dtype=np.float64)
    order = np.argsort(kt, kind="stable")
    kt, kb = kt[order], kb[order]
    est = np.interp(t.astype(np.float64), kt, kb)
    lo = t < kt[0]
    hi = t > kt[-1]
    est[lo] = kb[0] + np.floor((t[lo] - kt[0]) / slot)
    est[hi] = kb[-1] + np.floor((t[hi] - kt[-1]) / slot)
    return np.maximum(np.floor(est + 1e-9), 0).astype(np.int64)


# -------------------------------------------------------------------------------------- series loading
@dataclass
class _Points:
    """The points of one series used for a window (from the last point at or before start)."""

    table: str
    key: str
    ts: np.ndarray
    values: dict[str, np.ndarray]
    files: list[str] = field(default_factory=list)
    source: str | None = None       # the lake's source label when the table has one

    @property
    def label(self) -> str:
        return f"{self.table} {self.key}" + (f" source={self.source}" if self.source else "")

    def info(self) -> SeriesInfo:
        gaps = np.diff(self.ts)
        return SeriesInfo(table=self.table, key=self.key, rows=int(self.ts.shape[0]),
                          first_ts=int(self.ts[0]), last_ts=int(self.ts[-1]),
                          max_gap=int(gaps.max()) if gaps.size else 0)


def check_coverage(table: str, key: str, ts: np.ndarray, start: int, end: int, max_gap: int = MAX_GAP) -> None:
    """DataError unless sorted point times ``ts`` cover ``[start, end)`` with no stale stretch > max_gap."""
    label = f"{table} {key}"
    if ts.size == 0:
        raise DataError(f"{label}: no data in the lake for this series")
    p = int(np.searchsorted(ts, start, side="right")) - 1
    if p < 0:
        raise DataError(
            f"{label}: no point at or before the run start {_iso(start)} (first point {_iso(ts[0])})"
        )
    w = ts[p:]
    w = w[w < end]
    nxt = np.minimum(np.append(w[1:], end), end)
    stale = nxt - w
    bad = np.nonzero(stale > max_gap)[0]
    if bad.size:
        i = int(bad[0])
        if i == w.size - 1:
            raise DataError(
                f"{label}: last point {_iso(w[i])} is {(end - w[i]) / 86400:.1f} days before the run end "
                f"{_iso(end)} (max {max_gap / 86400:g} days)"
            )
        raise DataError(
            f"{label}: gap of {(w[i + 1] - w[i]) / 86400:.1f} days from {_iso(w[i])} to {_iso(w[i + 1])} "
            f"inside the run window {_iso(start)} to {_iso(end)} (max {max_gap / 86400:g} days)"
        )


class _Aligner:
    def __init__(self, lake: Path, start: int, end: int, block_time: int, chain: str = "ethereum",
                 sources: Sequence[tuple[str, str]] = (), allow: Sequence[str] = (), checks: bool = True):
        self.lake = lake
        self.sources = dict(sources)        # run.sources: "table key" -> the source to read
        self.sources_used: set[str] = set()
        self.allow = tuple(allow)           # run.allow: checks downgraded to warnings
        self.checks = checks                # data check's rules on the window's points
        self.labels: dict[str, str] = {}    # market array -> the lake series it came from
        self.chain = chain
        self.start = int(start)
        self.end = int(end)
        self.block_time = int(block_time)
        self.ts = block_clock(start, end, block_time)
        self.n = int(self.ts.shape[0])
        if self.n == 0:
            raise DataError(f"empty run window: start {_iso(start)} is not before end {_iso(end)}")
        self.con: duckdb.DuckDBPyConnection = _lake.connect(lake)
        self.con.execute(
            "CREATE TEMP TABLE clock AS SELECT range AS k, CAST(? AS BIGINT) + range * CAST(? AS BIGINT) AS ts "
            "FROM range(?)", [self.start, self.block_time, self.n])
        self.series: list[SeriesInfo] = []
        self.files: set[str] = set()
        self.pending: list[tuple[str, _Points, int | None]] = []

    def close(self) -> None:
        self.con.close()

    # -- reading ------------------------------------------------------------------------------------
    def points(self, table: str, key: str, filters: dict[str, Any], values: Sequence[tuple[str, str]],
               *, source: bool) -> _Points | None:
        """The points of a series from the last one at or before start to the last one before end.

        ``values`` are (output name, SQL expression) pairs. Returns None when the lake has no rows for the
        series at all. Raises a DataError on several sources inside the window.
        """
        if not _lake.has_table(self.con, table):
            return None
        name = f"{table} {key}"
        chosen = self.sources.get(name) if source else None
        if chosen is not None:
            self.sources_used.add(name)
            filters = {**filters, "source": chosen}
        where, params = _lake.where_clause(filters)
        exprs = ", ".join(f"{expr} AS {name}" for name, expr in values)
        src = "source" if source else "NULL"
        # the raw columns the expressions read and the key columns, for data check's rules on the window
        schema = _lake.TABLES[table].names
        raw = [c for c in schema if c not in ("ts", "block", "source")
               and any(re.search(rf"\b{c}\b", e) for _, e in values)]
        keys = [c for c in _lake.KEYS[table] if c != "source"]
        extra = "".join(f', "{c}" AS "_r_{c}"' for c in dict.fromkeys(raw + keys))
        # only the rows that matter: from the last point at or before start (else the first point) to end
        tab = self.con.sql(
            f"WITH s AS (SELECT ts, {exprs}, {src} AS _source, filename{extra} FROM {table} WHERE {where}), "
            f"b AS (SELECT coalesce((SELECT max(ts) FROM s WHERE ts <= ?), (SELECT min(ts) FROM s)) AS lo) "
            f"SELECT s.* FROM s, b WHERE s.ts >= b.lo AND (s.ts < ? OR s.ts = b.lo) ORDER BY s.ts, s.filename",
            params=[*params, self.start, self.end],
        ).to_arrow_table()
        if tab.num_rows == 0:
            if chosen is not None:
                w, p = _lake.where_clause({k: v for k, v in filters.items() if k != "source"})
                have = self.con.sql(f"SELECT DISTINCT source FROM {table} WHERE {w} ORDER BY 1", params=p).fetchall()
                raise DataError(f"run.sources: \"{name}\" = \"{chosen}\": the lake at {self.lake} has no such source for "
                                f"this series (its sources: {', '.join(str(r[0]) for r in have) or 'none'})")
            return None
        ts = tab.column("ts").to_numpy()
        p = int(np.searchsorted(ts, self.start, side="right")) - 1
        lo = max(p, 0)
        hi = int(np.searchsorted(ts, self.end, side="left"))
        if hi <= lo:   # every point is at or after the end: keep the first so coverage can report it
            hi = lo + 1
        win = tab.slice(lo, hi - lo)
        wts = win.column("ts").to_numpy()
        src_name = None
        if source:
            sources = sorted(set(win.column("_source").to_pylist()))
            if len(sources) > 1:
                self._ambiguous(table, key, where, params, np.unique(wts), sources)
            src_name = sources[0] if sources else None
        self._check(table, key, src_name, win, raw + keys)
        keep = np.append(wts[1:] != wts[:-1], True)      # duplicate ts: the last row (file order) wins
        vals = {name: win.column(name).to_numpy(zero_copy_only=False)[keep].astype(np.float64)
                for name, _ in values}
        files = sorted(set(win.column("filename").to_pylist()))
        return _Points(table, key, wts[keep].astype(np.int64), vals, files, src_name)

    def _ambiguous(self, table: str, key: str, where: str, params: list, ts: np.ndarray, sources: list) -> None:
        """Several sources for one series in the window: ambiguous only if the data covers the window at all
        (else the coverage error says what is really wrong); the message says which key chooses one."""
        spans = self.con.sql(f"SELECT source, min(ts), max(ts), count(*) FROM {table} WHERE {where} "
                             f"GROUP BY source ORDER BY source", params=params).fetchall()
        listed = "; ".join(f"{s} ({_iso(lo)} to {_iso(hi)}, {n} rows)" for s, lo, hi, n in spans)
        try:
            check_coverage(table, key, ts, self.start, self.end)
        except DataError as exc:
            raise DataError(f"{exc} (sources in the lake: {listed})") from None
        raise DataError(
            f"{table} {key}: ambiguous, {len(sources)} sources inside the run window: {', '.join(sources)} "
            f"(window {_iso(self.start)} to {_iso(self.end)}; in the lake: {listed}); choose one with "
            f"run.sources = {{ \"{table} {key}\" = \"{sources[0]}\" }} (or import them into separate lakes)")

    def _check(self, table: str, key: str, source: str | None, win: pa.Table, cols: list[str]) -> None:
        """data check's error rules on the raw points of the window (duplicates kept): a DataError naming the
        series, the first bad time and value, unless run.allow downgrades it."""
        from backtest.data.check import check_window

        if not self.checks or table not in ("prices", "exchange_rates", "oracle_prices", "rates", "market_params",
                                            "gas"):
            return
        import polars as pl

        frame = pl.from_arrow(pa.table({"ts": win.column("ts"), "filename": win.column("filename"),
                                        **{c: win.column(f"_r_{c}") for c in dict.fromkeys(cols)}}))
        check_window(table, key, source, frame, start=self.start, end=self.end, allow=self.allow,
                     lake=str(self.lake))

    def require(self, pts: _Points | None, table: str, key: str) -> _Points:
        if pts is None:
            raise DataError(f"{table} {key}: no data in the lake at {self.lake} for this series")
        check_coverage(table, key, pts.ts, self.start, self.end)
        return pts

    def use(self, pts: _Points) -> None:
        self.series.append(pts.info())
        self.files.update(pts.files)

    # -- joining ------------------------------------------------------------------------------------
    def add(self, name: str, pts: _Points, max_age: int | None = None) -> None:
        """Queue ``pts`` for the ASOF join; its columns come back from :meth:`join` as ``name.col``.

        With ``max_age``, a block whose latest point is older than ``max_age`` seconds gets NaN.
        """
        self.labels[name] = pts.label
        self.pending.append((name, pts, max_age))

    def join(self) -> dict[str, np.ndarray]:
        """ASOF-join every queued series onto the block clock in DuckDB.

        The series are first ASOF-joined onto the union of their point times (a small table: one row per
        distinct point time, one column per series value plus each series' own point time), then that
        table is ASOF-joined once onto the clock's block times: one pass over the blocks instead of one per
        series. Returns float64 arrays of len(clock), keyed ``name.col``.
        """
        if not self.pending:
            return {}
        con = self.con
        parts, cols, big = [], [], []
        for i, (name, pts, max_age) in enumerate(self.pending):
            t = f"p{i}"
            arrow = pa.table({"ts": pa.array(pts.ts, pa.int64()),
                              **{f"c{j}": pa.array(v, pa.float64()) for j, v in enumerate(pts.values.values())}})
            con.register(f"{t}_src", arrow)
            con.execute(f"CREATE TEMP TABLE {t} AS SELECT * FROM {t}_src ORDER BY ts")
            con.unregister(f"{t}_src")
            parts.append(f"SELECT ts FROM {t}")
            cols.append(f"{t}.ts AS {t}_ts")
            for j, col in enumerate(pts.values):
                cols.append(f"{t}.c{j} AS {t}_c{j}")
                expr = f"u.{t}_c{j}"
                if max_age is not None:
                    expr = f"CASE WHEN clock.ts - u.{t}_ts <= {int(max_age)} THEN {expr} END"
                big.append((f"{name}.{col}", f"{expr} AS {t}_c{j}", f"{t}_c{j}"))
        joins = " ".join(f"ASOF LEFT JOIN p{i} ON u0.ts >= p{i}.ts" for i in range(len(self.pending)))
        con.execute(
            f"CREATE TEMP TABLE u AS SELECT u0.ts AS ts, {', '.join(cols)} "
            f"FROM (SELECT DISTINCT ts FROM ({' UNION ALL '.join(parts)})) AS u0 {joins}"
        )
        # no ORDER BY: each row carries its block index k, which places it (cheaper than sorting)
        tab = con.sql(
            f"SELECT clock.k AS _k, {', '.join(e for _, e, _ in big)} "
            f"FROM clock ASOF LEFT JOIN u ON clock.ts >= u.ts"
        ).to_arrow_table()
        k = tab.column("_k").to_numpy()
        if k.shape[0] != self.n:
            raise DataError(f"internal alignment error: {k.shape[0]} rows for {self.n} blocks")
        out: dict[str, np.ndarray] = {}
        for key, _, col in big:
            arr = np.empty(self.n, dtype=np.float64)
            arr[k] = tab.column(col).to_numpy()
            out[key] = arr
        self.pending.clear()
        return out

    def blocks(self) -> np.ndarray:
        """Block numbers of the clock: interpolated from the lake's ``blocks`` table where it has one,
        else the Merge-anchor estimate on Ethereum, else the block index (other chains)."""
        from backtest.config import CHAINS

        # the chain's own block (slot) time, not the replay step, extrapolates beyond the known blocks
        slot = SLOT if self.chain == "ethereum" else (CHAINS[self.chain][0] / 1000 if self.chain in CHAINS
                                                      else self.block_time)
        if _lake.has_table(self.con, "blocks"):
            # the points bracketing the window (plus everything inside it)
            last = int(self.ts[-1])
            tab = self.con.sql(
                "SELECT ts, block, filename FROM blocks "
                "WHERE ts >= coalesce((SELECT max(ts) FROM blocks WHERE ts <= ?), ?) "
                "AND ts <= coalesce((SELECT min(ts) FROM blocks WHERE ts >= ?), ?) ORDER BY ts",
                params=[self.start, self.start, last, last],
            ).to_arrow_table()
            if tab.num_rows:
                kt = tab.column("ts").to_numpy()
                self.series.append(SeriesInfo("blocks", "blocks", tab.num_rows, int(kt[0]), int(kt[-1]),
                                              int(np.diff(kt).max()) if kt.size > 1 else 0))
                self.files.update(tab.column("filename").to_pylist())
                return estimate_blocks(self.ts, kt, tab.column("block").to_numpy(), slot=slot)
        if self.chain == "ethereum":
            return estimate_blocks(self.ts)
        return np.arange(self.n, dtype=np.int64)       # other chains: the step index (no anchor known)


# ------------------------------------------------------------------------------------------- align
def align(config: Config, checks: bool = False) -> Market:
    """Build the aligned :class:`Market` of ``config`` from its lake (``config.run.data``).

    With ``checks`` (what run, sweep and the API use) the points of the window are held to ``data check``'s
    error rules first (:func:`backtest.data.check.check_window`; ``run.allow`` downgrades named ones).

    See the module docstring for the series read, the coverage rules and the fallbacks. Config overrides
    (market.ltv, liquidation_threshold, liquidation_bonus, liquidation_protocol_fee, borrow_rate,
    supply_rate, and a numeric costs.gas) replace the corresponding arrays, and those series are then not
    read. ``[[scenario]]`` overlays are applied last (:func:`apply_scenarios`).
    """
    run, mk = config.run, config.market
    lake = Path(run.data)
    if not lake.is_dir():
        raise DataError(f"data lake not found: {lake} (run.data); create one with `backtest data synth` "
                        "or `backtest data import`")
    al = _Aligner(lake, run.start, run.end, run.block_time, run.chain, sources=run.sources, allow=run.allow,
                  checks=checks)
    try:
        n = al.n
        debt, proto = mk.debt, mk.protocol
        # the token the position holds: the LRT of strategy.restake (its price, exchange rate, venue
        # parameters, rewards and slashes), else market.collateral; the hold benchmark stays market.collateral
        coll = config.strategy.restake if config.strategy.restake != "none" else mk.collateral
        restaked = coll != mk.collateral

        # market price of the collateral in the debt asset
        key = f"{coll}/{debt}"
        pts = al.require(al.points("prices", key, {"base": coll, "quote": _aliases(debt)},
                                   [("v", "price")], source=True), "prices", key)
        al.use(pts)
        al.add("price", pts)

        # exchange rate (redemption value) of the collateral
        key = coll
        pts = al.require(al.points("exchange_rates", key, {"token": coll}, [("v", "rate")], source=True),
                         "exchange_rates", key)
        al.use(pts)
        al.add("xrate", pts)
        # CAPO snapshots taken before the window read the lake's rates from before it (no look-ahead)
        capo_pre = _capo_history(al, coll, getattr(pts, "source", None), mk.capo_snapshot_age) if mk.oracle == "capo" else None

        # the hold benchmark's token when restaking: the base LST's price and exchange rate
        if restaked:
            key = f"{mk.collateral}/{debt}"
            pts = al.require(al.points("prices", key, {"base": mk.collateral, "quote": _aliases(debt)},
                                       [("v", "price")], source=True), "prices", key)
            al.use(pts)
            al.add("hprice", pts)
            pts = al.require(al.points("exchange_rates", mk.collateral, {"token": mk.collateral}, [("v", "rate")],
                                       source=True), "exchange_rates", mk.collateral)
            al.use(pts)
            al.add("hxrate", pts)

        # restaking rewards / points per collateral token, and what one unit is worth (_reward_series)
        rw = config.strategy.rewards
        reward_value = rw.value if rw is not None else "zero"
        if reward_value != "zero":
            _queue_rewards(al, rw, coll, debt)

        # ETH/USD (optional): the debt asset's own USD series, else ETH's
        for base in dict.fromkeys([debt, *(_aliases(debt) if debt in ETH_LIKE else [])]):
            key = f"{base}/USD"
            pts = al.points("prices", key, {"base": base, "quote": "USD"}, [("v", "price")], source=True)
            if pts is not None and (pts.ts < al.end).any() and pts.ts[-1] >= al.start - MAX_GAP:
                al.use(pts)
                al.add("eth_usd", pts, max_age=MAX_GAP)
                break

        # borrow APR of the debt asset (or, for the AdaptiveCurveIRM, the utilisation it is computed from)
        src = mk.rates_from or proto
        adaptive = mk.irm == "adaptive-curve"
        if adaptive and mk.utilization is None:
            key = f"{src}:{debt}:utilization"
            pts = al.require(al.points("rates", key, {"protocol": src, "asset": _aliases(debt)},
                                       [("v", "utilization")], source=False), "rates", key)
            nulls = np.isnan(pts.values["v"])
            if nulls.any():
                raise DataError(f"rates {key}: no utilization at {_iso(pts.ts[nulls][0])} (the AdaptiveCurveIRM "
                                f"needs one at every point; set market.utilization for a constant)")
            al.use(pts)
            al.add("util", pts)
        elif not adaptive and mk.borrow_rate is None:
            key = f"{src}:{debt}:borrow_apr"
            pts = al.require(al.points("rates", key, {"protocol": src, "asset": _aliases(debt)},
                                       [("v", "borrow_apr")], source=False), "rates", key)
            al.use(pts)
            al.add("borrow", pts)

        # supply APR of the collateral (none where collateral is not lent out: Morpho Blue, Compound III)
        no_supply = proto in NO_SUPPLY_YIELD
        if mk.supply_rate is None and not no_supply:
            key = f"{src}:{coll}:supply_apr"
            pts = al.require(al.points("rates", key, {"protocol": src, "asset": _aliases(coll)},
                                       [("v", "supply_apr")], source=False), "rates", key)
            al.use(pts)
            al.add("supply", pts)

        # risk parameters (per venue: see _param_overrides)
        overrides = _param_overrides(mk)
        if any(v is None for v in overrides.values()):
            emode = mk.emode if proto not in ("morpho-blue", "compound-v3", "generic") else None
            al.add("par", _market_params(al, proto, coll, emode, debt))

        # gas price
        gas_fixed = isinstance(config.costs.gas, (int, float)) and not isinstance(config.costs.gas, bool)
        if not gas_fixed:
            key = "base_fee_gwei+priority_fee_gwei"
            pts = al.require(al.points("gas", key, {},
                                       [("v", "base_fee_gwei + coalesce(priority_fee_gwei, 0.0)")], source=False),
                             "gas", key)
            al.use(pts)
            al.add("gas", pts)

        # the protocol oracle's feed (chainlink mode only)
        if mk.oracle == "chainlink":
            key = f"{proto}:{coll}/{debt}"
            pts = al.require(al.points("oracle_prices", key,
                                       {"protocol": proto, "asset": coll, "quote": _aliases(debt)},
                                       [("v", "price")], source=False), "oracle_prices", key)
            al.use(pts)
            al.add("oracle", pts)

        arr = al.join()
        nan = np.full(n, np.nan)

        def const(v: float | None) -> np.ndarray:
            return np.full(n, float(v))

        par = {name: (const(v) if v is not None else arr[f"par.{name}"]) for name, v in overrides.items()}
        if proto == "morpho-blue":
            # one LLTV (the lake's / default liquidation_threshold): borrowing stops where liquidation starts
            par["ltv"] = par["lt"].copy()
            par["bonus"] = np.minimum(1.15, 1.0 / (1.0 - 0.3 * (1.0 - par["lt"]))) - 1.0
            par["pfee"] = np.zeros(n)
        if adaptive:
            util = const(mk.utilization) if mk.utilization is not None else arr["util.v"]
            borrow = np.zeros(n)            # the IRM's rate is computed after the overlays (apply_irm)
        else:
            util = nan.copy()
            borrow = const(mk.borrow_rate) if mk.borrow_rate is not None else arr["borrow.v"]
        if no_supply:
            supply = np.zeros(n)
        else:
            supply = const(mk.supply_rate) if mk.supply_rate is not None else arr["supply.v"]
        unused = sorted(set(al.sources) - al.sources_used)
        if unused:
            raise DataError(f"run.sources: {', '.join(repr(u) for u in unused)} is not a series this run reads with "
                            f"several sources (it reads: {', '.join(i.table + ' ' + i.key for i in al.series)})")
        block = al.blocks()
        xrate, slash = _slashes(al, coll, arr["xrate.v"])
        reward = None
        if reward_value != "zero":
            reward = _reward_series(al, rw, coll, arr)
        labels = {"price": al.labels.get("price"), "xrate": al.labels.get("xrate"),
                  "hold_price": al.labels.get("hprice"), "hold_xrate": al.labels.get("hxrate")}
        for name, attr in (("ltv", "ltv"), ("lt", "liquidation_threshold")):
            labels[name] = (f"market.{attr} = {overrides[name]:g} (config)" if overrides[name] is not None
                            else al.labels.get("par", "market_params (defaults)"))
        market = Market(
            ts=al.ts, block=block, price=arr["price.v"], xrate=xrate, reward=reward, slash=slash,
            hold_price=arr["hprice.v"] if restaked else None, hold_xrate=arr["hxrate.v"] if restaked else None,
            eth_usd=arr.get("eth_usd.v", nan), borrow_apr=borrow, supply_apr=supply,
            oracle_feed=arr.get("oracle.v", nan.copy()),
            ltv=par["ltv"], lt=par["lt"], bonus=par["bonus"], pfee=par["pfee"],
            gas_gwei=const(config.costs.gas) if gas_fixed else arr["gas.v"], utilization=util, series=al.series,
            data_hash=_lake.data_hash(sorted(al.files), root=lake) if al.files else "",
        )
    finally:
        al.close()
    market = apply_scenarios(market, config.scenarios, collateral=coll, debt=mk.debt, hold=mk.collateral)
    if adaptive:
        market = apply_irm(market, mk.rate_at_target if mk.rate_at_target is not None else IRM_INITIAL_RATE)
    _check_arrays(market, labels, config.scenarios)
    if capo_pre is not None:
        market.capo_pre_ts, market.capo_pre_xrate = capo_pre
    return market


def _capo_history(al: _Aligner, token: str, source: str | None, age: int) -> tuple[np.ndarray, np.ndarray]:
    """The exchange-rate points before the window, from the last one at or before block 0's CAPO snapshot
    time ((start // age) * age - age, the engines' rule) up to start: what snapshots before the window read."""
    snap0 = (al.start // age) * age - age
    where, params = _lake.where_clause({"token": token, **({"source": source} if source else {})})
    ts, rate = al.con.execute(
        f"WITH s AS (SELECT ts, rate FROM exchange_rates WHERE {where} AND ts < ?) SELECT ts, rate FROM s "
        f"WHERE ts >= coalesce((SELECT max(ts) FROM s WHERE ts <= ?), ?) ORDER BY ts",
        [*params, al.start, snap0, snap0]).fetchnumpy().values()
    ts, rate = np.asarray(ts, dtype=np.int64), np.asarray(rate, dtype=np.float64)
    if ts.size == 0 or ts[0] > snap0:
        raise DataError(f"exchange_rates {token}: the capo oracle's first snapshot is taken at {_iso(snap0)} "
                        f"(market.capo_snapshot_age before the window), but the lake's rates start at "
                        f"{_iso(ts[0]) if ts.size else _iso(al.start) + ' or later'}; import older rates or start "
                        f"the run later")
    keep = np.append(ts[1:] != ts[:-1], True)        # duplicate ts: the last row wins, as in the window
    return ts[keep], rate[keep]


def _check_arrays(market: Market, labels: dict[str, str | None], scenarios) -> None:
    """Every block needs a positive, finite price, exchange rate and LTV / LT: name the lake series and the
    first block time that has none (what a run.allow-ed NaN, or an overlay, leaves behind)."""
    for name, label in labels.items():
        arr = getattr(market, name, None)
        if arr is None or label is None:
            continue
        bad = ~np.isfinite(arr) | (arr <= 0)
        if bad.any():
            i = int(np.argmax(bad))
            why = " after the [[scenario]] overlays" if scenarios and name in ("price", "hold_price") else ""
            at = _dt.datetime.fromtimestamp(int(market.ts[i]), _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            raise DataError(f"{label}: the value read at block time {at} is {float(arr[i]):.6g}{why} "
                            f"({int(bad.sum())} of {arr.size} blocks); the replay needs a positive, finite {name} "
                            f"at every block: fix the series in the lake (run.allow cannot downgrade this)")


_PER_SECOND = ("amount / CASE WHEN lower(unit) LIKE '%year%' THEN 31536000.0 "
               "WHEN lower(unit) LIKE '%week%' THEN 604800.0 ELSE 86400.0 END")


def _queue_rewards(al: _Aligner, rw, token: str, debt: str) -> None:
    """Queue the reward series of ``token`` (rows kind = "points" or kind = the reward token; ``amount`` per
    collateral token per day, or per week / year when ``unit`` says so) and, for token rewards, the reward
    token's price: TOKEN/ETH (or the debt asset) if the lake has it, else TOKEN/USD (divided by ETH/USD)."""
    kind = "points" if rw.value == "points" else rw.token
    key = f"{token}:{kind}"
    pts = al.points("rewards", key, {"token": token, "kind": kind}, [("v", f"coalesce({_PER_SECOND}, 0.0)")],
                    source=False)
    if pts is None:
        raise DataError(f"rewards {key}: no rows in the lake at {al.lake} (strategy.rewards.value = "
                        f"{rw.value!r}); import them or set strategy.rewards.value = \"zero\"")
    al.use(pts)
    al.add("rwd", pts)
    if rw.value == "token":
        key = f"{rw.token}/{debt}"
        pts = al.points("prices", key, {"base": rw.token, "quote": _aliases(debt)}, [("v", "price")], source=True)
        name = "rtok"
        if pts is None:
            key = f"{rw.token}/USD"
            pts = al.points("prices", key, {"base": rw.token, "quote": "USD"}, [("v", "price")], source=True)
            name = "rtok_usd"
        if pts is None:
            raise DataError(f"prices {key}: no price of the reward token {rw.token} in the lake at {al.lake} "
                            f"(a {rw.token}/ETH or {rw.token}/USD series)")
        # no coverage rule: the price is needed only where a reward accrues (checked in _reward_series)
        al.use(pts)
        al.add(name, pts)


def _reward_series(al: _Aligner, rw, token: str, arr: dict[str, np.ndarray]) -> np.ndarray:
    """Market.reward: the cumulative value (debt asset) of the rewards accrued by one collateral token held
    from block 0, R[0] = 0, R[b] = R[b-1] + units per second at b-1 x value of a unit at b-1 x (ts[b] - ts[b-1]).
    Before the first reward row the rate is 0 (the series is a step function, like market_params)."""
    rate = np.nan_to_num(arr["rwd.v"], nan=0.0)
    if rw.value == "points":
        unit = np.full(al.n, float(rw.price_per_point))
    elif "rtok.v" in arr:
        unit = arr["rtok.v"]
    else:
        eth_usd = arr.get("eth_usd.v")
        if eth_usd is None:
            raise DataError(f"prices ETH/USD: needed to value {rw.token} rewards priced in USD ({rw.token}/USD); "
                            f"add it, or a {rw.token}/ETH price")
        unit = arr["rtok_usd.v"] / eth_usd
    v = rate * unit
    bad = (rate != 0) & ~np.isfinite(v)
    if bad.any():
        raise DataError(f"rewards {token}: no value for the reward unit at {_iso(al.ts[np.flatnonzero(bad)[0]])} "
                        f"(missing price)")
    v = np.where(rate != 0, v, 0.0)
    out = np.zeros(al.n)
    if al.n > 1:
        out[1:] = np.cumsum(v[:-1] * np.diff(al.ts).astype(np.float64))
    return out


def _slashes(al: _Aligner, token: str, xrate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply the lake's slashing events (``events`` token, kind = "slash", value = fraction of the exchange
    rate lost) to the exchange rate from the first block at or after each event on (market-level), and return
    (xrate, slash) with slash[b] the combined fraction cut at block b (0 at block 0: a slash before the run
    only lowers the rate the position opens at)."""
    slash = np.zeros(al.n)
    if not _lake.has_table(al.con, "events"):
        return xrate, slash
    tab = al.con.sql("SELECT ts, value, filename FROM events WHERE token = ? AND kind = 'slash' AND ts < ? "
                     "ORDER BY ts, filename", params=[token, al.end]).to_arrow_table()
    if tab.num_rows == 0:
        return xrate, slash
    ts = tab.column("ts").to_numpy()
    val = tab.column("value").to_numpy(zero_copy_only=False).astype(np.float64)
    bad = ~((val > 0) & (val < 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"events {token}:slash at {_iso(ts[i])}: value {val[i]!r} must be a fraction in (0, 1)")
    xrate = xrate.copy()
    for t, f in zip(ts, val):
        i = int(np.searchsorted(al.ts, t, side="left"))
        if i >= al.n:
            continue
        xrate[i:] *= 1.0 - f
        if i > 0:
            slash[i] = 1.0 - (1.0 - slash[i]) * (1.0 - f)
    al.files.update(tab.column("filename").to_pylist())
    al.series.append(SeriesInfo("events", f"{token}:slash", int(tab.num_rows), int(ts[0]), int(ts[-1]),
                                int(np.diff(ts).max()) if ts.size > 1 else 0))
    return xrate, slash


IRM_INITIAL_RATE = 0.04     # AdaptiveCurveIrm ConstantsLib.INITIAL_RATE_AT_TARGET (4 %/yr)


def apply_irm(market: Market, rate_at_target0: float = IRM_INITIAL_RATE) -> Market:
    """Morpho's AdaptiveCurveIRM as a market-level precomputation: the borrow APR charged from each block to
    the next, from the utilisation path (after the overlays), added to what ``borrow_apr`` already holds (0,
    or a ``rate_spike`` overlay on top of the IRM). The rate at target starts at ``rate_at_target0``.
    Runs in the core (``backtest._core.adaptive_curve_rates``); ``backtest.reference.adaptive_curve_rates`` is
    the same model in plain Python, and tests/unit/test_venues.py keeps the two equal."""
    from backtest import _core

    u = np.ascontiguousarray(market.utilization, dtype=np.float64)
    if not np.all(np.isfinite(u)):
        i = int(np.argmax(~np.isfinite(u)))
        at = _dt.datetime.fromtimestamp(int(market.ts[i]), _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise DataError(f"utilization (rates ...:utilization, or market.utilization): no value at block time {at} "
                        f"({int((~np.isfinite(u)).sum())} of {u.size} blocks); the AdaptiveCurveIRM needs one per "
                        "block")
    rate, _ = _core.adaptive_curve_rates(market.ts, u, float(rate_at_target0))
    kw = {name: getattr(market, name) for name in Market.ARRAYS}
    kw["borrow_apr"] = market.borrow_apr + rate
    return Market(**kw, series=list(market.series), data_hash=market.data_hash)


def _param_overrides(mk) -> dict[str, float | None]:
    """The risk-parameter arrays the config fixes, per venue (None = read market_params / the defaults).

    Aave family: ltv, liquidation_threshold, liquidation_bonus, liquidation_protocol_fee, each optional.
    generic: all four from the config (required there). Morpho Blue: market.lltv fixes ltv = lt = LLTV (the
    bonus is then LIF - 1, no fee). Compound III: ltv = borrow CF, lt = liquidate CF, bonus = 1 -
    liquidation_factor (the absorb penalty), no fee."""
    if mk.protocol == "morpho-blue":
        v = mk.lltv
        return {"ltv": v, "lt": v, "bonus": None if v is None else _params.morpho_lif(v) - 1.0,
                "pfee": None if v is None else 0.0}
    if mk.protocol == "compound-v3":
        lf = mk.liquidation_factor
        return {"ltv": mk.ltv, "lt": mk.liquidation_threshold, "bonus": None if lf is None else 1.0 - lf,
                "pfee": 0.0}
    return {"ltv": mk.ltv, "lt": mk.liquidation_threshold, "bonus": mk.liquidation_bonus,
            "pfee": mk.liquidation_protocol_fee}


def _market_params(al: _Aligner, protocol: str, asset: str, emode: str | None, debt: str = "WETH") -> _Points:
    """Lake market_params for the key, with defaults before the lake's first row and for null fees."""
    key = f"{protocol}:{asset}:{emode if emode is not None else '-'}"
    cols = [("ltv", "ltv"), ("lt", "liquidation_threshold"), ("bonus", "liquidation_bonus"),
            ("pfee", "protocol_fee")]
    lake_pts = al.points("market_params", key, {"protocol": protocol, "asset": asset, "emode": emode},
                         cols, source=False)
    try:
        defaults = _params.default_params(protocol, asset, emode, debt)
        default_err = None
    except DataError as exc:
        defaults, default_err = [], exc
    d_ts = np.array([e[0] for e in defaults], dtype=np.int64)
    d_val = {name: np.array([e[i + 1] for e in defaults], dtype=np.float64)
             for i, name in enumerate(("ltv", "lt", "bonus", "pfee"))}

    if lake_pts is None:
        if default_err is not None:
            raise DataError(f"market_params {key}: no rows in the lake and {default_err}")
        ts, vals = d_ts, {k: v.copy() for k, v in d_val.items()}
        from_lake = np.zeros(ts.shape[0], dtype=bool)
        files: list[str] = []
    else:
        pre = d_ts < lake_pts.ts[0]
        ts = np.concatenate([d_ts[pre], lake_pts.ts])
        vals = {k: np.concatenate([d_val[k][pre], lake_pts.values[k]]) for k in lake_pts.values}
        from_lake = np.concatenate([np.zeros(int(pre.sum()), dtype=bool),
                                    np.ones(lake_pts.ts.shape[0], dtype=bool)])
        files = lake_pts.files
    p = int(np.searchsorted(ts, al.start, side="right")) - 1
    if p < 0:
        why = f"; defaults: {default_err}" if default_err is not None else ""
        raise DataError(f"market_params {key}: no parameters in force at the run start {_iso(al.start)} "
                        f"(first from {_iso(ts[0])}){why}")
    keep = slice(p, max(p + 1, int(np.searchsorted(ts, al.end, side="left"))))
    ts, from_lake = ts[keep], from_lake[keep]
    vals = {k: v[keep] for k, v in vals.items()}
    null_fee = np.isnan(vals["pfee"])
    if null_fee.any():
        if default_err is not None:
            raise DataError(f"market_params {key}: protocol_fee is null and {default_err}")
        idx = np.searchsorted(d_ts, ts[null_fee], side="right") - 1
        if (idx < 0).any():
            raise DataError(f"market_params {key}: protocol_fee is null at {_iso(ts[null_fee][idx < 0][0])} "
                            f"and the default parameters start later, on {_iso(d_ts[0])}")
        vals["pfee"][null_fee] = d_val["pfee"][idx]
    if from_lake.any():
        al.use(_Points("market_params", key, ts[from_lake], {}, files))
    if (~from_lake).any() or null_fee.any():
        used = ~from_lake | null_fee
        al.use(_Points("params", f"{key} (backtest.params defaults)", ts[used], {}))
    return _Points("market_params", key, ts, vals, files)


# ------------------------------------------------------------------------------------------- scenarios
def scenario_shape(ts: np.ndarray, at: int, duration: int, shape: str) -> np.ndarray:
    """The overlay's weight s(t) in [0, 1] at times ``ts``.

    ``step``: 1 on ``[at, at + duration)``, else 0. ``v``: 0 at ``at``, rising linearly to 1 at
    ``at + duration/2`` and back to 0 at ``at + duration``; 0 outside.
    """
    t = np.asarray(ts, dtype=np.float64)
    s = np.zeros(t.shape, dtype=np.float64)
    if duration <= 0:
        return s
    if shape == "step":
        s[(t >= at) & (t < at + duration)] = 1.0
    elif shape == "v":
        half = duration / 2.0
        s = np.clip(1.0 - np.abs(t - (at + half)) / half, 0.0, 1.0)
    else:
        raise DataError(f"unknown scenario shape {shape!r} (v | step)")
    return s


def apply_scenarios(market: Market, scenarios: Sequence[ScenarioConfig], collateral: str | None = None,
                    debt: str | None = None, hold: str | None = None) -> Market:
    """Apply ``[[scenario]]`` overlays; returns a new Market (the input's arrays are not modified).

    ``depeg`` multiplies the market price by ``1 - depth * s(t)``; ``rate_spike`` adds ``depth`` to the
    borrow APR during ``[at, at + duration)`` (its ``shape`` is ignored); ``utilization`` adds
    ``depth * s(t)`` to the utilisation (capped at 1), the input of Morpho's AdaptiveCurveIRM. When ``collateral`` / ``debt`` are
    given, a depeg applies only to the collateral and a rate spike only to the debt asset (ETH = WETH);
    others are skipped. Only ``Market.price`` moves under a depeg (not ``oracle_feed``), and
    ``Market.hold_price`` when the depeg's asset is the hold benchmark's token ``hold`` (default: the
    collateral; with a restaked LRT it is the base LST, so a depeg of the LRT leaves the benchmark alone).
    """
    if not scenarios:
        return market
    price = market.price.copy()
    hold_price = market.hold_price.copy()
    hold = hold if hold is not None else collateral
    borrow = market.borrow_apr.copy()
    util = market.utilization.copy()
    for sc in scenarios:
        if sc.kind == "depeg":
            on_price = collateral is None or _same_asset(sc.asset, collateral)
            on_hold = hold is None or _same_asset(sc.asset, hold)
            if not (on_price or on_hold):
                continue
            lo, hi = np.searchsorted(market.ts, [sc.at, sc.at + sc.duration], side="left")
            if hi > lo:
                s = scenario_shape(market.ts[lo:hi], sc.at, sc.duration, sc.shape)
                if on_price:
                    price[lo:hi] *= 1.0 - sc.depth * s
                if on_hold:
                    hold_price[lo:hi] *= 1.0 - sc.depth * s
        elif sc.kind == "rate_spike":
            if debt is not None and not _same_asset(sc.asset, debt):
                continue
            lo, hi = np.searchsorted(market.ts, [sc.at, sc.at + sc.duration], side="left")
            borrow[lo:hi] += sc.depth
        elif sc.kind == "utilization":
            if debt is not None and not _same_asset(sc.asset, debt):
                continue
            lo, hi = np.searchsorted(market.ts, [sc.at, sc.at + sc.duration], side="left")
            if hi > lo:
                s = scenario_shape(market.ts[lo:hi], sc.at, sc.duration, sc.shape)
                util[lo:hi] = np.minimum(util[lo:hi] + sc.depth * s, 1.0)
        else:
            raise DataError(f"unknown scenario kind {sc.kind!r} (depeg | rate_spike | utilization)")
    kw = {name: getattr(market, name) for name in Market.ARRAYS}
    kw["price"] = price
    kw["hold_price"] = hold_price
    kw["borrow_apr"] = borrow
    kw["utilization"] = util
    return Market(**kw, series=list(market.series), data_hash=market.data_hash)


def timed_align(config: Config) -> tuple[Market, float]:
    """:func:`align` and the seconds it took (for benchmarks and the CLI's verbose output)."""
    t0 = time.perf_counter()
    m = align(config)
    return m, time.perf_counter() - t0


__all__ = ["align", "apply_irm", "apply_scenarios", "block_clock", "check_coverage", "estimate_blocks", "scenario_shape",
           "timed_align", "MAX_GAP", "MERGE_BLOCK", "MERGE_TS"]
