"""TOML -> validated, frozen run configurations (DESIGN.md section 3), sweeps and the config hash.

Every user mistake becomes ONE :class:`~backtest.errors.ConfigError` whose message names the file, the TOML line
of the key (found by scanning the text; best effort), the dotted key path, the value, what is wrong, and for
unknown names the closest valid one::

    loop.toml:12: strategy.target_ltv = 0.95: must be below market.liquidation_threshold (0.93)
    loop.toml:9: strategy.target_lvt: unknown key in [strategy]; did you mean 'target_ltv'?

Public API:

* :func:`load_config` (a TOML file), :func:`loads_config` (TOML text), :func:`config_from_dict` (a dict as
  ``tomllib`` would return it): validate and build a :class:`~backtest.config_types.Config`.
* :func:`parse_grid` / :func:`parse_grid_option`: the CLI's ``--grid KEY=SPEC`` syntax.
* :func:`expand_sweep`: the configurations of a sweep, each re-validated, with their labels.
* :func:`config_to_dict` (JSON-safe, for the manifest) and :func:`config_hash` (a run id).
* :func:`parse_date`, :func:`parse_duration`: the value syntaxes, raising ``ValueError``.

This module loads and hashes; the rest is in its parts, from the bottom up:

* ``toml_lines``: the TOML line scanner (key path -> line number, for the messages);
* ``fields``: the field validation toolkit (value syntaxes, the message format and suggestions, the parsers);
* ``schema``: the sections, their keys, types and bounds, and the dotted paths overrides and sweeps may set;
* ``rules``: the cross-field rules (the window, the venues' keys, LTV against the threshold...);
* ``build``: the tables -> a Config, section by section;
* ``sweep``: [sweep], ``--grid`` and :func:`expand_sweep`.
"""
from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import hashlib
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Mapping

from backtest.config.build import build
from backtest.config.fields import Context, parse_date, parse_duration
from backtest.config.rules import (
    BYTES_PER_SAMPLE,
    BYTES_PER_STEP,
    MAX_RECORD_SAMPLES,
    MAX_STEPS,
    record_samples,
    steps_of,
)
from backtest.config.schema import (
    AAVE_FAMILY,
    CHAIN_PROTOCOLS,
    CHAINS,
    ENTRIES,
    ETHEREUM_GENESIS,
    EXIT_ROUTES,
    GAS_UNIT_KEYS,
    IRMS,
    MAX_AMP,
    MAX_CAPITAL,
    MAX_GAS_GWEI,
    MAX_GAS_UNITS,
    MAX_LOOPS,
    MAX_POOL_DEPTH,
    ORACLES,
    PROTOCOLS,
    REWARD_VALUES,
    SCENARIO_KINDS,
    SCENARIO_SHAPES,
    SLIPPAGE_MODELS,
    STRATEGY_KINDS,
    check_key,
    set_path,
    sweep_keys,
)
from backtest.config.schema import SPEC as _SPEC  # noqa: F401  (the fuzz test reads the sections' keys)
from backtest.config.sweep import (
    MAX_RANGE_VALUES,
    MAX_SWEEP_POINTS,
    MAX_SWEEP_SAMPLES,
    expand_sweep,
    parse_grid,
    parse_grid_option,
    parse_sweep,
)
from backtest.config.toml_lines import remember_text, scan_lines
from backtest.config_types import Config
from backtest.errors import ConfigError


__all__ = [
    "load_config",
    "loads_config",
    "config_from_dict",
    "parse_grid",
    "parse_grid_option",
    "expand_sweep",
    "config_hash",
    "config_to_dict",
    "parse_date",
    "parse_duration",
    "sweep_keys",
]


# ======================================================================================================
# loading
# ======================================================================================================
def _apply_overrides(ctx: Context, data: dict, overrides: Mapping[str, Any] | None) -> None:
    for key, value in (overrides or {}).items():
        kpath = tuple(str(key).split("."))
        ctx.origins[kpath] = "override"
        check_key(ctx, key, kpath, sweep=False)
        set_path(data, key, value)


def _from_text(text: str, file: str, source: Path | None, overrides: Mapping[str, Any] | None) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column \d+\)", msg)
        loc = file
        hint = ""
        if m:
            lineno = int(m.group(1))
            loc = f"{file}:{lineno}"
            msg = msg[: m.start()].strip()
            src = text.splitlines()[lineno - 1] if 0 < lineno <= len(text.splitlines()) else ""
            if ";" in src:
                hint = "; TOML has no ';' separator: put one key = value per line"
        raise ConfigError(f"{loc}: invalid TOML: {msg}{hint}") from None
    ctx = Context(file, scan_lines(text))
    _apply_overrides(ctx, data, overrides)
    cfg = build(data, ctx, source, {})
    sweep = parse_sweep(ctx, data.get("sweep"))
    return dataclasses.replace(cfg, sweep=sweep)


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Config:
    """Read, override (dotted paths, e.g. ``{"strategy.target_ltv": 0.7}``), validate and build a Config."""
    p = Path(path)
    file = str(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{file}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{file}: is a directory, not a TOML config file") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read config: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: not UTF-8 text (a TOML file must be UTF-8)") from None
    remember_text(p, text)
    return _from_text(text, file, p, overrides)


def loads_config(text: str, source: str | Path | None = None,
                 overrides: Mapping[str, Any] | None = None) -> Config:
    """Like :func:`load_config` for TOML text; ``source`` only names it in messages (and defaults run.name)."""
    src = Path(source) if source is not None else None
    if src is not None:
        remember_text(src, text)
    return _from_text(text, str(source) if source is not None else "<config>", src, overrides)


def config_from_dict(data: Mapping[str, Any], overrides: Mapping[str, Any] | None = None,
                     source: str | Path | None = None) -> Config:
    """Validate a dict shaped like the TOML (``{"run": {...}, "market": {...}, ...}``); no line numbers."""
    src = Path(source) if source is not None else None
    ctx = Context(str(source) if source is not None else "<config>")
    data = copy.deepcopy(dict(data))
    _apply_overrides(ctx, data, overrides)
    cfg = build(data, ctx, src, {})
    return dataclasses.replace(cfg, sweep=parse_sweep(ctx, data.get("sweep")))


# ======================================================================================================
# manifest form and hash
# ======================================================================================================
def _jsonable(v: Any) -> Any:
    if isinstance(v, Path):
        return v.as_posix()
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (_dt.date, _dt.datetime, _dt.time)):
        return v.isoformat()
    return v


def _as_plain(v: Any) -> Any:
    """``_jsonable(dataclasses.asdict(v))`` without asdict's deep copies (a sweep hashes 1,000 configurations)."""
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _as_plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, Mapping):
        return {str(k): _as_plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_as_plain(x) for x in v]
    return _jsonable(v)


def config_to_dict(config: Config) -> dict[str, Any]:
    """The resolved configuration as JSON-safe data (epoch seconds, seconds, Paths as strings)."""
    strategy = _as_plain(config.strategy)
    if not strategy["collateral"]:
        del strategy["collateral"]          # the one-collateral form: its hash is what it always was
    if strategy.get("book") is None:
        strategy.pop("book", None)          # the loop engine's kinds: their hash as before
    market = _as_plain(config.market)
    if not market["venue"]:
        del market["venue"]                 # no venue-own keys (every venue but Aave v4): the hash as before
    return {
        "run": _as_plain(config.run),
        "market": market,
        "strategy": strategy,
        "costs": _as_plain(config.costs),
        "scenarios": [_as_plain(s) for s in config.scenarios],
        "sweep": _jsonable(dict(config.sweep)),
        "source": _jsonable(config.source) if config.source is not None else None,
        "episodes": _as_plain(config.episodes),
        # [montecarlo] only when set: a config without one keeps its manifest as it was
        **({"montecarlo": _as_plain(config.montecarlo)} if config.montecarlo else {}),
    }


def config_hash(config: Config) -> str:
    """sha256 of the canonical JSON of what the run computes (not source, raw, sweep or run.output).

    run.data enters as the folder it names (absolute, symlinks resolved), so "data", "./data" and its absolute
    path give one hash and --resume continues a sweep however the lake was spelled."""
    d = config_to_dict(config)
    # [episodes] reads the results, it changes none; [montecarlo]'s resolved options are in the sweep hash
    for k in ("source", "sweep", "episodes", "montecarlo"):
        d.pop(k, None)
    d["run"].pop("output", None)
    d["run"]["data"] = os.path.realpath(config.run.data)
    text = json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
