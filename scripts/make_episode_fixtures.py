"""Write the SYNTHETIC episode fixtures under tests/fixtures/episodes/ (run from the repo root):

    PYTHONPATH=$PWD python scripts/make_episode_fixtures.py

Each episode gets ``node.json.gz`` (the replies a JSON-RPC node would give to the fetch commands listed in the
episode's example, ABI-encoded: block times, eth_call results, ReserveDataUpdated logs) and, where the example
imports Dune results, small CSVs in Dune's export format. The values are MADE UP: paths shaped after the facts
PROTOCOLS.md documents (ezETH's oracle below 0.8 on 24 Apr 2024, the CAPO cap 2.85 % below wstETH's rate on
10 Mar 2026, WETH borrow rates above 20 % / 10 % in July 2024 / July 2025), not recorded from a node or Dune.
Block times are anchor + 12 s per block (the real chain has missed slots). The point is the pipeline:
fetch / import -> lake -> replay, in CI, without a node.
"""
from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

from backtest.data.sources import abi, rpc_presets as rp

OUT = Path("tests/fixtures/episodes")
E18, RAY, YEAR, H = 10 ** 18, 10 ** 27, 365 * 86400, 3600

# the real mainnet values (backtest/data/sources/mainnet.py cites where each was found): the fixtures answer
# the example commands, which name them; what the contracts return here is still made up
MARKET_86 = rp.MORPHO_EZETH_WETH_86
MARKET_77 = rp.MORPHO_EZETH_WETH_77
MORPHO_IRM = rp.MORPHO_ADAPTIVE_CURVE_IRM
EZETH_ORACLE = rp.MORPHO_EZETH_ORACLE
CAPO_WSTETH = rp.AAVE_V3_WSTETH_CAPO
UNI_WSTETH_WETH = rp.UNISWAP_V3_WSTETH_WETH

def w(*vs: int) -> str:
    return "0x" + "".join((int(v) % (1 << 256)).to_bytes(32, "big").hex() for v in vs)


class Rec:
    def __init__(self, anchor_block: int, anchor_ts: int):
        self.b0, self.t0 = anchor_block, anchor_ts
        self.blocks: dict[int, int] = {}
        self.calls: dict[tuple[str, str], dict[int, str]] = {}
        self.logs: list[dict] = []

    def ts(self, b: int) -> int:
        self.blocks[b] = self.t0 + 12 * (b - self.b0)
        return self.blocks[b]

    def call(self, to: str, data: str, b: int, result: str) -> None:
        self.calls.setdefault((to, data), {})[b] = result

    def dump(self, folder: Path, note: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        doc = {"_note": note, "blocks": {str(k): v for k, v in sorted(self.blocks.items())},
               "calls": [{"to": to, "data": data, "results": {str(k): v for k, v in sorted(r.items())}}
                         for (to, data), r in self.calls.items()],
               "logs": self.logs}
        # gzip: the replies are mostly zero-padded hex words (a few MB as text, ~10 x less packed)
        data = (json.dumps(doc, indent=0, sort_keys=True) + "\n").encode()
        (folder / "node.json.gz").write_bytes(gzip.compress(data, mtime=0))


def hourly(b0: int, hours: int, every: int = 300) -> list[int]:
    return [b0 + every * k for k in range(-1, hours + 1)]


def uni_slot0(rec: Rec, pool: str, b: int, price: float) -> None:
    rec.call(pool, abi.encode_call("slot0()"), b, w(int(math.sqrt(price) * 2 ** 96), 0, 0, 0, 0, 0, 1))


def reserve(rec: Rec, asset: str, b: int, borrow: float, supply: float, t: float) -> None:
    # getReserveData: configuration, liquidityIndex, currentLiquidityRate, variableBorrowIndex,
    # currentVariableBorrowRate, currentStableBorrowRate, lastUpdateTimestamp (7 of its 15 words)
    rec.call(rp.AAVE_V3_POOL, abi.encode_call("getReserveData(address)", asset), b,
             w(0, int(RAY * (1.04 + supply * t / YEAR)), int(RAY * supply), int(RAY * (1.05 + borrow * t / YEAR)),
               int(RAY * borrow), 0, 0))


def eth_usd(rec: Rec, b: int, t: int, price: float) -> None:
    # Chainlink ETH/USD latestRoundData (roundId, answer, startedAt, updatedAt, answeredInRound), 8 decimals
    rec.call(rp.CHAINLINK_ETH_USD, abi.encode_call("latestRoundData()"), b, w(b, int(price * 1e8), t - 30, t - 30, b))
    rec.call(rp.CHAINLINK_ETH_USD, abi.encode_call("decimals()"), b, w(8))


def wsteth_rate(rec: Rec, b: int, rate: float) -> None:
    rec.call(rp.WSTETH, abi.encode_call("stEthPerToken()"), b, w(int(rate * E18)))


# ------------------------------------------------------------------------------------------ ezETH 2024
def ezeth_2024() -> None:
    b0, t0 = 19_714_372, 1_713_830_400           # 2024-04-23 00:00 UTC (anchor), 4 days hourly
    rec = Rec(b0, t0)
    crash = t0 + 45 * H                           # 2024-04-24 21:00 UTC

    def oracle(t: int) -> float:               # the market's oracle: below 0.8 for about an hour
        path = {0: 0.955, 1: 0.86, 2: 0.795, 3: 0.83, 4: 0.93, 5: 0.97}
        k = (t - crash) // H
        return path.get(k, 1.006 if k < 0 else 0.985)

    def dex(t: int) -> float:                  # the Balancer pool: far lower, for longer
        x = (t - crash) / H
        return 1.004 if x < 0 else 1.004 - 0.38 * math.exp(-((x - 2.0) / 1.2) ** 2) - (0.03 if x < 12 else 0.0)

    params = {m: w(int(rp.WETH, 16), int(rp.EZETH, 16), int(EZETH_ORACLE, 16), int(MORPHO_IRM, 16), lltv)
              for m, lltv in ((MARKET_86, 86 * E18 // 100), (MARKET_77, 77 * E18 // 100))}
    sig = f"borrowRateView({rp.MORPHO_MARKET[0]},{rp.MORPHO_MARKET[1]})"
    for b in hourly(b0, 96):
        t = rec.ts(b)
        rate = 1.0120 + 0.0000015 * (t - t0) / H
        rec.call(rp.RENZO_RESTAKE_MANAGER, abi.encode_call("calculateTVLs()"), b,
                 w(0x60, 0x80, int(rate * 900_000 * E18), 0, 0))
        rec.call(rp.EZETH, abi.encode_call("totalSupply()"), b, w(900_000 * E18))
        rec.call(EZETH_ORACLE, abi.encode_call("price()"), b, w(int(oracle(t) * 1e18) * 10 ** 18))
        stress = 0 <= t - crash < 6 * H
        for m, (u, apr) in ((MARKET_86, (0.995 if stress else 0.91, 0.16 if stress else 0.045)),
                            (MARKET_77, (0.97 if stress else 0.90, 0.09 if stress else 0.04))):
            rec.call(rp.MORPHO_BLUE, abi.encode_call("idToMarketParams(bytes32)", m), b, params[m])
            mk = (10_000 * E18, 10_000 * E18, int(u * 10_000) * E18, int(u * 10_000) * E18, t - 60, 0)
            rec.call(rp.MORPHO_BLUE, abi.encode_call("market(bytes32)", m), b, w(*mk))
            mp = (rp.WETH, rp.EZETH, EZETH_ORACLE, MORPHO_IRM, int(params[m][-64:], 16))
            rec.call(MORPHO_IRM, abi.encode_call(sig, mp, mk), b, w(int(apr / YEAR * E18)))
    folder = OUT / "ezeth-morpho-2024"
    rec.dump(folder, "SYNTHETIC fixture (scripts/make_episode_fixtures.py): not real history")
    lines = ["minute,price"]
    for k in range(-6, 4 * 24 * 6 + 1):          # every 10 minutes (a minute query, thinned)
        t = t0 + 600 * k
        lines.append(f"{_dune_time(t)},{dex(t):.6f}")
    (folder / "dune-5299669-ezeth-balancer.csv").write_text("\n".join(lines) + "\n")
    liq = {0: (0, 0, 0, 0), 1: (138, 9_800.0, 8_100.0, 65.0), 2: (12, 410.0, 350.0, 0.0), 3: (1, 20.0, 17.0, 0.0)}
    lines = ["day,liquidations,seized_ezeth,repaid_weth,bad_debt_weth"]
    for d, (n, s, r, bd) in liq.items():
        lines.append(f"{_dune_time(t0 + d * 86400)},{n},{s},{r},{bd}")
    (folder / "dune-5323305-morpho-liquidations.csv").write_text("\n".join(lines) + "\n")


def _dune_time(t: int) -> str:
    import datetime as dt
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.000 UTC")


# ------------------------------------------------------------------------------------------ CAPO 2026
def capo_2026() -> None:
    b0, t0 = 24_617_440, 1_772_928_000           # 2026-03-08 00:00 UTC (anchor estimated from 12 s blocks)
    rec = Rec(b0, t0)
    bad_from, bad_to = t0 + 2 * 86400 + 8 * H, t0 + 2 * 86400 + 14 * H     # 10 Mar 08:00-14:00: mis-set snapshot
    g = 0.0968
    for b in hourly(b0, 96):
        t = rec.ts(b)
        day = (t - t0 + 12 * H) // 86400          # the Lido report steps the rate at ~12:00 UTC
        rate = 1.2250 + 0.00009 * day
        eth = 2000.0 + 40.0 * math.sin((t - t0) / (9 * H))
        if bad_from <= t < bad_to:
            snap_ts = t0 - 7 * 86400
            cap = rate * (1 - 0.0285)
            snap = cap / (1 + g * (t - snap_ts) / YEAR)
        else:
            snap_ts = t0 - 9 * 86400
            snap = rate - 0.002
            cap = snap * (1 + g * (t - snap_ts) / YEAR)
        priced = min(rate, cap)
        wsteth_rate(rec, b, rate)
        uni_slot0(rec, UNI_WSTETH_WETH, b, rate * 0.9996)
        rec.call(rp.AAVE_V3_ORACLE, abi.encode_call("getAssetPrice(address)", rp.WSTETH), b, w(int(priced * eth * 1e8)))
        rec.call(rp.AAVE_V3_ORACLE, abi.encode_call("getAssetPrice(address)", rp.WETH), b, w(int(eth * 1e8)))
        for sig, v in (("latestAnswer()", int(priced * eth * 1e8)), ("decimals()", 8), ("getRatio()", int(rate * E18)),
                       ("getSnapshotRatio()", int(snap * E18)), ("getSnapshotTimestamp()", snap_ts),
                       ("getMaxRatioGrowthPerSecond()", int(snap * E18 * g / YEAR))):
            rec.call(CAPO_WSTETH, abi.encode_call(sig), b, w(v))
        reserve(rec, rp.WETH, b, 0.024, 0.019, t - t0)
        reserve(rec, rp.WSTETH, b, 0.004, 0.0007, t - t0)
        eth_usd(rec, b, t, eth)
    rec.dump(OUT / "capo-2026", "SYNTHETIC fixture (scripts/make_episode_fixtures.py): not real history")


# ------------------------------------------------------------------------------------------ rate spikes
def spike(name: str, b0: int, t0: int, days: int, peak_from: int, peak_h: int, peak: float, base: float,
          emode_rate: float) -> None:
    rec = Rec(b0, t0)
    topic0 = abi.topic("ReserveDataUpdated(address,uint256,uint256,uint256,uint256,uint256)")
    reserve_topic = "0x" + rp.WETH.lower()[2:].rjust(64, "0")
    every = 150                                   # a ReserveDataUpdated every 30 minutes
    for k in range(-2, days * 24 * 2 + 1):
        b = b0 + every * k + 7                    # off the hour: the event's own block
        t = rec.ts(b)
        x = (t - peak_from) / H
        borrow = peak if 0 <= x < peak_h else base + (0.004 if -3 < x < peak_h + 3 else 0.0)
        reserve(rec, rp.WETH, b, borrow, borrow * 0.8, t - t0)
        rec.logs.append({"address": rp.AAVE_V3_POOL, "topics": [topic0, reserve_topic], "blockNumber": hex(b),
                         "removed": False})
    for b in hourly(b0, days * 4, every=1800):   # every 6 h: exchange rate, DEX price, wstETH reserve
        t = rec.ts(b)
        day = (t - t0 + 12 * H) // 86400
        rate = emode_rate + 0.00009 * day
        wsteth_rate(rec, b, rate)
        uni_slot0(rec, UNI_WSTETH_WETH, b, rate * 0.9995)
        reserve(rec, rp.WSTETH, b, 0.003, 0.0005, t - t0)
        eth_usd(rec, b, t, 3000.0 + 50.0 * math.sin((t - t0) / (11 * H)))
    rec.dump(OUT / name, "SYNTHETIC fixture (scripts/make_episode_fixtures.py): not real history")


def main(out: Path | None = None) -> None:
    global OUT
    if out is not None:
        OUT = Path(out)
    ezeth_2024()
    capo_2026()
    # July 2024: above 20 % for about a day (5 Jul); July 2025: above 10 % for 6 hours (17 Jul, inside the day)
    spike("rate-spike-2024", 20_222_263, 1_719_964_800, 5, 1_719_964_800 + 2 * 86400 + 1 * H, 20, 0.24, 0.029, 1.17)
    spike("rate-spike-2025", 22_906_533, 1_752_364_800, 8, 1_752_364_800 + 4 * 86400 + 14 * H, 6, 0.12, 0.022, 1.21)


if __name__ == "__main__":
    main()
