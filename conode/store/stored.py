"""What ``Store`` keeps of a record, and back (``conode.store.sqlite``): a record as its
``records`` row and its index rows (links, payer positions, the chain head), the stored parts as
a portable blob or a decoded record, and a chain's rows checked against their action bytes.

Pure: no I/O. The store keeps a record as its three parts (action bytes, signature, entry bytes);
the other columns are copied from the action for indexes, which ``CheckedRows`` checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final

from conode import encoding
from conode.chain import ActionKind, ChainHead, Record, Violation, link_base
from conode.chain.ops import op_locations
from conode.chain.records import Action
from conode.crypto import SIGNATURE_SIZE
from conode.errors import ChainError, EncodingError
from conode.hashes import ActionHash, AgentKey, HashKind
from conode.validation.entries import PAYMENT, payer_position

__all__ = [
    "ENTRY_HASH_HEAD",
    "CheckedRows",
    "Row",
    "decode",
    "describe",
    "head_row",
    "link_rows",
    "portable",
    "portable_form",
    "position_rows",
    "record_row",
]

ENTRY_HASH_HEAD: Final = b"\x58\x21" + bytes((HashKind.ENTRY,))
"""CBOR's head of a 33-byte string and the entry kind byte: how an action's bytes hold its
entry hash, before the 32 bytes of the digest."""

Row = tuple[bytes, int, bytes, int, int, str | None, bytes, bytes, bytes | None]
"""A ``records`` row: the index columns copied from the action, then the three parts."""


class CheckedRows:
    """Stored rows as portable blobs for ``verify_encoded_chain``, checking the index columns.

    Stops at the first row whose columns disagree with its action bytes, and
    remembers that as ``violation``; ``last`` is the head after the last row.
    """

    def __init__(self, author: AgentKey, rows: Iterator[tuple[object, ...]]) -> None:
        self._author = author
        self._rows = rows
        self.violation: Violation | None = None
        self.last: ChainHead | None = None

    def __iter__(self) -> Iterator[bytes]:
        for position, row in enumerate(self._rows):
            seq, hash_raw, kind, timestamp, entry_type, action_bytes, signature, entry = row
            if not (
                type(action_bytes) is bytes
                and type(signature) is bytes
                and (entry is None or type(entry) is bytes)
            ):
                self.violation = Violation("format", "a stored column is not bytes", position)
                return
            blob = portable(action_bytes, signature, entry)
            try:
                action = Action.from_bytes(action_bytes)
            except EncodingError:
                yield blob  # verify_encoded_chain names the format violation
                return
            action_hash = ActionHash.of(action_bytes)
            columns = (self._author, seq, hash_raw, kind, timestamp, entry_type)
            derived = (
                action.author,
                action.seq,
                action_hash.raw,
                int(action.kind),
                action.timestamp,
                action.entry_type,
            )
            if columns != derived:
                names = ("author", "seq", "hash", "kind", "timestamp", "entry_type")
                wrong = [n for n, a, b in zip(names, columns, derived, strict=True) if a != b]
                self.violation = Violation(
                    "index",
                    f"stored column(s) {', '.join(wrong)} disagree with the action bytes",
                    position,
                    seq if type(seq) is int else None,
                )
                return
            self.last = ChainHead(
                action.author,
                action.seq,
                action_hash,
                action.timestamp,
                action.kind is ActionKind.CLOSE_CHAIN,
            )
            yield blob


def record_row(record: Record) -> Row:
    """``record``'s ``records`` row."""
    action = record.action
    return (
        action.author.raw,
        action.seq,
        record.hash.raw,
        int(action.kind),
        action.timestamp,
        action.entry_type,
        record.action_bytes,
        record.signature,
        record.entry,
    )


def link_rows(records: Iterable[Record]) -> list[tuple[bytes, str, bytes]]:
    """The ``links`` rows of the link records among ``records`` (those whose entry names a base)."""
    rows = []
    for record in records:
        action = record.action
        if action.kind is ActionKind.LINK and action.entry_type is not None:
            base = link_base(record.entry)
            if base is not None:
                rows.append((base, action.entry_type, record.hash.raw))
    return rows


def position_rows(records: Iterable[Record]) -> list[tuple[bytes, int, bytes]]:
    """The ``payer_positions`` rows of the payment records among ``records`` whose author is
    not the payer they name."""
    rows = []
    for record in records:
        if record.action.entry_type == PAYMENT:
            position = payer_position(record.entry)
            if position is not None and position[0] != record.action.author:
                rows.append((position[0].raw, position[1], record.hash.raw))
    return rows


def op_rows(records: Iterable[Record]) -> Iterator[tuple[int, bytes]]:
    """The ``held_ops`` rows of ``records``: each op's location and the record's hash."""
    for record in records:
        for at in op_locations(record):
            yield at, record.hash.raw


def head_row(head: ChainHead) -> tuple[bytes, int, bytes, int, int]:
    """``head``'s ``chains`` row."""
    return (head.author.raw, head.seq, head.hash.raw, head.timestamp, int(head.closed))


def portable(action: object, signature: object, entry: object) -> bytes:
    """The ``Record.to_bytes`` form of stored parts, without decoding them."""
    return encoding.encode([action, signature, entry])


def portable_form(record: Record) -> Record:
    """``record`` as it will read back from the store; ``ChainError`` if it would not.

    ``check_append`` trusts a ``Record``'s parts to agree (action fields and
    action bytes, hash) and does not look inside the entry; the store keeps only
    the bytes, so it checks that they decode to this very record.
    """
    try:
        decoded = Record.from_bytes(record.to_bytes())
    except (EncodingError, TypeError, ValueError) as exc:
        raise ChainError(
            f"refused {record.action.author.short()} seq {record.action.seq}: format: {exc}"
        ) from exc
    if decoded != record:
        raise ChainError(
            f"refused {record.action.author.short()} seq {record.action.seq}: "
            "format: the record's fields disagree with its action bytes"
        )
    return decoded


def decode(action_bytes: object, signature: object, entry: object) -> Record:
    """A record from its stored parts; ``ChainError`` if they are not a record's parts.

    The entry is not decoded here (``verify`` checks it): reading stays cheap.
    """
    if not (
        type(action_bytes) is bytes
        and type(signature) is bytes
        and len(signature) == SIGNATURE_SIZE
        and (entry is None or type(entry) is bytes)
    ):
        raise ChainError("a stored record is corrupt: its columns are not a record's parts")
    try:
        action = Action.from_bytes(action_bytes)
    except EncodingError as exc:
        raise ChainError(f"a stored record is corrupt: {exc}") from exc
    return Record(action, signature, entry, action_bytes, ActionHash.of(action_bytes))


def describe(head: ChainHead | None) -> str:
    """A head in words, for a violation's message."""
    return "none" if head is None else f"seq {head.seq}, {head.hash.short()}"
