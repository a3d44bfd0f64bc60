"""Ed25519 known answers (RFC 8032 section 7.1) and the keys and signatures we must refuse.

The vectors were checked three ways: libsodium derives the same public key and
the same (deterministic) signature from each seed, pynacl's own ``VerifyKey``
accepts them, and they match the RFC text as quoted in public test suites.
The small-order points are libsodium's blocklist; a tiny pure-Python Edwards
implementation below proves that each one really has order dividing 8, so the
refusal tests are not refusing random garbage.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import NamedTuple

import nacl.signing
import pytest

from conode import crypto
from conode.crypto import Signer, is_valid_public_key, verify


class Vector(NamedTuple):
    """One RFC 8032 section 7.1 test, hex as printed in the RFC."""

    name: str
    seed_hex: str
    public_hex: str
    message_hex: str
    signature_hex: str

    @property
    def seed(self) -> bytes:
        return bytes.fromhex(self.seed_hex)

    @property
    def public(self) -> bytes:
        return bytes.fromhex(self.public_hex)

    @property
    def message(self) -> bytes:
        return bytes.fromhex(self.message_hex)

    @property
    def signature(self) -> bytes:
        return bytes.fromhex(self.signature_hex)


RFC8032_VECTORS = [
    Vector(
        "TEST 1",
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    Vector(
        "TEST 2",
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    Vector(
        "TEST 3",
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
        "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
    Vector(
        "TEST SHA(abc)",
        "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589"
        "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
    ),
]
VECTOR_IDS = [v.name for v in RFC8032_VECTORS]

# The eight points of order dividing 8, canonically encoded (libsodium's blocklist).
SMALL_ORDER_POINTS = [
    "0100000000000000000000000000000000000000000000000000000000000000",  # identity, order 1
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = -1, order 2
    "0000000000000000000000000000000000000000000000000000000000000000",  # y = 0, order 4
    "0000000000000000000000000000000000000000000000000000000000000080",  # y = 0, -x, order 4
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",  # order 8
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",  # order 8
]

# Encodings that are not the canonical one of any point: y >= p, or x = 0 with the sign bit set.
NON_CANONICAL_POINTS = [
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p      (~ y = 0)
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p + 1  (~ identity)
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",  # y = p + 1, sign set
    "f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p + 3
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",  # y = 2**255 - 1, sign set
    "0100000000000000000000000000000000000000000000000000000000000080",  # identity with -0
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",  # y = -1 with -0
]

# --- a tiny reference Edwards25519, only to prove facts about the vectors above ---------------
_P = 2**255 - 19
_D = (-121665 * pow(121666, -1, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
_L = 2**252 + 27742317777372353535851937790883648493
_IDENTITY = (0, 1)


def _decode_point(data: bytes) -> tuple[int, int] | None:
    """RFC 8032 5.1.3 decoding, but lenient about y >= p (so we can see what it would mean)."""
    n = int.from_bytes(data, "little")
    y, sign = (n & ((1 << 255) - 1)) % _P, n >> 255
    u = (y * y - 1) * pow(_D * y * y + 1, -1, _P) % _P
    x = pow(u, (_P + 3) // 8, _P)
    if x * x % _P != u:
        x = x * _SQRT_M1 % _P
    if x * x % _P != u:
        return None
    if x & 1 != sign:
        x = (_P - x) % _P
    return x, y


def _encode_point(point: tuple[int, int]) -> bytes:
    x, y = point
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _add(p: tuple[int, int], q: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = p, q
    t = _D * x1 * x2 * y1 * y2 % _P
    x3 = (x1 * y2 + x2 * y1) * pow(1 + t, -1, _P) % _P
    y3 = (y1 * y2 + x1 * x2) * pow(1 - t, -1, _P) % _P
    return x3, y3


def _mul(k: int, point: tuple[int, int]) -> tuple[int, int]:
    result = _IDENTITY
    while k:
        if k & 1:
            result = _add(result, point)
        point = _add(point, point)
        k >>= 1
    return result


# --- RFC 8032 known answers -------------------------------------------------------------------


@pytest.mark.parametrize("v", RFC8032_VECTORS, ids=VECTOR_IDS)
def test_signer_derives_rfc8032_public_key(v: Vector) -> None:
    assert Signer(v.seed).public_key.hex() == v.public_hex


@pytest.mark.parametrize("v", RFC8032_VECTORS, ids=VECTOR_IDS)
def test_signer_makes_rfc8032_signature_with_empty_context(v: Vector) -> None:
    assert Signer(v.seed).sign(b"", v.message).hex() == v.signature_hex


@pytest.mark.parametrize("v", RFC8032_VECTORS, ids=VECTOR_IDS)
def test_verify_accepts_rfc8032_signature(v: Vector) -> None:
    pk, msg, sig = v.public, v.message, v.signature
    assert verify(pk, b"", msg, sig)
    assert is_valid_public_key(pk)
    # and libsodium's own front door agrees, so the vector itself is right
    assert nacl.signing.VerifyKey(pk).verify(msg, sig) == msg


def test_sha_abc_vector_message_is_sha512_of_abc() -> None:
    assert RFC8032_VECTORS[3].message == hashlib.sha512(b"abc").digest()


@pytest.mark.parametrize("v", RFC8032_VECTORS, ids=VECTOR_IDS)
def test_verify_rejects_every_single_bit_flip_of_signature(v: Vector) -> None:
    pk, msg, sig = v.public, v.message, v.signature
    for bit in range(len(sig) * 8):
        flipped = bytearray(sig)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert not verify(pk, b"", msg, bytes(flipped)), f"bit {bit} flipped still verifies"


@pytest.mark.parametrize("v", RFC8032_VECTORS, ids=VECTOR_IDS)
def test_verify_rejects_every_single_bit_flip_of_public_key(v: Vector) -> None:
    pk, msg, sig = v.public, v.message, v.signature
    for bit in range(len(pk) * 8):
        flipped = bytearray(pk)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert not verify(bytes(flipped), b"", msg, sig), f"key bit {bit} flipped still verifies"


@pytest.mark.parametrize("v", RFC8032_VECTORS, ids=VECTOR_IDS)
def test_verify_rejects_changed_message(v: Vector) -> None:
    pk, msg, sig = v.public, v.message, v.signature
    assert not verify(pk, b"", msg + b"\x00", sig)
    assert not verify(pk, b"\x00", msg, sig)  # a context is part of what is signed
    if msg:
        assert not verify(pk, b"", msg[:-1], sig)
        assert not verify(pk, b"", bytes([msg[0] ^ 1]) + msg[1:], sig)


@pytest.mark.parametrize("v", RFC8032_VECTORS, ids=VECTOR_IDS)
def test_verify_rejects_non_canonical_s(v: Vector) -> None:
    """S + L is the same scalar, but RFC 8032 5.1.7 demands S < L: no malleable twins."""
    pk, msg, sig = v.public, v.message, v.signature
    s = int.from_bytes(sig[32:], "little")
    assert s < _L
    twin = sig[:32] + (s + _L).to_bytes(32, "little")
    assert not verify(pk, b"", msg, twin)


# --- contexts ---------------------------------------------------------------------------------

CONTEXTS = [
    crypto.SIG_ACTION,
    crypto.SIG_COUNTERSIGN,
    crypto.SIG_CREDENTIAL,
    crypto.SIG_RECEIPT,
    crypto.SIG_WARRANT,
    crypto.SIG_MESSAGE,
]


def test_sign_signs_context_followed_by_message() -> None:
    signer = Signer(RFC8032_VECTORS[2].seed)
    # TEST 3's message is af82: split it into "context" af and "message" 82
    assert signer.sign(b"\xaf", b"\x82") == RFC8032_VECTORS[2].signature


@pytest.mark.parametrize(("signed_under", "checked_under"),
                         list(itertools.permutations(CONTEXTS, 2)))
def test_signature_for_one_context_does_not_verify_under_another(
    signed_under: bytes, checked_under: bytes
) -> None:
    signer = Signer(bytes(range(32)))
    message = b"pay 5 to bob"
    signature = signer.sign(signed_under, message)
    assert verify(signer.public_key, signed_under, message, signature)
    assert not verify(signer.public_key, checked_under, message, signature)


def test_no_context_is_a_prefix_of_another() -> None:
    """Otherwise ``ctx_a + m1 == ctx_b + m2`` could replay a signature across purposes."""
    assert len(set(CONTEXTS)) == len(CONTEXTS)
    for a, b in itertools.permutations(CONTEXTS, 2):
        assert not b.startswith(a), (a, b)


# --- keys we refuse ---------------------------------------------------------------------------


def test_small_order_vectors_really_have_small_order() -> None:
    points = [_decode_point(bytes.fromhex(h)) for h in SMALL_ORDER_POINTS]
    assert all(p is not None for p in points)
    assert len(set(points)) == 8
    for point in points:
        assert point is not None
        assert _mul(8, point) == _IDENTITY
        assert _encode_point(point).hex() in SMALL_ORDER_POINTS  # canonically encoded


@pytest.mark.parametrize("point", SMALL_ORDER_POINTS)
def test_is_valid_public_key_rejects_small_order_point(point: str) -> None:
    assert not is_valid_public_key(bytes.fromhex(point))


@pytest.mark.parametrize("point", SMALL_ORDER_POINTS)
def test_small_order_public_key_never_verifies(point: str) -> None:
    """With S = 0 and a small-order R, a cofactorless check without a blocklist accepts these."""
    pk = bytes.fromhex(point)
    zero_s = bytes(32)
    for r in SMALL_ORDER_POINTS:
        forged = bytes.fromhex(r) + zero_s
        for message in (b"", b"pay 1000 to mallory"):
            assert not verify(pk, b"", message, forged)
            assert not verify(pk, crypto.SIG_ACTION, message, forged)


@pytest.mark.parametrize("point", NON_CANONICAL_POINTS)
def test_is_valid_public_key_rejects_non_canonical_encoding(point: str) -> None:
    data = bytes.fromhex(point)
    decoded = _decode_point(data)
    # it names a point (or nothing), but not by that point's canonical encoding
    assert decoded is None or _encode_point(decoded) != data
    assert not is_valid_public_key(data)


def test_is_valid_public_key_rejects_key_with_torsion_component() -> None:
    """A + T (T of order 8) is on the curve, not small-order, and outside the prime-order group."""
    a = _decode_point(RFC8032_VECTORS[0].public)
    t = _decode_point(bytes.fromhex(SMALL_ORDER_POINTS[4]))
    assert a is not None and t is not None
    mixed = _encode_point(_add(a, t))
    assert _mul(_L, _add(a, t)) != _IDENTITY
    assert not is_valid_public_key(mixed)


@pytest.mark.parametrize("v", RFC8032_VECTORS, ids=VECTOR_IDS)
def test_is_valid_public_key_accepts_real_keys(v: Vector) -> None:
    assert is_valid_public_key(v.public)


@pytest.mark.parametrize("bad", [b"", bytes(31), bytes(33), "d7" * 32, None, bytearray(32)])
def test_is_valid_public_key_rejects_wrong_length_or_type(bad: object) -> None:
    assert not is_valid_public_key(bad)  # type: ignore[arg-type]


def test_verify_rejects_wrong_lengths_instead_of_raising() -> None:
    v = RFC8032_VECTORS[1]
    pk, msg, sig = v.public, v.message, v.signature
    assert not verify(pk, b"", msg, sig[:-1])
    assert not verify(pk, b"", msg, sig + b"\x00")
    assert not verify(pk[:-1], b"", msg, sig)
    assert not verify(pk + b"\x00", b"", msg, sig)


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33), bytearray(32), "00" * 32])
def test_signer_rejects_seed_that_is_not_32_bytes(seed: object) -> None:
    with pytest.raises(ValueError):
        Signer(seed)  # type: ignore[arg-type]


def test_signer_seed_round_trips_and_repr_hides_it() -> None:
    seed = RFC8032_VECTORS[0].seed
    signer = Signer(seed)
    assert signer.seed == seed
    assert Signer(signer.seed).public_key == signer.public_key
    assert seed.hex() not in repr(signer)
