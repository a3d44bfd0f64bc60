"""Grants of credit for offers: the rules of ``exchange/grant`` and ``exchange/share``, and their arithmetic.

How it works (section 1 of the proposal: credit is created when goods and
services are offered, and re-estimated monthly from actual sales):

- An offer's **grant line** is a chain of ``exchange/grant`` records on its
  co-op's own chain, each naming the one before (``prev_grant``; the first,
  basis ``new``, names none). The ``once`` key is the previous grant (or, for
  the first, the offer), so the activity fold refuses two grants following
  one (``duplicate``) and the line stays a line. ``granted`` is the credit
  the line stands at: the previous ``granted`` plus this grant's gross.
- **new**: the offer's value (price x quantity at the revision it cites),
  at most the charter's ``grant_cap``. **enlarge**: an update that raised
  the value since the revision the line was last granted for adds the
  increase (the line never stands above the cap), so a recovery cannot be
  undone by citing the same offer again. **reestimate** (at most once per
  offer and month, from the month after the offer was posted): the line is
  set to the offer's *counted sales* of the previous month, at most the cap;
  the difference is granted, or recovered.
- **expire** (a charter switch: ``grant_expiry_months`` = N > 0 in the rules
  in force at the record's time; absent or 0, grants never expire): a line
  whose last *positive* grant (``new``, ``enlarge``, or a re-estimate up) is
  in a month at least N months before the expiry's (``period_of``, as
  re-estimates count months) is cut. It recovers the line's **unspent**
  credit, ``min(net, max(0, balance before))``: ``net`` is what the line's
  grants moved to the co-op (the sum of their credit moves: the Foundation's
  shares are not taken back from the co-op), and the balance before is read
  from the expiry's own credit move (``balance_after - delta``, which the
  engine checks against ``prev_credit``: O(1)). Credit is fungible; the rule
  reads a positive balance as holding grant credit first, so a co-op at or
  below zero has spent its grant and loses nothing, and an expiry never takes
  a co-op below zero (nor its credit limit). The estimate is 0 and the share
  0; ``granted`` falls by what was recovered (what stays was issued: the
  shares and what the co-op spent). An expiry must recover something
  (``grant``) and it **closes the line**: no grant follows an expiry
  (``basis``), so a line expires once. The validator walks the line back by
  ``prev_grant`` to sum it: O(grants in the line), at most a few a month.

  Why it closes the line rather than allowing an expiry once a month (the
  first sketch): a line left open is re-estimated back up from the next
  month's sales, so a steady seller's line would be cut and re-granted every
  N + 1 months, the Foundation taking a share of each re-grant for nothing;
  and later expiries would take, from later earnings, credit the co-op had
  spent before the first, contrary to "a co-op that spent its grant loses
  nothing". An expiry that would recover nothing is not written, so a co-op
  in debit keeps its line, and its re-estimates (recoveries included) go on.
- **Counted sales** are the ``credit/payment`` records of the co-op's own
  chain in that month whose body names the offer (``offer``) and whose payer
  is outside the co-op (by the genesis the payment pins), less the payers the
  co-op itself paid in that month, or a member of whose co-op it paid (a
  closed loop: two co-ops buying each other's offers count for neither). The
  validator walks the author's chain back from the grant's own ``prev``
  (``must_get`` only: hash-linked, so deterministic and fork-proof for the
  author's history) until it is before that month: O(records since the month
  began). The grant states what it counted (``sales``: count, total and the
  amount excluded) and every peer recounts it.
- **The Foundation's share**: of a positive gross, ``share =
  floor(gross x foundation_share_bp / 10000)`` (0 with no Foundation in the
  rules); the co-op's credit move is ``gross - share``. The Foundation
  collects the share with an ``exchange/share`` on its own chain (once per
  grant). A recovery carries no share.
- **Limits**: a recovery never takes the co-op below its credit limit; it
  recovers what the limit allows (exactly that much: the validator recomputes
  it from the balance the move starts from) and the rest stays on the line
  for the next re-estimate. A grant that would pass the balance cap is
  refused by the engine (``balance-cap``).

Every amount is recomputed by every peer from the grant's dependencies (the
offer and its revisions, the previous grant, the author's chain) and the
rules in force at the grant's time. What reaches a chain is booked against
the issuance account by the audit (``AuditReport.issuance``): a share not yet
collected has simply not been issued yet, so the network sums to zero at
every moment.

Rule names: ``role``, ``provenance``, ``revoked`` (who grants or collects);
``config``, ``grants-off`` (no ``grant_cap`` in force); ``expiry-off`` (an
expiry with no ``grant_expiry_months`` in force), ``expiry-early`` (an expiry
before the line is due); ``reference``, ``author`` (the offer); ``period``
(not the month of the record's time, or a re-estimate in the offer's first
month); ``basis`` (a ``new`` grant after another, any other with none before,
a second re-estimate in a month, any grant after an expiry); ``prev-grant``
(not a grant of this offer by this author, or later);
``revision`` (not on the offer's line, later than the grant, or not after the
revision last granted); ``closed``, ``expired`` (the cited revision);
``sales`` (not what the chain shows); ``grant`` (an amount that does not
follow, or nothing to grant or to expire); ``share`` (the Foundation's
collection).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from conode.apps.exchange.config import GRANT, OFFER, SHARE, UPDATE, config_in_force
from conode.apps.sdk import Context, Fetched, Hash, Int, Map, OneOf, Optional, Read, Role
from conode.chain import Record
from conode.hashes import ActionHash, AgentKey
from conode.validation.entries import MAX_AMOUNT, PAYMENT, Genesis, Payment
from conode.validation.schema import INT63
from conode.validation.verdict import VALID, Invalid, Verdict

__all__ = [
    "BASES",
    "GRANT_FIELDS",
    "SHARE_FIELDS",
    "Amounts",
    "Grant",
    "GrantLine",
    "Revision",
    "Sales",
    "NO_SALES",
    "count_sales",
    "expiry_terms",
    "grant_amounts",
    "grant_key",
    "grant_lines",
    "period_label",
    "period_of",
    "period_start",
    "share_key",
    "shares_collected",
    "tally_sales",
    "validate_grant",
    "validate_share",
]

BASES: Final = ("new", "enlarge", "reestimate", "expire")
_DAY_US: Final = 86_400_000_000
_BP: Final = 10_000

# -- months ----------------------------------------------------------------------------------------------
# A period is a calendar month (UTC), counted from 1970-01 = 0; computed from the timestamp alone
# (Hinnant's civil-date algorithms: no clock, no datetime, the same on every peer).


def period_of(timestamp_us: int) -> int:
    """The month of a timestamp (µs since 1970, UTC): months since 1970-01."""
    days = timestamp_us // _DAY_US
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1_460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    return (year - 1970) * 12 + month - 1


def period_start(period: int) -> int:
    """The first microsecond of a month (months since 1970-01)."""
    year, month = 1970 + period // 12, period % 12 + 1
    y = year - (1 if month <= 2 else 0)
    era = y // 400
    yoe = y - era * 400
    mp = month - 3 if month > 2 else month + 9
    doy = (153 * mp + 2) // 5
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return (era * 146_097 + doe - 719_468) * _DAY_US


def period_label(period: int) -> str:
    """``YYYY-MM`` for a month."""
    return f"{1970 + period // 12:04d}-{period % 12 + 1:02d}"


# -- the arithmetic (shared by the validator and the functions) ------------------------------------------


@dataclass(frozen=True, slots=True)
class Sales:
    """What a re-estimate counted: sales of the offer in the month, and what it left out (minor units)."""

    count: int
    total: int
    excluded: int

    def to_value(self) -> dict[str, int]:
        return {"count": self.count, "total": self.total, "excluded": self.excluded}


@dataclass(frozen=True, slots=True)
class Amounts:
    """One grant's figures: the estimate the line is set to, its gross, and the Foundation's share.

    ``delta`` (gross less share) is what moves the co-op's balance.
    """

    estimate: int
    gross: int
    share: int

    @property
    def delta(self) -> int:
        return self.gross - self.share


NO_SALES: Final = Sales(0, 0, 0)


def grant_amounts(
    basis: str,
    *,
    cap: int,
    value: int,
    prev_value: int,
    prev_granted: int,
    sales: int,
    share_bp: int,
    balance_before: int,
    credit_limit: int,
    net: int = 0,
) -> Amounts:
    """The figures of a grant of ``basis`` (see the module's docstring); pure integer arithmetic.

    ``net`` (an expiry's only) is what the line's grants moved to the co-op.
    """
    if basis == "expire":
        # the unspent part: a positive balance holds grant credit first; never below zero
        return Amounts(0, -max(0, min(net, balance_before)), 0)
    if basis == "new":
        estimate = min(value, cap)
    elif basis == "enlarge":
        increase = min(value, cap) - min(prev_value, cap)
        estimate = min(prev_granted + increase, cap)
    else:
        estimate = min(sales, cap)
    gross = estimate - prev_granted
    if gross < 0:
        # recover what the credit limit allows; the rest stays on the line
        gross = max(gross, min(0, -credit_limit - balance_before))
    share = gross * share_bp // _BP if gross > 0 else 0
    return Amounts(estimate, gross, share)


def expiry_terms(grants: Iterable[tuple[int, int, int]], months: int) -> tuple[int, int]:
    """``(due, net)`` of a line from its grants' ``(period, gross, delta)``, under
    ``grant_expiry_months`` = ``months``: the month from which it may expire (its last positive
    grant's plus ``months``), and the sum of its credit moves (what the line moved to the co-op).

    A line always has a positive grant (its ``new``), so ``due`` is defined.
    """
    last_positive, net = -1, 0
    for period, gross, delta in grants:
        if gross > 0:
            last_positive = max(last_positive, period)
        net += delta
    return last_positive + months, net


Getter = Callable[[ActionHash], Record | Verdict]
"""A record by hash, or why not (``ctx.must_get`` in a validator, the node's store in a function)."""


@dataclass(frozen=True, slots=True)
class _Terms:
    """What the sales count reads of a payment."""

    payer: AgentKey
    payee: AgentKey
    payer_genesis: ActionHash
    payee_genesis: ActionHash
    amount: int
    offer: ActionHash | None


_CACHE_SIZE: Final = 100_000
_terms_read: dict[ActionHash, _Terms] = {}
"""Payments already read, by record hash (records are immutable): a node that works a
re-estimate out and then judges it reads each payment of the month once, not twice."""


def _terms(record: Record) -> _Terms:
    known = _terms_read.get(record.hash)
    if known is None:
        body = Payment.from_value(record.entry_value()).body
        known = _Terms(
            body.payer.agent, body.payee.agent, body.payer.genesis, body.payee.genesis,
            body.amount, body.offer,
        )  # fmt: skip
        if len(_terms_read) >= _CACHE_SIZE:
            _terms_read.clear()
        _terms_read[record.hash] = known
    return known


def count_sales(
    get: Getter, start: ActionHash | None, author: AgentKey, offer: ActionHash, period: int
) -> Sales | Verdict:
    """The counted sales of ``offer`` in ``period``, walking ``author``'s chain back from ``start``."""
    tally = tally_sales(get, start, author, period)
    return tally.get(offer, NO_SALES) if isinstance(tally, dict) else tally


def tally_sales(
    get: Getter, start: ActionHash | None, author: AgentKey, period: int
) -> dict[ActionHash, Sales] | Verdict:
    """Every offer's counted sales in ``period``, walking ``author``'s chain back from ``start``.

    Counted: a payment on the chain, in the month, to the author, naming an
    offer, whose payer (by the genesis the payment pins) is outside the
    author's co-op and not in a closed loop with it (the author paid, in the
    same month, no one of the payer's co-op, nor the payer's co-op itself).
    One walk, from ``start`` back to the last record before the month.
    """
    begin, end = period_start(period), period_start(period + 1)
    groups: dict[ActionHash, AgentKey] = {}

    def group(genesis: ActionHash) -> AgentKey | Verdict:
        """The co-op an agent belongs to (a co-op or the Foundation: itself), by its genesis."""
        known = groups.get(genesis)
        if known is not None:
            return known
        record = get(genesis)
        if not isinstance(record, Record):
            return record
        read = Genesis.from_value(record.entry_value())
        coop = read.credential.coop if read.credential is not None else record.action.author
        groups[genesis] = coop
        return coop

    bought: list[tuple[ActionHash, AgentKey, int]] = []
    paid: set[AgentKey] = set()
    at = start
    while at is not None:
        record = get(at)
        if not isinstance(record, Record):
            return record
        action = record.action
        if action.author != author:
            return Invalid("sales", "the chain walked back is not the author's")
        if action.timestamp < begin:
            break
        if action.timestamp < end and action.entry_type == PAYMENT:
            terms = _terms(record)
            if terms.payee == author and terms.offer is not None:
                payer = group(terms.payer_genesis)
                if not isinstance(payer, AgentKey):
                    return payer
                bought.append((terms.offer, payer, terms.amount))
            elif terms.payer == author:
                payee = group(terms.payee_genesis)
                if not isinstance(payee, AgentKey):
                    return payee
                paid.add(payee)
        at = action.prev
    figures: dict[ActionHash, tuple[int, int, int]] = {}
    for offer, payer, amount in bought:
        count, total, excluded = figures.get(offer, (0, 0, 0))
        if payer == author or payer in paid:
            figures[offer] = (count, total, excluded + amount)
        else:
            figures[offer] = (count + 1, total + amount, excluded)
    return {offer: Sales(*f) for offer, f in figures.items()}


# -- the offer's revisions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Revision:
    """An offer as one revision of its line says: price, quantity, expiry, and the line up to it."""

    hash: ActionHash
    price: int
    quantity: int
    expires: int
    closed: str | None
    line: tuple[ActionHash, ...]
    """The revisions from the offer itself to this one, oldest first."""

    @property
    def value(self) -> int:
        """Price x quantity: the value of a month of the offer (at most ``MAX_AMOUNT``)."""
        return min(self.price * self.quantity, MAX_AMOUNT)


def _revision(ctx: Context, offer: Fetched, cited: ActionHash) -> Revision | Verdict:
    """The revision ``cited`` of ``offer``: walk its line of updates back to the offer."""
    fields: dict[str, Any] = {}
    closed: str | None = None
    line = [cited]
    at = cited
    while at != offer.hash:
        update = ctx.must_get_entry(at, (UPDATE,), rule="revision", what="revision")
        if not isinstance(update, Fetched):
            return update
        e = update.entry
        if e["item"] != offer.hash:
            return Invalid("revision", "the revision is an update of another item")
        if at == cited:
            closed = e["close"]
            if update.record.action.timestamp > ctx.timestamp:
                return Invalid("revision", "the revision is dated after the grant")
        for name in ("price", "quantity", "expires"):
            if name not in fields and e[name] is not None:
                fields[name] = e[name]
        at = e["prev"]
        line.append(at)
    o = offer.entry
    return Revision(
        cited,
        fields.get("price", o["price"]),
        fields.get("quantity", o["quantity"]),
        fields.get("expires", o["expires"]),
        closed,
        tuple(reversed(line)),
    )


# -- the rules ---------------------------------------------------------------------------------------------


def _mismatch(name: str, expected: Any, got: Any) -> Invalid:
    return Invalid("grant", f"{name} must be {expected}, not {got}")


def _earlier_reestimate(ctx: Context, prev: Fetched, period: int) -> Verdict:
    """``Invalid("basis")`` if the line was re-estimated in ``period`` already (walks this month's grants)."""
    grant: Fetched | None = prev
    while grant is not None and grant.entry["period"] == period:
        if grant.entry["basis"] == "reestimate":
            return Invalid("basis", "the offer was re-estimated this month already")
        before = grant.entry["prev_grant"]
        if before is None:
            break
        got = ctx.must_get_entry(before, (GRANT,), rule="prev-grant", what="prev_grant")
        if not isinstance(got, Fetched):
            return got
        grant = got
    return VALID


def validate_grant(ctx: Context) -> Verdict:
    """A co-op's grant for its own offer: every figure follows from its dependencies and the rules."""
    role = ctx.require_role(Role.COOP)
    if not role:
        return role
    config = config_in_force(ctx)
    if isinstance(config, Invalid):
        return config
    if config.grant_cap is None:
        return Invalid(
            "grants-off", "the rules in force set no grant_cap: the exchange grants nothing"
        )
    e = ctx.entry
    period = period_of(ctx.timestamp)
    if e["period"] != period:
        return Invalid(
            "period", f"period must be {period} ({period_label(period)}), the record's month"
        )
    offer = ctx.must_get_entry(e["offer"], (OFFER,), what="offer")
    if not isinstance(offer, Fetched):
        return offer
    if offer.author != ctx.author:
        return Invalid("author", "only an offer's author is granted credit for it")
    prev: Fetched | None = None
    if e["prev_grant"] is not None:
        got = ctx.must_get_entry(e["prev_grant"], (GRANT,), rule="prev-grant", what="prev_grant")
        if not isinstance(got, Fetched):
            return got
        prev = got
        if prev.author != ctx.author or prev.entry["offer"] != offer.hash:
            return Invalid("prev-grant", "prev_grant is a grant of another offer or author")
        if prev.record.action.timestamp > ctx.timestamp:
            return Invalid("prev-grant", "prev_grant is dated after this grant")
    basis = e["basis"]
    if basis == "new" and prev is not None:
        return Invalid("basis", "a new grant is an offer's first: this one follows another")
    if basis != "new" and prev is None:
        return Invalid("basis", f"an {basis} grant follows the offer's previous grant (prev_grant)")
    if prev is not None and prev.entry["basis"] == "expire":
        return Invalid("basis", "the line expired: no grant follows an expiry")
    net = 0
    if basis == "expire":
        assert prev is not None  # checked above
        walked = _unspent_if_due(ctx, config.grant_expiry_months, prev, period)
        if not isinstance(walked, int):
            return walked
        net = walked
    figures = _figures(ctx, offer, prev, period)
    if not isinstance(figures, tuple):
        return figures
    revision, value, sales = figures
    for name, expected in (("revision", revision), ("value", value)):
        if e[name] != expected:
            return Invalid(
                "revision" if name == "revision" else "grant", f"{name} must be {expected}"
            )
    got_sales = None if e["sales"] is None else dict(e["sales"])
    wanted_sales = None if sales is None else sales.to_value()
    if got_sales != wanted_sales:
        return Invalid("sales", f"the author's chain shows sales {wanted_sales}, not {got_sales}")
    move = e["credit"]
    share_bp = ctx.rules.params.foundation_share_bp if ctx.rules.foundation is not None else 0
    prev_granted = 0 if prev is None else prev.entry["granted"]
    amounts = grant_amounts(
        basis,
        cap=config.grant_cap,
        value=value,
        prev_value=0 if prev is None else prev.entry["value"],
        prev_granted=prev_granted,
        sales=0 if sales is None else sales.total,
        share_bp=share_bp,
        balance_before=move["balance_after"] - move["delta"],
        credit_limit=ctx.rules.limits(True).credit,
        net=net,
    )
    if basis in ("new", "enlarge") and amounts.gross <= 0:
        return Invalid(
            "grant",
            f"nothing to grant: the line stands at {prev_granted} of a possible {amounts.estimate}",
        )
    if basis == "expire" and amounts.gross == 0:
        return Invalid(
            "grant", f"nothing to expire: the co-op holds none of the line's {net} unspent"
        )
    checks = (
        ("estimate", amounts.estimate, e["estimate"]),
        ("granted", prev_granted + amounts.gross, e["granted"]),
        ("share", amounts.share, e["share"]),
        ("the credit move's delta", amounts.delta, move["delta"]),
    )
    for name, expected, got in checks:
        if expected != got:
            return _mismatch(name, expected, got)
    return VALID


def _unspent_if_due(ctx: Context, months: int, prev: Fetched, period: int) -> int | Verdict:
    """The line's net (what its grants moved to the co-op) if it may expire in ``period``.

    Walks the line back from ``prev`` by ``prev_grant`` (each grant was judged
    when it was held, so its figures are the line's).
    """
    if months == 0:
        return Invalid(
            "expiry-off", "the rules in force set no grant_expiry_months: grants never expire"
        )
    steps: list[tuple[int, int, int]] = []
    grant = prev
    while True:
        e = grant.entry
        delta = e["credit"]["delta"]
        steps.append((e["period"], delta + e["share"], delta))
        if e["prev_grant"] is None:
            break
        got = ctx.must_get_entry(e["prev_grant"], (GRANT,), rule="prev-grant", what="prev_grant")
        if not isinstance(got, Fetched):
            return got
        grant = got
    due, net = expiry_terms(steps, months)
    if period < due:
        return Invalid(
            "expiry-early",
            f"the line may expire from {period_label(due)} ({months} months after its last "
            f"positive grant), not in {period_label(period)}",
        )
    return net


def _figures(
    ctx: Context, offer: Fetched, prev: Fetched | None, period: int
) -> tuple[ActionHash, int, Sales | None] | Verdict:
    """The revision, value and sales a grant must state (checking what its basis requires)."""
    e = ctx.entry
    if e["basis"] == "expire":
        assert prev is not None  # checked by the caller
        return prev.entry["revision"], prev.entry["value"], None
    if e["basis"] == "reestimate":
        assert prev is not None  # checked by the caller
        if offer.record.action.timestamp >= _month_start(ctx.timestamp):
            return Invalid(
                "period", "the offer was posted this month: re-estimates start next month"
            )
        again = _earlier_reestimate(ctx, prev, period)
        if not again:
            return again
        sales = count_sales(
            ctx.must_get, ctx.record.action.prev, ctx.author, offer.hash, period - 1
        )
        if not isinstance(sales, Sales):
            return sales
        return prev.entry["revision"], prev.entry["value"], sales
    revision = _revision(ctx, offer, e["revision"])
    if not isinstance(revision, Revision):
        return revision
    if revision.closed is not None:
        return Invalid("closed", f"the offer was {revision.closed}: it is granted nothing")
    if revision.expires <= ctx.timestamp:
        return Invalid("expired", "the revision cited had expired: renew the offer first")
    if prev is not None and prev.entry["revision"] not in revision.line[:-1]:
        return Invalid("revision", "an enlarge cites a revision after the one last granted for")
    return revision.hash, revision.value, None


def _month_start(timestamp: int) -> int:
    return period_start(period_of(timestamp))


def validate_share(ctx: Context) -> Verdict:
    """The Foundation collects its share of one grant (once: the activity fold, ``duplicate``)."""
    if ctx.rules.foundation != ctx.author:
        return Invalid("role", "only the Foundation collects its share of grants")
    role = ctx.require_role(Role.FOUNDATION)
    if not role:
        return role
    grant = ctx.must_get_entry(ctx.entry["grant"], (GRANT,), what="grant")
    if not isinstance(grant, Fetched):
        return grant
    share = grant.entry["share"]
    if share <= 0:
        return Invalid("share", "that grant has no share for the Foundation")
    delta = ctx.entry["credit"]["delta"]
    if delta != share:
        return Invalid("share", f"the grant's share is {share}, not {delta}")
    return VALID


def grant_key(entry: Mapping[str, Any]) -> bytes:
    """A grant's ``once`` key: the grant it follows, or (for an offer's first) the offer."""
    prev: ActionHash | None = entry["prev_grant"]
    if prev is not None:
        return b"p" + prev.to_bytes()
    offer: ActionHash = entry["offer"]
    return b"o" + offer.to_bytes()


def share_key(entry: Mapping[str, Any]) -> bytes:
    """A share's ``once`` key: the grant (the Foundation collects each share once)."""
    grant: ActionHash = entry["grant"]
    return grant.to_bytes()


GRANT_FIELDS: Final = {
    "offer": Hash(ActionHash),
    "basis": OneOf(*BASES),
    "period": Int(0, 1 << 31),
    "revision": Hash(ActionHash),
    "value": Int(0, MAX_AMOUNT),
    "prev_grant": Optional(Hash(ActionHash)),
    "estimate": Int(0, MAX_AMOUNT),
    "granted": Int(0, MAX_AMOUNT),
    "share": Int(0, MAX_AMOUNT),
    "sales": Optional(
        Map({"count": Int(0, INT63), "total": Int(0, INT63), "excluded": Int(0, INT63)})
    ),
}
SHARE_FIELDS: Final = {"grant": Hash(ActionHash)}


# -- views (pure, for the functions) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Grant:
    """One held grant, as its entry says."""

    hash: ActionHash
    author: AgentKey
    timestamp: int
    seq: int
    offer: ActionHash
    basis: str
    period: int
    revision: ActionHash
    value: int
    prev_grant: ActionHash | None
    estimate: int
    granted: int
    share: int
    delta: int
    sales: Sales | None

    @property
    def gross(self) -> int:
        return self.delta + self.share

    @classmethod
    def of(cls, read: Read) -> Grant:
        e = read.entry
        sales = e["sales"]
        return cls(
            hash=read.hash,
            author=read.author,
            timestamp=read.timestamp,
            seq=read.record.action.seq,
            offer=e["offer"],
            basis=e["basis"],
            period=e["period"],
            revision=e["revision"],
            value=e["value"],
            prev_grant=e["prev_grant"],
            estimate=e["estimate"],
            granted=e["granted"],
            share=e["share"],
            delta=e["credit"]["delta"],
            sales=None
            if sales is None
            else Sales(sales["count"], sales["total"], sales["excluded"]),
        )

    def to_value(self) -> dict[str, Any]:
        return {
            "hash": str(self.hash),
            "basis": self.basis,
            "period": period_label(self.period),
            "time": self.timestamp,
            "estimate": self.estimate,
            "gross": self.gross,
            "share": self.share,
            "credit": self.delta,
            "granted": self.granted,
            "value": self.value,
            "sales": None if self.sales is None else self.sales.to_value(),
        }


@dataclass(frozen=True, slots=True)
class GrantLine:
    """An offer's grants in order (each following the one before); ``latest`` is where it stands."""

    offer: ActionHash
    author: AgentKey
    grants: tuple[Grant, ...]

    @property
    def latest(self) -> Grant:
        return self.grants[-1]

    def reestimated_in(self, period: int) -> bool:
        """True if a grant of the line re-estimated in ``period``."""
        return any(g.basis == "reestimate" and g.period == period for g in self.grants)

    @property
    def expired(self) -> bool:
        """True if the line ended with an expiry (no grant follows one)."""
        return self.latest.basis == "expire"

    def _terms(self, months: int) -> tuple[int, int]:
        return expiry_terms(((g.period, g.gross, g.delta) for g in self.grants), months)

    @property
    def net(self) -> int:
        """What the line's grants moved to the co-op (the sum of their credit moves)."""
        return self._terms(0)[1]

    def expires(self, months: int) -> int | None:
        """The month from which the line may expire under ``grant_expiry_months`` = ``months``
        (None: never, with the switch off, or the line expired already)."""
        if months == 0 or self.expired:
            return None
        return self._terms(months)[0]


def grant_lines(reads: Iterable[Read]) -> dict[ActionHash, GrantLine]:
    """Every offer's grant line among ``reads`` (``exchange/grant`` records; others are ignored).

    The line is followed from the offer's first grant by ``prev_grant`` links
    (the activity fold keeps it a line on the author's chain); a grant by
    anyone but the line's author is left out.
    """
    by_offer: dict[ActionHash, dict[ActionHash | None, Grant]] = {}
    for read in reads:
        if read.entry_type != GRANT:
            continue
        grant = Grant.of(read)
        by_offer.setdefault(grant.offer, {}).setdefault(grant.prev_grant, grant)
    lines = {}
    for offer, following in by_offer.items():
        first = following.get(None)
        if first is None:
            continue
        line = [first]
        while (after := following.get(line[-1].hash)) is not None and after.author == first.author:
            line.append(after)
        lines[offer] = GrantLine(offer, first.author, tuple(line))
    return lines


def shares_collected(reads: Iterable[Read]) -> dict[ActionHash, ActionHash]:
    """Grant -> the ``exchange/share`` record that collected its share, among ``reads``."""
    return {r.entry["grant"]: r.hash for r in reads if r.entry_type == SHARE}
