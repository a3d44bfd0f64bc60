"""Actions and records: the signed steps of a source chain, and their one byte form.

An action is the signed header of one step; its canonical bytes are a CBOR
array (see ``docs/protocol.md`` for a worked example)::

    [1, kind, author, seq, prev, timestamp, entry_type, entry_hash, ref]

``1`` is the format version; ``author``, ``prev``, ``entry_hash`` and ``ref``
are 33-byte typed hashes (or null); ``timestamp`` is integer microseconds.
A record is the CBOR array ``[action_bytes, signature, entry_bytes | null]``:
the action travels as the exact bytes that were signed and hashed, so
checking a record never re-encodes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final

from conode import encoding
from conode.crypto import SIG_ACTION, SIGNATURE_SIZE, Signer
from conode.errors import EncodingError
from conode.hashes import DIGEST_SIZE, ActionHash, AgentKey, EntryHash

__all__ = [
    "FORMAT_VERSION",
    "MAX_ENTRY_TYPE_LENGTH",
    "Action",
    "ActionKind",
    "ChainHead",
    "Record",
    "author_record",
    "link_base",
    "sign_record",
]

FORMAT_VERSION: Final = 1
MAX_ENTRY_TYPE_LENGTH: Final = 64
_MAX_SEQ: Final = (1 << 63) - 1


class ActionKind(IntEnum):
    """What one step of a chain does."""

    GENESIS = 0
    """seq 0: the entry holds the network reference, membrane proof and identity."""
    CREATE = 1
    """Commit a new entry of an app entry type."""
    UPDATE = 2
    """Commit a new entry that replaces the one created by ``ref``."""
    DELETE = 3
    """Mark the action ``ref`` (an entry or a link) deleted; no entry."""
    LINK = 4
    """Commit a link (base, target, tag) of an app link type."""
    CLOSE_CHAIN = 5
    """The last action of a chain: the entry names the agent that continues it."""
    OPEN_CHAIN = 6
    """seq 1 of a continuing chain: ``ref`` is the old chain's close action."""


@dataclass(frozen=True, slots=True)
class Action:
    """The signed header of one chain step; fields are checked for type, not for chain rules."""

    kind: ActionKind
    author: AgentKey
    seq: int
    prev: ActionHash | None
    timestamp: int
    entry_type: str | None = None
    entry_hash: EntryHash | None = None
    ref: ActionHash | None = None

    def to_bytes(self) -> bytes:
        """The canonical bytes that are hashed and signed."""
        return encoding.encode(
            [
                FORMAT_VERSION,
                int(self.kind),
                self.author.to_bytes(),
                self.seq,
                _opt(self.prev),
                self.timestamp,
                self.entry_type,
                _opt(self.entry_hash),
                _opt(self.ref),
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Action:
        """Read canonical action bytes; ``EncodingError`` with the reason if they are not."""
        fields = encoding.decode(data)
        if type(fields) is not list or len(fields) != 9:
            raise EncodingError("an action is a CBOR array of 9 items")
        version, kind, author, seq, prev, timestamp, entry_type, entry_hash, ref = fields
        if version != FORMAT_VERSION or type(version) is not int:
            raise EncodingError(f"unknown action format version {version!r}")
        if type(kind) is not int or kind not in _KINDS:
            raise EncodingError(f"unknown action kind {kind!r}")
        if type(seq) is not int or not 0 <= seq <= _MAX_SEQ:
            raise EncodingError(f"seq {seq!r} is not an integer in [0, 2**63)")
        if type(timestamp) is not int or not 0 <= timestamp <= _MAX_SEQ:
            raise EncodingError(f"timestamp {timestamp!r} is not an integer in [0, 2**63)")
        if entry_type is not None and (
            type(entry_type) is not str or not 0 < len(entry_type) <= MAX_ENTRY_TYPE_LENGTH
        ):
            raise EncodingError(f"entry type must be text of 1 to {MAX_ENTRY_TYPE_LENGTH} chars")
        return cls(
            kind=_KINDS[kind],
            author=AgentKey.from_bytes(author),
            seq=seq,
            prev=None if prev is None else ActionHash.from_bytes(prev),
            timestamp=timestamp,
            entry_type=entry_type,
            entry_hash=None if entry_hash is None else EntryHash.from_bytes(entry_hash),
            ref=None if ref is None else ActionHash.from_bytes(ref),
        )


_KINDS: Final = {int(kind): kind for kind in ActionKind}


@dataclass(frozen=True, slots=True)
class Record:
    """An action, its author's signature, and (optionally) its entry's canonical bytes.

    ``action_bytes`` are the exact signed bytes and ``hash`` their action hash;
    both are derived from ``action`` when a record is made, and kept so that
    checking a record never re-encodes or re-hashes it.
    """

    action: Action
    signature: bytes
    entry: bytes | None
    action_bytes: bytes = field(repr=False)
    hash: ActionHash

    @classmethod
    def make(cls, action: Action, signature: bytes, entry: bytes | None = None) -> Record:
        """A record from its parts (not checked: ``verify_chain`` does that)."""
        action_bytes = action.to_bytes()
        return cls(action, signature, entry, action_bytes, ActionHash.of(action_bytes))

    def to_bytes(self) -> bytes:
        """The portable form: ``[action_bytes, signature, entry_bytes | null]``."""
        return encoding.encode([self.action_bytes, self.signature, self.entry])

    @classmethod
    def from_bytes(cls, data: bytes) -> Record:
        """Read a record's portable form; ``EncodingError`` if it is not canonical and whole."""
        fields = encoding.decode(data)
        if type(fields) is not list or len(fields) != 3:
            raise EncodingError("a record is a CBOR array of 3 items")
        action_bytes, signature, entry = fields
        if type(action_bytes) is not bytes:
            raise EncodingError("a record's action is a byte string")
        if type(signature) is not bytes or len(signature) != SIGNATURE_SIZE:
            raise EncodingError(f"a signature is {SIGNATURE_SIZE} bytes")
        if entry is not None:
            if type(entry) is not bytes:
                raise EncodingError("a record's entry is a byte string or null")
            encoding.decode(entry)  # the entry, too, has one byte form
        action = Action.from_bytes(action_bytes)
        return cls(action, signature, entry, action_bytes, ActionHash.of(action_bytes))

    def entry_value(self) -> encoding.Value:
        """The decoded entry; ``ValueError`` if the record carries none."""
        if self.entry is None:
            raise ValueError("this record carries no entry")
        return encoding.decode(self.entry)


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where a chain stands after its last record: what the next append must follow."""

    author: AgentKey
    seq: int
    hash: ActionHash
    timestamp: int
    closed: bool = False

    @classmethod
    def after(cls, record: Record) -> ChainHead:
        """The head once ``record`` is the last action of its chain."""
        action = record.action
        return cls(
            author=action.author,
            seq=action.seq,
            hash=record.hash,
            timestamp=action.timestamp,
            closed=action.kind is ActionKind.CLOSE_CHAIN,
        )


def author_record(
    signer: Signer,
    head: ChainHead | None,
    *,
    kind: ActionKind,
    timestamp: int,
    entry: encoding.Value | None = None,
    entry_type: str | None = None,
    ref: ActionHash | None = None,
) -> Record:
    """Sign the next record of ``signer``'s chain after ``head`` (``None``: genesis).

    ``entry`` is the entry's value (``None``: no entry); it is encoded
    canonically and its hash goes into the action. Pure: the timestamp is
    passed in. The result is not checked against chain rules here.
    """
    entry_bytes = None if entry is None else encoding.encode(entry)
    action = Action(
        kind=kind,
        author=AgentKey(signer.public_key),
        seq=0 if head is None else head.seq + 1,
        prev=None if head is None else head.hash,
        timestamp=timestamp,
        entry_type=entry_type,
        entry_hash=None if entry_bytes is None else EntryHash.of(entry_bytes),
        ref=ref,
    )
    return sign_record(signer, action, entry_bytes)


def sign_record(signer: Signer, action: Action, entry: bytes | None = None) -> Record:
    """The record of ``action`` signed by ``signer`` (who should be its author), with its entry bytes."""
    action_bytes = action.to_bytes()
    signature = signer.sign(SIG_ACTION, action_bytes)
    return Record(action, signature, entry, action_bytes, ActionHash.of(action_bytes))


def _opt(value: ActionHash | EntryHash | None) -> bytes | None:
    return None if value is None else value.to_bytes()


def link_base(entry: bytes | None) -> bytes | None:
    """The base (typed hash bytes) a link entry names; None if the entry names none.

    A link's entry is ``{base, target, tag[, rules]}`` (``conode.apps.sdk.LinkType``).
    Read from the CBOR map itself, not through an app's ``LinkType``: the store
    indexes every stored link the same way, whether a migration filled the row or
    an append did, and never refuses a record for its entry (the rules judge that).
    """
    if entry is None:
        return None
    try:
        value = encoding.decode(entry)
    except EncodingError:
        return None
    base = value.get("base") if type(value) is dict else None
    return base if type(base) is bytes and len(base) == DIGEST_SIZE + 1 else None
