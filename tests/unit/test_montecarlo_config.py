"""The [montecarlo] config table (backtest/config, backtest.montecarlo.resolve): its keys parsed and checked
with one message naming the key, the CLI's flags overriding it key by key, the resolved options in the
manifest, and a tiny run giving the same bytes from the table as from the flags."""
from __future__ import annotations

import json

import polars as pl
import pytest
from click.testing import CliRunner

from backtest.cli import cli
from backtest.config import config_hash, config_to_dict, loads_config
from backtest.config_types import MonteCarloConfig
from backtest.errors import ConfigError
from backtest.montecarlo import MonteCarlo, resolve
from tests.unit.test_montecarlo import CONFIG

BASE = """
[run]
name = "mc"
start = "2024-06-01"
end = "2024-06-15"

[market]
protocol = "aave-v3"
collateral = "wstETH"
debt = "WETH"

[strategy]
kind = "loop"
"""


def load(table: str):
    return loads_config(BASE + "\n[montecarlo]\n" + table, source="mc.toml")


def test_table_parsed_with_defaults():
    mc = load("paths = 200\n").montecarlo
    assert mc == MonteCarloConfig(paths=200)
    assert (mc.seed, mc.block_days, mc.path, mc.vary_borrow_rate, mc.resample) == (0, 7.0, None, False,
                                                                                  ("discount",))
    mc = load('paths = 50\nseed = 7\nblock_days = 2\npath = 49\nresample = ["gas", "discount"]\n'
              "vary_borrow_rate = true\n").montecarlo
    assert (mc.paths, mc.seed, mc.block_days, mc.path) == (50, 7, 2.0, 49)
    # vary_borrow_rate is "borrow_rate" in resample: both spellings give one list
    assert mc.resample == ("gas", "discount", "borrow_rate") and mc.vary_borrow_rate
    assert load('paths = 5\nresample = ["borrow_rate"]').montecarlo.vary_borrow_rate
    assert loads_config(BASE).montecarlo is None


def test_table_stays_out_of_the_hash_and_of_a_config_without_it():
    plain, with_mc = loads_config(BASE), load("paths = 3\nseed = 2\n")
    assert config_hash(plain) == config_hash(with_mc)
    assert "montecarlo" not in config_to_dict(plain)
    assert config_to_dict(with_mc)["montecarlo"] == {"paths": 3, "seed": 2, "block_days": 7.0, "path": None,
                                                     "vary_borrow_rate": False, "resample": ["discount"]}


@pytest.mark.parametrize("table, msg", [
    ("seed = 1\n", "montecarlo.paths: missing required key in [montecarlo]"),
    ("paths = 0\n", "montecarlo.paths = 0"),
    ("paths = 2000000\n", "montecarlo.paths = 2000000"),
    ('paths = "10"\n', "montecarlo.paths"),
    ("paths = 2.5\n", "montecarlo.paths = 2.5: must be an integer"),
    ("paths = 10\nseed = -1\n", "montecarlo.seed = -1"),
    ("paths = 10\nblock_days = 0\n", "montecarlo.block_days = 0"),
    ("paths = 10\npath = 10\n", "montecarlo.path = 10: must be a path id from 0 to 9"),
    ("paths = 10\nvary_borrow_rate = 1\n", "montecarlo.vary_borrow_rate = 1: must be true or false"),
    ('paths = 10\nresample = "gas"\n', 'montecarlo.resample = "gas": must be a list such as ["gas"]'),
    ("paths = 10\nresample = []\n", "montecarlo.resample = []: must be a non-empty list"),
    ('paths = 10\nresample = ["gass"]\n', "did you mean 'gas'"),
    ('paths = 10\nresample = ["gas", "gas"]\n', "lists 'gas' twice"),
    ('paths = 10\nresample = ["borrow_rate"]\nvary_borrow_rate = false\n', "montecarlo.vary_borrow_rate = false"),
    ("paths = 10\nseeds = 1\n", "unknown key in [montecarlo]; did you mean 'seed'?"),
])
def test_bad_values_name_the_key(table, msg):
    with pytest.raises(ConfigError) as e:
        load(table)
    assert msg in str(e.value) and str(e.value).startswith("mc.toml:")


def test_the_table_cannot_be_swept_but_can_be_set():
    with pytest.raises(ConfigError, match="montecarlo.paths sets the Monte Carlo paths .* cannot be swept"):
        loads_config(BASE + '\n[sweep]\n"montecarlo.paths" = [1, 2]\n')
    cfg = loads_config(BASE + "\n[montecarlo]\npaths = 3\n", overrides={"montecarlo.seed": 4})
    assert cfg.montecarlo.seed == 4


def test_flags_override_the_table_key_by_key():
    table = MonteCarloConfig(paths=20, seed=3, block_days=2.0, vary_borrow_rate=True,
                             resample=("discount", "borrow_rate"))
    assert resolve(None, None) is None and resolve(None, {"paths": None, "seed": None}) is None
    assert resolve(table, {}) == MonteCarlo(20, 3, 2.0, borrow_rate=True)
    got = resolve(table, {"paths": 5, "seed": None, "block_days": 1.5, "path": 4})
    assert got == MonteCarlo(5, 3, 1.5, 4, borrow_rate=True)
    # a --resample list replaces the table's (its borrow rate included); --vary-borrow-rate adds it back
    assert resolve(table, {"resample": ("gas",)}).resample == ("gas",)
    assert resolve(table, {"resample": ("gas",), "vary_borrow_rate": True}).resample == ("gas", "borrow_rate")
    assert resolve(None, {"paths": 2, "resample": ("exchange_rate", "discount")}).resample == \
        ("discount", "exchange_rate")                    # one canonical order (the manifest and the sweep hash)
    with pytest.raises(ConfigError, match="--seed, --block-days: go with --paths N"):
        resolve(None, {"seed": 1, "block_days": 2.0})
    with pytest.raises(ConfigError, match="--path 20: must be a path id from 0 to 4"):
        resolve(table, {"paths": 5, "path": 20})
    with pytest.raises(ConfigError, match="--resample 'discount,gass'"):
        resolve(table, {"resample": ("discount", "gass")})


@pytest.fixture
def mc_cfg(tmp_path):
    from tests.pins import REPO

    p = tmp_path / "mc.toml"
    p.write_text(CONFIG.format(data=REPO / "data", out=tmp_path / "out"))
    return p


def test_a_tiny_run_from_the_table_equals_the_flags(mc_cfg, tmp_path):
    out = tmp_path / "out" / "mc-test"
    r = CliRunner().invoke(cli, ["sweep", str(mc_cfg), "--paths", "3", "--seed", "5", "--block-days", "2",
                                 "--quiet"])
    assert r.exit_code == 0, r.output
    by_flags = (out / "summary.parquet").read_bytes(), (out / "paths.parquet").read_bytes()
    man_flags = json.loads((out / "manifest.json").read_text())["montecarlo"]
    table = mc_cfg.read_text() + "\n[montecarlo]\npaths = 3\nseed = 5\nblock_days = 2.0\n"
    mc_cfg.write_text(table)
    r = CliRunner().invoke(cli, ["sweep", str(mc_cfg), "--quiet", "--force"])
    assert r.exit_code == 0, r.output
    assert ((out / "summary.parquet").read_bytes(), (out / "paths.parquet").read_bytes()) == by_flags
    man = json.loads((out / "manifest.json").read_text())
    assert man["montecarlo"] == man_flags and man["montecarlo"]["resample"] == ["discount"]
    assert man["config"]["montecarlo"]["paths"] == 3
    # a flag overrides its key: the manifest records the resolved values
    r = CliRunner().invoke(cli, ["sweep", str(mc_cfg), "--quiet", "--force", "--seed", "6", "--path", "1"])
    assert r.exit_code == 0, r.output
    man = json.loads((out / "manifest.json").read_text())["montecarlo"]
    assert (man["paths"], man["seed"], man["block_days"], man["path"]) == (3, 6, 2.0, 1)
    assert pl.read_parquet(out / "paths.parquet")["path"].unique().to_list() == [1]
    # a bad table value: one message naming the key, exit 2
    mc_cfg.write_text(table.replace("paths = 3", "paths = -3"))
    r = CliRunner().invoke(cli, ["sweep", str(mc_cfg), "--quiet", "--force"])
    assert r.exit_code == 2 and "montecarlo.paths = -3" in r.output, r.output
