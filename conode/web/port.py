"""The seam between the members' web page and a node: exactly what the page needs, typed.

The web layer imports this module and nothing of the node's own.
``conode.web.adapter.NodeAdapter`` implements ``NodePort`` over the ``Node``
façade and its app host, mostly as one-line calls; the port's values stay
the page's own (the node answers in JSON rows, as it does the local API).

Conventions (those of the local API, ``docs/api.md``): amounts are integers
in minor units; times are microseconds since the epoch; agents are
``AgentKey``; records, offers, bills and proposals are named by their
printable ``act_…`` text; app views (offers, proposals, the lookout board)
are the JSON values the apps' functions return. Every method that acts
raises ``ConodeError`` (one readable line) for what the rules refuse, and
``ValueError`` for parameters that do not fit; a refused payment is a value
(``PaymentOutcome``), not an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from conode.hashes import AgentKey

__all__ = [
    "AgentView",
    "DirectoryEntry",
    "Health",
    "LimitRefusal",
    "Money",
    "NodeEvent",
    "NodePort",
    "PaymentOutcome",
]


@dataclass(frozen=True, slots=True)
class Money:
    """The network's unit: its code and how many minor-unit digits it has (``scale``)."""

    currency: str
    scale: int


@dataclass(frozen=True, slots=True)
class AgentView:
    """A hosted agent as its member sees it: balance within ``[-credit_limit, balance_cap]``."""

    key: AgentKey
    name: str
    balance: int
    credit_limit: int
    balance_cap: int
    is_coop: bool


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """An agent whose genesis this node holds: its name, role and (for a member) its co-op's name."""

    key: AgentKey
    name: str
    role: str
    coop_name: str | None
    hosted_here: bool


@dataclass(frozen=True, slots=True)
class LimitRefusal:
    """Why a payment was refused at a balance limit, in numbers: ``name`` would be at
    ``balance_after``, beyond ``limit`` (``rule``: ``credit-limit`` below -limit, ``balance-cap``
    above it)."""

    rule: str
    name: str
    balance_after: int
    limit: int


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    """How a payment (or an accepted bill) ended; ``reason`` is the node's one line,
    ``limit`` the numbers behind a limit refusal."""

    committed: bool
    reason: str = ""
    record: str | None = None
    limit: LimitRefusal | None = None


@dataclass(frozen=True, slots=True)
class Health:
    """The node in one line: connected peers, whether it holds all it should, warrants held."""

    peers: int
    in_sync: bool
    warrants: int
    sessions: int


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """Something a page may show without a reload.

    ``kind``: ``payment`` (a payment on a hosted agent's chain), ``bill`` (a bill to or
    from one), ``governance`` (a proposal, vote or ratification), ``exchange`` (an offer,
    want or update), ``lookout``. ``agents``: the hosted agents it concerns (empty: everyone).
    ``data``: for a payment, ``{amount, counterparty_name, memo}`` as the agent's history shows it.
    """

    kind: str
    agents: frozenset[AgentKey]
    data: Mapping[str, Any]


class NodePort(Protocol):
    """What the members' web page needs from a running node."""

    # -- agents and money --------------------------------------------------------------------
    def money(self) -> Money: ...
    def hosted(self) -> Sequence[AgentKey]: ...
    def agent(self, agent: AgentKey) -> AgentView: ...
    def name_of(self, agent: AgentKey) -> str: ...
    def directory(self) -> Sequence[DirectoryEntry]: ...
    def history(self, agent: AgentKey) -> Sequence[Mapping[str, Any]]: ...
    def bills(self) -> Sequence[Mapping[str, Any]]: ...
    def bill_parties(self, bill: str) -> tuple[AgentKey, AgentKey] | None: ...
    async def pay(
        self, payer: AgentKey, payee: AgentKey, amount: int, memo: str, offer: str | None
    ) -> PaymentOutcome: ...
    async def bill(self, payee: AgentKey, payer: AgentKey, amount: int, memo: str) -> str: ...
    async def accept_bill(self, bill: str) -> PaymentOutcome: ...
    async def decline_bill(self, bill: str) -> None: ...

    # -- the exchange ------------------------------------------------------------------------
    async def search_offers(
        self, text: str, category: str | None, near: str | None, within_km: str | None
    ) -> Sequence[Mapping[str, Any]]: ...
    def offer(self, offer: str) -> Mapping[str, Any] | None: ...
    def own_listings(self, agent: AgentKey, kind: str) -> Sequence[Mapping[str, Any]]: ...
    async def post_listing(
        self, agent: AgentKey, kind: str, values: Mapping[str, str]
    ) -> Mapping[str, Any]: ...
    async def renew_listing(self, kind: str, item: str, days: int) -> Mapping[str, Any]: ...
    def listing_author(self, item: str) -> AgentKey | None: ...
    def inbox(self, agent: AgentKey, mark_read: bool = False) -> Sequence[Mapping[str, Any]]: ...
    def grants(self) -> Sequence[Mapping[str, Any]]: ...

    # -- the Foundation and governance -------------------------------------------------------
    def proposals(self) -> Sequence[Mapping[str, Any]]: ...
    def proposal(self, proposal: str) -> Mapping[str, Any] | None: ...
    async def foundation(self) -> Mapping[str, Any] | None: ...
    async def vote(self, voter: AgentKey, proposal: str, choice: str) -> None: ...
    async def comment_proposal(self, agent: AgentKey, proposal: str, text: str) -> None: ...

    # -- the lookout -------------------------------------------------------------------------
    def board(self) -> Mapping[str, Any] | None: ...
    async def post_signal(
        self, agent: AgentKey, title: str, source: str, text: str, sectors: str
    ) -> str: ...
    async def comment_item(self, agent: AgentKey, item: str, text: str) -> None: ...
    async def poll_item(self, agent: AgentKey, item: str, choice: str) -> None: ...

    # -- the node (operator) -----------------------------------------------------------------
    def health(self) -> Health: ...
    def peers(self) -> Sequence[Mapping[str, Any]]: ...
    def warrants(self) -> Sequence[Mapping[str, Any]]: ...
    def apps(self) -> Sequence[Mapping[str, Any]]: ...
    def approve_app(self, bundle: str) -> Mapping[str, Any]: ...
    def running_apps(self) -> frozenset[str]: ...

    # -- live updates ------------------------------------------------------------------------
    def events(self) -> AbstractAsyncContextManager[trio.MemoryReceiveChannel[NodeEvent]]:
        """A channel of every event from now on, while the block lasts (a slow reader loses the
        newest: at most 64 wait)."""
        ...
