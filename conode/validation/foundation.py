"""The Foundation's spending rule: it pays only what the co-ops ratified, only to co-ops, once.

The Foundation (the co-ops' common fund) is an agent with its own chain and
keys, held by a steward node; but its keys cannot spend at will. Every
payment whose payer is the Foundation must:

- go to a registered co-op (not a member, not another Foundation);
- name, as its ``ref``, a **disbursement proposal**: an ``opaque`` proposal
  whose body is ``{"app": "foundation", "data": {"kind": "disburse",
  "coop": <agent>, "amount": <minor units>, "purpose": <text>}}``;
- be ratified: the proposal is decided in the governance log the payment
  names (``rules``);
- pay that co-op no more than the amount approved.

And it may not repeat: a payer pays a reference at most once (the activity
fold's ``bills_paid`` set, the same rule that stops a bill being paid twice).
The Foundation may never go below zero (``credit.check_limits``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from conode.chain import Record
from conode.hashes import AgentKey
from conode.validation.entries import PaymentBody
from conode.validation.governance import PROPOSAL, Proposal, ProposalKind
from conode.validation.schema import SchemaError, hash_field, int_field, map_value, str_field
from conode.validation.verdict import VALID, Invalid, Verdict

if TYPE_CHECKING:  # the engine imports ``credit``, which calls this module
    from conode.validation.engine import Engine, ValidationContext

__all__ = ["DISBURSE", "FOUNDATION_APP", "Disbursement", "check_disbursement", "disbursement_data"]

FOUNDATION_APP: Final = "foundation"
DISBURSE: Final = "disburse"
MAX_PURPOSE: Final = 2_000


@dataclass(frozen=True, slots=True)
class Disbursement:
    """What a ratified disbursement proposal allows: this co-op, up to this amount, for this purpose."""

    coop: AgentKey
    amount: int
    purpose: str

    @classmethod
    def from_proposal(cls, proposal: Proposal) -> Disbursement | None:
        """The disbursement an ``opaque`` proposal carries, or None if it carries none."""
        if proposal.kind != ProposalKind.OPAQUE or proposal.body.get("app") != FOUNDATION_APP:
            return None
        data = proposal.body.get("data")
        if not isinstance(data, dict) or data.get("kind") != DISBURSE:
            return None
        m = map_value(data, "disbursement", {"kind", "coop", "amount", "purpose"})
        return cls(
            hash_field(m, "coop", AgentKey),
            int_field(m, "amount", 1),
            str_field(m, "purpose", MAX_PURPOSE, 1),
        )


def disbursement_data(coop: AgentKey, amount: int, purpose: str) -> dict[str, Any]:
    """The ``opaque`` proposal body asking the Foundation to pay ``coop`` ``amount``."""
    return {
        "app": FOUNDATION_APP,
        "data": {"kind": DISBURSE, "coop": coop.to_bytes(), "amount": amount, "purpose": purpose},
    }


def check_disbursement(
    engine: Engine, body: PaymentBody, payee_is_coop: bool, ctx: ValidationContext
) -> Verdict:
    """The verdict on a payment whose payer is the Foundation (the parties already judged)."""
    if not payee_is_coop:
        return Invalid("foundation", "the Foundation pays only co-ops")
    if body.ref is None:
        return Invalid("foundation", "a Foundation payment names the disbursement it carries out")
    proposal_record = engine.dependency(body.ref, ctx)
    if not isinstance(proposal_record, Record):
        return proposal_record
    if proposal_record.action.entry_type != PROPOSAL:
        return Invalid("foundation", "a Foundation payment names a disbursement proposal")
    try:
        disbursement = Disbursement.from_proposal(Proposal.from_value(proposal_record.entry_value()))
    except SchemaError as exc:
        return Invalid("foundation", f"the disbursement is malformed: {exc}")
    if disbursement is None:
        return Invalid("foundation", "the proposal named is not a Foundation disbursement")
    if disbursement.coop != body.payee.agent:
        return Invalid("foundation", "the disbursement was approved for another co-op")
    if body.amount > disbursement.amount:
        return Invalid(
            "foundation",
            f"{engine.money(body.amount)} is more than the {engine.money(disbursement.amount)} "
            "approved",
        )
    decided = engine.proposal_decided(body.rules, body.ref, ctx)
    if decided is not True:
        return (
            decided
            if not isinstance(decided, bool)
            else Invalid("foundation", "the disbursement is not ratified under the rules named")
        )
    return VALID
