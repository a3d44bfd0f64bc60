"""Ed25519 signing and verifying, through pynacl (libsodium) only.

One rule for every peer, so that every peer gives the same verdict on the
same signature (``docs/protocol.md`` section 3). ``verify`` accepts a
signature (R, S) by key A over message M only if:

- A is the canonical encoding of a point of the prime-order subgroup other
  than the identity (``is_valid_public_key``; remembered per key, since the
  subgroup check costs about a verify): no small-order key, and no key with
  a torsion component, under which the key's owner could sign as up to
  seven "alias" keys;
- S < L (libsodium);
- R is not one of the small-order encodings (libsodium), and R's 32 bytes
  are exactly the canonical encoding of [S]B - [h]A, h = SHA-512(R || A || M)
  mod L: the *cofactorless* equation, compared byte for byte (libsodium
  1.0.18 to 1.0.22). So R is canonical and of prime order.

libsodium's development branch has moved to the cofactored equation (which
also accepts an R with a torsion component): a library that accepts the
known-answer signature ``_MIXED_R`` would give other verdicts than its
peers, so importing this module with one fails.

Every signature is made over ``context + message``, where the context is a
fixed label (``SIG_ACTION``, ``SIG_ENTRY``, ...) so that a signature given
for one purpose can never be replayed as another.
"""

from __future__ import annotations

import functools
from typing import Final

import nacl.bindings
import nacl.exceptions
import nacl.signing

__all__ = [
    "PUBLIC_KEY_SIZE",
    "SEED_SIZE",
    "SIGNATURE_SIZE",
    "SIG_ACTION",
    "SIG_COUNTERSIGN",
    "SIG_CREDENTIAL",
    "SIG_MESSAGE",
    "SIG_RECEIPT",
    "SIG_WARRANT",
    "Signer",
    "is_valid_public_key",
    "verify",
]

PUBLIC_KEY_SIZE: Final = 32
SEED_SIZE: Final = 32
SIGNATURE_SIZE: Final = 64

SIG_ACTION: Final = b"conode/action/v1\x00"
"""Context of an author's signature over an action."""
SIG_COUNTERSIGN: Final = b"conode/countersign/v1\x00"
"""Context of a party's signature over a countersigned entry."""
SIG_CREDENTIAL: Final = b"conode/credential/v1\x00"
"""Context of a co-op's signature over a membership credential or identity."""
SIG_RECEIPT: Final = b"conode/receipt/v1\x00"
"""Context of an authority's validation receipt."""
SIG_WARRANT: Final = b"conode/warrant/v1\x00"
"""Context of a warrant's issuer signature."""
SIG_MESSAGE: Final = b"conode/message/v1\x00"
"""Context of other signed protocol messages."""

_ed25519_open = nacl.bindings.crypto_sign_open
_is_valid_point = nacl.bindings.crypto_core_ed25519_is_valid_point
_KEYS_KEPT: Final = 1 << 16
"""Keys whose subgroup check is remembered (least recently used go first): 4 MiB at most."""


class Signer:
    """An Ed25519 secret key; it signs, and never leaves this object except as its seed."""

    __slots__ = ("_key", "public_key")

    def __init__(self, seed: bytes) -> None:
        if type(seed) is not bytes or len(seed) != SEED_SIZE:
            raise ValueError(f"an Ed25519 seed is {SEED_SIZE} bytes")
        self._key = nacl.signing.SigningKey(seed)
        self.public_key: bytes = bytes(self._key.verify_key)

    @classmethod
    def generate(cls) -> Signer:
        """A new key from the operating system's random source."""
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @property
    def seed(self) -> bytes:
        """The 32-byte seed: handle with care (key files encrypt it)."""
        return bytes(self._key)

    def sign(self, context: bytes, message: bytes) -> bytes:
        """The 64-byte signature over ``context + message``."""
        signature: bytes = self._key.sign(context + message).signature
        return signature

    def __repr__(self) -> str:
        return f"Signer(public_key={self.public_key.hex()})"


def verify(public_key: bytes, context: bytes, message: bytes, signature: bytes) -> bool:
    """True only if ``signature`` is the key's valid signature over ``context + message``.

    The rule is the module docstring's; a key outside the prime-order subgroup
    never verifies anything.
    """
    if len(signature) != SIGNATURE_SIZE or not is_valid_public_key(public_key):
        return False
    try:
        _ed25519_open(signature + context + message, public_key)
    except nacl.exceptions.BadSignatureError:
        return False
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        return False
    return True


def is_valid_public_key(public_key: bytes) -> bool:
    """True if the bytes are the canonical encoding of a point of the prime-order subgroup
    other than the identity (so neither small-order nor with a torsion component)."""
    if type(public_key) is not bytes or len(public_key) != PUBLIC_KEY_SIZE:
        return False
    return _in_prime_order_subgroup(public_key)


@functools.lru_cache(maxsize=_KEYS_KEPT)
def _in_prime_order_subgroup(public_key: bytes) -> bool:
    return bool(_is_valid_point(public_key))


# A known-answer check that this libsodium verifies by the cofactorless equation. The key is
# [a]B for a = the bytes b"conode/cofactorless-check" (little-endian, mod L); _HONEST is the
# signature with R = [r]B, r = 0xC0FFEE; _MIXED_R the same with R = [r]B + T, T of order 8,
# and S = r + h*a: the cofactored equation accepts it, the cofactorless one does not.
_CHECK_KEY: Final = bytes.fromhex(
    "533357d1ae0925a60a43cf70d680023c3f456e61cc381ee02160ec0d7e7fc660"
)
_CHECK_MESSAGE: Final = b"conode: cofactorless verification"
_HONEST: Final = bytes.fromhex(
    "de57371fb1d0f26dca19a6da18739a8b9b94372dcfcf43b61f563c25a97b39e9"
    "b5cea16c4634c89290db2a041965e5f0b7877a6e25e1685e66b818c637b56a07"
)
_MIXED_R: Final = bytes.fromhex(
    "9df5a9cac5cdfe8939b99e1b4da6ea27908bfdd179bd15808a417995457ba12a"
    "e8db273366c906b36db6a3f0c9aae67f4b9e337a5c2f52bd478a143301973307"
)


def _opens(signature: bytes) -> bool:
    try:
        _ed25519_open(signature + _CHECK_MESSAGE, _CHECK_KEY)
    except nacl.exceptions.BadSignatureError:
        return False
    return True


if not _opens(_HONEST) or _opens(_MIXED_R):
    raise ImportError(
        "this PyNaCl's libsodium does not verify Ed25519 signatures by conode's rule "
        "(cofactorless, docs/protocol.md section 3): use PyNaCl 1.5 or 1.6 with its bundled libsodium"
    )
