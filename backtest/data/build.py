"""The recipe of an aligned market: which lake series a market needs and how they become a :class:`Market`.

The clock is ``ts[k] = run.start + k * run.block_time`` for ``k < ceil((run.end - run.start) / block_time)``.
Each series takes, at every block, its last value at or before the block's time (DuckDB ``ASOF LEFT JOIN``
against a generated range of block times; the arrays come back through Arrow, never through a Python loop
over blocks).

Series read (market = the config's ``[market]``; "ETH" and "WETH" are the same asset in every match):

=================  ==========================================================  ==============================
Market array       lake rows                                                   required
=================  ==========================================================  ==============================
price              prices collateral/debt: direct, inverse or a cross through USD  yes
                   / ETH (backtest.data.prices; the direct pair wins)
underlying_price   prices underlying/debt, resolved likewise (ETH for an ETH LST)  unless the same asset: 1.0
gas_token_price    prices gas token/debt, resolved likewise (ETH on Ethereum)   unless the same asset: 1.0
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
oracle_feed        oracle_prices protocol, asset=collateral, quote=debt, else   if market.oracle = "chainlink"
                   collateral/USD divided by debt/USD rows
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
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from backtest import venues as _venues
from backtest.data import lake as _lake
from backtest.data.asof import MAX_GAP, ETH_LIKE, Aligner, Points, aliases, iso
from backtest.data.market import Market, SeriesInfo
from backtest.data.prices import PriceResolver, same_as
from backtest.data.request import MarketRequest, read_key
from backtest.data.restaking import queue_rewards, reward_series, slashes
from backtest.data.scenarios import apply_scenarios
from backtest.errors import DataError


def build(req: MarketRequest, checks: bool = False) -> Market:
    """The aligned :class:`Market` of ``req`` from its lake: :func:`read` then :func:`assemble`.

    With ``checks`` (what run, sweep and the API use) the points of the window are held to ``data check``'s
    error rules first (:func:`backtest.data.check.check_window`; ``req.allow`` downgrades named ones).
    With ``req.irm = "adaptive-curve"`` the borrow APR holds only the overlays: the IRM's rate is added
    above the data layer (``backtest.plan``), since it runs in the kernel."""
    return assemble(read(req, checks), req)


@dataclass
class Read:
    """The lake series of a request on its block clock, before its constants and overlays (see
    :func:`backtest.data.request.read_key`: requests with equal keys share one)."""
    key: MarketRequest
    ts: np.ndarray
    block: np.ndarray
    arr: dict[str, np.ndarray]
    xrate: np.ndarray
    slash: np.ndarray
    reward: np.ndarray | None
    labels: dict[str, str]
    series: list[SeriesInfo]
    data_hash: str
    capo_pre: tuple[np.ndarray, np.ndarray] | None = None
    derived: dict[str, str] = field(default_factory=dict)
    files: tuple[str, ...] = ()         # the lake files read, relative to the lake (for its provenance)


def read(req: MarketRequest, checks: bool = False) -> Read:
    """Read and ASOF-join every lake series ``req`` needs (the expensive part: one DuckDB join).

    Series that a constant of the request replaces (market.ltv, borrow_rate, a fixed gas price...) are not
    read; which constants are set matters here, not their values."""
    lake = Path(req.lake)
    if not lake.is_dir():
        raise DataError(f"data lake not found: {lake} (run.data); create one with `backtest data synth` "
                        "or `backtest data import`")
    al = Aligner(lake, req.start, req.end, req.block_time, sources=req.sources, allow=req.allow, checks=checks)
    try:
        return _read(al, req, lake)
    finally:
        al.close()


def _read(al: Aligner, req: MarketRequest, lake: Path) -> Read:
    n = al.n
    debt, proto, coll = req.debt, req.protocol, req.collateral
    prices = PriceResolver(al)
    # market price of the held token in the debt asset (direct, inverse or a cross: backtest.data.prices)
    prices.queue("price", coll, debt)

    # exchange rate (redemption value) of the collateral
    key = coll
    pts = al.require(al.points("exchange_rates", key, {"token": coll}, [("v", "rate")], source=True),
                     "exchange_rates", key)
    al.use(pts)
    al.add("xrate", pts)
    # CAPO snapshots taken before the window read the lake's rates from before it (no look-ahead)
    capo_pre = capo_history(al, coll, getattr(pts, "source", None), req.capo_snapshot_age) if req.oracle == "capo" else None

    # the hold benchmark's token when restaking: the base LST's price and exchange rate
    if req.restaked:
        prices.queue("hprice", req.hold, debt)
        pts = al.require(al.points("exchange_rates", req.hold, {"token": req.hold}, [("v", "rate")],
                                   source=True), "exchange_rates", req.hold)
        al.use(pts)
        al.add("hxrate", pts)

    # the collateral's underlying and the chain's gas token in the debt asset (1.0 where they are the debt)
    if not same_as(req.underlying, debt):
        prices.queue("underlying", req.underlying, debt, why="the collateral's underlying")
    if not same_as(req.gas_token, debt):
        prices.queue("gas_token", req.gas_token, debt, why=f"gas on {req.chain} is paid in {req.gas_token}")

    # restaking rewards / points per collateral token, and what one unit is worth (reward_series)
    rw = req.rewards
    reward_value = rw.value if rw is not None else "zero"
    if reward_value != "zero":
        queue_rewards(al, rw, coll, debt)

    # ETH/USD (optional): USD per unit of the debt asset, its own USD series, else ETH's
    for base in dict.fromkeys([debt, *(aliases(debt) if debt in ETH_LIKE else [])]):
        key = f"{base}/USD"
        pts = al.points("prices", key, {"base": base, "quote": "USD"}, [("v", "price")], source=True)
        if pts is not None and (pts.ts < al.end).any() and pts.ts[-1] >= al.start - MAX_GAP:
            al.use(pts)
            al.add("eth_usd", pts, max_age=MAX_GAP)
            break

    # borrow APR of the debt asset (or, for the AdaptiveCurveIRM, the utilisation it is computed from)
    src = req.rates_from or proto
    adaptive = req.irm == "adaptive-curve"
    if adaptive and req.utilization is None:
        key = f"{src}:{debt}:utilization"
        pts = al.require(al.points("rates", key, {"protocol": src, "asset": aliases(debt)},
                                   [("v", "utilization")], source=False), "rates", key)
        nulls = np.isnan(pts.values["v"])
        if nulls.any():
            raise DataError(f"rates {key}: no utilization at {iso(pts.ts[nulls][0])} (the AdaptiveCurveIRM "
                            f"needs one at every point; set market.utilization for a constant)")
        al.use(pts)
        al.add("util", pts)
    if not adaptive and req.read_utilization:
        key = f"{src}:{debt}:utilization"
        pts = al.require(al.points("rates", key, {"protocol": src, "asset": aliases(debt)},
                                   [("v", "utilization")], source=False), "rates", key)
        al.use(pts)
        al.add("util", pts)
    if not adaptive and req.borrow_rate is None:
        key = f"{src}:{debt}:borrow_apr"
        pts = al.require(al.points("rates", key, {"protocol": src, "asset": aliases(debt)},
                                   [("v", "borrow_apr")], source=False), "rates", key)
        al.use(pts)
        al.add("borrow", pts)

    # supply APR of the collateral (none where collateral is not lent out: Morpho Blue, Compound III)
    if req.supply_rate is None and _venues.venue(proto).supply_yield:
        key = f"{src}:{coll}:supply_apr"
        pts = al.require(al.points("rates", key, {"protocol": src, "asset": aliases(coll)},
                                   [("v", "supply_apr")], source=False), "rates", key)
        al.use(pts)
        al.add("supply", pts)

    # risk parameters (per venue: see _param_overrides)
    if any(v is None for v in _param_overrides(req).values()):
        emode = req.emode if _venues.venue(proto).emode else None
        al.add("par", _market_params(al, proto, coll, emode, debt))

    # gas price
    if req.gas_gwei is None:
        key = "base_fee_gwei+priority_fee_gwei"
        pts = al.require(al.points("gas", key, {},
                                   [("v", "base_fee_gwei + coalesce(priority_fee_gwei, 0.0)")], source=False),
                         "gas", key)
        al.use(pts)
        al.add("gas", pts)

    # the protocol oracle's feed (chainlink mode only): collateral/debt rows, else collateral/USD / debt/USD
    if req.oracle == "chainlink":
        prices.queue_oracle("oracle", proto, coll, debt)

    arr = al.join()
    derived = prices.combine(arr)
    unused = sorted(set(al.sources) - al.sources_used)
    if unused:
        raise DataError(f"run.sources: {', '.join(repr(u) for u in unused)} is not a series this run reads with "
                        f"several sources (it reads: {', '.join(i.table + ' ' + i.key for i in al.series)})")
    block = al.blocks(req.chain_block_seconds, req.block_anchor)
    xrate, slash = slashes(al, coll, arr["xrate.v"])
    reward = reward_series(al, rw, coll, arr) if reward_value != "zero" else None
    labels = {"price": al.labels.get("price"), "xrate": al.labels.get("xrate"),
              "hold_price": al.labels.get("hprice"), "hold_xrate": al.labels.get("hxrate"),
              "underlying_price": al.labels.get("underlying"), "gas_token_price": al.labels.get("gas_token"),
              "par": al.labels.get("par", "market_params (defaults)")}
    return Read(read_key(req), al.ts, block, arr, xrate, slash, reward, labels, al.series,
                _lake.data_hash(sorted(al.files), root=lake) if al.files else "", capo_pre, derived,
                _lake.relative_files(al.files, lake))


def assemble(rd: Read, req: MarketRequest) -> Market:
    """The :class:`Market` of ``req`` from a :class:`Read` of its :func:`read_key`: the constant arrays,
    the venue's parameter rules, the ``[[scenario]]`` overlays and the per-block checks (cheap: numpy only,
    the read's arrays are shared, never modified)."""
    if read_key(req) != rd.key:
        raise ValueError("internal: a market assembled from the read of another request")
    n = rd.ts.shape[0]
    arr = rd.arr
    venue = _venues.venue(req.protocol)
    nan = np.full(n, np.nan)
    ones = np.ones(n)

    def const(v: float | None) -> np.ndarray:
        return np.full(n, float(v))

    overrides = _param_overrides(req)
    par = {name: (const(v) if v is not None else arr[f"par.{name}"]) for name, v in overrides.items()}
    if venue.derive_params is not None:        # Morpho Blue: ltv = lt = LLTV, bonus = LIF - 1, no fee
        venue.derive_params(par)
    if req.irm == "adaptive-curve":
        util = const(req.utilization) if req.utilization is not None else arr["util.v"]
        borrow = np.zeros(n)            # the IRM's rate is added after the overlays (backtest.plan)
    else:
        util = arr["util.v"] if req.read_utilization else nan.copy()
        borrow = const(req.borrow_rate) if req.borrow_rate is not None else arr["borrow.v"]
    if not venue.supply_yield:
        supply = np.zeros(n)
    else:
        supply = const(req.supply_rate) if req.supply_rate is not None else arr["supply.v"]
    labels = {k: v for k, v in rd.labels.items() if k != "par"}
    for name, attr in (("ltv", "ltv"), ("lt", "liquidation_threshold")):
        labels[name] = (f"market.{attr} = {overrides[name]:g} (config)" if overrides[name] is not None
                        else rd.labels["par"])
    market = Market(
        ts=rd.ts, block=rd.block, price=arr["price.v"], xrate=rd.xrate, reward=rd.reward, slash=rd.slash,
        hold_price=arr["hprice.v"] if req.restaked else None, hold_xrate=arr["hxrate.v"] if req.restaked else None,
        eth_usd=arr.get("eth_usd.v", nan), borrow_apr=borrow, supply_apr=supply,
        oracle_feed=arr.get("oracle.v", nan.copy()),
        ltv=par["ltv"], lt=par["lt"], bonus=par["bonus"], pfee=par["pfee"],
        gas_gwei=const(req.gas_gwei) if req.gas_gwei is not None else arr["gas.v"], utilization=util,
        underlying_price=arr.get("underlying.v", ones), gas_token_price=arr.get("gas_token.v", ones.copy()),
        series=list(rd.series), data_hash=rd.data_hash, derived=dict(rd.derived), files=list(rd.files),
    )
    market = apply_scenarios(market, req.scenarios, collateral=req.collateral, debt=req.debt, hold=req.hold,
                             protocol=req.protocol, irm=req.irm)
    _check_arrays(market, labels, req.scenarios)
    if rd.capo_pre is not None:
        market.capo_pre_ts, market.capo_pre_xrate = rd.capo_pre
    return market


def capo_history(al: Aligner, token: str, source: str | None, age: int) -> tuple[np.ndarray, np.ndarray]:
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
        raise DataError(f"exchange_rates {token}: the capo oracle's first snapshot is taken at {iso(snap0)} "
                        f"(market.capo_snapshot_age before the window), but the lake's rates start at "
                        f"{iso(ts[0]) if ts.size else iso(al.start) + ' or later'}; import older rates or start "
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


def _param_overrides(mk: MarketRequest) -> dict[str, float | None]:
    """The risk-parameter arrays the config fixes, by the venue's rule (Venue.param_overrides; None = read
    market_params / the defaults). Aave family and generic: ltv, liquidation_threshold, liquidation_bonus,
    liquidation_protocol_fee, each optional (generic: required by the config). Morpho Blue: market.lltv fixes
    ltv = lt = LLTV (the bonus is then LIF - 1, no fee). Compound III: ltv = borrow CF, lt = liquidate CF,
    bonus = 1 - liquidation_factor (the absorb penalty), no fee."""
    return _venues.venue(mk.protocol).param_overrides(mk)


def _market_params(al: Aligner, protocol: str, asset: str, emode: str | None, debt: str = "WETH") -> Points:
    """Lake market_params for the key, with defaults before the lake's first row and for null fees."""
    key = f"{protocol}:{asset}:{emode if emode is not None else '-'}"
    cols = [("ltv", "ltv"), ("lt", "liquidation_threshold"), ("bonus", "liquidation_bonus"),
            ("pfee", "protocol_fee")]
    lake_pts = al.points("market_params", key, {"protocol": protocol, "asset": asset, "emode": emode},
                         cols, source=False)
    try:
        defaults = _venues.default_params(protocol, asset, emode, debt)
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
        raise DataError(f"market_params {key}: no parameters in force at the run start {iso(al.start)} "
                        f"(first from {iso(ts[0])}){why}")
    keep = slice(p, max(p + 1, int(np.searchsorted(ts, al.end, side="left"))))
    ts, from_lake = ts[keep], from_lake[keep]
    vals = {k: v[keep] for k, v in vals.items()}
    null_fee = np.isnan(vals["pfee"])
    if null_fee.any():
        if default_err is not None:
            raise DataError(f"market_params {key}: protocol_fee is null and {default_err}")
        idx = np.searchsorted(d_ts, ts[null_fee], side="right") - 1
        if (idx < 0).any():
            raise DataError(f"market_params {key}: protocol_fee is null at {iso(ts[null_fee][idx < 0][0])} "
                            f"and the default parameters start later, on {iso(d_ts[0])}")
        vals["pfee"][null_fee] = d_val["pfee"][idx]
    if from_lake.any():
        al.use(Points("market_params", key, ts[from_lake], {}, files))
    if (~from_lake).any() or null_fee.any():
        used = ~from_lake | null_fee
        al.use(Points("params", f"{key} (backtest.params defaults)", ts[used], {}))
    return Points("market_params", key, ts, vals, files)
