"""``backtest data fetch rpc balancer-stable``: a Balancer v2 stable / ComposableStable pool's spot price at a
block, from three ``eth_call`` s: the Vault's ``getPoolTokens(poolId)`` (tokens, raw balances), the pool's
``getAmplificationParameter()`` (A x precision) and ``getScalingFactors()`` (10^(18 - decimals) x the cached
token rate, 1e18). A ComposableStable pool lists its own BPT among its tokens (the pool address = the first 20
bytes of the pool id): it is left out of the invariant, as the pool itself does.

The math is StableMath's (balancer-labs/balancer-v2-monorepo, pkg/pool-stable/contracts/StableMath.sol): with
``amp`` = A n^(n-1) and the upscaled balances x_k, the invariant D solves

    amp n S + D = amp n D + D^(n+1) / (n^n P)          (S = sum x_k, P = product x_k)

(found by Balancer's Newton iteration, in integers, as ``_calculateInvariant`` does). At constant D the marginal
price of token b in token q is the ratio of the partial derivatives, amp n + D_P / x_k with D_P = D^(n+1) /
(n^n P):

    dq/db = (amp n + D_P / x_b) / (amp n + D_P / x_q)   in upscaled units,

times scaling_b / scaling_q x 10^(dec_b - dec_q) in whole tokens (for 18-decimal tokens: rate_b / rate_q).
That is the spot price before the swap fee (what an infinitesimal trade gets), not a quote for a size.
"""
from __future__ import annotations

import math
from typing import Any

from backtest.data.sources.abi import encode_call, word_address
from backtest.errors import DataError, InputError

#: Balancer v2 Vault, Ethereum mainnet (karpatkey/defi-kit app/pages/learn/protocols/balancer_v2/ethereum.mdx;
#: the same address on every chain Balancer v2 is on)
BALANCER_VAULT = "0xBA12222222228d8Ba445958a75a0704d566BF2C8"
#: the ezETH/WETH ComposableStable pool of the April 2024 de-peg (karpatkey/defi-kit
#: sdk/src/protocols/balancer/v2/_ethPools.ts: "ezETH-WETH-BPT", type ComposableStable; the pool Gauntlet's
#: 2024-08-06 Compound review lists as ezETH's largest, balancer 0x596192bb...)
EZETH_WETH_POOL_ID = "0x596192bb6e41802428ac943d2f1476c1af25cc0e000000000000000000000659"
AMP_PRECISION = 1000


def invariant(amp_precise: int, xs: list[int], precision: int = AMP_PRECISION) -> int:
    """StableMath ``_calculateInvariant`` (rounding down): D for upscaled balances ``xs``; ``amp_precise`` =
    A n^(n-1) x ``precision`` (what ``getAmplificationParameter`` returns first)."""
    n, s = len(xs), sum(xs)
    if s == 0:
        return 0
    if min(xs) <= 0:
        raise DataError("balancer stable pool: a token balance is zero; no price")
    d, ann = s, amp_precise * n
    for _ in range(255):
        d_p = d
        for x in xs:
            d_p = d_p * d // (x * n)
        prev = d
        d = ((ann * s // precision + d_p * n) * d) // ((ann - precision) * d // precision + (n + 1) * d_p)
        if abs(d - prev) <= 1:
            return d
    raise DataError("balancer stable pool: the invariant did not converge (StableMath gives up after 255 rounds)")


def spot_price(amp_precise: int, xs: list[int], i: int, j: int, precision: int = AMP_PRECISION) -> float:
    """Marginal price of token ``i`` in token ``j`` (upscaled units) on the stable invariant at ``xs``."""
    n = len(xs)
    d = invariant(amp_precise, xs, precision)
    ann = amp_precise / precision * n
    # D_P = D^(n+1) / (n^n prod x) = D x prod(D / (n x_k)): a product of numbers near 1, no overflow
    d_p = float(d) * math.prod(d / (n * x) for x in xs)
    return (ann + d_p / xs[i]) / (ann + d_p / xs[j])


def _array(words: list[int], at: int, what: str, block: int) -> list[int]:
    """A dynamic uint / address array whose offset (bytes) is word ``at`` of an ABI-encoded return."""
    try:
        start = words[at] // 32
        n = words[start]
        out = words[start + 1: start + 1 + n]
    except IndexError:
        out, n = [], 1
    if len(out) != n or n > 64:
        raise DataError(f"rpc balancer {what} at block {block}: malformed dynamic array in the reply")
    return out


def balancer_stable(pool_id: str | None = None, base: str = "ezETH", quote: str = "WETH",
                    vault: str | None = None, decimals_base: int = 18, decimals_quote: int = 18):
    """The preset: prices BASE/QUOTE (QUOTE per BASE) from the pool ``pool_id`` at every block."""
    from backtest.data.sources.rpc_presets import Call, Preset, _need, _oracle_series, resolve_token

    pid = (pool_id or EZETH_WETH_POOL_ID).lower()
    if len(pid) != 66 or not pid.startswith("0x"):
        raise InputError(f"--pool-id {pool_id!r}: a Balancer pool id is 0x + 64 hex digits")
    pool = "0x" + pid[2:42]
    vault = vault or BALANCER_VAULT
    base_addr, quote_addr = resolve_token(base).lower(), resolve_token(quote).lower()
    calls = [Call("tokens", vault, encode_call("getPoolTokens(bytes32)", pid)),
             Call("amp", pool, encode_call("getAmplificationParameter()")),
             Call("scaling", pool, encode_call("getScalingFactors()"))]

    def decode(block: int, got: dict[str, list[int]]) -> dict[str, Any]:
        w = _need(got["tokens"], 3, "balancer getPoolTokens", block)
        tokens = [word_address(t) for t in _array(w, 0, "getPoolTokens tokens", block)]
        balances = _array(w, 1, "getPoolTokens balances", block)
        scaling = _array(_need(got["scaling"], 2, "balancer getScalingFactors", block), 0, "getScalingFactors",
                         block)
        amp, _updating, precision = _need(got["amp"], 3, "balancer getAmplificationParameter", block)[:3]
        if not (len(tokens) == len(balances) == len(scaling)):
            raise DataError(f"rpc balancer pool {pid[:10]} at block {block}: {len(tokens)} tokens, "
                            f"{len(balances)} balances, {len(scaling)} scaling factors")
        keep = [k for k, t in enumerate(tokens) if t != pool]          # the BPT is not in the invariant
        for sym, addr in ((base, base_addr), (quote, quote_addr)):
            if addr not in tokens:
                raise DataError(f"rpc balancer pool {pid[:10]} at block {block}: {sym} ({addr}) is not one of "
                                f"its tokens ({', '.join(tokens)})")
        xs = [balances[k] * scaling[k] // 10 ** 18 for k in keep]
        i, j = keep.index(tokens.index(base_addr)), keep.index(tokens.index(quote_addr))
        p_up = spot_price(amp, xs, i, j, precision or AMP_PRECISION)
        sb, sq = scaling[keep[i]], scaling[keep[j]]
        return {"price": p_up * sb / sq * 10 ** (decimals_base - decimals_quote), "amp": amp / (precision or 1),
                "balance_base": balances[keep[i]] / 10 ** decimals_base,
                "balance_quote": balances[keep[j]] / 10 ** decimals_quote}
    return Preset("balancer-stable", {"vault": vault.lower(), "pool_id": pid, "base": base, "quote": quote},
                  lambda rnd, b, got: calls if rnd == 0 else [], decode,
                  _oracle_series(None, base, quote, f"balancer:{pid[:42]}"), label=f"balancer {base}/{quote}")
