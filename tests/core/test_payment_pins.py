"""What a payment pins by hash: each party's genesis (who it is) and the exchange offer it buys from.

Who a party is (role, co-op) is read from the genesis its position names, so
a verdict depends only on hash-linked data; the party's own activity fold
checks that the genesis named really starts its chain. ``offer`` must name a
held ``exchange/offer`` by the payee (the exchange app judges the rest).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pytest

from conode import encoding
from conode.chain import ActionKind, Record, author_record
from conode.crypto import Signer
from conode.hashes import ActionHash, AgentKey
from conode.testing.ledger import Ledger
from conode.validation.activity import Activity, step
from conode.validation.engine import Engine, ValidationContext
from conode.validation.entries import (
    EXCHANGE_OFFER,
    ChainClose,
    ChainOpen,
    Credential,
    Genesis,
    Payment,
    PaymentBody,
    Role,
)
from conode.validation.governance import Rules
from conode.validation.memory import HeldRecords
from conode.validation.payment import (
    PaymentOffer,
    commit_payment,
    complete_offer,
    completion_differs,
    offer_payment,
    sign_body,
)
from conode.validation.schema import SchemaError
from conode.validation.verdict import VALID, Invalid, Missing, Valid, Verdict

PAYER, PAYEE = "coop0-m0", "coop0-m1"


def rule(verdict: Verdict) -> str:
    assert isinstance(verdict, Invalid), f"expected a refusal, got {verdict!r}"
    return verdict.rule


def valid(verdict: Verdict) -> bool:
    return isinstance(verdict, Valid)


def signer(label: str) -> Signer:
    return Signer(hashlib.blake2b(label.encode(), digest_size=32).digest())


def resigned(ledger: Ledger, body: PaymentBody) -> Payment:
    """``body`` countersigned by both the parties it names."""
    signers = {a.key: a.signer for a in ledger.agents.values()}
    return Payment(body, sign_body(signers[body.payer.agent], body), sign_body(signers[body.payee.agent], body))


def second_genesis(ledger: Ledger, name: str, *, vouched_by: Signer) -> Record:
    """Another seq-0 record by ``name`` (a fork of its genesis), its credential signed by ``vouched_by``."""
    agent = ledger[name]
    credential = Credential.issue(vouched_by, agent.key, name, ledger.now())
    return author_record(
        agent.signer, None, kind=ActionKind.GENESIS, timestamp=ledger.now(),
        entry=Genesis(ledger.charter.network_id, Role.MEMBER, name, credential=credential).to_value(),
    )


# --- the genesis each position pins --------------------------------------------------------------------


def test_each_position_pins_the_genesis_its_partys_chain_starts_with() -> None:
    ledger = Ledger()
    assert ledger[PAYER].activity.genesis == ledger[PAYER].chain[0].hash
    body = ledger.payment(PAYER, PAYEE, 10).body
    assert body.payer.genesis == ledger[PAYER].chain[0].hash
    assert body.payee.genesis == ledger[PAYEE].chain[0].hash
    assert PaymentBody.from_bytes(body.to_bytes()) == body


def test_a_chain_continued_by_open_chain_pins_its_own_genesis_and_trades() -> None:
    ledger = Ledger()
    assert valid(ledger.pay(PAYER, PAYEE, 25))
    assert valid(ledger.add_member("coop0", "heir"))
    old, heir = ledger[PAYER], ledger["heir"]
    close = author_record(
        old.signer, old.activity.head, kind=ActionKind.CLOSE_CHAIN, timestamp=ledger.now(),
        entry=ChainClose(heir.key, old.activity.last_credit, old.balance).to_value(),
    )
    assert valid(ledger.commit(PAYER, close))
    opened = author_record(
        heir.signer, heir.activity.head, kind=ActionKind.OPEN_CHAIN, timestamp=ledger.now(),
        entry=ChainOpen(old.key, -25).to_value(), ref=close.hash,
    )
    assert valid(ledger.commit("heir", opened))
    assert ledger.payment("heir", PAYEE, 5).body.payer.genesis == heir.chain[0].hash
    assert valid(ledger.pay("heir", PAYEE, 5))
    assert ledger.balances()["heir"] == -30


def test_a_payment_pinning_a_valid_fork_of_a_genesis_is_refused_on_the_forkers_own_chain() -> None:
    """The fork is a genesis its co-op really vouched for, so only the fold can tell: it is not the chain's."""
    ledger = Ledger()
    fork = second_genesis(ledger, PAYEE, vouched_by=ledger["coop0"].signer)
    ledger.held.add([fork])
    assert valid(ledger.engine.validate_record(fork, ledger.held))
    body = ledger.payment(PAYER, PAYEE, 10).body
    payment = resigned(ledger, dataclasses.replace(body, payee=dataclasses.replace(body.payee, genesis=fork.hash)))
    payee_record = commit_payment(ledger[PAYEE].signer, payment)
    assert rule(ledger.judge(PAYEE, payee_record)) == "genesis"
    assert rule(ledger.commit_both(payment)) == "genesis"
    assert ledger.balances()[PAYER] == 0 == ledger.balances()[PAYEE]


def test_a_payment_pinning_a_fork_with_a_rogue_credential_is_refused_by_provenance_in_any_arrival_order() -> None:
    ledger = Ledger()
    genuine = ledger[PAYEE].chain[0]
    fork = second_genesis(ledger, PAYEE, vouched_by=signer("rogue"))
    body = ledger.payment(PAYER, PAYEE, 10).body
    to_fork = resigned(ledger, dataclasses.replace(body, payee=dataclasses.replace(body.payee, genesis=fork.hash)))
    honest = ledger.payment(PAYER, PAYEE, 10)
    rest = [r for chain in ledger.chains() for r in chain if r.hash != genuine.hash]
    for pair in ((genuine, fork), (fork, genuine)):
        held = HeldRecords([*rest, *pair])
        engine = Engine(ledger.charter)
        assert rule(engine.validate_record(commit_payment(ledger[PAYER].signer, to_fork), held)) == "provenance"
        assert valid(engine.validate_record(commit_payment(ledger[PAYER].signer, honest), held))


def test_an_activity_keeps_its_genesis_through_its_bytes_and_refuses_a_state_without_one() -> None:
    ledger = Ledger()
    assert valid(ledger.pay(PAYER, PAYEE, 10))
    state = ledger[PAYER].activity
    assert state.genesis is not None
    assert Activity.from_bytes(state.to_bytes(), state.head) == state
    assert Activity.from_bytes(Activity().to_bytes(), None) == Activity()
    before_pins = encoding.encode({k: v for k, v in encoding.decode(state.to_bytes()).items() if k != "genesis"})
    with pytest.raises(SchemaError, match="genesis"):  # such a state is migrated by the store (v3)
        Activity.from_bytes(before_pins, state.head)


# --- the exchange offer a payment buys from --------------------------------------------------------------


class OffersApp:
    """A stand-in for the exchange app: every ``exchange/offer`` entry is valid, nothing moves credit."""

    app_id = "exchange"

    def validate(
        self, record: Record, entry: Any, rules: Rules, engine: Engine, ctx: ValidationContext
    ) -> Verdict:
        return VALID if record.action.entry_type == EXCHANGE_OFFER else Invalid("unknown-type", "offers only")

    def balance_after(self, record: Record, entry: Any, agent: AgentKey) -> int | None:
        return None


def offers_ledger() -> Ledger:
    return Ledger(apps={"exchange": OffersApp()})


def test_a_payment_naming_the_payees_offer_is_committed_on_both_chains_and_keeps_the_offer() -> None:
    ledger = offers_ledger()
    offer, verdict = ledger.create(PAYEE, EXCHANGE_OFFER, {"what": "bread"})
    assert valid(verdict)
    assert valid(ledger.pay(PAYER, PAYEE, 10, offer=offer.hash))
    for name in (PAYER, PAYEE):
        committed = Payment.from_value(ledger[name].chain[-1].entry_value())
        assert committed.body.offer == offer.hash
        assert committed.body.ref is None
    assert ledger.balances()[PAYEE] == 10


def test_a_payment_naming_someone_elses_offer_is_refused_by_offer() -> None:
    ledger = offers_ledger()
    payers_own, verdict = ledger.create(PAYER, EXCHANGE_OFFER, {"what": "bread"})
    assert valid(verdict)
    thirds, verdict = ledger.create("coop1-m0", EXCHANGE_OFFER, {"what": "cake"})
    assert valid(verdict)
    for offer in (payers_own, thirds):
        refused = ledger.pay(PAYER, PAYEE, 10, offer=offer.hash)
        assert rule(refused) == "offer"
        assert "payee" in refused.reason  # type: ignore[union-attr]
    assert ledger.balances()[PAYER] == 0


def test_a_payment_naming_a_record_that_is_no_offer_is_refused_by_offer() -> None:
    ledger = offers_ledger()
    bill, verdict = ledger.bill(PAYEE, PAYER, 10)
    assert valid(verdict)
    assert rule(ledger.pay(PAYER, PAYEE, 10, offer=bill.hash)) == "offer"
    assert rule(ledger.pay(PAYER, PAYEE, 10, offer=ledger[PAYEE].chain[0].hash)) == "offer"
    assert valid(ledger.pay(PAYER, PAYEE, 10, ref=bill.hash))  # a bill is paid through ref


def test_a_payment_naming_an_offer_not_held_is_missing_until_it_is_fetched() -> None:
    ledger = offers_ledger()
    payee = ledger[PAYEE]
    offer = author_record(
        payee.signer, payee.activity.head, kind=ActionKind.CREATE, timestamp=ledger.now(),
        entry={"what": "bread"}, entry_type=EXCHANGE_OFFER,
    )
    payment = ledger.payment(PAYER, PAYEE, 10, offer=offer.hash)
    verdict = ledger.engine.validate_record(commit_payment(ledger[PAYER].signer, payment), ledger.held)
    assert isinstance(verdict, Missing)
    assert verdict.dependencies == (offer.hash,)
    ledger.held.add([offer])  # fetched (it is a dependency, not on the parties' chains here)
    assert valid(ledger.engine.validate_record(commit_payment(ledger[PAYER].signer, payment), ledger.held))


def test_the_offer_is_carried_from_the_payers_offer_to_the_completed_body() -> None:
    ledger = Ledger()
    wanted = ActionHash.of(b"an exchange offer")
    partial = offer_payment(
        ledger.charter.network_id, ledger[PAYER].activity, ledger[PAYEE].key, 10,
        timestamp=ledger.now(), offer=wanted,
    )
    assert PaymentOffer.from_bytes(partial.to_bytes()) == partial
    body = complete_offer(partial, ledger[PAYEE].activity)
    assert isinstance(body, PaymentBody)
    assert body.offer == wanted
    assert body.payee.genesis == ledger[PAYEE].chain[0].hash
    assert PaymentBody.from_bytes(body.to_bytes()) == body
    assert completion_differs(partial, body) is None
    assert completion_differs(partial, dataclasses.replace(body, offer=None)) is not None
    assert completion_differs(dataclasses.replace(partial, offer=None), body) is not None


def test_a_body_without_the_offer_or_genesis_fields_is_malformed() -> None:
    ledger = Ledger()
    value = ledger.payment(PAYER, PAYEE, 10).body.to_value()
    without_offer = {k: v for k, v in value.items() if k != "offer"}
    with pytest.raises(SchemaError, match="offer"):
        PaymentBody.from_bytes(encoding.encode(without_offer))
    without_genesis = {**value, "payer": {k: v for k, v in value["payer"].items() if k != "genesis"}}
    with pytest.raises(SchemaError, match="genesis"):
        PaymentBody.from_bytes(encoding.encode(without_genesis))


def test_an_honest_payment_is_valid_for_a_fresh_engine_reading_the_pins_from_a_trusted_store() -> None:
    ledger = Ledger()
    assert valid(ledger.pay(PAYER, PAYEE, 10))
    payment = ledger.payment(PAYER, PAYEE, 3)
    held = HeldRecords((r for chain in ledger.chains() for r in chain), trusted=True)
    for name in (PAYER, PAYEE):
        _, fold = step(ledger[name].activity, commit_payment(ledger[name].signer, payment))
        assert valid(fold)
        assert valid(Engine(ledger.charter).validate_record(commit_payment(ledger[name].signer, payment), held))


def test_a_bill_to_an_agent_that_forked_its_genesis_is_judged_alike_in_any_arrival_order() -> None:
    """The bill pins its payer's genesis: a rogue second genesis held first cannot frame the payee."""
    ledger = Ledger()
    genuine = ledger[PAYER].chain[0]
    fork = second_genesis(ledger, PAYER, vouched_by=signer("rogue"))
    bill, verdict = ledger.bill(PAYEE, PAYER, 20)
    assert valid(verdict)
    rest = [r for chain in ledger.chains() for r in chain if r.hash != genuine.hash]
    for pair in ((genuine, fork), (fork, genuine)):
        assert valid(Engine(ledger.charter).validate_record(bill, HeldRecords([*rest, *pair])))


def test_a_payment_of_a_bill_must_name_the_payer_chain_the_bill_names() -> None:
    ledger = Ledger()
    fork = second_genesis(ledger, PAYER, vouched_by=ledger["coop0"].signer)
    ledger.held.add([fork])
    bill, verdict = ledger.bill(PAYEE, PAYER, 20)
    assert valid(verdict)
    body = ledger.payment(PAYER, PAYEE, 20, ref=bill.hash).body
    other_chain = dataclasses.replace(body, payer=dataclasses.replace(body.payer, genesis=fork.hash))
    payee_record = commit_payment(ledger[PAYEE].signer, resigned(ledger, other_chain))
    assert rule(ledger.engine.validate_record(payee_record, ledger.held)) == "bill"
    assert valid(ledger.pay(PAYER, PAYEE, 20, ref=bill.hash))


def test_a_payee_whose_clock_runs_ahead_dates_the_body_within_the_tolerance() -> None:
    """The payee's last action is later than the payer's offer (its clock runs ahead): the
    payee dates the body at its last action, within the tolerance, and the payer accepts it."""
    ledger = Ledger()
    minute = 60_000_000
    ledger.clock += 4 * minute
    assert valid(ledger.pay(PAYEE, "coop1-m0", 1))  # the payee's chain moves on, 4 min "ahead"
    partial = offer_payment(
        ledger.charter.network_id, ledger[PAYER].activity, ledger[PAYEE].key, 10,
        timestamp=ledger.now() - 4 * minute,  # the payer's clock, four minutes behind
    )  # fmt: skip
    assert isinstance(complete_offer(partial, ledger[PAYEE].activity), str)  # no tolerance
    body = complete_offer(partial, ledger[PAYEE].activity, tolerance=5 * minute)
    assert isinstance(body, PaymentBody)
    assert body.timestamp == ledger[PAYEE].activity.head.timestamp > partial.timestamp
    assert completion_differs(partial, body, tolerance=5 * minute) is None
    assert completion_differs(partial, body) is not None
    too_far = dataclasses.replace(body, timestamp=partial.timestamp + 6 * minute)
    assert completion_differs(partial, too_far, tolerance=5 * minute) is not None
    too_early = dataclasses.replace(body, timestamp=partial.timestamp - 1)
    assert completion_differs(partial, too_early, tolerance=5 * minute) is not None
    assert isinstance(
        complete_offer(partial, ledger[PAYEE].activity, tolerance=3 * minute), str
    )
