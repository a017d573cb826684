"""`backtest data ...`: build and inspect the Parquet data lake."""
from __future__ import annotations

from pathlib import Path

import click

from backtest.errors import InputError


@click.group()
def data():
    """Build and inspect the Parquet data lake."""


@data.command("synth")
@click.argument("name")
@click.option("--into", "lake", type=click.Path(file_okay=False), default="data", show_default=True)
def data_synth(name, lake):
    """Write the deterministic synthetic market NAME into the lake."""
    from backtest.data.synth import SCENARIOS, synth

    if name not in SCENARIOS:
        raise InputError(f"unknown synthetic market {name!r}; choose one of: {', '.join(sorted(SCENARIOS))}")
    paths = synth(name, Path(lake))
    click.echo(f"{name}: wrote {len(paths)} file(s) into {lake}")


@data.command("list")
@click.option("--lake", type=click.Path(file_okay=False), default="data", show_default=True)
def data_list(lake):
    """List the lake's series with span and resolution."""
    import datetime as dt

    from backtest.data.lake import catalog

    cat = catalog(Path(lake))
    if cat.height == 0:
        click.echo(f"{lake}: no series")
        return
    for row in cat.iter_rows(named=True):
        first = dt.datetime.fromtimestamp(row["first_ts"], dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
        last = dt.datetime.fromtimestamp(row["last_ts"], dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
        click.echo(f"{row['table']:<15} {row['key']:<40} {row['rows']:>8} rows  {first} -> {last}")
