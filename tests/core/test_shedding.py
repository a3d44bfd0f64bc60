"""Shedding's pure half (``conode.dht.shedding``): which chains held off the arc are checked for
letting go, and how long a chain held on purpose stays, by why it is held."""

from __future__ import annotations

from conode.dht.arcs import RING, Arc
from conode.dht.shedding import Hold, due
from conode.hashes import AgentKey

NOW = 1_000_000_000


def agent(loc: int, tag: int = 0) -> AgentKey:
    """An agent key at location ``loc`` (its first 4 bytes)."""
    return AgentKey(loc.to_bytes(4, "big") + bytes([tag]) * 28)


ARC = Arc(0x1000_0000, 0x1000_0000)  # this node's arc: [0x10000000, 0x20000000)


def test_only_chains_off_the_arc_and_not_hosted_are_checked_grouped_by_location() -> None:
    on_arc, hosted = agent(0x1800_0000), agent(0x8000_0000)
    a, b, c = agent(0x4000_0000, 1), agent(0x4000_0000, 2), agent(0x5000_0000)
    found = due(
        [on_arc, hosted, a, b, c], arc=ARC, hosted={hosted}, held_until={}, now=NOW, after=0, limit=10
    )
    assert found == [(0x4000_0000, [a, b]), (0x5000_0000, [c])]


def test_a_chain_held_on_purpose_is_checked_only_once_its_hold_ended() -> None:
    held, ended = agent(0x4000_0000), agent(0x5000_0000)
    until = {held: NOW + 1, ended: NOW}
    found = due([held, ended], arc=ARC, hosted=set(), held_until=until, now=NOW, after=0, limit=10)
    assert found == [(0x5000_0000, [ended])]


def test_a_round_goes_on_in_ring_order_from_the_last_location_looked_at() -> None:
    chains = [agent(loc) for loc in (0x3000_0000, 0x5000_0000, 0x7000_0000, 0x9000_0000)]

    def locations(after: int) -> list[int]:
        return [loc for loc, _ in due(chains, arc=ARC, hosted=set(), held_until={}, now=NOW, after=after, limit=2)]

    assert locations(0) == [0x3000_0000, 0x5000_0000]
    assert locations(0x5000_0000) == [0x7000_0000, 0x9000_0000]
    assert locations(0x9000_0000) == [0x3000_0000, 0x5000_0000]  # round the ring again
    assert locations(RING - 1) == [0x3000_0000, 0x5000_0000]


def test_a_witness_holds_a_chain_as_long_as_a_payment_session_and_a_reader_as_long_as_a_dependency() -> None:
    hold = Hold(read_us=600_000_000, witness_us=10_000_000)
    assert hold.until(NOW, witnessed=True) == NOW + 10_000_000
    assert hold.until(NOW, witnessed=False) == NOW + 600_000_000
