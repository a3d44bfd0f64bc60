"""The network's own Kademlia: py-libp2p's kad-dht on this network's protocol id, among its peers only.

py-libp2p 0.8.1's kad-dht speaks ``/ipfs/kad/1.0.0``, the public IPFS DHT,
and puts any peer that serves it (or that a peer names in an answer) in its
routing table: a js kad-dht peer that connected was handed to other conode
nodes after it had left, and two conode networks, or conode and IPFS, would
merge into one table. Its protocol id is a module constant
(``libp2p.kad_dht.common.PROTOCOL_ID``) that five modules import by value
and ``KadDHT(protocol_prefix=...)`` does not change, so it cannot be set per
host.

``network_kad(host, protocol, member)`` builds a ``KadDHT`` that differs in
two places, each in this module only:

- ``_KadHost``, the host as the DHT sees it: every stream handler the DHT
  registers and every stream it opens under py-libp2p's kad protocol id is
  mapped to ``protocol`` (``/conode/<network>/kad/1``), by value, whichever
  module asks. Nothing global is patched, so several networks' hosts can live
  in one process (tests do).
- ``_NetworkRoutingTable``, which admits a peer only if ``member(peer)`` says
  it is one of this network's peers (the transport: connected, and identify
  lists ``protocol``; or connected and it just opened a ``protocol`` stream to
  us). Peers a DHT answer merely names are not admitted: they are still
  queried during a lookup, and enter once they are connected and identified.
  A peer already in the table is re-added with its current addresses.

``test_libp2p_strangers.py`` fails if a py-libp2p upgrade slips past either:
a handler or a stream left on ``/ipfs/kad/...``, or a routing table other
than ours reachable from the DHT.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from conode.dht.deferred_imports import libp2p_imports

with libp2p_imports():
    from libp2p.custom_types import TProtocol
    from libp2p.kad_dht.common import PROTOCOL_ID as IPFS_KAD_PROTOCOL
    from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
    from libp2p.kad_dht.routing_table import RoutingTable
    from libp2p.peer.peerinfo import PeerInfo

__all__ = ["IPFS_KAD_PROTOCOL", "KAD_NAME", "network_kad"]

KAD_NAME: Final = "kad"
"""The name of Kademlia among this network's protocols: ``protocol_id(network, KAD_NAME)``."""

Member = Callable[[Any, bool], bool]
"""``member(peer_id, opened_our_stream)``: True if the peer is one of this network's peers."""


class _KadHost:
    """The host, with py-libp2p's kad protocol id replaced by this network's (see the module docstring)."""

    def __init__(self, host: Any, protocol: str) -> None:
        self._host = host
        self._protocol = TProtocol(protocol)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._host, name)

    def _ours(self, protocol: Any) -> Any:
        return self._protocol if str(protocol) == str(IPFS_KAD_PROTOCOL) else protocol

    def set_stream_handler(self, protocol: Any, handler: Any) -> None:
        self._host.set_stream_handler(self._ours(protocol), handler)

    def remove_stream_handler(self, protocol: Any) -> None:
        self._host.remove_stream_handler(self._ours(protocol))

    async def new_stream(self, peer_id: Any, protocols: Any, *args: Any, **kwargs: Any) -> Any:
        ours = [self._ours(protocol) for protocol in protocols]
        return await self._host.new_stream(peer_id, ours, *args, **kwargs)


class _NetworkRoutingTable(RoutingTable):
    """A routing table that admits only this network's peers, with their current addresses."""

    def __init__(self, local_id: Any, host: Any, member: Member) -> None:
        super().__init__(local_id, host)
        self._member = member

    async def add_peer(self, peer_obj: Any, *, skip_server_mode_check: bool = False) -> bool:
        peer_id = peer_obj.peer_id if isinstance(peer_obj, PeerInfo) else peer_obj
        # skip_server_mode_check: py-libp2p's word for "it opened a kad stream to us"
        if not self._member(peer_id, skip_server_mode_check):
            return False
        if self.peer_in_table(peer_id):
            self.remove_peer(peer_id)  # a bucket keeps the addresses it was given first
        # by id: the addresses come from the peerstore (identify), not from a peer's answer
        added: bool = await super().add_peer(peer_id, skip_server_mode_check=True)
        return added


def network_kad(host: Any, protocol: str, member: Member) -> Any:
    """A server-mode ``KadDHT`` on ``protocol`` whose routing table holds only ``member`` peers."""
    kad_host: Any = _KadHost(host, protocol)  # duck-typed: an IHost in all but name
    dht = KadDHT(kad_host, DHTMode.SERVER, enable_random_walk=False)
    table = _NetworkRoutingTable(dht.local_peer_id, kad_host, member)
    # KadDHT builds its table in __init__ and hands it to its peer routing;
    # nothing else holds it while random walk is off (the test checks).
    dht.routing_table = table
    dht.peer_routing.routing_table = table
    return dht
