"""Shedding, the pure half: which chains a node held off its arc may be let go, and when.

A node holds a chain it hosts or whose agent's location is on its arc; any
other chain it holds (its arc shrank, it held everything before sharding,
or it held the chain on purpose) is let go once the chain's R authorities
showed they hold every op of it held here (the shell's check, a session
over the location with each of them). Until then nothing is lost by
keeping it.

A chain held **on purpose** stays until its hold ends (``Hold``), however
its authorities stand:

- an **audit** or a **search** holds a chain as long as a dependency is kept
  (``NodeSettings.dependency_keep_us``): someone reads it here;
- a **witness** holds a payer's chain only while the payment it witnessed
  can still ask it (``NodeSettings.session_timeout_us``). The witnessed
  record is safe once the payer's authorities hold it (which the check
  before shedding shows), so a longer hold kept nothing but an off-arc
  chain: a node asked to witness by a peer whose view of the ring was
  still partial (a network just placed) held that chain ten minutes.

Locations are taken a few a round in ring order from just after the last one
looked at, so locations whose authorities cannot show they hold them yet do
not stop the others being let go. Pure: no I/O, no clock (``now`` is given).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from conode.chain.ops import location
from conode.dht.arcs import RING, Arc
from conode.hashes import AgentKey

__all__ = ["Hold", "due"]


@dataclass(frozen=True, slots=True)
class Hold:
    """How long a chain held on purpose stays (µs), by why it is held."""

    read_us: int
    """An audit or a search: as long as a dependency is kept."""
    witness_us: int
    """A payer's chain this node was asked to witness: as long as a payment session may last."""

    def until(self, now: int, *, witnessed: bool) -> int:
        """When a hold taken ``now`` ends."""
        return now + (self.witness_us if witnessed else self.read_us)


def due(
    held: Iterable[AgentKey],
    *,
    arc: Arc,
    hosted: Collection[AgentKey],
    held_until: Mapping[AgentKey, int],
    now: int,
    after: int,
    limit: int,
) -> list[tuple[int, list[AgentKey]]]:
    """The chains to check for letting go this round, by location: at most ``limit`` locations
    off ``arc``, in ring order from just after location ``after``, each with the held chains
    there that are not hosted here and whose hold (``held_until``, µs) ended by ``now``."""
    by_location: dict[int, list[AgentKey]] = {}
    for author in held:
        loc = location(author.raw)
        if author in hosted or arc.contains(loc) or held_until.get(author, now) > now:
            continue
        by_location.setdefault(loc, []).append(author)
    order = sorted(by_location, key=lambda loc: (loc - after - 1) % RING)
    return [(loc, by_location[loc]) for loc in order[:limit]]
