"""``NodePort`` over the ``Node`` façade, its app host and its governance: what the page needs.

Thin on purpose: each method is a call into the node (``name_of``,
``directory``, ``history``, ``bills``, ``pay``, ...), its app host (app
functions) or its governance, and turns what comes back into the port's
typed values. What is still built here, each the smallest version that works:

- **events**: each record the node stores (``Node.on_stored``: a peer's, one
  authored here, a payment session's commit) becomes an event while a page
  listens: a payment on a hosted agent's chain as its history row
  (``Node.history(agent, seq)``).
- **history**: each hosted agent's payment rows are kept in memory and
  extended with ``Node.history(agent, from_seq)`` from the last row's seq, so
  a page over 10 000 payments reads only what is new.
- **limit refusals**: a payment refused at a limit is explained with the
  agent's balance and limits, not by parsing its text.
- **the exchange's listings** (one offer, an agent's own) and the node's
  **health**, read from the app's records and the node's store.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import trio

from conode.apphost import AppHost
from conode.chain import Record
from conode.dht.firewall import Firewall
from conode.errors import ConodeError, EncodingError, ValidationError
from conode.governing import Governance
from conode.hashes import ActionHash, AgentKey, BundleHash
from conode.node import Node
from conode.validation.entries import BILL, BILL_DECLINE, PAYMENT, Bill, BillDecline, Role
from conode.validation.governance import PROPOSAL, RATIFICATION, VOTE
from conode.validation.warrants import Warrant
from conode.web.port import (
    AgentView,
    DirectoryEntry,
    Health,
    LimitRefusal,
    Money,
    NodeEvent,
    PaymentOutcome,
)

__all__ = ["NodeAdapter"]

log = logging.getLogger("conode.web")

_QUEUE: Final = 64  # events a subscriber may fall behind by before the oldest are dropped
_GOVERNANCE: Final = frozenset({PROPOSAL, VOTE, RATIFICATION})


@dataclass(slots=True)
class _History:
    rows: list[dict[str, Any]] = field(default_factory=list)
    next_seq: int = 0


class NodeAdapter:
    """The members' web page's view of a running node (implements ``NodePort``)."""

    def __init__(
        self,
        node: Node,
        apps: AppHost | None,
        governance: Governance | None = None,
        firewall: Firewall | None = None,
    ) -> None:
        self.node = node
        self.host = apps
        self.governance = governance or (apps.governance if apps is not None else Governance(node))
        self.firewall = firewall
        self._histories: dict[AgentKey, _History] = {}
        self._directory: tuple[object, list[DirectoryEntry]] = (None, [])
        self._subscribers: set[trio.MemorySendChannel[NodeEvent]] = set()
        node.on_stored.append(self._on_stored)

    # -- agents and money ----------------------------------------------------------------------

    def money(self) -> Money:
        return Money(self.node.charter.currency, self.node.charter.scale)

    def hosted(self) -> Sequence[AgentKey]:
        return list(self.node.agents)

    def agent(self, agent: AgentKey) -> AgentView:
        node = self.node
        rules = node.rules_now()
        role = self._role(agent)
        if role == Role.FOUNDATION:
            credit, cap = 0, 0
        else:
            limits = rules.limits(rules.is_registered_coop(agent))
            credit, cap = limits.credit, limits.cap
        return AgentView(
            key=agent,
            name=self.name_of(agent),
            balance=node.store.activity(agent).balance,
            credit_limit=credit,
            balance_cap=cap,
            is_coop=role == Role.COOP,
        )

    def name_of(self, agent: AgentKey) -> str:
        return self.node.name_of(agent)

    def _role(self, agent: AgentKey) -> str | None:
        genesis = self.node.views.genesis(agent)
        return None if genesis is None else genesis.role

    def directory(self) -> Sequence[DirectoryEntry]:
        rows = self.node.directory()
        if self._directory[0] is not rows:  # the node read its directory again: so do we
            entries = [
                DirectoryEntry(r["key"], r["name"], r["role"], r["coop_name"], r["hosted"])
                for r in rows
            ]
            self._directory = (rows, entries)
        return self._directory[1]

    def history(self, agent: AgentKey) -> Sequence[Mapping[str, Any]]:
        kept = self._histories.setdefault(agent, _History())
        new = self.node.history(agent, kept.next_seq)
        if new:
            kept.rows.extend(new)
            kept.next_seq = new[-1]["seq"] + 1
        return kept.rows

    def bills(self) -> Sequence[Mapping[str, Any]]:
        return self.node.bills()

    def bill_parties(self, bill: str) -> tuple[AgentKey, AgentKey] | None:
        record = self.node.store.get(_action(bill))
        if record is None or record.action.entry_type != BILL:
            return None
        return record.action.author, Bill.from_value(record.entry_value()).payer

    async def pay(
        self, payer: AgentKey, payee: AgentKey, amount: int, memo: str, offer: str | None
    ) -> PaymentOutcome:
        offered = None if offer is None else _action(offer)
        result = await self.node.pay(payer, payee, amount, memo=memo, offer=offered)
        return self._outcome(result.committed, result.reason, result.record, payer, payee, amount)

    def _outcome(
        self,
        committed: bool,
        reason: str,
        record: ActionHash | None,
        payer: AgentKey,
        payee: AgentKey,
        amount: int,
    ) -> PaymentOutcome:
        limit = None
        if not committed and reason.startswith(("credit-limit", "balance-cap")):
            limit = self._limit_refusal(reason, payer, payee, amount)
        return PaymentOutcome(committed, reason, None if record is None else str(record), limit)

    def _limit_refusal(
        self, reason: str, payer: AgentKey, payee: AgentKey, amount: int
    ) -> LimitRefusal | None:
        """The numbers of a limit refusal: the payer's credit limit or the payee's cap."""
        with contextlib.suppress(ConodeError):
            if reason.startswith("credit-limit"):
                view = self.agent(payer)
                return LimitRefusal(
                    "credit-limit", view.name, view.balance - amount, view.credit_limit
                )
            view = self.agent(payee)
            return LimitRefusal("balance-cap", view.name, view.balance + amount, view.balance_cap)
        return None

    async def bill(self, payee: AgentKey, payer: AgentKey, amount: int, memo: str) -> str:
        record = await self.node.bill(
            payee, payer, amount, memo=memo, expires_in_us=7 * 86_400_000_000
        )
        return str(record.hash)

    async def accept_bill(self, bill: str) -> PaymentOutcome:
        parties = self.bill_parties(bill)
        result = await self.node.accept_bill(_action(bill))
        if parties is None:
            return PaymentOutcome(result.committed, result.reason)
        payee, payer = parties
        record = self.node.store.get(_action(bill))
        amount = 0 if record is None else Bill.from_value(record.entry_value()).amount
        return self._outcome(result.committed, result.reason, result.record, payer, payee, amount)

    async def decline_bill(self, bill: str) -> None:
        await self.node.decline_bill(_action(bill))

    # -- apps ----------------------------------------------------------------------------------

    def running_apps(self) -> frozenset[str]:
        return frozenset() if self.host is None else frozenset(self.host.apps)

    async def _call(
        self, app: str, fn: str, params: Mapping[str, Any], agent: AgentKey | None
    ) -> Any:
        if self.host is None:
            raise ValidationError("apps", "this node runs no apps")
        return await self.host.call(
            app, fn, params, agent=None if agent is None else str(agent), resolve=self._resolve
        )

    def _resolve(self, text: str | None, hosted: bool) -> AgentKey:
        if text is None:
            raise ValueError("name the agent that acts")
        key = AgentKey.parse(text)
        if hosted and key not in self.node.agents:
            raise ValidationError("not-hosted", f"{key.short()} is not hosted on this node")
        return key

    async def search_offers(
        self, text: str, category: str | None, near: str | None, within_km: str | None
    ) -> Sequence[Mapping[str, Any]]:
        params = {"text": text, "category": category, "near": near, "within_km": within_km}
        found: list[Mapping[str, Any]] = await self._call(
            "exchange", "offer-search", {k: v for k, v in params.items() if v}, None
        )
        return found

    def offer(self, offer: str) -> Mapping[str, Any] | None:
        if self.host is None or "exchange" not in self.host.apps:
            return None
        from conode.apps.exchange.entries import OFFER, UPDATE, WANT  # the app's code: lazily
        from conode.apps.exchange.market import listings

        api = self.host.api("exchange")
        record = api.get(_action(offer))
        if record is None or record.action.entry_type not in (OFFER, WANT):
            return None
        listing = listings([record, *api.records(UPDATE)])[record.hash]
        return listing.to_value(api.now())

    def own_listings(self, agent: AgentKey, kind: str) -> Sequence[Mapping[str, Any]]:
        if self.host is None or "exchange" not in self.host.apps:
            return []
        from conode.apps.exchange.entries import OFFER, UPDATE, WANT
        from conode.apps.exchange.market import listings

        api = self.host.api("exchange")
        at = api.now()
        wanted = OFFER if kind == "offer" else WANT
        mine = [
            item
            for item in listings(api.records(wanted, UPDATE, authors=[agent])).values()
            if item.author == agent and item.kind == kind
        ]
        mine.sort(key=lambda i: -i.timestamp)
        return [i.to_value(at) for i in mine]

    async def post_listing(
        self, agent: AgentKey, kind: str, values: Mapping[str, str]
    ) -> Mapping[str, Any]:
        posted: Mapping[str, Any] = await self._call("exchange", f"{kind}-add", values, agent)
        return posted

    async def renew_listing(self, kind: str, item: str, days: int) -> Mapping[str, Any]:
        renewed: Mapping[str, Any] = await self._call(
            "exchange", f"{kind}-renew", {kind: item, "days": days}, None
        )
        return renewed

    def listing_author(self, item: str) -> AgentKey | None:
        record = self.node.store.get(_action(item))
        return None if record is None else record.action.author

    def inbox(self, agent: AgentKey, mark_read: bool = False) -> Sequence[Mapping[str, Any]]:
        if self.host is None or "exchange" not in self.host.apps:
            return []
        from conode.apps.exchange.functions import inbox

        return inbox(self.host.api("exchange"), agent, mark_read=mark_read)

    def grants(self) -> Sequence[Mapping[str, Any]]:
        if self.host is None or "exchange" not in self.host.apps:
            return []
        from conode.apps.exchange.granting import grants_function

        api = self.host.api("exchange")
        rows: list[Mapping[str, Any]] = _jsonable(grants_function(api))
        return rows

    # -- the Foundation and governance ---------------------------------------------------------

    def proposals(self) -> Sequence[Mapping[str, Any]]:
        return [view.to_value() for view in self.governance.proposals()]

    def proposal(self, proposal: str) -> Mapping[str, Any] | None:
        try:
            return self.governance.proposal(_action(proposal)).to_value()
        except ValidationError:
            return None

    async def foundation(self) -> Mapping[str, Any] | None:
        try:
            return self.governance.foundation()
        except ValidationError:  # the charter names no Foundation
            return None

    async def vote(self, voter: AgentKey, proposal: str, choice: str) -> None:
        await self.governance.vote(voter, _action(proposal), choice)

    async def comment_proposal(self, agent: AgentKey, proposal: str, text: str) -> None:
        await self._call("foundation", "comment", {"proposal": proposal, "text": text}, agent)

    # -- the lookout ---------------------------------------------------------------------------

    def board(self) -> Mapping[str, Any] | None:
        if self.host is None or "lookout" not in self.host.apps:
            return None
        from conode.apps.lookout.board import board

        return board(self.host.api("lookout").records()).to_value()

    async def post_signal(
        self, agent: AgentKey, title: str, source: str, text: str, sectors: str
    ) -> str:
        params = {"title": title, "source": source, "text": text, "sectors": sectors}
        posted: str = await self._call("lookout", "signal", params, agent)
        return posted

    async def comment_item(self, agent: AgentKey, item: str, text: str) -> None:
        await self._call("lookout", "comment", {"item": item, "text": text}, agent)

    async def poll_item(self, agent: AgentKey, item: str, choice: str) -> None:
        await self._call("lookout", "poll", {"item": item, "choice": choice}, agent)

    # -- the node ------------------------------------------------------------------------------

    def health(self) -> Health:
        node = self.node
        peers = len(node.transport.connected_peers())
        behind = node.store.pending_count() + node.store.publishing_count()
        sessions = node.sessions.open_count()  # as `conode status` counts them
        return Health(peers, peers > 0 and behind == 0, len(node.store.warrants()), sessions)

    def peers(self) -> Sequence[Mapping[str, Any]]:
        node = self.node
        hosted: dict[str, list[str]] = {}
        for agent, peer in node.hosts.items():
            hosted.setdefault(peer, []).append(self.name_of(agent))
        blocked = set() if self.firewall is None else self.firewall.blocked
        return [
            {
                "peer_id": peer,
                "addrs": node.transport.peer_addrs(peer),
                "agents": sorted(hosted.get(peer, [])),
                "blocked": peer in blocked,
            }
            for peer in node.transport.connected_peers()
        ]

    def warrants(self) -> Sequence[Mapping[str, Any]]:
        rows = []
        for digest, offender, data in self.node.store.warrants():
            try:
                warrant = Warrant.from_bytes(data)
            except (EncodingError, ValueError):
                continue
            evidence = warrant.evidence[0] if warrant.evidence else None
            reason = warrant.kind
            if evidence is not None and warrant.kind != "fork":
                reason = str(self.node.engine.validate_record(evidence, self.node.store))
            rows.append(
                {
                    "id": digest.hex()[:16],
                    "offender": str(offender),
                    "offender_name": self.name_of(offender),
                    "kind": warrant.kind,
                    "issuer_name": self.name_of(warrant.issuer),
                    "issued_at": warrant.issued_at,
                    "reason": reason,
                }
            )
        return rows

    def apps(self) -> Sequence[Mapping[str, Any]]:
        return [] if self.host is None else list(self.host.statuses())

    def approve_app(self, bundle: str) -> Mapping[str, Any]:
        if self.host is None:
            raise ValidationError("apps", "this node runs no apps")
        try:
            key = BundleHash.parse(bundle)
        except EncodingError as exc:
            raise ValueError(f"bundle: {exc}") from exc
        approved: Mapping[str, Any] = self.host.catalog.approve(key)
        return approved

    # -- live updates --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def events(self) -> AsyncIterator[trio.MemoryReceiveChannel[NodeEvent]]:
        send, receive = trio.open_memory_channel[NodeEvent](_QUEUE)
        self._subscribers.add(send)
        try:
            yield receive
        finally:
            self._subscribers.discard(send)
            send.close()
            receive.close()

    def _publish(self, event: NodeEvent) -> None:
        for channel in list(self._subscribers):
            with contextlib.suppress(trio.WouldBlock, trio.BrokenResourceError):
                channel.send_nowait(event)  # a reader that fell behind loses this one

    def _on_stored(self, record: Record) -> None:
        """A stored record as an event for the pages listening: a note, never a block or a raise."""
        if not self._subscribers:
            return
        try:
            self._record_event(record)
        except Exception:  # a listener of ingest must never raise into it
            log.exception("web event for %s", record.hash.short())

    def _record_event(self, record: Record) -> None:
        author, kind = record.action.author, record.action.entry_type or ""
        if author in self.node.agents and kind == PAYMENT:
            (row,) = self.node.history(author, record.action.seq)[:1]
            data = {k: row[k] for k in ("amount", "counterparty_name", "memo", "direction")}
            self._publish(NodeEvent("payment", frozenset({author}), data))
        elif kind in (BILL, BILL_DECLINE):
            bill = record if kind == BILL else self.node.store.get(_bill_of(record))
            payer = None if bill is None else Bill.from_value(bill.entry_value()).payer
            hosted = {a for a in (author, payer) if a in self.node.agents}
            if hosted:
                self._publish(NodeEvent("bill", frozenset(hosted), {}))
        elif kind in _GOVERNANCE:
            self._publish(NodeEvent("governance", frozenset(), {}))
        elif kind.startswith("exchange/"):
            self._publish(NodeEvent("exchange", frozenset(), {}))
        elif kind.startswith("lookout/"):
            self._publish(NodeEvent("lookout", frozenset(), {}))


def _bill_of(decline: Record) -> ActionHash:
    return BillDecline.from_value(decline.entry_value()).bill


def _action(text: str) -> ActionHash:
    try:
        return ActionHash.parse(text)
    except EncodingError as exc:
        raise ValueError(f"{text!r} is not a record id: {exc}") from exc


def _jsonable(value: Any) -> Any:
    """Hashes as text, tuples as lists (as the app host returns function results)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "to_bytes") and hasattr(value, "short"):
        return str(value)
    return value
