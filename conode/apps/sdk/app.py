"""The SDK's ``App``: an app's id, version, entry and link types, functions and watchers, and
the validation the engine asks of it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, overload

from conode.chain import ActionKind, Record
from conode.errors import AppError, EncodingError
from conode.hashes import ActionHash, AgentKey
from conode.validation.entries import (
    CREDIT_FIELD,
    ONCE_FIELD,
)
from conode.validation.governance import Rules
from conode.validation.schema import SchemaError
from conode.validation.verdict import VALID, Invalid, Valid, Verdict

if TYPE_CHECKING:
    from conode.validation.engine import Engine, ValidationContext

from conode.apps.sdk.api import AppFunction, F, W, Watcher
from conode.apps.sdk.context import Context, Fetched
from conode.apps.sdk.types import _NAME, EntryType, LinkType

__all__ = ["RESERVED_APP_IDS", "App", "Read"]

RESERVED_APP_IDS: Final = frozenset({"credit", "gov"})
"""Entry-type prefixes the engine judges itself."""


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
