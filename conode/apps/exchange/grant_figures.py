"""The figures of a co-op's grant line: what a grant moves, when it is due and may expire, and what
the co-op has on offer. Pure; shared by the rules (``conode.apps.exchange.grants``, whose docstring says
how grants work) and the functions (``conode.apps.exchange.granting``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from conode.apps.exchange.config import (
    OFFER,
    UPDATE,
    WANT,
)
from conode.chain import Record
from conode.hashes import ActionHash, AgentKey
from conode.validation.calendar import period_start
from conode.validation.charter import Limits
from conode.validation.entries import MAX_AMOUNT
from conode.validation.verdict import Invalid, Missing, Verdict

__all__ = [
    "NO_SALES",
    "OFFER_BASES",
    "Amounts",
    "Getter",
    "LineState",
    "Revision",
    "Sales",
    "advance_of",
    "due_of",
    "expiry_terms",
    "grant_amounts",
    "offered_value",
    "open_offers",
    "read_revision",
]

OFFER_BASES: Final = ("new", "enlarge")
"""The bases that grant for what is offered (the high-water mark), not for sales."""
_BP: Final = 10_000

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
    if basis in OFFER_BASES:
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
    return sum(gross for p, basis, gross in grants if p == period and basis in OFFER_BASES)


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
