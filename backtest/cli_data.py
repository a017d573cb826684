"""`backtest data ...`: build, fill and inspect the Parquet data lake.

- ``synth NAME`` / ``list``: the synthetic lake and the catalog;
- ``import SOURCE FILE... --into DIR [--table T] [--map COL=SRC[:UNIT]] [--set COL=VALUE]``: the importers
  of :mod:`backtest.data.sources` (looked up in :mod:`backtest.data.sources.registry`);
- ``derive ratio|oracle-rate ... --into DIR``: derived series of :mod:`backtest.data.derive` (a market ratio
  from two USD series, an oracle's exchange rate);
- ``fetch coingecko|defillama|rpc ... --into DIR``: the downloaders of :mod:`backtest.data.sources` (API keys
  and the RPC URL are read from environment variables and never printed);
- ``check [--lake DIR]``: the lake's self-check, exit code 1 when it finds errors.
"""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import click

from backtest.errors import BacktestError, InputError


@click.group()
def data():
    """Build and inspect the Parquet data lake."""


@data.command("synth")
@click.argument("name")
@click.option("--into", "lake", type=click.Path(file_okay=False), default="synth", show_default=True,
              help="the synthetic lake (never data/: the bundled lake is real history)")
def data_synth(name, lake):
    """Write the deterministic synthetic market NAME into a lake (default synth/)."""
    from backtest.data.synth import ALL_SCENARIOS, synth

    if name not in ALL_SCENARIOS:
        raise InputError(f"unknown synthetic market {name!r}; choose one of: {', '.join(sorted(ALL_SCENARIOS))}")
    paths = synth(name, Path(lake))
    click.echo(f"{name}: wrote {len(paths)} file(s) into {lake}")


@data.command("list")
@click.option("--lake", type=click.Path(file_okay=False), default="data", show_default=True)
def data_list(lake):
    """List the lake's series with span and resolution."""
    from backtest.data.lake import catalog

    cat = catalog(Path(lake))
    if cat.height == 0:
        click.echo(f"{lake}: no series")
        return
    for row in cat.iter_rows(named=True):
        first = dt.datetime.fromtimestamp(row["first_ts"], dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
        last = dt.datetime.fromtimestamp(row["last_ts"], dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
        click.echo(f"{row['table']:<15} {row['key']:<40} {row['rows']:>8} rows  {first} -> {last}")


# ------------------------------------------------------------------------------------------------ helpers
def _pairs(items, flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise InputError(f"{flag} {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        if not k.strip():
            raise InputError(f"{flag} {item!r}: empty key")
        out[k.strip()] = v.strip()
    return out


def _when(text: str, flag: str) -> int:
    """A UTC date / datetime (ISO) or epoch seconds -> epoch seconds."""
    t = text.strip()
    if t.isdigit():
        return int(t)
    try:
        d = dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{flag} {text!r}: expected a UTC date such as 2022-05-01 (or epoch seconds)") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.timezone.utc)
    return int(d.timestamp())


def _require_lake(lake, command: str) -> None:
    if lake is None:
        # the bundled data/ is the synthetic demo lake: real data goes into a lake the user names
        raise InputError(f"{command}: --into DIR is required (the lake to write into, e.g. --into "
                         "lake; nothing was written)")


def _echo_report(report, quiet: bool = False) -> None:
    if quiet:
        return
    for line in report.lines():
        click.echo(line)
    click.echo(f"wrote {len(report)} lake file(s)")


def _secret(env: str | None, what: str, required: bool = False) -> str | None:
    if not env:
        return None
    val = os.environ.get(env)
    if required and not val:
        raise InputError(f"{what}: set the environment variable {env} (it is read from there so that it never "
                         "shows up in a shell history, a log or the lake)")
    return val or None


def _client(timeout: float, retries: int):
    from backtest.data.sources.download import HttpClient

    if timeout <= 0 or retries < 0:
        raise InputError("--timeout must be positive and --retries >= 0")
    return HttpClient(timeout=timeout, retries=retries)


def _progress(label: str):
    import sys

    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        click.echo(f"\r{label}: {done}/{total}", err=True, nl=done == total)
    return show


_net_options = [
    click.option("--into", "lake", type=click.Path(file_okay=False), default=None,
                 help="the lake to write into (required: no default writes into the bundled demo lake)"),
    click.option("--timeout", type=float, default=30.0, show_default=True, help="seconds per request"),
    click.option("--retries", type=int, default=5, show_default=True,
                 help="retries per request (backoff 1, 2, 4 s...)"),
]


def _net(f):
    for opt in reversed(_net_options):
        f = opt(f)
    return f


# ------------------------------------------------------------------------------------------------ import
@data.command("import")
@click.argument("source")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--into", "lake", type=click.Path(file_okay=False), default=None,
              help="the lake to write into (required: no default writes into the bundled demo lake)")
@click.option("--table", default=None, help="target table (csv, dune)")
@click.option("--map", "maps", multiple=True, metavar="COL=SRC[:UNIT]",
              help="lake column <- file column, with an optional unit (ms, wei, gwei, ray, percent, bps, apy...)")
@click.option("--set", "sets", multiple=True, metavar="COL=VALUE",
              help="a constant column (base, quote, protocol, asset, source ...) or a source option")
@click.option("--recipe", default=None, help="dune: a recipe (query id + column mapping), e.g. ezeth-balancer-minute")
@click.option("--quiet", is_flag=True)
def data_import(source, files, lake, table, maps, sets, recipe, quiet):
    """Normalise FILES of SOURCE into the lake (all files are checked before anything is written).

    SOURCE: coingecko, aavescan, aave-snapshots, comet, etherscan, gas-hourly, peg-hourly, curve, rocketpool,
    etherfi, defillama, dune, csv. Dune results of the episodes: `dune FILE --recipe NAME` (names in
    backtest.data.sources.dune_recipes; an unknown name lists them). Example:

    \b
        backtest data import csv prices.csv --table prices \\
            --map ts=time --map price=close --set base=wstETH --set quote=WETH
    """
    from backtest.data.sources.csv_mapping import parse_mapping
    from backtest.data.sources.registry import SOURCES, import_files

    if source not in SOURCES:
        lines = "\n".join(f"  {name:<15} {desc}" for name, (_, desc) in SOURCES.items())
        raise InputError(f"unknown import source {source!r}; choose one of:\n{lines}")
    if not files:
        raise InputError(f"data import {source}: give at least one FILE")
    _require_lake(lake, f"data import {source}")
    from backtest.data.lake_write import transaction

    if recipe is not None:
        from backtest.data.sources.dune_recipes import import_recipe

        if source != "dune" or table:
            raise InputError("--recipe is for `data import dune` (the recipe names the tables: no --table)")
        with transaction(Path(lake)):
            report = import_recipe(list(files), Path(lake), recipe, parse_mapping(maps) or None,
                                   _pairs(sets, "--set") or None)
        _echo_report(report, quiet)
        return
    with transaction(Path(lake)):        # all files of the import land together, even after a kill
        report = import_files(source, list(files), Path(lake), table=table,
                              mapping=parse_mapping(maps) or None, sets=_pairs(sets, "--set") or None)
    _echo_report(report, quiet)
    if not quiet:
        click.echo(f"lake: {Path(lake).resolve()}")


# ------------------------------------------------------------------------------------------------ derive
@data.group("derive")
def data_derive():
    """Series derived from what the lake holds."""


@data_derive.command("ratio")
@click.argument("base")
@click.argument("quote")
@click.option("--into", "--lake", "lake", type=click.Path(file_okay=False), default=None,
              help="the lake to read and write into (required: no default writes into the bundled demo lake)")
@click.option("--via", default="USD", show_default=True, help="the common quote of the two series")
@click.option("--bucket", default=3600, show_default=True, type=int, help="seconds to floor both series to")
@click.option("--source-base", default=None, help="source of BASE/VIA when the lake has several")
@click.option("--source-quote", default=None, help="source of QUOTE/VIA when the lake has several")
@click.option("--median-of", default=1, show_default=True, type=int,
              help="trailing median over this many buckets (removes one-sample glitches)")
@click.option("--rebase-apr", type=float, default=None,
              help="BASE rebases (stETH): write an ASSUMED exchange rate growing at this APR and the price in shares")
def derive_ratio_cmd(base, quote, lake, via, bucket, source_base, source_quote, median_of, rebase_apr):
    """prices BASE/QUOTE = (BASE/VIA) / (QUOTE/VIA), floored to the hour and inner-joined."""
    from backtest.data.derive import derive_ratio

    _require_lake(lake, "data derive ratio")
    if bucket <= 0 or median_of < 1:
        raise InputError("--bucket must be positive and --median-of >= 1")
    _echo_report(derive_ratio(Path(lake), base, quote, via=via, freq=bucket, source_base=source_base,
                              source_quote=source_quote, rebase_apr=rebase_apr, median_of=median_of))


@data_derive.command("oracle-rate")
@click.argument("protocol")
@click.argument("asset")
@click.option("--into", "--lake", "lake", type=click.Path(file_okay=False), default=None,
              help="the lake to read and write into (required: no default writes into the bundled demo lake)")
@click.option("--quote", default="ETH", show_default=True)
@click.option("--exchange-rate", is_flag=True, help="also write it as the asset's exchange rate")
def derive_oracle_cmd(protocol, asset, lake, quote, exchange_rate):
    """oracle_prices PROTOCOL ASSET/QUOTE = ASSET/USD ÷ QUOTE/USD of the protocol's oracle."""
    from backtest.data.derive import derive_oracle_rate

    _require_lake(lake, "data derive oracle-rate")
    _echo_report(derive_oracle_rate(Path(lake), protocol, asset, quote=quote, exchange_rate=exchange_rate))


# ------------------------------------------------------------------------------------------------ fetch
@data.group("fetch")
def data_fetch():
    """Download history from CoinGecko, DefiLlama or an Ethereum node (resumable)."""


@data_fetch.command("coingecko")
@click.argument("coin")
@click.option("--start", required=True, help="UTC date")
@click.option("--end", required=True, help="UTC date (exclusive)")
@click.option("--vs", default="usd", show_default=True)
@click.option("--symbol", default=None, help="the lake's name for COIN (known ids are mapped: staked-ether -> stETH)")
@click.option("--api-key-env", default="COINGECKO_API_KEY", show_default=True,
              help="environment variable holding the API key (optional)")
@click.option("--pro", is_flag=True, help="the Pro API (pro-api.coingecko.com, x-cg-pro-api-key)")
@click.option("--base-url", default=None, help="API root (default: CoinGecko's)")
@_net
def fetch_coingecko_cmd(coin, start, end, vs, symbol, api_key_env, pro, base_url, lake, timeout, retries):
    """CoinGecko market_chart/range of COIN (an API id, e.g. staked-ether) -> prices SYMBOL/VS."""
    from backtest.data.sources.registry import FETCHERS

    _require_lake(lake, "data fetch coingecko")
    fetch = FETCHERS["coingecko"]
    rep = fetch(coin, Path(lake), _when(start, "--start"), _when(end, "--end"), vs=vs, symbol=symbol,
                api_key=_secret(api_key_env, "coingecko"), pro=pro, base_url=base_url,
                client=_client(timeout, retries), progress=_progress(f"coingecko {coin}"))
    _echo_report(rep)


@data_fetch.group("defillama")
def fetch_defillama():
    """DefiLlama coins chart and pool charts."""


@fetch_defillama.command("coins")
@click.argument("coin")
@click.option("--start", required=True)
@click.option("--end", required=True)
@click.option("--period", default="1h", show_default=True)
@click.option("--symbol", default=None, help="the lake's name for COIN")
@click.option("--base-url", default=None, help="API root (default: https://coins.llama.fi)")
@_net
def fetch_llama_coins_cmd(coin, start, end, period, symbol, base_url, lake, timeout, retries):
    """Prices of COIN (ethereum:0x... or coingecko:id) every PERIOD -> prices SYMBOL/USD."""
    from backtest.data.sources.registry import FETCHERS

    _require_lake(lake, "data fetch defillama coins")
    fetch = FETCHERS["defillama-coins"]
    rep = fetch(coin, Path(lake), _when(start, "--start"), _when(end, "--end"), period=period, symbol=symbol,
                base_url=base_url, client=_client(timeout, retries), progress=_progress(f"defillama {coin}"))
    _echo_report(rep)


@fetch_defillama.command("lend-borrow")
@click.argument("pool")
@click.option("--protocol", required=True, help="e.g. aave-v3")
@click.option("--asset", required=True, help="e.g. WETH")
@click.option("--api-key-env", default="DEFILLAMA_API_KEY", show_default=True,
              help="environment variable holding the Pro API key (chartLendBorrow is a Pro endpoint)")
@click.option("--base-url", default=None)
@_net
def fetch_llama_lb_cmd(pool, protocol, asset, api_key_env, base_url, lake, timeout, retries):
    """chartLendBorrow of POOL (a DefiLlama pool UUID) -> rates (APY -> APR, utilization from totals)."""
    from backtest.data.sources.registry import FETCHERS

    _require_lake(lake, "data fetch defillama lend-borrow")
    fetch = FETCHERS["defillama-pool"]
    rep = fetch(pool, Path(lake), chart="lend-borrow", protocol=protocol, asset=asset,
                api_key=_secret(api_key_env, "defillama"), base_url=base_url, client=_client(timeout, retries))
    _echo_report(rep)


@fetch_defillama.command("yields")
@click.argument("pool")
@click.option("--token", required=True, help="the staking token whose exchange rate the APY compounds (stETH)")
@click.option("--base-url", default=None)
@_net
def fetch_llama_yields_cmd(pool, token, base_url, lake, timeout, retries):
    """chart of POOL -> exchange_rates TOKEN/ETH compounded from the base APY (a derived series)."""
    from backtest.data.sources.registry import FETCHERS

    _require_lake(lake, "data fetch defillama yields")
    fetch = FETCHERS["defillama-pool"]
    rep = fetch(pool, Path(lake), chart="yields", token=token, base_url=base_url, client=_client(timeout, retries))
    _echo_report(rep)


_OLD_RPC = ["wsteth", "aave-reserve", "chainlink", "curve-dy", "blocks"]


@data_fetch.command("rpc")
@click.argument("what", metavar="PRESET")
@click.option("--blocks", "blocks", multiple=True, metavar="START:END:STEP", help="blocks to read at")
@click.option("--block", "single", multiple=True, type=int, help="one block (repeatable)")
@click.option("--events", default=None, metavar="KIND",
              help="read at every block holding an event of KIND inside --blocks START:END (aave-reserve-updated, "
                   "morpho-accrue, morpho-liquidate, capo-snapshot)")
@click.option("--rpc-url-env", default="ETH_RPC_URL", show_default=True,
              help="environment variable holding the JSON-RPC URL (never printed)")
@click.option("--address", default=None, help="the contract, when not the preset's mainnet default")
@click.option("--asset", default=None, help="reserve / oracle asset: a token address or symbol (WETH, wstETH ...)")
@click.option("--symbol", default=None, help="the lake's name for the asset (WETH, wstETH)")
@click.option("--market-id", default=None,
              help="morpho / morpho-oracle: the market id (bytes32), or LOAN,COLLATERAL,ORACLE,IRM,LLTV to compute it")
@click.option("--token", default=None, help="rate-provider: the token whose rate it is")
@click.option("--underlying", default=None, help="rate-provider: what the rate is in (default ETH)")
@click.option("--protocol", "protocol_label", default=None,
              help="the lake's protocol label: chainlink-feed / capo / morpho-oracle write oracle_prices of it "
                   "(aave-v3, morpho-blue); morpho writes its rates under it (two markets: morpho-ezeth-86)")
@click.option("--aave-version", type=int, default=3, show_default=True)
@click.option("--base", default=None, help="chainlink / curve / uniswap-v3 / balancer-stable: base symbol")
@click.option("--quote", default=None, help="chainlink / curve / uniswap-v3 / balancer-stable: quote symbol")
@click.option("--i", "i", type=int, default=1, show_default=True, help="curve: index sold (stETH pool: 1 = stETH)")
@click.option("--j", "j", type=int, default=0, show_default=True, help="curve: index bought (0 = ETH)")
@click.option("--dx", type=float, default=1.0, show_default=True, help="curve: amount sold, token units")
@click.option("--decimals0", type=int, default=18, show_default=True, help="uniswap-v3: token0 decimals")
@click.option("--decimals1", type=int, default=18, show_default=True, help="uniswap-v3: token1 decimals")
@click.option("--invert", is_flag=True, help="uniswap-v3: BASE is token1")
@click.option("--pool-id", default=None, help="balancer-stable: the pool id (bytes32; default the ezETH/WETH pool)")
@click.option("--batch", type=int, default=100, show_default=True, help="calls per JSON-RPC batch request")
@click.option("--log-span", type=int, default=10_000, show_default=True, help="--events: blocks per eth_getLogs")
@_net
def fetch_rpc_cmd(what, blocks, single, events, rpc_url_env, address, asset, symbol, market_id, token, underlying,
                  protocol_label, aave_version, base, quote, i, j, dx, decimals0, decimals1, invert, pool_id, batch,
                  log_span, lake, timeout, retries):
    """eth_call PRESET at the chosen blocks on the node in $ETH_RPC_URL (plus each block's time -> blocks).

    PRESETS (batched): weeth, ezeth, rseth, oseth, cbeth, reth, rate-provider, morpho, morpho-oracle, comet,
    aave-v3-reserve, aave-oracle, chainlink-feed, capo, uniswap-v3, curve, balancer-stable; one call per
    request: wsteth, aave-reserve, chainlink, curve-dy, blocks. Example (every Aave v3 WETH rate change in a
    block range):

    \b
        backtest data fetch rpc aave-v3-reserve --asset WETH --events aave-reserve-updated \\
            --blocks 20300000:20310000 --into lake
    """
    from backtest.data.sources import rpc, rpc_jobs, rpc_presets
    from backtest.data.sources.registry import FETCHERS

    _require_lake(lake, f"data fetch rpc {what}")
    if what not in _OLD_RPC and what not in rpc_presets.PRESETS:
        lines = "\n".join(f"  {k:<16} {v}" for k, v in rpc_presets.PRESETS.items())
        raise InputError(f"unknown rpc preset {what!r}; choose one of:\n{lines}\n  (and {', '.join(_OLD_RPC)})")
    url = _secret(rpc_url_env, "rpc", required=True)
    if what in _OLD_RPC:
        if events:
            raise InputError(f"--events works with the batched presets (aave-v3-reserve ...), not {what}")
        nums = rpc.parse_blocks([*blocks, *map(str, single)])
        if what == "wsteth":
            reader = rpc.wsteth_reader(address or rpc.WSTETH)
        elif what == "aave-reserve":
            if not asset or not symbol:
                raise InputError("rpc aave-reserve needs --asset ADDRESS and --symbol NAME")
            reader = rpc.aave_reserve_reader(asset, symbol, pool=address, version=aave_version)
        elif what == "chainlink":
            if not address or not base or not quote:
                raise InputError("rpc chainlink needs --address FEED --base SYMBOL --quote SYMBOL")
            reader = rpc.chainlink_reader(address, base, quote)
        elif what == "curve-dy":
            reader = rpc.curve_dy_reader(address or rpc.CURVE_STETH, i, j, base or "stETH", quote or "ETH", dx)
        else:
            reader = rpc.blocks_reader()
        fetch = FETCHERS["rpc"]
        rep = fetch(reader, nums, Path(lake), url, client=_client(timeout, retries),
                    progress=_progress(f"rpc {what}"))
        _echo_report(rep)
        return
    from backtest.data.sources.rpc_batch import BatchRpc

    preset = rpc_presets.from_options(what, dict(
        address=address, asset=asset, symbol=symbol, market_id=market_id, token=token, underlying=underlying,
        protocol=protocol_label, base=base, quote=quote, i=i, j=j, dx=dx, decimals0=decimals0,
        decimals1=decimals1, invert=invert, pool_id=pool_id))
    node = BatchRpc(url, timeout=timeout, retries=retries, batch_size=batch)
    try:
        if events:
            if single or len(blocks) != 1 or blocks[0].count(":") != 1:
                raise InputError("--events reads the range given as --blocks START:END (one range, no step)")
            try:
                a, b = (int(x) for x in blocks[0].split(":"))
            except ValueError:
                raise InputError(f"--blocks {blocks[0]!r}: expected START:END block numbers") from None
            if a < 0 or b < a:
                raise InputError(f"--blocks {blocks[0]}: START must be >= 0 and <= END")
            filt = rpc_presets._market_id(market_id) if events.startswith("morpho") and market_id else (
                rpc_presets.resolve_token(asset) if asset else None)
            emitter = address if events == "capo-snapshot" else None
            nums = rpc_jobs.event_blocks(node, events, a, b, address=emitter, filter_on=filt, span=log_span,
                                          lake=Path(lake))
            if not nums:
                raise InputError(f"--events {events}: no such event in blocks {a}-{b}; nothing was written")
        else:
            nums = rpc.parse_blocks([*blocks, *map(str, single)])
        rep = rpc_jobs.fetch_preset(preset, nums, Path(lake), node, progress=_progress(f"rpc {what}"),
                                    extra_params={"events": events} if events else None)
    finally:
        node.close()
    _echo_report(rep)


# ------------------------------------------------------------------------------------------------ check
def _iso_day(ts: int | None) -> str:
    if ts is None:
        return "..."
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _duration(text: str) -> float:
    t = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if t[-1] in units:
            return float(t[:-1]) * units[t[-1]]
        return float(t)
    except (ValueError, IndexError):
        raise InputError(f"--max-gap {text!r}: a duration such as 3d, 12h or seconds") from None


@data.command("check")
@click.option("--lake", type=click.Path(file_okay=False), default=None, help="the lake (default: data, or the "
              "config's run.data)")
@click.option("--start", default=None, help="check only what a replay from this UTC date reads")
@click.option("--end", default=None, help="... to this UTC date")
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              help="the window (and lake) of a run config: what `backtest run CONFIG` would read")
@click.option("--max-gap", default="3d", show_default=True, help="longest gap allowed (and 10x the resolution)")
@click.option("--max-jump", type=float, default=0.20, show_default=True,
              help="largest move between consecutive points of a peg ratio / exchange rate")
@click.option("--quiet", is_flag=True, help="only the problems and the totals")
def data_check(lake, start, end, config, max_gap, max_jump, quiet):
    """Check every series: span, resolution, gaps, order, duplicates, values, units. Exit 1 on errors.

    With --start/--end (or --config) only the points a replay of that window reads are checked, by the
    rules `backtest run` refuses on."""
    from backtest.data.check import check_lake

    lo = _when(start, "--start") if start is not None else None
    hi = _when(end, "--end") if end is not None else None
    if config is not None:
        from backtest.config import load_config

        if start is not None or end is not None:
            raise InputError("--config gives the window: use it or --start/--end, not both")
        cfg = load_config(Path(config))
        lo, hi = cfg.run.start, cfg.run.end
        lake = lake if lake is not None else str(cfg.run.data)
    lake = lake if lake is not None else "data"
    if lo is not None and hi is not None and hi <= lo:
        raise InputError(f"--end {end or hi} must be after --start {start or lo}")
    if not Path(lake).is_dir():
        raise InputError(f"{lake}: no such lake folder")
    rep = check_lake(Path(lake), max_gap=_duration(max_gap), max_jump=max_jump, start=lo, end=hi)
    if config is not None:
        from backtest.data.check import downgrade

        downgrade(rep, cfg.run.allow)       # what the run itself would replay with a warning
    if lo is not None or hi is not None:
        click.echo(f"window: {_iso_day(lo)} to {_iso_day(hi)} (the points a replay of it reads)")
    for line in rep.lines():
        if quiet and line.rstrip().endswith(" ok"):
            continue
        click.echo(line)
    if rep.errors:
        raise BacktestError(f"{lake}: {rep.errors} error(s) found")
