"""The payment policy: what a node refuses before and during a countersigning session.

Rule 1 (h11's ``_state.py``): every decision about a payment that a node
makes on its own side lives here, none in the shell. Rule 2: the payer's
node and the payee's node call the same checks (``limits_refusal``,
``own_refusal``), so neither side cheats with rules of its own.

What the policy refuses, in the order a payment meets it:

- **early** (``early_refusal``, the payer's node, no session yet): an
  amount out of range, paying oneself, a warranted payee, an "offer" that is
  not an exchange offer of the payee; then ``precheck``: the payer's own
  limits under the rules in force now;
- **the payee answers** (``answerable``): the agent is hosted here and
  accepts automatically, the payer is not warranted, the offer is well
  formed and names these two parties; ``needs_payer_chain`` says when the
  payer's chain must be fetched first;
- **the payee completes** (``complete``): the payer's position is not taken
  (signing it would fund a fork), the chains are held up to both positions,
  both parties' limits and standing under the head the payment names *and*
  under this node's newest head (an honest node signs nothing a stale-rules
  warrant could be made of), a Foundation payment carries out a ratified
  disbursement, and the payee's own record folds into its chain;
- **the payer checks the completed body** (``check_completion``): it is the
  offer completed, the payee's chain is held up to its position, and the
  payer's own record folds and passes the same limits.

Reads go through ``PaymentView``, a read-only view of what the node holds,
never the node. Pure: no I/O, no clock (times are arguments), and a signer
is lent only to make this party's own record as it will be.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Final, Protocol

from conode.chain import ChainHead
from conode.crypto import SIG_COUNTERSIGN, Signer
from conode.errors import EncodingError
from conode.hashes import ActionHash, AgentKey
from conode.validation.activity import Activity, step
from conode.validation.context import Judge, ValidationContext
from conode.validation.credit import Party, check_limits, party_at
from conode.validation.entries import (
    EXCHANGE_OFFER,
    MAX_AMOUNT,
    MAX_MEMO,
    Payment,
    PaymentBody,
    Role,
)
from conode.validation.foundation import check_disbursement
from conode.validation.governance import Rules
from conode.validation.payment import (
    PaymentOffer,
    commit_payment,
    complete_offer,
    completion_differs,
)
from conode.validation.verdict import Invalid, Valid

__all__ = ["PaymentPolicy", "PaymentView"]

_NO_SIGNATURE: Final = b"\x00" * 64
"""The other party's signature, not given yet: the machine checks it; the rules judge the rest."""


class PaymentView(ValidationContext, Protocol):
    """What the payment policy may read of what a node holds (the store is one)."""

    def activity(self, agent: AgentKey) -> Activity:
        """Where ``agent``'s chain stands (``Activity()`` if it is not held)."""

    def head(self, agent: AgentKey) -> ChainHead | None:
        """The head of ``agent``'s chain, if it is held."""

    def hash_at(self, agent: AgentKey, seq: int) -> ActionHash | None:
        """The hash of the record at ``seq`` of ``agent``'s chain, if held."""

    def warranted(self, agent: AgentKey) -> bool:
        """Whether a warrant against ``agent`` is held."""


class PaymentPolicy:
    """One node's payment checks: the rules (``judge``), what it holds (``view``), whom it hosts.

    Every method is deterministic in its arguments and what ``view`` holds. A refusal is its
    reason (text for the user or the peer); ``None`` is no refusal.
    """

    def __init__(self, judge: Judge, view: PaymentView, hosted: Container[AgentKey]) -> None:
        self.judge = judge
        self.view = view
        self.hosted = hosted

    # -- the payer's node, before any session --------------------------------------------------

    def early_refusal(
        self,
        payer: AgentKey,
        payee: AgentKey,
        amount: int,
        offer: ActionHash | None,
        memo: str = "",
    ) -> str | None:
        """What the payer's node refuses at once, before it reads any rules."""
        if type(amount) is not int or not 0 < amount <= MAX_AMOUNT:
            return f"the amount must be a whole number from 1 to {MAX_AMOUNT}"
        if not _is_text(memo):
            return "the memo is not valid text (a lone surrogate or another code point no UTF-8 holds)"
        if len(memo) > MAX_MEMO:
            return f"the memo is longer than {MAX_MEMO} characters"
        if payee == payer:
            return "an agent cannot pay itself"
        if self.view.warranted(payee):
            return f"{payee.short()} is warranted"
        bought = None if offer is None else self.view.get_record(offer)
        if bought is not None and (
            bought.action.entry_type != EXCHANGE_OFFER or bought.action.author != payee
        ):
            return f"{offer} is not an exchange offer of the payee"
        return None

    def precheck(self, agent: AgentKey, change: int, rules: Rules, now: int) -> str | None:
        """Whether ``agent``'s balance may move by ``change`` under ``rules`` (the rules in force
        ``now``): refused at once, no session is started."""
        state = self.view.activity(agent)
        if state.genesis is None:
            return f"{agent.short()} has no chain here"
        # the hosted agent's own chain pins its genesis, as its position in the payment will
        party = party_at(self.judge, agent, state.genesis, now, rules, self.view)
        if not isinstance(party, Party):
            return str(party)
        verdict = check_limits(state.balance + change, rules, party)
        return None if isinstance(verdict, Valid) else str(verdict)

    # -- both parties ----------------------------------------------------------------------------

    def limits_refusal(self, body: PaymentBody, head: ActionHash | None) -> str | None:
        """Both parties' balance limits and standing, under the rules in force at the payment's time.

        Judged under the head the payment names and under this node's own newest
        head (``head``): an honest node takes no part in a payment its newest rules
        forbid, so it never signs what a stale-rules warrant could be made of. A payment
        by the Foundation must carry out a ratified disbursement: checked before
        either side signs, so a refused one never leaves a chain held.
        """
        view = self.view
        for rules_head in dict.fromkeys((body.rules, head)):
            rules = self.judge.rules_at(rules_head, body.timestamp, view)
            if not isinstance(rules, Rules):
                return f"the rules named are not known here ({rules})"
            parties = []
            for position in (body.payer, body.payee):
                party = party_at(
                    self.judge, position.agent, position.genesis, body.timestamp, rules, view
                )
                if not isinstance(party, Party):
                    return str(party)
                parties.append(party)
                verdict = check_limits(position.balance_after, rules, party)
                if not isinstance(verdict, Valid):
                    return str(verdict)
            if rules_head == body.rules and parties[0].role == Role.FOUNDATION:
                spending = check_disbursement(self.judge, body, parties[1].is_coop, view)
                if not isinstance(spending, Valid):
                    return str(spending)
        for position in (body.payer, body.payee):
            state = view.activity(position.agent)
            if (
                state.head is not None
                and position.prev_credit != state.last_credit
                and position.agent in self.hosted
            ):
                return "the position does not follow the chain's last payment"
        return None

    def own_refusal(
        self, signer: Signer, payment: Payment, head: ActionHash | None
    ) -> str | None:
        """Why this party's record of ``payment`` would be refused here (None: it would pass).

        The peer's signature is checked by the session machine: this judges the
        record as it will be by the activity fold and the limits.
        """
        record = commit_payment(signer, payment)
        _, offence = step(self.view.activity(record.action.author), record)
        if isinstance(offence, Invalid):
            return str(offence)
        return self.limits_refusal(payment.body, head)

    def _tolerance(self, head: ActionHash | None, at: int) -> int:
        """How far after an offer a payee may date the body (clocks differ): the rules' word."""
        rules = self.judge.rules_at(head, at, self.view)
        return rules.params.clock_tolerance_us if isinstance(rules, Rules) else 0

    # -- the payee's node -----------------------------------------------------------------------

    def answerable(
        self, sender: AgentKey, to: AgentKey, partial: bytes, auto_accept: bool | None
    ) -> PaymentOffer | str:
        """The offer, if the payee's node may answer it for ``to`` (``auto_accept`` None: ``to`` is
        not hosted here); else why not."""
        if auto_accept is None:
            return "that agent is not hosted here"
        if not auto_accept:
            return "the payee accepts payments only in person"
        if self.view.warranted(sender):
            return "the payer is warranted"
        try:
            offer = PaymentOffer.from_bytes(partial)
        except EncodingError as exc:
            return f"a malformed offer: {exc}"
        if offer.payee != to or offer.payer.agent != sender:
            return "the offer names other parties"
        return offer

    def needs_payer_chain(self, offer: PaymentOffer) -> bool:
        """What the offer names of the payer's chain must be fetched first: its genesis names the
        payer, and its last credit record is needed to commit the payee's."""
        credit = offer.payer.prev_credit
        return self.view.get_record(offer.payer.genesis) is None or (
            credit is not None and self.view.get_record(credit) is None
        )

    def complete(
        self, partial: bytes, signer: Signer, head: ActionHash | None
    ) -> bytes | str:
        """The completed body the payee (``signer``'s agent) signs, or why it will not."""
        offer = PaymentOffer.from_bytes(partial)
        if self.view.hash_at(offer.payer.agent, offer.payer.seq) is not None:
            # the payer already used that position (held here): signing would fund a fork
            return "the payer's position in the offer is already taken"
        credit = offer.payer.prev_credit
        if credit is not None and self.view.get_record(credit) is None:
            # our record could not be judged (Missing) when the Complete comes
            return "the payer's chain is not held here up to its position"
        tolerance = self._tolerance(head, offer.timestamp)
        payee = self.view.activity(AgentKey(signer.public_key))
        body = complete_offer(offer, payee, tolerance=tolerance)
        if isinstance(body, str):
            return body
        body_bytes = body.to_bytes()
        # judge the payer's record as it will be: the payer's own signature comes later
        reason = self.limits_refusal(body, head)
        if reason is not None:
            return reason
        own = signer.sign(SIG_COUNTERSIGN, body_bytes)
        check = self.own_refusal(signer, Payment(body, _NO_SIGNATURE, own, body_bytes), head)
        return body_bytes if check is None else check

    # -- the payer's node --------------------------------------------------------------------------

    def check_completion(
        self, partial: bytes, body: bytes, signer: Signer, head: ActionHash | None
    ) -> str | None:
        """Whether the payer (``signer``'s agent) signs the body the payee completed."""
        offer = PaymentOffer.from_bytes(partial)
        try:
            completed = PaymentBody.from_bytes(body)
        except EncodingError as exc:
            return f"the completed body is malformed: {exc}"
        differs = completion_differs(
            offer, completed, tolerance=self._tolerance(head, offer.timestamp)
        )
        if differs is not None:
            return differs
        credit = completed.payee.prev_credit
        if credit is not None and self.view.get_record(credit) is None:
            # the payer's record could not be judged (Missing) once the machine had committed
            return "the payee's chain is not held here up to its position"
        own = signer.sign(SIG_COUNTERSIGN, body)
        return self.own_refusal(signer, Payment(completed, own, _NO_SIGNATURE, body), head)


def _is_text(text: str) -> bool:
    """Whether ``text`` can be encoded (it must go into canonical CBOR as UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
