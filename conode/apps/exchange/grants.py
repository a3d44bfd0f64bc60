"""Grants of credit for offers: the rules of ``exchange/grant`` and ``exchange/share``, and their arithmetic.

How it works (section 1 and Appendix 1 of the proposal: credit is created when
goods and services are offered, "further tokens are only awarded when the
overall value of a co-op's offers is increased", and the grant is
re-estimated monthly from actual sales, down as well as up):

- **One grant line per co-op.** A co-op's grants are ``exchange/grant``
  records on its own chain, each naming the one before (``prev_grant``; the
  first names none). The ``once`` key is the previous grant (``line`` for the
  first), so the activity fold refuses two grants following one
  (``duplicate``): the line stays a line and a co-op has one. ``granted`` is
  what the line stands at (the previous ``granted`` plus this grant's gross),
  ``estimate`` what it was set to, ``high`` the **high-water mark**: the
  highest offered value the line was ever granted for.
- **What the co-op has on offer.** The line counts the co-op's open offers
  (the current revision of each); every grant states what changed since the
  grant before (``added``, ``dropped``: revisions, each list ascending), so
  the counted set is the line's changes applied in turn, and their value
  (``offered``: price x quantity of each counted revision, summed, offers of
  the same category, title and unit counted once, the largest). Every peer
  checks the changes from hash-linked data only: it walks the co-op's chain
  back from this grant to the previous one (``must_get``: O(records since the
  previous grant), each record walked by one grant only), applies the offers
  and updates found there to the previous set, and requires every counted
  revision to be the current revision of an open offer of the co-op at the
  grant's time, so a withdrawn, lapsed or renewed one must be dropped
  (``offers``); leaving an offer out only lowers ``offered``. Each grant
  carries only its changes (O(changes)); the set after a grant is remembered
  by its hash, and rebuilt from the line's grants where it is not.
- **new** (the line's first grant) and **enlarge** (any later one): posting,
  renewing or enlarging raised ``offered`` above ``high``: the line grows by
  the increase, ``min(offered, cap) - min(high,
  cap)``, and stands at most at the cap (``grant_cap``, per co-op); ``high``
  becomes ``offered``. So withdrawing and re-posting an offer, posting the
  same offer twice, or letting one lapse and renewing it, earns nothing new:
  the total never rises above what was granted for. Nothing to grant is
  refused (``grant``).
- **reestimate**: the line's **first grant in each month** after the one it
  began in (``basis``). The line is set to last month's counted sales
  (``sales``) at most the cap, except that for offers posted last month (whose
  first month was not whole) it keeps the larger of their sales (``sales.new``)
  and the credit granted last month by ``new`` and ``enlarge`` grants
  (``advance``): ``estimate = min(total - new + max(new, advance), cap)``. The difference is granted, or
  recovered: a recovery stops at the credit limit, a grant at the balance cap
  (what is left waits for the next month), so a re-estimate can always be
  written.
- **It is enforced.** A grant that leaves the line above zero carries ``due``
  = the first moment of the next month (the SDK's ``duty``): from then the
  co-op may not pay until its next grant, which in a new month can only be
  the re-estimate, is on its chain (the activity fold's rule ``overdue``, run
  by every peer). A line at zero owes nothing (there is nothing to recover).
- **pause**: with grants off in the rules in force (no ``grant_cap``, or the
  exchange may not issue credit), the month's first grant is a pause: it
  moves nothing and carries no due, so a co-op is never kept from paying by a
  rule that cannot be followed. The line stands where it was.
- **expire** (a charter switch: ``grant_expiry_months`` = N > 0 in the rules
  in force; absent or 0, grants never expire): once the line's last
  *positive* grant since its last expiry is N months old (``period_of``
  months), it may be cut once (``expiry-early``, ``expiry-off``). It recovers
  the line's **unspent** credit, ``min(net, max(0, balance before))``:
  ``net`` is what the line's grants since its last expiry moved to the co-op
  (the Foundation's shares are not taken back from the co-op); the balance
  before is read from the expiry's own credit move. A positive balance holds
  grant credit first, so a co-op at or below zero has spent its grant and
  loses nothing, and an expiry never takes a co-op below zero. The estimate
  is 0 and ``granted`` falls by what was recovered; the line goes on, so the
  next month's re-estimate sets it from sales again.
- **Counted sales** are the ``credit/payment`` records of the co-op's own
  chain in that month whose body names one of its offers (``offer``) and
  whose payer is outside the co-op (by the genesis the payment pins), less
  the payers the co-op itself paid in that month, or a member of whose co-op
  it paid (a closed loop: two co-ops buying each other's offers count for
  neither). The same walk back from the grant reads them (back to the start
  of the month counted); the grant states them and every peer recounts them.
- **The Foundation's share**: of a positive gross, ``share = floor(gross x
  foundation_share_bp / 10000)`` (0 with no Foundation in the rules); the
  co-op's credit move is ``gross - share``. The Foundation collects it with an
  ``exchange/share`` on its own chain (once per grant). A recovery carries no share.

Every figure is recomputed by every peer from the grant's dependencies and the
rules in force at its time; what reaches a chain is booked against the
issuance account by the audit (``AuditReport.issuance``).

Rule names: ``role``, ``provenance``, ``revoked`` (who grants or collects);
``config``, ``grants-off`` (grants off: only a pause); ``period`` (not the
record's month); ``basis`` (a line begins with ``new``, and only it; the first
grant of a month is the re-estimate or a pause, and only it); ``prev-grant`` (not this
co-op's latest grant, or later); ``offers`` (a listed revision that is not an
open offer of the co-op as it stands, or the list out of order, or its value);
``sales`` (not what the chain shows); ``grant`` (a figure that does not
follow, or nothing to grant or to expire); ``due``; ``expiry-off``,
``expiry-early``; ``share`` (the Foundation's collection).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from conode.apps.exchange.config import (
    GRANT,
    OFFER,
    SHARE,
    UPDATE,
    WANT,
    ExchangeConfig,
    config_in_force,
)
from conode.apps.sdk import Context, Fetched, Hash, Int, ListOf, Map, OneOf, Optional, Read, Role
from conode.chain import Record
from conode.hashes import ActionHash, AgentKey
from conode.validation.calendar import period_label, period_of, period_start
from conode.validation.charter import Limits
from conode.validation.entries import MAX_AMOUNT, PAYMENT, Genesis, Payment
from conode.validation.schema import INT63
from conode.validation.verdict import VALID, Invalid, Missing, Verdict

__all__ = [
    "BASES",
    "GRANT_FIELDS",
    "MAX_LINE_OFFERS",
    "SHARE_FIELDS",
    "Amounts",
    "Grant",
    "GrantLine",
    "LineState",
    "NO_SALES",
    "Revision",
    "Sales",
    "Scan",
    "advance_of",
    "count_sales",
    "counted_after",
    "due_of",
    "expiry_terms",
    "grant_amounts",
    "grant_key",
    "grant_lines",
    "line_sales",
    "lines_of",
    "offered_value",
    "open_offers",
    "period_label",
    "period_of",
    "period_start",
    "read_revision",
    "scan_chain",
    "share_key",
    "shares_collected",
    "tally_sales",
    "validate_grant",
    "validate_share",
]

BASES: Final = ("new", "enlarge", "reestimate", "expire", "pause")
_OFFERS: Final = ("new", "enlarge")
"""The bases that grant for what is offered (the high-water mark), not for sales."""
MAX_LINE_OFFERS: Final = 500
"""The most offers a line counts (a co-op with more counts its largest; the rest count from their
next renewal once it has fewer)."""
_BP: Final = 10_000
_FIRST: Final = b"line"
"""The ``once`` key of a co-op's first grant: a co-op has one line."""

Getter = Callable[[ActionHash], Record | Verdict]
"""A record by hash, or why not (``ctx.must_get`` in a validator, the node's store in a function)."""


# -- the arithmetic (shared by the validator and the functions) ------------------------------------------


@dataclass(frozen=True, slots=True)
class Sales:
    """What a re-estimate counted in the month (minor units): counted sales, what it left out
    (the co-op's own and closed loops), and how much of ``total`` was of offers posted that month."""

    count: int
    total: int
    excluded: int
    new: int = 0

    def to_value(self) -> dict[str, int]:
        return {
            "count": self.count,
            "total": self.total,
            "excluded": self.excluded,
            "new": self.new,
        }


NO_SALES: Final = Sales(0, 0, 0)


@dataclass(frozen=True, slots=True)
class LineState:
    """Where a co-op's line stands after a grant: ``granted``, ``estimate`` and the high-water mark."""

    granted: int = 0
    estimate: int = 0
    high: int = 0


@dataclass(frozen=True, slots=True)
class Amounts:
    """One grant's figures: the estimate the line is set to, its gross, the Foundation's share, and
    the high-water mark after it. ``delta`` (gross less share) is what moves the co-op's balance."""

    estimate: int
    gross: int
    share: int
    high: int

    @property
    def delta(self) -> int:
        return self.gross - self.share


def grant_amounts(
    basis: str,
    line: LineState,
    *,
    cap: int,
    share_bp: int,
    balance_before: int,
    limits: Limits,
    offered: int = 0,
    sales: int = 0,
    new_sales: int = 0,
    advance: int = 0,
    net: int = 0,
) -> Amounts:
    """The figures of a grant of ``basis`` after ``line`` (see the module's docstring); pure integers.

    ``offered``: the co-op's offered value now (``new``, ``enlarge``); ``sales``, ``new_sales``,
    ``advance``: a re-estimate's counted sales, the part of them of offers posted that month,
    and what last month's offers grants granted; ``net``: what the line moved to the co-op
    since its last expiry (``expire``); ``limits``: the co-op's balance limits.
    """
    if basis == "pause":
        return Amounts(line.estimate, 0, 0, line.high)
    if basis == "expire":
        # the unspent part: a positive balance holds grant credit first; never below zero
        return Amounts(0, -max(0, min(net, balance_before)), 0, line.high)
    high = line.high
    if basis in _OFFERS:
        increase = min(offered, cap) - min(line.high, cap)
        estimate = min(line.granted + max(increase, 0), cap)
        high = max(line.high, offered)
    else:
        estimate = min(sales - new_sales + max(new_sales, advance), cap)
    gross = estimate - line.granted
    if basis == "reestimate":
        # owed every month, so never refused for a limit: what the limits allow, the rest waits
        if gross < 0:
            gross = max(gross, min(0, -limits.credit - balance_before))
        else:
            gross = min(gross, max(0, limits.cap - balance_before))
    share = gross * share_bp // _BP if gross > 0 else 0
    return Amounts(estimate, gross, share, high)


def due_of(basis: str, period: int, granted: int) -> int | None:
    """The ``due`` of a grant in ``period`` leaving the line at ``granted``: the first moment of the
    next month while the line stands above zero (there is something to recover), else none."""
    if basis == "pause" or granted <= 0:
        return None
    return period_start(period + 1)


def advance_of(grants: Iterable[tuple[int, str, int]], period: int) -> int:
    """What the line's ``new`` and ``enlarge`` grants of ``period`` granted, from grants'
    ``(period, basis, gross)``."""
    return sum(gross for p, basis, gross in grants if p == period and basis in _OFFERS)


def expiry_terms(
    grants: Iterable[tuple[int, str, int, int]], months: int
) -> tuple[int | None, int]:
    """``(due, net)`` of a line from its grants' ``(period, basis, gross, delta)``, oldest first,
    under ``grant_expiry_months`` = ``months``: the month from which it may expire (its last
    positive grant since its last expiry, plus ``months``; None if none was positive since) and
    what its grants since its last expiry moved to the co-op."""
    last_positive: int | None = None
    net = 0
    for period, basis, gross, delta in grants:
        if basis == "expire":
            last_positive, net = None, 0
            continue
        if gross > 0:
            last_positive = period if last_positive is None else max(last_positive, period)
        net += delta
    return (None if last_positive is None else last_positive + months), net


def _fold(text: str) -> str:
    return " ".join(text.casefold().split())


# -- offers and their revisions ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Revision:
    """An offer as one revision of its line says: price, quantity, expiry, closed; and what it is."""

    hash: ActionHash
    offer: ActionHash
    author: AgentKey
    posted: int
    """The offer's own timestamp (when it was first posted)."""
    price: int
    quantity: int
    expires: int
    closed: str | None
    key: tuple[str, str, str]
    """Category, title and unit, case and spaces folded: offers with the same key are the same offer."""

    @property
    def value(self) -> int:
        """Price x quantity: the value of a month of the offer (at most ``MAX_AMOUNT``)."""
        return min(self.price * self.quantity, MAX_AMOUNT)

    def is_open(self, at: int) -> bool:
        return self.closed is None and at < self.expires


_CACHE_SIZE: Final = 100_000
_COUNTED_CACHE: Final = 4_096
_revisions_read: dict[ActionHash, Revision] = {}
"""Revisions already read, by hash (records are immutable): a line lists the same offers grant
after grant, and each is read once."""


def read_revision(get: Getter, revision: ActionHash) -> Revision | Verdict | None:
    """The offer ``revision`` (an ``exchange/offer`` or an update of one) stands at; None if it is
    an update of a want; a verdict if it is neither, or a record along its line is not held.

    Walks the line of updates back to the offer: O(revisions), once per revision.
    """
    known = _revisions_read.get(revision)
    if known is not None:
        return known
    fields: dict[str, Any] = {}
    closed: str | None = None
    item: ActionHash | None = None
    at = revision
    while True:
        record = get(at)
        if not isinstance(record, Record):
            return record
        kind = record.action.entry_type
        value = record.entry_value()
        if kind == UPDATE:
            named = ActionHash.from_bytes(value["item"])
            if item is None:
                item, closed = named, value.get("close")
            elif named != item:
                return Invalid("offers", f"{revision.short()}'s line names another item")
            for name in ("price", "quantity", "expires"):
                if name not in fields and value.get(name) is not None:
                    fields[name] = value[name]
            at = ActionHash.from_bytes(value["prev"])
            continue
        if kind == WANT:
            return None
        if kind != OFFER or (item is not None and record.hash != item):
            return Invalid("offers", f"{revision.short()} is not a revision of an offer")
        read = Revision(
            revision, record.hash, record.action.author, record.action.timestamp,
            fields.get("price", value["price"]), fields.get("quantity", value["quantity"]),
            fields.get("expires", value["expires"]), closed,
            (value["category"], _fold(value["title"]), _fold(value["unit"])),
        )  # fmt: skip
        if len(_revisions_read) >= _CACHE_SIZE:
            _revisions_read.clear()
        _revisions_read[revision] = read
        return read


def offered_value(revisions: Iterable[Revision]) -> int:
    """What a co-op has on offer: the value of each offer, the same offer (``key``) counted once
    (its largest), summed (at most ``MAX_AMOUNT``)."""
    largest: dict[tuple[str, str, str], int] = {}
    for rev in revisions:
        largest[rev.key] = max(largest.get(rev.key, 0), rev.value)
    return min(sum(largest.values()), MAX_AMOUNT)


def open_offers(
    get: Getter,
    listed: Sequence[ActionHash],
    latest: Mapping[ActionHash, ActionHash],
    author: AgentKey,
    at: int,
) -> dict[ActionHash, Revision] | Verdict:
    """The co-op's open offers at ``at`` (offer -> its current revision): those ``listed`` by its
    previous grant, then ``latest`` (item -> its latest revision since that grant, from
    ``scan_chain``), less what is withdrawn or expired. Every missing record is named at once."""
    current: dict[ActionHash, Revision] = {}
    missing: list[Any] = []
    for revision in (*listed, *latest.values()):
        read = read_revision(get, revision)
        if isinstance(read, Missing):
            missing.extend(d for d in read.dependencies if d not in missing)
        elif isinstance(read, Revision):
            if read.author != author:
                return Invalid("offers", f"{revision.short()} is another co-op's offer")
            current[read.offer] = read
        elif read is not None:
            return read
    if missing:
        return Missing(tuple(missing))
    return {offer: rev for offer, rev in current.items() if rev.is_open(at)}


# -- the co-op's chain since its last grant --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Terms:
    """What the sales count reads of a payment."""

    payer: AgentKey
    payee: AgentKey
    payer_genesis: ActionHash
    payee_genesis: ActionHash
    amount: int
    offer: ActionHash | None


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


@dataclass(frozen=True, slots=True)
class Scan:
    """One walk back along a co-op's chain: the offers and updates since its last grant (item ->
    latest revision), and, if asked, every offer's counted sales in one month."""

    latest: Mapping[ActionHash, ActionHash]
    tally: Mapping[ActionHash, Sales] | None


def scan_chain(
    get: Getter,
    start: ActionHash | None,
    author: AgentKey,
    *,
    stop: ActionHash | None,
    period: int | None = None,
) -> Scan | Verdict:
    """Walk ``author``'s chain back from ``start``: to ``stop`` (its latest grant; None: to its
    genesis) for the offers and updates since, and on to the start of ``period`` if given, for
    the sales of that month (``tally_sales``). No grant of the line lies between (each grant's
    ``once`` key is the one before it: the activity fold keeps the line a line)."""
    return _walk(get, start, author, offers_since=stop, offers=True, period=period)


def _walk(
    get: Getter,
    start: ActionHash | None,
    author: AgentKey,
    *,
    offers_since: ActionHash | None,
    offers: bool,
    period: int | None,
) -> Scan | Verdict:
    """One walk back along ``author``'s chain (``scan_chain``; without ``offers``, the sales only)."""
    begin = None if period is None else period_start(period)
    end = None if period is None else period_start(period + 1)
    latest: dict[ActionHash, ActionHash] = {}
    counting = _Counting(get, author)
    reached = not offers  # past the offers' part of the walk
    at = start
    while at is not None:
        if offers and at == offers_since:
            reached = True
            if begin is None:
                break
        record = get(at)
        if not isinstance(record, Record):
            return record
        action = record.action
        if action.author != author:
            return Invalid(
                "offers" if offers else "sales", "the chain walked back is not the author's"
            )
        if reached and begin is not None and action.timestamp < begin:
            break
        kind = action.entry_type
        if not reached:
            if kind == OFFER:
                latest.setdefault(record.hash, record.hash)
            elif kind == UPDATE:
                latest.setdefault(ActionHash.from_bytes(record.entry_value()["item"]), record.hash)
        if kind == PAYMENT and begin is not None and end is not None:
            counted = counting.add(record) if begin <= action.timestamp < end else None
            if counted is not None:
                return counted
        at = action.prev
    if offers and offers_since is not None and not reached:
        return Invalid("prev-grant", "prev_grant is not on the author's chain before this grant")
    return Scan(latest, None if period is None else counting.tally())


class _Counting:
    """The sales count of one month, fed the month's payments newest first (see ``tally_sales``)."""

    def __init__(self, get: Getter, author: AgentKey) -> None:
        self.get = get
        self.author = author
        self.groups: dict[ActionHash, AgentKey] = {}
        self.bought: list[tuple[ActionHash, AgentKey, int]] = []
        self.paid: set[AgentKey] = set()

    def group(self, genesis: ActionHash) -> AgentKey | Verdict:
        """The co-op an agent belongs to (a co-op or the Foundation: itself), by its genesis."""
        known = self.groups.get(genesis)
        if known is not None:
            return known
        record = self.get(genesis)
        if not isinstance(record, Record):
            return record
        read = Genesis.from_value(record.entry_value())
        coop = read.credential.coop if read.credential is not None else record.action.author
        self.groups[genesis] = coop
        return coop

    def add(self, record: Record) -> Verdict | None:
        terms = _terms(record)
        if terms.payee == self.author and terms.offer is not None:
            payer = self.group(terms.payer_genesis)
            if not isinstance(payer, AgentKey):
                return payer
            self.bought.append((terms.offer, payer, terms.amount))
        elif terms.payer == self.author:
            payee = self.group(terms.payee_genesis)
            if not isinstance(payee, AgentKey):
                return payee
            self.paid.add(payee)
        return None

    def tally(self) -> dict[ActionHash, Sales]:
        figures: dict[ActionHash, tuple[int, int, int]] = {}
        for offer, payer, amount in self.bought:
            count, total, excluded = figures.get(offer, (0, 0, 0))
            if payer == self.author or payer in self.paid:
                figures[offer] = (count, total, excluded + amount)
            else:
                figures[offer] = (count + 1, total + amount, excluded)
        return {offer: Sales(*f) for offer, f in figures.items()}


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
    scan = _walk(get, start, author, offers_since=None, offers=False, period=period)
    if not isinstance(scan, Scan):
        return scan
    assert scan.tally is not None  # a period was asked
    return dict(scan.tally)


def count_sales(
    get: Getter, start: ActionHash | None, author: AgentKey, offer: ActionHash, period: int
) -> Sales | Verdict:
    """The counted sales of ``offer`` in ``period``, walking ``author``'s chain back from ``start``."""
    tally = tally_sales(get, start, author, period)
    return tally.get(offer, NO_SALES) if isinstance(tally, dict) else tally


def line_sales(get: Getter, tally: Mapping[ActionHash, Sales], period: int) -> Sales | Verdict:
    """A co-op's counted sales of ``period`` over all its offers, with ``new``: the part of the
    total that is of offers posted in ``period`` itself (their first month was not whole)."""
    count = total = excluded = new = 0
    begin = period_start(period)
    for offer, sales in tally.items():
        count, total, excluded = count + sales.count, total + sales.total, excluded + sales.excluded
        if sales.total:
            read = read_revision(get, offer)
            if not isinstance(read, Revision):
                return (
                    Invalid("sales", f"{offer.short()} is not an offer") if read is None else read
                )
            if read.posted >= begin:
                new += sales.total
    return Sales(count, total, excluded, new)


# -- the rules ---------------------------------------------------------------------------------------------


def _mismatch(name: str, expected: Any, got: Any, rule: str = "grant") -> Invalid:
    return Invalid(rule, f"{name} must be {expected}, not {got}")


def _order(basis: str, prev: Fetched | None, period: int) -> Verdict:
    """Where a grant of ``basis`` may stand on the line: ``Invalid("basis")`` if not there."""
    if prev is None:
        if basis != "new":
            return Invalid("basis", f"a co-op's grant line begins with a new grant, not {basis}")
        return VALID
    if basis == "new":
        return Invalid("basis", "the co-op's line began already: a new grant is its first")
    first = prev.entry["period"] < period
    label = period_label(period)
    if basis in ("reestimate", "pause") and not first:
        return Invalid(
            "basis", f"the line has a grant in {label} already: the re-estimate comes first"
        )
    if basis in ("enlarge", "expire") and first:
        return Invalid(
            "basis", f"the line's first grant in {label} is its re-estimate (a pause, grants off)"
        )
    return VALID


def _line_back(
    ctx: Context, prev: Fetched, keep: Callable[[int, str], bool]
) -> list[tuple[int, str, int, int]] | Verdict:
    """``(period, basis, gross, delta)`` of the line's grants from ``prev`` back (newest first),
    while ``keep(period, basis)`` of the last one read says go on. Each is a valid dependency,
    so its fields are read as they are, without the schema again."""
    e = prev.entry
    steps = [(e["period"], e["basis"], e["credit"]["delta"] + e["share"], e["credit"]["delta"])]
    named: ActionHash | None = e["prev_grant"]
    while named is not None and keep(steps[-1][0], steps[-1][1]):
        record = ctx.must_get(named)
        if not isinstance(record, Record):
            return record
        if record.action.entry_type != GRANT:
            return Invalid("prev-grant", f"{named.short()} is not a grant")
        v = record.entry_value()
        delta = v["credit"]["delta"]
        steps.append((v["period"], v["basis"], delta + v["share"], delta))
        raw = v.get("prev_grant")
        named = None if raw is None else ActionHash.from_bytes(raw)
    return steps


def validate_grant(ctx: Context) -> Verdict:
    """A co-op's grant on its own line: every figure follows from its dependencies and the rules."""
    role = ctx.require_role(Role.COOP)
    if not role:
        return role
    config = config_in_force(ctx)
    if isinstance(config, Invalid):
        return config
    e = ctx.entry
    basis = e["basis"]
    period = period_of(ctx.timestamp)
    if e["period"] != period:
        return Invalid(
            "period", f"period must be {period} ({period_label(period)}), the record's month"
        )
    switched = _switches(basis, config)
    if not switched:
        return switched
    prev = _prev_grant(ctx)
    if prev is not None and not isinstance(prev, Fetched):
        return prev
    order = _order(basis, prev, period)
    if not order:
        return order
    line = LineState() if prev is None else _state(prev.entry)
    scan = scan_chain(
        ctx.must_get, ctx.record.action.prev, ctx.author,
        stop=None if prev is None else prev.hash,
        period=period - 1 if basis == "reestimate" else None,
    )  # fmt: skip
    if not isinstance(scan, Scan):
        return scan
    offered = _check_offers(ctx, prev, scan)
    if not isinstance(offered, int):
        return offered
    figures = _basis_figures(ctx, prev, scan, config.grant_expiry_months, period)
    if not isinstance(figures, tuple):
        return figures
    sales, advance, net = figures
    limits = ctx.rules.limits(True)
    move = e["credit"]
    amounts = grant_amounts(
        basis, line, cap=config.grant_cap or 0,
        share_bp=ctx.rules.params.foundation_share_bp if ctx.rules.foundation is not None else 0,
        balance_before=move["balance_after"] - move["delta"], limits=limits, offered=offered,
        sales=sales.total, new_sales=sales.new, advance=advance, net=net,
    )  # fmt: skip
    if basis in _OFFERS and amounts.gross <= 0:
        return Invalid(
            "grant",
            f"nothing to grant: the co-op's offers are worth {offered} a month, and its line was "
            f"granted for {line.high} already (it stands at {line.granted}, at most the cap)",
        )
    if basis == "expire" and amounts.gross == 0:
        return Invalid("grant", f"nothing to expire: the co-op holds none of the line's {net}")
    granted = line.granted + amounts.gross
    checks = (
        ("estimate", amounts.estimate, e["estimate"]),
        ("granted", granted, e["granted"]),
        ("high", amounts.high, e["high"]),
        ("share", amounts.share, e["share"]),
        ("the credit move's delta", amounts.delta, move["delta"]),
    )
    for name, expected, got in checks:
        if expected != got:
            return _mismatch(name, expected, got)
    due = due_of(basis, period, granted)
    if e["due"] != due:
        return _mismatch("due", due, e["due"], "due")
    return VALID


def _switches(basis: str, config: ExchangeConfig) -> Verdict:
    """Whether the rules in force let a grant of ``basis`` be made at all."""
    on = config.grant_cap is not None and config.issues_credit
    if basis == "pause" and on:
        return Invalid("basis", "grants are on: the line is re-estimated, not paused")
    if basis != "pause" and not on:
        return Invalid(
            "grants-off",
            "the rules in force set no grant_cap, or do not let the exchange issue credit: "
            "the line is paused, not granted",
        )
    if basis == "expire" and config.grant_expiry_months == 0:
        return Invalid(
            "expiry-off", "the rules in force set no grant_expiry_months: grants never expire"
        )
    return VALID


def _prev_grant(ctx: Context) -> Fetched | Verdict | None:
    """The grant this one follows (None for a co-op's first): the co-op's own, and not later."""
    named = ctx.entry["prev_grant"]
    if named is None:
        return None
    prev = ctx.must_get_entry(named, (GRANT,), rule="prev-grant", what="prev_grant")
    if not isinstance(prev, Fetched):
        return prev
    if prev.author != ctx.author:
        return Invalid("prev-grant", "prev_grant is another co-op's grant")
    if prev.record.action.timestamp > ctx.timestamp:
        return Invalid("prev-grant", "prev_grant is dated after this grant")
    return prev


def _state(entry: Mapping[str, Any]) -> LineState:
    return LineState(entry["granted"], entry["estimate"], entry["high"])


def _check_offers(ctx: Context, prev: Fetched | None, scan: Scan) -> int | Verdict:
    """The grant's ``added`` and ``dropped`` leave the line counting open offers of the co-op as
    it stands; their value, ``offered``."""
    added: tuple[ActionHash, ...] = ctx.entry["added"]
    dropped: tuple[ActionHash, ...] = ctx.entry["dropped"]
    for name, listed in (("added", added), ("dropped", dropped)):
        raws = [h.raw for h in listed]
        if raws != sorted(set(raws)):
            return Invalid("offers", f"{name} lists each revision once, in ascending order")
    before = _counted_before(ctx, prev)
    if not isinstance(before, frozenset):
        return before
    if not before.issuperset(dropped) or not before.isdisjoint(added):
        return Invalid("offers", "dropped names a revision not counted, or added one counted")
    counted = (before - set(dropped)) | set(added)
    if len(counted) > MAX_LINE_OFFERS:
        return Invalid("offers", f"a line counts at most {MAX_LINE_OFFERS} offers")
    current = open_offers(ctx.must_get, tuple(before), scan.latest, ctx.author, ctx.timestamp)
    if not isinstance(current, dict):
        return current
    by_revision = {rev.hash: rev for rev in current.values()}
    for h in sorted(counted, key=lambda h: h.raw):
        if h not in by_revision:
            return Invalid(
                "offers",
                f"{h.short()} is counted but is not an open offer of the co-op as it stands "
                "(withdrawn, expired, renewed since, or not its offer): drop it",
            )
    offered = offered_value(by_revision[h] for h in counted)
    if ctx.entry["offered"] != offered:
        return _mismatch("offered", offered, ctx.entry["offered"], "offers")
    return offered


_counted_sets: dict[ActionHash, frozenset[ActionHash]] = {}
"""The revisions a line counts after each grant, by the grant's hash: the line's ``added`` and
``dropped`` applied in turn, a pure function of hash-linked entries (so kept whatever the grant's
verdict)."""


def counted_after(before: frozenset[ActionHash], entry: Mapping[str, Any]) -> frozenset[ActionHash]:
    """The revisions a line counts after a grant's ``entry``, given those it counted before."""
    return (before - set(entry["dropped"])) | set(entry["added"])


def _counted_before(ctx: Context, prev: Fetched | None) -> frozenset[ActionHash] | Verdict:
    """What the line counted after ``prev`` (nothing before a first grant): remembered, or
    rebuilt from the line's grants back to one remembered or its first (O(grants))."""
    if prev is None:
        return frozenset()
    pending: list[Fetched] = []
    grant = prev
    while (known := _counted_sets.get(grant.hash)) is None:
        pending.append(grant)
        named = grant.entry["prev_grant"]
        if named is None:
            known = frozenset()
            break
        got = ctx.must_get_entry(named, (GRANT,), rule="prev-grant", what="prev_grant")
        if not isinstance(got, Fetched):
            return got
        grant = got
    for grant in reversed(pending):
        known = counted_after(known, grant.entry)
        if len(_counted_sets) >= _COUNTED_CACHE:
            _counted_sets.clear()
        _counted_sets[grant.hash] = known
    return known


def _basis_figures(
    ctx: Context, prev: Fetched | None, scan: Scan, months: int, period: int
) -> tuple[Sales, int, int] | Verdict:
    """A re-estimate's sales and advance, an expiry's net (checking what the basis requires)."""
    e = ctx.entry
    basis = e["basis"]
    if basis != "reestimate" and (e["sales"] is not None or e["advance"] is not None):
        return Invalid("sales", "only a re-estimate states sales and an advance")
    if basis == "reestimate":
        assert prev is not None and scan.tally is not None  # checked by _order, asked of scan
        sales = line_sales(ctx.must_get, scan.tally, period - 1)
        if not isinstance(sales, Sales):
            return sales
        got = None if e["sales"] is None else dict(e["sales"])
        if got != sales.to_value():
            return Invalid("sales", f"the co-op's chain shows sales {sales.to_value()}, not {got}")
        back = _line_back(ctx, prev, lambda p, _: p >= period - 1)
        if not isinstance(back, list):
            return back
        advance = advance_of(((p, b, gross) for p, b, gross, _ in back), period - 1)
        if e["advance"] != advance:
            return _mismatch("advance", advance, e["advance"], "sales")
        return sales, advance, 0
    if basis == "expire":
        assert prev is not None and months > 0  # checked by _order and validate_grant
        back = _line_back(ctx, prev, lambda _, b: b != "expire")
        if not isinstance(back, list):
            return back
        due, net = expiry_terms(reversed(back), months)
        if due is None:
            return Invalid("expiry-early", "nothing was granted since the line last expired")
        if period < due:
            return Invalid(
                "expiry-early",
                f"the line may expire from {period_label(due)} ({months} months after its last "
                f"positive grant), not in {period_label(period)}",
            )
        return NO_SALES, 0, net
    return NO_SALES, 0, 0


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
    """A grant's ``once`` key: the grant it follows, or (a co-op's first) ``line``."""
    prev: ActionHash | None = entry["prev_grant"]
    return _FIRST if prev is None else b"p" + prev.to_bytes()


def share_key(entry: Mapping[str, Any]) -> bytes:
    """A share's ``once`` key: the grant (the Foundation collects each share once)."""
    grant: ActionHash = entry["grant"]
    return grant.to_bytes()


_SALES: Final = Map(
    {
        "count": Int(0, INT63),
        "total": Int(0, INT63),
        "excluded": Int(0, INT63),
        "new": Int(0, INT63),
    }
)
GRANT_FIELDS: Final = {
    "basis": OneOf(*BASES),
    "period": Int(0, 1 << 31),
    "prev_grant": Optional(Hash(ActionHash)),
    "added": ListOf(Hash(ActionHash), MAX_LINE_OFFERS),
    "dropped": ListOf(Hash(ActionHash), MAX_LINE_OFFERS),
    "offered": Int(0, MAX_AMOUNT),
    "high": Int(0, MAX_AMOUNT),
    "sales": Optional(_SALES),
    "advance": Optional(Int(0, MAX_AMOUNT)),
    "estimate": Int(0, MAX_AMOUNT),
    "granted": Int(0, MAX_AMOUNT),
    "share": Int(0, MAX_AMOUNT),
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
    basis: str
    period: int
    prev_grant: ActionHash | None
    added: tuple[ActionHash, ...]
    dropped: tuple[ActionHash, ...]
    offered: int
    high: int
    estimate: int
    granted: int
    share: int
    delta: int
    sales: Sales | None
    advance: int | None
    due: int | None

    @property
    def gross(self) -> int:
        return self.delta + self.share

    @property
    def state(self) -> LineState:
        return LineState(self.granted, self.estimate, self.high)

    @classmethod
    def of(cls, read: Read) -> Grant:
        e = read.entry
        sales = e["sales"]
        return cls(
            hash=read.hash,
            author=read.author,
            timestamp=read.timestamp,
            seq=read.record.action.seq,
            basis=e["basis"],
            period=e["period"],
            prev_grant=e["prev_grant"],
            added=tuple(e["added"]),
            dropped=tuple(e["dropped"]),
            offered=e["offered"],
            high=e["high"],
            estimate=e["estimate"],
            granted=e["granted"],
            share=e["share"],
            delta=e["credit"]["delta"],
            sales=None if sales is None else Sales(**sales),
            advance=e["advance"],
            due=e["due"],
        )

    def to_value(self) -> dict[str, Any]:
        return {
            "hash": str(self.hash),
            "basis": self.basis,
            "period": period_label(self.period),
            "time": self.timestamp,
            "added": len(self.added),
            "dropped": len(self.dropped),
            "offered": self.offered,
            "high": self.high,
            "estimate": self.estimate,
            "gross": self.gross,
            "share": self.share,
            "credit": self.delta,
            "granted": self.granted,
            "sales": None if self.sales is None else self.sales.to_value(),
            "advance": self.advance,
            "due": self.due,
        }


@dataclass(frozen=True, slots=True)
class GrantLine:
    """A co-op's grants in order (each following the one before); ``latest`` is where it stands."""

    author: AgentKey
    grants: tuple[Grant, ...]

    @property
    def latest(self) -> Grant:
        return self.grants[-1]

    def steps(self) -> list[tuple[int, str, int, int]]:
        """``(period, basis, gross, delta)`` of each grant, oldest first."""
        return [(g.period, g.basis, g.gross, g.delta) for g in self.grants]

    def counted(self) -> frozenset[ActionHash]:
        """The revisions the line counts after its latest grant (its changes applied in turn)."""
        known: frozenset[ActionHash] = frozenset()
        for grant in self.grants:
            known = (known - set(grant.dropped)) | set(grant.added)
        return known

    @property
    def net(self) -> int:
        """What the line's grants since its last expiry moved to the co-op."""
        return expiry_terms(self.steps(), 0)[1]

    def expires(self, months: int) -> int | None:
        """The month from which the line may expire under ``grant_expiry_months`` = ``months``
        (None: never, with the switch off, or nothing granted since it last expired)."""
        if months == 0:
            return None
        return expiry_terms(self.steps(), months)[0]

    @property
    def last_expiry(self) -> int | None:
        """The month the line last expired, if it did."""
        return next((g.period for g in reversed(self.grants) if g.basis == "expire"), None)


def grant_lines(reads: Iterable[Read]) -> dict[AgentKey, GrantLine]:
    """Every co-op's grant line among ``reads`` (``exchange/grant`` records; others are ignored).

    The line is followed from the co-op's first grant by ``prev_grant`` links
    (the activity fold keeps it a line on the co-op's chain).
    """
    return lines_of(Grant.of(read) for read in reads if read.entry_type == GRANT)


def lines_of(grants: Iterable[Grant]) -> dict[AgentKey, GrantLine]:
    """Every co-op's grant line among ``grants`` (``grant_lines``, from grants already read)."""
    by_author: dict[AgentKey, dict[ActionHash | None, Grant]] = {}
    for grant in grants:
        by_author.setdefault(grant.author, {}).setdefault(grant.prev_grant, grant)
    lines = {}
    for author, following in by_author.items():
        first = following.get(None)
        if first is None:
            continue
        line = [first]
        while (after := following.get(line[-1].hash)) is not None:
            line.append(after)
        lines[author] = GrantLine(author, tuple(line))
    return lines


def shares_collected(reads: Iterable[Read]) -> dict[ActionHash, ActionHash]:
    """Grant -> the ``exchange/share`` record that collected its share, among ``reads``."""
    return {r.entry["grant"]: r.hash for r in reads if r.entry_type == SHARE}
