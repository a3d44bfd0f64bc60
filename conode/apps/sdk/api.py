"""The SDK's view of the node an app's functions and watchers run on: ``AppAPI``, ``AppState``,
``GovernanceAPI`` (protocols the node implements)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from conode.chain import Record
from conode.hashes import ActionHash, AgentKey, TypedHash
from conode.validation.activity import Activity
from conode.validation.governance import Rules

if TYPE_CHECKING:
    pass

__all__ = ["AppAPI", "AppFunction", "AppState", "GovernanceAPI", "Watcher"]


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

    def name_of(self, agent: AgentKey) -> str:
        """The name an agent's genesis gives it (``?`` while its chain is not held): to show people
        by name where a key alone would be shown."""

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
