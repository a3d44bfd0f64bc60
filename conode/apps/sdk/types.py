"""The SDK's entry and link types: an app's declared kinds of record, their schemas (with the
fields the engine reads, ``rules`` among them) and their validators; ``anchor``."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from conode import encoding
from conode.apps.sdk.fields import Bytes, Field, Hash, Int, ListOf, Map, Optional, Text
from conode.chain.records import MAX_ENTRY_TYPE_LENGTH
from conode.hashes import ActionHash, EntryHash
from conode.validation.entries import (
    CREDIT_FIELD,
    DUE_FIELD,
    MAX_AMOUNT,
    MAX_ONCE,
    ONCE_FIELD,
)
from conode.validation.schema import INT63
from conode.validation.verdict import Verdict

if TYPE_CHECKING:
    from conode.apps.sdk.context import Context

__all__ = ["RESERVED_FIELDS", "RULES_FIELD", "EntryType", "LinkType", "Validator", "anchor"]

_NAME: Final = re.compile(r"[a-z][a-z0-9-]{0,30}")
_NAME_MAX: Final = 31
assert 2 * _NAME_MAX + 1 <= MAX_ENTRY_TYPE_LENGTH  # any ``app/type`` fits an action's entry type

RULES_FIELD: Final = "rules"
"""The field every entry and link may carry: the governance log head it was made under."""


Validator = Callable[["Context"], Verdict]
"""An app's own rule for one type: pure, reads only what the ``Context`` lends."""

_RULES: Final = Optional(Hash(ActionHash))


_ONCE: Final = Optional(Bytes(MAX_ONCE, 1))
_CREDIT: Final = Optional(
    Map(
        {
            "prev_credit": Optional(Hash(ActionHash)),
            "delta": Int(-MAX_AMOUNT, MAX_AMOUNT),
            "balance_after": Int(-MAX_AMOUNT, MAX_AMOUNT),
        }
    )
)
_DUE: Final = Optional(Int(0, INT63))
RESERVED_FIELDS: Final = frozenset({RULES_FIELD, ONCE_FIELD, CREDIT_FIELD, DUE_FIELD})
"""Fields the SDK adds to entry types (the built-in rules read them): an app may not declare them."""


def _schema(name: str, fields: Mapping[str, Field]) -> Map:
    if _NAME.fullmatch(name) is None:
        raise ValueError(
            f"a type name is 1 to 31 of a-z, 0-9 and '-', starting with a letter: {name!r}"
        )
    reserved = RESERVED_FIELDS & set(fields)
    if reserved:
        raise ValueError(
            f"{name}: {', '.join(sorted(reserved))} is reserved (rules, once, credit, due)"
        )
    return Map({**fields, RULES_FIELD: _RULES})


@dataclass(frozen=True, slots=True, eq=False)
class EntryType:
    """An entry type of an app: its short name (``signal`` for ``lookout/signal``), schema, rule.

    ``unique``: the entry's key under which an author may commit at most one
    entry of this type (e.g. one poll per item). The entry carries the key as
    ``once`` (``App.prepare`` fills it in; the type's rule checks it is the
    key ``unique`` gives); the activity fold refuses a second use, because a
    record's own dependencies cannot show what else its author committed.
    ``moves_credit``: entries of this type move their author's balance by a
    ``credit`` move (``{prev_credit, delta, balance_after}``, filled in by
    ``App.prepare`` from the delta given). Every peer checks the chain, the
    limits and that the rules let this app issue credit; the type's own rule
    says whether the delta is justified.
    ``duty``: entries of this type may oblige their author with a ``due``
    time (µs): from then on the author may not pay, as a payer, until it
    commits the next entry of this type, which sets the due anew or, carrying
    none, clears it (the activity fold's rule ``overdue``, which every peer
    runs whether or not it runs the app). The type's own rule says what the
    due must be; it must always let the author write the next entry, or the
    author could never pay again.
    ``searchable``: the text fields (``Text``, optional text, or lists of text)
    a node indexes for full-text search (``AppAPI.search``); ``text`` joins them.
    """

    name: str
    fields: Mapping[str, Field]
    validate: Validator | None = None
    updatable: bool = False
    unique: Callable[[Mapping[str, Any]], bytes] | None = None
    moves_credit: bool = False
    doc: str = ""
    searchable: tuple[str, ...] = ()
    duty: bool = False
    schema: Map = field(init=False)

    def __post_init__(self) -> None:
        schema = _schema(self.name, self.fields)
        extra: dict[str, Field] = {}
        if self.unique is not None:
            extra[ONCE_FIELD] = _ONCE
        if self.moves_credit:
            extra[CREDIT_FIELD] = _CREDIT
        if self.duty:
            extra[DUE_FIELD] = _DUE
        if extra:
            schema = Map({**schema.fields, **extra})
        object.__setattr__(self, "schema", schema)
        object.__setattr__(self, "searchable", tuple(self.searchable))
        for name in self.searchable:
            if not _is_text(self.fields.get(name)):
                raise ValueError(f"{self.name}: searchable field {name!r} is not a text field")

    def text(self, entry: Mapping[str, Any]) -> str:
        """The searchable text of a checked entry: its ``searchable`` fields, one per line."""
        parts: list[str] = []
        for name in self.searchable:
            value = entry.get(name)
            if isinstance(value, str):
                parts.append(value)
            elif isinstance(value, tuple):
                parts.extend(value)
        return "\n".join(p for p in parts if p)

    def read(self, value: Any) -> Mapping[str, Any]:
        """The checked entry; ``SchemaError`` naming the first field that does not fit."""
        return self.schema.read(value, "")

    def write(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The CBOR-ready entry for ``values`` (typed hashes allowed); ``SchemaError`` if it would not read."""
        return self.schema.write(values, "")


def _is_text(item: Field | None) -> bool:
    if isinstance(item, Optional):
        item = item.inner
    if isinstance(item, ListOf):
        item = item.item
    return isinstance(item, Text)


@dataclass(frozen=True, slots=True, eq=False)
class LinkType:
    """A link type of an app: ``base`` -> ``target`` with a ``tag``, for indexes (e.g. by sector).

    A link is a ``LINK`` action whose entry is ``{base, target, tag[, rules]}``;
    the DHT holds it at the authorities of ``base``. Use ``anchor`` for a base
    that stands for a name (a sector, a category) rather than a record.
    """

    name: str
    base: Field = Hash(EntryHash)  # noqa: RUF009 (fields are frozen dataclasses)
    target: Field = Hash(ActionHash)  # noqa: RUF009
    tag: Field = Text(200)  # noqa: RUF009
    validate: Validator | None = None
    doc: str = ""
    schema: Map = field(init=False)

    def __post_init__(self) -> None:
        fields = {"base": self.base, "target": self.target, "tag": self.tag}
        object.__setattr__(self, "schema", _schema(self.name, fields))

    def read(self, value: Any) -> Mapping[str, Any]:
        """The checked link entry; ``SchemaError`` naming the first field that does not fit."""
        return self.schema.read(value, "")

    def write(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The CBOR-ready link entry for ``values``."""
        return self.schema.write(values, "")


def anchor(app_id: str, name: str) -> EntryHash:
    """The base hash that stands for ``name`` in ``app_id`` (a sector, a category): a link index."""
    return EntryHash.of(encoding.encode(["conode-anchor", app_id, name]))
