"""Keccak-256 and the ABI encoding of ``eth_call`` data with static arguments, and the decoding of results
(selectors are keccak-256 of the signature, computed here: no dependency)."""
from __future__ import annotations

from typing import Any

from backtest.errors import DataError, InputError


_RC = [0x0000000000000001, 0x0000000000008082, 0x800000000000808A, 0x8000000080008000, 0x000000000000808B,
       0x0000000080000001, 0x8000000080008081, 0x8000000000008009, 0x000000000000008A, 0x0000000000000088,
       0x0000000080008009, 0x000000008000000A, 0x000000008000808B, 0x800000000000008B, 0x8000000000008089,
       0x8000000000008003, 0x8000000000008002, 0x8000000000000080, 0x000000000000800A, 0x800000008000000A,
       0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008]
_ROT = [[0, 36, 3, 41, 18], [1, 44, 10, 45, 2], [62, 6, 43, 15, 61], [28, 55, 25, 21, 56], [27, 20, 39, 8, 14]]
_M64 = (1 << 64) - 1


def _rotl(v: int, n: int) -> int:
    return ((v << n) | (v >> (64 - n))) & _M64 if n else v


def _keccak_f(a: list[int]) -> list[int]:
    for rc in _RC:
        c = [a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20] for x in range(5)]
        d = [c[(x - 1) % 5] ^ _rotl(c[(x + 1) % 5], 1) for x in range(5)]
        a = [a[i] ^ d[i % 5] for i in range(25)]
        b = [0] * 25
        for x in range(5):
            for y in range(5):
                b[y + 5 * ((2 * x + 3 * y) % 5)] = _rotl(a[x + 5 * y], _ROT[x][y])
        a = [b[i] ^ ((~b[(i % 5 + 1) % 5 + 5 * (i // 5)]) & b[(i % 5 + 2) % 5 + 5 * (i // 5)]) for i in range(25)]
        a[0] ^= rc
    return a


def keccak256(data: bytes) -> bytes:
    """Keccak-256 (Ethereum's hash; not NIST SHA3-256, whose padding differs)."""
    rate = 136
    p = bytearray(data)
    p.append(0x01)
    while len(p) % rate:
        p.append(0)
    p[-1] |= 0x80
    state = [0] * 25
    for off in range(0, len(p), rate):
        for i in range(rate // 8):
            state[i] ^= int.from_bytes(p[off + 8 * i: off + 8 * i + 8], "little")
        state = _keccak_f(state)
    return b"".join(state[i].to_bytes(8, "little") for i in range(4))


def selector(signature: str) -> str:
    """The 4-byte function selector of a canonical signature, as 0x-hex (``transfer(address,uint256)``)."""
    return "0x" + keccak256(signature.encode()).hex()[:8]


def _word_address(addr: str) -> str:
    a = addr.lower().removeprefix("0x")
    if len(a) != 40 or any(c not in "0123456789abcdef" for c in a):
        raise InputError(f"{addr!r} is not an address (0x + 40 hex digits)")
    return a.rjust(64, "0")


def _word_int(v: int, signed: bool = False) -> str:
    if not signed and v < 0:
        raise InputError(f"{v} is negative for an unsigned argument")
    return (v & ((1 << 256) - 1)).to_bytes(32, "big").hex()


def encode_call(signature: str, *args: Any) -> str:
    """ABI-encode a call with static arguments (address, uintN, intN, bool) -> 0x data."""
    types = signature[signature.index("(") + 1: -1].split(",") if not signature.endswith("()") else []
    if len(types) != len(args):
        raise InputError(f"{signature}: {len(args)} argument(s) for {len(types)} parameter(s)")
    out = selector(signature)[2:]
    for t, v in zip(types, args):
        t = t.strip()
        if t == "address":
            out += _word_address(v)
        elif t.startswith("uint"):
            out += _word_int(int(v))
        elif t.startswith("int"):
            out += _word_int(int(v), signed=True)
        elif t == "bool":
            out += _word_int(1 if v else 0)
        else:
            raise InputError(f"{signature}: argument type {t} is not supported")
    return "0x" + out


def decode_words(data: str, label: str) -> list[int]:
    """The 32-byte words of an ``eth_call`` result as unsigned ints; DataError when empty or ragged."""
    h = (data or "").removeprefix("0x")
    if not h or len(h) % 64:
        raise DataError(f"{label}: empty or malformed call result ({len(h) // 2} bytes): wrong contract or block "
                        "before it existed?")
    return [int(h[i: i + 64], 16) for i in range(0, len(h), 64)]


def signed_int(v: int, bits: int = 256) -> int:
    return v - (1 << bits) if v >> (bits - 1) else v
