"""Chain clocks (run.chain = ethereum | cosmos | solana, run.step) and the mSOL / stATOM examples."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

import backtest
from backtest.config import config_from_dict
from backtest.plan import market_for
from backtest.errors import ConfigError
from backtest.reference import aave_borrow_growth
from tests.synth_lake import synth_lake

REPO = Path(__file__).resolve().parents[2]
Y = 365 * 86400


def _cfg(chain: str, step=None, start="2024-06-01", end="2024-06-03", **market) -> dict:
    run = {"name": "t", "start": start, "end": end, "chain": chain, "data": str(synth_lake())}
    if step is not None:
        run["step"] = step
    tok, debt, label = {"solana": ("mSOL", "SOL", "kamino"), "cosmos": ("stATOM", "ATOM", "mars"),
                        "ethereum": ("wstETH", "WETH", "generic")}[chain]
    mk = {"protocol": "generic", "collateral": tok, "debt": debt, "rates_from": label, "supply_rate": 0.0,
          "ltv": 0.8, "liquidation_threshold": 0.85, "liquidation_bonus": 0.05, "close_factor": 0.5,
          "liquidation_protocol_fee": 0.0, **market}
    return {"run": run, "market": mk, "strategy": {"kind": "loop", "target_ltv": 0.7, "loops": 3, "entry": "stake"},
            "costs": {"gas": 1.0}}


def test_default_steps_are_the_block_time_or_a_multiple():
    # ethereum 12 s, cosmos 6 s blocks; solana 0.4 s slots -> 60 s (150 slots) by default
    assert config_from_dict(_cfg("cosmos")).run.block_time == 6
    assert config_from_dict(_cfg("solana")).run.block_time == 60
    assert config_from_dict(_cfg("solana", step="2s")).run.block_time == 2      # 5 slots
    assert config_from_dict(_cfg("cosmos", step="12s")).run.block_time == 12    # 2 blocks


@pytest.mark.parametrize("chain,step,multiple", [("solana", "1s", "2 s"), ("solana", "3s", "2 s"),
                                                 ("cosmos", "9s", "6 s"), ("ethereum", "6s", "12 s")])
def test_step_must_be_whole_blocks(chain, step, multiple):
    with pytest.raises(ConfigError, match=f"run.step.*a multiple of {multiple}"):
        config_from_dict(_cfg(chain, step=step))


def test_chain_calendars_and_venues():
    # Solana mainnet-beta genesis 2020-03-16, the Cosmos Hub's 2019-03-13
    with pytest.raises(ConfigError, match="solana's genesis"):
        config_from_dict(_cfg("solana", start="2020-03-01", end="2020-04-01"))
    assert config_from_dict(_cfg("cosmos", start="2019-03-14", end="2019-04-01")).run.chain == "cosmos"
    with pytest.raises(ConfigError, match="cosmos's genesis"):
        config_from_dict(_cfg("cosmos", start="2019-03-13", end="2019-04-01"))
    d = _cfg("solana")
    d["market"] = {"protocol": "aave-v3", "collateral": "mSOL", "debt": "SOL"}
    with pytest.raises(ConfigError, match="aave-v3 does not run on solana"):
        config_from_dict(d)


def test_solana_clock_and_mSOL_series():
    # two days at 60 s: 2 x 1,440 steps, one every 60 s, numbered by index; the mSOL rate is the lake's (daily)
    m = market_for(config_from_dict(_cfg("solana")))
    assert len(m) == 2880 and set(np.diff(m.ts).tolist()) == {60}
    assert m.block.tolist() == list(range(2880))
    ex = pl.read_parquet(synth_lake() / "exchange_rates").filter(pl.col("token") == "mSOL").sort("ts")
    lake = ex["rate"].to_numpy()[np.searchsorted(ex["ts"].to_numpy(), m.ts, side="right") - 1]
    assert np.array_equal(m.xrate, lake) and m.xrate[-1] > m.xrate[0]


def test_per_step_interest_matches_per_slot():
    # What a 60 s step means for Solana: the borrow index compounds once per step instead of once per 0.4 s
    # slot. Over a day at 6.5 %: (g(60 s))^1440 vs (g(0.4 s))^216000 differ by ~r^2 dt / 2Y per step, ~1e-12.
    r = 0.065
    step = aave_borrow_growth(r, 60.0) ** 1440
    slot = aave_borrow_growth(r, 0.4) ** 216000
    assert step == pytest.approx(slot, rel=1e-9) and step > 1 + r / 365 * 0.999


@pytest.mark.parametrize("name,end", [("solana-msol-loop", None), ("cosmos-statom-loop", "2024-07-01")])
def test_other_chain_examples(tmp_path, name, end):
    ov = {"run.output": str(tmp_path), "run.data": str(synth_lake())}
    if end:
        ov["run.end"] = end          # a month of 6 s Cosmos blocks (a year is 5.3 M steps)
    res = backtest.run(REPO / "examples" / f"{name}.toml", overrides=ov)
    s = res["summary"]
    assert s.height == 2 and s["liq_count"].sum() == 0
    m = market_for(config_from_dict(_cfg("solana" if "solana" in name else "cosmos", end=end or "2025-06-01",
                                    step="60s" if "solana" in name else "6s")))
    # hold: staked at the first step's rate, marked at the last step's DEX price: 100 / x0 x p_end
    assert s["hold_end_equity"][0] == pytest.approx(100.0 / m.xrate[0] * m.price[-1], rel=1e-12)
    # a levered loop beats holding when the staking APR exceeds the borrow APR (7.5 % vs 6.5 %, 16.5 % vs 12 %)
    assert (s["excess_apy"] > 0).all() and s["excess_apy"][1] > s["excess_apy"][0]
