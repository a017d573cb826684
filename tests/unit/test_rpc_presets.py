"""The batched RPC presets against a recorded JSON-RPC node on 127.0.0.1 (tests/rpc_node.py): batch replies out
of order, errors, event block ranges, HTTP 429, rate-limit errors, a dropped connection, resuming, and the URL
never written anywhere. Expected values are worked by hand from the recorded words."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from backtest.cli import cli
from backtest.data.sources import abi, rpc_jobs, rpc_presets as rp
from backtest.data.sources.download import FetchError
from backtest.data.sources.rpc_batch import BatchRpc
from backtest.errors import DataError
from tests.rpc_node import RecordedNode, words

E18 = 10 ** 18
T0 = 1_713_916_800          # 2024-04-24 00:00 UTC


@pytest.fixture
def node():
    n = RecordedNode({"blocks": {b: T0 + 12 * (b - 100) for b in range(100, 130)}})
    yield n
    n.close()


def client(url: str, sleeps: list | None = None, **kw) -> BatchRpc:
    rec = sleeps if sleeps is not None else []
    return BatchRpc(url, backoff=0.0, sleep=rec.append, **kw)


def table(lake: Path, name: str) -> pl.DataFrame:
    return pl.read_parquet(sorted((lake / name).rglob("*.parquet")))


def test_selectors_and_topics_match_the_published_ones():
    # published selectors (4byte.directory / the protocols' ABIs) and the ERC-20 Transfer topic
    assert abi.selector("getRate()") == "0x679aefce"
    assert abi.selector("latestAnswer()") == "0x50d25bcd"
    assert abi.selector("slot0()") == "0x3850c7bd"
    assert abi.selector("calculateTVLs()") == "0xff9969cd"
    assert abi.selector("balanceOf(address)") == "0x70a08231"
    assert abi.topic("Transfer(address,address,uint256)") == \
        "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
    # a static tuple is encoded in place: selector + 2 words
    data = abi.encode_call("f((address,uint128))", ("0x" + "11" * 20, 5))
    assert data[10:] == "0" * 24 + "11" * 20 + "0" * 63 + "5"


def test_weeth_rate_decoded_and_blocks_written_in_two_batches(node, tmp_path):
    p = rp.weeth()
    node.add_call(rp.WEETH, abi.selector("getRate()"), {b: words(1_086_500_000_000_000_000) for b in (100, 110, 120)})
    rpc = client(node.url)
    rpc_jobs.fetch_preset(p, [120, 100, 110], tmp_path, rpc)
    xr = table(tmp_path, "exchange_rates").sort("ts")
    assert xr["rate"].to_list() == [1.0865, 1.0865, 1.0865]            # 1.0865e18 / 1e18
    assert xr["token"].unique().to_list() == ["weETH"] and xr["underlying"].unique().to_list() == ["eETH"]
    assert xr["ts"].to_list() == [T0, T0 + 120, T0 + 240]              # 12 s blocks: 0, 10, 20 blocks on
    bl = table(tmp_path, "blocks").sort("ts")
    assert bl["block"].to_list() == [100, 110, 120]
    assert rpc.posts == 1                    # one batch: three block headers and three calls
    assert isinstance(node.requests[0], list) and len(node.requests[0]) == 6


def test_ezeth_rate_is_total_tvl_over_supply(node, tmp_path):
    # calculateTVLs() -> (uint256[][], uint256[], uint256): head = offset, offset, totalTVL; then the arrays
    tvl = 1_050_000 * E18
    enc = words(0x60, 0xC0, tvl, 1, 0x20, 0) + words(1, 7)[2:]
    node.add_call(rp.RENZO_RESTAKE_MANAGER, abi.selector("calculateTVLs()"), {100: enc})
    node.add_call(rp.EZETH, abi.selector("totalSupply()"), {100: words(1_000_000 * E18)})
    rpc_jobs.fetch_preset(rp.ezeth(), [100], tmp_path, client(node.url))
    xr = table(tmp_path, "exchange_rates")
    assert xr["rate"].to_list() == [pytest.approx(1.05, rel=1e-15)]  # 1,050,000 / 1,000,000


def test_morpho_market_and_irm_rate_of_a_market_id(node, tmp_path):
    mid = "0x" + "ab" * 32
    loan, coll, orc, irm = ("0x" + c * 40 for c in "1234")
    lltv = 860_000_000_000_000_000
    node.add_call(rp.MORPHO_BLUE, abi.encode_call("market(bytes32)", mid),
                  {100: words(1000 * E18, 1000 * E18, 900 * E18, 900 * E18, T0 - 60, 0)})
    node.add_call(rp.MORPHO_BLUE, abi.encode_call("idToMarketParams(bytes32)", mid),
                  {100: words(int(loan, 16), int(coll, 16), int(orc, 16), int(irm, 16), lltv)})
    sig = "borrowRateView((address,address,address,address,uint256),(uint128,uint128,uint128,uint128,uint128,uint128))"
    data = abi.encode_call(sig, (loan, coll, orc, irm, lltv), (1000 * E18, 1000 * E18, 900 * E18, 900 * E18, T0 - 60, 0))
    node.add_call(irm, data, {100: words(3_170_979_198)})      # 0.1 / 31,536,000 s, in WAD per second
    rpc_jobs.fetch_preset(rp.morpho(mid), [100], tmp_path, client(node.url))
    r = table(tmp_path, "rates").row(0, named=True)
    assert r["protocol"] == "morpho-blue" and r["asset"] == "WETH"
    assert r["borrow_apr"] == pytest.approx(0.1, rel=1e-8)           # 3.170979198e-9 x 31,536,000
    assert r["utilization"] == pytest.approx(0.9)                    # 900 / 1000
    assert r["supply_apr"] == pytest.approx(0.09, rel=1e-8)          # 0.1 x 0.9 x (1 - 0)


def test_comet_utilization_then_rates(node, tmp_path):
    u = 800_000_000_000_000_000
    node.add_call(rp.COMET_WETH, abi.encode_call("getUtilization()"), {100: words(u)})
    node.add_call(rp.COMET_WETH, abi.encode_call("getBorrowRate(uint256)", u), {100: words(951_293_759)})
    node.add_call(rp.COMET_WETH, abi.encode_call("getSupplyRate(uint256)", u), {100: words(634_195_839)})
    rpc_jobs.fetch_preset(rp.comet(), [100], tmp_path, client(node.url))
    r = table(tmp_path, "rates").row(0, named=True)
    assert r["protocol"] == "compound-v3" and r["utilization"] == pytest.approx(0.8)
    assert r["borrow_apr"] == pytest.approx(0.03, rel=1e-7)          # 951,293,759e-18 x 31,536,000
    assert r["supply_apr"] == pytest.approx(0.02, rel=1e-7)          # 634,195,839e-18 x 31,536,000


def test_aave_reserve_at_every_rate_change_from_logs_in_halving_windows(tmp_path):
    node = RecordedNode({"blocks": {b: T0 + 12 * b for b in range(0, 200)}}, max_log_span=8)
    try:
        t0 = abi.topic("ReserveDataUpdated(address,uint256,uint256,uint256,uint256,uint256)")
        weth_topic = "0x" + rp.WETH.lower()[2:].rjust(64, "0")
        other = "0x" + rp.WSTETH.lower()[2:].rjust(64, "0")
        node.logs = [{"address": rp.AAVE_V3_POOL, "topics": [t0, weth_topic], "blockNumber": hex(b)} for b in (101, 105, 109)]
        node.logs.append({"address": rp.AAVE_V3_POOL, "topics": [t0, other], "blockNumber": hex(107)})
        node.logs.append({"address": rp.AAVE_V3_POOL, "topics": [t0, weth_topic], "blockNumber": hex(103),
                          "removed": True})          # a log of a block reorganised away
        data = abi.encode_call("getReserveData(address)", rp.WETH)
        ray = 10 ** 27
        node.add_call(rp.AAVE_V3_POOL, data, {101: words(0, ray, ray // 50, ray, ray // 10, 0, 0),
                                              105: words(0, ray, ray // 10, ray, ray // 5, 0, 0),
                                              109: words(0, ray, ray // 50, ray, ray // 10, 0, 0)})
        rpc = client(node.url)
        blocks = rpc_jobs.event_blocks(rpc, "aave-reserve-updated", 100, 120, filter_on=rp.WETH, span=32)
        assert blocks == [101, 105, 109]           # wstETH's log (topic 1) and the removed log left out
        spans = [int(r["params"][0]["toBlock"], 16) - int(r["params"][0]["fromBlock"], 16) + 1
                 for body in node.requests for r in (body if isinstance(body, list) else [body])]
        assert spans[:3] == [21, 16, 8]            # refused above 8 blocks: 21 -> 16 -> 8
        rpc_jobs.fetch_preset(rp.aave_reserve(rp.WETH, "WETH"), blocks, tmp_path, rpc)
        r = table(tmp_path, "rates").sort("block")
        assert r["borrow_apr"].to_list() == [pytest.approx(0.1), pytest.approx(0.2), pytest.approx(0.1)]
        assert r["supply_apr"].to_list() == [pytest.approx(0.02), pytest.approx(0.1), pytest.approx(0.02)]
    finally:
        node.close()


def test_oracles_capo_and_pools(node, tmp_path):
    feed = "0x" + "5f" * 20
    node.add_call(feed, abi.encode_call("latestRoundData()"), {100: words(7, 3_100_50000000, 0, T0 - 5, 7)})
    node.add_call(feed, abi.encode_call("decimals()"), {100: words(8)})
    rpc_jobs.fetch_preset(rp.chainlink(feed, "ETH", "USD", protocol="aave-v3"), [100], tmp_path, client(node.url))
    op = table(tmp_path, "oracle_prices").row(0, named=True)
    assert (op["protocol"], op["asset"], op["quote"], op["price"]) == ("aave-v3", "ETH", "USD", 3100.5)

    adapter = "0x" + "ca" * 20
    per_sec = 36_500_000_000 // 31536 * 10 ** 0    # any value: the APR is per_sec x YEAR / snapshot ratio
    vals = {"latestAnswer()": 3_600_00000000, "decimals()": 8, "getRatio()": 1_220_000_000_000_000_000,
            "getSnapshotRatio()": 1_180_000_000_000_000_000, "getSnapshotTimestamp()": T0 - 8 * 86400,
            "getMaxRatioGrowthPerSecond()": per_sec}
    for sig, v in vals.items():
        node.add_call(adapter, abi.encode_call(sig), {100: words(v)})
    rpc_jobs.fetch_preset(rp.capo(adapter, "wstETH"), [100], tmp_path, client(node.url))
    op = table(tmp_path, "oracle_prices").filter(pl.col("asset") == "wstETH").row(0, named=True)
    assert op["price"] == 3600.0
    ev = {r["kind"]: r["value"] for r in table(tmp_path, "events").iter_rows(named=True)}
    assert ev["capo-ratio"] == 1.22 and ev["capo-snapshot-ratio"] == 1.18
    assert ev["capo-snapshot-ts"] == T0 - 8 * 86400
    assert ev["capo-max-growth-apr"] == pytest.approx(per_sec * 1e-18 * 31_536_000 / 1.18)

    pool = "0x" + "88" * 20
    node.add_call(pool, abi.encode_call("slot0()"), {100: words(2 * 2 ** 96, 0, 0, 0, 0, 0, 1)})
    rpc_jobs.fetch_preset(rp.uniswap_v3(pool, "ezETH", "WETH"), [100], tmp_path, client(node.url))
    px = table(tmp_path, "prices").filter(pl.col("base") == "ezETH").row(0, named=True)
    assert px["price"] == 4.0                     # (2 x 2^96 / 2^96)^2


def test_429_drop_and_rate_limit_errors_are_retried(node, tmp_path, caplog):
    node.add_call(rp.RETH, abi.selector("getExchangeRate()"), {b: words(1_100_000_000_000_000_000 + b) for b in range(100, 104)})
    node.script = ["429", "drop", "-32005", "half"]
    sleeps: list = []
    rpc = client(node.url, sleeps, batch_size=2)
    with caplog.at_level(logging.WARNING):
        rpc_jobs.fetch_preset(rp.reth(), [100, 101, 102, 103], tmp_path, rpc)
    xr = table(tmp_path, "exchange_rates").sort("block")
    assert xr["rate"].to_list() == [pytest.approx(1.1 + b * 1e-18) for b in range(100, 104)]
    assert len(sleeps) == 2                       # the -32005 batch and the half-refused batch waited once each
    assert "rate limited" in caplog.text


def test_revert_is_a_data_error_naming_the_call_and_block(node, tmp_path):
    with pytest.raises(DataError, match=r"cbETH exchangeRate\(\) \(r\) at block 100: the node answered error 3: "
                                        r"execution reverted"):
        rpc_jobs.fetch_preset(rp.cbeth(), [100], tmp_path, client(node.url))
    assert not (tmp_path / "exchange_rates").exists()          # nothing written half way


def test_job_resumes_only_the_missing_blocks(node, tmp_path):
    data = abi.selector("rsETHPrice()")
    node.add_call(rp.KELP_LRT_ORACLE, data, {b: words(E18 + b) for b in range(100, 103)})
    with pytest.raises(DataError):
        rpc_jobs.fetch_preset(rp.rseth(), range(100, 106), tmp_path, client(node.url), chunk=3)
    node.add_call(rp.KELP_LRT_ORACLE, data, {b: words(E18 + b) for b in range(103, 106)})
    node.requests.clear()
    rpc_jobs.fetch_preset(rp.rseth(), range(100, 106), tmp_path, client(node.url), chunk=3)
    asked = sorted(int(r["params"][1], 16) for body in node.requests for r in body if r["method"] == "eth_call")
    assert asked == [103, 104, 105]
    assert table(tmp_path, "exchange_rates").height == 6


def test_url_and_key_never_written(node, tmp_path, monkeypatch, caplog):
    key = "sk-" + "7" * 24
    url = f"{node.url}/v2/{key}"
    node.script = ["429"] * 20
    monkeypatch.setenv("ETH_RPC_URL", url)
    with caplog.at_level(logging.DEBUG):
        r = CliRunner().invoke(cli, ["data", "fetch", "rpc", "cbeth", "--blocks", "100:101", "--into", str(tmp_path),
                                     "--retries", "1"])
    assert r.exit_code != 0
    assert "429" in str(r.exception) or "429" in r.output
    files = [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    for text in [r.output, str(r.exception), caplog.text, *files]:
        assert key not in text and "/v2/" not in text
    assert node.paths and node.paths[0] == f"/v2/{key}"        # it did reach the node


def test_cli_preset_fills_exchange_rates(node, tmp_path, monkeypatch):
    node.add_call(rp.CBETH, abi.selector("exchangeRate()"), {b: words(1_070_000_000_000_000_000) for b in (100, 105)})
    monkeypatch.setenv("ETH_RPC_URL", node.url)
    r = CliRunner().invoke(cli, ["data", "fetch", "rpc", "cbeth", "--blocks", "100:105:5", "--into", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert table(tmp_path, "exchange_rates")["rate"].to_list() == [1.07, 1.07]
    r = CliRunner().invoke(cli, ["data", "fetch", "rpc", "nope", "--blocks", "1:2", "--into", str(tmp_path)])
    assert r.exit_code == 2 and "unknown rpc preset" in r.output
    man = [json.loads(p.read_text()) for p in tmp_path.rglob("job.json")]
    assert man and all(m["status"] == "complete" for m in man)


def test_morpho_market_id_from_its_parameters_matches_published_ids():
    # two mainnet wstETH/WETH markets whose ids are published with their parameters (Morpho app / integrators)
    assert rp.morpho_market_id("WETH", "wstETH", "0x2a01eb9496094da03c4e364def50f5ad1280ad72",
                               "0x870aC11D48B15DB9a138Cf899d20F13F79Ba00BC", 0.945) == \
        "0xc54d7acf14de29e0e5527cabd7a576506870346a78a11a6762e2cca66322ec41"
    assert rp._market_id("WETH,wstETH,0xbD60A6770b27E084E8617335ddE769241B0e71D8,"
                         "0x870aC11D48B15DB9a138Cf899d20F13F79Ba00BC,0.965") == \
        "0xb8fc70e82bc5bb53e773626fcc6a23f7eefa036918d7ef216ecfb1950a94a85e"


def test_the_ezeth_episode_market_ids_are_those_of_their_published_parameters():
    # ids and parameters as published together (defisaver-positions-sdk MORPHO_BLUE_EZETH_ETH 0x49bb...,
    # karpatkey/defi-kit _ethInfo.ts 0x093d...): the 86 % and 77 % markets share one oracle
    irm, orc = rp.MORPHO_ADAPTIVE_CURVE_IRM, rp.MORPHO_EZETH_ORACLE
    assert rp.morpho_market_id("WETH", "ezETH", orc, irm, 0.86) == rp.MORPHO_EZETH_WETH_86 == \
        "0x49bb2d114be9041a787432952927f6f144f05ad3e83196a7d062f374ee11d0ee"
    assert rp.morpho_market_id("WETH", "ezETH", orc, irm, 0.77) == rp.MORPHO_EZETH_WETH_77 == \
        "0x093d5b432aace8bf6c4d67494f4ac2542a499571ff7a1bcc9f8778f3200d457d"
    # the 94.5 % market of Dec 2024 (another oracle), from the same two sources
    assert rp.morpho_market_id("WETH", "ezETH", "0x94f93f1eADb8a2f73C415AD4C19cB791e6D0192b", irm, 0.945) == \
        "0xa0534c78620867b7c8706e3b6df9e69a2bc67c783281b7a77e034ed75cee012e"


def test_capo_and_uniswap_default_to_the_wsteth_contracts_and_refuse_other_symbols_without_an_address():
    from backtest.errors import InputError
    p = rp.from_options("capo", {})
    assert (p.params["adapter"], p.params["symbol"]) == (rp.AAVE_V3_WSTETH_CAPO.lower(), "wstETH")
    u = rp.from_options("uniswap-v3", {})
    assert (u.params["pool"], u.params["base"], u.params["quote"]) == (rp.UNISWAP_V3_WSTETH_WETH.lower(), "wstETH",
                                                                       "WETH")
    with pytest.raises(InputError, match="only wstETH's adapter"):
        rp.from_options("capo", {"symbol": "weETH"})
    with pytest.raises(InputError, match="needs --symbol"):
        rp.from_options("capo", {"address": "0x" + "ca" * 20})
    with pytest.raises(InputError, match="pass --address"):
        rp.from_options("uniswap-v3", {"base": "ezETH", "quote": "WETH"})


@pytest.mark.parametrize("make, addr, sig, args, token, underlying", [
    (rp.oseth, rp.STAKEWISE_OSTOKEN_CONTROLLER, "convertToAssets(uint256)", (E18,), "osETH", "ETH"),
    (rp.rseth, rp.KELP_LRT_ORACLE, "rsETHPrice()", (), "rsETH", "ETH"),
    (lambda: rp.rate_provider("0x" + "44" * 20, "ezETH"), "0x" + "44" * 20, "getRate()", (), "ezETH", "ETH"),
])
def test_one_call_rates(make, addr, sig, args, token, underlying, node, tmp_path):
    node.add_call(addr, abi.encode_call(sig, *args), {100: words(1_054_321_000_000_000_000)})
    rpc_jobs.fetch_preset(make(), [100], tmp_path, client(node.url))
    xr = table(tmp_path, "exchange_rates").row(0, named=True)
    assert (xr["token"], xr["underlying"], xr["rate"]) == (token, underlying, 1.054321)


def test_curve_get_dy_price(node, tmp_path):
    pool = "0x" + "dc" * 20
    node.add_call(pool, abi.encode_call("get_dy(int128,int128,uint256)", 1, 0, 10 * E18), {100: words(9_935 * 10 ** 15)})
    rpc_jobs.fetch_preset(rp.curve_dy(pool, 1, 0, "stETH", "ETH", dx=10.0), [100], tmp_path, client(node.url))
    assert table(tmp_path, "prices")["price"].to_list() == [0.9935]       # 9.935 ETH for 10 stETH


def test_a_long_retry_after_stops_the_job_with_a_resume_hint(node, tmp_path):
    node.add_call(rp.CBETH, abi.selector("exchangeRate()"), {100: words(E18)})
    node.script = ["429-long"]                    # HTTP 429 with Retry-After: 3600, more than the 5 s allowed
    rpc = client(node.url, retries=2, max_retry_after=5.0)
    with pytest.raises(FetchError, match=r"asks to wait 3600 s .*run the same command again later"):
        rpc_jobs.fetch_preset(rp.cbeth(), [100], tmp_path, rpc)
    assert len(node.requests) == 1                # refused at once, not slept on
    rpc_jobs.fetch_preset(rp.cbeth(), [100], tmp_path, rpc)      # run again later: it completes
    assert table(tmp_path, "exchange_rates")["rate"].to_list() == [1.0]


def test_a_block_beyond_the_head_and_a_node_refusing_batches(node, tmp_path):
    node.add_call(rp.CBETH, abi.selector("exchangeRate()"), {100: words(E18)})
    with pytest.raises(DataError, match=r"at block 999: the node answered error -32000: header not found"):
        rpc_jobs.fetch_preset(rp.cbeth(), [100, 999], tmp_path, client(node.url))
    with pytest.raises(DataError, match=r"rpc block 999: not found \(beyond the chain head\?\)"):
        rpc_jobs.fetch_preset(rp.blocks_only(), [100, 999], tmp_path, client(node.url))
    node.answer = lambda body, fault: {"jsonrpc": "2.0", "id": None,
                                       "error": {"code": -32600, "message": "batch requests are not supported"}}
    with pytest.raises(DataError, match=r"not supported \(does it take batch requests\? try --batch 1\)"):
        rpc_jobs.fetch_preset(rp.cbeth(), [100], tmp_path, client(node.url))


def test_cli_reads_a_morpho_market_at_each_of_its_liquidations(node, tmp_path, monkeypatch):
    mid = "0x" + "ab" * 32
    t0 = abi.topic("Liquidate(bytes32,address,address,uint256,uint256,uint256,uint256,uint256)")
    node.logs = [{"address": rp.MORPHO_BLUE, "topics": [t0, mid, "0x" + "0" * 64], "blockNumber": hex(b)}
                 for b in (104, 117)]
    node.logs.append({"address": rp.MORPHO_BLUE, "topics": [t0, "0x" + "cd" * 32], "blockNumber": hex(110)})
    loan, coll, orc, irm = ("0x" + c * 40 for c in "1234")
    sig = "borrowRateView((address,address,address,address,uint256),(uint128,uint128,uint128,uint128,uint128,uint128))"
    for b in (104, 117):
        node.add_call(rp.MORPHO_BLUE, abi.encode_call("idToMarketParams(bytes32)", mid),
                      {b: words(int(loan, 16), int(coll, 16), int(orc, 16), int(irm, 16), 86 * E18 // 100)})
        mk = (100 * E18, 100 * E18, 99 * E18, 99 * E18, T0, 0)
        node.add_call(rp.MORPHO_BLUE, abi.encode_call("market(bytes32)", mid), {b: words(*mk)})
        node.add_call(irm, abi.encode_call(sig, (loan, coll, orc, irm, 86 * E18 // 100), mk), {b: words(6_341_958_396)})
    monkeypatch.setenv("ETH_RPC_URL", node.url)
    r = CliRunner().invoke(cli, ["data", "fetch", "rpc", "morpho", "--market-id", mid, "--events", "morpho-liquidate",
                                 "--blocks", "100:129", "--protocol", "morpho-ezeth-86", "--into", str(tmp_path)])
    assert r.exit_code == 0, r.output
    rates = table(tmp_path, "rates").sort("block")
    assert rates["block"].to_list() == [104, 117]               # the other market's liquidation (110) left out
    assert rates["protocol"].unique().to_list() == ["morpho-ezeth-86"]
    assert rates["borrow_apr"].to_list() == [pytest.approx(0.2, rel=1e-8)] * 2   # 6.341958396e-9 x 31,536,000
    assert rates["utilization"].to_list() == [pytest.approx(0.99)] * 2          # 99 / 100


def test_event_scan_resumes_after_its_last_finished_window(tmp_path):
    node = RecordedNode({"blocks": {}})
    try:
        t0 = abi.topic("AccrueInterest(bytes32,uint256,uint256,uint256)")
        mid = "0x" + "ab" * 32
        node.logs = [{"address": rp.MORPHO_BLUE, "topics": [t0, mid], "blockNumber": hex(b)} for b in (5, 25, 45)]
        node.script = ["ok", "ok"] + ["500"] * 10                # HTTP 500 from the third window on
        with pytest.raises(FetchError, match="HTTP 500"):
            rpc_jobs.event_blocks(client(node.url, retries=1), "morpho-accrue", 0, 59, filter_on=mid, span=20,
                                  lake=tmp_path)
        node.requests.clear()
        node.script = []
        got = rpc_jobs.event_blocks(client(node.url), "morpho-accrue", 0, 59, filter_on=mid, span=20, lake=tmp_path)
        assert got == [5, 25, 45]
        asked = [r["params"][0]["fromBlock"] for body in node.requests for r in body]
        assert asked == [hex(40)]                 # windows 0-19 and 20-39 were kept from the first run
    finally:
        node.close()


def test_batches_reuse_one_connection(node, tmp_path):
    node.add_call(rp.CBETH, abi.selector("exchangeRate()"), {b: words(E18) for b in (100, 101, 102)})
    rpc = client(node.url)
    rpc_jobs.fetch_preset(rp.cbeth(), [100, 101, 102], tmp_path, rpc, chunk=1)
    assert rpc.posts == 3 and len(node.peers) == 3
    assert len(set(node.peers)) == 1              # keep-alive: the three POSTs on one TCP connection
