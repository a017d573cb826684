"""What the terminal shows: the summary table fitted to the terminal's width (columns by priority, the rest
named in a footer), the top N configurations by a metric, SQL results as a table, CSV or JSON, and the
progress bar (alignment, then configurations) on a terminal only."""
from __future__ import annotations

import math
import sys
import time

import click
import polars as pl

# the summary table's columns, most wanted first: (column, title, percent?)
SUMMARY_COLUMNS = (
    ("net_apy", "net APY", True), ("window_return", "return", True), ("excess_apy", "excess", True),
    ("min_hf", "min HF", False), ("liq_count", "liqs", False), ("liq_loss_rate", "liq loss", False),
    ("hold_apy", "hold APY", True), ("net_apy_rate", "APY @rate", True), ("excess_apy_rate", "excess @rate", True),
    ("avg_leverage", "avg lev", False), ("total_costs", "costs", False), ("bad_debt", "bad debt", False),
    ("end_equity", "end equity", False), ("liq_penalty", "penalty", False), ("max_drawdown", "max DD", True),
    ("hold_apy_rate", "hold @rate", True),
)
DEFAULT_TOP = 40
FORMATS = ("table", "csv", "json")


def fmt(v, pct=False, digits=4):
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        if math.isinf(v):
            return "inf"
        return f"{v * 100:.2f}%" if pct else f"{v:.{digits}f}"
    return str(v)


def sort_summary(summary: pl.DataFrame, metric: str | None, ascending: bool = False) -> pl.DataFrame:
    """By metric (highest first unless ascending; NaN and null last), ties by config_id; None: config order."""
    if metric is None:
        return summary
    if metric not in summary.columns:
        from backtest.config.fields import did_you_mean

        metrics = [c for c, _, _ in SUMMARY_COLUMNS if c in summary.columns]
        raise click.UsageError(f"--sort {metric}: not a summary column{did_you_mean(metric, summary.columns)} "
                               f"(e.g. {', '.join(metrics[:6])})")
    key = pl.col(metric)
    if summary.schema[metric].is_float():
        key = key.fill_nan(None)
    return summary.with_columns(key.alias("__key")).sort(["__key", "config_id"], descending=[not ascending, False],
                                                          nulls_last=True).drop("__key")


def _cells(rows: list[dict], col: str, pct: bool) -> list[str]:
    return [fmt(r.get(col), pct) for r in rows]


def fit_columns(rows: list[dict], labels: list[str], available: list[str], width: int):
    """The columns that fit in `width` characters: id and the swept labels always, then SUMMARY_COLUMNS in
    priority order while they fit. Returns ([(column, title, cells)], [hidden column names])."""
    chosen = [("config_id", "id", [str(r["config_id"]) for r in rows])]
    chosen += [(lab, lab.split(".")[-1], _cells(rows, lab, False)) for lab in labels]

    def w(title, cells):            # rich: a column's content plus 2 of padding and 1 of border
        return max([len(title)] + [len(c) for c in cells]) + 3

    used = 1 + sum(w(t, c) for _, t, c in chosen)
    hidden = []
    for col, title, pct in SUMMARY_COLUMNS:
        if col not in available:
            continue
        cells = _cells(rows, col, pct)
        if used + w(title, cells) <= width:
            chosen.append((col, title, cells))
            used += w(title, cells)
        else:
            hidden.append(col)
    return chosen, hidden


def print_summary(summary: pl.DataFrame, labels: list[str], top: int = DEFAULT_TOP, sort: str | None = None,
                  ascending: bool = False, width: int | None = None, where: str | None = None,
                  limit: int | None = None) -> None:
    """The summary table fitted to the terminal (or `width`); where: the result set, named in the footer;
    limit: the old name of top."""
    from rich.console import Console
    from rich.table import Table

    if limit is not None:
        top = limit

    console = Console(width=width) if width else Console()
    shown = sort_summary(summary, sort, ascending).head(top)
    rows = shown.to_dicts()
    columns, hidden = fit_columns(rows, labels, summary.columns, console.width)
    order = f", by {sort} ({'lowest' if ascending else 'highest'} first)" if sort else ""
    title = f"{summary.height} configuration(s){order}"
    if summary.height > len(rows):
        title = f"top {len(rows)} of {title}"
    table = Table(title=title, show_lines=False)
    for i, (_, head, _) in enumerate(columns):
        table.add_column(head, justify="right" if i == 0 or i > len(labels) else "left", no_wrap=True)
    for k in range(len(rows)):
        table.add_row(*[cells[k] for _, _, cells in columns])
    console.print(table)
    if summary.height > len(rows):
        console.print(f"... {summary.height - len(rows)} more configuration(s): --top N shows more")
    if hidden:
        sql = f"backtest show {where} --sql \"SELECT config_id, {', '.join(hidden[:3])} FROM summary\"" if where \
            else "backtest show RESULTS_DIR --sql ..."
        console.print(f"not shown (terminal too narrow): {', '.join(hidden)}; see {sql}", soft_wrap=True)


def echo_frame(df: pl.DataFrame, fmt_name: str) -> None:
    """An SQL result: a table for people, CSV or JSON (rows as objects; NaN and inf as null) for scripts."""
    if fmt_name == "csv":
        click.echo(df.write_csv(), nl=False)
    elif fmt_name == "json":
        click.echo(df.write_json())
    else:
        with pl.Config(tbl_rows=200, tbl_cols=-1, tbl_width_chars=_width()):
            click.echo(df)


def _width() -> int:
    from rich.console import Console

    return Console().width


class Progress:
    """A rich progress display on a terminal: a spinner while the market data is aligned, then a bar from the
    first configuration (configurations, config-blocks, rate, time left); silent when stderr is no terminal."""

    def __init__(self, enabled: bool, terminal: bool | None = None):
        self.enabled = enabled and (sys.stderr.isatty() if terminal is None else terminal)
        self.bar = None
        self.task = None
        self.blocks = 0
        self.t0 = time.perf_counter()

    def _ensure(self):
        if self.bar is None:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as Bar, SpinnerColumn, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self.bar = Bar(SpinnerColumn(), "[progress.description]{task.description}", BarColumn(),
                           MofNCompleteColumn(), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                           TimeRemainingColumn(), transient=True, console=Console(stderr=True))
            self.bar.start()
        return self.bar

    def align(self, done: int, total: int) -> None:
        """Called before each market group is aligned (done of total)."""
        if not self.enabled:
            return
        bar = self._ensure()
        if self.task is None:
            self.task = bar.add_task("aligning market data", total=total, rate="")
        bar.update(self.task, completed=done, total=total)

    def start(self, configs: int, config_blocks: int) -> None:
        if not self.enabled:
            return
        bar = self._ensure()
        if self.task is not None:
            bar.remove_task(self.task)
        self.task = bar.add_task("configurations", total=configs, rate="")
        self.blocks = 0
        self.t0 = time.perf_counter()

    def advance(self, configs: int, config_blocks: int) -> None:
        if self.bar is None or self.task is None:
            return
        self.blocks += config_blocks
        rate = self.blocks / max(time.perf_counter() - self.t0, 1e-9)
        self.bar.update(self.task, advance=configs, rate=f"{self.blocks:.3g} config-blocks, {rate:.3g}/s")

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
