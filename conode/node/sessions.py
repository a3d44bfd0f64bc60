"""Payment sessions on a node: the registry, the effect port, deadlines, restarts, forgetting.

The countersigning machines run on ``SessionDriver``; this service is its
port (``SessionPort``) and everything around it:

- **inbound**: a session message for a hosted agent, over the
  ``countersign`` protocol or from another session on this node, taken only
  from the peer that the sender's newest signed hosting claim names (a
  stranger cannot hold anyone's chain). An Offer for no held session starts
  a responder if the payment policy lets this node answer (the payer's chain
  fetched first when it must be); an Accept for a session no longer held is
  answered from the chain (``_late_accept``).
- **the port**: chain locks (``ChainLocks``), session records persisted
  before anything leaves, the commit through ``Ingest.commit_session``
  (dependencies fetched from the counterparty's node, three tries), messages
  sent to the counterparty's host, and, through ``Witnessing``, the DHT asked
  for the initiator's record and that record **witnessed** by the initiator's
  activity authorities before a responder commits.
- **deadlines**: each session's one timer; a task sleeps until the nearest
  (woken when one is set), feeds ``TimedOut``, and forgets sessions ten
  minutes after they finished, in memory and on disk.
- **restart**: at start every responder that signed holds its chain again
  (``hold_signed``, before anything is served); the sessions are then
  resumed in the background, a few at a time (``resume``), so a node whose
  peers are gone comes up at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Final

import trio

from conode.crypto import SIG_COUNTERSIGN, verify
from conode.dht.messages import (
    CountersignReply,
    CountersignRequest,
)
from conode.dht.transport import Handler, PeerId, TaskStatus
from conode.errors import EncodingError
from conode.hashes import ActionHash, AgentKey
from conode.node.authoring import ChainLocks
from conode.node.hosting import Hosting
from conode.node.ingest import Ingest, Need
from conode.node.peer_client import PeerClient, serve, tolerate
from conode.node.pulls import Pulls
from conode.node.rules_head import RulesHead
from conode.node.session_driver import Session, SessionDriver
from conode.node.settings import HostedAgent
from conode.node.witnessing import Witnessing
from conode.payments.policy import PaymentPolicy
from conode.store import NodeStore
from conode.validation import countersign as cs
from conode.validation.admit import Admitted, Needs
from conode.validation.entries import PAYMENT, Payment, PaymentBody
from conode.validation.payment import commit_payment, payer_record, payer_signature_in

__all__ = ["BUSY", "Sessions", "signs_for", "verifies_for"]

BUSY: Final = "the chain is busy with another payment"
"""Why a session could not lock a chain: another session holds it (a payee's node holds its
chain until its commit is witnessed, after the payer's node has its outcome)."""

log = logging.getLogger("conode.node")

SESSION_KEY_SIZE: Final = cs.SESSION_ID_SIZE + 32
"""A session's key: its id, then the hosted agent's 32 key bytes (each party has its own)."""
_FINISHED_SESSION_KEEP_US: Final = 600_000_000  # a finished session is forgotten 10 min on
_FINAL: Final = frozenset({cs.Phase.COMMITTED, cs.Phase.ABORTED})
_MAX_TIMER_WAIT: Final = 1.0
"""The longest the deadline task sleeps without looking at the clock (the node's clock may jump)."""
_COMMIT_TRIES: Final = 3
_RESUMING_AT_ONCE: Final = 4
"""How many persisted sessions resume together after a start (each may wait on the network)."""


def signs_for(hosted: HostedAgent) -> Callable[[bytes], bytes]:
    """The agent's countersignature over a payment body."""
    return lambda body: hosted.signer.sign(SIG_COUNTERSIGN, body)


def verifies_for(agent: AgentKey) -> Callable[[bytes, bytes], bool]:
    """Whether a countersignature over a body is ``agent``'s."""
    return lambda body, signature: verify(agent.raw, SIG_COUNTERSIGN, body, signature)


def records_for(hosted: HostedAgent) -> Callable[[bytes, bytes, bytes], bytes]:
    """The agent's chain record of a payment it pays (what its Complete carries)."""
    return lambda body, own, peer: payer_record(hosted.signer, body, own, peer)


class Sessions:
    """The payment sessions of the agents this node hosts; see the module docstring."""

    def __init__(
        self,
        store: NodeStore,
        ingest: Ingest,
        pulls: Pulls,
        hosting: Hosting,
        client: PeerClient,
        policy: PaymentPolicy,
        rules_head: RulesHead,
        locks: ChainLocks,
        agents: Mapping[AgentKey, HostedAgent],
        clock: Callable[[], int],
        published: Callable[[], None],
        *,
        retry_interval_us: int,
        replication: int,
    ) -> None:
        self.store = store
        self.ingest = ingest
        self.pulls = pulls
        self.hosting = hosting
        self.client = client
        self.policy = policy
        self.rules_head = rules_head
        self.locks = locks
        self.agents = agents
        self.clock = clock
        self.published = published
        self.retry_interval_us = retry_interval_us
        self.witnessing = Witnessing(
            store, ingest, pulls, hosting, client, agents, clock, replication=replication
        )
        self.driver = SessionDriver(self)
        self._timers: dict[bytes, int] = {}
        self._finished: dict[bytes, int] = {}  # session key -> when it ended (node clock, µs)
        self._resuming: list[tuple[bytes, cs.SessionRecord]] = []
        self._wake = trio.Event()

    def handlers(self) -> dict[str, Handler]:
        """The protocol it answers: ``countersign``."""
        return {CountersignRequest.protocol: serve(CountersignRequest.decode, self._on_countersign)}

    # -- the registry --------------------------------------------------------------------------

    def register(self, key: bytes, machine: cs.Initiator | cs.Responder, agent: AgentKey) -> Session:
        """Hold a new session of hosted ``agent`` under ``key``."""
        session = self.driver.sessions[key] = Session(machine, agent)
        return session

    def begin(self, key: bytes) -> None:
        """Start an initiator's session in the node's own nursery: it goes on whether or not
        whoever asked for the payment is still waiting (a client that went away)."""
        self.client.spawn(self._begin, key)

    async def _begin(self, key: bytes) -> None:
        try:
            await self.driver.start(key)
        except Exception as exc:  # a task boundary: the node lives on, the chain is let go
            log.exception("payment session %s failed", key[:4].hex())
            self.abandon(key, f"{type(exc).__name__}: {exc}")

    async def _feed_guarded(self, key: bytes, event: Callable[[int], cs.Event]) -> None:
        """Feed a session from one of this service's own tasks: a session that fails (a bug, a
        store error outside a write) is logged and left as it is (its timer asks again), and
        the node goes on."""
        try:
            await self.driver.feed(key, event)
        except Exception:  # a task boundary: one session must not stop every other
            log.exception("payment session %s failed", key[:4].hex())

    def abandon(self, key: bytes, error: str) -> None:
        """Let go of a session whose driver failed (an exception, not a decision): its chain is
        released and it is forgotten in memory (what it persisted, if anything, resumes at the
        next start as the protocol says)."""
        session = self.driver.sessions.pop(key, None)
        self._timers.pop(key, None)
        if session is not None:
            session.error = error
            self.locks.release(session.agent, key)
            session.done.set()

    def open_for(self, agent: AgentKey) -> bool:
        """A session of ``agent`` is open here (its machine is not done)."""
        return any(s.agent == agent and not s.machine.done for s in self.driver.sessions.values())

    def open_count(self) -> int:
        """How many sessions are open here."""
        return sum(1 for s in self.driver.sessions.values() if not s.machine.done)

    @property
    def registry(self) -> Mapping[bytes, Session]:
        """The sessions held in memory (open, or finished and not forgotten yet), by key."""
        return self.driver.sessions

    @property
    def resuming(self) -> Mapping[bytes, cs.SessionRecord]:
        """The sessions rebuilt at start and not resumed yet: what each persisted."""
        return dict(self._resuming)

    # -- inbound -------------------------------------------------------------------------------

    async def _on_countersign(self, peer: PeerId, request: CountersignRequest) -> CountersignReply:
        reply = await self.inbound(request.sender, request.to, request.message, peer)
        return CountersignReply(reply)

    async def inbound(
        self, sender: AgentKey, to: AgentKey, message: cs.Message, peer: PeerId | None
    ) -> cs.Message | None:
        """A session message for hosted agent ``to`` (from ``peer``; None: from this node); the
        reply to send back, if any."""
        if peer is not None and not await self._sent_by_host(sender, peer):
            log.warning("%s sent a session message as %s, which it does not host", peer, sender.short())
            if isinstance(message, cs.Offer):
                return cs.Decline(message.session_id, "the sender does not host the payer")
            return None
        key = message.session_id + to.raw
        session = self.driver.sessions.get(key)
        if session is None:
            if not isinstance(message, cs.Offer):
                if isinstance(message, cs.Accept):
                    return self._late_accept(to, message)
                return None
            refusal = await self._may_answer(sender, to, message, peer)
            if refusal is not None:
                return cs.Decline(message.session_id, refusal)
            session = self.register(key, self.responder(message.session_id, sender, to), to)
        if peer is not None and isinstance(session.machine, cs.Initiator):
            await self.hold_payee_chain(message, peer)
        replies = await self.driver.feed(key, lambda now: cs.Received(now, message), sender)
        return replies[-1] if replies else None

    async def _sent_by_host(self, sender: AgentKey, peer: PeerId) -> bool:
        """Whether ``peer`` hosts ``sender`` by its newest signed claim (asking it once for the claim
        if it is not known to)."""
        if self.hosting.hosts.get(sender) != peer:
            await self.hosting.learn_host_from(peer, sender)
        return self.hosting.hosts.get(sender) == peer

    async def _may_answer(
        self, sender: AgentKey, to: AgentKey, offer: cs.Offer, peer: PeerId | None
    ) -> str | None:
        hosted = self.agents.get(to)
        answerable = self.policy.answerable(
            sender, to, offer.partial, None if hosted is None else hosted.auto_accept
        )
        if isinstance(answerable, str):
            return answerable
        if peer is not None and self.policy.needs_payer_chain(answerable):
            payer = answerable.payer
            named = tuple(h for h in (payer.genesis, payer.prev_credit) if h is not None)
            # the payer's genesis (who it is) and last credit (its balance): not its whole chain
            await self.pulls.fetch_needed(Need(records=named, hints=(sender,)), peer, 0)
            if self.policy.needs_payer_chain(answerable):  # as before sharding: its chain
                with tolerate("fetching the chain of %s from %s", sender.short(), peer):
                    await self.pulls.pull_chain(peer, sender, self.pulls.next_seq(sender))
            if self.policy.needs_payer_chain(answerable):
                return "cannot fetch the payer's genesis and last credit"
        return None

    async def hold_payee_chain(self, message: cs.Message | None, peer: PeerId) -> None:
        """Before an initiator judges an Accept: fetch what its body names of the payee's chain."""
        if not isinstance(message, cs.Accept):
            return
        try:
            position = PaymentBody.from_bytes(message.body).payee
        except EncodingError:
            return  # the machine refuses it
        named = tuple(
            h for h in (position.genesis, position.prev_credit)
            if h is not None and self.store.get(h) is None
        )  # fmt: skip
        if named:  # who the payee is and its last credit: not its whole chain
            await self.pulls.fetch_needed(Need(records=named, hints=(position.agent,)), peer, 0)

    def responder(self, session_id: bytes, payer: AgentKey, to: AgentKey) -> cs.Responder:
        """A responder machine for hosted ``to``, completing by the payment policy."""
        hosted = self.agents[to]

        def complete(partial: bytes, _head: bytes) -> bytes | str:
            return self.policy.complete(partial, hosted.signer, self.rules_head.current())

        params = self.rules_head.params_now()
        return cs.Responder(
            cs.SessionId(session_id),
            payer,
            complete=complete,
            sign=signs_for(hosted),
            verify_peer=verifies_for(payer),
            read_record=payer_signature_in,
            retry_interval=self.retry_interval_us,
            tolerance=params.clock_tolerance_us,
            max_expiry=params.session_timeout_us,
        )


    def _late_accept(self, agent: AgentKey, accept: cs.Accept) -> cs.Message:
        """The answer to an Accept for a session not held here (finished and forgotten, or never).

        If this agent's chain holds the very body accepted, this side committed
        it: answer Complete with its signature from the entry, as the session
        would have. Anything else was never committed here and never will be
        (a session is only forgotten once final): Abort.
        """
        try:
            position = PaymentBody.from_bytes(accept.body).position_of(agent)
        except EncodingError:
            position = None
        held = None if position is None else self.store.hash_at(agent, position.seq)
        record = None if held is None else self.store.get(held)
        if record is not None and record.action.entry_type == PAYMENT and record.entry is not None:
            payment = Payment.from_value(record.entry_value())
            if payment.body_bytes == accept.body and payment.body.payer.agent == agent:
                return cs.Complete(accept.session_id, payment.payer_sig, record.to_bytes())
        return cs.Abort(accept.session_id, "no such session here")

    # -- the port --------------------------------------------------------------------------------

    def now(self) -> int:
        return self.clock()

    def lock(self, key: bytes, agent: AgentKey) -> cs.Locked | cs.LockRefused:
        holder = self.locks.holder(agent)
        if holder is not None and holder != key:
            return cs.LockRefused(self.clock(), BUSY)
        self.locks.take(agent, key)
        head = self.store.head(agent)
        return cs.Locked(self.clock(), b"" if head is None else head.hash.raw)

    def unlock(self, key: bytes, agent: AgentKey) -> None:
        self.locks.release(agent, key)

    def persist(self, key: bytes, agent: AgentKey, record: cs.SessionRecord) -> None:
        self.store.save_session(key, agent, record.to_bytes())

    def restarted(self, agent: AgentKey, record: cs.SessionRecord) -> cs.Initiator:
        """An initiator rebuilt from its persisted record (it decides nothing anew)."""
        hosted = self.agents[agent]
        return cs.Initiator(
            record.session_id,
            record.peer,
            record.expires_at,
            make_partial=lambda _h: "restarted",
            check_body=lambda _p, _b: "restarted",
            sign=signs_for(hosted),
            make_record=records_for(hosted),
            verify_peer=verifies_for(record.peer),
            retry_interval=self.retry_interval_us,
        )

    async def commit(
        self, key: bytes, agent: AgentKey, record: cs.SessionRecord
    ) -> ActionHash | str:
        """Append this party's record of the payment and the COMMITTED session record, atomically.

        Why not, if the rules cannot pass the record here now (a dependency that could not be
        fetched): nothing is written then. ``StorageError`` if the store cannot write.
        """
        assert (
            record.body is not None
            and record.own_signature is not None
            and record.peer_signature is not None
        )
        body = PaymentBody.from_bytes(record.body)
        if body.payer.agent == agent:
            payment = Payment(body, record.own_signature, record.peer_signature, record.body)
        else:
            payment = Payment(body, record.peer_signature, record.own_signature, record.body)
        chain_record = commit_payment(self.agents[agent].signer, payment)
        counterparty = body.payee.agent if body.payer.agent == agent else body.payer.agent
        for _attempt in range(_COMMIT_TRIES):
            outcome = await self.ingest.commit_session(chain_record, key, record.to_bytes())
            if isinstance(outcome, Admitted):
                # published once the session is done (``finished``): sent now, it would
                # have the payee judge our record while it commits its own
                return chain_record.hash
            verdict = outcome.verdict
            if not isinstance(outcome, Needs) or counterparty in self.agents:
                break
            with tolerate("fetching what a payment needs"):  # from the counterparty's node
                host = await self.hosting.host_of(counterparty)
                await self.pulls.fetch_needed(Need.of(outcome, chain_record), host, 0)
        return f"cannot commit the payment here yet: {verdict}"

    def set_timer(self, key: bytes, at: int) -> None:
        self._timers[key] = at
        self._wake.set()

    def cancel_timer(self, key: bytes) -> None:
        self._timers.pop(key, None)

    async def send(self, key: bytes, agent: AgentKey, effect: cs.SendTo) -> cs.Message | None:
        if effect.peer in self.agents:
            return await self.inbound(agent, effect.peer, effect.message, None)
        reply = None
        with tolerate("countersigning message to %s", effect.peer.short()):
            peer = await self.hosting.host_of(effect.peer)
            answer = await self.client.ask(peer, CountersignRequest(agent, effect.peer, effect.message))
            reply = answer.message
            await self.hold_payee_chain(reply, peer)
        return reply

    async def query(self, key: bytes, body_bytes: bytes) -> cs.DHTAnswered:
        return await self.witnessing.query(body_bytes)

    async def witness(self, key: bytes, raw: bytes) -> cs.Witnessed | cs.DHTAnswered | None:
        return await self.witnessing.witness(raw)

    def finished(self, key: bytes) -> None:
        self.published()
        self._finished.setdefault(key, self.clock())
        self._wake.set()

    # -- deadlines ---------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Feed ``TimedOut`` to each session whose deadline passed, and forget finished ones."""
        task_status.started()
        while True:
            now = self.clock()
            for key, at in list(self._timers.items()):
                if now < at or self._timers.get(key) != at:
                    continue  # not due; or cancelled or moved while an earlier one was fed
                del self._timers[key]
                if key in self.driver.sessions:
                    await self._feed_guarded(key, _timed_out(now))
            self._forget_finished(now)
            with trio.move_on_after(self._until_next(now)):
                await self._wake.wait()
            self._wake = trio.Event()

    def _until_next(self, now: int) -> float:
        """Seconds until the nearest deadline or forgetting (at most ``_MAX_TIMER_WAIT``)."""
        due = [*self._timers.values()]
        due += [at + _FINISHED_SESSION_KEEP_US for at in self._finished.values()]
        if not due:
            return _MAX_TIMER_WAIT
        return min(max(0.0, (min(due) - now) / 1e6), _MAX_TIMER_WAIT)

    def _forget_finished(self, now: int) -> None:
        """Drop sessions finished ``_FINISHED_SESSION_KEEP_US`` ago, from memory and from disk.

        Kept, they would grow with every payment ever made (and be resumed at
        every start). A late Accept for one is answered from the chain
        (``_late_accept``). Never dropped: a session whose machine is not done,
        one that holds its agent's chain (a responder still retrying its
        commit), or one whose record on disk is not final.
        """
        due = [key for key, at in self._finished.items() if now - at >= _FINISHED_SESSION_KEEP_US]
        if not due:
            return
        on_disk = {key: raw for key, _agent, raw in self.store.sessions() if key in self._finished}
        holding = self.locks.holders()
        forget: list[bytes] = []
        sessions = self.driver.sessions
        for key in due:
            del self._finished[key]
            session = sessions.get(key)
            raw = on_disk.get(key)
            if (
                key in holding
                or (session is not None and (not session.machine.done or session.lock.locked()))
                or (raw is not None and cs.SessionRecord.from_bytes(raw).status not in _FINAL)
            ):
                continue
            sessions.pop(key, None)
            self._timers.pop(key, None)
            forget.append(key)
        if forget:
            self.store.append([], sessions=dict.fromkeys(forget))

    # -- restart -----------------------------------------------------------------------------------

    def hold_signed(self) -> None:
        """Rebuild every persisted session, and hold again the chains of responders that signed.

        Done before the node serves anything: an Offer served meanwhile must find a signed
        chain locked. Disk only, no network: the sessions speak later (``resume``).
        """
        finished: list[bytes] = []
        for key, agent, raw in self.store.sessions():
            if len(key) != SESSION_KEY_SIZE or agent not in self.agents:
                continue
            try:
                record = cs.SessionRecord.from_bytes(raw)
            except EncodingError as exc:
                log.error("a stored session is unreadable: %s", exc)
                continue
            if record.status in _FINAL and record.role is cs.Role.RESPONDER:
                finished.append(key)  # nothing left to do or to answer: forgotten
                continue
            machine: cs.Initiator | cs.Responder
            if record.role is cs.Role.INITIATOR:
                machine = self.restarted(agent, record)
            else:
                machine = self.responder(record.session_id, record.peer, agent)
                if record.status is cs.Phase.SIGNED:
                    self.locks.take(agent, key)
            self.register(key, machine, agent)
            self._resuming.append((key, record))
        if finished:
            self.store.append([], sessions=dict.fromkeys(finished))

    async def resume(self) -> None:
        """Feed each rebuilt session its ``Restarted``, a few at a time (each may wait on peers
        that are gone: the node serves meanwhile)."""
        limit = trio.CapacityLimiter(_RESUMING_AT_ONCE)
        todo = list(self._resuming)

        async def one(key: bytes, record: cs.SessionRecord) -> None:
            async with limit:
                self._resuming.remove((key, record))
                await self._feed_guarded(key, _restarted(record))

        async with trio.open_nursery() as nursery:
            for key, record in todo:
                nursery.start_soon(one, key, record)

    async def restart(self) -> None:
        """Rebuild and resume every persisted session now (``hold_signed`` then ``resume``)."""
        self.hold_signed()
        await self.resume()


def _restarted(record: cs.SessionRecord) -> Callable[[int], cs.Event]:
    """The event that resumes a session from its persisted ``record``."""
    return lambda now: cs.Restarted(now, record)


def _timed_out(at: int) -> Callable[[int], cs.Event]:
    """The event that tells a session its deadline passed (seen at ``at``)."""
    return lambda _now: cs.TimedOut(at)
