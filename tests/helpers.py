"""Small builders shared by the tests: hand-made markets and parameter rows."""
from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np

from backtest.data.market import Market
from backtest.engine import Lane, record_indices, run_core, run_reference_batch
from backtest.schema import EVENT_KINDS, PARAMS_DTYPE, PROTOCOL_NAMES, PROTOCOLS, SLIPPAGE, STRATEGIES, ENTRIES

FAR_FUTURE = 4_000_000_000


def market(prices, *, xrate=1.0, eth_usd=3000.0, borrow_apr=0.0, supply_apr=0.0, ltv=0.93, lt=0.95,
           bonus=0.01, pfee=0.10, gas=0.0, t0=1_700_000_000, dt=12, oracle_feed=np.nan, underlying_price=1.0,
           gas_token_price=1.0) -> Market:
    """prices: the collateral in the debt asset; eth_usd: USD per debt unit; underlying_price / gas_token_price:
    the collateral's underlying and the gas token in the debt asset (1.0: a WETH debt)."""
    prices = np.atleast_1d(np.asarray(prices, dtype=float))
    n = len(prices)
    return Market.from_arrays(n, ts=t0 + np.arange(n) * dt, block=20_000_000 + np.arange(n), price=prices,
                              xrate=xrate, eth_usd=eth_usd, borrow_apr=borrow_apr, supply_apr=supply_apr,
                              oracle_feed=oracle_feed, ltv=ltv, lt=lt, bonus=bonus, pfee=pfee, gas_gwei=gas,
                              underlying_price=underlying_price, gas_token_price=gas_token_price)


def usdc_market(eth_usd, *, xrate=1.2, usdc_usd=1.0, peg=1.0, **kw) -> Market:
    """An ETH LST against a USDC debt from an ETH/USD path (one value per block): the underlying and the gas
    token (ETH) cost ETH/USD / USDC/USD USDC, the token's market price is peg x xrate x that, and eth_usd (USD
    per debt unit) is USDC/USD."""
    eth = np.atleast_1d(np.asarray(eth_usd, dtype=float))
    up = eth / np.asarray(usdc_usd, dtype=float)
    return market(np.asarray(peg, dtype=float) * np.asarray(xrate, dtype=float) * up, xrate=xrate,
                  eth_usd=usdc_usd, underlying_price=up, gas_token_price=up, **kw)


def params(**kw) -> np.ndarray:
    """One PARAMS_DTYPE row: a costless loop unless told otherwise (names as in PARAMS_DTYPE, with
    protocol / kind / entry / slip_model given as names)."""
    p = np.zeros(1, dtype=PARAMS_DTYPE)
    base = dict(protocol="aave-v3", kind="loop", entry="stake", lane=0, loops=1, slip_model="none",
                reb_on=0, exit_on=0, exit_route=0, check_every=3600, queue_delay=86400, v33_from=FAR_FUTURE,
                unwind_at_end=0, capital=100.0, target_ltv=0.9, delev_below=0.0, target_hf=0.0,
                relev_above=math.inf, depeg_below=0.0, gas_gwei=0.0, gas_open=0.0, gas_loop=0.0, gas_reb=0.0,
                gas_close=0.0, swap_fee=0.0, slip_param=0.0, pool_depth=1e9, amp=50.0, flash_fee=0.0,
                cf_ovr=math.nan)
    base.update(kw)
    codes = {"protocol": PROTOCOLS, "kind": STRATEGIES, "entry": ENTRIES, "slip_model": SLIPPAGE}
    for k, v in base.items():
        p[0][k] = codes[k][v] if k in codes and isinstance(v, str) else v
    return p


def both(m: Market, p: np.ndarray, oracle: str = "market", record: int = 0, metric_every: int = 300,
         chunk: int = 256, capo=(0.0968, 7 * 86400)):
    """Run the core and the reference on the same inputs; return (core, reference) Outputs."""
    lanes = [Lane(oracle, capo[0], capo[1], PROTOCOL_NAMES[int(p[0]["protocol"])])]
    rec = record_indices(m, record)
    core = run_core(m, p, lanes, rec, metric_every, chunk)
    ref = run_reference_batch(m, p, lanes, rec, metric_every)
    return core, ref


def liq_events(out, i=0):
    """The liquidation events of configuration i."""
    ev = out.events[i]
    return ev[ev["kind"] == EVENT_KINDS["liquidation"]]


HOLLOW = "check returned a value that is not asserted: use assert"


def asserting(fn):
    """`fn` wrapped so that a check returning anything but None fails: `lambda out: x == approx(y)` builds a
    comparison and throws it away, so it could never fail; a check must assert (or call pytest.fail)."""
    def check(*args, **kw):
        result = fn(*args, **kw)
        if result is not None:
            raise AssertionError(f"{HOLLOW} (got {result!r} from {getattr(fn, '__qualname__', fn)})")
    return check


def check_both(m, p, fn, **kw):
    """Run both engines and apply the assertions `fn` to each (a check that returns a value fails)."""
    core, ref = both(m, p, **kw)
    check = asserting(fn)
    for out in (core, ref):
        check(out)
    return core, ref


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under root (hidden ones too) -> sha256 of its bytes ('dir' for folders): what a
    test compares to prove nothing was written or deleted."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for d in dirs:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = "dir"
        for f in files:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return out
