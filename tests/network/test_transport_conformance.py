"""Every transport a node runs on keeps one contract: ``conode.testing.check_transport``.

The in-memory network, the firewall over it, real libp2p hosts on 127.0.0.1
and the firewall over those are each driven through the same clauses:
identity and connect, answers (large, concurrent), and every failure a
``NetworkError`` within the asker's timeout.
"""

from __future__ import annotations

import os

import pytest
import trio

from conode.dht.firewall import Firewall
from conode.dht.memnet import MemoryNetwork
from conode.dht.transport import Handler, PeerId, Transport
from conode.testing import check_transport
from conode.testing.transport import MakePair


async def memory_pair(nursery: trio.Nursery) -> tuple[Transport, Transport]:
    net = MemoryNetwork()
    a, b = net.transport("a"), net.transport("b")
    await nursery.start(a.run)
    await nursery.start(b.run)
    return a, b


async def libp2p_pair(nursery: trio.Nursery) -> tuple[Transport, Transport]:
    from conode.dht.libp2p_transport import Libp2pTransport  # slow to import: only here

    a, b = Libp2pTransport(os.urandom(32)), Libp2pTransport(os.urandom(32))
    await nursery.start(a.run)
    await nursery.start(b.run)
    return a, b


async def behind_firewalls(nursery: trio.Nursery, make: MakePair) -> tuple[Transport, Transport]:
    a, b = await make(nursery)
    return Firewall(a), Firewall(b)


async def test_the_in_memory_transport_keeps_the_contract() -> None:
    await check_transport(memory_pair)


async def test_the_firewall_over_the_in_memory_transport_keeps_the_contract() -> None:
    await check_transport(lambda nursery: behind_firewalls(nursery, memory_pair))


async def test_libp2p_keeps_the_contract() -> None:
    await check_transport(libp2p_pair)


async def test_the_firewall_over_libp2p_keeps_the_contract() -> None:
    await check_transport(lambda nursery: behind_firewalls(nursery, libp2p_pair))


async def test_the_check_catches_a_transport_that_breaks_the_contract() -> None:
    class Garbling(Firewall):
        """Hands every handler's answer back reversed."""

        def set_handler(self, protocol: str, handler: Handler) -> None:
            async def reversed_answer(peer: PeerId, payload: bytes) -> bytes:
                return (await handler(peer, payload))[::-1]

            super().set_handler(protocol, reversed_answer)

    async def garbling_pair(nursery: trio.Nursery) -> tuple[Transport, Transport]:
        a, b = await memory_pair(nursery)
        return a, Garbling(b)

    with pytest.raises(AssertionError, match="the handler answers"):
        await check_transport(garbling_pair)
