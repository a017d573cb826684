"""Accounting invariants of a finished run (and, in tests, of every recorded block).

Checked from the engines' own outputs (summary, events, records), so either engine is held to them:

* balances: equity = collateral tokens x price - debt + cash, marked at the market price (``end_equity``)
  and at the exchange rate x the underlying's price (``end_equity_rate``); no negative collateral or debt
  beyond the dust. Cash is the wallet's net flow, not a balance: both engines pay gas from it after the
  capital is invested (an out-of-pocket cost inside equity), so it may be below zero and is not checked;
* flow: the change of the rate-marked equity over the run = staking yield + supply yield - interest - costs
  (gas, swap fee, slippage, flash fee) - liquidation loss at fair value (seized tokens at the exchange rate
  minus debt repaid; bad debt written off counts back) + the mark-to-market of the discount on every trade
  (tokens bought or sold at the market price but held at the exchange rate: coll x (rate - price)). Bought
  through the staking route, tokens cost the exchange rate (no discount term). Restaking rewards are reported
  beside equity, not inside it, so they are not a term here.

Tolerance: 1e-9 relative to the run's scale (capital plus the gross terms). A failure is an InvariantError
naming the configuration (and block). Where a run's events do not say enough to split a flow, the flow check
is skipped and says so (``flow_residual`` returns None): a queue exit that repaid debt (the part sold on the
DEX is not in its event), a Compound v3 absorb (the excess credited as cash is not in its event), and a
market whose underlying price moves (a USDC debt: the underlying's mark-to-market needs every block).
"""
from __future__ import annotations

import numpy as np

from backtest.errors import BacktestError
from backtest.schema import ENTRIES, EVENT_KINDS, EXIT_ROUTES, PROTOCOLS, STRATEGIES

REL = 1e-9
DUST_REL = 1e-12
_TRADES = {EVENT_KINDS[k] for k in ("open", "loop", "rebalance", "exit", "unwind")}
_LIQ, _BAD, _EXIT = EVENT_KINDS["liquidation"], EVENT_KINDS["bad_debt"], EVENT_KINDS["exit"]
_COMET = PROTOCOLS["compound-v3"]
# the strategy kinds whose accounting these rules describe (and the tests hold both engines to); a kind added
# later (its own assets and events) is not checked until its rules are written here
CHECKED_KINDS = tuple(STRATEGIES[k] for k in ("hold", "lend", "loop", "flash-loan"))


class InvariantError(BacktestError):
    """An accounting invariant failed: a bug in an engine, never the user's input (exit code 1)."""


def _close(a: float, b: float, scale: float) -> bool:
    return abs(a - b) <= REL * max(scale, 1e-300) or a == b


def balance_failures(coll, debt, cash, price, rate_value, equity, equity_rate, capital):
    """Indices (of the arrays given, one entry per run or per block) where a balance invariant fails, with
    the reason."""
    coll, debt, cash = (np.asarray(x, dtype=np.float64) for x in (coll, debt, cash))
    scale = np.abs(coll * rate_value) + np.abs(coll * price) + np.abs(debt) + np.abs(cash) + np.asarray(capital)
    dust = DUST_REL * np.asarray(capital)
    out = []
    checks = (
        ("equity != collateral x market price - debt + cash", equity, coll * price - debt + cash),
        ("equity at the exchange rate != collateral x rate - debt + cash", equity_rate,
         coll * rate_value - debt + cash),
    )
    for why, got, want in checks:
        bad = ~(np.abs(np.asarray(got) - want) <= REL * scale) & ~(np.asarray(got) == want)
        out += [(int(i), why) for i in np.flatnonzero(bad)]
    for name, v in (("collateral", coll), ("debt", debt)):
        out += [(int(i), f"negative {name} {float(v[i])!r}") for i in np.flatnonzero(v < -dust)]
    return sorted(out)


def check_summaries(summaries: np.ndarray, market, params: np.ndarray, names: list[str],
                    pair_path: np.ndarray | None = None, factor=None) -> None:
    """The end-of-run balances of every row (row i named names[i]); with paths, the last price is the path's
    (factor: Paths or None). Raises InvariantError at the first failure."""
    s = summaries
    n = len(s)
    if n == 0:
        return
    last = len(market) - 1
    price = np.full(n, float(market.price[last]))
    rv = float(market.xrate[last]) * float(market.underlying_price[last])
    if pair_path is not None and factor is not None and factor.by_market:
        from backtest.paths import last_marks      # the path's own rate, ETH/USD: its market's last block

        price, rv = last_marks(market, factor, pair_path)
    elif pair_path is not None and factor is not None:
        price = price * factor.price_factor[np.asarray(pair_path), factor.sample_idx[last]]
    rows_p = params if len(params) == n else np.repeat(params, n // max(len(params), 1))
    cap = rows_p["capital"]
    fails = balance_failures(s["end_collateral"], s["end_debt"], s["end_cash"], price, rv, s["end_equity"],
                             s["end_equity_rate"], cap)
    fails = [f for f in fails if int(rows_p["kind"][f[0]]) in CHECKED_KINDS]
    if fails:
        i, why = fails[0]
        raise InvariantError(f"accounting invariant failed for {names[i]} at the last block "
                             f"(block {int(market.block[last])}): {why}")


def constant_underlying(market) -> bool:
    """Whether the underlying's price in the debt asset never moves (the flow check needs it)."""
    up = np.asarray(market.underlying_price)
    return bool(np.all(up == up[0]))


def flow_residual(summary, events: np.ndarray, market, p, equity_rate: float | None = None,
                  constant: bool | None = None) -> float | None:
    """(end equity at the exchange rate - capital) minus the flow terms of the module docstring; None where
    the events cannot split the flow. Mid-run (tests): equity_rate at a block, the summary's running totals
    and the events up to that block. ``constant``: :func:`constant_underlying`, computed once per market by a
    caller checking many configurations (it reads every block)."""
    if int(p["kind"]) not in CHECKED_KINDS:
        return None
    if not (constant_underlying(market) if constant is None else constant):
        return None
    # the exchange rate's value, read only at the events' blocks (a whole-array product per configuration
    # cost more than the replay)
    xr, up, px = np.asarray(market.xrate), np.asarray(market.underlying_price), np.asarray(market.price)
    stake = int(p["entry"]) == ENTRIES["stake"]
    queue = int(p["exit_route"]) == EXIT_ROUTES["queue"]
    discount = 0.0
    liq_loss = 0.0
    for e in events:
        b, k, c, d = int(e["idx"]), int(e["kind"]), float(e["coll"]), float(e["debt"])
        if k in (_LIQ, _BAD):
            if k == _LIQ and int(p["protocol"]) == _COMET:
                return None
            liq_loss -= c * (xr[b] * up[b]) - d
        elif k in _TRADES:
            if k == _EXIT and queue:
                if d != 0.0:
                    return None
                continue                          # queued at the exchange rate: no discount
            if c > 0 and stake:
                continue
            discount += c * (xr[b] * up[b] - px[b])
    costs = summary["gas_cost"] + summary["swap_fee_cost"] + summary["slippage_cost"] + summary["flash_fee_cost"]
    flows = summary["staking_yield"] + summary["supply_yield"] - summary["interest_paid"] - costs
    eq = summary["end_equity_rate"] if equity_rate is None else equity_rate
    return float(eq - p["capital"] - (flows - liq_loss + discount))


def flow_scale(summary, p) -> float:
    return float(p["capital"] + abs(summary["staking_yield"]) + abs(summary["interest_paid"])
                 + abs(summary["end_collateral"]) * 1.0 + abs(summary["end_debt"]) + abs(summary["liq_debt_repaid"]))


def check_flow(summary, events, market, p, name: str, constant: bool | None = None) -> bool:
    """True when checked, False when the events cannot split the flow; InvariantError when it fails."""
    r = flow_residual(summary, events, market, p, constant=constant)
    if r is None:
        return False
    scale = flow_scale(summary, p)
    if not abs(r) <= REL * scale:
        raise InvariantError(f"accounting invariant failed for {name} over the run (to block "
                             f"{int(market.block[-1])}): the change in equity differs from staking yield + "
                             f"supply yield - interest - costs - liquidation loss + discount by {r!r}")
    return True


def check_records(records: np.ndarray, rec_idx: np.ndarray, market, capital: float, name: str) -> None:
    """Every recorded block's balances (records [samples, N_RECORD], RECORD_FIELDS order)."""
    from backtest.schema import RECORD_FIELDS

    f = {k: records[:, i] for i, k in enumerate(RECORD_FIELDS)}
    rv = f["exchange_rate"] * np.asarray(market.underlying_price)[rec_idx]
    fails = balance_failures(f["collateral"], f["debt"], f["cash"], f["market_price"], rv, f["equity"],
                             f["equity_rate"], np.full(len(rec_idx), capital))
    if fails:
        i, why = fails[0]
        raise InvariantError(f"accounting invariant failed for {name} at block {int(market.block[rec_idx[i]])}: "
                             f"{why}")
