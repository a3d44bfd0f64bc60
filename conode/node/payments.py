"""Payments and bills of hosted agents: the payer's side of a countersigning session.

``pay`` asks the payment policy first (``conode.payments.policy``: amount,
offer, the payer's limits), reaches the payee's host and holds the payee's
genesis, then starts an initiator whose callables are the policy's (the
payee's node calls the same checks), and waits until the session is decided.
The result names the record the session's own Commit wrote. With an
idempotency key, the request is kept (durably, before the session speaks)
with its session and then its outcome: a retry with the same key waits for
that session or gets its outcome, and never pays twice. A bill is a
record on the payee's chain; accepting one is a payment that refers to it.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping
from typing import Final

import trio

from conode import encoding
from conode.chain import Record
from conode.errors import EncodingError, NetworkError, RemoteProtocolError, ValidationError
from conode.hashes import ActionHash, AgentKey, CharterHash
from conode.node.authoring import Authoring
from conode.node.hosting import Hosting
from conode.node.pulls import Pulls
from conode.node.rules_head import RulesHead
from conode.node.session_driver import Session
from conode.node.sessions import BUSY, Sessions, records_for, signs_for, verifies_for
from conode.node.settings import PaymentResult
from conode.payments.policy import PaymentPolicy
from conode.store import NodeStore
from conode.validation import countersign as cs
from conode.validation.entries import BILL, BILL_DECLINE, Bill, BillDecline, PaymentBody
from conode.validation.payment import offer_payment

__all__ = ["Payments"]


BUSY_WAITS_S: Final = (0.5, 1.0, 2.0, 4.0)
"""How long a payer waits before it asks again when a chain was busy with another payment (its
own, or the payee's, which the payee's node holds until its side of an earlier payment is
witnessed and committed): a new session each time, the refused one having paid nothing."""

class Payments:
    """Payments and bills started by this node's hosted agents."""

    def __init__(
        self,
        store: NodeStore,
        network: CharterHash,
        authoring: Authoring,
        hosting: Hosting,
        pulls: Pulls,
        sessions: Sessions,
        policy: PaymentPolicy,
        rules_head: RulesHead,
        agents: Mapping[AgentKey, object],
        clock: Callable[[], int],
        *,
        session_timeout_us: int,
        request_timeout: float,
    ) -> None:
        self.store = store
        self.network = network
        self.authoring = authoring
        self.hosting = hosting
        self.pulls = pulls
        self.sessions = sessions
        self.policy = policy
        self.rules_head = rules_head
        self.agents = agents
        self.clock = clock
        self.session_timeout_us = session_timeout_us
        self.request_timeout = request_timeout

    async def pay(
        self,
        payer: AgentKey,
        payee: AgentKey,
        amount: int,
        *,
        memo: str = "",
        ref: ActionHash | None = None,
        offer: ActionHash | None = None,
        idempotency_key: str | None = None,
    ) -> PaymentResult:
        """Make a countersigned payment from a hosted agent; wait until it is decided.

        ``offer``: the ``exchange/offer`` (by the payee) the payment buys from.
        ``idempotency_key``: asked again with the same key (a client that lost its
        connection), the payment is not made again: the first one's outcome is the answer.
        """
        if idempotency_key is None:
            return await self._pay(payer, payee, amount, memo, ref, offer, None)
        request = _request_digest(payer, payee, amount, memo, ref, offer)
        found = self.store.pay_request(idempotency_key)
        if found is not None:
            asked, key, outcome = found
            if asked != request:
                return PaymentResult(False, "this idempotency key was used for another payment")
            if outcome is not None:
                return _read_outcome(outcome)
            session = self.sessions.registry.get(key)
            if session is not None:  # still deciding (or resumed after a restart): its outcome
                return await self._outcome_of(idempotency_key, session, time.perf_counter())
            # the first try never reached its offer: nothing was paid, so pay now
        return await self._pay(payer, payee, amount, memo, ref, offer, (idempotency_key, request))

    async def _pay(
        self,
        payer: AgentKey,
        payee: AgentKey,
        amount: int,
        memo: str,
        ref: ActionHash | None,
        offer: ActionHash | None,
        keyed: tuple[str, bytes] | None,
    ) -> PaymentResult:
        started = time.perf_counter()
        self.authoring.hosted(payer)  # a payer not hosted here is refused before anything
        refusal = self.policy.early_refusal(payer, payee, amount, offer, memo)
        if refusal is not None:
            return PaymentResult(False, refusal)
        refusal = self.policy.precheck(payer, -amount, self.rules_head.rules_now(), self.clock())
        if refusal is not None:
            return PaymentResult(False, refusal, elapsed_ms=_ms(started))
        if payee not in self.agents:
            try:
                peer = await self.hosting.host_of(payee)
                # its genesis names it; the rest of its chain is its authorities' to hold
                await self.pulls.must_get_genesis(payee, peer)
            except (NetworkError, RemoteProtocolError) as exc:
                return PaymentResult(
                    False, f"cannot reach the payee: {exc}", elapsed_ms=_ms(started)
                )
        for wait in (*BUSY_WAITS_S, None):
            result = await self._session(payer, payee, amount, memo, ref, offer, keyed, started)
            if result.committed or wait is None or BUSY not in result.reason:
                return result
            await trio.sleep(wait)  # a chain busy with another payment: ask again in a moment
        raise AssertionError("unreachable")  # the last wait is None

    async def _session(
        self,
        payer: AgentKey,
        payee: AgentKey,
        amount: int,
        memo: str,
        ref: ActionHash | None,
        offer: ActionHash | None,
        keyed: tuple[str, bytes] | None,
        started: float,
    ) -> PaymentResult:
        """One countersigning session for the payment, waited for until it is decided."""
        hosted = self.authoring.hosted(payer)
        session_id = os.urandom(cs.SESSION_ID_SIZE)
        now = self.clock()
        rules = self.rules_head.current()
        # no longer than the network lets a payee's chain be held for an offer
        timeout = min(self.session_timeout_us, self.rules_head.params_now().session_timeout_us)

        def make_partial(_head: bytes) -> bytes | str:
            state = self.store.activity(payer)
            if state.head is None:
                return "the payer has no chain"
            partial = offer_payment(
                self.network, state, payee, amount,
                timestamp=self.clock(), memo=memo, rules=rules, ref=ref, offer=offer,
            )  # fmt: skip
            return partial.to_bytes()

        def check_body(partial: bytes, body: bytes) -> str | None:
            return self.policy.check_completion(
                partial, body, hosted.signer, self.rules_head.current()
            )

        machine = cs.Initiator(
            cs.SessionId(session_id),
            payee,
            now + timeout,
            make_partial=make_partial,
            check_body=check_body,
            sign=signs_for(hosted),
            make_record=records_for(hosted),
            verify_peer=verifies_for(payee),
            retry_interval=self.sessions.retry_interval_us,
        )
        key = session_id + payer.raw
        if keyed is not None:  # kept before the session speaks: a retry finds this session
            self.store.start_pay_request(keyed[0], keyed[1], key, now)
        session = self.sessions.register(key, machine, payer)
        self.sessions.begin(key)
        return await self._outcome_of(None if keyed is None else keyed[0], session, started)

    async def _outcome_of(
        self, idempotency_key: str | None, session: Session, started: float
    ) -> PaymentResult:
        """Wait until ``session`` is decided (or the offer's time is up); its outcome, kept for
        ``idempotency_key`` once decided."""
        state = session.machine.state
        left = (state.expires_at or 0) - self.clock()
        with trio.move_on_after(max(0, left) / 1e6 + self.request_timeout):
            await session.done.wait()
        state = session.machine.state  # the session may have restarted its machine
        if state.phase is cs.Phase.COMMITTED:
            record = session.committed or self._payer_record(state.body)
            result = PaymentResult(True, "", record, _ms(started))
        elif session.error is not None:  # given up without a decision: asking again may pay
            return PaymentResult(False, f"the payment failed here: {session.error}", None, _ms(started))
        elif session.machine.done:
            result = PaymentResult(False, state.reason or "refused", elapsed_ms=_ms(started))
        else:
            return PaymentResult(False, "the session did not finish", elapsed_ms=_ms(started))
        if idempotency_key is not None:
            self.store.end_pay_request(idempotency_key, _outcome(result))
        return result

    def _payer_record(self, body: bytes | None) -> ActionHash | None:
        """The payer's record of a committed session's body (a session resumed after a restart
        does not know the hash its Commit wrote)."""
        try:
            position = None if body is None else PaymentBody.from_bytes(body).payer
        except EncodingError:
            return None
        return None if position is None else self.store.hash_at(position.agent, position.seq)

    # -- bills -----------------------------------------------------------------------------------

    async def bill(
        self, payee: AgentKey, payer: AgentKey, amount: int, *, memo: str = "", expires_in_us: int
    ) -> Record:
        """Ask ``payer`` for ``amount``: a bill record on the payee's chain."""
        held = self.store.get_genesis(payer)
        if held is None:  # not held here yet: from the payer's authorities or its host
            await self.pulls.must_get_genesis(payer, await self.hosting.host_of(payer))
            held = self.store.get_genesis(payer)
        genesis = None if held is None else held.hash
        if genesis is None:
            raise ValidationError("provenance", f"{payer.short()} has no chain this node can find")
        now = self.clock()
        bill = Bill(payer, genesis, amount, memo, now + expires_in_us, self.rules_head.current())
        return await self.authoring.create_entry(payee, BILL, bill.to_value())

    async def accept_bill(self, bill_hash: ActionHash) -> PaymentResult:
        """Pay a bill addressed to a hosted agent."""
        record, bill = self._bill(bill_hash)
        return await self.pay(
            bill.payer, record.action.author, bill.amount, memo=bill.memo, ref=bill_hash
        )

    async def decline_bill(self, bill_hash: ActionHash) -> Record:
        """Decline a bill addressed to a hosted agent."""
        _record, bill = self._bill(bill_hash)
        decline = BillDecline(bill_hash).to_value()
        return await self.authoring.create_entry(bill.payer, BILL_DECLINE, decline)

    def _bill(self, bill_hash: ActionHash) -> tuple[Record, Bill]:
        record = self.store.get(bill_hash)
        if record is None or record.action.entry_type != BILL:
            raise ValidationError("bill", f"no bill {bill_hash.short()} is held here")
        return record, Bill.from_value(record.entry_value())


def _request_digest(
    payer: AgentKey,
    payee: AgentKey,
    amount: int,
    memo: str,
    ref: ActionHash | None,
    offer: ActionHash | None,
) -> bytes:
    """What a keyed pay asked, as a digest: a key used again for another payment is refused."""
    asked = [payer.to_bytes(), payee.to_bytes(), amount, memo,
             None if ref is None else ref.to_bytes(), None if offer is None else offer.to_bytes()]  # fmt: skip
    return hashlib.blake2b(encoding.encode(asked), digest_size=16).digest()


def _outcome(result: PaymentResult) -> bytes:
    record = None if result.record is None else result.record.to_bytes()
    return encoding.encode([result.committed, result.reason, record])


def _read_outcome(data: bytes) -> PaymentResult:
    committed, reason, record = encoding.decode(data)
    return PaymentResult(committed, reason, None if record is None else ActionHash.from_bytes(record))


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
