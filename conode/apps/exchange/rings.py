"""Trade rings: co-ops that bought from each other's offers in a circle within one month.

Why this exists: grant credit is re-estimated from an offer's counted sales,
and the grant rule leaves out a **closed loop of two** co-ops (each buying
the other's offers), which shows on the seller's own chain. A ring of three
or more (A buys from B, B from C, C from A) shows only across the rings'
chains, which a grant's validator does not read: every grant is checked from
its co-op's chain alone. An audit holds every chain, so it lists such rings
for a peer validator to look into. Trading in a circle is not against any
rule (co-ops may well supply each other), so a ring is a finding, never a
violation.

What counts: a payment that names an offer (``offer``), from the buyer's
co-op (the payer, or the co-op its membership credential names) to the
seller's co-op (the payee's), in the month of the payment's timestamp (the
grant rule's months, ``period_of``). Each ring is reported once, starting from its co-op with the
lowest key, with what each co-op paid the next in that month.

The search is bounded (``longest`` co-ops per ring, ``most`` rings, and a
step budget), so an audit of a large, densely trading network stays quick;
``RingSearch.complete`` says whether it looked everywhere.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from conode.chain import ActionKind, Record
from conode.errors import EncodingError
from conode.hashes import AgentKey
from conode.validation.calendar import period_label, period_of
from conode.validation.entries import PAYMENT, Genesis, Payment, Role

__all__ = ["Ring", "RingSearch", "trade_rings"]

_STEP_BUDGET: Final = 200_000
"""Paths tried per audit before the search stops (and says it is not complete)."""


@dataclass(frozen=True, slots=True)
class Ring:
    """Co-ops that bought in a circle: ``coops[i]`` paid ``coops[i + 1]`` (the last, the first)
    ``amounts[i]`` for offers in ``month`` (``period_label``: ``YYYY-MM``, UTC)."""

    month: str
    coops: tuple[AgentKey, ...]
    amounts: tuple[int, ...]


@dataclass(slots=True)
class RingSearch:
    """The rings found, and whether every ring within the bounds was looked for."""

    rings: list[Ring] = field(default_factory=list)
    complete: bool = True


def trade_rings(records: Iterable[Record], *, longest: int = 4, most: int = 100) -> RingSearch:
    """Rings of 3 to ``longest`` co-ops among the offer purchases in ``records`` (every chain).

    Records that do not decode are skipped: the audit reports them as violations.
    """
    coop_of: dict[AgentKey, AgentKey] = {}
    purchases: list[tuple[AgentKey, AgentKey, int, int]] = []  # payer, payee, amount, time
    for record in records:
        try:
            if record.action.kind is ActionKind.GENESIS and record.entry is not None:
                genesis = Genesis.from_value(record.entry_value())
                if genesis.role == Role.COOP:
                    coop_of[record.action.author] = record.action.author
                elif genesis.credential is not None:
                    coop_of[record.action.author] = genesis.credential.coop
            elif record.action.entry_type == PAYMENT and record.entry is not None:
                body = Payment.from_value(record.entry_value()).body
                if body.offer is not None and record.action.author == body.payer.agent:
                    purchases.append(
                        (body.payer.agent, body.payee.agent, body.amount, body.timestamp)
                    )
        except EncodingError:
            continue
    months: dict[int, dict[AgentKey, dict[AgentKey, int]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(int))
    )
    for payer, payee, amount, timestamp in purchases:
        buyer, seller = coop_of.get(payer), coop_of.get(payee)
        if buyer is not None and seller is not None and buyer != seller:
            months[period_of(timestamp)][buyer][seller] += amount
    search = RingSearch()
    budget = [_STEP_BUDGET]
    for month in sorted(months):
        for cycle in _cycles(months[month], longest, budget):
            if len(search.rings) >= most:
                search.complete = False
                return search
            edges = months[month]
            amounts = tuple(edges[a][b] for a, b in zip(cycle, (*cycle[1:], cycle[0]), strict=True))
            search.rings.append(Ring(period_label(month), cycle, amounts))
        if budget[0] <= 0:
            search.complete = False
            return search
    return search


def _cycles(
    edges: dict[AgentKey, dict[AgentKey, int]], longest: int, budget: list[int]
) -> Iterable[tuple[AgentKey, ...]]:
    """Simple cycles of 3 to ``longest`` nodes, each once: from its lowest node, in key order."""
    for start in sorted(edges, key=lambda k: k.raw):
        yield from _cycles_through(edges, [start], longest, budget)


def _cycles_through(
    edges: dict[AgentKey, dict[AgentKey, int]],
    path: list[AgentKey],
    longest: int,
    budget: list[int],
) -> Iterable[tuple[AgentKey, ...]]:
    """The cycles that go on from ``path`` (never through a node lower than its start)."""
    budget[0] -= 1
    if budget[0] <= 0:
        return
    start = path[0]
    for after in sorted(edges.get(path[-1], {}), key=lambda k: k.raw):
        if after == start and len(path) >= 3:
            yield tuple(path)
        elif after.raw > start.raw and after not in path and len(path) < longest:
            path.append(after)
            yield from _cycles_through(edges, path, longest, budget)
            path.pop()
