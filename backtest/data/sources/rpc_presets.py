"""``backtest data fetch rpc PRESET``: one preset per series, each a few ``eth_call`` s at every chosen block,
sent as JSON-RPC batches (:mod:`backtest.data.sources.rpc_batch`).

A :class:`Preset` has ``rounds`` of calls per block: round 0's calls are fixed; a later round's calls may
depend on what the earlier rounds returned at the same block (Morpho's IRM is asked ``borrowRateView`` with
the market state just read; Comet's ``getBorrowRate`` with the utilization just read). ``decode`` turns the
returned 32-byte words into a row; ``to_series`` turns the rows into lake series. Addresses (Ethereum
mainnet) are the defaults of each preset, overridable with ``--address``; :mod:`backtest.data.sources.mainnet`
cites where each was found.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import polars as pl

from backtest.data.sources.abi import encode_call, signed_int, word_address
from backtest.data.sources.curve import CURVE_STETH_POOL
# addresses (mainnet), with their sources: backtest/data/sources/mainnet.py
from backtest.data.sources.mainnet import (  # noqa: F401  (re-exported: rp.WETH ...)
    WETH, WSTETH, WEETH, RENZO_RESTAKE_MANAGER, EZETH, KELP_LRT_ORACLE, STAKEWISE_OSTOKEN_CONTROLLER, CBETH, RETH,
    MORPHO_BLUE, MORPHO_ADAPTIVE_CURVE_IRM, COMET_WETH, AAVE_V3_POOL, AAVE_V3_ORACLE, CHAINLINK_ETH_USD,
    AAVE_V3_WSTETH_CAPO, UNISWAP_V3_WSTETH_WETH, MORPHO_EZETH_ORACLE, MORPHO_EZETH_WETH_86, MORPHO_EZETH_WETH_77,
    TOKENS,
)
from backtest.data.sources.toolkit import Series, safe_name
from backtest.errors import DataError, InputError

YEAR = 365 * 86400
WAD, RAY = 1e18, 1e27

MORPHO_MARKET = ("(address,address,address,address,uint256)", "(uint128,uint128,uint128,uint128,uint128,uint128)")


@dataclass
class Call:
    key: str
    to: str
    data: str


@dataclass
class Preset:
    """What to read at each block, and how the rows become lake series."""

    name: str
    params: dict[str, Any]
    calls: Callable[[int, int, dict[str, list[int]]], list[Call]]     # (round, block, words so far) -> calls
    decode: Callable[[int, dict[str, list[int]]], dict[str, Any]]     # (block, words by key) -> row values
    to_series: Callable[[pl.DataFrame], list[Series]]
    rounds: int = 1
    label: str = ""
    once: dict[str, Any] = field(default_factory=dict)                # per-job cache (immutable facts)


def _need(words: list[int], n: int, what: str, block: int) -> list[int]:
    if len(words) < n:
        raise DataError(f"rpc {what} at block {block}: {len(words)} word(s) returned, expected at least {n}")
    return words


def _fixed(calls: list[Call]):
    return lambda rnd, block, got: calls if rnd == 0 else []


def _rate_series(token: str, underlying: str, src: str):
    def series(df: pl.DataFrame) -> list[Series]:
        kept = df.filter(pl.col("rate").is_not_null() & (pl.col("rate") > 0))
        xr = kept.select("ts", "block", pl.lit(token).alias("token"), pl.lit(underlying).alias("underlying"), "rate",
                         pl.lit(src).alias("source"))
        return [Series("exchange_rates", xr, safe_name(f"rpc-{token}-{underlying}"), src, "rpc",
                       df.height - kept.height)]
    return series


def exchange_rate(name: str, address: str, signature: str, token: str, underlying: str, *args: Any,
                  scale: float = WAD) -> Preset:
    """A one-call LST / LRT rate: ``signature`` at ``address`` returns underlying per token (``scale`` = 1.0)."""
    call = Call("r", address, encode_call(signature, *args))

    def decode(block: int, got: dict[str, list[int]]) -> dict[str, Any]:
        return {"rate": _need(got["r"], 1, f"{token} {signature}", block)[0] / scale}
    src = f"rpc:{token}.{signature.split('(')[0]}"
    return Preset(name, {"address": address.lower(), "signature": signature, "token": token}, _fixed([call]), decode,
                  _rate_series(token, underlying, src), label=f"{token} {signature}")


def weeth(address: str | None = None) -> Preset:
    # ether.fi weETH.getRate(): eETH per weETH, 1e18
    return exchange_rate("weeth", address or WEETH, "getRate()", "weETH", "eETH")


def cbeth(address: str | None = None) -> Preset:
    # Coinbase cbETH.exchangeRate(): ETH per cbETH, 1e18
    return exchange_rate("cbeth", address or CBETH, "exchangeRate()", "cbETH", "ETH")


def reth(address: str | None = None) -> Preset:
    # Rocket Pool rETH.getExchangeRate(): ETH per rETH, 1e18
    return exchange_rate("reth", address or RETH, "getExchangeRate()", "rETH", "ETH")


def rseth(address: str | None = None) -> Preset:
    # Kelp LRTOracle.rsETHPrice(): ETH per rsETH, 1e18
    return exchange_rate("rseth", address or KELP_LRT_ORACLE, "rsETHPrice()", "rsETH", "ETH")


def oseth(address: str | None = None) -> Preset:
    # StakeWise OsTokenVaultController.convertToAssets(1e18): ETH per osETH
    return exchange_rate("oseth", address or STAKEWISE_OSTOKEN_CONTROLLER, "convertToAssets(uint256)", "osETH", "ETH",
                         10 ** 18)


def rate_provider(address: str, token: str, underlying: str = "ETH") -> Preset:
    """A Balancer rate provider's (or a Balancer pool's) ``getRate()``, 1e18."""
    return exchange_rate("rate-provider", address, "getRate()", token, underlying)


def ezeth(manager: str | None = None, token: str | None = None) -> Preset:
    """Renzo's ezETH rate as its RestakeManager mints: ``calculateTVLs()``'s total TVL (ETH, 1e18; the third
    return value, a static word after the two array offsets) / ``ezETH.totalSupply()`` (the ratio Aave's ezETH
    CAPO adapter reads too, bgd-labs/aave-capo ``IEzETH.sol``)."""
    manager, token = manager or RENZO_RESTAKE_MANAGER, token or EZETH
    calls = [Call("tvl", manager, encode_call("calculateTVLs()")), Call("supply", token, encode_call("totalSupply()"))]

    def decode(block: int, got: dict[str, list[int]]) -> dict[str, Any]:
        tvl = _need(got["tvl"], 3, "Renzo calculateTVLs()", block)[2]
        supply = _need(got["supply"], 1, "ezETH totalSupply()", block)[0]
        return {"rate": tvl / supply if supply else None, "tvl_eth": tvl / WAD, "supply": supply / WAD}
    return Preset("ezeth", {"manager": manager.lower(), "token": token.lower()}, _fixed(calls), decode,
                  _rate_series("ezETH", "ETH", "rpc:renzo.calculateTVLs/totalSupply"), label="Renzo calculateTVLs")


# ------------------------------------------------------------------------------------------------ lending
def _rates_series(protocol: str, asset: str, src: str):
    def series(df: pl.DataFrame) -> list[Series]:
        cols = ["ts", "block", pl.lit(protocol).alias("protocol"), pl.lit(asset).alias("asset"), "supply_apr",
                "borrow_apr", "utilization"]
        cols += [c if c in df.columns else pl.lit(None, dtype=pl.Float64).alias(c)
                 for c in ("supply_index", "borrow_index")]
        return [Series("rates", df.select(cols), safe_name(f"rpc-{protocol}-{asset}"), src, "rpc")]
    return series


def morpho(market_id: str, asset: str = "WETH", morpho_address: str | None = None,
           protocol: str = "morpho-blue") -> Preset:
    """Morpho Blue ``market(id)`` (totals, lastUpdate, fee), ``idToMarketParams(id)`` (read once: immutable) and
    the market's IRM ``borrowRateView(marketParams, market)`` at the same block: borrow rate per second (WAD)
    -> borrow_apr = rate x 365 days (Morpho compounds it per second: an APR). For the AdaptiveCurveIRM that
    is the average rate from the market's last update to the block (what the next accrual would charge), so a
    block right after an accrual reads the instantaneous rate; utilization = borrow / supply;
    supply_apr = borrow_apr x utilization x (1 - fee). ``protocol`` is the rates label: two markets lending
    the same asset need two labels (``morpho-ezeth-86``), picked by a config's ``market.rates_from``."""
    blue = morpho_address or MORPHO_BLUE
    mid = encode_call("market(bytes32)", market_id)
    params = encode_call("idToMarketParams(bytes32)", market_id)
    sig = f"borrowRateView({MORPHO_MARKET[0]},{MORPHO_MARKET[1]})"

    def calls(rnd: int, block: int, got: dict[str, list[int]]) -> list[Call]:
        if rnd == 0:
            return [Call("market", blue, mid), Call("params", blue, params)]
        mp = _need(got["params"], 5, "morpho idToMarketParams", block)
        m = _need(got["market"], 6, "morpho market", block)
        irm = word_address(mp[3])
        if int(irm, 16) == 0:
            raise DataError(f"rpc morpho market {market_id} at block {block}: no such market (or no IRM)")
        struct_p = (word_address(mp[0]), word_address(mp[1]), word_address(mp[2]), irm, mp[4])
        return [Call("rate", irm, encode_call(sig, struct_p, tuple(m[:6])))]

    def decode(block: int, got: dict[str, list[int]]) -> dict[str, Any]:
        m = got["market"]
        supply, borrow, fee = m[0], m[2], m[5]
        per_sec = _need(got["rate"], 1, "morpho borrowRateView", block)[0] / WAD
        u = borrow / supply if supply else 0.0
        br = per_sec * YEAR
        return {"borrow_apr": br, "utilization": u, "supply_apr": br * u * (1 - fee / WAD),
                "lltv": got["params"][4] / WAD}

    def series(df: pl.DataFrame) -> list[Series]:
        return _rates_series(protocol, asset, f"rpc:morpho-blue.{market_id[:10]}")(df)
    return Preset("morpho", {"morpho": blue.lower(), "market_id": market_id.lower(), "asset": asset,
                             "protocol": protocol}, calls, decode, series, rounds=2,
                  label=f"morpho market {market_id[:10]}")


def morpho_oracle(market_id: str, collateral: str, loan: str = "WETH", morpho_address: str | None = None,
                  decimals_collateral: int = 18, decimals_loan: int = 18, protocol: str = "morpho-blue") -> Preset:
    """The oracle of a Morpho Blue market (its address from ``idToMarketParams(id)``): ``price()`` = loan
    units per collateral unit scaled by 1e36 x 10^(loan decimals - collateral decimals) -> oracle_prices
    PROTOCOL COLLATERAL/LOAN, the price Morpho liquidates on."""
    blue = morpho_address or MORPHO_BLUE
    params = encode_call("idToMarketParams(bytes32)", market_id)
    scale = 1e36 * 10 ** (decimals_loan - decimals_collateral)

    def calls(rnd: int, block: int, got: dict[str, list[int]]) -> list[Call]:
        if rnd == 0:
            return [Call("params", blue, params)]
        oracle = word_address(_need(got["params"], 5, "morpho idToMarketParams", block)[2])
        return [Call("price", oracle, encode_call("price()"))]

    def decode(block: int, got: dict[str, list[int]]) -> dict[str, Any]:
        v = _need(got["price"], 1, "morpho oracle price()", block)[0]
        return {"price": v / scale if v else None}
    return Preset("morpho-oracle", {"morpho": blue.lower(), "market_id": market_id.lower(), "collateral": collateral,
                                    "loan": loan, "protocol": protocol}, calls, decode,
                  _oracle_series(protocol, collateral, loan, f"morpho-oracle:{market_id[:10]}"), rounds=2,
                  label=f"morpho oracle {market_id[:10]}")


def comet(address: str | None = None, asset: str = "WETH") -> Preset:
    """Compound III ``getUtilization()`` (1e18), then ``getBorrowRate(u)`` / ``getSupplyRate(u)`` (per second,
    1e18) at the same block -> rates compound-v3 ASSET (APR = per second x 365 days, Comet's own
    convention: interest accrues linearly per second)."""
    addr = address or COMET_WETH

    def calls(rnd: int, block: int, got: dict[str, list[int]]) -> list[Call]:
        if rnd == 0:
            return [Call("u", addr, encode_call("getUtilization()"))]
        u = _need(got["u"], 1, "comet getUtilization", block)[0]
        return [Call("b", addr, encode_call("getBorrowRate(uint256)", u)),
                Call("s", addr, encode_call("getSupplyRate(uint256)", u))]

    def decode(block: int, got: dict[str, list[int]]) -> dict[str, Any]:
        return {"utilization": got["u"][0] / WAD, "borrow_apr": got["b"][0] / WAD * YEAR,
                "supply_apr": got["s"][0] / WAD * YEAR}
    return Preset("comet", {"comet": addr.lower(), "asset": asset}, calls, decode,
                  _rates_series("compound-v3", asset, f"rpc:compound-v3.{addr.lower()[:10]}"), rounds=2,
                  label="comet getUtilization/getBorrowRate")


def aave_reserve(asset: str, symbol: str, pool: str | None = None) -> Preset:
    """Aave v3 ``getReserveData(asset)`` (configuration, liquidityIndex, currentLiquidityRate,
    variableBorrowIndex, currentVariableBorrowRate, ...; rates and indices in ray; rates are APRs)."""
    pool = pool or AAVE_V3_POOL
    call = Call("r", pool, encode_call("getReserveData(address)", asset))

    def decode(block: int, got: dict[str, list[int]]) -> dict[str, Any]:
        w = _need(got["r"], 5, f"aave-v3 getReserveData({symbol})", block)
        return {"supply_index": w[1] / RAY, "supply_apr": w[2] / RAY, "borrow_index": w[3] / RAY,
                "borrow_apr": w[4] / RAY, "utilization": None}

    def series(df: pl.DataFrame) -> list[Series]:
        return _rates_series("aave-v3", symbol, "rpc:aave-v3.getReserveData")(
            df.with_columns(pl.col("utilization").cast(pl.Float64)))
    return Preset("aave-v3-reserve", {"pool": pool.lower(), "asset": asset.lower(), "symbol": symbol},
                  _fixed([call]), decode, series, label=f"aave-v3 getReserveData({symbol})")


# ------------------------------------------------------------------------------------------------ oracles
def _oracle_series(protocol: str | None, base: str, quote: str, src: str):
    def series(df: pl.DataFrame) -> list[Series]:
        kept = df.filter(pl.col("price").is_not_null())
        if protocol:
            op = kept.select("ts", "block", pl.lit(protocol).alias("protocol"), pl.lit(base).alias("asset"),
                             pl.lit(quote).alias("quote"), "price")
            return [Series("oracle_prices", op, safe_name(f"rpc-{protocol}-{base}-{quote}"), src, "rpc",
                           df.height - kept.height)]
        px = kept.select("ts", "block", pl.lit(base).alias("base"), pl.lit(quote).alias("quote"), "price",
                         pl.lit(src).alias("source"))
        return [Series("prices", px, safe_name(f"rpc-{base}-{quote}"), src, "rpc", df.height - kept.height)]
    return series


def chainlink(feed: str | None, base: str, quote: str, protocol: str | None = None) -> Preset:
    """A Chainlink feed's ``latestRoundData()`` answer / 10^``decimals()`` -> prices BASE/QUOTE, or with
    ``protocol`` the oracle_prices of the protocol that reads it."""
    feed = feed or CHAINLINK_ETH_USD
    calls = [Call("lrd", feed, encode_call("latestRoundData()")), Call("dec", feed, encode_call("decimals()"))]

    def decode(block: int, got: dict[str, list[int]]) -> dict[str, Any]:
        w = _need(got["lrd"], 5, f"chainlink {base}/{quote} latestRoundData", block)
        answer = signed_int(w[1])
        return {"price": answer / 10 ** got["dec"][0] if answer > 0 else None, "updated_at": w[3]}
    return Preset("chainlink", {"feed": feed.lower(), "base": base, "quote": quote, "protocol": protocol},
                  _fixed(calls), decode, _oracle_series(protocol, base, quote, f"chainlink:{feed.lower()}"),
                  label=f"chainlink {base}/{quote}")


def aave_oracle(asset: str, symbol: str, oracle: str | None = None) -> Preset:
    """AaveOracle ``getAssetPrice(asset)`` (USD, 8 decimals): what Aave v3 itself priced the asset at
    (for wstETH: the CAPO adapter's answer) -> oracle_prices aave-v3 SYMBOL/USD."""
    oracle = oracle or AAVE_V3_ORACLE
    call = Call("p", oracle, encode_call("getAssetPrice(address)", asset))

    def decode(block: int, got: dict[str, list[int]]) -> dict[str, Any]:
        v = _need(got["p"], 1, f"aave oracle getAssetPrice({symbol})", block)[0]
        return {"price": v / 1e8 if v else None}
    return Preset("aave-oracle", {"oracle": oracle.lower(), "asset": asset.lower(), "symbol": symbol}, _fixed([call]),
                  decode, _oracle_series("aave-v3", symbol, "USD", f"aave-oracle:{oracle.lower()}"),
                  label=f"aave oracle {symbol}")


CAPO_CALLS = ("latestAnswer()", "decimals()", "getRatio()", "getSnapshotRatio()", "getSnapshotTimestamp()",
              "getMaxRatioGrowthPerSecond()")


def capo(adapter: str, symbol: str, protocol: str = "aave-v3") -> Preset:
    """An Aave CAPO adapter (bgd-labs/aave-capo ``IPriceCapAdapter``): ``latestAnswer()`` / 10^``decimals()``
    -> oracle_prices PROTOCOL SYMBOL/USD; the live ``getRatio()`` and the governance-set snapshot
    (``getSnapshotRatio``, ``getSnapshotTimestamp``, ``getMaxRatioGrowthPerSecond``; ratios in 1e18) -> the
    ``events`` table (token SYMBOL, kinds ``capo-ratio``, ``capo-snapshot-ratio``, ``capo-snapshot-ts``,
    ``capo-max-growth-apr``) so a replay can compare the cap with the live rate."""
    calls = [Call(sig.split("(")[0], adapter, encode_call(sig)) for sig in CAPO_CALLS]

    def decode(block: int, got: dict[str, list[int]]) -> dict[str, Any]:
        ans = signed_int(_need(got["latestAnswer"], 1, "capo latestAnswer", block)[0])
        dec = got["decimals"][0]
        return {"price": ans / 10 ** dec if ans > 0 else None, "ratio": signed_int(got["getRatio"][0]) / WAD,
                "snapshot_ratio": got["getSnapshotRatio"][0] / WAD,
                "snapshot_ts": float(got["getSnapshotTimestamp"][0]),
                "max_growth_apr": got["getMaxRatioGrowthPerSecond"][0] / WAD * YEAR / (got["getSnapshotRatio"][0] / WAD)
                if got["getSnapshotRatio"][0] else 0.0}

    def series(df: pl.DataFrame) -> list[Series]:
        out = _oracle_series(protocol, symbol, "USD", f"capo:{adapter.lower()}")(df)
        ev = pl.concat([df.select("ts", pl.lit(symbol).alias("token"), pl.lit(kind).alias("kind"),
                                  pl.col(col).cast(pl.Float64).alias("value"))
                        for kind, col in (("capo-ratio", "ratio"), ("capo-snapshot-ratio", "snapshot_ratio"),
                                          ("capo-snapshot-ts", "snapshot_ts"),
                                          ("capo-max-growth-apr", "max_growth_apr"))])
        out.append(Series("events", ev.sort("kind", "ts"), safe_name(f"rpc-capo-{symbol}"), f"capo:{adapter.lower()}",
                          "rpc"))
        return out
    return Preset("capo", {"adapter": adapter.lower(), "symbol": symbol, "protocol": protocol}, _fixed(calls), decode,
                  series, label=f"capo {symbol}")


# ------------------------------------------------------------------------------------------------ pools
def uniswap_v3(pool: str, base: str, quote: str, decimals0: int = 18, decimals1: int = 18,
               invert: bool = False) -> Preset:
    """Uniswap v3 ``slot0()``: sqrtPriceX96 -> token1 per token0 = (sqrtP / 2^96)^2 x 10^(dec0 - dec1);
    ``invert`` when BASE is token1."""
    call = Call("s", pool, encode_call("slot0()"))

    def decode(block: int, got: dict[str, list[int]]) -> dict[str, Any]:
        sp = _need(got["s"], 2, "uniswap-v3 slot0", block)[0]
        p = (sp / 2 ** 96) ** 2 * 10 ** (decimals0 - decimals1)
        return {"price": (1 / p if invert else p) if p > 0 else None}
    return Preset("uniswap-v3", {"pool": pool.lower(), "base": base, "quote": quote, "d0": decimals0, "d1": decimals1,
                                 "invert": invert}, _fixed([call]), decode,
                  _oracle_series(None, base, quote, f"uniswap-v3:{pool.lower()}"), label=f"uniswap-v3 {base}/{quote}")


def curve_dy(pool: str | None, i: int, j: int, base: str, quote: str, dx: float = 1.0) -> Preset:
    pool = pool or CURVE_STETH_POOL
    amount = int(round(dx * 1e18))
    call = Call("dy", pool, encode_call("get_dy(int128,int128,uint256)", i, j, amount))

    def decode(block: int, got: dict[str, list[int]]) -> dict[str, Any]:
        dy = _need(got["dy"], 1, "curve get_dy", block)[0]
        return {"price": dy / amount if dy else None}
    return Preset("curve-dy-batch", {"pool": pool.lower(), "i": i, "j": j, "dx": dx, "base": base, "quote": quote},
                  _fixed([call]), decode, _oracle_series(None, base, quote, f"curve:{pool.lower()}:get_dy"),
                  label=f"curve get_dy {base}/{quote}")


def blocks_only() -> Preset:
    return Preset("blocks-batch", {}, lambda rnd, b, got: [], lambda b, got: {}, lambda df: [], label="blocks")


# ------------------------------------------------------------------------------------------------ events
#: event kind -> (signature, default contract, what topic 1 filters on)
EVENTS = {
    "aave-reserve-updated": ("ReserveDataUpdated(address,uint256,uint256,uint256,uint256,uint256)", AAVE_V3_POOL,
                             "asset"),
    "morpho-accrue": ("AccrueInterest(bytes32,uint256,uint256,uint256)", MORPHO_BLUE, "market_id"),
    "morpho-liquidate": ("Liquidate(bytes32,address,address,uint256,uint256,uint256,uint256,uint256)", MORPHO_BLUE,
                         "market_id"),
    # the CAPO adapter's event as bgd-labs/aave-capo IPriceCapAdapter declares it
    "capo-snapshot": ("CapParametersUpdated(uint256,uint256,uint256,uint16)", None, None),
}


def morpho_market_id(loan: str, collateral: str, oracle: str, irm: str, lltv: float | int) -> str:
    """A Morpho Blue market id: keccak256(abi.encode(loanToken, collateralToken, oracle, irm, lltv)), lltv
    in WAD (0.86 or 860000000000000000)."""
    from decimal import Decimal

    from backtest.data.sources.abi import keccak256

    wad = int(lltv) if isinstance(lltv, int) and lltv > 1 else int(Decimal(str(lltv)) * 10 ** 18)
    words = encode_call("f(address,address,address,address,uint256)", resolve_token(loan), resolve_token(collateral),
                        oracle, irm, wad)[10:]
    return "0x" + keccak256(bytes.fromhex(words)).hex()


def _market_id(text: str) -> str:
    """``--market-id``: the id (0x + 64 hex), or ``LOAN,COLLATERAL,ORACLE,IRM,LLTV`` to compute it from."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) == 1:
        return text
    if len(parts) != 5:
        raise InputError(f"--market-id {text!r}: an id, or LOAN,COLLATERAL,ORACLE,IRM,LLTV")
    try:
        lltv = float(parts[4])
    except ValueError:
        raise InputError(f"--market-id {text!r}: LLTV {parts[4]!r} is not a number") from None
    return morpho_market_id(parts[0], parts[1], parts[2], parts[3], lltv if lltv <= 1 else int(parts[4]))


def resolve_token(asset: str) -> str:
    if asset.lower().startswith("0x"):
        return asset
    for sym, addr in TOKENS.items():
        if sym.lower() == asset.lower():
            return addr
    raise InputError(f"--asset {asset!r}: an address (0x...) or one of {', '.join(TOKENS)}")


#: ``backtest data fetch rpc PRESET`` -> one line of help
PRESETS = {
    "weeth": "ether.fi weETH getRate() -> exchange_rates weETH/eETH",
    "ezeth": "Renzo calculateTVLs() total / ezETH totalSupply() -> exchange_rates ezETH/ETH",
    "rseth": "Kelp LRTOracle rsETHPrice() -> exchange_rates rsETH/ETH",
    "oseth": "StakeWise OsTokenVaultController convertToAssets(1e18) -> exchange_rates osETH/ETH",
    "cbeth": "Coinbase cbETH exchangeRate() -> exchange_rates cbETH/ETH",
    "reth": "Rocket Pool rETH getExchangeRate() -> exchange_rates rETH/ETH",
    "rate-provider": "getRate() of a Balancer rate provider / pool (--address, --token) -> exchange_rates",
    "morpho": "Morpho Blue market(id) + IRM borrowRateView (--market-id) -> rates morpho-blue (+ utilization)",
    "morpho-oracle": "the oracle of a Morpho Blue market (--market-id, --symbol COLLATERAL) price() -> oracle_prices",
    "comet": "Compound III getUtilization / getBorrowRate / getSupplyRate -> rates compound-v3",
    "aave-v3-reserve": "Aave v3 getReserveData (--asset; with --events aave-reserve-updated: every rate change)",
    "aave-oracle": "AaveOracle getAssetPrice (--asset) -> oracle_prices aave-v3 SYMBOL/USD",
    "chainlink-feed": "Chainlink latestRoundData (--address) -> prices, or oracle_prices with --protocol",
    "capo": "CAPO adapter latestAnswer + snapshot parameters (--address; default Aave's wstETH adapter) "
            "-> oracle_prices + events",
    "uniswap-v3": "Uniswap v3 slot0 (--address pool; default wstETH/WETH 0.01 %) -> prices BASE/QUOTE",
    "curve": "Curve get_dy (--address pool, --i, --j) -> prices BASE/QUOTE",
    "balancer-stable": "Balancer v2 (Composable)Stable pool spot price (--pool-id; Vault getPoolTokens + StableMath) "
                       "-> prices BASE/QUOTE",
}


def from_options(what: str, o: dict[str, Any]) -> Preset:
    """The preset ``what`` from the CLI's options (``address``, ``asset``, ``symbol``, ``market_id``, ...)."""
    addr = o.get("address")

    def need(*keys: str) -> None:
        missing = [k for k in keys if not o.get(k)]
        if missing:
            raise InputError(f"rpc {what} needs " + ", ".join("--" + k.replace("_", "-") for k in missing))
    simple = {"weeth": weeth, "rseth": rseth, "oseth": oseth, "cbeth": cbeth, "reth": reth}
    if what in simple:
        return simple[what](addr)
    if what == "ezeth":
        return ezeth(addr, o.get("token_address"))
    if what == "rate-provider":
        need("address", "token")
        return rate_provider(addr, o["token"], o.get("underlying") or "ETH")
    if what == "morpho":
        need("market_id")
        return morpho(_market_id(o["market_id"]), o.get("symbol") or "WETH", addr, o.get("protocol") or "morpho-blue")
    if what == "morpho-oracle":
        need("market_id", "symbol")
        return morpho_oracle(_market_id(o["market_id"]), o["symbol"], o.get("quote") or "WETH", addr,
                             protocol=o.get("protocol") or "morpho-blue")
    if what == "comet":
        return comet(addr, o.get("symbol") or "WETH")
    if what in ("aave-v3-reserve", "aave-oracle"):
        need("asset")
        sym = o.get("symbol") or o["asset"]
        if sym.startswith("0x"):
            raise InputError(f"rpc {what}: --symbol NAME is needed with an --asset address")
        fn = aave_reserve if what == "aave-v3-reserve" else aave_oracle
        return fn(resolve_token(o["asset"]), sym, addr)
    if what == "chainlink-feed":
        need("base", "quote")
        return chainlink(addr, o["base"], o["quote"], o.get("protocol"))
    if what == "capo":           # default: Aave v3's wstETH adapter (mainnet.py: the one of 2025-06 .. 2026-04)
        if addr:
            need("symbol")
        elif (o.get("symbol") or "wstETH") != "wstETH":
            raise InputError(f"rpc capo --symbol {o['symbol']}: only wstETH's adapter is defaulted; pass --address")
        return capo(addr or AAVE_V3_WSTETH_CAPO, o.get("symbol") or "wstETH", o.get("protocol") or "aave-v3")
    if what == "uniswap-v3":     # default pool: wstETH/WETH 0.01 % (token0 wstETH)
        pair = (o.get("base") or "wstETH", o.get("quote") or "WETH")
        if not addr and pair != ("wstETH", "WETH"):
            raise InputError(f"rpc uniswap-v3 {pair[0]}/{pair[1]}: only the wstETH/WETH pool is defaulted; "
                             "pass --address")
        return uniswap_v3(addr or UNISWAP_V3_WSTETH_WETH, *pair, o.get("decimals0", 18), o.get("decimals1", 18),
                          bool(o.get("invert")))
    if what == "curve":
        return curve_dy(addr, o.get("i", 1), o.get("j", 0), o.get("base") or "stETH", o.get("quote") or "ETH",
                        o.get("dx", 1.0))
    if what == "balancer-stable":
        from backtest.data.sources.balancer_stable import balancer_stable
        return balancer_stable(o.get("pool_id"), o.get("base") or "ezETH", o.get("quote") or "WETH", addr)
    raise InputError(f"unknown rpc preset {what!r}; choose one of: {', '.join(PRESETS)}")
