"""The app SDK: declarative entry types, pure validators, callable functions, bundles.

How it works:

- An ``App`` declares its **entry types** (``EntryType``) and **link types**
  (``LinkType``), each with a schema of ``Field`` values. The engine hands the
  app every record whose entry type starts with ``<app id>/``; the app reads
  the entry against its schema first (a structural failure is
  ``Invalid("schema", ...)`` naming the field), then runs the type's own
  validator with a ``Context`` that lends only deterministic reads: the
  record, the checked entry, the rules in force, ``must_get`` (a dependency,
  checked by the engine), ``party`` (who an agent is at the record's time) and
  the author's role. A validator returns a ``Verdict`` and never raises for a
  "no".
- Every entry and link may carry ``rules``: the governance log head it was
  made under (the engine reads it to find the rules in force, as for the
  built-in types). The SDK adds it to every schema; an app may not declare it.
- **Functions** (``@app.function``) are what the node exposes as
  ``conode call APP FN``; they receive an ``AppAPI`` (implemented by the node).
  An entry type may name ``searchable`` text fields: the node indexes them
  (``App.search_text``) and ``AppAPI.search`` finds records by words.
- **Watchers** (``@app.watch("offer")``) are what the node calls, by itself,
  with each record of that type it has judged valid and stored, whoever
  made it and however it arrived; with ``AppAPI.state`` (the app's own
  key-value state on the node) an app reacts to records without being asked.
- **Bundles**: an app's code travels as a deterministic tar archive of its
  package's ``.py``/``.toml``/``.md`` files; the charter pins its
  ``BundleHash``, and ``may_run`` says whether a node may run it.

Pure: no I/O, no clock, no randomness (``conode.apps.loader`` is the shell that
reads package directories and entry points). Apps import only this module,
``conode.validation`` values and the standard library.
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, TypeVar, overload

from conode import encoding
from conode.chain import ActionKind, Record
from conode.chain.records import MAX_ENTRY_TYPE_LENGTH
from conode.errors import AppError, EncodingError
from conode.hashes import ActionHash, AgentKey, BundleHash, EntryHash, TypedHash
from conode.validation import credit
from conode.validation.activity import Activity
from conode.validation.charter import AppPin
from conode.validation.credit import Party
from conode.validation.entries import CREDIT_FIELD, MAX_AMOUNT, MAX_ONCE, ONCE_FIELD, Role
from conode.validation.governance import Rules
from conode.validation.schema import INT63, SchemaError
from conode.validation.verdict import VALID, Invalid, Missing, Valid, Verdict

if TYPE_CHECKING:
    from conode.validation.engine import Engine, ValidationContext

__all__ = [
    "BUNDLE_SUFFIXES",
    "MAX_BUNDLE_FILES",
    "RESERVED_APP_IDS",
    "RULES_FIELD",
    "App",
    "AppAPI",
    "AppFunction",
    "AppState",
    "ApprovalStore",
    "Bool",
    "Bytes",
    "Context",
    "EntryType",
    "Fetched",
    "Field",
    "GovernanceAPI",
    "Hash",
    "Int",
    "LinkType",
    "ListOf",
    "Map",
    "OneOf",
    "Optional",
    "Read",
    "Role",
    "Text",
    "Validator",
    "Watcher",
    "anchor",
    "bundle_hash",
    "may_run",
    "pack_bundle",
    "unpack_bundle",
    "verify_bundle",
]

RULES_FIELD: Final = "rules"
"""The field every entry and link may carry: the governance log head it was made under."""
RESERVED_APP_IDS: Final = frozenset({"credit", "gov"})
"""Entry-type prefixes the engine judges itself."""
BUNDLE_SUFFIXES: Final = (".md", ".py", ".toml")
"""The only files a bundle holds: source and its documentation, never data or native code."""

_NAME: Final = re.compile(r"[a-z][a-z0-9-]{0,30}")
_NAME_MAX: Final = 31
assert 2 * _NAME_MAX + 1 <= MAX_ENTRY_TYPE_LENGTH  # any ``app/type`` fits an action's entry type
_BUNDLE_PATH: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")
_MAX_BUNDLE_PATH: Final = 200

H = TypeVar("H", bound=TypedHash)


# -- fields ------------------------------------------------------------------------------------


class Field:
    """One value's shape: ``read`` checks a decoded CBOR value, ``write`` makes one."""

    __slots__ = ()

    def read(self, value: Any, path: str) -> Any:
        """The checked value (typed hashes read, lists as tuples); ``SchemaError`` naming ``path``."""
        raise NotImplementedError

    def write(self, value: Any, path: str) -> Any:
        """The CBOR value for ``value`` (typed hashes to bytes); ``SchemaError`` naming ``path``."""
        return self.read(value, path)

    def describe(self) -> str:
        """The shape in words (for errors, help and docs)."""
        raise NotImplementedError

    @property
    def optional(self) -> bool:
        """True if the value may be absent or null."""
        return False


def _fail(path: str, what: str) -> SchemaError:
    return SchemaError(f"{path}: must be {what}")


@dataclass(frozen=True, slots=True)
class Text(Field):
    """Text of ``min_len`` to ``max_len`` characters, optionally matching ``pattern`` whole."""

    max_len: int
    min_len: int = 0
    pattern: str | None = None

    def read(self, value: Any, path: str) -> str:
        if type(value) is not str or not self.min_len <= len(value) <= self.max_len:
            raise _fail(path, self.describe())
        if self.pattern is not None and re.fullmatch(self.pattern, value) is None:
            raise _fail(path, self.describe())
        return value

    def describe(self) -> str:
        shape = f"text of {self.min_len} to {self.max_len} characters"
        return shape if self.pattern is None else f"{shape} matching {self.pattern}"


@dataclass(frozen=True, slots=True)
class Int(Field):
    """An integer in ``[lo, hi]`` (amounts in minor units, times in microseconds: never floats)."""

    lo: int = -INT63
    hi: int = INT63

    def read(self, value: Any, path: str) -> int:
        if type(value) is not int or not self.lo <= value <= self.hi:
            raise _fail(path, self.describe())
        return value

    def describe(self) -> str:
        return f"an integer in [{self.lo}, {self.hi}]"


@dataclass(frozen=True, slots=True)
class Bool(Field):
    """True or false."""

    def read(self, value: Any, path: str) -> bool:
        if type(value) is not bool:
            raise _fail(path, self.describe())
        return value

    def describe(self) -> str:
        return "true or false"


@dataclass(frozen=True, slots=True)
class Bytes(Field):
    """A byte string of ``min_len`` to ``max_len`` bytes."""

    max_len: int
    min_len: int = 0

    def read(self, value: Any, path: str) -> bytes:
        if type(value) is not bytes or not self.min_len <= len(value) <= self.max_len:
            raise _fail(path, self.describe())
        return value

    def describe(self) -> str:
        return f"{self.min_len} to {self.max_len} bytes"


@dataclass(frozen=True, slots=True)
class Hash(Field):
    """A typed hash of class ``cls`` (its 33-byte wire form); read as a ``cls`` value."""

    cls: type[TypedHash]

    def read(self, value: Any, path: str) -> TypedHash:
        if type(value) is not bytes:
            raise _fail(path, self.describe())
        try:
            return self.cls.from_bytes(value)
        except EncodingError as exc:
            raise SchemaError(f"{path}: {exc}") from exc

    def write(self, value: Any, path: str) -> bytes:
        if isinstance(value, self.cls):
            return value.to_bytes()
        return self.read(value, path).to_bytes()

    def describe(self) -> str:
        return f"{self.cls.__name__} bytes"


@dataclass(frozen=True, slots=True)
class Optional(Field):
    """``inner``, or absent, or null (read as ``None``)."""

    inner: Field

    def read(self, value: Any, path: str) -> Any:
        return None if value is None else self.inner.read(value, path)

    def write(self, value: Any, path: str) -> Any:
        return None if value is None else self.inner.write(value, path)

    def describe(self) -> str:
        return f"{self.inner.describe()}, or null"

    @property
    def optional(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class ListOf(Field):
    """A list of ``min_len`` to ``max_len`` items of ``item``; read as a tuple."""

    item: Field
    max_len: int
    min_len: int = 0
    unique: bool = False
    """No item may appear twice (compared as read)."""

    def read(self, value: Any, path: str) -> tuple[Any, ...]:
        if type(value) is not list or not self.min_len <= len(value) <= self.max_len:
            raise _fail(path, self.describe())
        items = tuple(self.item.read(v, f"{path}[{i}]") for i, v in enumerate(value))
        self._check_unique(items, path)
        return items

    def write(self, value: Any, path: str) -> list[Any]:
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
            raise _fail(path, self.describe())
        items = [self.item.write(v, f"{path}[{i}]") for i, v in enumerate(value)]
        self.read(items, path)
        return items

    def _check_unique(self, items: tuple[Any, ...], path: str) -> None:
        if not self.unique:
            return
        seen: list[Any] = []
        for i, item in enumerate(items):
            if item in seen:
                raise SchemaError(f"{path}[{i}]: appears twice")
            seen.append(item)

    def describe(self) -> str:
        unique = " different" if self.unique else ""
        return (
            f"a list of {self.min_len} to {self.max_len}{unique} items, each {self.item.describe()}"
        )


@dataclass(frozen=True, slots=True)
class OneOf(Field):
    """One of a fixed set of text or integer choices."""

    choices: tuple[str | int, ...]

    def __init__(self, *choices: str | int) -> None:
        if not choices or any(type(c) not in (str, int) for c in choices):
            raise ValueError("OneOf takes one or more text or integer choices")
        object.__setattr__(self, "choices", tuple(choices))

    def read(self, value: Any, path: str) -> Any:
        # type() and not ==: True == 1, and "1" is not 1
        if not any(type(value) is type(c) and value == c for c in self.choices):
            raise _fail(path, self.describe())
        return value

    def describe(self) -> str:
        return "one of " + ", ".join(repr(c) for c in self.choices)


@dataclass(frozen=True, slots=True, eq=False)
class Map(Field):
    """A map with exactly these fields (optional ones may be absent); read as a read-only map."""

    fields: Mapping[str, Field]

    def __post_init__(self) -> None:
        for name, item in self.fields.items():
            if type(name) is not str or not name:
                raise ValueError(f"field names are non-empty text, not {name!r}")
            if not isinstance(item, Field):
                raise TypeError(f"field {name!r} is not a Field")
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))

    def read(self, value: Any, path: str) -> Mapping[str, Any]:
        if type(value) is not dict:
            raise _fail(path, "a map")
        extra = sorted(set(value) - set(self.fields), key=str)
        if extra:
            raise SchemaError(f"{path}: has unknown fields {', '.join(map(str, extra))}")
        out: dict[str, Any] = {}
        for name, item in self.fields.items():
            where = _join(path, name)
            if name not in value and not item.optional:
                raise SchemaError(f"{where}: is missing ({item.describe()})")
            out[name] = item.read(value.get(name), where)
        return MappingProxyType(out)

    def write(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise _fail(path, "a map")
        extra = sorted(set(value) - set(self.fields), key=str)
        if extra:
            raise SchemaError(f"{path}: has unknown fields {', '.join(map(str, extra))}")
        out: dict[str, Any] = {}
        for name, item in self.fields.items():
            where = _join(path, name)
            if value.get(name) is None and item.optional:
                continue  # absent and null read alike; absent is shorter
            if name not in value:
                raise SchemaError(f"{where}: is missing ({item.describe()})")
            out[name] = item.write(value[name], where)
        self.read(out, path)
        return out

    def describe(self) -> str:
        return "a map of " + ", ".join(f"{n}: {f.describe()}" for n, f in self.fields.items())


def _join(path: str, name: str) -> str:
    return name if not path else f"{path}.{name}"


# -- entry and link types --------------------------------------------------------------------------

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
RESERVED_FIELDS: Final = frozenset({RULES_FIELD, ONCE_FIELD, CREDIT_FIELD})
"""Fields the SDK adds to every entry type (the built-in rules read them): an app may not declare them."""


def _schema(name: str, fields: Mapping[str, Field]) -> Map:
    if _NAME.fullmatch(name) is None:
        raise ValueError(
            f"a type name is 1 to 31 of a-z, 0-9 and '-', starting with a letter: {name!r}"
        )
    reserved = RESERVED_FIELDS & set(fields)
    if reserved:
        raise ValueError(f"{name}: {', '.join(sorted(reserved))} is reserved (rules, once, credit)")
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
    schema: Map = field(init=False)

    def __post_init__(self) -> None:
        schema = _schema(self.name, self.fields)
        extra: dict[str, Field] = {}
        if self.unique is not None:
            extra[ONCE_FIELD] = _ONCE
        if self.moves_credit:
            extra[CREDIT_FIELD] = _CREDIT
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
    base: Field = Hash(EntryHash)
    target: Field = Hash(ActionHash)
    tag: Field = Text(200)
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


# -- the validation context ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fetched:
    """A dependency fetched through ``Context.must_get_entry``: the record, its type and entry.

    ``entry`` is read with the app's schema for the app's own types, and is the
    raw decoded value for other apps' types.
    """

    record: Record
    entry_type: str
    entry: Any

    @property
    def hash(self) -> ActionHash:
        return self.record.hash

    @property
    def author(self) -> AgentKey:
        return self.record.action.author


class Context:
    """What a validator may read: the record, its checked entry, the rules, and checked dependencies.

    Every read is deterministic (held data named by hash, checked by the
    engine before it is lent); a read that needs data this peer does not
    hold returns ``Missing``, which the validator returns as it is.
    """

    __slots__ = ("_author", "_engine", "_vctx", "app", "entry", "record", "rules")

    def __init__(
        self,
        app: App,
        record: Record,
        entry: Mapping[str, Any],
        rules: Rules,
        engine: Engine,
        vctx: ValidationContext,
    ) -> None:
        self.app = app
        self.record = record
        self.entry = entry
        self.rules = rules
        self._engine = engine
        self._vctx = vctx
        self._author: Party | Verdict | None = None

    @property
    def entry_type(self) -> str:
        """The record's full entry type (``app/type``)."""
        return self.record.action.entry_type or ""

    @property
    def author(self) -> AgentKey:
        return self.record.action.author

    @property
    def timestamp(self) -> int:
        """The record's timestamp (microseconds): "now" for every rule about this record."""
        return self.record.action.timestamp

    def must_get(self, action: ActionHash) -> Record | Verdict:
        """The valid record ``action`` names, or the verdict that stops it (``Missing``, ``Invalid``)."""
        return self._engine.dependency(action, self._vctx)

    def must_get_entry(
        self,
        action: ActionHash,
        entry_types: Collection[str],
        *,
        rule: str = "reference",
        what: str = "the reference",
    ) -> Fetched | Verdict:
        """The valid record ``action`` names, if it is of one of ``entry_types`` (else ``Invalid(rule)``)."""
        got = self._fetch([(what, action)], entry_types, rule)
        return got[0] if isinstance(got, list) else got

    def must_get_entries(
        self,
        actions: Sequence[ActionHash],
        entry_types: Collection[str],
        *,
        rule: str = "reference",
        what: str = "references",
    ) -> list[Fetched] | Verdict:
        """``must_get_entry`` of each (named ``what[i]``); every missing one is named in one ``Missing``."""
        return self._fetch([(f"{what}[{i}]", a) for i, a in enumerate(actions)], entry_types, rule)

    def _fetch(
        self, actions: Sequence[tuple[str, ActionHash]], entry_types: Collection[str], rule: str
    ) -> list[Fetched] | Verdict:
        # Missing ones are gathered so that the node fetches them in one round; the first
        # Invalid stops the walk (any Invalid is final, whichever this peer meets first).
        fetched: list[Fetched] = []
        missing: list[TypedHash] = []
        for where, action in actions:
            record = self.must_get(action)
            if isinstance(record, Missing):
                missing.extend(d for d in record.dependencies if d not in missing)
                continue
            if not isinstance(record, Record):
                return record
            got = self.app.fetched(record)
            if got.entry_type not in entry_types:
                wanted = " or ".join(sorted(entry_types))
                return Invalid(rule, f"{where} is {got.entry_type or 'not an entry'}, not {wanted}")
            fetched.append(got)
        if missing:
            return Missing(tuple(missing))
        return fetched

    def party(self, agent: AgentKey | None = None) -> Party | Verdict:
        """Who ``agent`` (default: the author) is at the record's time, or why it is no one.

        Read from the genesis of ``agent`` this peer holds: an app entry pins no genesis
        (``credit.party_by_held_genesis`` says what that leaves open for a forked agent).
        """
        if agent is None or agent == self.author:
            if self._author is None:
                self._author = credit.party_by_held_genesis(
                    self._engine, self.author, self.timestamp, self.rules, self._vctx
                )
            return self._author
        return credit.party_by_held_genesis(
            self._engine, agent, self.timestamp, self.rules, self._vctx
        )

    def role(self) -> str | Verdict:
        """The author's role (``Role.COOP``, ``Role.MEMBER``, ``Role.FOUNDATION``), or why it has none."""
        party = self.party()
        return party.role if isinstance(party, Party) else party

    def require_role(self, *roles: str) -> Verdict:
        """``VALID`` if the author is now a valid party of one of ``roles``; else ``Invalid("role")``."""
        party = self.party()
        if not isinstance(party, Party):
            return party
        if party.role not in roles:
            return Invalid(
                "role", f"{party.name} is a {party.role}; only {' or '.join(roles)} may post this"
            )
        return VALID


# -- functions and the node's API ----------------------------------------------------------------------


class GovernanceAPI(Protocol):
    """Built-in governance as the node runs it, lent to app functions (``api.governance``).

    Proposals, votes and ratifications are the engine's ``gov/*`` records,
    not an app's, so an app reaches them here rather than through ``commit``.
    Values are JSON values (hashes as text, amounts in minor units, times in µs).
    """

    def proposals(self) -> Sequence[Mapping[str, Any]]:
        """Every proposal the node holds, newest first: kind, title, summary, deadline,
        votes, tally, status (open, passed, failed, ratified), executed, comments, reports."""

    def foundation(self) -> Mapping[str, Any]:
        """The Foundation: key, balance, steward here?, what it disbursed and still owes."""

    async def propose(
        self, coop: AgentKey, kind: str, title: str, body: Mapping[str, Any]
    ) -> ActionHash:
        """A hosted co-op proposes (deadline: the record's time plus the voting period)."""

    async def vote(self, coop: AgentKey, proposal: ActionHash, choice: str) -> ActionHash:
        """A hosted co-op (or member, where the rules let members vote) votes ``yes``, ``no`` or
        ``abstain`` (once, by the deadline)."""

    async def ratify(self, coop: AgentKey, proposal: ActionHash) -> ActionHash:
        """A hosted co-op ratifies a proposal that passed: entry n+1 of the node's log."""


class AppState(Protocol):
    """An app's own small key-value state on one node: never signed, never sent, on no chain.

    Keys are text (at most 512 characters); values are CBOR data model values
    (text-keyed maps, lists, integers, text, bytes, booleans, null; at most 64 KiB
    encoded). Each call is atomic and durable; apps never see each other's state.
    """

    def get(self, key: str) -> Any:
        """The value kept under ``key``, or None."""

    def add(self, key: str, value: Any) -> bool:
        """Keep ``value`` under ``key`` only if nothing is there yet; True if it was new
        (the idempotent write a watcher needs: a record watched twice changes nothing)."""

    def put(self, values: Mapping[str, Any]) -> None:
        """Keep each value under its key, replacing what was there, in one write."""

    def items(self, prefix: str = "") -> Sequence[tuple[str, Any]]:
        """Every (key, value) whose key starts with ``prefix``, in key order."""


class AppAPI(Protocol):
    """What the node lends an app's functions (implemented by the node; not pure)."""

    @property
    def app_id(self) -> str:
        """The app this API is bound to: commits and queries stay within its types."""

    def agents(self) -> Sequence[AgentKey]:
        """The agents this node hosts (who may commit)."""

    async def commit(
        self, agent: AgentKey, entry_type: str, entry: Mapping[str, Any]
    ) -> ActionHash:
        """Commit an entry of this app (``entry_type`` of this app) on a hosted agent's chain.

        The node fills in ``rules`` (its governance log head) when the entry
        has none, judges the record with every rule, stores and publishes it;
        a refusal raises ``ValidationError`` naming the rule.
        """

    async def link(
        self, agent: AgentKey, link_type: str, base: TypedHash, target: TypedHash, tag: Any
    ) -> ActionHash:
        """Commit a link of this app's ``link_type`` on a hosted agent's chain (as ``commit``)."""

    async def fetch_links(
        self, link_type: str, *bases: TypedHash, wait: float = 3.0
    ) -> Sequence[Record]:
        """Refresh this node's links of ``link_type`` at each of ``bases`` from the DHT.

        The node asks each base's authorities at once (all bases in parallel) and
        takes in every valid link they hold with its target and the target's
        chain, judged as anything the node takes in; it gives up on what has not
        come within ``wait`` seconds (a peer that does not answer adds nothing).
        A base the node had an answer for in the last 30 s is not asked again.
        The link records newly held; read the rest as always (``records``, ``search``).
        """

    def records(
        self, *entry_types: str, authors: Collection[AgentKey] | None = None
    ) -> Sequence[Record]:
        """Valid records this node holds of these types of this app (all its types if none named);
        with ``authors``, only theirs (read through the store's index, not filtered after)."""

    def get(self, action: ActionHash) -> Record | None:
        """A held record by action hash."""

    def now(self) -> int:
        """The node's clock, in microseconds."""

    def rules(self) -> Rules:
        """The rules in force now, under the node's governance head (caps, shares, limits)."""

    def activity(self, agent: AgentKey) -> Activity:
        """Where a held chain stands here: its head, last credit action and balance."""

    def search(self, text: str, *entry_types: str, limit: int = 50) -> Sequence[Record]:
        """Held valid records of these types (all this app's searchable types if none named)
        whose searchable text matches every word of ``text``, best match first (bm25).

        ``text`` is what a person typed: words, not a query language (quotes,
        ``AND``, ``*`` and the like are read as plain words). No words: no records.
        """

    @property
    def governance(self) -> GovernanceAPI:
        """Built-in governance: proposals, votes, ratifications, the Foundation."""

    @property
    def state(self) -> AppState:
        """This app's own key-value state on this node (an inbox, read marks, a cursor)."""


AppFunction = Callable[..., Any]
"""``fn(api: AppAPI, **params)``: a plain or ``async`` function; the node awaits a coroutine."""
Watcher = Callable[[AppAPI, Record], Awaitable[None] | None]
"""``fn(api, record)``: called by the node with each valid record of a watched type it stores
(``App.watch``); a plain or ``async`` function. At least once per record: make it idempotent."""
W = TypeVar("W", bound=Watcher)
F = TypeVar("F", bound=Callable[..., Any])


# -- the app ---------------------------------------------------------------------------------------------


class App:
    """An app: its id, version, entry and link types, and functions; the engine's ``AppValidator``.

    Invariants: ids and type names are 1 to 31 of ``a-z0-9-`` (so ``<id>/<name>``
    fits an action's entry type); every type name is unique within the app;
    the id is not a built-in prefix (``credit``, ``gov``).
    """

    __slots__ = ("_types", "app_id", "doc", "functions", "version", "watchers")

    def __init__(
        self,
        id: str,
        version: str,
        entry_types: Iterable[EntryType] = (),
        link_types: Iterable[LinkType] = (),
        functions: Mapping[str, AppFunction] | None = None,
        *,
        doc: str = "",
    ) -> None:
        if _NAME.fullmatch(id) is None:
            raise ValueError(
                f"an app id is 1 to 31 of a-z, 0-9 and '-', starting with a letter: {id!r}"
            )
        if id in RESERVED_APP_IDS:
            raise ValueError(f"{id!r} is a built-in prefix")
        if not 1 <= len(version) <= 64:
            raise ValueError("a version is 1 to 64 characters")
        self.app_id = id
        self.version = version
        self.doc = doc
        self._types: dict[str, EntryType | LinkType] = {}
        specs: list[EntryType | LinkType] = [*entry_types, *link_types]
        for spec in specs:
            full = f"{id}/{spec.name}"
            if full in self._types:
                raise ValueError(f"{full} is declared twice")
            self._types[full] = spec
        self.functions: dict[str, AppFunction] = dict(functions or {})
        self.watchers: dict[str, list[Watcher]] = {}
        """The watchers of each watched type, by full type name (``App.watch``)."""

    def __repr__(self) -> str:
        return f"App({self.app_id!r}, {self.version!r})"

    @property
    def id(self) -> str:
        return self.app_id

    # -- types ------------------------------------------------------------------------------------------

    @property
    def entry_types(self) -> Mapping[str, EntryType]:
        """The entry types by full name."""
        return {n: t for n, t in self._types.items() if isinstance(t, EntryType)}

    @property
    def link_types(self) -> Mapping[str, LinkType]:
        """The link types by full name."""
        return {n: t for n, t in self._types.items() if isinstance(t, LinkType)}

    def type_name(self, name: str) -> str:
        """The full name (``app/name``) of one of this app's types; ``KeyError`` if it has none."""
        full = name if "/" in name else f"{self.app_id}/{name}"
        if full not in self._types:
            raise KeyError(f"{self.app_id} has no type {name!r}")
        return full

    def entry(self, name: str, **values: Any) -> dict[str, Any]:
        """A CBOR-ready entry of type ``name`` (short or full), checked; ``SchemaError`` if not.

        A type with a ``unique`` key gets its ``once`` filled in (unless given).
        """
        spec = self._types[self.type_name(name)]
        try:
            written = spec.write(values)
            if isinstance(spec, EntryType) and spec.unique is not None and ONCE_FIELD not in values:
                written[ONCE_FIELD] = spec.unique(spec.read(written))
            return written
        except SchemaError as exc:
            raise SchemaError(f"{self.type_name(name)}: {exc}") from exc

    @property
    def searchable_types(self) -> tuple[str, ...]:
        """The full names of the entry types with searchable text (``EntryType.searchable``)."""
        return tuple(n for n, t in self.entry_types.items() if t.searchable)

    def search_text(self, record: Record) -> str | None:
        """The text a node indexes for ``record`` (``EntryType.text``); None if it has none."""
        spec = self._types.get(record.action.entry_type or "")
        if not isinstance(spec, EntryType) or not spec.searchable:
            return None
        read = self.read(record)
        return None if read is None else spec.text(read.entry)

    def read(self, record: Record) -> Read | None:
        """A record of one of this app's types with its checked entry; ``None`` for any other."""
        entry_type = record.action.entry_type or ""
        spec = self._types.get(entry_type)
        if spec is None or record.entry is None:
            return None
        try:
            return Read(record, entry_type, spec.read(record.entry_value()))
        except (EncodingError, ValueError):
            return None

    def fetched(self, record: Record) -> Fetched:
        """A (valid) dependency with its entry read by this app's schema where the type is ours."""
        entry_type = record.action.entry_type or ""
        if record.entry is None:
            return Fetched(record, entry_type, None)
        spec = self._types.get(entry_type)
        if spec is None:
            return Fetched(record, entry_type, record.entry_value())
        return Fetched(record, entry_type, spec.read(record.entry_value()))

    # -- functions -----------------------------------------------------------------------------------------

    @overload
    def function(self, fn: F, /) -> F: ...
    @overload
    def function(self, name: str, /) -> Callable[[F], F]: ...

    def function(self, arg: Any, /) -> Any:
        """Register ``fn(api, **params)`` for ``conode call``: ``@app.function`` or ``@app.function("name")``.

        The default name is the function's, with ``_`` as ``-``.
        """
        if isinstance(arg, str):
            return lambda fn: self._register(arg, fn)
        return self._register(arg.__name__.replace("_", "-"), arg)

    def _register(self, name: str, fn: F) -> F:
        if _NAME.fullmatch(name) is None:
            raise ValueError(f"a function name is 1 to 31 of a-z, 0-9 and '-': {name!r}")
        if name in self.functions:
            raise ValueError(f"{self.app_id} already has a function {name!r}")
        self.functions[name] = fn
        return fn

    def watch(self, entry_type: str) -> Callable[[W], W]:
        """Register ``fn(api, record)`` to be called with each valid ``entry_type`` record the node stores.

        ``@app.watch("offer")``: any of this app's entry or link types, short or
        full name. The node calls it after the record is judged valid and
        stored, whoever made it and however it arrived (made here, published
        to this node, pulled in gossip), outside its locks, one record at a
        time, in storing order within the type; records stored while the
        node was down, or before the watcher existed, are watched at its next
        start. A watcher that raises is logged and the record is not offered again.
        """
        try:
            full = self.type_name(entry_type)
        except KeyError as exc:
            raise ValueError(f"{self.app_id} has no type {entry_type!r} to watch") from exc

        def register(fn: W) -> W:
            self.watchers.setdefault(full, []).append(fn)
            return fn

        return register

    # -- AppValidator ----------------------------------------------------------------------------------------

    def validate(
        self, record: Record, entry: Any, rules: Rules, engine: Engine, ctx: ValidationContext
    ) -> Verdict:
        """The verdict on one of this app's records: its kind, its schema, then its type's rule."""
        entry_type = record.action.entry_type or ""
        spec = self._types.get(entry_type)
        if spec is None:
            return Invalid("unknown-entry-type", f"{self.app_id} has no type {entry_type!r}")
        kind = record.action.kind
        is_link = isinstance(spec, LinkType)
        if kind not in (ActionKind.CREATE, ActionKind.UPDATE, ActionKind.LINK) or is_link != (
            kind is ActionKind.LINK
        ):
            return Invalid("kind", f"{entry_type} cannot be committed by a {kind.name.lower()}")
        try:
            checked = spec.read(entry)
        except EncodingError as exc:  # SchemaError is one
            return Invalid("schema", f"{entry_type}: {exc}")
        context = Context(self, record, checked, rules, engine, ctx)
        if kind is ActionKind.UPDATE:
            assert isinstance(spec, EntryType)
            updated = self._check_update(context, spec)
            if not isinstance(updated, Valid):
                return updated
        if isinstance(spec, EntryType):
            reserved = self._check_reserved(spec, checked)
            if not reserved:
                return reserved
        if spec.validate is None:
            return VALID
        try:
            return spec.validate(context)
        except EncodingError as exc:
            return Invalid("schema", f"{entry_type}: {exc}")
        except Exception as exc:
            # A bug in an app is not the author's offence: a ValueError escaping here would
            # become an Invalid verdict (and a warrant) against an honest author.
            raise AppError(f"app {self.app_id} failed on {entry_type}: {exc!r}") from exc

    def _check_update(self, ctx: Context, spec: EntryType) -> Verdict:
        if not spec.updatable:
            return Invalid("update", f"{ctx.entry_type} entries cannot be updated")
        ref = ctx.record.action.ref
        assert ref is not None  # the chain rules demand a ref on an update
        original = ctx.must_get(ref)
        if not isinstance(original, Record):
            return original
        if original.action.entry_type != ctx.entry_type:
            return Invalid("update", f"an update of a {ctx.entry_type} replaces a {ctx.entry_type}")
        if original.action.author != ctx.author:
            return Invalid("update", "only the author of an entry may update it")
        return VALID

    def _check_reserved(self, spec: EntryType, checked: Mapping[str, Any]) -> Verdict:
        """``once`` is the key ``unique`` gives; a type that moves credit carries its move."""
        if spec.unique is not None:
            once = checked.get(ONCE_FIELD)
            if once is None or once != spec.unique(checked):
                return Invalid("once", f"{ONCE_FIELD} must be this entry's unique key")
        if spec.moves_credit and checked.get(CREDIT_FIELD) is None:
            return Invalid("credit", f"a {spec.name} carries its credit move")
        return VALID

    # -- what a host fills in --------------------------------------------------------------------------------

    def prepare(
        self,
        entry_type: str,
        values: Mapping[str, Any],
        *,
        last_credit: ActionHash | None,
        balance: int,
    ) -> dict[str, Any]:
        """The entry to commit for ``values``, with the fields the SDK owns filled in.

        ``once``: the type's unique key. ``credit``: for a type that moves
        credit, ``values["credit"]`` is the delta (an int); it becomes the move
        chained to the author's chain as it stands (``last_credit``, ``balance``).
        The host calls this under its author lock, so the chain cannot move meanwhile.
        """
        spec = self._types.get(self.type_name(entry_type))
        out = dict(values)
        if not isinstance(spec, EntryType):
            return out
        if spec.moves_credit:
            delta = out.get(CREDIT_FIELD)
            if type(delta) is not int:
                raise SchemaError(f"{spec.name}: give the credit move's delta as an integer")
            out[CREDIT_FIELD] = {
                "prev_credit": None if last_credit is None else last_credit.to_bytes(),
                "delta": delta,
                "balance_after": balance + delta,
            }
        if spec.unique is not None:
            out.pop(ONCE_FIELD, None)
            out[ONCE_FIELD] = spec.unique(spec.read(spec.write(out)))
        return spec.write(out)


@dataclass(frozen=True, slots=True)
class Read:
    """A record of an app's type with its checked entry (from ``App.read``)."""

    record: Record
    entry_type: str
    entry: Mapping[str, Any]

    @property
    def hash(self) -> ActionHash:
        return self.record.hash

    @property
    def author(self) -> AgentKey:
        return self.record.action.author

    @property
    def timestamp(self) -> int:
        return self.record.action.timestamp


# -- bundles and approval ------------------------------------------------------------------------------


def pack_bundle(files: Mapping[str, bytes]) -> bytes:
    """The one byte form of an app bundle: a ustar archive of ``files`` (path -> bytes).

    Paths are sorted by their bytes; every member is a regular file with mode
    0644, mtime 0, uid/gid 0 and no owner names, so the same files always give
    the same bytes (and any tar tool can list them for review).
    ``ValueError`` for a path that is not a plain relative ``.py``/``.toml``/``.md`` path.
    """
    if len(files) > MAX_BUNDLE_FILES:
        raise ValueError(f"a bundle holds at most {MAX_BUNDLE_FILES} files, not {len(files)}")
    out = io.BytesIO()
    with tarfile.open(
        fileobj=out, mode="w", format=tarfile.USTAR_FORMAT, encoding="utf-8", errors="strict"
    ) as tar:
        for path in sorted(files, key=lambda p: p.encode()):
            _check_bundle_path(path)
            data = files[path]
            if type(data) is not bytes:
                raise TypeError(f"{path}: bundle contents are bytes")
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _check_bundle_path(path: str) -> None:
    if (
        type(path) is not str
        or len(path) > _MAX_BUNDLE_PATH
        or _BUNDLE_PATH.fullmatch(path) is None
        or not path.endswith(BUNDLE_SUFFIXES)
    ):
        raise ValueError(
            f"{path!r} is not a bundle path (relative, plain, {'/'.join(BUNDLE_SUFFIXES)})"
        )


MAX_BUNDLE_FILES: Final = 256
"""Most files in an app bundle."""
_BLOCK: Final = 512
_USTAR_MAGIC: Final = b"ustar\x0000"


def _check_plain_ustar(data: bytes) -> None:
    """``AppError`` unless every member header is a plain ustar regular file's.

    ``pack_bundle`` writes nothing else, and ``tarfile`` is not shown anything
    else: it reads pax and GNU headers with regular expressions that take time
    quadratic in their size (a 20 KB pax header took 1.2 s on Python 3.11.7).
    One step per member, reading only its 512-byte header; at most
    ``MAX_BUNDLE_FILES`` members (tarfile and the canonical re-pack cost
    about 0.1 ms each).
    """
    offset = members = 0
    while offset + _BLOCK <= len(data):
        header = data[offset : offset + _BLOCK]
        if not any(header):
            return  # the end-of-archive blocks: tarfile and the canonical form check the rest
        members += 1
        if members > MAX_BUNDLE_FILES:
            raise AppError(f"not an app bundle: more than {MAX_BUNDLE_FILES} files")
        if header[156:157] != tarfile.REGTYPE or header[257:265] != _USTAR_MAGIC:
            raise AppError(f"bundle member at byte {offset} is not a regular file (plain ustar)")
        try:
            size = int(header[124:136].rstrip(b"\0 ") or b"0", 8)
        except ValueError:
            raise AppError(f"not an app bundle: a bad size at byte {offset}") from None
        offset += _BLOCK + -(-size // _BLOCK) * _BLOCK
    raise AppError("not an app bundle: it does not end as a tar archive ends")


def unpack_bundle(data: bytes) -> dict[str, bytes]:
    """The files of a bundle; ``AppError`` unless ``data`` is exactly what ``pack_bundle`` writes."""
    _check_plain_ustar(data)
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:", encoding="utf-8") as tar:
            for member in tar:
                if not member.isreg():
                    raise AppError(f"bundle member {member.name!r} is not a regular file")
                _check_bundle_path(member.name)
                if member.name in files:
                    raise AppError(f"bundle member {member.name!r} appears twice")
                reader = tar.extractfile(member)
                assert reader is not None  # a regular file has contents
                files[member.name] = reader.read()
        canonical = pack_bundle(files)
    except (tarfile.TarError, ValueError, UnicodeError) as exc:
        raise AppError(f"not an app bundle: {exc}") from exc
    if canonical != data:
        raise AppError("not a canonical app bundle (order, modes, times or padding differ)")
    return files


def bundle_hash(data: bytes) -> BundleHash:
    """The hash that names a bundle (what a charter's ``AppPin.code_hash`` pins)."""
    return BundleHash.of(data)


def verify_bundle(data: bytes, expected: BundleHash) -> bool:
    """True only if ``data`` hashes to ``expected`` (a bundle fetched by hash is checked before use)."""
    return bundle_hash(data) == expected


class ApprovalStore(Protocol):
    """The bundle hashes a node's operator approved to run (kept by the node's store)."""

    def approved_bundles(self) -> set[BundleHash]:
        """Every approved bundle hash."""

    def approve_bundle(self, bundle: BundleHash, app_id: str, version: str) -> None:
        """Record the operator's approval of this exact bundle."""

    def withdraw_bundle(self, bundle: BundleHash) -> None:
        """Forget an approval (the node stops running that code at its next start)."""


def may_run(
    app_pin: AppPin, approved: Collection[BundleHash], local_bundle_hash: BundleHash | None
) -> Literal[True] | str:
    """``True`` if a node may run the app the charter pins; otherwise the reason it may not.

    Only if the operator approved that exact hash, and the code installed here
    hashes to it: neither a charter nor a peer can make a node run new code.
    """
    label = f"{app_pin.id} {app_pin.version}"
    if app_pin.code_hash not in approved:
        return f"{label}: the operator has not approved bundle {app_pin.code_hash}"
    if local_bundle_hash is None:
        return f"{label}: no local code; fetch bundle {app_pin.code_hash} and install it"
    if local_bundle_hash != app_pin.code_hash:
        return f"{label}: the local code hashes to {local_bundle_hash}, the charter pins {app_pin.code_hash}"
    return True
