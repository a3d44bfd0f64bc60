"""Ingest: the one door into the store.

A record (our own, one a peer published, one fetched during reconciliation)
of a chain this node holds (``Placement.holds_chain``: one it hosts or whose
author's location is on its arc, or one it still holds) is taken through
``admit`` (the activity fold, then the engine with the store as its
context) against its chain's kept state; only then is it appended, with its
new activity state, in one durable transaction. A record of another chain
is held **loose** (``keep``), by hash: a dependency fetched to judge
another record, a link whose base is on the arc, governance every judge
needs; it is judged by the record rules first, unless it came from an
authority of its author, who holds its chain and judged it (Holochain's
``must_get_valid_record``), and a record this node does not hold at all is
refused by ``ingest`` as Missing (a publisher whose view of the ring
differs asks another authority). A record ahead of its chain
waits in ``pending`` while the gap is fetched; a record whose dependencies
are not held gets them fetched from the peer that sent it (``fetch``, the
pulls), outside the store lock. A second record at a held position is a
**fork**; a record that breaks a rule is an **offence**; a record made under
rules a ratification we hold had barred is **stale**; a record of a payer's
at a seq that a payment it countersigned gave to someone else is
**equivocation** (whichever of the two arrives first): each may earn its
author a warrant (``earns_warrant`` decides), and honest nodes then refuse
that agent.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

import trio

from conode.chain import Record
from conode.chain.ops import named_agents, op_locations
from conode.crypto import SIG_ACTION, verify
from conode.dht.shedding import Hold
from conode.dht.transport import PeerId
from conode.hashes import ActionHash, AgentKey
from conode.node import pending_quota
from conode.node.ring import Placement
from conode.node.rules_head import RulesHead
from conode.node.settings import HostedAgent
from conode.node.warrants import Warrants
from conode.store import Loose, NodeStore
from conode.validation.admit import ACTIVITY, INVALID, Admitted, Needs, Refused, admit
from conode.validation.context import Judge
from conode.validation.engine import Engine
from conode.validation.entries import PAYMENT, addressee, payer_position
from conode.validation.governance import GOVERNANCE_TYPES, RATIFICATION
from conode.validation.stale import stale_evidence
from conode.validation.verdict import VALID, Invalid, Missing, Valid, Verdict
from conode.validation.warrants import earns_warrant, equivocates

__all__ = ["Ingest", "Need"]

log = logging.getLogger("conode.node")

_MAX_FETCH_ROUNDS: Final = 6
_MAX_DEPTH: Final = 4
"""How deep fetching a dependency's dependencies may go before a record is left Missing."""
_SWEEP_EVERY_US: Final = 60_000_000
"""How often expired pending records are swept (when one more would be kept)."""


@dataclass(frozen=True, slots=True)
class Need:
    """What ingest must fetch before it can judge a record."""

    chain: tuple[AgentKey, int] | None = None
    records: tuple[ActionHash, ...] = ()
    agents: tuple[AgentKey, ...] = ()
    hints: tuple[AgentKey, ...] = ()
    """Agents whose authorities likely hold the records (those the record judged names)."""

    @classmethod
    def of(cls, needs: Needs, record: Record | None = None) -> Need:
        hints = () if record is None else named_agents(record)
        return cls(records=needs.records, agents=needs.agents, hints=hints)


Fetch = Callable[[Need, PeerId | None, int], Awaitable[bool]]
"""Fetch and ingest what a ``Need`` names from a peer (at a depth); False if nothing came."""


class Ingest:
    """The one door into the store; see the module docstring."""

    def __init__(
        self,
        store: NodeStore,
        engine: Engine,
        rules_head: RulesHead,
        warrants: Warrants,
        agents: Mapping[AgentKey, HostedAgent],
        clock: Callable[[], int],
        placement: Placement,
    ) -> None:
        self.store = store
        self.placement = placement
        self.engine = engine
        self.judge: Judge = engine
        """What ``admit`` judges records with: the engine (a test may lend a ``Judge`` of its own)."""
        self.rules_head = rules_head
        self.warrants = warrants
        self.agents = agents
        self.clock = clock
        self.fetch: Fetch | None = None
        """How a missing gap or dependency is fetched (the pulls); None: it is not."""
        self.on_global: list[Callable[[Record], None]] = []
        """Called with each governance record stored (in a chain or loose), under the lock: take
        note, never block or raise (reconciliation passes it on)."""
        self.on_stored: list[Callable[[Record], None]] = []
        """Called with each record ingest stores (a peer's, one authored here, a payment session's
        commit), under the ingest lock: take note, never block or raise (the app host's watchers
        only wake their task here)."""
        self.held_for_now: dict[AgentKey, int] = {}
        """Chains held on purpose for a while (``hold_chain``), each with when its hold ends (µs);
        forgotten when they are shed."""
        self.hold = Hold(read_us=600_000_000, witness_us=10_000_000)
        """How long ``hold_chain`` holds (the node sets it from its settings)."""
        self._lock = trio.Lock()
        self._swept_at = 0

    async def ingest(self, record: Record, source: PeerId | None, depth: int = 0) -> Verdict:
        """Judge ``record`` and keep it if valid; fetch what it needs from ``source`` first.

        ``source`` None: the record is authored here, and joins the publishing queue in the
        same write that stores it. A record from a peer of a chain this node does not hold is
        Missing (no receipt), unless it is a link whose base is on this node's arc (held loose).
        """
        if source is not None and not self.holds(record.action.author):
            if self.links_here(record):  # a link at a base on this arc: held loose, indexed
                return await self.keep(record, Loose.LINK, source, depth)
            if self.addressed_here(record):  # a bill to an agent hosted here, or its answer
                return await self.keep(record, Loose.ADDRESSED, source, depth)
            async with self._lock:  # a payment naming a payer whose chain is held here
                self._check_payer_position(record)
            return Missing((record.hash,))  # not this node's to hold
        for _round in range(_MAX_FETCH_ROUNDS):
            async with self._lock:
                outcome = self._apply(record, publish=source is None)
            if isinstance(outcome, Valid):
                await self.drain_pending(record.action.author)
            if not isinstance(outcome, Need):
                return outcome
            missing = Missing(tuple(outcome.records) + tuple(outcome.agents))
            if source is None or depth > _MAX_DEPTH or self.fetch is None:
                return missing
            if not await self.fetch(outcome, source, depth):
                return missing
        return Missing((record.hash,))

    def links_here(self, record: Record) -> bool:
        """True if ``record`` is a link whose base is on this node's arc."""
        return any(self.placement.holds_location(loc) for loc in op_locations(record)[1:])

    def addressed_here(self, record: Record) -> bool:
        """True if ``record`` is addressed to an agent hosted here, which this node shows
        whatever chains it holds."""
        to = self.addressee(record)
        return to is not None and to in self.agents

    def addressee(self, record: Record) -> AgentKey | None:
        """The agent ``record`` is addressed to (``entries.addressee``: a bill's payer, a bill
        decline's payee, as the bill held here says), if any."""
        entry_type = record.action.entry_type
        return None if entry_type is None else addressee(entry_type, record.entry, self._author_of)

    def _author_of(self, h: ActionHash) -> AgentKey | None:
        held = self.store.get(h)
        return None if held is None else held.action.author

    def holds(self, author: AgentKey) -> bool:
        """True if this node holds ``author``'s chain: its to hold, held for a while on purpose
        (``hold_chain``), or held still (until shed)."""
        return (
            self.placement.holds_chain(author)
            or author in self.held_for_now
            or self.store.head(author) is not None
        )

    def hold_chain(self, author: AgentKey, *, witnessed: bool = False) -> None:
        """Hold ``author``'s whole chain for a while although it is not this node's to hold (an
        audit reads it, an app reads the state of an offer found by search: as long as a
        dependency is kept; ``witnessed``, a payment of it is witnessed here: as long as a
        payment session lasts), then shed as any chain off the arc (``conode.dht.shedding``)."""
        until = self.hold.until(self.clock(), witnessed=witnessed)
        self.held_for_now[author] = max(until, self.held_for_now.get(author, until))

    async def keep(
        self,
        record: Record,
        why: Loose,
        source: PeerId | None,
        depth: int = 0,
        *,
        trusted: bool = False,
    ) -> Verdict:
        """Hold ``record`` (of a chain this node does not hold) loose, for ``why``, once the record
        rules take it (what it depends on fetched first) or, ``trusted``, because an authority
        of its author served it. A record of a held chain goes through ``ingest`` instead."""
        if self.holds(record.action.author):
            return await self.ingest(record, source, depth)
        for _round in range(_MAX_FETCH_ROUNDS):
            async with self._lock:
                outcome = self._keep_now(record, why, trusted)
            if not isinstance(outcome, Need):
                return outcome
            missing = Missing(tuple(outcome.records) + tuple(outcome.agents))
            if depth > _MAX_DEPTH or self.fetch is None:
                return missing
            if not await self.fetch(outcome, source, depth):
                return missing
        return Missing((record.hash,))

    async def try_now(self, record: Record) -> Verdict | Need:
        """The verdict on ``record`` with what is held now (kept if valid), or what it needs."""
        async with self._lock:
            outcome = self._apply(record)
        if isinstance(outcome, Valid):
            await self.drain_pending(record.action.author)
        return outcome

    async def commit_session(
        self, record: Record, key: bytes, session_record: bytes
    ) -> Admitted | Refused | Needs:
        """Append a payment session's record of this party with its COMMITTED session record,
        atomically, if ``admit`` takes it (queued for publishing); what ``admit`` said."""
        agent = record.action.author
        async with self._lock:
            outcome = admit(self.store.activity(agent), record, self.judge, self.store)
            if isinstance(outcome, Admitted):
                self.store.append(
                    [record],
                    activities={agent: outcome.state},
                    sessions={key: (agent, session_record)},
                    publish=True,
                )
                self._stored(record)  # a payment is stored news too: listeners hear of it
            return outcome

    def judge_held(self, records: Iterable[Record]) -> list[tuple[Record, Invalid]]:
        """Judge held records of an app this node has just started running; the invalid ones.

        While the app did not run here its records were held unjudged
        (``conode.apps.hosting``); an invalid one now warrants its author, as
        it would have on arrival.
        """
        invalid = []
        for record in records:
            verdict = self.engine.validate_record(record, self.store, signature_checked=True)
            if isinstance(verdict, Invalid):
                self._offence(record, verdict, INVALID)
                invalid.append((record, verdict))
        return invalid

    # -- under the lock --------------------------------------------------------------------------

    def _stored(self, record: Record) -> None:
        for listener in self.on_stored:
            listener(record)

    def _keep_now(self, record: Record, why: Loose, trusted: bool) -> Verdict | Need:
        """The verdict on a loose record (kept if valid), or what to fetch."""
        author = record.action.author
        store = self.store
        if store.warranted(author):
            return Invalid("warranted", f"{author.short()} is warranted: its records are refused")
        if store.get(record.hash) is None:
            if not verify(author.raw, SIG_ACTION, record.action_bytes, record.signature):
                return Invalid("signature", "the author's signature does not verify")
            if not trusted:
                verdict = self.engine.validate_record(record, store, signature_checked=True)
                if isinstance(verdict, Missing):
                    return Need.of(Needs(verdict), record)
                if isinstance(verdict, Invalid):
                    self._offence(record, verdict, INVALID)
                    return verdict
        new = store.get(record.hash) is None
        store.keep_loose([record], why, self.clock())  # again: a stronger reason, a later time
        if record.action.entry_type == RATIFICATION:
            self.rules_head.advance(record)
        if new and record.action.entry_type in GOVERNANCE_TYPES:
            for listener in self.on_global:
                listener(record)
        return VALID

    def _apply(self, record: Record, *, publish: bool = False) -> Verdict | Need:
        """The verdict on ``record`` (kept if valid), or what to fetch."""
        action = record.action
        author = action.author
        store = self.store
        if store.warranted(author):
            return Invalid(
                "warranted", f"{author.short()} is warranted: its new records are refused"
            )
        held = store.hash_at(author, action.seq)
        if held is not None:
            return VALID if held == record.hash else self._fork(record, held)
        head = store.head(author)
        expected = 0 if head is None else head.seq + 1
        if action.seq > expected:
            if not verify(author.raw, SIG_ACTION, record.action_bytes, record.signature):
                return Invalid("signature", "the author's signature does not verify")
            self._park(record, stranger=head is None, ahead=action.seq - expected)
            return Need(chain=(author, expected))
        outcome = admit(store.activity(author), record, self.judge, store)
        if isinstance(outcome, Needs):
            return Need.of(outcome, record)
        if isinstance(outcome, Refused):
            self._offence(record, outcome.verdict, outcome.kind)
            return outcome.verdict
        store.append([record], activities={author: outcome.state}, publish=publish)
        self._stored(record)
        if action.entry_type in GOVERNANCE_TYPES:
            for listener in self.on_global:
                listener(record)
        if action.entry_type == RATIFICATION:
            self.rules_head.advance(record)
        elif author not in self.agents:
            self._warrant_if_stale(record)
        self._warrant_if_equivocating(record)
        return VALID

    def _park(self, record: Record, *, stranger: bool, ahead: int) -> None:
        """Keep a record ahead of its chain in ``pending`` if its quota allows
        (``conode.node.pending_quota``); its chain is fetched either way."""
        now = self.clock()
        if now - self._swept_at >= _SWEEP_EVERY_US:
            self._swept_at = now
            self.store.expire_pending(
                strangers_before=now - pending_quota.STRANGER_EXPIRY_US,
                others_before=now - pending_quota.EXPIRY_US,
            )
        author = record.action.author
        of_author, total, of_strangers = self.store.pending_counts(author)
        refused = pending_quota.refusal(
            stranger=stranger, ahead=ahead, of_author=of_author, total=total,
            of_strangers=of_strangers,
        )  # fmt: skip
        if refused is None:
            self.store.add_pending(record, now, stranger=stranger)
        else:
            log.debug("not keeping %s of %s pending: %s", record.hash.short(), author.short(), refused)

    async def drain_pending(self, author: AgentKey) -> None:
        """Append the author's pending records that now fit, in order: ``DRAIN_BATCH`` at a time
        under the lock, the loop let run after each record (1 500 parked records once took 11 s
        of blocked loop and 2.7 GB, read again at every step)."""
        while True:
            progressed = False
            async with self._lock:
                head = self.store.head(author)
                expected = 0 if head is None else head.seq + 1
                self.store.drop_pending_below(author, expected)
                batch = self.store.pending(
                    author, upto=expected + pending_quota.DRAIN_BATCH, limit=pending_quota.DRAIN_BATCH
                )
                for record in batch:
                    seq = record.action.seq
                    if seq > expected:
                        break  # a gap: the rest waits
                    self.store.drop_pending([record.hash])
                    if seq == expected and isinstance(self._apply(record), Valid):
                        expected += 1
                        progressed = True
                    await trio.lowlevel.checkpoint()
            if not progressed:
                return

    def _fork(self, record: Record, held: ActionHash) -> Verdict:
        """A second record at a held position: a fork if the author really signed both."""
        first = self.store.get(held)
        author = record.action.author
        signed = verify(author.raw, SIG_ACTION, record.action_bytes, record.signature)
        if first is None or not signed:
            return Invalid("signature", "a record at a held position that its author did not sign")
        if author in self.agents:
            # authored here (a session's commit racing another record): refused, never warranted
            return Invalid("seq", f"seq {record.action.seq} of a hosted chain is already taken")
        self.warrants.issue("fork", author, (first, record))
        return Invalid("fork", f"{author.short()} signed two records at seq {record.action.seq}")

    def _offence(self, record: Record, verdict: Invalid, kind: str) -> None:
        """Warrant the author of a record it signed that breaks a rule, if the rules say so."""
        author = record.action.author
        if not earns_warrant(verdict, kind, hosted_here=author in self.agents):
            return
        evidence = (*self.store.records(author), record) if kind == ACTIVITY else (record,)
        self.warrants.issue(kind, author, evidence)

    def _warrant_if_equivocating(self, record: Record) -> None:
        """Warrant a payer whose position holds one thing while a payment it countersigned there
        holds another: ``record`` is the payer's own (a payment elsewhere named its seq), or a
        payment of another party's naming a payer seq this node holds something else at."""
        author = record.action.author
        if author not in self.agents:
            for payment in self.store.payments_naming(author, record.action.seq):
                if equivocates(record, payment):
                    self.warrants.issue("equivocation", author, (record, payment))
                    return
        self._warrant_payer_if_equivocating(record)

    def _check_payer_position(self, record: Record) -> None:
        """As one of a payer's authorities, sent a payment of a chain not held here (its payee's,
        ``publishing.informed``): warrant the payer if the payment's own author signed it and the
        payer's chain holds something else at the position it countersigned."""
        if record.action.entry_type != PAYMENT or self.store.get(record.hash) is not None:
            return
        position = payer_position(record.entry)
        if position is None or self.store.head(position[0]) is None:
            return
        author = record.action.author
        if verify(author.raw, SIG_ACTION, record.action_bytes, record.signature):
            self._warrant_payer_if_equivocating(record)

    def _warrant_payer_if_equivocating(self, record: Record) -> None:
        """Warrant the payer a payment names if this node holds something else at its position."""
        if record.action.entry_type != PAYMENT:
            return
        author = record.action.author
        position = payer_position(record.entry)
        if position is None or position[0] == author or position[0] in self.agents:
            return
        held = self.store.hash_at(*position)
        other = None if held is None else self.store.get(held)
        if other is not None and equivocates(other, record):
            self.warrants.issue("equivocation", position[0], (other, record))

    def _warrant_if_stale(self, record: Record) -> None:
        """Warrant a record made under an old rules head that a ratification we hold had barred.

        The record itself is valid (it is judged under the head it names); see
        ``conode.validation.stale`` for why this is a warrant and not a verdict.
        """
        found = stale_evidence(self.engine, record, self.rules_head.current(), self.store)
        if found is None:
            return
        ratification, offence = found
        log.warning(
            "%s made %s under rules from before %s (%s)",
            record.action.author.short(), record.hash.short(), ratification.hash.short(), offence,
        )  # fmt: skip
        self.warrants.issue("stale-rules", record.action.author, (record, ratification))
