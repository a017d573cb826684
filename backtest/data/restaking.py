"""Restaking on the aligned market: reward series valued per collateral token, and slashes cut from the
exchange rate (market-level, both engines read the result)."""
from __future__ import annotations

import numpy as np

from backtest.data import lake as _lake
from backtest.data.asof import Aligner, aliases, iso
from backtest.data.market import SeriesInfo
from backtest.errors import DataError

_PER_SECOND = ("amount / CASE WHEN lower(unit) LIKE '%year%' THEN 31536000.0 "
               "WHEN lower(unit) LIKE '%week%' THEN 604800.0 ELSE 86400.0 END")


def queue_rewards(al: Aligner, rw, token: str, debt: str) -> None:
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
        pts = al.points("prices", key, {"base": rw.token, "quote": aliases(debt)}, [("v", "price")], source=True)
        name = "rtok"
        if pts is None:
            key = f"{rw.token}/USD"
            pts = al.points("prices", key, {"base": rw.token, "quote": "USD"}, [("v", "price")], source=True)
            name = "rtok_usd"
        if pts is None:
            raise DataError(f"prices {key}: no price of the reward token {rw.token} in the lake at {al.lake} "
                            f"(a {rw.token}/ETH or {rw.token}/USD series)")
        # no coverage rule: the price is needed only where a reward accrues (checked in reward_series)
        al.use(pts)
        al.add(name, pts)


def reward_series(al: Aligner, rw, token: str, arr: dict[str, np.ndarray]) -> np.ndarray:
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
        raise DataError(f"rewards {token}: no value for the reward unit at {iso(al.ts[np.flatnonzero(bad)[0]])} "
                        f"(missing price)")
    v = np.where(rate != 0, v, 0.0)
    out = np.zeros(al.n)
    if al.n > 1:
        out[1:] = np.cumsum(v[:-1] * np.diff(al.ts).astype(np.float64))
    return out


def slashes(al: Aligner, token: str, xrate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
        raise DataError(f"events {token}:slash at {iso(ts[i])}: value {val[i]!r} must be a fraction in (0, 1)")
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
