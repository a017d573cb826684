"""The strategy book's config tables ([strategy.lp|vault|basket|farm]): read, checked, hashed."""
from pathlib import Path

import pytest

from backtest.config import config_hash, config_to_dict, load_config, loads_config
from backtest.errors import ConfigError

BOOK = Path(__file__).resolve().parents[2] / "examples" / "book"
HEAD = '[run]\nstart = "2024-06-01"\nend = "2024-07-01"\n[market]\nprotocol = "aave-v3"\n'


def cfg(strategy: str):
    return loads_config(HEAD + strategy, "book.toml")


@pytest.mark.parametrize("path", sorted(BOOK.rglob("*.toml")), ids=lambda p: str(p.relative_to(BOOK)))
def test_every_book_config_loads(path):
    c = load_config(path)
    assert c.strategy.kind in ("hold", "lend", "loop", "flash-loan", "basket", "lp", "vault", "farm")
    assert (c.strategy.book is None) == (c.strategy.kind not in ("basket", "lp", "vault", "farm"))


def test_the_book_tables_are_read_into_their_configs():
    c = cfg('[strategy]\nkind = "vault"\ntarget_ltv = 0.7\n[strategy.vault]\nover = "loop"\nband = 0.03\n'
            'check_every = "12h"\nmanagement_fee = 0.01\nperformance_fee = 0.2\n')
    v = c.strategy.book.vault
    assert (v.over, v.band, v.check_every, v.management_fee, v.performance_fee) == ("loop", 0.03, 43200, 0.01, 0.2)
    c = cfg('[strategy]\nkind = "basket"\n[strategy.basket]\nweights = { wstETH = 0.6, mSOL = 0.4 }\n'
            'rebalance_every = "7d"\n')
    assert c.strategy.book.basket.weights == (("wstETH", 0.6), ("mSOL", 0.4))
    assert c.strategy.book.basket.rebalance_every == 7 * 86400
    c = cfg('[strategy]\nkind = "farm"\n[strategy.farm]\nreward_token = "EIGEN"\nexit_after = "90d"\n')
    f = c.strategy.book.farm
    assert (f.reward_token, f.exit_after, f.sell_every, f.halving) == ("EIGEN", 90 * 86400, 86400, 0)


@pytest.mark.parametrize("strategy,message", [
    ('[strategy]\nkind = "lp"\n', 'kind = "lp" needs a [strategy.lp] table (at least pool, lp_token)'),
    ('[strategy]\nkind = "lp"\n[strategy.lp]\npool = "p"\n', "strategy.lp.lp_token"),
    ('[strategy]\nkind = "loop"\n[strategy.lp]\npool = "p"\n', '[strategy.lp] belongs to kind = "lp"'),
    ('[strategy]\nkind = "lp"\n[strategy.lp]\namp = 50\nlp_token = "x"\n', "strategy.lp.pool"),
    ('[strategy]\nkind = "lp"\n[strategy.lp]\npool = "p"\nlp_token = "x"\namp = 0\n', "strategy.lp.amp"),
    ('[strategy]\nkind = "lp"\n[strategy.lp]\npool = "p"\nlp_token = "x"\nfee = 0.1\n', "strategy.lp.fee"),
    ('[strategy]\nkind = "vault"\n[strategy.vault]\nover = "flash"\n', "strategy.vault.over"),
    ('[strategy]\nkind = "vault"\n[strategy.vault]\nmanagement_fee = 1.5\n', "strategy.vault.management_fee"),
    ('[strategy]\nkind = "vault"\n[strategy.vault]\nover = "loop"\n'.replace("[strategy]", 'oracle = "market"\n[strategy]'),
     'kind = "vault" marks and liquidates at the exchange rate'),
    ('[strategy]\nkind = "basket"\n[strategy.basket]\nweights = { a = 0.5, b = 0.4 }\n', "sum to 0.9, not 1"),
    ('[strategy]\nkind = "basket"\n[strategy.basket]\nweights = { a = 1.0, b = 0.0 }\n', "strategy.basket.weights.b"),
    ('[strategy]\nkind = "basket"\n[strategy.basket]\nweights = []\n', "must be a table of token = weight"),
    ('[strategy]\nkind = "farm"\n[strategy.farm]\nreward_token = "X"\n', "strategy.farm.exit_after"),
    ('[strategy]\nkind = "farm"\n[strategy.farm]\nreward_token = "X"\nexit_after = "-1d"\n',
     "strategy.farm.exit_after"),
])
def test_a_wrong_book_table_is_refused_naming_the_key(strategy, message):
    with pytest.raises(ConfigError) as e:
        cfg(strategy)
    assert message in str(e.value.format_message())


def test_a_vault_on_a_venue_with_other_liquidation_rules_is_refused():
    with pytest.raises(ConfigError, match="replays Aave's liquidation rule"):
        loads_config(HEAD.replace("aave-v3", "morpho-blue") + '[strategy]\nkind = "vault"\n[strategy.vault]\n',
                     "v.toml")


def test_the_book_table_enters_the_hash_and_the_loop_kinds_hash_as_before():
    a = cfg('[strategy]\nkind = "lp"\n[strategy.lp]\npool = "p"\nlp_token = "x"\namp = 50\n')
    b = cfg('[strategy]\nkind = "lp"\n[strategy.lp]\npool = "p"\nlp_token = "x"\namp = 100\n')
    assert config_hash(a) != config_hash(b)
    loop = cfg('[strategy]\nkind = "loop"\n')
    assert "book" not in config_to_dict(loop)["strategy"]     # earlier configs keep their hash


def test_a_book_kind_is_swept_one_row_per_point(tmp_path):
    from backtest.api import run

    p = tmp_path / "vault.toml"
    p.write_text(HEAD + 'collateral = "wstETH"\ndebt = "WETH"\nemode = "eth-correlated"\n'
                 '[strategy]\nkind = "vault"\ncapital = 1.0\ntarget_ltv = 0.8\n[strategy.vault]\nover = "loop"\n'
                 '[sweep]\n"strategy.vault.management_fee" = [0.0, 0.02]\n')
    res = run(p, overrides={"run.data": str(Path(__file__).resolve().parents[2] / "data"),
                            "run.end": "2024-06-03", "run.output": str(tmp_path / "out")})
    s = res["summary"]
    assert s["config_id"].to_list() == [0, 1] and s["strategy.vault.management_fee"].to_list() == [0.0, 0.02]
    assert s["management_fee_paid"][0] == 0 and s["management_fee_paid"][1] > 0
    assert s["end_value"][1] < s["end_value"][0]          # the fee is the only difference
    assert sorted(p.name for p in (res["path"] / "timeseries").iterdir()) == ["config_id=0", "config_id=1"]
    assert set(res["events"]["config_id"]) == {0, 1}
