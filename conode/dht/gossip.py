"""Gossip, the pure half: which chains a peer holds further on, and the digest of what is held.

Nodes swap chain heads (``HeadsRequest``/``HeadsReply``); since chains are
hash-linked, the difference between two nodes' copies of a chain is always
a suffix, so comparing heads says what to pull. ``conode.node.gossip`` is
the shell. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable

from conode.chain import ChainHead
from conode.dht.messages import Heads
from conode.hashes import ActionHash, AgentKey

__all__ = ["ahead", "behind", "heads_digest"]

_NONE = (-1, b"")


def behind(theirs: Heads, ours: Heads) -> list[AgentKey]:
    """The chains ``theirs`` holds further on than ``ours`` (they are behind here)."""
    return [a for a, (seq, _h) in theirs.items() if seq > ours.get(a, _NONE)[0]]


def ahead(theirs: Heads, ours: Heads) -> list[AgentKey]:
    """The chains to pull from the peer: longer there, or as long with another head (a fork)."""
    out = []
    for agent, (seq, head) in theirs.items():
        our_seq, our_head = ours.get(agent, _NONE)
        if seq > our_seq or (seq == our_seq and head != our_head):
            out.append(agent)
    return out


def heads_digest(heads: Iterable[ChainHead], warrants: Iterable[tuple[bytes, AgentKey]]) -> str:
    """A digest of every held chain head and warrant: equal on nodes that have converged.

    A warranted agent's chain is frozen where each node saw it: after a fork, honest nodes
    may each hold another branch, and agree only that the agent is warranted. ``warrants``:
    (hash, offender) of each warrant held, in the store's order.
    """
    held = list(warrants)
    warranted = {offender for _h, offender in held}
    parts = [
        h.author.raw + h.seq.to_bytes(8, "big") + h.hash.raw
        for h in heads
        if h.author not in warranted
    ]
    parts += [h for h, _o in held]
    return ActionHash.of(b"".join(parts)).raw.hex()
