"""The `backtest` command: a thin click group that parses, calls the API, prints, maps errors to exit codes.

Exit codes: 0 ok, 2 bad input (config, data, arguments), 1 any other failure. A user mistake never shows a
traceback (set BACKTEST_DEBUG=1 to see one for a failure).
"""
from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import click

from backtest.errors import BacktestError, InputError


from backtest.cli_views import DEFAULT_TOP, FORMATS, Progress, echo_frame, print_summary
from backtest.cli_views import Progress as _Progress, fmt as _fmt  # noqa: F401  (their names before cli_views)

PROGRESS_STEPS = 50     # progress updates asked of a run on a terminal (smaller batches, same results)


def _sort_options(f):
    """--sort METRIC, --ascending, --top N: which configurations the summary table lists."""
    f = click.option("--top", "top", type=click.IntRange(min=1), default=DEFAULT_TOP, show_default=True,
                     help="list the top N configurations")(f)
    f = click.option("--ascending", is_flag=True, help="with --sort: lowest first")(f)
    return click.option("--sort", "sort", default=None, metavar="METRIC",
                        help="order the table by a summary column, highest first (e.g. net_apy, liq_loss_rate)")(f)


def parse_value(text: str):
    """A --set value: a TOML literal (number, bool, quoted string, array), else the bare string."""
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _parse_pairs(items, option: str, expected: str, parse) -> dict:
    """KEY=VALUE options into {key: parse(value, key)}."""
    out = {}
    for item in items:
        if "=" not in item:
            raise click.UsageError(f"{option} {item!r}: expected {expected}")
        k, v = item.split("=", 1)
        out[k.strip()] = parse(v.strip(), k.strip())
    return out


def _parse_sets(items) -> dict:
    return _parse_pairs(items, "--set", "KEY=VALUE", lambda v, k: parse_value(v))


def _parse_grids(items) -> dict:
    from backtest.config import parse_grid

    return _parse_pairs(items, "--grid", "KEY=SPEC (a:b:step, a..b or x,y,z)", lambda v, k: parse_grid(v, key=k))


def _do_run(config, sets, grids, zip_, engine, dense, workers, quiet, executor="local", address=None,
            resume=False, force=False, sort=None, ascending=False, top=DEFAULT_TOP, montecarlo=None):
    from backtest.api import run as api_run

    prog = Progress(not quiet)
    try:
        res = api_run(config, overrides=_parse_sets(sets) or None, grids=_parse_grids(grids) or None,
                      zip_=zip_, engine=engine, dense=dense, workers=workers, executor=executor,
                      address=address, resume=resume, force=force, progress=prog.advance,
                      on_start=prog.start, on_align=prog.align,
                      progress_every=PROGRESS_STEPS if prog.enabled else 0, montecarlo=montecarlo)
    finally:
        prog.stop()
    if not quiet and res["manifest"] is None:      # a strategy-book kind (backtest/strategy_book.py)
        labels = [c for c in res["summary"].columns if "." in c]
        for r in res["summary"].iter_rows(named=True):
            swept = "".join(f" {k}={r[k]}" for k in labels)
            click.echo(f"[{r['config_id']}]{swept} {r['kind']}: end value {r['end_value']:.6g} {r['unit']} from "
                       f"{r['capital']:.6g}, net APY {r['net_apy']:.2%} (hold {r['hold_apy']:.2%}), max drawdown "
                       f"{r['max_drawdown']:.2%}, costs {r['total_costs']:.4g}")
        if res["summary"]["notes"][0]:
            click.echo(f"notes: {res['summary']['notes'][0]}")
        click.echo(f"result set: {res['path']}")
    elif not quiet:
        labels = [p for p in res["summary"].columns if "." in p]
        print_summary(res["summary"], labels, top=top, sort=sort, ascending=ascending, where=str(res["path"]))
        m = res["manifest"]
        mc = m.get("montecarlo")
        if mc is not None:
            n = 1 if mc["path"] is not None else mc["paths"]
            click.echo(f"Monte Carlo: {n} path(s) of {mc['paths']}, seed {mc['seed']}, {mc['block_days']:g}-day "
                       f"blocks, resampling {', '.join(mc['resample'])}; VaR / CVaR at 95 % of the ending "
                       f"equity ({res['summary']['debt_asset'][0]}); every path in paths.parquet")
        if m["resumed_configs"]:
            click.echo(f"resumed: {m['resumed_configs']} configuration(s) kept, {m['computed_configs']} computed")
        click.echo(f"result set: {res['path']}")
    return res


@click.group()
@click.version_option(package_name="backtest")
def cli():
    """Leverage-loop and liquidation backtester for liquid staking and restaking."""


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="override a config key")
@click.option("--engine", type=click.Choice(["core", "reference"]), default="core", show_default=True,
              help="the Cython core, or the slow plain-Python reference engine")
@click.option("--dense", is_flag=True, help="replay every block (no chunk skipping); same results, slower")
@click.option("--workers", type=int, default=0, help="threads for the core (0 = all cores)")
@click.option("--resume", is_flag=True, help="finish an interrupted run without recomputing finished configurations")
@click.option("--force", is_flag=True, help="replace a result set of a different configuration")
@click.option("--quiet", is_flag=True, help="no table, no progress bar")
@_sort_options
def run(config, sets, engine, dense, workers, resume, force, quiet, sort, ascending, top):
    """Replay CONFIG (and every point of its [sweep]); write the result set and print a summary."""
    _do_run(config, sets, (), False, engine, dense, workers, quiet, resume=resume, force=force, sort=sort,
            ascending=ascending, top=top)


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--grid", "grids", multiple=True, metavar="KEY=SPEC",
              help="a grid: a:b:step (floats, inclusive), a..b (integers), or x,y,z")
@click.option("--zip", "zip_", is_flag=True, help="pair the grids element-wise instead of a product")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="override a config key")
@click.option("--workers", type=int, default=0, help="local: core threads; dask: local worker processes (0 = all cores)")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True)
@click.option("--address", default=None, metavar="tcp://HOST:PORT", help="a Dask scheduler (default: a local cluster)")
@click.option("--resume", is_flag=True, help="finish an interrupted sweep without recomputing finished configurations")
@click.option("--engine", type=click.Choice(["core", "reference"]), default="core", show_default=True)
@click.option("--force", is_flag=True, help="replace a result set of a different configuration")
@click.option("--paths", "n_paths", type=int, default=None,
              help="Monte Carlo: N paths by block bootstrap of the window's own history (overrides montecarlo.paths)")
@click.option("--seed", type=int, default=None, help="Monte Carlo: the paths' seed (default 0)")
@click.option("--block-days", type=float, default=None, help="Monte Carlo: bootstrap block length (default 7)")
@click.option("--path", "path_id", type=int, default=None, help="Monte Carlo: replay this one path alone")
@click.option("--vary-borrow-rate", is_flag=True,
              help="Monte Carlo: resample the borrow rate too, in the same blocks (one core pass per path, slower)")
@click.option("--resample", default=None, metavar="SERIES,...",
              help="Monte Carlo: the series a path resamples, of discount, exchange_rate, eth_usd, gas, borrow_rate "
                   "(default discount; beyond it, one core pass per path)")
@click.option("--quiet", is_flag=True)
@_sort_options
def sweep(config, grids, zip_, sets, workers, executor, address, resume, engine, force, n_paths, seed, block_days,
          path_id, vary_borrow_rate, resample, quiet, sort, ascending, top):
    """Replay CONFIG over the grids given here (added to, or overriding, its [sweep]); with --paths or a
    [montecarlo] table, on Monte Carlo paths (a flag overrides its key of the table)."""
    if address and executor != "dask":
        raise click.UsageError("--address goes with --executor dask")
    # the Monte Carlo flags given, resolved over the config's [montecarlo] table (backtest.montecarlo.resolve)
    mc = {"paths": n_paths, "seed": seed, "block_days": block_days, "path": path_id,
          "vary_borrow_rate": vary_borrow_rate or None,
          "resample": tuple(x.strip() for x in resample.split(",")) if resample is not None else None}
    _do_run(config, sets, grids, zip_, engine, False, workers, quiet, executor, address, resume, force, sort,
            ascending, top, mc)


@cli.command()
@click.argument("results_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--sql", default=None, help="DuckDB SQL over views summary, events, timeseries, episodes")
@click.option("--format", "fmt_name", type=click.Choice(FORMATS), default="table", show_default=True,
              help="how --sql prints its result: a table, or CSV / JSON for scripts")
@_sort_options
def show(results_dir, sql, fmt_name, sort, ascending, top):
    """Print a result set's summary, or run SQL over it."""
    import duckdb

    root = Path(results_dir)
    if not (root / "summary.parquet").exists():
        raise InputError(f"{results_dir}: not a result set (no summary.parquet)")
    con = duckdb.connect()
    con.execute(f"CREATE VIEW summary AS SELECT * FROM read_parquet('{root / 'summary.parquet'}')")
    con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{root / 'events.parquet'}')")
    if (root / "paths.parquet").exists():          # a Monte Carlo result set: every (configuration, path)
        con.execute(f"CREATE VIEW paths AS SELECT * FROM read_parquet('{root / 'paths.parquet'}')")
    if (root / "episodes.parquet").exists():
        con.execute(f"CREATE VIEW episodes AS SELECT * FROM read_parquet('{root / 'episodes.parquet'}')")
    if (root / "timeseries").exists():
        con.execute("CREATE VIEW timeseries AS SELECT * FROM read_parquet("
                    f"'{root / 'timeseries' / '*' / '*.parquet'}', hive_partitioning = true)")
    if sql is None:
        import polars as pl

        if fmt_name != "table":
            raise click.UsageError("--format goes with --sql (the summary itself: --sql \"SELECT * FROM summary\")")
        summary = pl.read_parquet(root / "summary.parquet")
        print_summary(summary, [c for c in summary.columns if "." in c], top=top, sort=sort,
                      ascending=ascending, where=str(root))
        return
    try:
        rel = con.sql(sql)
    except duckdb.Error as exc:
        raise InputError(f"--sql: {exc}") from None
    if rel is None:
        return
    echo_frame(rel.pl(), fmt_name)


@cli.command()
@click.argument("results_dir", type=click.Path(file_okay=False, exists=True))
@click.option("-o", "--output", type=click.Path(), default=None, help="the HTML file (default RESULTS_DIR/report.html)")
@click.option("--metric", default=None,
              help="summary column that ranks the configurations (default net_apy; net_apy_mean for Monte Carlo)")
@click.option("--top", type=int, default=5, show_default=True, help="draw the top N and the bottom N by --metric")
@click.option("--filter", "filters", multiple=True, metavar="COLUMN<OP>VALUE",
              help="keep rows where it holds, e.g. strategy.loops>=3 or liq_count=0 (repeat: all must hold)")
@click.option("--config", "config_ids", multiple=True, type=int, metavar="ID", help="also draw this config_id")
@click.option("--axes", default=None, metavar="X[,Y]", help="heatmap axes (default: the two most varied swept keys)")
def report(results_dir, output, metric, top, filters, config_ids, axes):
    """Write a self-contained HTML report (plotly inlined, opens offline) of a result set."""
    from backtest.report import write_report

    path = write_report(results_dir, output, metric=metric, top=top, filters=tuple(filters),
                        config_ids=tuple(config_ids), axes=tuple(a.strip() for a in axes.split(",")) if axes else None)
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


@cli.command("book")
@click.option("--window", default="real-2024", show_default=True,
              help="real-2024 (2024-05-14..2025-09-18), june-2022 (2022-05-02..2022-09-30) or START..END")
@click.option("--capital", type=float, default=1000.0, show_default=True, help="dollars put into each strategy")
@click.option("--data", "data_dir", default="data", show_default=True, help="the lake")
@click.option("--output", default="results", show_default=True, help="writes OUTPUT/book/")
@click.option("--configs", default=None, help="a folder of book configs (default: examples/book/)")
@click.option("--engine", type=click.Choice(["core", "reference"]), default="core", show_default=True,
              help="the book kinds' engine: the Cython core or the plain-Python reference")
def book_cmd(window, capital, data_dir, output, configs, engine):
    """The strategy book: every advertised strategy replayed over one window, "what $1,000 became"."""
    from backtest.book import EXAMPLES, book, print_book

    frame = book(window, capital, data_dir, output, Path(configs) if configs else EXAMPLES, engine)
    print_book(frame, capital)
    click.echo(f"book: {Path(output) / 'book' / 'book.parquet'}")


from backtest.cli_data import data  # noqa: E402  (the `data` group lives in its own module)

cli.add_command(data)


def main(argv=None):
    try:
        rc = cli.main(args=argv, standalone_mode=False)
        if isinstance(rc, int) and rc:      # a command that ended with ctx.exit(code)
            sys.exit(rc)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except (click.ClickException, BacktestError) as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(1)
    except Exception as exc:  # a failure, not a user mistake
        if os.environ.get("BACKTEST_DEBUG"):
            traceback.print_exc()
        click.echo(f"Error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":
    main()
