"""The series the strategy book's kinds read, ASOF-joined onto one clock (plain requests in, arrays out).

``lp``: a pool of the ``liquidity`` table (reserves, amp, virtual price) and the LST's market price in the
native; ``basket``: each token's and each token's native's price in USD; ``farm``: the deposit token's price,
the reward rows (tokens per deposited token per second) and the reward token's price. The data layer's own
rules apply: every series must cover the window (or the request names the span that exists).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from backtest.data import lake as _lake
from backtest.data.asof import Aligner, aliases, iso, same_asset
from backtest.data.prices import PriceResolver, underlying_of
from backtest.errors import DataError


@dataclass(frozen=True)
class BookRequest:
    lake: Path
    start: int
    end: int
    step: int                                    # seconds per replayed step
    sources: tuple[tuple[str, str], ...] = ()
    allow: tuple[str, ...] = ()


@dataclass
class BookSeries:
    ts: np.ndarray
    arrays: dict[str, np.ndarray]
    labels: dict[str, str] = field(default_factory=dict)     # array -> the lake series it came from
    derived: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)


def _aligner(req: BookRequest) -> Aligner:
    return Aligner(Path(req.lake), req.start, req.end, req.step, req.sources, req.allow, checks=True)


def _finish(al: Aligner, pr: PriceResolver | None) -> BookSeries:
    arr = al.join()
    derived = pr.combine(arr) if pr is not None else {}
    out = BookSeries(al.ts.copy(), arr, dict(al.labels), derived, _lake.relative_files(al.files, Path(al.lake)))
    al.close()
    return out


def liquidity_span(lake: Path, pool: str) -> tuple[int, int] | None:
    """(first ts, last ts) of a pool's rows in the lake's ``liquidity`` table, None when it has none."""
    con = _lake.connect(Path(lake))
    try:
        if not _lake.has_table(con, "liquidity"):
            return None
        lo, hi = con.execute("SELECT min(ts), max(ts) FROM liquidity WHERE pool = ?", [pool]).fetchall()[0]
        return None if lo is None else (int(lo), int(hi))
    finally:
        con.close()


def price_span(lake: Path, base: str, quote: str) -> tuple[int, int] | None:
    """(first ts, last ts) of the lake's direct prices base/quote (ETH = WETH), None when it has none."""
    con = _lake.connect(Path(lake))
    try:
        if not _lake.has_table(con, "prices"):
            return None
        where, params = _lake.where_clause({"base": aliases(base), "quote": aliases(quote)})
        lo, hi = con.execute(f"SELECT min(ts), max(ts) FROM prices WHERE {where}", params).fetchall()[0]
        return None if lo is None else (int(lo), int(hi))
    finally:
        con.close()


def lp_series(req: BookRequest, pool: str, lst: str, native: str, gas_fixed: float | None,
              lp_token: str) -> BookSeries:
    """reserve0 (native), reserve1 (LST), amp of ``pool`` (``liquidity``), its virtual price (the
    ``exchange_rates`` of the pool's LP token ``lp_token``: the bundled lake keeps Curve's get_virtual_price as
    steCRV/ETH), the LST's market price in the native, gas."""
    al = _aligner(req)
    pts = al.points("liquidity", pool, {"pool": pool},
                    [("reserve0", "reserve0"), ("reserve1", "reserve1"), ("amp", "amp")], source=False)
    pts = al.require(pts, "liquidity", pool)
    coins = al.con.execute("SELECT DISTINCT token0, token1 FROM liquidity WHERE pool = ?", [pool]).fetchall()
    if len(coins) != 1 or not same_asset(coins[0][0], native) or coins[0][1] != lst:
        raise DataError(f"liquidity {pool}: its coins are {', '.join(f'{a}/{b}' for a, b in coins)}, not {native}/{lst} "
                        f"(market.debt is coin 0, the native; market.collateral coin 1, the LST)")
    al.use(pts)
    al.add("pool", pts)
    vp = al.require(al.points("exchange_rates", lp_token, {"token": lp_token}, [("v", "rate")], source=True),
                    "exchange_rates", lp_token)
    al.use(vp)
    al.add("vp", vp)
    pr = PriceResolver(al)
    pr.queue("price", lst, native, "the LST's market price in the pool's native coin")
    # the lake prices an LST per share and keeps its exchange rate (stETH: rebase growth from 1.0); the pool
    # holds rebasing units, each worth price / rate of the native on the market
    xr = al.points("exchange_rates", lst, {"token": lst}, [("v", "rate")], source=True)
    if xr is not None:
        al.use(al.require(xr, "exchange_rates", lst))
        al.add("xrate", xr)
    if gas_fixed is None:
        g = al.require(al.points("gas", "gas", {}, [("v", "base_fee_gwei + coalesce(priority_fee_gwei, 0)")],
                                 source=False), "gas", "base_fee_gwei+priority_fee_gwei")
        al.use(g)
        al.add("gas", g)
    out = _finish(al, pr)
    out.arrays["pool.virtual_price"] = out.arrays.pop("vp.v")
    if "xrate.v" in out.arrays:
        out.arrays["price.v"] = out.arrays["price.v"] / out.arrays.pop("xrate.v")
        out.derived["price"] = f"{lst}/{native} per pool unit = prices {lst}/{native} / exchange_rates {lst}"
    if gas_fixed is not None:
        out.arrays["gas.v"] = np.full(out.ts.shape[0], float(gas_fixed))
    return out


def basket_series(req: BookRequest, tokens: list[str]) -> BookSeries:
    """Each token's price in USD (``px.i``) and its native's (``nat.i``: ETH, SOL, ATOM...)."""
    al = _aligner(req)
    pr = PriceResolver(al)
    cross = []
    for i, tok in enumerate(tokens):
        nat = underlying_of(tok)
        # through the native where the lake has the pair (wstETH/WETH x WETH/USD, mSOL/SOL x SOL/USD): the DEX
        # pair covers the window where a token's own USD series may not
        if pr.route(tok, nat) is None or len(pr.route(tok, nat)) > 1:
            pr.queue(f"px{i}", tok, "USD", f"basket token {tok}")
        else:
            pr.queue(f"pxn{i}", tok, nat, f"basket token {tok} in its native")
            cross.append(i)
        pr.queue(f"nat{i}", nat, "USD", f"the native of {tok}, the benchmark")
    out = _finish(al, pr)
    for i in cross:
        out.arrays[f"px{i}.v"] = out.arrays.pop(f"pxn{i}.v") * out.arrays[f"nat{i}.v"]
        out.derived[f"px{i}"] = f"{tokens[i]}/USD = {tokens[i]}/{underlying_of(tokens[i])} x {underlying_of(tokens[i])}/USD"
    return out


def farm_series(req: BookRequest, deposit: str, reward: str, quote: str) -> BookSeries:
    """The deposit token's price in ``quote``, the reward rows (reward tokens per deposited token per second,
    0 before the first row) and the reward token's price in ``quote`` (REWARD/quote, else REWARD/USD over
    quote/USD), needed only from the first emission on (a new farm's token has no price before it)."""
    from backtest.data.request import RewardsSpec
    from backtest.data.restaking import queue_rewards

    al = _aligner(req)
    queue_rewards(al, RewardsSpec("token", None, reward), deposit, quote)
    pr = PriceResolver(al)
    pr.queue("dprice", deposit, quote, "the farm's deposit token")
    if "rtok" not in al.labels:
        pr.queue("quote_usd", quote, "USD", f"to price {reward}/USD in {quote}")
    out = _finish(al, pr)
    a = out.arrays
    rate = a["rate.v"] = np.nan_to_num(a.pop("rwd.v"), nan=0.0)
    rprice = a.pop("rtok.v") if "rtok.v" in a else a.pop("rtok_usd.v") / a["quote_usd.v"]
    live = np.cumsum(rate != 0) > 0
    a["rprice.v"] = np.where(live, rprice, 0.0)
    bad = ~np.isfinite(a["rprice.v"])
    if bad.any():
        raise DataError(f"prices {reward}/{quote}: no price at {iso(out.ts[np.flatnonzero(bad)[0]])} to sell the "
                        f"farm's rewards at")
    return out


def price_at(req: BookRequest, base: str, quote: str) -> float:
    """base/quote at the request's first step (a direct pair, its inverse or a cross through USD / ETH)."""
    al = _aligner(req)
    pr = PriceResolver(al)
    pr.queue("p", base, quote, "to convert --capital")
    v = float(_finish(al, pr).arrays["p.v"][0])
    if not (v > 0):
        raise DataError(f"prices {base}/{quote}: no price at {iso(req.start)}")
    return v


__all__ = ["price_at", "price_span", "BookRequest", "BookSeries", "lp_series", "basket_series", "farm_series", "liquidity_span", "aliases"]
