"""Series derived from what the lake holds (not a vendor): :func:`derive_ratio` (a market ratio such as
stETH/ETH from two USD series, floored to the hour and inner-joined), :func:`derive_oracle_rate` (the exchange
rate an oracle reports as ASSET/USD ÷ ETH/USD) and :func:`constant_growth` (a documented assumed
exchange-rate path)."""
from __future__ import annotations

import os

import numpy as np
import polars as pl

from backtest import numerics
from backtest.data import lake as _lake
from backtest.data.sources.commit import ImportReport, commit
from backtest.data.sources.toolkit import HOUR, YEAR, Series, safe_name
from backtest.errors import DataError


def _one_source(df: pl.DataFrame, what: str, source: str | None) -> pl.DataFrame:
    if source is not None:
        df = df.filter(pl.col("source") == source)
        if df.height == 0:
            raise DataError(f"prices {what}: no rows with source {source!r}")
        return df
    sources = sorted(df["source"].unique().to_list())
    if len(sources) > 1:
        raise DataError(f"prices {what}: several sources ({', '.join(sources)}); choose one")
    return df


def hourly_last(ts: np.ndarray | pl.Series, values: pl.Series, freq: int = HOUR) -> pl.DataFrame:
    """Floor ``ts`` to ``freq`` seconds and keep the last value in each bucket."""
    f = pl.DataFrame({"ts": pl.Series(ts, dtype=pl.Int64), "v": values}).sort("ts", maintain_order=True)
    return f.with_columns((pl.col("ts") // freq * freq).alias("h")).group_by("h", maintain_order=True).agg(
        pl.col("v").last()).rename({"h": "ts"}).sort("ts")


def ratio_frame(a: pl.DataFrame, b: pl.DataFrame, freq: int = HOUR) -> pl.DataFrame:
    """``a.price / b.price`` after flooring both to ``freq`` (last value per bucket) and an inner join."""
    ha = hourly_last(a["ts"], a["price"], freq)
    hb = hourly_last(b["ts"], b["price"], freq)
    j = ha.join(hb, on="ts", how="inner", suffix="_b").sort("ts")
    return j.select("ts", (pl.col("v") / pl.col("v_b")).alias("price"))


def constant_growth(ts: np.ndarray, apr: float, anchor_ts: int | None = None, anchor: float = 1.0) -> np.ndarray:
    """``anchor × exp(apr × (ts − anchor_ts) / year)``: an assumed exchange-rate path growing at a constant
    APR (continuous compounding), e.g. a rebasing token's share value."""
    t = np.asarray(ts, dtype=np.float64)
    t0 = float(t[0] if anchor_ts is None else anchor_ts)
    return anchor * numerics.exp(apr * (t - t0) / YEAR)


def derive_ratio(lake: str | os.PathLike, base: str, quote: str, *, via: str = "USD", freq: int = HOUR,
                 source_base: str | None = None, source_quote: str | None = None,
                 rebase_apr: float | None = None, underlying: str = "ETH", median_of: int = 1) -> ImportReport:
    """Write ``prices`` BASE/QUOTE = (BASE/VIA) / (QUOTE/VIA) from the lake's two price series, both floored
    to ``freq`` seconds (last value in each bucket) and inner-joined, e.g. stETH/WETH from CoinGecko USD.

    With ``rebase_apr`` (a rebasing token such as stETH, whose balance grows instead of its price), the
    token is accounted in shares the way the engine's exchange rate expects: ``exchange_rates``
    BASE/``underlying`` = exp(apr × t / year) from 1.0 at the first point (an ASSUMED constant growth,
    recorded in the source), and the price is ratio × that rate, so price / rate is still the market ratio.

    ``median_of`` > 1 replaces each ratio by the median of the buckets in the trailing ``median_of × freq``
    seconds (it only looks back, so a replay never sees the future), which removes single-sample glitches
    such as CoinGecko's WETH/USD print of 1067 at 2022-06-13 04:02 (a +25 % stETH/ETH ratio for one hour).
    """
    a = _one_source(_lake.read_series(lake, "prices", base=base, quote=via), f"{base}/{via}", source_base)
    b = _one_source(_lake.read_series(lake, "prices", base=quote, quote=via), f"{quote}/{via}", source_quote)
    if a.height == 0 or b.height == 0:
        missing = f"{base}/{via}" if a.height == 0 else f"{quote}/{via}"
        raise DataError(f"prices {missing}: no rows in the lake at {lake}")
    r = ratio_frame(a, b, freq)
    if r.height == 0:
        raise DataError(f"prices {base}/{via} and {quote}/{via} share no {freq}s bucket: nothing to derive")
    src = f"derived:{a['source'][0]}/{b['source'][0]}@{freq}s"
    if median_of > 1:
        r = r.with_columns(pl.col("price").rolling_median_by("ts", window_size=f"{int(median_of) * freq}i"))
        src += f"-median{int(median_of)}"
    items = []
    price = r["price"]
    notes = [f"{base}/{quote}: {r.height} buckets where both {base}/{via} ({a.height} points) and {quote}/{via} "
             f"({b.height} points) have a value"]
    if rebase_apr is not None:
        rate = constant_growth(r["ts"].to_numpy(), float(rebase_apr))
        rsrc = f"assumed:constant-apr-{float(rebase_apr):g}"
        items.append(Series("exchange_rates", pl.DataFrame({"ts": r["ts"], "token": base, "underlying": underlying,
                                                            "rate": rate, "source": rsrc}),
                            safe_name(f"assumed-{base}-{underlying}-apr-{float(rebase_apr):g}"), rsrc,
                            notes=[f"{base}/{underlying}: ASSUMED exchange rate growing at {float(rebase_apr):.2%}/yr "
                                   "(share accounting of a rebasing token), not data"]))
        price = price * rate
        src += f"*rebase-{float(rebase_apr):g}"
    items.insert(0, Series("prices", r.select("ts", pl.lit(base).alias("base"), pl.lit(quote).alias("quote"),
                                              price.alias("price"), pl.lit(src).alias("source")),
                           safe_name(f"derived-{base}-{quote}"), src, notes=notes))
    return commit(lake, items)


def derive_oracle_rate(lake: str | os.PathLike, protocol: str, asset: str, *, quote: str = "ETH",
                       exchange_rate: bool = False, freq: int = HOUR) -> ImportReport:
    """The protocol oracle's ASSET/QUOTE ratio: ``oracle_prices`` ASSET/USD ÷ QUOTE/USD of the same protocol
    (WETH and ETH are interchangeable for the quote), matched by exact time, else floored to ``freq``.

    Written as ``oracle_prices`` ASSET/QUOTE (what the ``chainlink`` oracle mode reads). With
    ``exchange_rate=True`` also as ``exchange_rates`` ASSET/ETH (source ``oracle:<protocol>``): right where
    the protocol's oracle is an exchange-rate adapter, e.g. Aave v3's wstETH (stEthPerToken × ETH/USD) and
    weETH since 2023.
    """
    con_rows = _lake.read_series(lake, "oracle_prices", protocol=protocol)
    if con_rows.height == 0:
        raise DataError(f"oracle_prices {protocol}: no rows in the lake at {lake}")
    direct = con_rows.filter((pl.col("asset") == asset) & pl.col("quote").is_in(["ETH", "WETH"]))
    if direct.height and quote in ("ETH", "WETH"):
        r = direct.select("ts", "block", "price")
        items = []
    else:
        a = con_rows.filter((pl.col("asset") == asset) & (pl.col("quote") == "USD"))
        qs = ["ETH", "WETH"] if quote in ("ETH", "WETH") else [quote]
        b = con_rows.filter(pl.col("asset").is_in(qs) & (pl.col("quote") == "USD"))
        if a.height == 0 or b.height == 0:
            missing = f"{asset}/USD" if a.height == 0 else f"{quote}/USD"
            raise DataError(f"oracle_prices {protocol}:{missing}: no rows in the lake at {lake}")
        exact = a.join(b.select("ts", "price"), on="ts", how="inner", suffix="_b")
        if exact.height >= 0.9 * min(a.height, b.height):
            r = exact.select("ts", "block", (pl.col("price") / pl.col("price_b")).alias("price")).sort("ts")
        else:
            r = ratio_frame(a, b, freq).with_columns(pl.lit(None, dtype=pl.Int64).alias("block"))
        oracle = r.select("ts", "block", pl.lit(protocol).alias("protocol"), pl.lit(asset).alias("asset"),
                          pl.lit(quote).alias("quote"), "price")
        items = [Series("oracle_prices", oracle, safe_name(f"derived-{protocol}-{asset}-{quote}"),
                        f"derived:{protocol}-oracle",
                        notes=[f"{protocol}:{asset}/{quote}: {r.height} points of {asset}/USD ÷ {quote}/USD"])]
    if exchange_rate:
        src = f"oracle:{protocol}"
        xr = r.select("ts", "block", pl.lit(asset).alias("token"), pl.lit("ETH").alias("underlying"),
                      pl.col("price").alias("rate"), pl.lit(src).alias("source"))
        items.append(Series("exchange_rates", xr, safe_name(f"oracle-{protocol}-{asset}-ETH"), src))
    if not items:
        raise DataError(f"oracle_prices {protocol}:{asset}/{quote} is already in the lake; pass exchange_rate=True "
                        "to write it as an exchange rate")
    return commit(lake, items)
