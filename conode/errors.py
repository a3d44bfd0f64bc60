"""The one error tree of conode.

::

    ConodeError
    ├── EncodingError         (bytes that are not canonical conode CBOR)
    ├── ChainError            (our own chain: bad append, corrupt store)
    ├── ValidationError       (a rule said no; carries the rule's name)
    ├── ProtocolError
    │   ├── LocalProtocolError   (we broke the protocol: a bug)
    │   └── RemoteProtocolError  (the peer did: drop it, maybe warrant it)
    ├── NetworkError          (unreachable, timeout)
    ├── StorageError
    ├── KeyFileError          (a key file: wrong passphrase, bad file, bad mode)
    └── AppError

A "no" about remote data inside the pure core is a verdict *value*; these
exceptions are for callers. Shells translate foreign exceptions (sqlite3,
nacl, trio, libp2p) into this tree at the seam with ``raise ... from exc``.
Caller bugs stay ``ValueError``/``TypeError``. The CLI prints any
``ConodeError`` as one line and exits non-zero.
"""

from __future__ import annotations

__all__ = [
    "AppError",
    "ChainError",
    "ConodeError",
    "EncodingError",
    "KeyFileError",
    "LocalProtocolError",
    "NetworkError",
    "ProtocolError",
    "RemoteProtocolError",
    "StorageError",
    "ValidationError",
]


class ConodeError(Exception):
    """Base of every error conode raises on purpose; its message is one readable line."""


class EncodingError(ConodeError):
    """Bytes that are not the one canonical CBOR form, or are too large or deep."""


class ChainError(ConodeError):
    """Our own source chain refused an append, or the stored chain is corrupt."""


class ValidationError(ConodeError):
    """A rule said no; ``rule`` names it."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(f"{rule}: {reason}")
        self.rule = rule
        self.reason = reason


class ProtocolError(ConodeError):
    """A conode protocol was broken by one side."""


class LocalProtocolError(ProtocolError):
    """We broke the protocol: a bug on this side."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol: drop it, and warrant it if it signed the offence."""


class NetworkError(ConodeError):
    """A peer was unreachable, or did not answer in time."""


class StorageError(ConodeError):
    """The store could not be read or written."""


class KeyFileError(ConodeError):
    """A key file could not be opened: wrong passphrase, damaged file, unsafe mode."""


class AppError(ConodeError):
    """An app failed or was refused (unknown app, unapproved bundle, bad call)."""
