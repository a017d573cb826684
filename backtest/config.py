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
"""
from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import difflib
import hashlib
import itertools
import json
import math
import os
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from backtest.config_types import (
    Config,
    CostsConfig,
    ExitConfig,
    MarketConfig,
    RebalanceConfig,
    RewardsConfig,
    RunConfig,
    ScenarioConfig,
    StrategyConfig,
)
from backtest import params as _params
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

# --- value domains ------------------------------------------------------------------------------------
PROTOCOLS = ("aave-v3", "aave-v2", "spark", "morpho-blue", "compound-v3", "generic")
AAVE_FAMILY = ("aave-v3", "aave-v2", "spark")
IRMS = ("data", "adaptive-curve")
ORACLES = ("exchange-rate", "market", "capo", "chainlink")
STRATEGY_KINDS = ("hold", "lend", "loop", "flash-loan")
ENTRIES = ("swap", "stake")
SLIPPAGE_MODELS = ("none", "linear", "stableswap", "constant-product")
EXIT_ROUTES = ("dex", "queue")
SCENARIO_KINDS = ("depeg", "rate_spike", "utilization")
SCENARIO_SHAPES = ("v", "step")
# chain -> (milliseconds per block or slot, default replay step in whole seconds, genesis UTC epoch seconds)
#   ethereum: 12 s slots since the Merge; genesis 2015-07-30 15:26:13
#   cosmos:   the Cosmos Hub, ~6 s blocks; cosmoshub-1 genesis 2019-03-13 23:00:00
#   solana:   400 ms slots; mainnet-beta genesis 2020-03-16 14:29:00. A year is ~79 M slots, too many for
#             per-block arrays: the default step is 60 s (150 slots, 525,600 steps a year); run.step may be
#             any even number of seconds (a whole number of slots)
CHAINS = {"ethereum": (12000, 12, 1438269973), "cosmos": (6000, 6, 1552518000), "solana": (400, 60, 1584368940)}
GAS_UNIT_KEYS = ("open", "loop_step", "rebalance", "close")
ETHEREUM_GENESIS = 1438269973                   # 2015-07-30 15:26:13 UTC
#: venues that run on each chain (the Aave family, Morpho Blue and Compound III are Ethereum contracts; the
#: generic venue, configured by hand, stands for a lending market on any chain)
CHAIN_PROTOCOLS = {"cosmos": ("generic",), "solana": ("generic",)}
MAX_LOOPS = 100
MAX_RANGE_VALUES = 100_000
# size and magnitude bounds, checked before any allocation (schema-valid but absurd values are refused)
#: replayed steps per run: the aligned market costs ~340 bytes a step (README: ~0.9 GB peak for a year of
#: 2,628,000 Ethereum blocks), so 30 M steps (11.4 years of 12 s blocks) is already ~10 GB
MAX_STEPS = 30_000_000
BYTES_PER_STEP = 340
#: time-series samples per configuration (run.record): 11 float64 fields = 88 bytes a sample in memory, so
#: 4 M samples (~1.5 years of 12 s blocks at record = "block") is ~350 MB per configuration
MAX_RECORD_SAMPLES = 4_000_000
#: time-series samples over all the configurations of a sweep (~8.8 GB written at 88 bytes a sample)
MAX_SWEEP_SAMPLES = 100_000_000
#: configurations in one sweep (a product of a few 100,000-value ranges would never finish expanding)
MAX_SWEEP_POINTS = 1_000_000
BYTES_PER_SAMPLE = 88
MAX_CAPITAL = 1e12            # debt-asset units: more than all the ETH (~1.2e8) or any stablecoin supply
MAX_GAS_GWEI = 1e6            # fixed gas price: Ethereum's highest daily averages were ~1e3 gwei
MAX_GAS_UNITS = 1e8           # gas per transaction: a block holds 30-45 M
MAX_AMP = 1e6                 # Curve's StableSwap caps A at 1e6
MAX_POOL_DEPTH = 1e15
_SWEEP_FORBIDDEN = ("run.name", "run.data", "run.output")   # they name the result set, not a configuration
# they select the aligned market (the held token's series, the reward values), which a sweep shares
_SWEEP_MARKET = ("strategy.restake", "strategy.rewards.value", "strategy.rewards.price_per_point",
                 "strategy.rewards.token", "run.sources", "run.allow")
REWARD_VALUES = ("zero", "points", "token")

_SECTIONS = ("run", "market", "strategy", "costs", "scenario", "sweep")
_NAME_RE = re.compile(r"[A-Za-z0-9._-]+")
_DURATION_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DATE_PREFIX_RE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_INT_RE = re.compile(r"^[+-]?\d+$")
_FLOAT_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_MISSING = object()


# ======================================================================================================
# value syntaxes (public helpers raise ValueError; the field parsers below turn it into a ConfigError)
# ======================================================================================================
def parse_duration(value: Any) -> int:
    """'12s', '30m', '1h', '3d', '2w', '1h30m', '1.5h' -> whole seconds (>= 0)."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError('must be a duration string such as "30m", "1h", "3d"')
    text = value.strip()
    pos, total, n = 0, Decimal(0), 0
    while pos < len(text):
        m = _DURATION_RE.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError('not a duration: use a number and a unit s, m, h, d or w, e.g. "30m", "1h", "3d"')
        total += Decimal(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos, n = m.end(), n + 1
    if n == 0:
        raise ValueError('not a duration: use a number and a unit s, m, h, d or w, e.g. "30m", "1h", "3d"')
    if total != total.to_integral_value():
        raise ValueError("must be a whole number of seconds")
    return int(total)


def parse_date(value: Any) -> int:
    """A UTC date or datetime -> epoch seconds (int).

    Accepts "2024-06-01" (midnight UTC), "2024-06-01T12:00:00Z", "2024-06-01 12:00" (naive = UTC),
    explicit offsets ("+02:00"), and TOML's native date / datetime values.
    """
    if isinstance(value, _dt.datetime):
        dt = value
    elif isinstance(value, _dt.date):
        dt = _dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        if not _DATE_PREFIX_RE.match(text):
            raise ValueError('not a date: use "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM[:SS]Z" (UTC)')
        try:
            dt = _dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError('not a valid date: use "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM[:SS]Z" (UTC)') from None
    else:
        raise ValueError('must be a date such as "2024-06-01" or a datetime such as "2024-06-01T12:00:00Z"')
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_dt.timezone.utc)
    return math.floor(dt.timestamp())


def _fmt_date(ts: int) -> str:
    dt = _dt.datetime.fromtimestamp(ts, _dt.timezone.utc)
    return dt.strftime("%Y-%m-%d") if dt.time() == _dt.time(0) else dt.strftime("%Y-%m-%dT%H:%M:%SZ")


# ======================================================================================================
# locating keys in the TOML text
# ======================================================================================================
_BARE_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")


def _read_key(s: str, i: int) -> tuple[list[str], int] | None:
    """Parse a (dotted, possibly quoted) TOML key starting at s[i]; return (parts, index after it)."""
    parts: list[str] = []
    n = len(s)
    while True:
        while i < n and s[i] in " \t":
            i += 1
        if i >= n:
            return None
        c = s[i]
        if c == '"':
            j, buf = i + 1, []
            while j < n and s[j] != '"':
                if s[j] == "\\" and j + 1 < n:
                    buf.append(s[j + 1])
                    j += 2
                    continue
                buf.append(s[j])
                j += 1
            if j >= n:
                return None
            parts.append("".join(buf))
            i = j + 1
        elif c == "'":
            j = s.find("'", i + 1)
            if j < 0:
                return None
            parts.append(s[i + 1:j])
            i = j + 1
        else:
            m = _BARE_KEY_RE.match(s, i)
            if not m:
                return None
            parts.append(m.group())
            i = m.end()
        while i < n and s[i] in " \t":
            i += 1
        if i < n and s[i] == ".":
            i += 1
            continue
        return parts, i


def _skip_string(s: str, i: int) -> int:
    q = s[i]
    if s.startswith(q * 3, i):
        j = s.find(q * 3, i + 3)
        return len(s) if j < 0 else j + 3
    j = i + 1
    while j < len(s):
        if s[j] == "\\" and q == '"':
            j += 2
            continue
        if s[j] == q:
            return j + 1
        j += 1
    return len(s)


def _scan_value(s: str, i: int, path: tuple, lineno: int, out: dict) -> int:
    """Skip one TOML value at s[i], recording the keys of inline tables (also inside arrays)."""
    n = len(s)
    while i < n and s[i] in " \t":
        i += 1
    if i >= n:
        return n
    c = s[i]
    if c == "{":
        i += 1
        while True:
            while i < n and s[i] in " \t,":
                i += 1
            if i >= n:
                return n
            if s[i] == "}":
                return i + 1
            r = _read_key(s, i)
            if r is None:
                return n
            parts, i = r
            if i >= n or s[i] != "=":
                return n
            sub = path + tuple(parts)
            for k in range(1, len(parts) + 1):
                out.setdefault(path + tuple(parts[:k]), lineno)
            i = _scan_value(s, i + 1, sub, lineno, out)
    if c == "[":
        i += 1
        idx = 0
        while True:
            while i < n and s[i] in " \t,":
                i += 1
            if i >= n or s[i] == "#":
                return n
            if s[i] == "]":
                return i + 1
            start = i
            i = _scan_value(s, i, path + (idx,), lineno, out)
            if i <= start:
                return n
            idx += 1
    if c in "\"'":
        return _skip_string(s, i)
    while i < n and s[i] not in ",]}#":
        i += 1
    return i


def _scan_lines(text: str) -> dict[tuple, int]:
    """Map each key path (tuple of str, with ints for [[array]] entries) to its 1-based line number."""
    lines: dict[tuple, int] = {}
    table: tuple = ()
    array_counts: dict[tuple, int] = {}
    in_multiline: str | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        try:
            if in_multiline:
                if in_multiline in line:
                    in_multiline = None
                continue
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            if s.startswith("[["):
                r = _read_key(s, 2)
                if r is None:
                    continue
                key = tuple(r[0])
                idx = array_counts.get(key, -1) + 1
                array_counts[key] = idx
                table = key + (idx,)
                lines.setdefault(key, lineno)
                lines[table] = lineno
                continue
            if s.startswith("["):
                r = _read_key(s, 1)
                if r is None:
                    continue
                table = tuple(r[0])
                lines.setdefault(table, lineno)
                continue
            r = _read_key(s, 0)
            if r is None:
                continue
            parts, i = r
            if i >= len(s) or s[i] != "=":
                continue
            for k in range(1, len(parts) + 1):
                lines.setdefault(table + tuple(parts[:k]), lineno)
            rest = s[i + 1:].lstrip()
            for delim in ('"""', "'''"):
                if rest.startswith(delim) and rest.find(delim, 3) < 0:
                    in_multiline = delim
            if not in_multiline:
                _scan_value(rest, 0, table + tuple(parts), lineno, lines)
        except Exception:  # pragma: no cover - line numbers are best effort, never fatal
            continue
    return lines


# ======================================================================================================
# error context
# ======================================================================================================
def _fmt(value: Any, limit: int = 80) -> str:
    """A value as it would be written in TOML (for messages)."""
    if isinstance(value, bool):
        out = "true" if value else "false"
    elif isinstance(value, str):
        out = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, (_dt.date, _dt.datetime, _dt.time)):
        out = value.isoformat()
    elif isinstance(value, Path):
        out = json.dumps(str(value))
    elif isinstance(value, (list, tuple)):
        out = "[" + ", ".join(_fmt(v, limit) for v in value) + "]"
    elif isinstance(value, Mapping):
        out = "{ " + ", ".join(f"{_dotted([str(k)])} = {_fmt(v, limit)}" for k, v in value.items()) + " }"
    else:
        out = repr(value)
    return out if len(out) <= limit else out[: limit - 3] + "..."


def _dotted(path: Iterable) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            part = p if _BARE_KEY_RE.fullmatch(p) else json.dumps(p)
            out += ("." if out else "") + part
    return out


def _suggest(word: str, candidates: Iterable[str]) -> str | None:
    cands = [c for c in candidates if c]
    # a dotted path given without its section ("target_ltv" for "strategy.target_ltv")
    if "." not in word:
        tails = [c for c in cands if "." in c and c.rsplit(".", 1)[-1] == word]
        if len(tails) == 1:
            return tails[0]
    match = difflib.get_close_matches(word, cands, n=1, cutoff=0.6)
    if match:
        return match[0]
    last = word.rsplit(".", 1)[-1]
    tails = [c for c in cands if difflib.get_close_matches(last, [c.rsplit(".", 1)[-1]], n=1, cutoff=0.8)]
    return tails[0] if len(tails) == 1 else None


def _did_you_mean(word: str, candidates: Iterable[str]) -> str:
    s = _suggest(word, candidates)
    return f"; did you mean '{s}'?" if s else ""


class _Ctx:
    """Where a config came from: file name, key -> line map, and keys whose value came from elsewhere."""

    def __init__(self, file: str, lines: dict[tuple, int] | None = None,
                 origins: dict[tuple, str | tuple] | None = None, point: str = ""):
        self.file = file
        self.lines = lines or {}
        self.origins = origins or {}   # path -> a label ("--grid"), or (line, label) such as (30, "[sweep]")
        self.point = point             # " (sweep point: ...)" suffix

    def _where(self, path: tuple) -> tuple[str, str]:
        if path in self.origins:
            o = self.origins[path]
            if isinstance(o, tuple):
                line, label = o
                return (f"{self.file}:{line}" if line else self.file), f" (from {label})"
            return self.file, f" (from {o})"
        p = tuple(path)
        while p:
            if p in self.lines:
                return f"{self.file}:{self.lines[p]}", ""
            p = p[:-1]
        return self.file, ""

    def fail(self, path: tuple, problem: str, value: Any = _MISSING) -> ConfigError:
        loc, note = self._where(tuple(path))
        shown = "" if value is _MISSING else f" = {_fmt(value)}"
        return ConfigError(f"{loc}: {_dotted(path)}{shown}{note}: {problem}{self.point}")

    def missing(self, path: tuple) -> ConfigError:
        return self.fail(path, f"missing required key in [{_dotted(path[:-1])}]")

    def unknown(self, path: tuple, valid: Iterable[str], present: Iterable[str] = ()) -> ConfigError:
        """An unknown key; the suggestion prefers valid keys the table does not already set."""
        section = _dotted(path[:-1])
        where = f"in [{section}]" if section else "at the top level"
        valid, present = list(valid), set(present)
        hint = _did_you_mean(str(path[-1]), [v for v in valid if v not in present]) or \
            _did_you_mean(str(path[-1]), valid)
        return self.fail(path, f"unknown key {where}{hint}")


# ======================================================================================================
# field parsers: (ctx, path, value) -> converted value, raising ctx.fail(...)
# ======================================================================================================
Parser = Callable[[_Ctx, tuple, Any], Any]


def _range_text(lo, hi, lo_open, hi_open) -> str:
    if lo is not None and hi is not None:
        return f"must be in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f"must be {'>' if lo_open else '>='} {lo:g}"
    return f"must be {'<' if hi_open else '<='} {hi:g}"


def _not_a_number(ctx: _Ctx, path: tuple, v: Any, what: str = "a number") -> ConfigError:
    if isinstance(v, bool):
        return ctx.fail(path, f"must be {what}, not a boolean", v)
    if isinstance(v, str):
        hint = f" (write {v.strip()} without quotes)" if _FLOAT_RE.match(v.strip()) else ""
        return ctx.fail(path, f"must be {what}, not a string{hint}", v)
    return ctx.fail(path, f"must be {what}, not {_type_name(v)}", v)


def _type_name(v: Any) -> str:
    if isinstance(v, Mapping):
        return "a table"
    if isinstance(v, (list, tuple)):
        return "an array"
    if isinstance(v, (_dt.date, _dt.datetime, _dt.time)):
        return "a date/time"
    if isinstance(v, float):
        return "a float"
    if isinstance(v, int):
        return "an integer"
    return type(v).__name__


def _number(lo=None, hi=None, lo_open=False, hi_open=False) -> Parser:
    def parse(ctx: _Ctx, path: tuple, v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _not_a_number(ctx, path, v)
        x = float(v)
        if not math.isfinite(x):
            raise ctx.fail(path, "must be a finite number", v)
        if (lo is not None and (x <= lo if lo_open else x < lo)) or (
                hi is not None and (x >= hi if hi_open else x > hi)):
            raise ctx.fail(path, _range_text(lo, hi, lo_open, hi_open), v)
        return x
    return parse


def _bounded(parser: Parser, bound: float, why: str) -> Parser:
    """`parser`, then a sanity bound: schema-valid but absurd magnitudes (1e308) overflow the arithmetic."""
    def parse(ctx: _Ctx, path: tuple, v: Any) -> float:
        x = parser(ctx, path, v)
        if x > bound:
            raise ctx.fail(path, f"{x:g} is beyond the bound of {bound:g} ({why})", v)
        return x
    return parse


def _integer(lo=None, hi=None) -> Parser:
    def parse(ctx: _Ctx, path: tuple, v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            if isinstance(v, float):
                raise ctx.fail(path, "must be an integer", v)
            raise _not_a_number(ctx, path, v, "an integer")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ctx.fail(path, _range_text(lo, hi, False, False), v)
        return int(v)
    return parse


def _string(ctx: _Ctx, path: tuple, v: Any) -> str:
    if not isinstance(v, str):
        raise ctx.fail(path, f"must be a string, not {_type_name(v)}", v)
    if not v.strip():
        raise ctx.fail(path, "must not be empty", v)
    return v


def _choice(choices: tuple[str, ...], unsupported: Mapping[str, str] | None = None) -> Parser:
    unsupported = unsupported or {}

    def parse(ctx: _Ctx, path: tuple, v: Any) -> str:
        _string(ctx, path, v)
        if v in unsupported:
            raise ctx.fail(path, unsupported[v], v)
        if v not in choices:
            raise ctx.fail(path, f"must be one of {', '.join(choices)}"
                           f"{_did_you_mean(v, list(choices) + list(unsupported))}", v)
        return v
    return parse


def _boolean(ctx: _Ctx, path: tuple, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ctx.fail(path, f"must be true or false, not {_type_name(v)}", v)
    return v


def _date(ctx: _Ctx, path: tuple, v: Any) -> int:
    if isinstance(v, bool) or isinstance(v, (int, float)):
        raise ctx.fail(path, 'must be a date such as "2024-06-01" or "2024-06-01T12:00:00Z", not a number', v)
    try:
        return parse_date(v)
    except ValueError as exc:
        raise ctx.fail(path, str(exc), v) from None


def _duration(allow_zero: bool = False) -> Parser:
    def parse(ctx: _Ctx, path: tuple, v: Any) -> int:
        try:
            secs = parse_duration(v)
        except ValueError as exc:
            raise ctx.fail(path, str(exc), v) from None
        if secs < 0 or (secs == 0 and not allow_zero):
            raise ctx.fail(path, "must be a duration " + (">= 0" if allow_zero else "> 0"), v)
        return secs
    return parse


def _record(ctx: _Ctx, path: tuple, v: Any) -> int:
    if v == "block":
        return 0
    if v == "none":
        return -1
    try:
        secs = parse_duration(v)
    except ValueError:
        raise ctx.fail(path, 'must be "block", "none" or a duration such as "1h" or "1d"', v) from None
    if secs <= 0:
        raise ctx.fail(path, 'must be a duration > 0 (or "block" for every block)', v)
    return secs


def _gas(ctx: _Ctx, path: tuple, v: Any) -> str | float:
    if v == "data":
        return "data"
    if isinstance(v, str):
        hint = f" (write {v.strip()} without quotes)" if _FLOAT_RE.match(v.strip()) else ""
        raise ctx.fail(path, f'must be "data" (the lake\'s gas series) or a gas price in gwei{hint}', v)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _not_a_number(ctx, path, v, '"data" or a gas price in gwei')
    x = float(v)
    # 0 gwei is a price (a private or sponsored transaction), not "missing"
    if not math.isfinite(x) or x < 0:
        raise ctx.fail(path, 'must be a gas price >= 0 in gwei (or "data")', v)
    if x > MAX_GAS_GWEI:
        raise ctx.fail(path, f"{x:g} gwei is beyond the bound of {MAX_GAS_GWEI:g} gwei (Ethereum's highest daily "
                             f"averages were ~1,000 gwei); give the price in gwei, not wei", v)
    return x


def _emode(ctx: _Ctx, path: tuple, v: Any) -> str | None:
    _string(ctx, path, v)
    return None if v == "none" else v


def _path_value(ctx: _Ctx, path: tuple, v: Any) -> Path:
    return Path(_string(ctx, path, v))


def _run_name(ctx: _Ctx, path: tuple, v: Any) -> str:
    _string(ctx, path, v)
    if not _NAME_RE.fullmatch(v) or set(v) == {"."}:
        raise ctx.fail(path, "must be a safe folder name: letters, digits, '.', '_' and '-' only", v)
    return v


def _sources(ctx: _Ctx, path: tuple, v: Any) -> tuple[tuple[str, str], ...]:
    """run.sources: which source to read for a lake series that has several ("prices WETH/USD" = "coingecko")."""
    if not isinstance(v, Mapping):
        raise ctx.fail(path, 'must be a table such as { "prices WETH/USD" = "coingecko" } (lake series -> source)', v)
    out = []
    for k, x in v.items():
        table, _, key = str(k).partition(" ")
        if table not in ("prices", "exchange_rates") or not key.strip():
            raise ctx.fail(path + (k,), 'must name a lake series that has sources: "prices BASE/QUOTE" or '
                                        '"exchange_rates TOKEN"', x)
        if not isinstance(x, str) or not x.strip():
            raise ctx.fail(path + (k,), 'must be a source name such as "coingecko"', x)
        out.append((str(k), x))
    return tuple(sorted(out))


def _allow(ctx: _Ctx, path: tuple, v: Any) -> tuple[str, ...]:
    """run.allow: data-check errors the user knows are right, replayed with a warning ("jump:exchange_rates wstETH")."""
    from backtest.data.check import RUN_KINDS, RUN_TABLES

    if not isinstance(v, (list, tuple)):
        raise ctx.fail(path, 'must be a list such as ["jump:exchange_rates wstETH"] (CHECK:TABLE KEY, as the '
                             'refusal message prints it)', v)
    for x in v:
        kind, _, rest = str(x).partition(":") if isinstance(x, str) else ("", "", "")
        table, _, key = rest.partition(" ")
        if kind not in RUN_KINDS or table not in RUN_TABLES or not key.strip():
            raise ctx.fail(path, f"{x!r} is not CHECK:TABLE KEY with CHECK one of {', '.join(RUN_KINDS)} and TABLE "
                                 f"one of {', '.join(RUN_TABLES)} (e.g. \"jump:exchange_rates wstETH\")", v)
    return tuple(sorted(set(v)))


def _chain(ctx: _Ctx, path: tuple, v: Any) -> str:
    _string(ctx, path, v)
    if v in CHAINS:
        return v
    s = _suggest(v, list(CHAINS))
    if s:
        raise ctx.fail(path, f"unknown chain; did you mean '{s}'?", v)
    raise ctx.fail(path, f"chain {v!r} is not supported yet (supported: {', '.join(CHAINS)})", v)


def _restake(ctx: _Ctx, path: tuple, v: Any) -> str:
    _string(ctx, path, v)
    if not v.strip() or v != v.strip():
        raise ctx.fail(path, 'must be "none" or an LRT symbol such as "weETH"', v)
    return v


def _gas_units(ctx: _Ctx, path: tuple, v: Any) -> dict[str, float]:
    if not isinstance(v, Mapping):
        raise ctx.fail(path, "must be a table such as { open = 600000, loop_step = 250000, rebalance = 400000,"
                             " close = 500000 }", v)
    out = dict(CostsConfig().gas_units)
    parse = _GAS_UNITS
    for k, x in v.items():
        if k not in GAS_UNIT_KEYS:
            raise ctx.unknown(path + (k,), GAS_UNIT_KEYS, v)
        out[k] = parse(ctx, path + (k,), x)
    return out


_GAS_UNITS = _bounded(_number(lo=0), MAX_GAS_UNITS, "gas per transaction; a block holds 30-45 M")

# section -> key -> parser; the order is the order of checks
_SPEC: dict[str, dict[str, Parser]] = {
    "run": {
        "name": _run_name,
        "start": _date,
        "end": _date,
        "chain": _chain,
        "data": _path_value,
        "output": _path_value,
        "record": _record,
        "unwind_at_end": _boolean,
        "step": _duration(),
        "sources": _sources,
        "allow": _allow,
    },
    "market": {
        "protocol": _choice(PROTOCOLS),
        "collateral": _string,
        "debt": _string,
        "emode": _emode,
        "oracle": _choice(ORACLES),
        "ltv": _number(0, 1),
        "liquidation_threshold": _number(0, 1),
        "liquidation_bonus": _number(0, 0.5),
        "liquidation_protocol_fee": _number(0, 1),
        "close_factor": _number(0, 1, lo_open=True),
        "borrow_rate": _number(0, 1),
        "supply_rate": _number(0, 1),
        "capo_growth": _number(0, 1),
        "capo_snapshot_age": _duration(),
        "v33_from": _date,
        "lltv": _number(0, 1, lo_open=True, hi_open=True),
        "liquidation_factor": _number(0, 1, lo_open=True),
        "irm": _choice(IRMS),
        "utilization": _number(0, 1),
        "rate_at_target": _number(0.001, 2.0),
        "rates_from": _string,
    },
    "strategy": {
        "kind": _choice(STRATEGY_KINDS),
        "capital": _bounded(_number(0, lo_open=True), MAX_CAPITAL, "debt-asset units; more than all the ETH "
                                                                   "or any stablecoin in existence"),
        "entry": _choice(ENTRIES),
        "target_ltv": _number(0, 1, lo_open=True, hi_open=True),
        "loops": _integer(0, MAX_LOOPS),
        "restake": _restake,
    },
    "strategy.rebalance": {
        "deleverage_below_hf": _number(1.0, lo_open=True),
        "target_hf": _number(1.0, lo_open=True),
        "releverage_above_hf": _number(1.0, lo_open=True),
        "check_every": _duration(),
    },
    "strategy.exit": {
        "depeg_below": _number(0, 1, lo_open=True),
        "route": _choice(EXIT_ROUTES),
        "queue_delay": _duration(allow_zero=True),
    },
    "strategy.rewards": {
        "value": _choice(REWARD_VALUES),
        "price_per_point": _number(0),
        "token": _string,
    },
    "costs": {
        "gas": _gas,
        "gas_units": _gas_units,
        "swap_fee": _number(0, 1, hi_open=True),
        "slippage": _choice(SLIPPAGE_MODELS),
        "slippage_bps": _number(0, 10000, hi_open=True),
        "pool_depth": _bounded(_number(0, lo_open=True), MAX_POOL_DEPTH, "debt-asset units per side"),
        "amp": _bounded(_number(0, lo_open=True), MAX_AMP, "Curve's StableSwap caps A at 1e6"),
        "flash_fee": _number(0, 1, hi_open=True),
    },
    "scenario": {
        "kind": _choice(SCENARIO_KINDS),
        "asset": _string,
        "at": _date,
        "depth": _number(0, lo_open=True),
        "duration": _duration(),
        "shape": _choice(SCENARIO_SHAPES),
    },
}
_REQUIRED = {
    "run": ("start", "end"),
    "strategy.rebalance": ("deleverage_below_hf", "target_hf"),
    "strategy.exit": ("depeg_below",),
    "scenario": ("kind", "asset", "at", "depth", "duration"),
}
_SPECIAL = {   # known-but-rejected keys: a clearer message than "unknown key"
    "run": {
        "start_block": "block-number windows are not supported yet; use dates (run.start / run.end)",
        "end_block": "block-number windows are not supported yet; use dates (run.start / run.end)",
        "block_time": "the block time follows run.chain (ethereum: 12 s, cosmos: 6 s, solana: 0.4 s) and cannot be "
                      "set; run.step sets the seconds per replayed step",
    },
}
_SUBTABLES = {"strategy": ("rebalance", "exit", "rewards")}

# every scalar dotted path that overrides and sweeps may set -> its parser
_FIELDS: dict[str, Parser] = {}
for _sec, _spec in _SPEC.items():
    if _sec == "scenario":
        continue
    for _key, _parser in _spec.items():
        if _sec == "costs" and _key == "gas_units":
            for _unit in GAS_UNIT_KEYS:
                _FIELDS[f"costs.gas_units.{_unit}"] = _GAS_UNITS
            continue
        _FIELDS[f"{_sec}.{_key}"] = _parser
del _sec, _spec, _key, _parser


def sweep_keys() -> list[str]:
    """The dotted config paths a ``[sweep]`` or ``--grid`` may vary."""
    return [k for k in _FIELDS if k not in _SWEEP_FORBIDDEN and k not in _SWEEP_MARKET]


# ======================================================================================================
# building a Config
# ======================================================================================================
def _table(ctx: _Ctx, parent: Mapping, path: tuple) -> dict:
    v = parent.get(path[-1], {})
    if not isinstance(v, Mapping):
        hint = f"; write it as [{_dotted(path)}]"
        raise ctx.fail(path, f"must be a table, not {_type_name(v)}{hint}", v)
    return dict(v)


def _fields(ctx: _Ctx, table: Mapping, path: tuple, section: str) -> dict[str, Any]:
    spec = _SPEC[section]
    extra = _SUBTABLES.get(section, ())
    special = _SPECIAL.get(section, {})
    for k, v in table.items():
        if k in spec or k in extra:
            continue
        if k in special:
            raise ctx.fail(path + (k,), special[k], v)
        raise ctx.unknown(path + (k,), list(spec) + list(extra), table)
    for k in _REQUIRED.get(section, ()):
        if k not in table:
            raise ctx.missing(path + (k,))
    return {k: parser(ctx, path + (k,), table[k]) for k, parser in spec.items() if k in table}


def _check_top_level(ctx: _Ctx, data: Mapping) -> None:
    section_names = list(_SECTIONS) + ["strategy.rebalance", "strategy.exit", "strategy.rewards"]
    for k, v in data.items():
        if k in _SECTIONS:
            continue
        if isinstance(v, Mapping):
            raise ctx.fail((k,), f"unknown section [{k}]{_did_you_mean(k, section_names)}")
        owners = [f"{sec}.{k}" for sec, spec in _SPEC.items() if k in spec and sec != "scenario"]
        hint = f"; keys belong in a section: did you mean '{owners[0]}'?" if owners else \
            f"; keys belong in a section ({', '.join('[' + s + ']' for s in _SECTIONS[:4])})"
        raise ctx.fail((k,), f"unknown top-level key{hint}")


def steps_of(run: RunConfig) -> int:
    """Replayed steps of a run window (the block clock's length, align.block_clock)."""
    return max(0, -(-(run.end - run.start) // run.block_time))


def record_samples(run: RunConfig) -> int:
    """Time-series samples per configuration: every step (record = "block"), one per record interval plus
    the last step, or none (engine.record_indices picks the same blocks)."""
    n = steps_of(run)
    if run.record < 0 or n == 0:
        return 0
    if run.record == 0:
        return n
    return min(n, -(-(run.end - run.start) // run.record) + 1)


def _gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:,.1f} GB" if nbytes >= 1e8 else f"{nbytes / 1e6:,.0f} MB"


def _check_sizes(ctx: _Ctx, run: RunConfig, run_t: Mapping) -> None:
    """Refuse a window or a record interval whose arrays could not be allocated, before anything is."""
    n = steps_of(run)
    if n > MAX_STEPS:
        raise ctx.fail(("run", "end"), f"the window {_fmt_date(run.start)} to {_fmt_date(run.end)} is {n:,} steps of "
                                       f"{run.block_time} s (~{_gb(n * BYTES_PER_STEP)} of aligned market); the "
                                       f"bound is {MAX_STEPS:,} steps: shorten the window or set a coarser run.step",
                       run_t.get("end"))
    samples = record_samples(run)
    if samples > MAX_RECORD_SAMPLES:
        raise ctx.fail(("run", "record"), f"gives {samples:,} time-series samples per configuration "
                                          f"(~{_gb(samples * BYTES_PER_SAMPLE)} each); the bound is "
                                          f"{MAX_RECORD_SAMPLES:,}: use a coarser run.record such as \"1h\"",
                       run_t.get("record", "block" if run.record == 0 else _MISSING))


def _build(data: Mapping, ctx: _Ctx, source: Path | None, sweep: dict[str, list]) -> Config:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{ctx.file}: a config must be a table of sections, not {_type_name(data)}")
    _check_top_level(ctx, data)

    # -- [run]
    run_t = _table(ctx, data, ("run",))
    r = _fields(ctx, run_t, ("run",), "run")
    if "name" not in r:
        stem = source.stem if source is not None else ""
        if not stem or not _NAME_RE.fullmatch(stem) or set(stem) == {"."}:
            raise ctx.missing(("run", "name"))
        r["name"] = stem
    if r["end"] <= r["start"]:
        raise ctx.fail(("run", "end"), f"must be after run.start ({_fmt_date(r['start'])})", run_t["end"])
    chain = r.get("chain", "ethereum")
    block_ms, default_step, genesis = CHAINS[chain]
    if r["start"] < genesis:
        raise ctx.fail(("run", "start"), f"is before {chain}'s genesis ({_fmt_date(genesis)})", run_t["start"])
    step = r.pop("step", default_step)
    if (step * 1000) % block_ms:
        raise ctx.fail(("run", "step"), f"must be a whole number of {chain} blocks of {block_ms / 1000:g} s "
                                        f"(a multiple of {block_ms // math.gcd(block_ms, 1000)} s)", run_t["step"])
    run = RunConfig(block_time=step, **r)
    _check_sizes(ctx, run, run_t)

    # -- [market]
    market_t = _table(ctx, data, ("market",))
    m = _fields(ctx, market_t, ("market",), "market")
    protocol = m.get("protocol", "aave-v3")
    if protocol == "aave-v2":
        if m.get("emode") is not None:
            raise ctx.fail(("market", "emode"), 'aave-v2 has no E-mode; use emode = "none"', market_t["emode"])
        m["emode"] = None
    _venue_rules(ctx, protocol, m, market_t)
    if protocol in ("aave-v3", "spark") and "v33_from" not in m:
        m["v33_from"] = _params.v33_from(protocol)     # Spark: never, unless a dated market.v33_from
    ltv, lt, bonus = m.get("ltv"), m.get("liquidation_threshold"), m.get("liquidation_bonus")
    if ltv is not None and lt is not None and ltv > lt:
        raise ctx.fail(("market", "ltv"), f"must not exceed market.liquidation_threshold ({lt:g})",
                       market_t["ltv"])
    if lt is not None and bonus is not None and lt * (1 + bonus) > 1 + 1e-12:
        raise ctx.fail(("market", "liquidation_bonus"),
                       f"liquidation_threshold × (1 + bonus) = {lt * (1 + bonus):.4g} must not exceed 1 "
                       "(a liquidation at the threshold would seize more than all the collateral)",
                       market_t["liquidation_bonus"])
    market = MarketConfig(**m)
    if chain in CHAIN_PROTOCOLS and protocol not in CHAIN_PROTOCOLS[chain]:
        raise ctx.fail(("market", "protocol"), f"{protocol} does not run on {chain}; use "
                                               f"{' or '.join(repr(p) for p in CHAIN_PROTOCOLS[chain])} with the "
                                               f"venue's parameters in [market]", market_t.get("protocol", protocol))

    # -- [strategy], [strategy.rebalance], [strategy.exit]
    if "strategy" not in data:
        # a silent default position (a 5-loop wstETH carry) is not what a config without one meant
        raise ctx.fail(("strategy",), "missing required section [strategy] (at least kind = \"hold\", \"lend\", "
                                      "\"loop\" or \"flash-loan\")")
    strat_t = _table(ctx, data, ("strategy",))
    s = _fields(ctx, strat_t, ("strategy",), "strategy")
    target = s.get("target_ltv", StrategyConfig.target_ltv)
    if lt is not None and target >= lt:
        raise ctx.fail(("strategy", "target_ltv"),
                       f"must be below market.liquidation_threshold ({lt:g}): the position would open liquidatable",
                       strat_t.get("target_ltv", target))
    if ltv is not None and target > ltv:
        raise ctx.fail(("strategy", "target_ltv"), f"must not exceed market.ltv ({ltv:g}), the borrow limit",
                       strat_t.get("target_ltv", target))
    lltv = m.get("lltv")
    if lltv is not None and target >= lltv:
        raise ctx.fail(("strategy", "target_ltv"),
                       f"must be below market.lltv ({lltv:g}): the position would open liquidatable",
                       strat_t.get("target_ltv", target))
    rebalance = exit_ = None
    if "rebalance" in strat_t:
        path = ("strategy", "rebalance")
        reb_t = _table(ctx, strat_t, path)
        rb = _fields(ctx, reb_t, path, "strategy.rebalance")
        if rb["target_hf"] <= rb["deleverage_below_hf"]:
            raise ctx.fail(path + ("target_hf",),
                           f"must be above strategy.rebalance.deleverage_below_hf ({rb['deleverage_below_hf']:g})",
                           reb_t["target_hf"])
        if "releverage_above_hf" in rb and rb["releverage_above_hf"] <= rb["target_hf"]:
            raise ctx.fail(path + ("releverage_above_hf",),
                           f"must be above strategy.rebalance.target_hf ({rb['target_hf']:g})",
                           reb_t["releverage_above_hf"])
        rebalance = RebalanceConfig(**rb)
    if "exit" in strat_t:
        path = ("strategy", "exit")
        ex_t = _table(ctx, strat_t, path)
        exit_ = ExitConfig(**_fields(ctx, ex_t, path, "strategy.exit"))
    restake = s.get("restake", "none")
    if restake != "none" and restake == market.collateral:
        raise ctx.fail(("strategy", "restake"), f"is the LRT the base LST is restaked into; it must differ from "
                                                f"market.collateral ({market.collateral!r})", strat_t["restake"])
    rewards = None
    if "rewards" in strat_t:
        path = ("strategy", "rewards")
        rw_t = _table(ctx, strat_t, path)
        rw = _fields(ctx, rw_t, path, "strategy.rewards")
        value = rw.get("value", "zero")
        if value == "points" and "price_per_point" not in rw:
            raise ctx.fail(path + ("value",), 'points are valued with strategy.rewards.price_per_point (debt-asset '
                                              'units per point); set it', rw_t.get("value"))
        if value == "token" and "token" not in rw:
            raise ctx.fail(path + ("value",), 'token rewards need strategy.rewards.token (e.g. "EIGEN"), the '
                                              'reward token whose price the lake holds', rw_t.get("value"))
        rewards = RewardsConfig(**rw)
    strategy = StrategyConfig(rebalance=rebalance, exit=exit_, rewards=rewards, **s)

    # -- [costs]
    costs_t = _table(ctx, data, ("costs",))
    costs = CostsConfig(**_fields(ctx, costs_t, ("costs",), "costs"))

    # -- [[scenario]]
    scenarios = []
    sc_list = data.get("scenario", [])
    if isinstance(sc_list, Mapping):
        raise ctx.fail(("scenario",), "must be an array of tables: write each overlay as [[scenario]]")
    if not isinstance(sc_list, list):
        raise ctx.fail(("scenario",), "must be an array of tables ([[scenario]])", sc_list)
    for i, sc_t in enumerate(sc_list):
        path = ("scenario", i)
        if not isinstance(sc_t, Mapping):
            raise ctx.fail(path, f"must be a table, not {_type_name(sc_t)}", sc_t)
        sc = _fields(ctx, sc_t, path, "scenario")
        if sc["kind"] == "depeg":
            if not sc["depth"] < 1:
                raise ctx.fail(path + ("depth",), "a depeg depth is a fractional price drop: must be in (0, 1)",
                               sc_t["depth"])
            if sc["asset"] != market.collateral and sc["asset"] != strategy.restake:
                lrt = f" or strategy.restake ({strategy.restake!r})" if strategy.restake != "none" else ""
                raise ctx.fail(path + ("asset",), f"a depeg applies to the collateral: must be market.collateral "
                                                  f"({market.collateral!r}){lrt}", sc_t["asset"])
        elif sc["kind"] == "utilization":
            if market.irm != "adaptive-curve":
                raise ctx.fail(path + ("kind",), 'a utilization overlay drives Morpho\'s AdaptiveCurveIRM: it needs '
                                                 'market.protocol = "morpho-blue" and market.irm = "adaptive-curve"',
                               sc_t["kind"])
            if not sc["depth"] <= 1:
                raise ctx.fail(path + ("depth",), "a utilization overlay adds a utilisation: must be in (0, 1]",
                               sc_t["depth"])
            if sc["asset"] != market.debt:
                raise ctx.fail(path + ("asset",), f"a utilization overlay applies to the borrowed asset: must be "
                                                  f"market.debt ({market.debt!r})", sc_t["asset"])
        elif sc["asset"] not in (market.collateral, market.debt):
            raise ctx.fail(path + ("asset",), f"must be market.collateral ({market.collateral!r}) or market.debt "
                                              f"({market.debt!r})", sc_t["asset"])
        if not run.start <= sc["at"] < run.end:
            raise ctx.fail(path + ("at",), f"is outside the run window ({_fmt_date(run.start)} to "
                                           f"{_fmt_date(run.end)})", sc_t["at"])
        scenarios.append(ScenarioConfig(**sc))

    return Config(run=run, market=market, strategy=strategy, costs=costs, scenarios=tuple(scenarios),
                  sweep=dict(sweep), source=source, raw=dict(data))


# ======================================================================================================
# venue rules: which [market] keys each protocol takes
# ======================================================================================================
_VENUE_KEYS = {
    "aave-v3": ("emode", "ltv", "liquidation_threshold", "liquidation_bonus", "liquidation_protocol_fee",
                "close_factor", "supply_rate", "v33_from"),
    "morpho-blue": ("lltv", "irm", "utilization", "rate_at_target"),
    "compound-v3": ("ltv", "liquidation_threshold", "liquidation_factor"),
    "generic": ("ltv", "liquidation_threshold", "liquidation_bonus", "liquidation_protocol_fee", "close_factor",
                "supply_rate"),
}
_VENUE_KEYS["aave-v2"] = _VENUE_KEYS["spark"] = _VENUE_KEYS["aave-v3"]
_GENERIC_REQUIRED = ("ltv", "liquidation_threshold", "liquidation_bonus", "close_factor", "liquidation_protocol_fee")


def _not_for(protocol: str, key: str) -> str:
    """Why [market] `key` does not apply to `protocol`, and what to use instead."""
    p = f'market.protocol = "{protocol}"'
    if key == "emode":
        return f"{protocol} has no E-mode; remove market.emode"
    if key in ("ltv", "liquidation_threshold") and protocol == "morpho-blue":
        return "a morpho-blue market has one LLTV for borrowing and liquidation: set market.lltv"
    if key == "liquidation_bonus" and protocol == "morpho-blue":
        return ("morpho-blue's liquidation incentive follows from the LLTV (LIF = min(1.15, 1 / (0.3 LLTV + 0.7)));"
                " remove it")
    if key == "liquidation_bonus" and protocol == "compound-v3":
        return ("compound-v3 has no liquidation bonus: absorb() credits the collateral's value x "
                "market.liquidation_factor")
    if key == "liquidation_protocol_fee":
        return f"{protocol} takes no liquidation protocol fee; remove it"
    if key == "close_factor" and protocol == "morpho-blue":
        return "morpho-blue has no close factor: a liquidator may repay all the debt"
    if key == "close_factor" and protocol == "compound-v3":
        return "compound-v3 has no close factor: absorb() takes the whole position"
    if key == "supply_rate":
        return f"collateral on {protocol} is not lent out and earns no interest; remove it"
    if key == "v33_from":
        return f"v33_from dates the Aave v3.3 liquidation rules, which {protocol} does not follow"
    if key == "lltv":
        return (f"lltv is the liquidation LTV of a morpho-blue market; with {p} set market.ltv and "
                "market.liquidation_threshold")
    if key == "liquidation_factor":
        return (f"liquidation_factor is a compound-v3 parameter (the share of the collateral's value absorb() "
                f"credits); with {p} use market.liquidation_bonus")
    return (f"{key} belongs to Morpho Blue's AdaptiveCurveIRM (market.protocol = \"morpho-blue\", "
            f"market.irm = \"adaptive-curve\"); {protocol} reads its borrow rate from the lake or market.borrow_rate")


def _venue_rules(ctx: _Ctx, protocol: str, m: dict, table: Mapping) -> None:
    """Reject [market] keys that do not apply to the protocol, require the generic venue's parameters, and
    settle the E-mode (None outside the Aave family)."""
    allowed = set(_VENUE_KEYS[protocol])
    for key in ("emode", "ltv", "liquidation_threshold", "liquidation_bonus", "liquidation_protocol_fee",
                "close_factor", "supply_rate", "v33_from", "lltv", "liquidation_factor", "irm", "utilization",
                "rate_at_target"):
        if key in table and key not in allowed:
            if key == "emode" and m.get("emode") is None:
                continue                       # emode = "none" is harmless anywhere
            raise ctx.fail(("market", key), _not_for(protocol, key), table[key])
    if protocol not in AAVE_FAMILY:
        m["emode"] = None
    if protocol == "generic":
        for key in _GENERIC_REQUIRED:
            if key not in table:
                raise ctx.fail(("market", key), "missing required key in [market]: a generic venue takes ltv, "
                                                "liquidation_threshold, liquidation_bonus, close_factor and "
                                                "liquidation_protocol_fee from the config")
    if protocol == "morpho-blue":
        irm = m.get("irm", "data")
        if irm == "adaptive-curve" and "borrow_rate" in table:
            raise ctx.fail(("market", "borrow_rate"), 'conflicts with market.irm = "adaptive-curve", which computes '
                                                      "the borrow rate from the utilisation: remove one",
                           table["borrow_rate"])
        if irm == "data":
            for key in ("utilization", "rate_at_target"):
                if key in table:
                    raise ctx.fail(("market", key), 'only used with market.irm = "adaptive-curve"', table[key])


# ======================================================================================================
# overrides and sweeps
# ======================================================================================================
def _check_key(ctx: _Ctx, key: Any, err_path: tuple, *, sweep: bool) -> None:
    """`key` must be a settable scalar dotted path (sweeps also exclude run.name / run.data / run.output)."""
    if not isinstance(key, str):
        raise ctx.fail(err_path, "a config path must be a string such as 'strategy.target_ltv'")
    if key in _FIELDS and not (sweep and (key in _SWEEP_FORBIDDEN or key in _SWEEP_MARKET)):
        return
    if sweep and key in _SWEEP_FORBIDDEN:
        raise ctx.fail(err_path, f"{key} names the result set and cannot be swept")
    if sweep and key in _SWEEP_MARKET:
        raise ctx.fail(err_path, f"{key} selects the aligned market (the held token's series and reward values) "
                                 f"and cannot be swept; run one config per value")
    valid = sweep_keys() if sweep else list(_FIELDS)
    if key in ("costs.gas_units", "strategy.rebalance", "strategy.exit", "strategy.rewards") or key.startswith("scenario"):
        raise ctx.fail(err_path, f"{key} is not a single value; "
                                 f"{'sweep' if sweep else 'override'} one of its keys instead")
    raise ctx.fail(err_path, f"unknown config key{_did_you_mean(key, valid)}")


def _set_path(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    d = data
    for p in parts[:-1]:
        nxt = d.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            d[p] = nxt
        d = nxt
    d[parts[-1]] = value


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


def _check_values(ctx: _Ctx, key: str, err_path: tuple, values: list, origin: str | tuple) -> list:
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
            raise ctx.fail(err_path, f"lists {_fmt(v)} twice")
    path = tuple(key.split("."))
    vctx = _Ctx(ctx.file, ctx.lines, {**ctx.origins, path: origin}, ctx.point)
    parser = _FIELDS[key]
    for v in values:
        parser(vctx, path, v)
    return list(values)


def _parse_sweep(ctx: _Ctx, table: Any) -> dict[str, list]:
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
        _check_key(ctx, key, p, sweep=True)
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


def _apply_overrides(ctx: _Ctx, data: dict, overrides: Mapping[str, Any] | None) -> None:
    for key, value in (overrides or {}).items():
        kpath = tuple(str(key).split("."))
        ctx.origins[kpath] = "override"
        _check_key(ctx, key, kpath, sweep=False)
        _set_path(data, key, value)


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
        if all(_FLOAT_RE.match(p) for p in parts):
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
    if _FLOAT_RE.match(text):
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
    _check_key(_Ctx(f"--grid {text}"), key, tuple(key.split(".")), sweep=True)
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
    ctx = _Ctx(file, _lines_for(config.source))
    axes: dict[str, list] = {}
    origin: dict[str, str | tuple] = {}
    for key, values in config.sweep.items():
        axes[key] = list(values)
        line = ctx.lines.get(("sweep", key)) or ctx.lines.get(("sweep",) + tuple(key.split(".")))
        origin[key] = (line or ctx.lines.get(("sweep",)), "[sweep]")
    for key, values in (grids or {}).items():
        kpath = tuple(str(key).split("."))
        gctx = _Ctx(file, {}, {kpath: "--grid"})
        _check_key(gctx, key, kpath, sweep=True)
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
                          f"time-series samples = {total:,} samples (~{_gb(total * BYTES_PER_SAMPLE)}); the bound "
                          f"is {MAX_SWEEP_SAMPLES:,}: use a coarser run.record (or \"none\") or fewer points")

    base = copy.deepcopy(dict(config.raw))
    base.pop("sweep", None)
    origins = {tuple(k.split(".")): origin[k] for k in keys}
    points = []
    for combo in combos:
        labels = dict(zip(keys, combo))
        raw = copy.deepcopy(base)
        for k, v in labels.items():
            _set_path(raw, k, v)
        point = ", ".join(f"{k}={_fmt(v)}" for k, v in labels.items())
        pctx = _Ctx(file, ctx.lines, origins, f" (sweep point {point})")
        points.append((labels, _build(raw, pctx, config.source, {})))
    return points


# ======================================================================================================
# loading
# ======================================================================================================
_TEXT_CACHE: dict[str, str] = {}   # source path -> TOML text, for line numbers in expand_sweep


def _lines_for(source: Path | None) -> dict[tuple, int]:
    if source is None:
        return {}
    text = _TEXT_CACHE.get(str(source))
    if text is None:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return {}
    return _scan_lines(text)


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
    ctx = _Ctx(file, _scan_lines(text))
    _apply_overrides(ctx, data, overrides)
    cfg = _build(data, ctx, source, {})
    sweep = _parse_sweep(ctx, data.get("sweep"))
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
    _TEXT_CACHE[str(p)] = text
    return _from_text(text, file, p, overrides)


def loads_config(text: str, source: str | Path | None = None,
                 overrides: Mapping[str, Any] | None = None) -> Config:
    """Like :func:`load_config` for TOML text; ``source`` only names it in messages (and defaults run.name)."""
    src = Path(source) if source is not None else None
    if src is not None:
        _TEXT_CACHE[str(src)] = text
    return _from_text(text, str(source) if source is not None else "<config>", src, overrides)


def config_from_dict(data: Mapping[str, Any], overrides: Mapping[str, Any] | None = None,
                     source: str | Path | None = None) -> Config:
    """Validate a dict shaped like the TOML (``{"run": {...}, "market": {...}, ...}``); no line numbers."""
    src = Path(source) if source is not None else None
    ctx = _Ctx(str(source) if source is not None else "<config>")
    data = copy.deepcopy(dict(data))
    _apply_overrides(ctx, data, overrides)
    cfg = _build(data, ctx, src, {})
    return dataclasses.replace(cfg, sweep=_parse_sweep(ctx, data.get("sweep")))


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


def config_to_dict(config: Config) -> dict[str, Any]:
    """The resolved configuration as JSON-safe data (epoch seconds, seconds, Paths as strings)."""
    return {
        "run": _jsonable(dataclasses.asdict(config.run)),
        "market": _jsonable(dataclasses.asdict(config.market)),
        "strategy": _jsonable(dataclasses.asdict(config.strategy)),
        "costs": _jsonable(dataclasses.asdict(config.costs)),
        "scenarios": [_jsonable(dataclasses.asdict(s)) for s in config.scenarios],
        "sweep": _jsonable(dict(config.sweep)),
        "source": _jsonable(config.source) if config.source is not None else None,
    }


def config_hash(config: Config) -> str:
    """sha256 of the canonical JSON of what the run computes (not source, raw, sweep or run.output).

    run.data enters as the folder it names (absolute, symlinks resolved), so "data", "./data" and its absolute
    path give one hash and --resume continues a sweep however the lake was spelled."""
    d = config_to_dict(config)
    for k in ("source", "sweep"):
        d.pop(k, None)
    d["run"].pop("output", None)
    d["run"]["data"] = os.path.realpath(config.run.data)
    text = json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
