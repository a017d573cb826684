"""The lp kind through the data layer: the pool rows ASOF-joined onto the clock, the virtual price from the LP
token's exchange_rates, stETH marked at price / exchange rate."""
import polars as pl
import pytest

from backtest.config import loads_config
from backtest.data.lake_write import write_table
from backtest.strategy_book import run_lp

T0 = 1_650_067_200      # 2022-04-16 00:00 UTC
D = 86400
POOL = "curve:test"


def lake(tmp_path):
    lk = tmp_path / "lake"
    rows = {"ts": [T0, T0 + D], "pool": [POOL] * 2, "token0": ["ETH"] * 2, "token1": ["stETH"] * 2,
            "reserve0": [100.0, 110.0], "reserve1": [100.0, 110.0], "amp": [50.0, 50.0]}
    write_table(lk, "liquidity", pl.DataFrame(rows), "pool")
    write_table(lk, "exchange_rates", pl.DataFrame({"ts": [T0, T0 + D], "token": ["steCRV"] * 2,
                                                    "underlying": ["ETH"] * 2, "rate": [1.0, 1.01],
                                                    "source": ["t"] * 2}), "vp")
    # stETH priced per share with its exchange rate (rebase index 1.02 on day 1): the pool unit is worth 0.98
    write_table(lk, "prices", pl.DataFrame({"ts": [T0, T0 + D], "base": ["stETH"] * 2, "quote": ["WETH"] * 2,
                                            "price": [1.0, 0.98 * 1.02], "source": ["t"] * 2}), "px")
    write_table(lk, "exchange_rates", pl.DataFrame({"ts": [T0, T0 + D], "token": ["stETH"] * 2,
                                                    "underlying": ["ETH"] * 2, "rate": [1.0, 1.02],
                                                    "source": ["t"] * 2}), "st")
    return lk


def test_lp_reads_the_pool_and_marks_the_share(tmp_path):
    lk = lake(tmp_path)
    text = (f'[run]\nstart = "2022-04-16"\nend = "2022-04-17T01:00:00Z"\nstep = "1h"\ndata = "{lk}"\n'
            '[market]\nprotocol = "aave-v3"\ncollateral = "stETH"\ndebt = "WETH"\n'
            '[strategy]\nkind = "lp"\ncapital = 10.0\n'
            f'[strategy.lp]\npool = "{POOL}"\nlp_token = "steCRV"\n'
            
            '[costs]\ngas = 0\n')
    row, ts, value = run_lp(loads_config(text, "lp.toml"))
    # as tests/unit/test_rules_book.py: 10 LP tokens of 5 ETH + 5 stETH; on day 1 the pool is 110 + 110 at
    # vp 1.01 and a pool stETH is worth 0.98 x 1.02 / 1.02 = 0.98 ETH
    assert value[-1] == pytest.approx(10 * (110 + 110 * 0.98) * 1.01 / 220, rel=1e-12)
    assert row["fee_income"] == pytest.approx(0.1, rel=1e-12)
    assert row["impermanent_loss"] == pytest.approx(0.0, abs=1e-12)
    assert row["end_value"] == pytest.approx(value[-1], rel=1e-15)
    assert "exchange_rates stETH" in row["series"] or "exchange_rates stETH" in str(row)


def test_a_pool_of_other_coins_than_the_config_names_is_refused(tmp_path):
    from backtest.errors import DataError

    lk = lake(tmp_path)
    text = (f'[run]\nstart = "2022-04-16"\nend = "2022-04-17"\nstep = "1h"\ndata = "{lk}"\n'
            '[market]\nprotocol = "aave-v3"\ncollateral = "wstETH"\ndebt = "WETH"\n'
            f'[strategy]\nkind = "lp"\n[strategy.lp]\npool = "{POOL}"\nlp_token = "steCRV"\n[costs]\ngas = 0\n')
    with pytest.raises(DataError, match="its coins are ETH/stETH, not WETH/wstETH"):
        run_lp(loads_config(text, "lp.toml"))
