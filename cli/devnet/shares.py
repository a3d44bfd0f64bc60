"""Which nodes of a devnet must hold each chain, read from the nodes' own answers.

On a sharded network (docs/protocol.md section 11) a node holds the chains of
the agents it hosts and of the agents whose location is on its arc, not
every chain. So "the network has settled" means: every chain is held by its
**holders** — its host, its R authorities (the R ordinary nodes at or after
the agent's location on the ring, ``conode.dht.arcs.Ring.authorities``) and
every full-arc node — not that every node holds everything. With R or fewer
ordinary nodes every arc is full, so every node is a holder of every chain,
as before sharding.

The ring is built from each node's ``status`` (its ``peer_id`` and its
``ring`` object: ``placed``, ``full_arc``, ``location``): the devnet sees
every node, so it knows the whole ring, where each node knows only its view
of it. ``held_problems`` then reads each node's ``directory`` (every chain
it holds and its head) and says what is still missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conode.dht.arcs import Holder, Ring, hash_location
from conode.hashes import AgentKey

__all__ = ["holders", "held_problems", "ring_of"]


def ring_of(statuses: Mapping[int, Mapping[str, Any]], replication: int) -> Ring | None:
    """The ring of the nodes whose ``status`` answers these are (by node index); None while one
    of them is not placed yet (an unplaced node holds only its own agents' chains)."""
    placed = []
    for status in statuses.values():
        ring = status["ring"]
        if ring["full_arc"]:
            placed.append(Holder(0, status["peer_id"], full=True))
        elif ring["placed"] and ring["location"] is not None:
            placed.append(Holder(int(ring["location"], 16), status["peer_id"]))
        else:
            return None
    return Ring.of(placed, replication)


def holders(
    ring: Ring,
    statuses: Mapping[int, Mapping[str, Any]],
    hosts: Mapping[AgentKey, int],
) -> dict[AgentKey, frozenset[int]]:
    """The nodes (by index) that must hold each chain: its host (``hosts``: agent to the index
    of the node hosting it) and its authorities on ``ring``."""
    index_of = {status["peer_id"]: index for index, status in statuses.items()}
    found = {}
    for agent, host in hosts.items():
        authorities = ring.authorities(hash_location(agent))
        found[agent] = frozenset({host, *(index_of[peer] for peer in authorities)})
    return found


def held_problems(
    statuses: Mapping[int, Mapping[str, Any]],
    directories: Mapping[int, list[Mapping[str, Any]]],
    hosts: Mapping[AgentKey, int],
    replication: int,
    *,
    same_head: bool,
) -> list[str]:
    """What keeps the nodes from holding what they must, in words (empty: nothing).

    ``statuses`` and ``directories``: each node's ``status`` and ``directory`` answers, by
    index (every node of the network); ``hosts``: every agent and the node hosting it.
    A node must be placed and know every ordinary node's place (``holders_known``: else it
    sizes its arc from part of the ring). Each chain's holders must hold it; with
    ``same_head``, at the head its host holds (every record its host made has reached them).
    """
    ring = ring_of(statuses, replication)
    if ring is None:
        return [
            f"node {i} is not placed yet" for i, s in statuses.items() if not s["ring"]["placed"]
        ]
    problems = []
    for index, status in statuses.items():
        known, ordinary = status["ring"]["holders_known"], len(ring.ordinary)
        if not status["ring"]["full_arc"] and known < ordinary:
            problems.append(f"node {index} knows {known} of the {ordinary} nodes' places")
    heads = {
        index: {row["agent"]: row["head"] for row in directory}
        for index, directory in directories.items()
    }
    missing: dict[int, int] = {}
    behind: dict[int, int] = {}
    for agent, must in holders(ring, statuses, hosts).items():
        key, host = str(agent), hosts[agent]
        for index in sorted(must):
            head = heads[index].get(key)
            if head is None:
                missing[index] = missing.get(index, 0) + 1
            elif same_head and head != heads[host].get(key):
                behind[index] = behind.get(index, 0) + 1
    problems += [f"node {i} lacks {n} chains it must hold" for i, n in sorted(missing.items())]
    problems += [
        f"node {i} holds {n} chains behind their host's head" for i, n in sorted(behind.items())
    ]
    return problems
