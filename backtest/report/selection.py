"""Which configurations a report draws: filters over the summary, then the top and bottom N by one metric.

A sweep of 10⁴ points stays readable because the curves show only the chosen few; the heatmaps still show
every (filtered) point.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import polars as pl

from backtest.errors import InputError

_FILTER_RE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(<=|>=|!=|==|=|<|>)\s*(.+?)\s*$")
_OPS = {"=": "eq", "==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


@dataclass(frozen=True)
class Selection:
    filtered: pl.DataFrame          # the summary rows the filters keep (every figure over the sweep uses these)
    top: list[int]                  # config_ids, best first (largest metric)
    bottom: list[int]               # config_ids, worst first (smallest metric), none repeated from top
    chosen: list[int]               # every configuration drawn: --config ones, then top, then bottom
    metric: str
    filters: tuple[str, ...]
    unranked: int                   # filtered rows whose metric is NaN / null (not ranked)


def _value(text: str, dtype: pl.DataType):
    if dtype.is_numeric():
        try:
            v = float(text)
        except ValueError:
            return None
        return int(v) if dtype.is_integer() and v.is_integer() else v
    if dtype == pl.Boolean:
        return {"true": True, "false": False}.get(text.lower())
    return text.strip("\"'")


def parse_filter(text: str, summary: pl.DataFrame) -> pl.Expr:
    """`COLUMN OP VALUE` (OP one of = != < <= > >=) as a polars expression; InputError naming what is wrong."""
    m = _FILTER_RE.match(text)
    if not m:
        raise InputError(f"--filter {text!r}: expected COLUMN OP VALUE with OP one of = != < <= > >= "
                         "(e.g. strategy.loops>=3 or liq_count=0)")
    col, op, raw = m.groups()
    if col not in summary.columns:
        raise InputError(f"--filter {text!r}: the summary has no column {col!r} "
                         f"(it has: {', '.join(summary.columns[:12])}, ...)")
    dtype = summary[col].dtype
    value = _value(raw, dtype)
    if value is None:
        raise InputError(f"--filter {text!r}: {raw!r} is not a value of column {col!r} ({dtype})")
    if not dtype.is_numeric() and op not in ("=", "==", "!="):
        raise InputError(f"--filter {text!r}: column {col!r} holds text; only = and != compare it")
    return getattr(pl.col(col), _OPS[op])(value)


def select(summary: pl.DataFrame, metric: str = "net_apy", top: int = 5, filters: tuple[str, ...] = (),
           config_ids: tuple[int, ...] = ()) -> Selection:
    if metric not in summary.columns or not summary[metric].dtype.is_numeric():
        numeric = [c for c in summary.columns if summary[c].dtype.is_numeric() and c != "config_id"]
        raise InputError(f"--metric {metric!r}: not a numeric column of the summary "
                         f"(e.g. {', '.join(numeric[:10])})")
    if top < 0 or top > 1000:
        raise InputError(f"--top {top}: must be a whole number from 0 to 1000")
    filtered = summary
    for f in filters:
        filtered = filtered.filter(parse_filter(f, summary))
    if filtered.height == 0:
        raise InputError(f"--filter {' '.join(filters)}: no configuration of the {summary.height} is left")
    known = set(summary["config_id"].to_list())
    missing = [c for c in config_ids if c not in known]
    if missing:
        raise InputError(f"--config {missing[0]}: no such configuration (config_id 0 to {max(known)})")
    # one row per configuration (a Monte Carlo summary has one per path): its mean over the paths
    per_config = filtered.group_by("config_id").agg(pl.col(metric).cast(pl.Float64).mean()).sort("config_id")
    vals = per_config[metric].to_list()
    ranked = [(v, c) for v, c in zip(vals, per_config["config_id"].to_list())
              if v is not None and not math.isnan(v)]
    best = [c for _, c in sorted(ranked, key=lambda t: (-t[0], t[1]))[:top]]
    worst = [c for _, c in sorted(ranked, key=lambda t: (t[0], t[1])) if c not in best][:top]
    chosen = list(dict.fromkeys([*config_ids, *best, *worst]))
    return Selection(filtered=filtered, top=best, bottom=worst, chosen=chosen, metric=metric,
                     filters=tuple(filters), unranked=per_config.height - len(ranked))
