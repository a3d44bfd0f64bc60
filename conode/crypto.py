"""Ed25519 signing and verifying, through pynacl (libsodium) only.

One library for every peer, so that every peer gives the same verdict on the
same signature: libsodium rejects non-canonical signatures and small-order
public keys, and ``is_valid_public_key`` rejects keys that are not a
canonical point of the prime-order subgroup before we ever accept them as an
agent.

Every signature is made over ``context + message``, where the context is a
fixed label (``SIG_ACTION``, ``SIG_ENTRY``, ...) so that a signature given
for one purpose can never be replayed as another.
"""

from __future__ import annotations

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
    """True only if ``signature`` is the key's valid signature over ``context + message``."""
    if len(signature) != SIGNATURE_SIZE or len(public_key) != PUBLIC_KEY_SIZE:
        return False
    try:
        _ed25519_open(signature + context + message, public_key)
    except nacl.exceptions.BadSignatureError:
        return False
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        return False
    return True


def is_valid_public_key(public_key: bytes) -> bool:
    """True if the bytes are a canonical Ed25519 point of prime order (not small-order)."""
    if type(public_key) is not bytes or len(public_key) != PUBLIC_KEY_SIZE:
        return False
    return bool(_is_valid_point(public_key))
