"""Price series base/quote from what the lake holds: the direct pair, its inverse, or a cross through a pivot.

Rules, first match wins (so a lake that holds the direct pair gives what it always gave):

1. the direct pair: ``prices`` rows base = BASE, quote = QUOTE (ETH and WETH are one asset in every match);
2. its inverse: rows QUOTE/BASE, taken as 1 / price;
3. a cross through one pivot P (USD, then ETH): BASE/QUOTE = BASE/P / QUOTE/P, each leg direct or inverse;
4. a chain through both pivots (USD then ETH, ETH then USD), e.g. wstETH/USDC = wstETH/WETH x WETH/USD / USDC/USD.

Each leg is an ordinary series: read with :class:`backtest.data.asof.Aligner` (``data check``'s rules, the
coverage rule, ``run.sources``), ASOF-joined onto the clock on its own, then the legs are combined block by
block. A derived series' label says how it was built (``Market.derived``: "wstETH/USDC = wstETH/USD /
USDC/USD"). A pair that none of the rules can build is a DataError naming the legs that are missing.
"""
from __future__ import annotations

from itertools import permutations

import numpy as np

from backtest.data import lake as _lake
from backtest.data.asof import ETH_LIKE, Aligner, aliases, same_asset
from backtest.errors import DataError

PIVOTS = ("USD", "ETH")
#: what a collateral's exchange rate is in, where it is not ETH (every other collateral is an ETH LST / LRT)
UNDERLYING = {"mSOL": "SOL", "jitoSOL": "SOL", "bSOL": "SOL", "stATOM": "ATOM"}


def underlying_of(token: str) -> str:
    """The asset a collateral token redeems for: ETH for an ETH LST / LRT, SOL for mSOL, ATOM for stATOM."""
    return UNDERLYING.get(token, "ETH")


def same_as(a: str, b: str) -> bool:
    """One asset (ETH = WETH): its price in the other is exactly 1."""
    return same_asset(a, b)


def _match(symbol: str) -> str | list[str]:
    return aliases(symbol) if symbol in ETH_LIKE else symbol


class PriceResolver:
    """Queues price series onto an :class:`Aligner` (before its join) and combines the legs after it."""

    def __init__(self, al: Aligner):
        self.al = al
        self._held: list[tuple[str, str]] | None = None
        self.plans: dict[str, list[tuple[str, bool]]] = {}    # name -> [(leg array, divide?)]
        self.derived: dict[str, str] = {}

    # -- what the lake holds ----------------------------------------------------------------------
    def held(self) -> list[tuple[str, str]]:
        if self._held is None:
            con = self.al.con
            self._held = (con.sql("SELECT DISTINCT base, quote FROM prices ORDER BY base, quote").fetchall()
                          if _lake.has_table(con, "prices") else [])
        return self._held

    def _pair(self, x: str, y: str) -> tuple[str, str] | None:
        """The lake's own spelling of the pair x/y (ETH = WETH), or None."""
        for b, q in self.held():
            if same_asset(b, x) and same_asset(q, y):
                return b, q
        return None

    def _hop(self, x: str, y: str) -> tuple[str, str, bool] | None:
        """(lake base, lake quote, inverse?) of one leg x -> y: the pair x/y, else y/x taken inverted."""
        p = self._pair(x, y)
        if p is not None:
            return p[0], p[1], False
        p = self._pair(y, x)
        return (p[0], p[1], True) if p is not None else None

    def route(self, base: str, quote: str) -> list[tuple[str, str, bool]] | None:
        """The legs of base/quote by the module's rules, or None."""
        paths: list[list[str]] = [[base, quote]]
        pivots = [p for p in PIVOTS if not same_asset(p, base) and not same_asset(p, quote)]
        paths += [[base, p, quote] for p in pivots]
        paths += [[base, p1, p2, quote] for p1, p2 in permutations(pivots, 2)]
        for path in paths:
            hops = [self._hop(x, y) for x, y in zip(path, path[1:])]
            if all(h is not None for h in hops):
                return hops
        return None

    # -- queueing ---------------------------------------------------------------------------------
    def queue(self, name: str, base: str, quote: str, why: str | None = None) -> None:
        """Queue base/quote as the array ``name`` (joined as ``name.v``)."""
        al = self.al
        key = f"{base}/{quote}"
        legs = self.route(base, quote)
        if legs is not None and len(legs) == 1 and not legs[0][2]:
            # the direct pair: read exactly as it always was
            pts = al.require(al.points("prices", key, {"base": _match(base), "quote": aliases(quote)},
                                       [("v", "price")], source=True), "prices", key)
            al.use(pts)
            al.add(name, pts)
            return
        if legs is None:
            raise DataError(self._missing(base, quote, why))
        plan, text = [], []
        for i, (b, q, inv) in enumerate(legs):
            leg_key = f"{b}/{q}"
            pts = al.require(al.points("prices", leg_key, {"base": b, "quote": q}, [("v", "price")], source=True),
                             "prices", leg_key)
            al.use(pts)
            leg = f"{name}~{i}"
            al.add(leg, pts)
            plan.append((leg, inv))
            text.append((" / " if inv else " x ") + leg_key if i else (f"1 / {leg_key}" if inv else leg_key))
        label = f"{key} = {''.join(text)}"
        self.plans[name] = plan
        self.derived[name] = label
        al.labels[name] = f"prices {label}"

    def _missing(self, base: str, quote: str, why: str | None) -> str:
        need = f" ({why})" if why else ""
        have = lambda x, y: self._hop(x, y) is not None          # noqa: E731
        legs = [f"{x}/{y} {'is there' if have(x, y) else 'is missing'}" for x, y in ((base, "USD"), (quote, "USD"))]
        return (f"prices {base}/{quote}: no data in the lake at {self.al.lake} for this series{need}, nor its "
                f"inverse {quote}/{base}, nor a cross through USD or ETH ({', '.join(legs)}); add {base}/{quote}, "
                f"or {base}/USD and {quote}/USD")

    def queue_oracle(self, name: str, protocol: str, asset: str, quote: str) -> None:
        """The protocol oracle's asset/quote: its own rows, else asset/USD and quote/USD rows, divided."""
        al = self.al
        key = f"{protocol}:{asset}/{quote}"
        pts = al.points("oracle_prices", key, {"protocol": protocol, "asset": asset, "quote": aliases(quote)},
                        [("v", "price")], source=False)
        if pts is not None:
            al.use(al.require(pts, "oracle_prices", key))
            al.add(name, pts)
            return
        legs = []
        for a in (asset, quote):
            k = f"{protocol}:{a}/USD"
            legs.append((k, al.points("oracle_prices", k, {"protocol": protocol, "asset": _match(a), "quote": "USD"},
                                      [("v", "price")], source=False)))
        if any(p is None for _, p in legs):
            raise DataError(f"oracle_prices {key}: no data in the lake at {al.lake} for this series (nor "
                            f"{legs[0][0].split(':', 1)[1]} and {legs[1][0].split(':', 1)[1]} rows to divide)")
        plan = []
        for i, (k, p) in enumerate(legs):
            al.use(al.require(p, "oracle_prices", k))
            al.add(f"{name}~{i}", p)
            plan.append((f"{name}~{i}", i == 1))
        self.plans[name] = plan
        self.derived[name] = f"{key} = {legs[0][0]} / {legs[1][0]}"
        al.labels[name] = f"oracle_prices {self.derived[name]}"

    # -- combining --------------------------------------------------------------------------------
    def combine(self, arr: dict[str, np.ndarray]) -> dict[str, str]:
        """Put each derived series into ``arr`` as ``name.v`` (legs multiplied or divided block by block);
        returns {array name: how it was derived}."""
        for name, plan in self.plans.items():
            v = None
            for leg, inv in plan:
                x = arr.pop(f"{leg}.v")
                v = (1.0 / x if inv else x) if v is None else (v / x if inv else v * x)
            arr[f"{name}.v"] = v
        return dict(self.derived)
