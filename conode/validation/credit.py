"""The built-in credit rules: provenance, nonymous attribution, countersigned payments,
balance limits, bills and key rotation. Pure functions called by the engine.

Rule names (the ``rule`` of an ``Invalid``) are stable: ``network``,
``provenance``, ``revoked``, ``identity``, ``attribution``, ``position``,
``genesis``, ``amount``, ``memo``, ``countersignature``, ``balance``,
``credit-limit``, ``balance-cap``, ``prev-credit``, ``bill``, ``offer``,
``rotation``.

Who a payment's party is (``party_at``) is read from the genesis its position
pins by hash; ``party_by_held_genesis`` reads whichever genesis this peer
holds and is for the places no position exists (see its docstring).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from conode.chain import ActionKind, Record
from conode.hashes import ActionHash, AgentKey
from conode.validation import foundation
from conode.validation.entries import (
    BILL,
    BILL_DECLINE,
    EXCHANGE_OFFER,
    MAX_AMOUNT,
    MAX_MEMO,
    PAYMENT,
    ROTATION,
    Bill,
    BillDecline,
    ChainClose,
    ChainOpen,
    Genesis,
    Payment,
    Role,
    Rotation,
    app_credit,
)
from conode.validation.governance import Rules
from conode.validation.schema import opt_hash_field
from conode.validation.verdict import VALID, Invalid, Missing, Verdict

if TYPE_CHECKING:
    from conode.validation.engine import Engine, ValidationContext

ISSUES_CREDIT: Final = "issues_credit"
"""The key of an app's configuration (``app_config``) that lets its entries move credit."""

__all__ = [
    "BILL",
    "BILL_DECLINE",
    "PAYMENT",
    "ROTATION",
    "Party",
    "author_rules",
    "builtin_balance_after",
    "check_limits",
    "party_at",
    "party_by_held_genesis",
    "validate_bill",
    "validate_bill_decline",
    "validate_close",
    "validate_genesis",
    "validate_open",
    "validate_payment",
    "validate_rotation",
]

_NO_LIMIT: Final = MAX_AMOUNT


@dataclass(frozen=True, slots=True)
class Party:
    """A named agent as it stands at one moment: its role, its co-op, its name."""

    agent: AgentKey
    role: str
    coop: AgentKey | None
    name: str

    @property
    def is_coop(self) -> bool:
        return self.role == Role.COOP


def check_limits(balance_after: int, rules: Rules, party: Party) -> Verdict:
    """Whether a balance is within ``[-credit_limit, +balance_cap]`` for this party."""
    if party.role == Role.FOUNDATION:
        if balance_after < 0:
            return Invalid("credit-limit", "the Foundation may not go below zero")
        return VALID
    limits = rules.limits(party.is_coop)
    money = rules.money
    if balance_after < -limits.credit:
        return Invalid(
            "credit-limit",
            f"{party.name} would be at {money(balance_after)}, below {money(-limits.credit)}",
        )
    if balance_after > limits.cap:
        return Invalid(
            "balance-cap",
            f"{party.name} would be at {money(balance_after)}, above {money(limits.cap)}",
        )
    return VALID


def party_at(
    engine: Engine,
    agent: AgentKey,
    genesis: ActionHash,
    at: int,
    rules: Rules,
    ctx: ValidationContext,
) -> Party | Verdict:
    """Who ``agent`` is at ``at``, read from ``genesis`` (the seq-0 record its position pins).

    A registered co-op, a member of one, or the Foundation; never revoked. The
    genesis is a dependency fetched by hash (``Missing`` if not held), so the
    verdict depends only on hash-linked data, never on which of a forked
    agent's geneses this peer happens to hold. That ``genesis`` really starts
    the agent's chain is the activity fold's check on the agent's own record.
    """
    record = engine.dependency(genesis, ctx)
    if isinstance(record, Invalid):
        return Invalid("provenance", f"the genesis named for {agent.short()} is invalid ({record})")
    if not isinstance(record, Record):
        return record
    action = record.action
    if action.author != agent or action.kind is not ActionKind.GENESIS or action.seq != 0:
        return Invalid("genesis", f"{genesis.short()} is not the genesis of {agent.short()}")
    return _party(engine, record, at, rules)


def party_by_held_genesis(
    engine: Engine, agent: AgentKey, at: int, rules: Rules, ctx: ValidationContext
) -> Party | Verdict:
    """Who ``agent`` is at ``at``, read from whichever genesis of it this peer holds: advisory.

    Only for where nothing pins the agent's genesis by hash: a node's own
    checks before a session, bills (which carry no positions), an app's
    ``ctx.party``. If the agent forked its genesis, the answer can depend on
    which genesis arrived first (the fork itself is warranted). A payment's
    record verdict never uses this: it uses ``party_at`` with its positions' pins.
    """
    genesis_record = ctx.get_genesis(agent)
    if genesis_record is None:
        return Missing((agent,))
    verdict = engine.validate_record(genesis_record, ctx)
    if isinstance(verdict, Missing):
        return verdict
    if isinstance(verdict, Invalid):
        return Invalid("provenance", f"{agent.short()} has an invalid genesis ({verdict})")
    return _party(engine, genesis_record, at, rules)


def _party(engine: Engine, genesis_record: Record, at: int, rules: Rules) -> Party | Verdict:
    """Who the author of a valid genesis record is at ``at`` under ``rules``."""
    agent = genesis_record.action.author
    genesis = engine.parsed(genesis_record, Genesis.from_value)
    if agent in rules.revoked and rules.revoked[agent] <= at:
        return Invalid("revoked", f"{genesis.name} was revoked")
    if genesis.role == Role.COOP:
        if not rules.is_registered_coop(agent):
            return Invalid("provenance", f"{genesis.name} is not a registered co-op")
        return Party(agent, Role.COOP, agent, genesis.name)
    if genesis.role == Role.FOUNDATION:
        return Party(agent, Role.FOUNDATION, None, genesis.name)
    assert genesis.credential is not None  # validate_genesis guarantees it
    coop = genesis.credential.coop
    if not rules.is_registered_coop(coop):
        return Invalid("provenance", f"{genesis.name}'s co-op is not registered (or was revoked)")
    return Party(agent, Role.MEMBER, coop, genesis.name)


def author_rules(engine: Engine, record: Record, ctx: ValidationContext) -> Rules | Verdict:
    """The rules in force for ``record`` under the log head its entry names (``rules``)."""
    entry = record.entry_value()
    head = opt_hash_field(entry, "rules", ActionHash) if isinstance(entry, dict) else None
    return engine.rules_at(head, record.action.timestamp, ctx)


def validate_genesis(engine: Engine, record: Record, ctx: ValidationContext) -> Verdict:
    """Co-op provenance and nonymous attribution, checked at the start of every chain."""
    genesis = Genesis.from_value(record.entry_value())
    action = record.action
    if genesis.network != engine.network:
        return Invalid("network", "this chain belongs to another network")
    rules = engine.rules_at(genesis.rules, action.timestamp, ctx)
    if not isinstance(rules, Rules):
        return rules
    agent = action.author
    if genesis.role == Role.COOP:
        info = rules.coops.get(agent)
        if info is None or agent in rules.revoked:
            return Invalid("provenance", f"{genesis.name} is not a registered co-op")
        if genesis.credential is not None:
            return Invalid("provenance", "a co-op's genesis carries no membership credential")
        if (genesis.name, genesis.registration) != (info.legal_name, info.registration):
            return Invalid(
                "identity", "a co-op's name and registration must be those it was registered with"
            )
        return VALID
    if genesis.role == Role.FOUNDATION:
        if agent != rules.foundation:
            return Invalid(
                "provenance", "only the charter's Foundation key may open a Foundation chain"
            )
        return VALID
    credential = genesis.credential
    if credential is None:
        return Invalid("provenance", "a member's genesis carries its co-op's membership credential")
    if credential.member != agent:
        return Invalid("provenance", "the credential names another agent")
    if not credential.signature_ok():
        return Invalid("provenance", "the co-op's signature on the credential does not verify")
    if credential.issued_at > action.timestamp:
        return Invalid("provenance", "the credential is dated after the genesis")
    if not rules.is_registered_coop(credential.coop):
        return Invalid("provenance", "the credential's co-op is not registered at that time")
    if genesis.name != credential.name or genesis.registration is not None:
        return Invalid("identity", "a member's name must be the one its co-op vouched for")
    return VALID


def validate_payment(engine: Engine, record: Record, ctx: ValidationContext) -> Verdict:
    """A countersigned payment, as committed on one party's chain."""
    payment = engine.parsed(record, Payment.from_value)
    body = payment.body
    action = record.action
    if body.network != engine.network:
        return Invalid("network", "the payment belongs to another network")
    position = body.position_of(action.author)
    if position is None:
        return Invalid("attribution", "the author is not a party to the payment")
    if action.kind is not ActionKind.CREATE:
        return Invalid("position", "a payment is committed by a create action")
    if (action.seq, action.prev, action.timestamp) != (position.seq, position.prev, body.timestamp):
        return Invalid(
            "position", "committed away from the seq, prev and time fixed in the payment"
        )
    assert record.entry is not None  # parsed above
    # everything below is about the entry alone, the same for both parties' records of it
    return engine.entry_verdict(record.entry, lambda: _judge_payment_entry(engine, payment, ctx))


def _judge_payment_entry(engine: Engine, payment: Payment, ctx: ValidationContext) -> Verdict:
    """The verdict on a payment entry: amount, memo, both signatures, both parties and balances."""
    body = payment.body
    if body.payer.agent == body.payee.agent:
        return Invalid("attribution", "payer and payee are the same agent")
    if not 0 < body.amount <= MAX_AMOUNT:
        return Invalid("amount", f"the amount must be a positive integer, not {body.amount}")
    if len(body.memo) > MAX_MEMO:
        return Invalid("memo", f"the memo is longer than {MAX_MEMO} characters")
    if not payment.signatures_ok():
        return Invalid(
            "countersignature", "payer's and payee's signatures over the payment must both verify"
        )
    rules = engine.rules_at(body.rules, body.timestamp, ctx)
    if not isinstance(rules, Rules):
        return rules
    parties: list[Party] = []
    for position, sign in ((body.payer, -1), (body.payee, +1)):
        party = party_at(engine, position.agent, position.genesis, body.timestamp, rules, ctx)
        if not isinstance(party, Party):
            return party
        parties.append(party)
        before = _balance_before(engine, position.agent, position.prev_credit, position.seq, ctx)
        if not isinstance(before, int):
            return before
        expected = before + sign * body.amount
        if position.balance_after != expected:
            return Invalid(
                "balance",
                f"{party.name}'s balance after must be {expected}, not {position.balance_after}",
            )
        limits = check_limits(expected, rules, party)
        if not limits:
            return limits
    payer, payee = parties
    if payer.role == Role.FOUNDATION:
        spending = foundation.check_disbursement(engine, body, payee.is_coop, ctx)
        if not spending:
            return spending
    if body.ref is not None:
        bill = _check_bill_reference(engine, payment, ctx)
        if not bill:
            return bill
    if body.offer is not None:
        return _check_offer(engine, body.offer, body.payee.agent, ctx)
    return VALID


def _balance_before(
    engine: Engine,
    agent: AgentKey,
    prev_credit: ActionHash | None,
    seq: int,
    ctx: ValidationContext,
) -> int | Verdict:
    """The balance ``prev_credit`` left ``agent`` with (0 with none): O(1), never a re-sum."""
    if prev_credit is None:
        return 0
    previous = engine.dependency(prev_credit, ctx)
    if not isinstance(previous, Record):
        return previous
    if previous.action.author != agent or previous.action.seq >= seq:
        return Invalid(
            "prev-credit", "the previous credit action must be earlier on the same chain"
        )
    return engine.balance_after(previous, agent, ctx)


def builtin_balance_after(
    engine: Engine, record: Record, agent: AgentKey, ctx: ValidationContext
) -> int | Verdict | None:
    """The balance after a built-in credit record (payment, open-chain); None if not one."""
    if record.action.kind is ActionKind.OPEN_CHAIN:
        return ChainOpen.from_value(record.entry_value()).balance
    if record.action.entry_type == PAYMENT:
        position = engine.parsed(record, Payment.from_value).body.position_of(agent)
        if position is None:
            return Invalid("prev-credit", "the previous credit action is not this party's")
        return position.balance_after
    return None


def _check_bill_reference(engine: Engine, payment: Payment, ctx: ValidationContext) -> Verdict:
    body = payment.body
    assert body.ref is not None
    referenced = engine.dependency(body.ref, ctx)
    if not isinstance(referenced, Record):
        return referenced
    if referenced.action.entry_type != BILL:
        return VALID  # a reference to something else (an app record) is the app's business
    bill = Bill.from_value(referenced.entry_value())
    if referenced.action.author != body.payee.agent or bill.payer != body.payer.agent:
        return Invalid("bill", "the payment's parties are not the bill's")
    if bill.payer_genesis != body.payer.genesis:
        return Invalid("bill", "the bill names another chain of the payer")
    if bill.amount != body.amount:
        return Invalid(
            "bill", f"the bill asks for {engine.money(bill.amount)}, not {engine.money(body.amount)}"
        )
    if body.timestamp > bill.expires_at:
        return Invalid("bill", "the bill had expired")
    return VALID


def _check_offer(
    engine: Engine, offer: ActionHash, payee: AgentKey, ctx: ValidationContext
) -> Verdict:
    """The payment's ``offer`` names a held ``exchange/offer`` by the payee (the app judges the rest)."""
    record = engine.dependency(offer, ctx)
    if not isinstance(record, Record):
        return record
    if record.action.entry_type != EXCHANGE_OFFER:
        kind = record.action.entry_type or record.action.kind.name.lower()
        return Invalid("offer", f"{offer.short()} is a {kind}, not an {EXCHANGE_OFFER}")
    if record.action.author != payee:
        return Invalid("offer", "the offer is not the payee's")
    return VALID


def validate_bill(engine: Engine, record: Record, ctx: ValidationContext) -> Verdict:
    """A payment request by its payee."""
    bill = Bill.from_value(record.entry_value())
    at = record.action.timestamp
    if not 0 < bill.amount <= MAX_AMOUNT:
        return Invalid("amount", f"the amount must be a positive integer, not {bill.amount}")
    if len(bill.memo) > MAX_MEMO:
        return Invalid("memo", f"the memo is longer than {MAX_MEMO} characters")
    if bill.expires_at <= at:
        return Invalid("bill", "a bill must expire after it is made")
    if bill.payer == record.action.author:
        return Invalid("attribution", "a bill names another agent as payer")
    rules = engine.rules_at(bill.rules, at, ctx)
    if not isinstance(rules, Rules):
        return rules
    # the payer is pinned by its genesis; the author is read from the genesis held of it, which
    # on an honest peer is the one its own chain starts with (a second one is a warranted fork)
    payer = party_at(engine, bill.payer, bill.payer_genesis, at, rules, ctx)
    if not isinstance(payer, Party):
        return payer
    author = party_by_held_genesis(engine, record.action.author, at, rules, ctx)
    return author if not isinstance(author, Party) else VALID


def validate_bill_decline(engine: Engine, record: Record, ctx: ValidationContext) -> Verdict:
    """A payer's refusal of a bill addressed to it."""
    decline = BillDecline.from_value(record.entry_value())
    bill_record = engine.dependency(decline.bill, ctx)
    if not isinstance(bill_record, Record):
        return bill_record
    if bill_record.action.entry_type != BILL:
        return Invalid("bill", "a decline names a bill")
    if Bill.from_value(bill_record.entry_value()).payer != record.action.author:
        return Invalid("bill", "only the bill's payer may decline it")
    return VALID


def validate_close(record: Record) -> Verdict:
    """A close-chain names a successor (the balance it carries is checked by the activity rules)."""
    close = ChainClose.from_value(record.entry_value())
    if close.successor == record.action.author:
        return Invalid("rotation", "a chain cannot continue as itself")
    return VALID


def validate_rotation(engine: Engine, record: Record, ctx: ValidationContext) -> Verdict:
    """A co-op vouches that its member's lost key ``old`` continues as ``new``."""
    rotation = Rotation.from_value(record.entry_value())
    old_genesis = ctx.get_genesis(rotation.old)
    if old_genesis is None:
        return Missing((rotation.old,))
    genesis = Genesis.from_value(old_genesis.entry_value())
    if genesis.credential is None or genesis.credential.coop != record.action.author:
        return Invalid("rotation", "only the member's own co-op may rotate its key")
    old_head = engine.dependency(rotation.old_head, ctx)
    if not isinstance(old_head, Record):
        return old_head
    if old_head.action.author != rotation.old:
        return Invalid("rotation", "old_head is not on the old chain")
    balance = _balance_before(
        engine, rotation.old, rotation.last_credit, old_head.action.seq + 1, ctx
    )
    if not isinstance(balance, int):
        return balance
    if balance != rotation.balance:
        return Invalid("rotation", f"the old chain's balance is {balance}, not {rotation.balance}")
    return _no_credit_between(engine, rotation, old_head, ctx)


def _no_credit_between(
    engine: Engine, rotation: Rotation, old_head: Record, ctx: ValidationContext
) -> Verdict:
    """``last_credit`` is the old chain's last credit action up to ``old_head``: walk back and see.

    Without this a co-op could carry the balance of any earlier credit action
    (or none) to the new chain, creating or destroying credit.
    """
    record = old_head
    while record.hash != rotation.last_credit:
        if isinstance(engine.balance_after(record, rotation.old, ctx), int):
            return Invalid("rotation", f"{record.hash.short()} moves credit after last_credit")
        if record.action.prev is None:
            if rotation.last_credit is None:
                return VALID
            return Invalid("rotation", "last_credit is not on the old chain before old_head")
        previous = engine.dependency(record.action.prev, ctx)
        if not isinstance(previous, Record):
            return previous
        record = previous
    return VALID


def validate_open(engine: Engine, record: Record, ctx: ValidationContext) -> Verdict:
    """An open-chain continues a closed (or co-op-rotated) chain and carries its balance over."""
    opened = ChainOpen.from_value(record.entry_value())
    action = record.action
    assert action.ref is not None  # the chain rules require a ref on open-chain
    source = engine.dependency(action.ref, ctx)
    if not isinstance(source, Record):
        return source
    if source.action.kind is ActionKind.CLOSE_CHAIN:
        close = ChainClose.from_value(source.entry_value())
        if source.action.author != opened.predecessor or close.successor != action.author:
            return Invalid("rotation", "the close-chain does not hand over to this agent")
        carried = close.balance
    elif source.action.entry_type == ROTATION:
        rotation = Rotation.from_value(source.entry_value())
        if rotation.old != opened.predecessor or rotation.new != action.author:
            return Invalid("rotation", "the co-op's rotation does not hand over to this agent")
        carried = rotation.balance
    else:
        return Invalid("rotation", "an open-chain refers to a close-chain or a co-op's rotation")
    if opened.balance != carried:
        return Invalid("rotation", f"the carried balance is {carried}, not {opened.balance}")
    return VALID


def validate_app_credit(
    engine: Engine, record: Record, app_id: str, rules: Rules, ctx: ValidationContext
) -> Verdict:
    """An app entry's credit move: allowed to this app, chained, within the author's limits.

    Whether the amount is *justified* (a grant for an offer, say) is the
    app's own rule; this is the part every peer judges alike, whether or not
    it runs the app's code.
    """
    move = app_credit(record.action.entry_type, record.entry_value())
    if move is None:
        return VALID
    settings = rules.params.app_settings(app_id)
    if not (isinstance(settings, dict) and settings.get(ISSUES_CREDIT) is True):
        return Invalid("credit-app", f"the rules do not let {app_id} move credit")
    author = record.action.author
    before = _balance_before(engine, author, move.prev_credit, record.action.seq, ctx)
    if not isinstance(before, int):
        return before
    if move.balance_after != before + move.delta:
        return Invalid(
            "balance", f"the balance after must be {before + move.delta}, not {move.balance_after}"
        )
    party = party_by_held_genesis(engine, author, record.action.timestamp, rules, ctx)
    if not isinstance(party, Party):
        return party
    return check_limits(move.balance_after, rules, party)
