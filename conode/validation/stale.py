"""Stale rules: a record made under an old governance head, well after a newer one was ratified.

Why this exists: a record names the governance log head it was made under
(``rules``), and is judged under that head, so its verdict depends only on
hash-linked data. The price is that nothing in the record makes the head
*current*: a revoked member and a colluding counterparty can keep naming the
head from before the revocation. No record rule can refuse that, because
"a newer ratification exists" is a fact about the network, not about the
record's dependencies; a peer that had not heard of the ratification would
reach another verdict.

So it is a **fraud proof** instead: a ``stale-rules`` warrant carries the
record and a ratification that

- follows the head the record names in the governance log (the record's
  head is one of its ancestors, or the record names none),
- was made at least ``rules_grace_us`` (a parameter; one hour by default)
  before the record, long enough for every connected honest node to hold it,

and the record's **author** breaks the rules in force under that ratification
at the record's time: it is revoked (or its co-op is), or a balance it signed
for is outside its limits. Anyone checks it from the evidence alone, so the
verdict on the warrant is deterministic although the offence is about time.
Only the author's own standing counts: the honest payee of a revoked payer is
not warranted for the payer's revocation (the payer is).

Honest nodes make every record under their newest head and refuse to open a
session with a party that the newest rules bar, so they never give such
evidence against themselves while connected.
"""

from __future__ import annotations

from collections.abc import Iterator

from conode.chain import Record
from conode.hashes import ActionHash
from conode.validation import credit
from conode.validation.context import Judge, ValidationContext
from conode.validation.entries import PAYMENT, Payment
from conode.validation.governance import RATIFICATION, Ratification, Rules
from conode.validation.schema import opt_hash_field
from conode.validation.verdict import VALID, Invalid, Missing, Valid, Verdict

__all__ = ["cited_rules", "stale_evidence", "stale_rules_offence"]


def cited_rules(engine: Judge, record: Record) -> ActionHash | None:
    """The governance head a record names (``None``: the charter alone, or no entry)."""
    if record.entry is None:
        return None
    if record.action.entry_type == PAYMENT:
        return engine.parsed(record, Payment.from_value).body.rules
    entry = record.entry_value()
    return opt_hash_field(entry, "rules", ActionHash) if isinstance(entry, dict) else None


def _log_back(
    engine: Judge, head: Record, stop: ActionHash | None, ctx: ValidationContext
) -> Iterator[Record | Verdict]:
    """The ratifications from ``head`` back to (not including) ``stop``, newest first.

    Yields a ``Verdict`` (and stops) when a link is not held or not valid, and
    ``Invalid`` when the log reaches its start without meeting ``stop``.
    """
    current: Record | Verdict = head
    while isinstance(current, Record):
        yield current
        prev = Ratification.from_value(current.entry_value()).prev
        if prev == stop:
            return
        if prev is None:
            yield Invalid("warrant", "the ratification does not follow the rules the record names")
            return
        current = engine.dependency(prev, ctx)
    yield current


def stale_rules_offence(
    engine: Judge, record: Record, newer: Record, ctx: ValidationContext
) -> Verdict:
    """``Invalid`` (the author's offence) if ``newer`` proves ``record`` stale; else why not.

    ``VALID`` means no offence: made within the grace after ``newer``, or
    allowed by the newer rules too. A broken premise (``newer`` is not a valid
    ratification, or does not follow the record's head) is ``Invalid("warrant")``
    as well, so callers tell them apart by the rule.
    """
    if newer.action.entry_type != RATIFICATION:
        return Invalid("warrant", "the evidence names something that is not a ratification")
    verdict = engine.validate_record(newer, ctx)
    if not isinstance(verdict, Valid):
        return verdict if isinstance(verdict, Missing) else Invalid("warrant", f"{verdict}")
    cited = cited_rules(engine, record)
    if newer.hash == cited:
        return Invalid("warrant", "the record names this ratification: it is not stale")
    for step in _log_back(engine, newer, cited, ctx):
        if not isinstance(step, Record):
            return step
    at = record.action.timestamp
    rules = engine.rules_at(newer.hash, at, ctx)
    if not isinstance(rules, Rules):
        return rules
    if newer.action.timestamp + rules.params.rules_grace_us > at:
        return VALID  # within the grace: the author may not have heard of it yet
    return _author_standing(engine, record, rules, ctx)


def _author_standing(engine: Judge, record: Record, rules: Rules, ctx: ValidationContext) -> Verdict:
    """Whether the author may make ``record`` under ``rules``: not revoked, balances in limits."""
    author = record.action.author
    at = record.action.timestamp
    position = None
    if record.action.entry_type == PAYMENT:
        position = engine.parsed(record, Payment.from_value).body.position_of(author)
    # a payment pins its author's genesis; other records pin none (advisory: see credit)
    party = (
        credit.party_by_held_genesis(engine, author, at, rules, ctx)
        if position is None
        else credit.party_at(engine, author, position.genesis, at, rules, ctx)
    )
    if not isinstance(party, credit.Party):
        return party
    if position is not None:
        return credit.check_limits(position.balance_after, rules, party)
    return VALID


def stale_evidence(
    engine: Judge, record: Record, head: ActionHash | None, ctx: ValidationContext
) -> tuple[Record, Invalid] | None:
    """The newest ratification up to ``head`` that proves ``record`` stale, with the offence; else None.

    A node calls this with its own governance head for each record it takes
    in. Most records name that head, and cost nothing here.
    """
    if head is None:
        return None
    cited = cited_rules(engine, record)
    if head == cited:
        return None
    newest = engine.dependency(head, ctx)
    if not isinstance(newest, Record):
        return None
    for candidate in _log_back(engine, newest, cited, ctx):
        if not isinstance(candidate, Record):
            return None  # the record's head is not behind ours (or something is not held)
        offence = stale_rules_offence(engine, record, candidate, ctx)
        if isinstance(offence, Invalid) and offence.rule != "warrant":
            return candidate, offence
    return None
