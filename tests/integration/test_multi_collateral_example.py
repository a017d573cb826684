"""The multi-collateral example (examples/multi-collateral-emode.toml: wstETH 60 % + weETH 40 % against
WETH in Aave v3's E-mode) on the bundled lake: per-leg columns that add up, the health factor of the time series
equal to Aave's sum over the two reserves from the per-leg columns, and the core equal to the reference engine
over a day of blocks."""
from pathlib import Path

import numpy as np
import pytest

from backtest import api
from tests.synth_lake import synth_lake

EXAMPLE = Path(__file__).parents[2] / "examples" / "multi-collateral-emode.toml"
DAY = {"run.end": "2024-06-02", "run.record": "block", "run.data": str(synth_lake())}


@pytest.fixture(scope="module")
def day():
    return {engine: api.run(EXAMPLE, overrides=DAY, engine=engine, write=False) for engine in ("core", "reference")}


def test_per_leg_columns_add_up(day):
    s = day["core"]["summary"]
    assert s["end_collateral"][0] == pytest.approx(s["end_collateral_wstETH"][0] + s["end_collateral_weETH"][0],
                                                   rel=1e-12)
    assert s["end_collateral_wstETH"][0] > 0 and s["end_collateral_weETH"][0] > 0


def test_core_equals_reference_on_the_lake(day):
    a, b = day["core"]["summary"], day["reference"]["summary"]
    for col in ("end_equity", "end_debt", "end_collateral_wstETH", "end_collateral_weETH", "staking_yield",
                "supply_yield", "interest_paid", "gas_cost", "swap_fee_cost", "slippage_cost", "min_hf"):
        assert a[col][0] == pytest.approx(b[col][0], rel=1e-9), col
    assert a["n_events"][0] == b["n_events"][0]


def test_time_series_hf_is_the_sum_over_both_reserves():
    from backtest.api import _align, _load
    from backtest.engine import Lane, record_indices, run_core
    from backtest.engine import encode_params
    from backtest.legs import leg_weights

    cfg = _load(EXAMPLE, DAY)
    m = _align(cfg)
    lanes = [Lane("exchange-rate", 0.0, 7 * 86400, "aave-v3")]
    rec = record_indices(m, 0)
    out = run_core(m, encode_params([cfg], lanes), lanes, rec, 300, weights=leg_weights([cfg], m))
    k = 100                                               # a block after the open
    tokens, oracle = out.leg_records[0, k, :, 0], out.leg_records[0, k, :, 1]
    lt = np.array([leg.lt[rec[k]] for leg in m.legs])
    debt = out.records[0, k, 1]
    assert out.records[0, k, 3] == pytest.approx(float(np.sum(tokens * oracle * lt)) / debt, rel=1e-12)


def test_a_sweep_of_a_multi_collateral_config_and_the_dask_refusal():
    from backtest.errors import BacktestError

    r = api.run(EXAMPLE, overrides={"run.end": "2024-06-03", "run.data": str(synth_lake())}, grids={"strategy.target_ltv": [0.7, 0.8]},
                write=False)
    s = r["summary"].sort("config_id")
    assert s.height == 2
    # a lower target LTV borrows less: less debt, fewer tokens of both legs
    assert s["end_debt"][0] < s["end_debt"][1]
    assert s["end_collateral_wstETH"][0] < s["end_collateral_wstETH"][1]
    assert s["end_collateral_weETH"][0] < s["end_collateral_weETH"][1]
    with pytest.raises(BacktestError, match="run locally only"):
        api.run(EXAMPLE, overrides={"run.end": "2024-06-03", "run.data": str(synth_lake())}, executor="dask", write=False)
