"""Publishing, the pure half: which peers a record goes to, and what to send whom this round.

Every record authored here goes to the authorities of its author's location
(its activity authorities, who hold the author's whole chain: ``conode.chain.ops``)
and, for a link, to those of its base's (who answer ``links`` for it) until
enough of them returned signed receipts: R, or every authority there is
other than this node where there are fewer. A payment recorded on its
payee's chain also goes, once and for no receipt, to its payer's
authorities (``informed``): they hold the payer's chain, and only they can
see that the payer put something else at the position it countersigned
(equivocation). The shell
(``conode.node.publishing``) reads the queue and the receipts, asks
``plan`` what to do, then does it (httpcore's way: decide, then do the
I/O). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from conode.chain import Record
from conode.chain.ops import location, op_locations
from conode.dht.wire import PeerId
from conode.hashes import ActionHash, AgentKey
from conode.validation.entries import PAYMENT, payer_position

__all__ = ["Authorities", "Plan", "Queued", "informed", "plan", "receipts_needed", "targets"]

Authorities = Callable[[int], Sequence[str]]
"""The holders of a location other than this node, nearest first (``Placement.authorities``)."""


def targets(record: Record, authorities: Authorities) -> list[PeerId]:
    """The authorities of each of the record's op locations (its author's, and a link's base's).

    A payment's payer authorities are not among them (they hold the payer's chain, not the
    payee's, and their receipts would not make the payee's record held): ``informed``.

    A base authority's receipt counts like any other: a link is published once
    R peers hold it, as every record is; the base authorities are sent it in
    the same rounds, and one that missed it gets it by reconciliation.
    """
    chosen = {peer for loc in op_locations(record) for peer in authorities(loc)}
    return sorted(PeerId(p) for p in chosen)


def informed(record: Record, authorities: Authorities) -> list[PeerId]:
    """The payer's authorities of a payment on another agent's chain (its payee's) that are not
    among its ``targets``: sent the record once, for no receipt, so that they can warrant a
    payer whose chain holds something else at the position it countersigned."""
    if record.action.entry_type != PAYMENT:
        return []
    position = payer_position(record.entry)
    if position is None or position[0] == record.action.author:
        return []
    chosen = set(authorities(location(position[0].raw))) - set(targets(record, authorities))
    return sorted(PeerId(p) for p in chosen)


def receipts_needed(replication: int, authorities: int, alone: bool) -> int:
    """How many remote receipts make a record published: R, or as many authorities as there are
    besides this node (none: it is the only holder, reconciliation hands the record on); one
    while this node knows no other holder at all (the record waits for peers)."""
    return 1 if alone else min(replication, authorities)


@dataclass(frozen=True, slots=True)
class Queued:
    """A record waiting for receipts: its hash, the record (None: no longer held), who signed."""

    hash: ActionHash
    record: Record | None
    receipted: Collection[AgentKey]


@dataclass(frozen=True, slots=True)
class Plan:
    """One round of publishing: the records to send each peer, and those that are done."""

    batches: dict[PeerId, list[Record]]
    done: list[ActionHash]


def plan(
    queue: Iterable[Queued],
    authorities: Authorities,
    peer_keys: Mapping[PeerId, AgentKey],
    needed: Callable[[Record], int],
) -> Plan:
    """Send each record short of its receipts to its targets that have not receipted it (a
    peer's receipt is known by its node key, ``peer_keys``); a record no longer held, or with
    the receipts it ``needed``, is done."""
    batches: dict[PeerId, list[Record]] = {}
    done: list[ActionHash] = []
    for queued in queue:
        record = queued.record
        if record is None:
            done.append(queued.hash)
            continue
        if len(queued.receipted) >= needed(record):
            done.append(queued.hash)
            continue
        for peer in targets(record, authorities):
            if peer_keys.get(peer) not in queued.receipted:
                batches.setdefault(peer, []).append(record)
    return Plan(batches, done)
