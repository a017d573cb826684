"""Where each key stands in the TOML text: key path -> 1-based line number, for the messages.

``tomllib`` gives the values but not their lines, so the loader scans the text once more: tables, arrays of
tables (``[[scenario]]`` entries get their index), dotted and quoted keys, inline tables and arrays. It is
best effort: a line it cannot read is passed over and the message falls back to the enclosing table or the
file name, never to an error of its own.

The text of every file loaded is remembered (:func:`remember_text`) so that a sweep expanded later
(:func:`lines_for`) still names the lines of its points.
"""
from __future__ import annotations

import re
from pathlib import Path

#: a bare TOML key (also what a message may write without quotes)
BARE_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")

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
            m = BARE_KEY_RE.match(s, i)
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


def scan_lines(text: str) -> dict[tuple, int]:
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


_TEXT_CACHE: dict[str, str] = {}   # source path -> TOML text, for line numbers in expand_sweep


def remember_text(source: Path, text: str) -> None:
    """Keep the TOML text of `source`, so that :func:`lines_for` need not read the file again."""
    _TEXT_CACHE[str(source)] = text


def lines_for(source: Path | None) -> dict[tuple, int]:
    """The key -> line map of a config's source file ({} when there is none or it cannot be read)."""
    if source is None:
        return {}
    text = _TEXT_CACHE.get(str(source))
    if text is None:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return {}
    return scan_lines(text)
