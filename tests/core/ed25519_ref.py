"""Hand-made Ed25519 points and signatures, in plain Python, for the tests of the signature rules.

Independent of libsodium (the library under test): the curve arithmetic of
RFC 8032 section 5.1 in extended coordinates, written out here, so that a
test can make what an honest signer never would: keys and nonces with a
small-order (torsion) component, small-order points, non-canonical
encodings, and scalars S >= L, each signed with a known secret scalar.
Slow (pure Python), and only for tests.
"""

from __future__ import annotations

import hashlib
from typing import Final

P: Final = 2**255 - 19
L: Final = 2**252 + 27742317777372353535851937790883648493
D: Final = -121665 * pow(121666, P - 2, P) % P
SQRT_M1: Final = pow(2, (P - 1) // 4, P)

Point = tuple[int, int, int, int]
"""A point in extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z."""

IDENTITY: Final[Point] = (0, 1, 1, 0)


def add(p: Point, q: Point) -> Point:
    """p + q on edwards25519 (the complete addition law)."""
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * t1 * t2 * D % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def neg(p: Point) -> Point:
    x, y, z, t = p
    return (-x % P, y, z, -t % P)


def mul(k: int, p: Point) -> Point:
    """k * p, for any k >= 0."""
    result = IDENTITY
    while k:
        if k & 1:
            result = add(result, p)
        p = add(p, p)
        k >>= 1
    return result


def equal(p: Point, q: Point) -> bool:
    return (p[0] * q[2] - q[0] * p[2]) % P == 0 and (p[1] * q[2] - q[1] * p[2]) % P == 0


def recover_x(y: int, sign: int) -> int | None:
    """The x of the point with this y and x's low bit ``sign`` (None if there is none)."""
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if x & 1 != sign:
        x = P - x
    return x


def point(y: int, sign: int = 0) -> Point:
    x = recover_x(y, sign)
    assert x is not None, f"no point with y={y}, sign {sign}"
    return (x, y, 1, x * y % P)


def encode(p: Point) -> bytes:
    """The canonical 32-byte encoding: y, with x's low bit on top."""
    zinv = pow(p[2], P - 2, P)
    x, y = p[0] * zinv % P, p[1] * zinv % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def encode_raw(y: int, sign: int) -> bytes:
    """Any 255-bit y (also y >= p: a non-canonical encoding) and a sign bit."""
    assert 0 <= y < 2**255
    return (y | (sign << 255)).to_bytes(32, "little")


def decode(data: bytes) -> Point:
    """The point of a canonical encoding."""
    value = int.from_bytes(data, "little")
    return point(value & ((1 << 255) - 1), value >> 255)


B: Final = point(4 * pow(5, P - 2, P) % P, 0)
"""The base point, of prime order L."""


def torsion_generator() -> Point:
    """A point of order 8: L times a curve point whose order is 8L (the prime part killed)."""
    for y in range(2, 100):
        if recover_x(y, 0) is None:
            continue
        t = mul(L, point(y, 0))
        if small_order(t) == 8:
            return t
    raise AssertionError("no point of order 8 found")


def small_order(p: Point) -> int | None:
    """The order of ``p`` if it is 1, 2, 4 or 8, else None."""
    q = p
    for n in (1, 2, 4, 8):
        if equal(q, IDENTITY):
            return n
        q = add(q, q)
    return None


def h_scalar(r_bytes: bytes, a_bytes: bytes, message: bytes) -> int:
    """SHA-512(R || A || M) mod L, the challenge of an Ed25519 signature."""
    return int.from_bytes(hashlib.sha512(r_bytes + a_bytes + message).digest(), "little") % L


def signature(r_bytes: bytes, s: int) -> bytes:
    """R's 32 bytes and S as 32 little-endian bytes (S may be >= L: it is not reduced)."""
    return r_bytes + s.to_bytes(32, "little")
