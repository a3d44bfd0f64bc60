"""Publishing, the pure half: which peers a record goes to, and what to send whom this round.

Every record authored here goes to the authorities of its action hash and of
its author (a link also to those of its base, which answer ``links`` for
it) until enough of them returned signed receipts. The shell
(``conode.node.publishing``) reads the queue and the receipts, asks
``plan`` what to do, then does it (httpcore's way: decide, then do the
I/O). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from conode.chain import ActionKind, Record, link_base
from conode.dht.routing import authorities
from conode.dht.wire import PeerId
from conode.hashes import ActionHash, AgentKey
from conode.validation.entries import PAYMENT, payer_position

__all__ = ["Plan", "Queued", "plan", "receipts_needed", "targets"]


def targets(record: Record, peers: Sequence[str], replication: int) -> list[PeerId]:
    """The R nearest of ``peers`` (this node left out by the caller) to the record's action hash,
    to its author, for a link to its base (whose authorities answer ``links`` for it), and for a
    payment to its payer (whose authorities witness the payer's positions).

    This node is left out before choosing: were it one of the R nearest to both, only R - 1
    peers would be asked and ``receipts_needed`` (R) could never be met. A base authority's
    receipt counts like any other: a link is published once R peers hold it, as every
    record is; the base authorities are sent it in the same rounds, and one that missed
    it learns it by gossip (every held link is indexed by its base, whoever holds it).
    """
    bases = [record.hash.raw, record.action.author.raw]
    if record.action.kind is ActionKind.LINK and (base := link_base(record.entry)):
        bases.append(base[1:])  # the 32 bytes after the kind byte, as for every basis
    if record.action.entry_type == PAYMENT and (payer := payer_position(record.entry)):
        # the payer's activity authorities hold its chain: a payee's record naming a payer seq
        # that holds something else there is equivocation, which they can only see if sent it
        bases.append(payer[0].raw)
    chosen = {peer for basis in bases for peer in authorities(basis, peers, replication)}
    return sorted(PeerId(p) for p in chosen)


def receipts_needed(replication: int, connected: int) -> int:
    """How many remote receipts make a record published: R, or every peer in a smaller network."""
    return max(1, min(replication, connected))


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
    peers: Sequence[str],
    peer_keys: Mapping[PeerId, AgentKey],
    replication: int,
    needed: int,
) -> Plan:
    """Send each record short of ``needed`` receipts to its targets that have not receipted it
    (a peer's receipt is known by its node key, ``peer_keys``); a record no longer held, or
    with enough receipts, is done."""
    batches: dict[PeerId, list[Record]] = {}
    done: list[ActionHash] = []
    for queued in queue:
        if queued.record is None or len(queued.receipted) >= needed:
            done.append(queued.hash)
            continue
        for peer in targets(queued.record, peers, replication):
            if peer_keys.get(peer) not in queued.receipted:
                batches.setdefault(peer, []).append(queued.record)
    return Plan(batches, done)
