"""A firewall around any transport: block peers without touching the OS.

``Firewall(inner)`` is itself a ``Transport``; while a peer is blocked, this
node neither asks it anything (``NetworkError``) nor answers it (the request
is reset), and does not count it as connected: what a cut cable looks like
from either side, on top of real connections. Operators use it to shut out
a misbehaving peer (``conode peers block``); tests use it to partition real
libp2p nodes and heal them.
"""

from __future__ import annotations

import trio

from conode.dht.transport import Handler, PeerId, TaskStatus, Transport
from conode.errors import NetworkError, RemoteProtocolError

__all__ = ["Firewall"]


class Firewall:
    """A ``Transport`` that passes everything to ``inner`` except traffic with blocked peers."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.blocked: set[str] = set()

    @property
    def peer_id(self) -> PeerId:
        return self.inner.peer_id

    def listen_addrs(self) -> list[str]:
        return self.inner.listen_addrs()

    def set_handler(self, protocol: str, handler: Handler) -> None:
        async def guarded(peer: PeerId, payload: bytes) -> bytes:
            if peer in self.blocked:
                raise RemoteProtocolError(f"{peer} is behind the firewall")
            return await handler(peer, payload)

        self.inner.set_handler(protocol, guarded)

    async def request(
        self, peer: PeerId, protocol: str, payload: bytes, *, timeout: float
    ) -> bytes:
        if peer in self.blocked:
            raise NetworkError(f"{peer} is behind the firewall")
        return await self.inner.request(peer, protocol, payload, timeout=timeout)

    async def connect(self, addr: str) -> PeerId:
        if any(addr.endswith(f"/p2p/{peer}") or addr.endswith(f"/{peer}") for peer in self.blocked):
            raise NetworkError("that peer is behind the firewall")
        return await self.inner.connect(addr)

    def connected_peers(self) -> list[PeerId]:
        return [p for p in self.inner.connected_peers() if p not in self.blocked]

    def network_peers(self) -> list[PeerId]:
        return [p for p in self.inner.network_peers() if p not in self.blocked]

    def peer_addrs(self, peer: PeerId) -> list[str]:
        return self.inner.peer_addrs(peer)

    async def find_peer(self, peer: PeerId) -> list[str]:
        """The inner transport's routing lookup (Kademlia on libp2p), if it has one."""
        if peer in self.blocked:
            raise NetworkError(f"{peer} is behind the firewall")
        find = getattr(self.inner, "find_peer", None)
        return [] if find is None else list(await find(peer))

    async def run(self, *, task_status: TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        await self.inner.run(task_status=task_status)
