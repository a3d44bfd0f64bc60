"""When a node takes a peer for gone: at once if its connection is gone, after a few failures
in a row if it is still connected (busy, or over its limits, is not gone).

A node that forgot a live peer after one timeout moved its arc over that peer's share and
made more work for itself, which made more timeouts: 20 nodes on one busy machine forgot
each other hundreds of times a minute. ``PeerClient`` on two in-memory transports.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import trio
import trio.testing

from conode.dht.memnet import MemoryNetwork, MemoryTransport
from conode.dht.transport import PeerId
from conode.errors import NetworkError
from conode.node.peer_client import STRIKES, PeerClient

TIMEOUT = 1.0


@dataclass(frozen=True)
class Probe:
    """A request of the test's own protocol; the reply is the bytes sent back."""

    protocol: str = "probe"

    def encode(self) -> bytes:
        return b"ping"

    def read_reply(self, data: bytes) -> bytes:
        return data


class Peer:
    """The asked peer: it answers, or takes its time, as the test says."""

    def __init__(self, transport: MemoryTransport) -> None:
        self.transport = transport
        self.busy = False

    async def answer(self, _peer: PeerId, _payload: bytes) -> bytes:
        if self.busy:
            await trio.sleep(10 * TIMEOUT)
        return b"pong"


@asynccontextmanager
async def two_nodes() -> AsyncIterator[tuple[PeerClient, Peer, list[PeerId], trio.CancelScope]]:
    """A client on one transport, the peer on another (its cancel scope stops it), and the
    list of peers the client called unreachable."""
    network = MemoryNetwork()
    mine, theirs = network.transport("a"), network.transport("b")
    client = PeerClient(mine, "test", TIMEOUT)
    peer = Peer(theirs)
    theirs.set_handler(client.protocol("probe"), peer.answer)
    told: list[PeerId] = []
    client.on_unreachable.append(told.append)
    async with trio.open_nursery() as nursery:
        await nursery.start(mine.run)
        stop = trio.CancelScope()

        async def run_theirs(task_status: trio.TaskStatus[None]) -> None:
            with stop:
                await theirs.run(task_status=task_status)

        await nursery.start(run_theirs)
        await mine.connect(theirs.listen_addrs()[0])
        yield client, peer, told, stop
        nursery.cancel_scope.cancel()


async def fail(client: PeerClient, peer: PeerId) -> None:
    with pytest.raises(NetworkError):
        await client.ask(peer, Probe())


async def test_a_connected_peer_that_times_out_is_unreachable_only_after_strikes_in_a_row(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_nodes() as (client, peer, told, _stop):
        them = peer.transport.peer_id
        assert await client.ask(them, Probe()) == b"pong"
        peer.busy = True
        for _ in range(STRIKES - 1):
            await fail(client, them)
            assert them in client.transport.connected_peers()
        assert told == []
        # an answer clears the count: failures must come in a row
        peer.busy = False
        assert await client.ask(them, Probe()) == b"pong"
        peer.busy = True
        for _ in range(STRIKES - 1):
            await fail(client, them)
        assert told == []
        await fail(client, them)
        assert told == [them]
        # and the count starts again after it was told
        await fail(client, them)
        assert told == [them]


async def test_a_peer_whose_connection_is_gone_is_unreachable_at_its_first_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_nodes() as (client, peer, told, stop):
        them = peer.transport.peer_id
        assert await client.ask(them, Probe()) == b"pong"
        stop.cancel()
        await trio.sleep(0.1)
        assert them not in client.transport.connected_peers()
        await fail(client, them)
        assert told == [them]
