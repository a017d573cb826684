"""The strategy book's config keys: [strategy.lp], [strategy.vault], [strategy.basket], [strategy.farm].

Each kind needs its own table (``kind = "lp"`` without [strategy.lp] is refused, naming the table and its
required keys); a table of another kind is refused too, so a config reads as the one strategy it defines.
"""
from __future__ import annotations

from typing import Any, Mapping

from backtest.config.fields import Context, number, parse_duration, string
from backtest.config_types import BasketConfig, BookConfig, FarmConfig, LpConfig, VaultConfig

BOOK_KINDS = ("basket", "lp", "vault", "farm")
VAULT_OVER = ("lend", "loop")
VAULT_VENUES = ("aave-v3", "aave-v2", "spark")
MAX_BASKET = 8


def weights(ctx: Context, path: tuple, v: Any) -> tuple[tuple[str, float], ...]:
    """[strategy.basket] weights = { stETH = 0.5, rETH = 0.3, mSOL = 0.2 }: 1 to 8 tokens, > 0, summing to 1."""
    if not isinstance(v, Mapping) or not v:
        raise ctx.fail(path, "must be a table of token = weight, e.g. { wstETH = 0.5, rETH = 0.3, mSOL = 0.2 }", v)
    if len(v) > MAX_BASKET:
        raise ctx.fail(path, f"{len(v)} tokens; a basket holds at most {MAX_BASKET}", v)
    parse = number(0, 1, lo_open=True)
    out = tuple((str(k), parse(ctx, path + (k,), x)) for k, x in v.items())
    total = sum(w for _, w in out)
    if abs(total - 1.0) > 1e-9:
        raise ctx.fail(path, f"the weights sum to {total:g}, not 1", v)
    return out


def book_rules(ctx: Context, kind: str, strat_t: Mapping, fields, market=None,
               market_t: Mapping | None = None) -> BookConfig | None:
    """The book table of ``kind`` read against its section (``fields`` = schema.section_fields)."""
    present = [k for k in BOOK_KINDS if k in strat_t]
    for k in present:
        if k != kind:
            raise ctx.fail(("strategy", k), f"[strategy.{k}] belongs to kind = \"{k}\", not kind = \"{kind}\"")
    if kind not in BOOK_KINDS:
        return None
    if kind not in strat_t:
        need = {"lp": "pool, lp_token", "vault": "over", "basket": "weights", "farm": "reward_token, exit_after"}[kind]
        raise ctx.fail(("strategy", kind), f"kind = \"{kind}\" needs a [strategy.{kind}] table (at least {need})")
    path = ("strategy", kind)
    t = strat_t[kind]
    if not isinstance(t, Mapping):
        raise ctx.fail(path, f"must be a table; write it as [strategy.{kind}]", t)
    f = fields(ctx, dict(t), path, f"strategy.{kind}")
    if kind == "lp":
        return BookConfig(lp=LpConfig(**f))
    if kind == "vault":
        # the vault's kernel liquidates by Aave's close-factor rule at the exchange rate (ext/_book.pxi)
        if market is not None and market.protocol not in VAULT_VENUES:
            raise ctx.fail(("market", "protocol"), f"kind = \"vault\" replays Aave's liquidation rule: use one of "
                                                   f"{', '.join(VAULT_VENUES)}", market.protocol)
        if market is not None and market.oracle != "exchange-rate":
            raise ctx.fail(("market", "oracle"), 'kind = "vault" marks and liquidates at the exchange rate: use '
                                                 '"exchange-rate"', market.oracle)
        return BookConfig(vault=VaultConfig(**f))
    if kind == "basket":
        return BookConfig(basket=BasketConfig(**f))
    if f.get("sell_every", 1) <= 0:
        raise ctx.fail(path + ("sell_every",), "must be a duration > 0", t.get("sell_every"))
    return BookConfig(farm=FarmConfig(**f))


def lp_amp(ctx: Context, path: tuple, v: Any) -> float:
    x = number(0, 1e6, lo_open=True)(ctx, path, v)
    return x


__all__ = ["BOOK_KINDS", "VAULT_OVER", "book_rules", "weights", "string", "parse_duration", "lp_amp"]
