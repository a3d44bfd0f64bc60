"""A node's view of the ring: places heard first and second hand, their ages, who counts as a
holder, and the arcs, authorities and neighbours that follow."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from conode.dht.arcs import Arc, Holder, Ring, location_candidates, storage_arc
from conode.dht.ringview import LEGACY, Place, RingView

R = 3


def view(me: str = "me", expiry_us: int = 60_000_000) -> RingView:
    return RingView(me, R, expiry_us=expiry_us)


def placed(peer: str, choice: int = 0) -> Place:
    return Place(location_candidates(peer)[choice])


def test_a_place_that_is_not_one_of_the_peers_candidates_puts_it_nowhere() -> None:
    ring = view()
    ring.place_self(placed("me"))
    assert ring.hear("honest", placed("honest", 2), now=0)
    stolen = location_candidates("honest")[0]
    assert not ring.hear("liar", Place(stolen), now=0)  # not a candidate of "liar"
    assert {h.peer for h in ring.ring().ordinary} == {"me", "honest"}


def test_a_peer_that_announced_no_place_holds_everything_and_one_not_placed_holds_nothing() -> None:
    ring = view()
    ring.place_self(placed("me"))
    for peer in ("a", "b", "c", "d"):
        ring.hear(peer, placed(peer), now=0)
    ring.hear("old", LEGACY, now=0)
    ring.hear("new", Place(None), now=0)
    assert [h.peer for h in ring.ring().full] == ["old"]
    assert ring.arc_of("old").is_full and ring.arc_of("new").is_empty
    some = location_candidates("x")[0]
    assert ring.authorities(some)[-1] == "old" and "new" not in ring.authorities(some)


def test_an_older_report_never_replaces_a_newer_one_and_ages_expire_places() -> None:
    ring = view(expiry_us=100)
    ring.hear("a", placed("a", 0), now=1_000)
    assert not ring.hear("a", placed("a", 1), now=1_050, age_us=60)  # heard at 990: older
    assert ring.place_of("a") == placed("a", 0)
    assert ring.hear("a", placed("a", 1), now=1_050, age_us=10)  # heard at 1 040: newer
    assert ring.known(1_050) == [("a", placed("a", 1), 10)]
    assert ring.expire(1_100) == []
    assert ring.expire(1_141) == ["a"]
    assert ring.known(1_141) == []


def test_a_forgotten_peer_comes_back_only_with_news_from_after_it_went() -> None:
    ring = view()
    ring.hear("a", placed("a"), now=1_000)
    assert ring.forget("a", now=2_000)
    assert not ring.hear("a", placed("a"), now=2_500, age_us=600)  # a sample from before it went
    assert ring.place_of("a") is None
    assert ring.hear("a", placed("a"), now=2_500, age_us=100)  # heard since
    assert ring.place_of("a") == placed("a")


def test_a_node_holds_nothing_until_placed_and_everything_when_full() -> None:
    ring = view()
    for peer in ("a", "b", "c", "d", "e"):
        ring.hear(peer, placed(peer), now=0)
    assert ring.arc().is_empty and ring.neighbours() == ()
    ring.place_self(Place(None, full=True))
    assert ring.arc().is_full
    assert set(ring.neighbours()) == {"a", "b", "c", "d", "e"}
    assert ring.authorities(5)[-1] == "me"  # a full-arc holder is an authority of everything


names = st.lists(st.text("abcdefghij", min_size=1, max_size=6), min_size=1, max_size=25, unique=True)


@settings(max_examples=200, deadline=None)
@given(names, st.lists(st.integers(0, 3), min_size=25, max_size=25), st.sampled_from([0, 1, 2, 3]))
def test_the_arc_is_the_storage_arc_and_the_neighbours_are_exactly_the_overlapping_holders(
    peers: list[str], choices: list[int], my_choice: int
) -> None:
    ring = view()
    ring.place_self(placed("me", my_choice))
    places = {peer: placed(peer, choice) for peer, choice in zip(peers, choices, strict=False)}
    for peer, place in places.items():
        ring.hear(peer, place, now=0)
    me = Holder(location_candidates("me")[my_choice], "me")
    seen = [Holder(p.loc or 0, peer) for peer, p in places.items()]
    assert ring.arc() == storage_arc(me, seen, R)
    whole = Ring.of([*seen, me], R)
    overlapping = {p for p, arc in whole.arcs().items() if p != "me" and ring.arc().overlap(arc)}
    assert set(ring.neighbours()) == overlapping
    for loc in (0, location_candidates("probe")[0], me.loc):
        assert ring.authorities(loc) == whole.authorities(loc)
    for peer in overlapping:
        assert ring.overlap(peer) == ring.arc().overlap(whole.arc(peer))
    # forgetting a neighbour grows this node's arc or leaves it, never shrinks it
    if overlapping:
        gone = sorted(overlapping)[0]
        before = ring.arc()
        ring.forget(gone)
        assert before.minus(ring.arc()) == () or ring.arc() == Arc.full()


@settings(max_examples=200, deadline=None)
@given(names, st.lists(st.integers(0, 3), min_size=25, max_size=25), st.sampled_from([0, 1, 2, 3]))
def test_every_peer_whose_leaving_moves_this_nodes_arc_is_watched(
    peers: list[str], choices: list[int], my_choice: int
) -> None:
    # a node notices a holder gone only by asking it something; the holders it greets in turn
    # (``watched``) must include every one whose going changes its arc, or its arc stays
    # short of what it must hold until the gone one's place expires (the 100-node churn case
    # waited on exactly that: a node's R-th predecessor, which is no neighbour)
    places = {peer: placed(peer, choice) for peer, choice in zip(peers, choices, strict=False)}

    def placed_view() -> RingView:
        ring = view()
        ring.place_self(placed("me", my_choice))
        for peer, place in places.items():
            ring.hear(peer, place, now=0)
        return ring

    ring = placed_view()
    watched = set(ring.watched())
    assert set(ring.neighbours()) <= watched and "me" not in watched
    for peer in places:
        without = placed_view()
        without.forget(peer)
        if without.arc() != ring.arc():
            assert peer in watched, peer
