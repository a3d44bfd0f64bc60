"""Every Ed25519 rule of docs/protocol.md section 3, with hand-made points, at every place a signature is checked.

The points and signatures are made by ``tests/ed25519_ref.py`` (plain Python,
independent of libsodium). Each refused case is first shown to satisfy the
verification equation it would pass under a laxer rule (``equation_holds``),
so that what refuses it is the rule named in the test, not a broken signature.

The places: ``crypto.verify`` itself; an action's signature in the chain
rules (``check_append``) and in the engine (``validate_record``); a co-op's
signature on a credential; the two countersignatures of a payment; a
warrant's issuer and its evidence; an authority's receipt, a hosting claim
and a countersignature in a session (the node's). Every other module reaches
Ed25519 only through ``conode.crypto.verify`` (the last test reads the source).
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from ed25519_ref import (
    IDENTITY,
    B,
    L,
    P,
    Point,
    add,
    decode,
    encode,
    encode_raw,
    equal,
    h_scalar,
    mul,
    neg,
    point,
    recover_x,
    signature,
    small_order,
    torsion_generator,
)

import conode
from conode import crypto
from conode.chain import ActionKind, ChainHead, author_record, check_append
from conode.crypto import SIG_ACTION, SIG_COUNTERSIGN, SIG_CREDENTIAL, SIG_RECEIPT, SIG_WARRANT
from conode.hashes import ActionHash, AgentKey, CharterHash
from conode.testing.ledger import Ledger
from conode.validation.engine import Engine
from conode.validation.entries import Credential, Payment, PaymentBody, Position
from conode.validation.verdict import Invalid
from conode.validation.warrants import Warrant, check_warrant

T8: Point = torsion_generator()
MESSAGE = b"a message"


def equation_holds(key: bytes, message: bytes, sig: bytes, *, cofactored: bool = False) -> bool:
    """The verification equation alone, points read leniently (y mod p), nothing else checked."""

    def lenient(data: bytes) -> Point | None:
        value = int.from_bytes(data, "little")
        y, sign = (value & ((1 << 255) - 1)) % P, value >> 255
        x = recover_x(y, sign) if recover_x(y, sign) is not None else recover_x(y, 0)
        return None if x is None else (x, y, 1, x * y % P)

    a, r = lenient(key), lenient(sig[:32])
    if a is None or r is None:
        return False
    s = int.from_bytes(sig[32:], "little")
    h = h_scalar(sig[:32], key, message)
    diff = add(r, neg(add(mul(s, B), neg(mul(h, a)))))  # R - (SB - hA)
    return equal(mul(8, diff) if cofactored else diff, IDENTITY)


@dataclass(frozen=True)
class Forger:
    """Signs as ``public_key``, a key outside the prime-order subgroup, so the equation holds."""

    name: str
    public_key: bytes
    sign: Callable[[bytes, bytes], bytes]


def _mixed_order_forger() -> Forger:
    """The owner of a = 7777 signs under aB + T (T of order 8): h must be 0 mod 8, so ground."""
    a = 7777
    key = encode(add(mul(a, B), T8))

    def sign(context: bytes, message: bytes) -> bytes:
        r = int.from_bytes(hashlib.sha256(context + message).digest(), "little") % L
        while h_scalar(encode(mul(r, B)), key, context + message) % 8:
            r += 1
        h = h_scalar(encode(mul(r, B)), key, context + message)
        return signature(encode(mul(r, B)), (r + h * a) % L)

    return Forger("mixed-order key", key, sign)


def _small_order_forger(t: Point, name: str) -> Forger:
    """Anyone signs under a small-order key T: R = SB with h*T = 0 (S ground until it is)."""
    key = encode(t)

    def sign(context: bytes, message: bytes) -> bytes:
        s = 1 + int.from_bytes(hashlib.sha256(context + message).digest(), "little") % (L - 1)
        while not equal(mul(h_scalar(encode(mul(s, B)), key, context + message), t), IDENTITY):
            s += 1
        return signature(encode(mul(s, B)), s)

    return Forger(name, key, sign)


FORGERS = [
    _mixed_order_forger(),
    _small_order_forger(T8, "order-8 key"),
    _small_order_forger(mul(2, T8), "order-4 key"),
    _small_order_forger(mul(4, T8), "order-2 key"),
    _small_order_forger(IDENTITY, "identity key"),
]


@pytest.fixture(params=FORGERS, ids=lambda f: f.name)
def forger(request: pytest.FixtureRequest) -> Forger:
    forger: Forger = request.param
    sig = forger.sign(b"ctx", MESSAGE)
    assert equation_holds(forger.public_key, b"ctx" + MESSAGE, sig)  # valid but for the key
    return forger


# -- the rules, on crypto.verify ---------------------------------------------------------------


SECRET = 123456789
KEY = encode(mul(SECRET, B))


def honest(message: bytes, r: int = 4242) -> bytes:
    r_bytes = encode(mul(r, B))
    return signature(r_bytes, (r + h_scalar(r_bytes, KEY, message) * SECRET) % L)


def test_an_honest_hand_made_signature_verifies() -> None:
    assert crypto.verify(KEY, b"", MESSAGE, honest(MESSAGE))


def test_a_key_with_a_torsion_component_verifies_nothing(forger: Forger) -> None:
    sig = forger.sign(b"ctx", MESSAGE)
    assert not crypto.verify(forger.public_key, b"ctx", MESSAGE, sig)
    assert not crypto.is_valid_public_key(forger.public_key)


def test_s_at_or_above_l_is_refused() -> None:
    sig = honest(MESSAGE)
    s = int.from_bytes(sig[32:], "little")
    for bigger in (s + L, s + 2 * L):
        forged = signature(sig[:32], bigger)
        assert equation_holds(KEY, MESSAGE, forged)  # (S + L)B = SB
        assert not crypto.verify(KEY, b"", MESSAGE, forged)


@pytest.mark.parametrize("k", range(8))
def test_a_small_order_r_is_refused(k: int) -> None:
    r_point = mul(k, T8)
    r_bytes = encode(r_point)
    s = h_scalar(r_bytes, KEY, MESSAGE) * SECRET % L  # SB - hA = identity
    forged = signature(r_bytes, s)
    assert equation_holds(KEY, MESSAGE, forged, cofactored=True)
    assert equation_holds(KEY, MESSAGE, forged) == (k == 0)  # the identity passes even cofactorless
    assert not crypto.verify(KEY, b"", MESSAGE, forged)


@pytest.mark.parametrize("k", range(1, 8))
def test_an_r_with_a_torsion_component_is_refused_the_equation_is_cofactorless(k: int) -> None:
    r = 99991
    r_bytes = encode(add(mul(r, B), mul(k, T8)))
    forged = signature(r_bytes, (r + h_scalar(r_bytes, KEY, MESSAGE) * SECRET) % L)
    assert equation_holds(KEY, MESSAGE, forged, cofactored=True)  # a cofactored check accepts it
    assert not equation_holds(KEY, MESSAGE, forged)
    assert not crypto.verify(KEY, b"", MESSAGE, forged)


@pytest.mark.parametrize("y, sign", [(P + 1, 0), (P + 1, 1), (P, 0), (P, 1), (1, 1)])
def test_a_non_canonical_r_is_refused(y: int, sign: int) -> None:
    # the identity (y = 1) and an order-4 point (y = 0) written with y + p or a needless sign bit
    r_bytes = encode_raw(y, sign)
    s = h_scalar(r_bytes, KEY, MESSAGE) * SECRET % L
    forged = signature(r_bytes, s)
    assert not crypto.verify(KEY, b"", MESSAGE, forged)


def _non_canonical_keys() -> list[bytes]:
    keys = []
    for y in range(19):  # y + p < 2**255 only for y < 19
        for sign in (0, 1):
            if recover_x(y, sign) is not None:
                keys.append(encode_raw(y + P, sign))
    return keys


@pytest.mark.parametrize("key", _non_canonical_keys(), ids=lambda k: k[:1].hex())
def test_a_non_canonical_key_is_refused(key: bytes) -> None:
    assert not crypto.is_valid_public_key(key)
    assert not crypto.verify(key, b"", MESSAGE, honest(MESSAGE))


def test_the_key_check_is_remembered_per_key() -> None:
    crypto._in_prime_order_subgroup.cache_clear()
    for _ in range(3):
        crypto.verify(KEY, b"", MESSAGE, honest(MESSAGE))
    info = crypto._in_prime_order_subgroup.cache_info()
    assert (info.misses, info.hits) == (1, 2)


def test_the_reference_points_are_what_they_claim() -> None:
    assert [small_order(mul(k, T8)) for k in range(8)] == [1, 8, 4, 8, 2, 8, 4, 8]
    assert decode(KEY) is not None and crypto.is_valid_public_key(KEY)
    assert point(4 * pow(5, P - 2, P) % P) == B


# -- every place a signature is checked -----------------------------------------------------------


class ForgerSigner:
    """Duck-types ``crypto.Signer`` so the library's own builders sign as the forger."""

    def __init__(self, forger: Forger) -> None:
        self.public_key = forger.public_key
        self._sign = forger.sign

    def sign(self, context: bytes, message: bytes) -> bytes:
        return self._sign(context, message)


def _record_after_head(forger: Forger) -> tuple[ChainHead, object]:
    head = ChainHead(AgentKey(forger.public_key), 0, ActionHash(b"\x11" * 32), 1_000)
    record = author_record(
        ForgerSigner(forger),  # type: ignore[arg-type]
        head,
        kind=ActionKind.CREATE,
        timestamp=2_000,
        entry={"n": 1},
        entry_type="note",
    )
    assert equation_holds(forger.public_key, SIG_ACTION + record.action_bytes, record.signature)
    return head, record


def test_chain_rules_refuse_an_action_signed_under_such_a_key(forger: Forger) -> None:
    head, record = _record_after_head(forger)
    violation = check_append(head, record)  # type: ignore[arg-type]
    assert violation is not None and violation.rule == "signature"


def test_the_engine_refuses_an_action_signed_under_such_a_key(forger: Forger) -> None:
    _, record = _record_after_head(forger)
    ledger = Ledger(coops=1, members=0)
    verdict = Engine(ledger.charter).validate_record(record, ledger.held)  # type: ignore[arg-type]
    assert isinstance(verdict, Invalid) and verdict.rule == "signature"


def test_a_credential_signed_under_such_a_key_does_not_verify(forger: Forger) -> None:
    credential = Credential.issue(
        ForgerSigner(forger),  # type: ignore[arg-type]
        AgentKey(KEY),
        "alice",
        1_000,
    )
    assert equation_holds(
        forger.public_key, SIG_CREDENTIAL + credential.signed_bytes(), credential.signature
    )
    assert not credential.signature_ok()


def _payment_signed_by(forger: Forger, as_payer: bool) -> Payment:
    def position(agent: bytes, balance: int) -> Position:
        return Position(
            AgentKey(agent), ActionHash(b"\x01" * 32), 3, ActionHash(b"\x02" * 32), None, balance
        )

    other = crypto.Signer(b"\x07" * 32)
    them, us = position(other.public_key, 0), position(forger.public_key, 0)
    payer, payee = (us, them) if as_payer else (them, us)
    body = PaymentBody(CharterHash(b"\x03" * 32), payer, payee, 5, "", 3_000, None)
    mine = forger.sign(SIG_COUNTERSIGN, body.to_bytes())
    theirs = other.sign(SIG_COUNTERSIGN, body.to_bytes())
    assert equation_holds(forger.public_key, SIG_COUNTERSIGN + body.to_bytes(), mine)
    return Payment(body, mine if as_payer else theirs, theirs if as_payer else mine)


@pytest.mark.parametrize("as_payer", [True, False], ids=["payer", "payee"])
def test_a_countersignature_under_such_a_key_does_not_verify(
    forger: Forger, as_payer: bool
) -> None:
    assert not _payment_signed_by(forger, as_payer).signatures_ok()


def test_a_warrant_issued_under_such_a_key_is_invalid(forger: Forger) -> None:
    _, record = _record_after_head(_mixed_order_forger())
    warrant = Warrant.issue(
        ForgerSigner(forger),  # type: ignore[arg-type]
        "fork",
        record.action.author,  # type: ignore[attr-defined]
        (record, record),  # type: ignore[arg-type]
        5_000,
    )
    assert equation_holds(
        forger.public_key, SIG_WARRANT + warrant.signed_bytes(), warrant.signature
    )
    ledger = Ledger(coops=1, members=0)
    verdict = check_warrant(warrant, Engine(ledger.charter), ledger.held)  # type: ignore[arg-type]
    assert isinstance(verdict, Invalid) and "issuer" in verdict.reason


def test_warrant_evidence_signed_under_such_a_key_is_not_the_offenders(forger: Forger) -> None:
    _, record = _record_after_head(forger)
    warrant = Warrant.issue(
        crypto.Signer(b"\x09" * 32),
        "fork",
        AgentKey(forger.public_key),
        (record, record),  # type: ignore[arg-type]
        5_000,
    )
    ledger = Ledger(coops=1, members=0)
    verdict = check_warrant(warrant, Engine(ledger.charter), ledger.held)  # type: ignore[arg-type]
    assert isinstance(verdict, Invalid) and "not signed by the offender" in verdict.reason


def test_a_receipt_signed_under_such_a_key_is_not_read(forger: Forger) -> None:
    from conode.node import _read_receipt, _receipt_bytes

    record = ActionHash(b"\x05" * 32)
    sig = forger.sign(SIG_RECEIPT, _receipt_bytes(record, True, 7_000))
    assert equation_holds(forger.public_key, SIG_RECEIPT + _receipt_bytes(record, True, 7_000), sig)
    item = [record.to_bytes(), True, 7_000, sig, AgentKey(forger.public_key).to_bytes()]
    assert _read_receipt(item) is None


def test_a_session_countersignature_under_such_a_key_is_refused(forger: Forger) -> None:
    from conode.node import _verifies_for

    body = b"a payment body"
    sig = forger.sign(SIG_COUNTERSIGN, body)
    assert not _verifies_for(AgentKey(forger.public_key))(body, sig)


async def test_a_hosting_claim_signed_under_such_a_key_is_not_believed(
    forger: Forger, tmp_path: Path
) -> None:
    from conode.crypto import SIG_MESSAGE
    from conode.node import _claim_bytes
    from conode.testing.network import TestNetwork

    agent = AgentKey(forger.public_key)
    sig = forger.sign(SIG_MESSAGE, _claim_bytes(agent, "elsewhere", 9_000))
    async with TestNetwork.start(tmp_path, nodes=1, members=0) as net:
        node = net.nodes[0]
        node._learn_claim([agent.to_bytes(), "elsewhere", 9_000, sig])
        assert agent not in node.hosts


def test_only_conode_crypto_reaches_ed25519_verification() -> None:
    root = Path(conode.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if path.name == "crypto.py" and path.parent == root:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            name = getattr(node, "attr", None) or getattr(node, "id", None)
            if name in {"crypto_sign_open", "VerifyKey", "crypto_sign_verify_detached"}:
                offenders.append(f"{path.relative_to(root)}:{node.lineno}")  # type: ignore[attr-defined]
    assert offenders == []
