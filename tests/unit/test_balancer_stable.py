"""`backtest data fetch rpc balancer-stable`: a Balancer v2 ComposableStable pool's spot price at a block from the
Vault's getPoolTokens + the pool's getAmplificationParameter / getScalingFactors, on StableMath's invariant.

The hand-worked pool (2 tokens, amp = A n^(n-1) = 100, so amp n = 200; D = 2000): with the quote balance
q = 500, the base balance x solves 200 (x + 500) + 2000 = 200 x 2000 + 2000^3 / (4 x 500 x); in units of 1000,
x = 1000 y with 200 y^2 - 298 y - 4 = 0, y* = (298 + sqrt(92004)) / 400 = (298 + 303.3216) / 400 = 1.503304;
D_P = D^3 / (4 x q) = 4000 / y*, and the price of base in quote is (200 + D_P / x) / (200 + D_P / q)
= (200 + 4 / y*^2) / (200 + 8 / y*) = 201.76997 / 205.32163 = 0.982702 (the abundant token cheaper).
"""
from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from backtest.cli import cli
from backtest.data.sources import abi
from backtest.data.sources import balancer_stable as bs
from backtest.data.sources import rpc_presets as rp
from tests.rpc_node import RecordedNode, words

E18 = 10 ** 18
T0 = 1_713_916_800          # 2024-04-24 00:00 UTC
Y_STAR = (298 + math.sqrt(92004)) / 400
P_HAND = (200 + 4 / Y_STAR ** 2) / (200 + 8 / Y_STAR)


def table(lake: Path, name: str) -> pl.DataFrame:
    return pl.read_parquet(sorted((lake / name).rglob("*.parquet")))


def test_invariant_of_a_balanced_pool_is_the_sum_and_its_price_is_one():
    xs = [1000 * E18, 1000 * E18]
    assert bs.invariant(100_000, xs) == 2000 * E18           # S = D when every balance is equal
    assert bs.spot_price(100_000, xs, 0, 1) == pytest.approx(1.0, abs=1e-15)


def test_invariant_and_spot_price_match_the_hand_worked_pool():
    assert Y_STAR == pytest.approx(1.503304, abs=1e-6)
    assert P_HAND == pytest.approx(0.982702, abs=1e-6)
    xs = [int(1000 * Y_STAR * E18), 500 * E18]
    assert bs.invariant(100_000, xs) == pytest.approx(2000 * E18, rel=1e-12)
    assert bs.spot_price(100_000, xs, 0, 1) == pytest.approx(P_HAND, rel=1e-9)
    assert bs.spot_price(100_000, xs, 1, 0) == pytest.approx(1 / P_HAND, rel=1e-9)


def test_spot_price_is_the_limit_of_a_small_swap_on_the_invariant():
    # n = 2 closed form for the quote balance at fixed D: ann q^2 + (ann x + D - ann D) q - D^3 / (4 x) = 0
    ann, d, x0 = 200.0, 2000.0, 1000 * Y_STAR

    def q_of(x: float) -> float:
        b = ann * x + d - ann * d
        return (-b + math.sqrt(b * b + ann * d ** 3 / x)) / (2 * ann)
    dx = 1e-4
    marginal = (q_of(x0 - dx) - q_of(x0 + dx)) / (2 * dx)     # quote out per base in
    assert q_of(x0) == pytest.approx(500.0, rel=1e-9)
    assert marginal == pytest.approx(P_HAND, rel=1e-7)


def _pool_replies(node: RecordedNode, block: int, bal_ezeth: int, bal_weth: int, rate_ezeth: float) -> None:
    pid = bs.EZETH_WETH_POOL_ID
    bpt = "0x" + pid[2:42]
    # tokens sorted by address: the BPT 0x5961..., ezETH 0xbf54..., WETH 0xc02a...; the BPT's own balance is huge
    toks = [int(bpt, 16), int(rp.EZETH, 16), int(rp.WETH, 16)]
    bals = [2 ** 111, bal_ezeth, bal_weth]
    head = [0x60, 0x60 + 32 * 4, block - 3]                 # offsets of the two arrays, lastChangeBlock
    node.add_call(bs.BALANCER_VAULT, abi.encode_call("getPoolTokens(bytes32)", pid),
                  {block: words(*head, 3, *toks, 3, *bals)})
    node.add_call(bpt, abi.encode_call("getAmplificationParameter()"), {block: words(100_000, 0, 1000)})
    node.add_call(bpt, abi.encode_call("getScalingFactors()"),
                  {block: words(0x20, 3, E18, int(rate_ezeth * E18), E18)})


def test_cli_reads_the_ezeth_weth_pool_price_at_each_block(tmp_path, monkeypatch):
    node = RecordedNode({"blocks": {b: T0 + 12 * (b - 100) for b in range(100, 130)}})
    try:
        # block 100: balanced in rate-adjusted units (1000 / 1.02 ezETH = 1000 WETH of value): price = the rate
        _pool_replies(node, 100, int(1000 / 1.02 * E18), 1000 * E18, 1.02)
        # block 110: the hand-worked pool, ezETH abundant: 1000 y* of value against 500 WETH
        _pool_replies(node, 110, int(1000 * Y_STAR / 1.02 * E18), 500 * E18, 1.02)
        monkeypatch.setenv("ETH_RPC_URL", node.url)
        # README's command: the pool id spelled out (also the default)
        r = CliRunner().invoke(cli, ["data", "fetch", "rpc", "balancer-stable", "--pool-id", bs.EZETH_WETH_POOL_ID,
                                     "--base", "ezETH", "--quote", "WETH", "--block", "100", "--block", "110",
                                     "--into", str(tmp_path)])
        assert r.exit_code == 0, r.output
        px = table(tmp_path, "prices").sort("ts")
        assert (px["base"][0], px["quote"][0]) == ("ezETH", "WETH")
        assert px["ts"].to_list() == [T0, T0 + 120]
        assert px["price"][0] == pytest.approx(1.02, rel=1e-12)
        assert px["price"][1] == pytest.approx(1.02 * P_HAND, rel=1e-9)     # 1.00236: ezETH 1.7 % under its rate
        assert px["source"][0] == f"balancer:{bs.EZETH_WETH_POOL_ID[:42]}"
        # a token the pool does not hold: one clear message, exit 2
        r = CliRunner().invoke(cli, ["data", "fetch", "rpc", "balancer-stable", "--block", "100", "--base", "rETH",
                                     "--into", str(tmp_path / "other")])
        assert r.exit_code == 2 and "rETH" in r.output and "is not one of its tokens" in r.output
        r = CliRunner().invoke(cli, ["data", "fetch", "rpc", "balancer-stable", "--block", "100", "--pool-id", "0x12",
                                     "--into", str(tmp_path / "other")])
        assert r.exit_code == 2 and "--pool-id" in r.output
    finally:
        node.close()


def test_malformed_array_reply_is_a_data_error():
    from backtest.errors import DataError
    with pytest.raises(DataError, match="malformed dynamic array"):
        bs._array([0x20, 5, 1, 2], 0, "getScalingFactors", 100)
