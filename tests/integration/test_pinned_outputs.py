"""Every pinned case (tests/pins.py) gives today exactly what it gave when pinned: the summary (every value),
the events and the time series, column by column, bit for bit. The net under the position / market / venue
redesign (issue 10): a redesign that moves code must not move a number. Columns added after the pin are
not compared; a pinned column that disappears or changes fails, naming the case, the table and the column
(and, for the summary, the configuration and both values)."""
from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import pytest

from tests import pins

GOLDEN = pins.load_golden()


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return {name: (path, ov, grid) for name, path, ov, grid in pins.cases(tmp_path_factory.mktemp("pins"))}


def compare(name: str, want: dict, got: dict) -> list[str]:
    bad = []
    for table in ("summary", "events", "timeseries"):
        w, g = want[table], got[table]
        if w["rows"] != g["rows"]:
            bad.append(f"{name} {table}: {g['rows']} rows, pinned {w['rows']}")
            continue
        for col, (dtype, h) in w["columns"].items():
            if col not in g["columns"]:
                bad.append(f"{name} {table}.{col}: column gone")
            elif g["columns"][col] != [dtype, h]:
                bad.append(f"{name} {table}.{col}: changed ({g['columns'][col][0]}, pinned {dtype})")
    for i, (wr, gr) in enumerate(zip(want["summary_rows"], got["summary_rows"])):
        for k, v in wr.items():
            if gr.get(k, "<missing>") != v:
                bad.append(f"{name} summary row {i} {k}: {gr.get(k, '<missing>')!r}, pinned {v!r}")
    return bad


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_outputs_are_what_they_were_when_pinned(name, cases):
    if name not in cases:
        assert name.startswith("example:real-") and not pins.SHARED.is_dir(), f"pinned case {name} is gone"
        pytest.skip("real-history case: ../shared/data is absent")
    path, ov, grid = cases[name]
    with tempfile.TemporaryDirectory(prefix="pin-") as tmp:
        got = pins.run_case(path, ov, grid, Path(tmp), name)
    bad = compare(name, GOLDEN[name], got)
    assert not bad, "\n".join(bad[:40])


def test_every_case_is_pinned(cases):
    assert sorted(cases) == sorted(GOLDEN), "re-pin on purpose with python scripts/pin_outputs.py --only NAME"


def test_the_comparison_catches_a_changed_bit():
    name = sorted(GOLDEN)[0]
    want = GOLDEN[name]
    got = copy.deepcopy(want)
    row = got["summary_rows"][0]
    key = next(k for k, v in row.items() if isinstance(v, float))
    row[key] = row[key] + abs(row[key]) * 1e-15 + 1e-300
    col = next(iter(got["events"]["columns"]))
    got["events"]["columns"][col][1] = "0" * 32
    bad = compare(name, want, got)
    assert any(key in b for b in bad) and any(f"events.{col}" in b for b in bad)
