"""A bounded py-libp2p peerstore that never evicts what the host itself needs.

py-libp2p 0.8.1's ``PeerStore`` holds at most ``max_peers`` (1 000) peers and,
past that, evicts the entries with no address first: the host's *own* entry
(its key pair, and no address) is the first to go. One hello listing 1 100
made-up peers did it; the next inbound identify then asked the peerstore for
the host's public key, ``PeerStoreError`` escaped a py-libp2p task, and the
daemon stopped.

``BoundedPeerStore`` keeps the bound but chooses what to evict:

- never the host's own entry, nor a peer ``keep`` says the host needs (the
  transport says: the peers it is connected to);
- among the rest, entries with no address, then expired ones, then the least
  recently updated; down to nine tenths of the bound, so a flood of new
  peers costs one sort per hundred of them, not one each;
- it never stores an address nobody can dial (a wildcard such as
  ``0.0.0.0``, port 0: see ``conode.dht.addresses``), nor any address for the
  host's own id (it would give that entry a TTL, and expiry would delete it);
  it stores a peer's address without the trailing ``/p2p/<that peer>``, so
  the same address from identify and from a signed peer record is kept once.

``forget(peer)`` drops a peer's entry unless it is protected: the transport
uses it when a dial to a peer it had never heard of fails, so that addresses
a peer merely claimed do not stay.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from conode.dht.addresses import is_dialable
from conode.dht.deferred_imports import libp2p_imports

with libp2p_imports():
    from libp2p.peer.peerstore import PeerStore
    from multiaddr import Multiaddr

__all__ = ["PEERSTORE_LIMIT", "BoundedPeerStore"]

PEERSTORE_LIMIT: Final = 1_000
"""Peers a node's peerstore holds at most, beyond the protected ones (py-libp2p's own default)."""


class BoundedPeerStore(PeerStore):
    """py-libp2p's ``PeerStore``, bounded, that never evicts the host's own entry or a kept peer.

    Invariants: ``own`` is always present once its key pair is added; at most
    ``limit`` unprotected peers remain after any ``add_addrs``; no stored
    address is a wildcard or port 0.
    """

    def __init__(self, own: Any, limit: int = PEERSTORE_LIMIT) -> None:
        super().__init__(max_peers=limit)
        self.own = own
        self.keep: Callable[[Any], bool] = lambda _peer: False
        """Peers the host needs now (set by the transport: the connected ones)."""

    def protected(self, peer: Any) -> bool:
        """True for the host's own id and for every peer ``keep`` names."""
        return bool(peer == self.own or self.keep(peer))

    def add_addrs(self, peer_id: Any, addrs: Sequence[Any], ttl: int = 0) -> None:
        if peer_id == self.own:
            return
        # one form per address: a signed peer record names "/ip4/../tcp/../p2p/<id>", identify
        # the same without /p2p; kept both, every hello and Kademlia answer listed it twice
        suffix = f"/p2p/{peer_id}"
        usable = []
        for addr in addrs:
            text = str(addr)
            if text.endswith(suffix):
                addr = Multiaddr(text[: -len(suffix)])
            if is_dialable(text):
                usable.append(addr)
        if usable or not addrs:
            super().add_addrs(peer_id, usable, ttl)

    def forget(self, peer: Any) -> None:
        """Drop ``peer``'s entry (addresses, keys, protocols) unless it is protected."""
        if not self.protected(peer) and peer in self.peer_data_map:
            self.clear_peerdata(peer)

    def _enforce_peer_limit(self) -> None:
        if len(self.peer_data_map) <= self.max_peers:
            return
        target = self.max_peers - self.max_peers // 10
        candidates = [
            (bool(data.get_addrs()), not data.is_expired(), data.get_last_identified(), index, peer)
            for index, (peer, data) in enumerate(self.peer_data_map.items())
            if not self.protected(peer)
        ]
        candidates.sort()
        for *_rank, peer in candidates[: max(0, len(self.peer_data_map) - target)]:
            self.peer_record_map.pop(peer, None)
            del self.peer_data_map[peer]
