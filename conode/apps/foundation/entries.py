"""The foundation app's entry types and their rules: comments on proposals, and reports back.

The Foundation's spending rule itself is built in (``conode.validation.foundation``:
a Foundation payment carries out a ratified disbursement to a co-op, once);
proposals, votes and ratifications are built-in ``gov/*`` records. What this
app adds is the discussion and the accountability around them:

- ``foundation/comment``: a co-op or a member comments on a proposal (members
  may comment; only co-ops vote).
- ``foundation/report``: the co-op a Foundation payment went to says what was
  done with it, and how much of it was used.

Stable rule names (the ``rule`` of an ``Invalid``): ``schema``,
``unknown-entry-type``, ``kind`` (from the SDK); ``role``, ``provenance``,
``revoked`` (who may post); ``reference`` (a comment names a proposal, a
report a payment, never a later record); ``foundation`` (the payment's payer
is not the Foundation); ``payee`` (the report's author is not the payment's
payee); ``used`` (more used than was paid).
"""

from __future__ import annotations

from typing import Final

from conode.apps.sdk import App, Context, EntryType, Fetched, Hash, Int, Optional, Role, Text
from conode.hashes import ActionHash
from conode.validation.entries import MAX_AMOUNT, PAYMENT, Payment
from conode.validation.governance import PROPOSAL
from conode.validation.verdict import VALID, Invalid, Verdict

__all__ = ["APP_ID", "COMMENT", "REPORT", "VERSION", "app"]

APP_ID: Final = "foundation"
VERSION: Final = "0.1.0"
COMMENT: Final = "foundation/comment"
REPORT: Final = "foundation/report"
MAX_TEXT: Final = 4_000


def _earlier(ctx: Context, got: Fetched, field: str) -> Verdict:
    """A record may cite only what was made no later than itself."""
    if got.record.action.timestamp > ctx.timestamp:
        return Invalid("reference", f"{field} is dated after this {ctx.entry_type}")
    return VALID


def validate_comment(ctx: Context) -> Verdict:
    """A co-op or a member comments on a proposal that exists."""
    role = ctx.require_role(Role.COOP, Role.MEMBER)
    if not role:
        return role
    got = ctx.must_get_entry(ctx.entry["proposal"], (PROPOSAL,), what="proposal")
    if not isinstance(got, Fetched):
        return got
    return _earlier(ctx, got, "proposal")


def validate_report(ctx: Context) -> Verdict:
    """The co-op a Foundation payment went to reports on it: no more used than was paid."""
    role = ctx.require_role(Role.COOP)
    if not role:
        return role
    got = ctx.must_get_entry(ctx.entry["payment"], (PAYMENT,), what="payment")
    if not isinstance(got, Fetched):
        return got
    earlier = _earlier(ctx, got, "payment")
    if not earlier:
        return earlier
    body = Payment.from_value(got.entry).body
    if ctx.rules.foundation is None or body.payer.agent != ctx.rules.foundation:
        return Invalid("foundation", "the payment reported on was not made by the Foundation")
    if body.payee.agent != ctx.author:
        return Invalid("payee", "only the co-op the Foundation paid reports on the payment")
    used = ctx.entry["used"]
    if used is not None and used > body.amount:
        money = ctx.rules.money
        return Invalid("used", f"{money(used)} used is more than the {money(body.amount)} paid")
    return VALID


app: Final = App(
    APP_ID,
    VERSION,
    entry_types=[
        EntryType(
            "comment",
            {"proposal": Hash(ActionHash), "text": Text(MAX_TEXT, min_len=1)},
            validate_comment,
            searchable=("text",),
            doc="A co-op's or a member's comment on a proposal.",
        ),
        EntryType(
            "report",
            {
                "payment": Hash(ActionHash),
                "text": Text(MAX_TEXT, min_len=1),
                "used": Optional(Int(0, MAX_AMOUNT)),
            },
            validate_report,
            searchable=("text",),
            doc="What a co-op did with a Foundation payment, and how much of it was used.",
        ),
    ],
    doc="The Foundation: comments on proposals, and funded co-ops' reports back.",
)
