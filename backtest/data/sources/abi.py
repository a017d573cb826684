"""Keccak-256 and the ABI encoding of ``eth_call`` data with static arguments (static tuples included), and the
decoding of results (selectors and event topics are keccak-256 of the signature, computed here: no dependency)."""
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


def split_types(inner: str) -> list[str]:
    """``address,(uint128,uint128),uint256`` -> the top-level types (a tuple kept whole)."""
    out, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        depth += (ch == "(") - (ch == ")")
        cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def _encode_arg(signature: str, t: str, v: Any) -> str:
    if t.startswith("(") and t.endswith(")"):
        # a static tuple (struct) is encoded in place, member after member
        members = split_types(t[1:-1])
        if not isinstance(v, (tuple, list)) or len(v) != len(members):
            raise InputError(f"{signature}: tuple {t} needs {len(members)} value(s)")
        return "".join(_encode_arg(signature, mt, mv) for mt, mv in zip(members, v))
    if t == "address":
        return _word_address(v)
    if t == "bytes32":
        h = str(v).lower().removeprefix("0x")
        if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
            raise InputError(f"{v!r} is not a bytes32 (0x + 64 hex digits)")
        return h
    if t.startswith("uint"):
        return _word_int(int(v))
    if t.startswith("int"):
        return _word_int(int(v), signed=True)
    if t == "bool":
        return _word_int(1 if v else 0)
    raise InputError(f"{signature}: argument type {t} is not supported")


def encode_call(signature: str, *args: Any) -> str:
    """ABI-encode a call with static arguments (address, bytes32, uintN, intN, bool and static tuples of
    them, given as Python tuples) -> 0x data."""
    inner = signature[signature.index("(") + 1: -1]
    types = split_types(inner)
    if len(types) != len(args):
        raise InputError(f"{signature}: {len(args)} argument(s) for {len(types)} parameter(s)")
    return selector(signature) + "".join(_encode_arg(signature, t, v) for t, v in zip(types, args))


def word_address(v: int) -> str:
    """A returned address word -> 0x + 40 lower-case hex digits."""
    return "0x" + (v & ((1 << 160) - 1)).to_bytes(20, "big").hex()


def decode_words(data: str, label: str) -> list[int]:
    """The 32-byte words of an ``eth_call`` result as unsigned ints; DataError when empty or ragged."""
    h = (data or "").removeprefix("0x")
    if not h or len(h) % 64:
        raise DataError(f"{label}: empty or malformed call result ({len(h) // 2} bytes): wrong contract or block "
                        "before it existed?")
    return [int(h[i: i + 64], 16) for i in range(0, len(h), 64)]


def signed_int(v: int, bits: int = 256) -> int:
    return v - (1 << bits) if v >> (bits - 1) else v


def topic(event_signature: str) -> str:
    """An event's topic 0: keccak-256 of its canonical signature, as 0x-hex (64 digits)."""
    return "0x" + keccak256(event_signature.encode()).hex()
