"""``check_transport``: does a transport keep the contract every node relies on?

The node speaks to peers only through ``conode.dht.transport.Transport``; the
in-memory network, the firewall and libp2p each provide it. Like
``trio.testing.check_two_way_stream``, this check takes a maker of a pair and
drives the pair through the contract, raising ``AssertionError`` naming the
clause that broke::

    async def memory_pair(nursery):
        net = MemoryNetwork()
        a, b = net.transport("a"), net.transport("b")
        await nursery.start(a.run)
        await nursery.start(b.run)
        return a, b

    await check_transport(memory_pair)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

import trio

from conode.dht.transport import MAX_MESSAGE, PeerId, Transport
from conode.errors import NetworkError, RemoteProtocolError

__all__ = ["MakePair", "check_transport"]

MakePair = Callable[[trio.Nursery], Awaitable[tuple[Transport, Transport]]]
"""Start two transports in the nursery (``b`` listening where ``a`` can dial it); the pair."""

_TIMEOUT: Final = 10.0
_SHORT: Final = 1.5  # for the requests that must fail: a peer that never answers costs this
_LARGE: Final = 1 << 20


def _protocol(name: str) -> str:
    return f"/conode/check/{name}/1"


async def check_transport(make_pair: MakePair) -> None:
    """Drive a pair from ``make_pair`` through the ``Transport`` contract; ``AssertionError`` if
    a clause breaks."""
    broken: AssertionError | None = None
    async with trio.open_nursery() as nursery:
        a, b = await make_pair(nursery)
        try:
            await _identity_and_connect(a, b)
            await _requests_are_answered(a, b)
            await _failures_are_network_errors(a, b)
            got = await a.request(b.peer_id, _protocol("echo"), b"again", timeout=_TIMEOUT)
            assert got == a.peer_id.encode() + b"|again", "the peer stopped serving after failures"
        except AssertionError as exc:  # raised alone, not in the nursery's exception group
            broken = exc
        nursery.cancel_scope.cancel()
    if broken is not None:
        raise broken


async def _identity_and_connect(a: Transport, b: Transport) -> None:
    assert isinstance(a.peer_id, str) and a.peer_id, "a peer id is text"
    assert a.peer_id != b.peer_id, "two transports have two peer ids"
    addrs = b.listen_addrs()
    assert addrs and all(isinstance(x, str) for x in addrs), "a listening peer has addresses"
    assert await a.connect(addrs[0]) == b.peer_id, "connect returns the peer it reached"
    assert b.peer_id in a.connected_peers(), "a peer connected to is listed as connected"


async def _requests_are_answered(a: Transport, b: Transport) -> None:
    async def echo(peer: PeerId, payload: bytes) -> bytes:
        return peer.encode() + b"|" + payload

    b.set_handler(_protocol("echo"), echo)
    got = await a.request(b.peer_id, _protocol("echo"), b"hello", timeout=_TIMEOUT)
    assert got == a.peer_id.encode() + b"|hello", "the handler answers, and sees the asker's id"
    large = bytes(range(256)) * (_LARGE // 256)
    got = await a.request(b.peer_id, _protocol("echo"), large, timeout=_TIMEOUT)
    assert got == a.peer_id.encode() + b"|" + large, "a large request and response arrive whole"
    answers: dict[int, bytes] = {}

    async def ask(i: int) -> None:
        answers[i] = await a.request(b.peer_id, _protocol("echo"), b"%d" % i, timeout=_TIMEOUT)

    async with trio.open_nursery() as nursery:
        for i in range(10):
            nursery.start_soon(ask, i)
    expected = {i: a.peer_id.encode() + b"|%d" % i for i in range(10)}
    assert answers == expected, "concurrent requests each get their own response"


async def _failures_are_network_errors(a: Transport, b: Transport) -> None:
    async def refuse(peer: PeerId, payload: bytes) -> bytes:
        raise RemoteProtocolError("garbage")

    async def slow(peer: PeerId, payload: bytes) -> bytes:
        await trio.sleep(_SHORT * 4)
        return payload

    b.set_handler(_protocol("refuse"), refuse)
    b.set_handler(_protocol("slow"), slow)
    cases = {
        "a protocol the peer does not serve": ("nothing", b"x"),
        "a request the handler refuses as garbage": ("refuse", b"x"),
        "a response later than the timeout": ("slow", b"x"),
        "a request over MAX_MESSAGE": ("echo", b"\x00" * (MAX_MESSAGE + 1)),
    }
    for what, (name, payload) in cases.items():
        start = trio.current_time()
        try:
            await a.request(b.peer_id, _protocol(name), payload, timeout=_SHORT)
        except NetworkError:
            pass
        else:
            raise AssertionError(f"{what}: answered, not NetworkError")
        took = trio.current_time() - start
        assert took < _SHORT * 2, f"{what}: NetworkError only after {took:.1f} s"
