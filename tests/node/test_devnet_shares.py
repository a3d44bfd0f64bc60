"""``cli.devnet.shares``: which nodes must hold each chain of a sharded devnet, and what keeps
them from holding it, from answers shaped as ``status`` and ``directory`` give them.

Five ordinary nodes at locations 0x10000000, 0x30000000, ... 0x90000000 and R = 3: a chain at
location 0x20000000 is held by the three nodes at or after it (nodes 1, 2 and 3) and its host.
"""

from __future__ import annotations

from typing import Any

from cli.devnet.shares import held_problems, holders, ring_of
from conode.hashes import AgentKey

R = 3


def _agent(loc: int, tail: int = 0) -> AgentKey:
    """An agent key whose location (its first 4 raw bytes) is ``loc``."""
    return AgentKey(loc.to_bytes(4, "big") + bytes(27) + bytes([tail]))


def _status(index: int, *, placed: bool = True, full: bool = False) -> dict[str, Any]:
    location = None if full or not placed else f"{0x10000000 + 0x20000000 * index:08x}"
    ring = {"placed": placed or full, "full_arc": full, "location": location, "holders_known": 5}
    return {"peer_id": f"peer{index}", "ring": ring}


def _directory(chains: dict[AgentKey, str]) -> list[dict[str, Any]]:
    return [{"agent": str(agent), "head": head} for agent, head in chains.items()]


AT_2 = _agent(0x20000000)  # hosted on node 0: held by nodes 0, 1, 2 and 3
AT_8 = _agent(0x80000000)  # hosted on node 4: held by nodes 4, 0 and 1 (wrapping round)


def test_a_chain_is_held_by_its_host_and_the_r_nodes_at_or_after_its_location() -> None:
    statuses = {i: _status(i) for i in range(5)}
    ring = ring_of(statuses, R)
    assert ring is not None
    found = holders(ring, statuses, {AT_2: 0, AT_8: 4})
    assert found == {AT_2: frozenset({0, 1, 2, 3}), AT_8: frozenset({4, 0, 1})}


def test_with_r_or_fewer_nodes_every_node_holds_every_chain() -> None:
    statuses = {i: _status(i) for i in range(3)}
    ring = ring_of(statuses, R)
    assert ring is not None
    assert holders(ring, statuses, {AT_2: 0, AT_8: 2}) == dict.fromkeys(
        (AT_2, AT_8), frozenset({0, 1, 2})
    )


def test_a_full_arc_node_holds_every_chain_and_takes_no_place_among_the_r() -> None:
    statuses = {i: _status(i) for i in range(5)} | {5: _status(5, full=True)}
    ring = ring_of(statuses, R)
    assert ring is not None
    found = holders(ring, statuses, {AT_2: 0, AT_8: 4})
    assert found == {AT_2: frozenset({0, 1, 2, 3, 5}), AT_8: frozenset({4, 0, 1, 5})}


def test_settled_when_every_holder_holds_its_chains_and_no_other_node_need() -> None:
    statuses = {i: _status(i) for i in range(5)}
    heads = {AT_2: "act_a", AT_8: "act_b"}
    directories = {
        0: _directory(heads),
        1: _directory(heads),
        2: _directory({AT_2: "act_a"}),
        3: _directory({AT_2: "act_a"}),
        4: _directory({AT_8: "act_b"}),
    }
    hosts = {AT_2: 0, AT_8: 4}
    assert held_problems(statuses, directories, hosts, R, same_head=True) == []


def test_a_holder_that_lacks_a_chain_or_holds_it_behind_its_host_is_named() -> None:
    statuses = {i: _status(i) for i in range(5)}
    directories = {
        0: _directory({AT_2: "act_a2", AT_8: "act_b"}),
        1: _directory({AT_2: "act_a1", AT_8: "act_b"}),  # behind node 0's head of AT_2
        2: _directory({AT_2: "act_a2"}),
        3: _directory({}),  # lacks AT_2, which is on its arc
        4: _directory({AT_8: "act_b"}),
    }
    hosts = {AT_2: 0, AT_8: 4}
    assert held_problems(statuses, directories, hosts, R, same_head=True) == [
        "node 3 lacks 1 chains it must hold",
        "node 1 holds 1 chains behind their host's head",
    ]
    # before any payment only presence counts: the geneses
    assert held_problems(statuses, directories, hosts, R, same_head=False) == [
        "node 3 lacks 1 chains it must hold"
    ]


def test_an_unplaced_node_or_one_that_knows_part_of_the_ring_is_not_settled() -> None:
    statuses = {i: _status(i) for i in range(5)}
    directories = {i: _directory({}) for i in range(5)}
    unplaced = statuses | {2: _status(2, placed=False)}
    assert held_problems(unplaced, directories, {}, R, same_head=False) == [
        "node 2 is not placed yet"
    ]
    statuses[4]["ring"]["holders_known"] = 3  # its arc is longer than it should be
    assert held_problems(statuses, directories, {}, R, same_head=False) == [
        "node 4 knows 3 of the 5 nodes' places"
    ]
