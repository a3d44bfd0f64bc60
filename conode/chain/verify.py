"""The pure rules of a source chain, and ``verify_chain``.

A chain is valid when every record, in order:

- is by the same author as the first, whose key is a valid Ed25519 point;
- has ``seq`` one more than the previous (0 for the first) and ``prev`` equal
  to the previous action's hash (none for the first);
- has a timestamp no earlier than the previous one;
- has the shape its kind demands (genesis exactly at seq 0, open-chain exactly
  at seq 1, nothing after a close-chain, entry and ref where the kind needs them);
- carries, if it carries an entry, the entry whose hash the action names;
- is signed by its author over the action's exact bytes.

``check_append`` is one step of that fold; ``verify_chain`` runs it over a
whole chain and names the first record that breaks a rule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from conode.chain.records import ActionKind, ChainHead, Record
from conode.crypto import SIG_ACTION, is_valid_public_key, verify
from conode.errors import EncodingError
from conode.hashes import EntryHash

__all__ = [
    "Violation",
    "check_append",
    "verify_chain",
    "verify_encoded_chain",
]


@dataclass(frozen=True, slots=True)
class Violation:
    """The first broken rule of a chain: where, which rule, and why in words."""

    rule: str
    reason: str
    position: int | None = None
    seq: int | None = None

    def __str__(self) -> str:
        where = "" if self.position is None else f"record {self.position}"
        if self.seq is not None:
            where += f" (seq {self.seq})" if where else f"seq {self.seq}"
        return f"{where}: {self.rule}: {self.reason}" if where else f"{self.rule}: {self.reason}"


# kind -> (needs an entry, needs a ref); False means "must not have one"
_SHAPE: Final = {
    ActionKind.GENESIS: (True, False),
    ActionKind.CREATE: (True, False),
    ActionKind.UPDATE: (True, True),
    ActionKind.DELETE: (False, True),
    ActionKind.LINK: (True, False),
    ActionKind.CLOSE_CHAIN: (True, False),
    ActionKind.OPEN_CHAIN: (True, True),
}


def check_append(head: ChainHead | None, record: Record) -> Violation | None:
    """The rule ``record`` breaks as the next record after ``head`` (``None``: it is the first)."""
    action = record.action
    if head is None:
        if action.seq != 0 or action.prev is not None:
            return Violation("seq", f"a chain starts at seq 0 with no prev, not seq {action.seq}")
        if not is_valid_public_key(action.author.raw):
            return Violation("author", "the author is not a valid Ed25519 public key")
    else:
        if action.author != head.author:
            return Violation("author", f"by {action.author.short()}, not the chain's author")
        if head.closed:
            return Violation("closed", f"the chain was closed at seq {head.seq}")
        if action.seq != head.seq + 1:
            return Violation("seq", f"seq {action.seq} does not follow seq {head.seq}")
        if action.prev != head.hash:
            return Violation("prev", f"prev does not name the action at seq {head.seq}")
        if action.timestamp < head.timestamp:
            return Violation(
                "timestamp", f"{action.timestamp} µs is earlier than the previous {head.timestamp}"
            )
    shape = _check_shape(record)
    if shape is not None:
        return shape
    if record.entry is not None and EntryHash.of(record.entry) != action.entry_hash:
        return Violation("entry-hash", "the entry does not match the action's entry hash")
    if not verify(action.author.raw, SIG_ACTION, record.action_bytes, record.signature):
        return Violation("signature", "the author's signature does not verify")
    return None


def _check_shape(record: Record) -> Violation | None:
    action = record.action
    kind = action.kind
    if (kind is ActionKind.GENESIS) != (action.seq == 0):
        return Violation("kind", f"{kind.name.lower()} at seq {action.seq}")
    if kind is ActionKind.OPEN_CHAIN and action.seq != 1:
        return Violation("kind", "open-chain comes right after genesis, at seq 1")
    needs_entry, needs_ref = _SHAPE[kind]
    if (action.entry_hash is not None) != needs_entry:
        verb = "needs" if needs_entry else "must not have"
        return Violation("kind", f"{kind.name.lower()} {verb} an entry")
    if (action.ref is not None) != needs_ref:
        verb = "needs" if needs_ref else "must not have"
        return Violation("kind", f"{kind.name.lower()} {verb} a ref")
    if kind in (ActionKind.CREATE, ActionKind.UPDATE, ActionKind.LINK) and not action.entry_type:
        return Violation("kind", f"{kind.name.lower()} needs an entry type")
    if record.entry is not None and action.entry_hash is None:
        return Violation("entry-hash", "an entry is attached but the action names none")
    return None


def verify_chain(records: Iterable[Record], start: ChainHead | None = None) -> Violation | None:
    """The first violation in ``records`` (a chain from genesis, or from after ``start``), or None.

    The violation's ``position`` counts records from 0 in the order given.
    """
    return _first_violation(records, start)


def verify_encoded_chain(
    blobs: Iterable[bytes], start: ChainHead | None = None
) -> Violation | None:
    """``verify_chain`` over records in their portable byte form; bad bytes are a ``format`` violation."""
    return _first_violation(_decode_each(blobs), start)


def _decode_each(blobs: Iterable[bytes]) -> Iterator[Record | Violation]:
    for blob in blobs:
        try:
            yield Record.from_bytes(blob)
        except EncodingError as exc:
            yield Violation("format", str(exc))
            return


def _first_violation(
    records: Iterable[Record | Violation], start: ChainHead | None
) -> Violation | None:
    head = start
    for position, record in enumerate(records):
        if isinstance(record, Violation):
            return dataclasses.replace(record, position=position)
        violation = check_append(head, record)
        if violation is not None:
            return dataclasses.replace(violation, position=position, seq=record.action.seq)
        head = ChainHead.after(record)
    return None
