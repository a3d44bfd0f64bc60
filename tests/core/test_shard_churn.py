"""Arcs and reconciliation together: a few hundred holders under churn keep every item R times.

A pure simulation of what the node will do: each holder keeps exactly the
items on its arc; when holders leave (fewer than R at once), those whose arcs
grew reconcile each grown piece with the staying holders whose old arcs
overlap it and take what they lack; a joiner reconciles its arc from its
first successor, and its successors then shed what left their arcs. The data
moves only through real ``Reconciler`` sessions.
"""

from __future__ import annotations

import random
from collections import Counter

from conode.dht.arcs import RING, Arc, Holder, Ring
from conode.dht.itemset import HeldItems, Item
from conode.dht.reconcile import Reconciler
from conode.hashes import ActionHash

R = 3


def pull(into: set[Item], source: set[Item], span: Arc) -> int:
    """Reconcile ``span`` between two holders and add to ``into`` what it lacked; the bytes it took."""
    mine, message = Reconciler.initiate(HeldItems(into), span)
    theirs, reply = Reconciler.accept(HeldItems(source), message)
    side, other = mine, theirs
    while reply is not None:
        reply = side.receive(reply)
        side, other = other, side
    assert mine.need == {item for item in source if span.contains(item.loc)} - into
    into |= mine.need
    return mine.bytes_sent + mine.bytes_received


def check(ring: Ring, held: dict[str, set[Item]], items: list[Item]) -> None:
    arcs = ring.arcs()
    for peer, holding in held.items():
        assert all(arcs[peer].contains(item.loc) for item in holding), "a holder kept what it sheds"
    copies = Counter(item for holding in held.values() for item in holding)
    assert set(copies) == set(items), "an item was lost"
    assert set(copies.values()) == {min(R, len(held))}


def test_holders_joining_and_leaving_keep_every_item_r_times() -> None:
    rnd = random.Random(14)
    items = [Item(rnd.randrange(RING), ActionHash(rnd.randbytes(32))) for _ in range(3_000)]
    places = {f"n{i}": Holder(rnd.randrange(RING), f"n{i}") for i in range(200)}
    ring = Ring.of(places.values(), R)
    held = {peer: {i for i in items if arc.contains(i.loc)} for peer, arc in ring.arcs().items()}
    check(ring, held, items)
    moved = 0
    for step in range(40):
        old_arcs = ring.arcs()
        if step % 2:
            leaving = set(rnd.sample(sorted(places), rnd.randint(1, R - 1)))
            for peer in leaving:
                del places[peer], held[peer]
            ring = Ring.of(places.values(), R)
            for peer, arc in ring.arcs().items():
                for grown in arc.minus(old_arcs[peer]):
                    for source, source_arc in old_arcs.items():
                        if source in held:
                            for piece in grown.overlap(source_arc):
                                moved += pull(held[peer], held[source], piece)
        else:
            joiner = f"j{step}"
            places[joiner] = Holder(rnd.randrange(RING), joiner)
            ring = Ring.of(places.values(), R)
            held[joiner] = set()
            moved += pull(held[joiner], held[ring.successors(joiner)[0]], ring.arc(joiner))
            new_arcs = ring.arcs()
            for peer in ring.successors(joiner):
                held[peer] = {i for i in held[peer] if new_arcs[peer].contains(i.loc)}
        check(ring, held, items)
    assert moved > 0
