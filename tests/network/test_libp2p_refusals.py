"""A peer that connects too often is told why its connection is closed, on real libp2p hosts.

py-libp2p's own per-peer connection rate closed such a connection after its
handshake and told the peer nothing: the peer's next request failed with "No
valid connections available for peer" (74 of 200 fast reconnects, measured
before this change). The node now applies the limit itself and says why on
``REFUSAL_PROTOCOL`` before it closes (``docs/libp2p.md``, "A refused connection").
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import trio

from conode.dht.libp2p_transport import Libp2pTransport
from conode.dht.reconnects import RECONNECT_BURST, ReconnectLimiter
from conode.dht.transport import PeerId
from conode.errors import NetworkError

ECHO = "/conode/test/echo/1"
TIMEOUT = 10.0
StartNode = Any


async def echo(peer: PeerId, payload: bytes) -> bytes:
    return payload


async def connect_ask_leave(node: Any, addr: str) -> None:
    """Connect, ask once, hang up: what a fast-reconnecting peer does."""
    peer = await node.connect(addr)
    try:
        assert await node.request(peer, ECHO, b"x", timeout=TIMEOUT) == b"x"
    finally:
        for connected in node.host.get_connected_peers():
            await node.host.disconnect(connected)


async def test_a_peer_reconnecting_too_often_is_told_why(libp2p_node: StartNode) -> None:
    # a token back every 10 s: the 4th connection is refused however slow the machine
    server = await libp2p_node(reconnects=ReconnectLimiter(per_s=0.1, burst=3))
    server.set_handler(ECHO, echo)
    client = await libp2p_node()
    addr = server.listen_addrs()[0]
    for _ in range(3):  # the burst
        await connect_ask_leave(client, addr)
    with pytest.raises(NetworkError) as refused:
        await connect_ask_leave(client, addr)
    text = str(refused.value)
    assert f"{server.peer_id} refused this node's connection: connecting too often" in text
    assert "over 0.1 connections a second, 3 at once): try again in" in text
    assert server.peer_id not in client.connected_peers()


async def test_a_peer_that_never_reconnects_fast_is_never_refused(libp2p_node: StartNode) -> None:
    server = await libp2p_node(reconnects=ReconnectLimiter(per_s=20.0, burst=2))
    server.set_handler(ECHO, echo)
    client = await libp2p_node()
    for _ in range(4):
        await connect_ask_leave(client, server.listen_addrs()[0])
        await trio.sleep(0.1)  # 10 a second, under the 20 allowed


async def test_a_refusal_from_a_peer_that_speaks_no_conode_leaves_a_plain_error(
    libp2p_node: StartNode,
) -> None:
    # a client that does not listen for refusals (its handler removed) sees the old error
    server = await libp2p_node(reconnects=ReconnectLimiter(per_s=0.1, burst=1))
    server.set_handler(ECHO, echo)
    client = await libp2p_node()
    client.host.remove_stream_handler("/conode/refusal/1")
    addr = server.listen_addrs()[0]
    await connect_ask_leave(client, addr)
    with pytest.raises(NetworkError) as failed:
        await connect_ask_leave(client, addr)
    assert "refused this node's connection" not in str(failed.value)


def test_a_node_redials_one_peer_no_faster_than_py_libp2p_allowed_on_main() -> None:
    # Only inbound connections moved to the node's own limit (which says why): turning
    # py-libp2p's off for this node's dials too let a refused peer redial in a tight
    # loop (bench/hostile.py's chains flood). Outbound, its bucket (burst 50) still holds.
    node = Libp2pTransport(os.urandom(32))
    resources = node.host.get_network()._resource_manager
    peer = str(Libp2pTransport(os.urandom(32)).peer_id)
    dials = [resources.acquire_connection(peer, direction="outbound") for _ in range(60)]
    assert dials.count(True) == RECONNECT_BURST
    assert dials[RECONNECT_BURST:] == [False] * (60 - RECONNECT_BURST)
    accepted = [resources.acquire_connection(peer, direction="inbound") for _ in range(60)]
    assert all(accepted)  # inbound: _ConodeSwarm's ReconnectLimiter decides, and says why
