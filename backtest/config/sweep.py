"""Sweeps: the [sweep] table, the CLI's ``--grid KEY=SPEC`` syntax, and the configurations they expand to.

A swept key takes a list of values or an inclusive range ``{ start, stop, step }`` (``--grid`` writes
``a:b:step``, ``a..b`` or ``x,y,z``); every value is checked on its own as the key's parser reads it, and every
point of the product (or of the zip) goes through the whole validation again, so an impossible point is
reported with its key and the point's labels. The number of points and the time-series samples they record
are bounded before anything is expanded.
"""
from __future__ import annotations

import copy
import itertools
import math
import re
from typing import Any, Iterable, Mapping

from backtest.config.build import build
from backtest.config.fields import FLOAT_RE, Context, fmt_value
from backtest.config.rules import BYTES_PER_SAMPLE, gb, record_samples
from backtest.config.schema import FIELDS, check_key, set_path
from backtest.config.toml_lines import lines_for
from backtest.config_types import Config
from backtest.errors import ConfigError

#: values of one swept key (a range or a --grid)
MAX_RANGE_VALUES = 100_000
#: time-series samples over all the configurations of a sweep (~8.8 GB written at 88 bytes a sample)
MAX_SWEEP_SAMPLES = 100_000_000
#: configurations in one sweep (a product of a few 100,000-value ranges would never finish expanding)
MAX_SWEEP_POINTS = 1_000_000
_INT_RE = re.compile(r"^[+-]?\d+$")


def _round12(x: float) -> float:
    return float(f"{x:.12g}")


def _range_values(start: Any, stop: Any, step: Any) -> list:
    """Inclusive arithmetic range (raises ValueError); ints if all three are ints, else rounded floats."""
    for v in (start, stop, step):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError("start, stop and step must be finite numbers")
    if step <= 0:
        raise ValueError("step must be > 0")
    if stop < start:
        raise ValueError("stop must be >= start")
    n = int(math.floor((stop - start) / step + 1e-9)) + 1
    if n > MAX_RANGE_VALUES:
        raise ValueError(f"gives {n} values (more than {MAX_RANGE_VALUES})")
    if all(isinstance(v, int) for v in (start, stop, step)):
        return [start + i * step for i in range(n)]
    return [_round12(start + i * step) for i in range(n)]


def _check_values(ctx: Context, key: str, err_path: tuple, values: list, origin: str | tuple) -> list:
    """Non-empty, no duplicates, each value acceptable for the key on its own (reported at `origin`)."""
    if not values:
        raise ctx.fail(err_path, "needs at least one value")
    seen: set = set()            # (type, value): 1 and 1.0 and true are different values here
    unhashable: list = []
    for v in values:             # linear, not quadratic: a range may give 100,000 values
        try:
            typed = (type(v), v)
            dup = typed in seen
            seen.add(typed)
        except TypeError:
            dup = any(type(v) is type(w) and v == w for w in unhashable)
            unhashable.append(v)
        if dup:
            raise ctx.fail(err_path, f"lists {fmt_value(v)} twice")
    path = tuple(key.split("."))
    vctx = Context(ctx.file, ctx.lines, {**ctx.origins, path: origin}, ctx.point)
    parser = FIELDS[key]
    for v in values:
        parser(vctx, path, v)
    return list(values)


def parse_sweep(ctx: Context, table: Any) -> dict[str, list]:
    """The [sweep] table -> {dotted key: its values}, each key and value checked."""
    if table is None:
        return {}
    if not isinstance(table, Mapping):
        raise ctx.fail(("sweep",), "must be a table of dotted paths, e.g. \"strategy.target_ltv\" = [0.7, 0.8]",
                       table)
    flat: dict[str, tuple[Any, tuple]] = {}

    def walk(prefix: str, tpath: tuple, t: Mapping) -> None:
        for k, v in t.items():
            key = f"{prefix}.{k}" if prefix else k
            p = tpath + (k,)
            # an unquoted dotted key (strategy.target_ltv = [...]) arrives as nested tables
            if isinstance(v, Mapping) and v and all(isinstance(x, (Mapping, list)) for x in v.values()):
                walk(key, p, v)
            else:
                flat[key] = (v, p)

    walk("", ("sweep",), table)
    out: dict[str, list] = {}
    for key, (v, p) in flat.items():
        check_key(ctx, key, p, sweep=True)
        if isinstance(v, list):
            values = v
        elif isinstance(v, Mapping):
            for k in v:
                if k not in ("start", "stop", "step"):
                    raise ctx.unknown(p + (k,), ("start", "stop", "step"), v)
            for k in ("start", "stop", "step"):
                if k not in v:
                    raise ctx.fail(p, f"a range needs start, stop and step (missing {k})", v)
            try:
                values = _range_values(v["start"], v["stop"], v["step"])
            except ValueError as exc:
                raise ctx.fail(p, f"bad range: {exc}", v) from None
        else:
            raise ctx.fail(p, "must be a list of values or a range { start = ..., stop = ..., step = ... }", v)
        out[key] = _check_values(ctx, key, p, values, (ctx.lines.get(p) or ctx.lines.get(("sweep",)), "[sweep]"))
    return out


def parse_grid(spec: str, key: str | None = None) -> list:
    """Values of a ``--grid KEY=SPEC``: ``a:b:step`` (inclusive range), ``a..b`` (integers, inclusive),
    or a comma list ``x,y,z`` (numbers become int/float, true/false booleans, anything else strings)."""
    name = f"--grid {key}" if key else "--grid"
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"{name}: empty grid; expected a:b:step, a..b or x,y,z")
    text = spec.strip()
    m = re.fullmatch(r"\s*([+-]?\d+)\s*\.\.\s*([+-]?\d+)\s*", text)
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        if b < a:
            raise ConfigError(f"{name}={spec}: bad grid: {b} < {a} in a..b")
        if b - a + 1 > MAX_RANGE_VALUES:
            raise ConfigError(f"{name}={spec}: bad grid: more than {MAX_RANGE_VALUES} values")
        return list(range(a, b + 1))
    if ":" in text and "," not in text:
        parts = [p.strip() for p in text.split(":")]
        if all(FLOAT_RE.match(p) for p in parts):
            if len(parts) != 3:
                raise ConfigError(f"{name}={spec}: bad grid: a range is start:stop:step")
            nums = [_scalar(p) for p in parts]
            try:
                return _range_values(*nums)
            except ValueError as exc:
                raise ConfigError(f"{name}={spec}: bad grid: {exc}") from None
    if "," not in text and re.fullmatch(r"[+-]?[\d.eE+-]*\d\s*\.\.\s*[+-]?[\d.eE+-]+", text):
        raise ConfigError(f"{name}={spec}: bad grid: a..b takes integers (use a:b:step for floats)")
    items = [p.strip() for p in text.split(",")]
    if any(not p for p in items):
        raise ConfigError(f"{name}={spec}: bad grid: empty item in the comma list")
    return [_scalar(p) for p in items]


def _scalar(text: str) -> Any:
    if _INT_RE.match(text):
        return int(text)
    if FLOAT_RE.match(text):
        return float(text)
    if text in ("true", "false"):
        return text == "true"
    return text


def parse_grid_option(text: str) -> tuple[str, list]:
    """``"strategy.loops=1..10"`` -> ``("strategy.loops", [1, ..., 10])``; the key is checked."""
    key, sep, spec = (text or "").partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--grid {text!r}: expected KEY=SPEC, e.g. strategy.target_ltv=0.5:0.9:0.05")
    check_key(Context(f"--grid {text}"), key, tuple(key.split(".")), sweep=True)
    return key, parse_grid(spec, key)


def expand_sweep(config: Config, grids: Mapping[str, list] | None = None,
                 zip_: bool = False) -> list[tuple[dict[str, Any], Config]]:
    """Every configuration of ``config.sweep`` merged with ``grids`` (a grid replaces a [sweep] key of the
    same name; new keys come after the [sweep] keys), as (labels, Config) pairs.

    The product varies the last key fastest; ``zip_=True`` pairs the lists instead (equal lengths needed).
    Each point goes through the full validation of :func:`load_config`, so an impossible point is reported
    with its key. Without any sweep the result is ``[({}, config)]``.
    """
    file = str(config.source) if config.source is not None else "<config>"
    ctx = Context(file, lines_for(config.source))
    axes: dict[str, list] = {}
    origin: dict[str, str | tuple] = {}
    for key, values in config.sweep.items():
        axes[key] = list(values)
        line = ctx.lines.get(("sweep", key)) or ctx.lines.get(("sweep",) + tuple(key.split(".")))
        origin[key] = (line or ctx.lines.get(("sweep",)), "[sweep]")
    for key, values in (grids or {}).items():
        kpath = tuple(str(key).split("."))
        gctx = Context(file, {}, {kpath: "--grid"})
        check_key(gctx, key, kpath, sweep=True)
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            values = [values]
        axes[key] = _check_values(gctx, key, kpath, list(values), "--grid")
        origin[key] = "--grid"
    if not axes:
        return [({}, config)]
    if not config.raw:
        raise ConfigError(f"{file}: cannot expand a sweep of a Config that was not built by load_config")

    keys = list(axes)
    if zip_:
        lengths = {k: len(v) for k, v in axes.items()}
        if len(set(lengths.values())) > 1:
            detail = ", ".join(f"{k} has {n}" for k, n in lengths.items())
            raise ConfigError(f"{file}: --zip needs sweep lists of equal length: {detail}")
        combos: Iterable[tuple] = zip(*(axes[k] for k in keys))
        n_points = len(next(iter(axes.values())))
    else:
        combos = itertools.product(*(axes[k] for k in keys))
        n_points = math.prod(len(v) for v in axes.values())
    if n_points > MAX_SWEEP_POINTS:
        sizes = " x ".join(f"{len(v):,} ({k})" for k, v in axes.items())
        raise ConfigError(f"{file}: the sweep has {sizes} = {n_points:,} configurations; the bound is "
                          f"{MAX_SWEEP_POINTS:,}: use coarser steps or --zip")
    total = n_points * record_samples(config.run)
    if total > MAX_SWEEP_SAMPLES:
        raise ConfigError(f"{file}: run.record: {n_points:,} configurations x {record_samples(config.run):,} "
                          f"time-series samples = {total:,} samples (~{gb(total * BYTES_PER_SAMPLE)}); the bound "
                          f"is {MAX_SWEEP_SAMPLES:,}: use a coarser run.record (or \"none\") or fewer points")

    base = copy.deepcopy(dict(config.raw))
    base.pop("sweep", None)
    origins = {tuple(k.split(".")): origin[k] for k in keys}
    points = []
    for combo in combos:
        labels = dict(zip(keys, combo))
        raw = copy.deepcopy(base)
        for k, v in labels.items():
            set_path(raw, k, v)
        point = ", ".join(f"{k}={fmt_value(v)}" for k, v in labels.items())
        pctx = Context(file, ctx.lines, origins, f" (sweep point {point})")
        points.append((labels, build(raw, pctx, config.source, {})))
    return points

