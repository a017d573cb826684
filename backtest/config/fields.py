"""The field validation toolkit: value syntaxes, where a key stands, and the parsers every key is read with.

* value syntaxes: :func:`parse_duration` ("1h30m" -> seconds) and :func:`parse_date` (a UTC date -> epoch
  seconds), raising ``ValueError``; the parsers below turn that into a ConfigError;
* :class:`Context`: where a config came from (file, key -> line map, keys set by an override or a sweep), and
  the one message format ``file:line: key = value: problem``, with the closest valid name for an unknown one
  (:func:`suggest`);
* parsers ``(ctx, path, value) -> converted value``: :func:`number` (with bounds), :func:`bounded` (a sanity
  bound on top), :func:`integer`, :func:`string`, :func:`choice`, :func:`boolean`, :func:`date`,
  :func:`duration`, :func:`path_value`. The schema (``backtest.config.schema``) builds its keys from them.
"""
from __future__ import annotations

import datetime as _dt
import difflib
import json
import math
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from backtest.config.toml_lines import BARE_KEY_RE
from backtest.errors import ConfigError

_DURATION_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DATE_PREFIX_RE = re.compile(r"^\d{4}-\d{2}-\d{2}")
FLOAT_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
#: "no value given" in a message (None is a value)
MISSING = object()


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


def fmt_date(ts: int) -> str:
    """Epoch seconds as a message writes them: "2024-06-01", or "2024-06-01T12:00:00Z" off midnight."""
    dt = _dt.datetime.fromtimestamp(ts, _dt.timezone.utc)
    return dt.strftime("%Y-%m-%d") if dt.time() == _dt.time(0) else dt.strftime("%Y-%m-%dT%H:%M:%SZ")


# ======================================================================================================
# error context
# ======================================================================================================
def fmt_value(value: Any, limit: int = 80) -> str:
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
        out = "[" + ", ".join(fmt_value(v, limit) for v in value) + "]"
    elif isinstance(value, Mapping):
        out = "{ " + ", ".join(f"{dotted([str(k)])} = {fmt_value(v, limit)}" for k, v in value.items()) + " }"
    else:
        out = repr(value)
    return out if len(out) <= limit else out[: limit - 3] + "..."


def dotted(path: Iterable) -> str:
    """A key path as TOML writes it: ("scenario", 0, "at") -> "scenario[0].at"."""
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            part = p if BARE_KEY_RE.fullmatch(p) else json.dumps(p)
            out += ("." if out else "") + part
    return out


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """The closest valid name to a misspelt one, or None."""
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


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    s = suggest(word, candidates)
    return f"; did you mean '{s}'?" if s else ""


class Context:
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

    def fail(self, path: tuple, problem: str, value: Any = MISSING) -> ConfigError:
        loc, note = self._where(tuple(path))
        shown = "" if value is MISSING else f" = {fmt_value(value)}"
        return ConfigError(f"{loc}: {dotted(path)}{shown}{note}: {problem}{self.point}")

    def missing(self, path: tuple) -> ConfigError:
        return self.fail(path, f"missing required key in [{dotted(path[:-1])}]")

    def unknown(self, path: tuple, valid: Iterable[str], present: Iterable[str] = ()) -> ConfigError:
        """An unknown key; the suggestion prefers valid keys the table does not already set."""
        section = dotted(path[:-1])
        where = f"in [{section}]" if section else "at the top level"
        valid, present = list(valid), set(present)
        hint = did_you_mean(str(path[-1]), [v for v in valid if v not in present]) or \
            did_you_mean(str(path[-1]), valid)
        return self.fail(path, f"unknown key {where}{hint}")


# ======================================================================================================
# field parsers: (ctx, path, value) -> converted value, raising ctx.fail(...)
# ======================================================================================================
Parser = Callable[[Context, tuple, Any], Any]


def _range_text(lo, hi, lo_open, hi_open) -> str:
    if lo is not None and hi is not None:
        return f"must be in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f"must be {'>' if lo_open else '>='} {lo:g}"
    return f"must be {'<' if hi_open else '<='} {hi:g}"


def not_a_number(ctx: Context, path: tuple, v: Any, what: str = "a number") -> ConfigError:
    if isinstance(v, bool):
        return ctx.fail(path, f"must be {what}, not a boolean", v)
    if isinstance(v, str):
        hint = f" (write {v.strip()} without quotes)" if FLOAT_RE.match(v.strip()) else ""
        return ctx.fail(path, f"must be {what}, not a string{hint}", v)
    return ctx.fail(path, f"must be {what}, not {type_name(v)}", v)


def type_name(v: Any) -> str:
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


def number(lo=None, hi=None, lo_open=False, hi_open=False) -> Parser:
    def parse(ctx: Context, path: tuple, v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise not_a_number(ctx, path, v)
        x = float(v)
        if not math.isfinite(x):
            raise ctx.fail(path, "must be a finite number", v)
        if (lo is not None and (x <= lo if lo_open else x < lo)) or (
                hi is not None and (x >= hi if hi_open else x > hi)):
            raise ctx.fail(path, _range_text(lo, hi, lo_open, hi_open), v)
        return x
    return parse


def bounded(parser: Parser, bound: float, why: str) -> Parser:
    """`parser`, then a sanity bound: schema-valid but absurd magnitudes (1e308) overflow the arithmetic."""
    def parse(ctx: Context, path: tuple, v: Any) -> float:
        x = parser(ctx, path, v)
        if x > bound:
            raise ctx.fail(path, f"{x:g} is beyond the bound of {bound:g} ({why})", v)
        return x
    return parse


def integer(lo=None, hi=None) -> Parser:
    def parse(ctx: Context, path: tuple, v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            if isinstance(v, float):
                raise ctx.fail(path, "must be an integer", v)
            raise not_a_number(ctx, path, v, "an integer")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ctx.fail(path, _range_text(lo, hi, False, False), v)
        return int(v)
    return parse


def string(ctx: Context, path: tuple, v: Any) -> str:
    if not isinstance(v, str):
        raise ctx.fail(path, f"must be a string, not {type_name(v)}", v)
    if not v.strip():
        raise ctx.fail(path, "must not be empty", v)
    return v


def choice(choices: tuple[str, ...], unsupported: Mapping[str, str] | None = None) -> Parser:
    unsupported = unsupported or {}

    def parse(ctx: Context, path: tuple, v: Any) -> str:
        string(ctx, path, v)
        if v in unsupported:
            raise ctx.fail(path, unsupported[v], v)
        if v not in choices:
            raise ctx.fail(path, f"must be one of {', '.join(choices)}"
                           f"{did_you_mean(v, list(choices) + list(unsupported))}", v)
        return v
    return parse


def boolean(ctx: Context, path: tuple, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ctx.fail(path, f"must be true or false, not {type_name(v)}", v)
    return v


def date(ctx: Context, path: tuple, v: Any) -> int:
    if isinstance(v, bool) or isinstance(v, (int, float)):
        raise ctx.fail(path, 'must be a date such as "2024-06-01" or "2024-06-01T12:00:00Z", not a number', v)
    try:
        return parse_date(v)
    except ValueError as exc:
        raise ctx.fail(path, str(exc), v) from None


def duration(allow_zero: bool = False) -> Parser:
    def parse(ctx: Context, path: tuple, v: Any) -> int:
        try:
            secs = parse_duration(v)
        except ValueError as exc:
            raise ctx.fail(path, str(exc), v) from None
        if secs < 0 or (secs == 0 and not allow_zero):
            raise ctx.fail(path, "must be a duration " + (">= 0" if allow_zero else "> 0"), v)
        return secs
    return parse


def path_value(ctx: Context, path: tuple, v: Any) -> Path:
    return Path(string(ctx, path, v))
