"""A co-op's chain walked back from a grant: the offers and updates since its last grant, and a
month's counted sales (who bought which offer, less the co-op's own and closed loops). Pure; the
rules are in ``conode.apps.exchange.grants``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from conode.apps.exchange.config import (
    OFFER,
    UPDATE,
)
from conode.apps.exchange.grant_figures import NO_SALES, Getter, Revision, Sales, read_revision
from conode.chain import Record
from conode.hashes import ActionHash, AgentKey
from conode.validation.calendar import period_start
from conode.validation.entries import PAYMENT, Genesis, Payment
from conode.validation.verdict import Invalid, Verdict

__all__ = ["Scan", "count_sales", "line_sales", "scan_chain", "tally_sales"]

_CACHE_SIZE: Final = 100_000


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
