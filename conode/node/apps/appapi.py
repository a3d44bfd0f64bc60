"""What a node lends its apps: ``AppActions`` (commit, links, search) and the ``AppAPI`` over it.

- **Commits** (``commit``/``link``): the entry gets the node's governance
  head as ``rules``, the record is authored on the hosted agent's chain and
  goes through ``Node.create_entry`` (every rule, stored, published); a
  refusal is ``ValidationError`` naming the rule. Records of one agent are
  authored one at a time, so two functions never author at the same seq.
- **Search**: the searchable text of the running apps' records is indexed
  (``conode.store.search.TextIndex``) as they are searched for: each type's
  index remembers the last stored row it saw.
- **Link indexes** (``fetch_links``): an app refreshes what the node holds
  at some link bases from the DHT (``Node.fetch_links``), within the wait
  it gives.
- **Governance** (``NodeGovernanceAPI``): the built-in ``gov/*`` records and
  the Foundation, lent to app functions as JSON values.
- **State**: each app's own key-value state in the store file.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

import trio

from conode.apps.sdk import App
from conode.chain import ActionKind, Record
from conode.errors import AppError
from conode.hashes import ActionHash, AgentKey, TypedHash
from conode.node.apps.cursor import unseen_batches
from conode.node.governance import Governance
from conode.node.node import Node
from conode.store.appstate import AppState
from conode.store.search import TextIndex
from conode.validation.activity import Activity
from conode.validation.governance import Rules

__all__ = ["MAX_LINK_WAIT", "AppActions", "NodeAppAPI", "NodeGovernanceAPI"]

_INDEX_META: Final = "text_index/"
_INDEX_BATCH: Final = 500
MAX_LINK_WAIT: Final = 30.0
"""The longest an app's ``fetch_links`` may wait for the DHT, whatever it asks for."""


class AppActions:
    """What the node does for its running apps: author their records, fetch links, search."""

    def __init__(self, node: Node, governance: Governance) -> None:
        self.node = node
        self.governance = governance
        self._index: TextIndex | None = None

    async def commit(
        self,
        agent: AgentKey,
        kind: ActionKind,
        entry_type: str,
        entry: Mapping[str, Any],
        app: App | None = None,
    ) -> ActionHash:
        """Author, judge, store and publish one record on a hosted agent's chain; its hash.

        ``app``: fills in the fields its SDK owns (``App.prepare``) from the chain as it stands.
        """
        node = self.node
        node.hosted(agent)  # ValidationError "not-hosted" if it is not
        value = dict(entry)
        rules_head = node.rules_head()
        earliest = 0
        if rules_head is not None:
            if value.get("rules") is None:
                value["rules"] = rules_head.to_bytes()
            ratified = node.store.get(rules_head)
            # never dated before the rules it names: those pin the app from their time on
            earliest = 0 if ratified is None else ratified.action.timestamp
        def make(_timestamp: int, activity: Activity) -> Any:
            if app is None:
                return value
            return app.prepare(
                entry_type, value, last_credit=activity.last_credit, balance=activity.balance
            )

        record = await node.create_entry(agent, entry_type, make, kind=kind, not_before=earliest)
        return record.hash

    async def fetch_links(
        self, link_type: str, bases: Sequence[TypedHash], wait: float
    ) -> list[Record]:
        """Links of ``link_type`` at ``bases`` from the DHT (``Node.fetch_links``: one request per
        authority for all its bases), for at most ``wait`` seconds; those newly held.

        A base fetched within ``NodeSettings.links_fresh_us`` is not asked again (the node's
        record), so a search repeated soon after costs no request."""
        new: list[Record] = []  # filled as links come: what came before a timeout is kept
        with trio.move_on_after(max(0.0, min(wait, MAX_LINK_WAIT))):
            await self.node.fetch_links(bases, link_type, new)
        return new

    def search(self, app: App, text: str, entry_types: Sequence[str], limit: int) -> list[Record]:
        """Held records of ``app``'s searchable types matching every word of ``text``, best first.

        The app reads what it found from its author's chain (an offer's state): a chain this
        node holds only for now (off its arc, not hosted: held before its arc shrank, or
        fetched by an earlier search) is held a while longer, as one a search fetches is
        (``Ingest.hold_chain``), so it is not shed and fetched whole again by the next search.
        A record held loose (its chain not held) holds nothing.
        """
        types = [app.type_name(t) for t in entry_types] or list(app.searchable_types)
        index = self._text_index()
        for entry_type in types:
            self._index_new(app, entry_type, index)
        store = self.node.store
        found = [r for h in index.search(text, types, limit) if (r := store.get(h)) is not None]
        ingestion, placement = self.node.ingestion, self.node.placement
        for author in {r.action.author for r in found}:
            if not placement.holds_chain(author) and store.head(author) is not None:
                ingestion.hold_chain(author)
        return found

    def _text_index(self) -> TextIndex:
        if self._index is None:
            self._index = self.node.store.text_index()
        return self._index

    def _index_new(self, app: App, entry_type: str, index: TextIndex) -> None:
        """Index the records of ``entry_type`` stored since this type's index last looked."""
        store = self.node.store
        for rows in unseen_batches(store, _INDEX_META + entry_type, entry_type, _INDEX_BATCH):
            for _row_id, record in rows:
                text = app.search_text(record)
                if text:
                    index.add(record.hash, entry_type, text)


class NodeAppAPI:
    """The ``AppAPI`` a node lends one app's functions: its hosted agents, its store, its clock."""

    def __init__(self, actions: AppActions, app: App) -> None:
        self._host = actions
        self._node = actions.node
        self.app = app

    @property
    def app_id(self) -> str:
        return self.app.app_id

    def agents(self) -> Sequence[AgentKey]:
        return list(self._node.agents)

    def name_of(self, agent: AgentKey) -> str:
        return self._node.name_of(agent)

    def _own(self, type_name: str, *, link: bool) -> str:
        try:
            full = self.app.type_name(type_name)
        except KeyError as exc:
            raise AppError(f"{type_name} is not a type of {self.app_id}") from exc
        is_link = full in self.app.link_types
        if is_link != link:
            raise AppError(
                f"{full} is a {'link' if is_link else 'entry'} type: "
                f"use {'link' if is_link else 'commit'}"
            )
        return full

    async def commit(
        self, agent: AgentKey, entry_type: str, entry: Mapping[str, Any]
    ) -> ActionHash:
        full = self._own(entry_type, link=False)
        return await self._host.commit(agent, ActionKind.CREATE, full, entry, self.app)

    async def link(
        self, agent: AgentKey, link_type: str, base: TypedHash, target: TypedHash, tag: Any
    ) -> ActionHash:
        full = self._own(link_type, link=True)
        entry = {"base": base.to_bytes(), "target": target.to_bytes(), "tag": tag}
        return await self._host.commit(agent, ActionKind.LINK, full, entry)

    async def fetch_links(
        self, link_type: str, *bases: TypedHash, wait: float = 3.0
    ) -> Sequence[Record]:
        full = self._own(link_type, link=True)
        return await self._host.fetch_links(full, bases, wait)

    def records(
        self, *entry_types: str, authors: Collection[AgentKey] | None = None
    ) -> Sequence[Record]:
        types = [self._type(t) for t in entry_types] or [
            *self.app.entry_types,
            *self.app.link_types,
        ]
        store = self._node.store
        return [record for t in types for record in store.records_of_type(t, authors)]

    def _type(self, name: str) -> str:
        try:
            return self.app.type_name(name)
        except KeyError as exc:
            raise AppError(f"{name} is not a type of {self.app_id}") from exc

    def get(self, action: ActionHash) -> Record | None:
        return self._node.store.get(action)

    def now(self) -> int:
        return self._node.clock()

    def rules(self) -> Rules:
        """The rules in force now, under the node's governance head."""
        return self._node.rules_now()

    def activity(self, agent: AgentKey) -> Activity:
        """Where ``agent``'s chain stands on this node: head, last credit action, balance."""
        return self._node.store.activity(agent)

    def search(self, text: str, *entry_types: str, limit: int = 50) -> Sequence[Record]:
        types = [self._type(t) for t in entry_types]
        return self._host.search(self.app, text, types, limit)

    @property
    def governance(self) -> NodeGovernanceAPI:
        return NodeGovernanceAPI(self._host.governance)

    @property
    def state(self) -> AppState:
        """This app's own key-value state in the node's store file."""
        return self._node.store.app_state(self.app_id)


class NodeGovernanceAPI:
    """The ``GovernanceAPI`` a node lends app functions: its ``Governance``, as JSON values."""

    def __init__(self, governance: Governance) -> None:
        self._governance = governance

    def proposals(self) -> Sequence[Mapping[str, Any]]:
        return [view.to_value() for view in self._governance.proposals()]

    def foundation(self) -> Mapping[str, Any]:
        return self._governance.foundation()

    async def propose(
        self, coop: AgentKey, kind: str, title: str, body: Mapping[str, Any]
    ) -> ActionHash:
        return (await self._governance.propose(coop, kind, title, body)).hash

    async def vote(self, coop: AgentKey, proposal: ActionHash, choice: str) -> ActionHash:
        return (await self._governance.vote(coop, proposal, choice)).hash

    async def ratify(self, coop: AgentKey, proposal: ActionHash) -> ActionHash:
        return (await self._governance.ratify(coop, proposal)).hash


# -- parameters in, JSON out ------------------------------------------------------------------------
