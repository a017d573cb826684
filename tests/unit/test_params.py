"""Default market parameters: one test per dated value (PROTOCOLS.md and the protocols' own records)."""
from __future__ import annotations

import datetime as dt

import pytest

from backtest import params
from backtest.errors import DataError
from backtest.params import default_params, params_at


def T(s: str) -> int:
    return int(dt.datetime.fromisoformat(s).replace(tzinfo=dt.timezone.utc).timestamp())


def vals(entry):
    return tuple(round(x, 6) for x in entry[1:])


# ---- Aave v3 E-mode "eth-correlated" ---------------------------------------------------------------
def test_aave_v3_eth_correlated_before_2024_01_21():
    assert vals(params_at("aave-v3", "wstETH", "eth-correlated", T("2024-01-20 23:59:59"))) == (0.90, 0.93, 0.01, 0.10)
    assert vals(params_at("aave-v3", "wstETH", "eth-correlated", T("2022-06-15"))) == (0.90, 0.93, 0.01, 0.10)


def test_aave_v3_eth_correlated_from_2024_01_21():
    assert vals(params_at("aave-v3", "wstETH", "eth-correlated", T("2024-01-21"))) == (0.93, 0.95, 0.01, 0.10)
    assert vals(params_at("aave-v3", "wstETH", "eth-correlated", T("2025-06-01"))) == (0.93, 0.95, 0.01, 0.10)


def test_aave_v3_eth_correlated_switch_is_at_utc_midnight():
    entries = default_params("aave-v3", "wstETH", "eth-correlated")
    assert [e[0] for e in entries] == [0, T("2024-01-21")]


@pytest.mark.parametrize("asset", ["WETH", "wstETH", "rETH", "cbETH", "weETH", "ezETH", "rsETH", "osETH", "ETHx"])
def test_aave_v3_protocol_fee_is_10pct_for_weth_and_eth_lsts(asset):
    for e in default_params("aave-v3", asset, "eth-correlated"):
        assert e[4] == 0.10


# ---- Aave v3 liquid E-modes (2025-03) ---------------------------------------------------------------
def test_aave_v3_wsteth_weth_liquid_emode():
    assert vals(params_at("aave-v3", "wstETH", "wsteth-weth", T("2025-03-01"))) == (0.945, 0.96, 0.01, 0.10)


def test_aave_v3_wsteth_weth_does_not_exist_before_2025_03():
    with pytest.raises(DataError, match="start on 2025-03-01"):
        params_at("aave-v3", "wstETH", "wsteth-weth", T("2025-02-28"))


@pytest.mark.parametrize("asset", ["weETH", "rsETH", "ezETH"])
def test_aave_v3_lrt_weth_liquid_emode(asset):
    assert vals(params_at("aave-v3", asset, "lrt-weth", T("2025-06-01"))) == (0.93, 0.95, 0.01, 0.10)
    assert default_params("aave-v3", asset, "lrt-weth")[0][0] == T("2025-03-01")


def test_wsteth_is_not_in_the_lrt_emode():
    with pytest.raises(DataError):
        default_params("aave-v3", "wstETH", "lrt-weth")


# ---- Aave v2 stETH ------------------------------------------------------------------------------------
def test_aave_v2_steth_from_2022_05_01():
    assert vals(params_at("aave-v2", "stETH", None, T("2022-05-01"))) == (0.69, 0.81, 0.075, 0.0)
    assert vals(params_at("aave-v2", "stETH", None, T("2022-06-18"))) == (0.69, 0.81, 0.075, 0.0)


def test_aave_v2_steth_before_aip75():
    # AIP-75: "Currently, stETH liquidation threshold is 75% and stETH LTV is 73%"
    assert vals(params_at("aave-v2", "stETH", None, T("2022-04-30"))) == (0.73, 0.75, 0.075, 0.0)


def test_aave_v2_has_no_protocol_fee_and_a_7_5pct_bonus():
    for e in default_params("aave-v2", "stETH", None):
        assert e[3] == 0.075 and e[4] == 0.0


def test_aave_v2_steth_has_no_emode():
    with pytest.raises(DataError):
        default_params("aave-v2", "stETH", "eth-correlated")


# ---- Spark ------------------------------------------------------------------------------------------
def test_spark_eth_emode_at_launch():
    assert vals(params_at("spark", "wstETH", "eth-correlated", T("2023-06-01"))) == (0.90, 0.93, 0.01, 0.10)


def test_spark_eth_emode_ltv_92_from_march_2024():
    assert vals(params_at("spark", "wstETH", "eth-correlated", T("2024-03-06"))) == (0.92, 0.93, 0.01, 0.10)
    assert vals(params_at("spark", "rETH", "eth-correlated", T("2025-01-01"))) == (0.92, 0.93, 0.01, 0.10)


def _spark_vs_aave_liquidation(protocol: str, **market_keys) -> float:
    """Debt repaid by the first liquidation of a loop loaded through the config loader (so the config's
    v33_from is what the engine gets), on the hand-made market of test_aave_rules: capital 100, one loop
    at LTV 0.9 -> collateral 190, debt 90; P = 0.49 -> HF = 190 * .49 * .95 / 90 = 0.98272 > 0.95; ETH = $20,
    so the collateral is worth 190 * .49 * 20 = $1,862 < $2,000. Aave v3.3 then repays all 90 (full close
    factor below $2,000); the v3.0-3.2 rules repay 50 % = 45. The market's blocks are in 2025-06, after
    Aave's v3.3 date (2025-02-25)."""
    from backtest.config import loads_config
    from backtest.engine import encode_params, lane_of
    from tests.helpers import both, liq_events, market

    extra = "".join(f"{k} = {v}\n" for k, v in market_keys.items())
    cfg = loads_config(f'''[run]
name = "t"
start = "2025-06-01"
end = "2025-06-02"
[market]
protocol = "{protocol}"
{extra}[strategy]
kind = "loop"
entry = "stake"
target_ltv = 0.9
loops = 1
[costs]
gas = 0
swap_fee = 0
flash_fee = 0
''')
    p = encode_params([cfg], [lane_of(cfg)])
    m = market([1.0, 0.49, 0.49], eth_usd=20.0, t0=T("2025-06-01"))
    core, ref = both(m, p, oracle="market")
    repaid = [-float(liq_events(out)["debt"][0]) for out in (core, ref)]
    assert repaid[0] == pytest.approx(repaid[1], rel=1e-12)
    return repaid[0]


def test_spark_keeps_the_v30_v32_liquidation_rules_after_aave_v33():
    # the config loader gives Spark no v3.3 date (params.V33_FROM["spark"] is None -> NEVER)
    assert params.v33_from("spark") == params.NEVER
    assert params.v33_from("aave-v3") == T("2025-02-25")
    # same position, same market (after 2025-02-25): Aave v3 closes all of it, Spark half (HF 0.98 > 0.95)
    assert _spark_vs_aave_liquidation("aave-v3") == pytest.approx(90.0, rel=1e-12)
    assert _spark_vs_aave_liquidation("spark") == pytest.approx(45.0, rel=1e-12)


def test_a_dated_v33_from_applies_the_v33_rules_to_spark():
    assert _spark_vs_aave_liquidation("spark", v33_from='"2025-05-01"') == pytest.approx(90.0, rel=1e-12)
    # and a date after the window leaves them off
    assert _spark_vs_aave_liquidation("spark", v33_from='"2025-07-01"') == pytest.approx(45.0, rel=1e-12)


def test_spark_weeth_is_outside_the_eth_emode():
    with pytest.raises(DataError, match="protocol='spark' asset='weETH' emode='eth-correlated'"):
        default_params("spark", "weETH", "eth-correlated")


# ---- shape and errors ---------------------------------------------------------------------------------
def test_unknown_market_names_protocol_asset_and_emode():
    with pytest.raises(DataError) as exc:
        default_params("morpho-blue", "wstETH", "eth-correlated")
    msg = str(exc.value)
    assert "protocol='morpho-blue'" in msg and "asset='wstETH'" in msg and "emode='eth-correlated'" in msg


def test_entries_sorted_and_well_formed():
    for args in [("aave-v3", "wstETH", "eth-correlated"), ("aave-v2", "stETH", None),
                 ("spark", "WETH", "eth-correlated"), ("aave-v3", "weETH", "lrt-weth")]:
        entries = default_params(*args)
        ts = [e[0] for e in entries]
        assert ts == sorted(ts)
        for _, ltv, lt, bonus, fee in entries:
            assert 0 < ltv < lt < 1 and 0 < bonus < 0.2 and 0 <= fee <= 0.1


def test_default_params_returns_a_copy():
    a = default_params("aave-v3", "wstETH", "eth-correlated")
    a.clear()
    assert len(default_params("aave-v3", "wstETH", "eth-correlated")) == 2
