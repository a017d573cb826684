"""Fuzzing the config loader: random TOML (known and unknown sections and keys, every TOML value type,
nesting, absurd magnitudes, NaN and infinities) gives a Config or one ConfigError with a message, never
another exception; through the CLI only exit codes 0, 1 or 2, with a message and no traceback."""
from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.cli import cli
from backtest.config import (_SPEC, config_hash, config_to_dict, expand_sweep, loads_config, sweep_keys)
from backtest.config_types import Config
from backtest.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

# a valid base the mutations start from (so that deep checks are reached, not only the first key)
BASE = {
    "run": {"name": "fuzz", "start": "2024-06-01", "end": "2024-06-03", "data": "data", "record": "1h"},
    "market": {"protocol": "aave-v3"},
    "strategy": {"kind": "loop", "target_ltv": 0.8, "loops": 3},
    "costs": {"gas": "data"},
}
SECTIONS = ["run", "market", "strategy", "costs", "sweep", "scenario", "strategy.rebalance", "strategy.exit",
            "strategy.rewards", "bogus"]
KNOWN = sorted({k for spec in _SPEC.values() for k in spec} | {"rebalance", "exit", "rewards", "gas_units"})

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
_scalar = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2 ** 63), max_value=2 ** 63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 0.5, 0.95, 1e308, 1e15, 5e-324, "data", "block", "none", "1h", "12s", "0s",
                     "2024-06-02", "9999-12-31", "2015-07-30", "loop", "hold", "spark", "morpho-blue", "generic",
                     "solana", "cosmos", "market", "capo", "stableswap", "weETH", "queue", "depeg", "v"]),
    _text,
    st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)),
    st.datetimes(timezones=st.sampled_from([dt.timezone.utc, dt.timezone(dt.timedelta(hours=-5))])),
)
_value = st.one_of(_scalar, _scalar, st.recursive(_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.sampled_from(KNOWN + ["start", "stop", "step"]), _text), inner, max_size=4)),
    max_leaves=8))


def _keys_of(section: str) -> list[str]:
    if section == "sweep":
        return sweep_keys()
    return list(_SPEC.get(section, {})) or KNOWN


# mostly the section's own keys (deep checks), sometimes any known key or a random one, or the whole section
_mutation = st.sampled_from([s for s in SECTIONS if s != "bogus"]).flatmap(lambda sec: st.tuples(
    st.just(sec),
    st.one_of(st.sampled_from(_keys_of(sec)), st.sampled_from(_keys_of(sec)), st.sampled_from(_keys_of(sec)),
              st.sampled_from(KNOWN), _text.filter(bool), st.none()),
    _value))


def _toml_string(s: str) -> str:
    """A TOML basic string: JSON's escapes, non-ASCII kept as is (JSON's surrogate pairs are not TOML), DEL
    escaped (TOML allows no raw control characters)."""
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007F")


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _toml_string(v)
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{ " + ", ".join(f"{_toml_string(str(k))} = {_toml_value(x)}" for k, x in v.items()) + " }"


def to_toml(doc: dict) -> str:
    """Top-level scalars first, then one [table] header per table (dotted headers for nested tables)."""
    lines: list[str] = []

    def table(path: list[str], t: dict) -> None:
        subs = {k: v for k, v in t.items() if isinstance(v, dict) and v}
        if path:
            lines.append("[" + ".".join(_toml_string(p) for p in path) + "]")
        for k, v in t.items():
            if k not in subs:
                lines.append(f"{_toml_string(str(k))} = {_toml_value(v)}")
        for k, v in subs.items():
            table(path + [str(k)], v)

    table([], doc)
    return "\n".join(lines) + "\n"


def mutate(mutations) -> dict:
    doc = json.loads(json.dumps(BASE))
    for section, key, value in mutations:
        parts = section.split(".")
        t = doc
        for p in parts:
            if not isinstance(t.get(p), dict):
                t[p] = {}
            t = t[p]
        if key is None:                        # drop or replace the whole section
            parent = doc if len(parts) == 1 else doc[parts[0]]
            if isinstance(value, dict):
                parent[parts[-1]] = value
            else:
                parent.pop(parts[-1], None)
        else:
            t[key] = value
    return doc


def check(text: str) -> Config | None:
    """A Config (whose manifest form, hash and sweep expansion also work) or a ConfigError with a message."""
    try:
        cfg = loads_config(text, source="fuzz.toml")
    except ConfigError as exc:
        msg = str(exc)
        assert msg.startswith("fuzz.toml") and len(msg) > len("fuzz.toml: ") and "\n" not in msg.strip(), msg
        assert exc.exit_code == 2
        return None
    assert isinstance(cfg, Config)
    json.dumps(config_to_dict(cfg), allow_nan=False)
    assert len(config_hash(cfg)) == 64
    try:
        points = expand_sweep(cfg)
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.toml"), str(exc)
        return None
    assert points and all(isinstance(c, Config) for _, c in points)
    assert set().union(*(labels.keys() for labels, _ in points)) <= set(sweep_keys())
    return cfg


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_mutation, max_size=3))
def test_mutated_configs_load_or_fail_with_one_config_error(mutations):
    check(to_toml(mutate(mutations)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.one_of(st.sampled_from(SECTIONS), _text), _value, max_size=5))
def test_random_documents_load_or_fail_with_one_config_error(doc):
    check(to_toml(doc))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_is_invalid_toml_or_a_config_error(text):
    check(text)


@pytest.fixture(scope="module")
def repo_root():
    mp = pytest.MonkeyPatch()
    mp.chdir(REPO)                     # run.data = "data" is relative to the working directory
    yield
    mp.undo()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(_mutation, max_size=3))
def test_the_cli_exits_0_1_or_2_with_a_message(repo_root, tmp_path_factory, mutations):
    tmp = tmp_path_factory.mktemp("fuzz")
    path = tmp / "fuzz.toml"
    doc = mutate(mutations)
    run = doc.get("run")
    if isinstance(run, dict):             # keep replays short: a 3-day window unless the mutation broke it
        run.setdefault("end", "2024-06-03")
    path.write_text(to_toml(doc), encoding="utf-8")
    r = CliRunner().invoke(cli, ["run", str(path), "--quiet", "--set", f'run.output="{tmp / "out"}"'])
    assert r.exit_code in (0, 1, 2), (r.exit_code, r.output, r.exception)
    assert not isinstance(r.exception, Exception) or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    if r.exit_code:
        assert r.output.startswith("Error: ") and len(r.output) > len("Error: ") + 5, r.output
