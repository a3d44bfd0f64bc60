"""Storage arcs: every location keeps R holders for any peer set, through joins and leaves."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conode.dht import routing
from conode.dht.arcs import (
    RING,
    Arc,
    Holder,
    Ring,
    choose_location,
    hash_location,
    location_candidates,
    storage_arc,
)
from conode.dht.itemset import Item
from conode.hashes import ActionHash

locations = st.one_of(
    st.integers(0, RING - 1),
    st.sampled_from([0, 1, 2, RING // 2, RING - 2, RING - 1]),  # edges and collisions
)
arcs = st.one_of(
    st.just(Arc.full()),
    st.just(Arc.empty()),
    st.builds(Arc, st.integers(0, RING - 1), st.integers(1, RING - 1)),
    st.builds(Arc, locations, st.sampled_from([1, 2, RING // 2, RING - 1])),
)


def coverage(ring: Ring) -> dict[int, int]:
    """How many arcs hold each location, at every place the count can change (and just before)."""
    arc_list = list(ring.arcs().values())
    probes = {0, RING - 1}
    for arc in arc_list:
        for edge in (arc.start, arc.start + arc.length):
            probes.update({edge % RING, (edge - 1) % RING})
    return {loc: sum(arc.contains(loc) for arc in arc_list) for loc in probes}


@st.composite
def holders(draw: st.DrawFn, min_size: int = 0, max_size: int = 40) -> list[Holder]:
    count = draw(st.integers(min_size, max_size))
    return [Holder(draw(locations), f"p{i}") for i in range(count)]


# -- locations ---------------------------------------------------------------------------------


def test_a_hash_location_is_the_top_32_bits_of_the_routing_location() -> None:
    h = ActionHash(bytes(range(32)))
    assert hash_location(h) == int.from_bytes(h.raw, "big") >> 224 == 0x00010203
    assert Item.at_hash(h) == Item(0x00010203, h)
    assert Item.at_hash(h).key == h.raw[:4] + h.raw  # so keys at their own location sort as hashes do


def test_a_peers_first_candidate_location_is_its_routing_location_cut_to_32_bits() -> None:
    for peer in ("12D3KooWabc", "node-7", ""):
        assert location_candidates(peer)[0] == routing.location(peer) >> 224


def test_choose_location_takes_the_candidate_in_the_largest_gap() -> None:
    candidates = location_candidates("joiner", 4)
    widest = candidates[2]
    seen = [loc + step for loc in candidates for step in (-1, 1) if loc != widest]  # gaps of 2
    seen += [widest - 1000, widest + 1000]  # a gap of 2 000
    assert choose_location("joiner", seen, 4) == widest
    assert choose_location("joiner", [], 4) == candidates[0]


def test_location_choices_spread_the_load_of_a_thousand_nodes() -> None:
    """Placement in the largest gap of 4 candidates: the busiest node holds well under 3R/N."""
    rnd = random.Random(7)
    peers = [f"peer{rnd.getrandbits(64):016x}" for _ in range(1000)]
    seen: list[int] = []
    for peer in peers:
        seen.append(choose_location(peer, seen))
    ring = Ring.of([Holder(loc, peer) for loc, peer in zip(seen, peers, strict=True)], 3)
    busiest = max(arc.fraction for arc in ring.arcs().values())
    assert busiest < 3 * 3 / 1000


# -- arcs --------------------------------------------------------------------------------------


@settings(max_examples=400)
@given(arcs, arcs, st.lists(locations, min_size=1, max_size=20))
def test_overlap_and_minus_hold_exactly_the_right_locations(a: Arc, b: Arc, probes: list[int]) -> None:
    both, only = a.overlap(b), a.minus(b)
    probes += [piece.start for piece in both + only] + [b.start, (b.start + b.length - 1) % RING]
    for loc in probes:
        assert sum(piece.contains(loc) for piece in both) == (a.contains(loc) and b.contains(loc))
        assert sum(piece.contains(loc) for piece in only) == (a.contains(loc) and not b.contains(loc))
    assert len(both) <= 2 and len(only) <= 2
    assert sum(p.length for p in both) + sum(p.length for p in only) == a.length
    assert all(not piece.is_empty for piece in both + only)


def test_two_arcs_that_wrap_round_each_other_overlap_in_two_pieces() -> None:
    a, b = Arc(0, 3 * RING // 4), Arc(RING // 2, 3 * RING // 4)
    assert a.overlap(b) == (Arc(0, RING // 4), Arc(RING // 2, RING // 4))
    assert a.minus(b) == (Arc(RING // 4, RING // 4),)


def test_an_arc_has_one_form_for_empty_and_full() -> None:
    with pytest.raises(ValueError, match="one form"):
        Arc(5, 0)
    with pytest.raises(ValueError, match="one form"):
        Arc(5, RING)
    assert Arc.between(7, 7) == Arc.empty()


# -- coverage ----------------------------------------------------------------------------------


@settings(max_examples=300)
@given(holders(), st.integers(1, 6), st.integers(0, 3))
def test_every_location_has_exactly_r_holders_plus_the_full_arc_nodes(
    ordinary: list[Holder], r: int, fulls: int
) -> None:
    everyone = ordinary + [Holder(0, f"auditor{i}", full=True) for i in range(fulls)]
    ring = Ring.of(everyone, r)
    expected = min(r, len(ordinary)) + fulls
    assert set(coverage(ring).values()) <= {expected}
    for loc in {h.loc for h in ordinary} | {0, RING - 1}:
        authorities = ring.authorities(loc)
        assert len(authorities) == expected
        assert {p for p, arc in ring.arcs().items() if arc.contains(loc)} == set(authorities)


@settings(max_examples=200)
@given(holders(min_size=1), st.integers(1, 5), st.data())
def test_a_node_that_sees_only_some_peers_holds_at_least_its_true_arc(
    everyone: list[Holder], r: int, data: st.DataObject
) -> None:
    me = data.draw(st.sampled_from(everyone))
    seen = data.draw(st.lists(st.sampled_from(everyone), max_size=len(everyone)))
    true_arc = Ring.of(everyone, r).arc(me.peer)
    assert true_arc.minus(storage_arc(me, seen, r)) == ()


def test_the_arc_grows_when_the_network_shrinks_and_shrinks_when_it_grows() -> None:
    rnd = random.Random(3)
    everyone = [Holder(rnd.randrange(RING), f"p{i}") for i in range(200)]
    me = everyone[0]
    sizes = [storage_arc(me, everyone[:count], 3).length for count in (200, 100, 50, 10, 4, 3)]
    assert sizes == sorted(sizes)
    assert sizes[-1] == RING  # R peers or fewer (itself included): full replication


@settings(max_examples=200)
@given(holders(min_size=1), st.integers(1, 5), st.integers(0, RING - 1))
def test_a_joining_node_takes_its_arc_only_from_its_r_successors(
    before: list[Holder], r: int, loc: int
) -> None:
    joiner = Holder(loc, "joiner")
    old, new = Ring.of(before, r), Ring.of([*before, joiner], r)
    old_arcs, new_arcs = old.arcs(), new.arcs()
    changed = {p for p in old_arcs if old_arcs[p] != new_arcs[p]}
    successors = new.successors("joiner")
    assert changed <= set(successors)
    if successors:  # the first successor held all the joiner's arc: it fetches it from there
        assert new_arcs["joiner"].minus(old_arcs[successors[0]]) == ()
    for peer in changed:
        assert new_arcs[peer].minus(old_arcs[peer]) == ()  # they only shrink...
        for shed in old_arcs[peer].minus(new_arcs[peer]):  # ...by what the joiner now holds
            assert shed.minus(new_arcs["joiner"]) == ()
    assert set(coverage(new).values()) <= {min(r, len(before) + 1)}


@settings(max_examples=300)
@given(holders(min_size=2, max_size=30), st.integers(1, 5), st.data())
def test_fewer_than_r_nodes_leaving_at_once_lose_no_location(
    before: list[Holder], r: int, data: st.DataObject
) -> None:
    at_once = min(r, len(before)) - 1  # fewer than the holders each location has
    leaving = set(data.draw(st.lists(st.sampled_from([h.peer for h in before]), max_size=at_once)))
    staying = [h for h in before if h.peer not in leaving]
    old_arcs = Ring.of(before, r).arcs()
    new_ring = Ring.of(staying, r)
    old_held_by_stayers = [old_arcs[h.peer] for h in staying]
    # every location (so every stayer's growth) is still held by a stayer to fetch it from...
    for loc in coverage(Ring.of(before, r)):
        assert any(arc.contains(loc) for arc in old_held_by_stayers)
    # ...and once the stayers have grown, every location has R holders again
    assert set(coverage(new_ring).values()) <= {min(r, len(staying))}


def test_a_full_arc_node_changes_nobody_elses_arc() -> None:
    rnd = random.Random(5)
    everyone = [Holder(rnd.randrange(RING), f"p{i}") for i in range(50)]
    auditor = Holder(rnd.randrange(RING), "auditor", full=True)
    without, with_auditor = Ring.of(everyone, 3).arcs(), Ring.of([*everyone, auditor], 3).arcs()
    assert with_auditor.pop("auditor") == Arc.full()
    assert with_auditor == without


def test_r_neighbours_leaving_at_once_can_lose_a_location() -> None:
    """The bound above is tight: the R holders of a location all leaving takes it with them."""
    rnd = random.Random(11)
    before = [Holder(rnd.randrange(RING), f"p{i}") for i in range(20)]
    ring = Ring.of(before, 3)
    lost_loc = ring.ordinary[5].loc
    leaving = set(ring.authorities(lost_loc))
    old_arcs = ring.arcs()
    assert not any(old_arcs[h.peer].contains(lost_loc) for h in before if h.peer not in leaving)
