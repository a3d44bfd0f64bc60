"""An in-memory network with the same interface as the libp2p transport.

For many-node tests: every node gets a ``MemoryTransport`` from one
``MemoryNetwork``, which can drop, delay and duplicate requests and split the
nodes into partitions (trio's ``FakeNet`` idea). Faults are drawn from the
network's own seeded ``random.Random`` so a failing run can be replayed.
A dropped request (or its response) looks to the asker like a peer that
never answered: it waits for its timeout, then gets ``NetworkError``.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

import trio

from conode.dht.transport import (
    MAX_MESSAGE,
    Handler,
    PeerId,
    PeerLimiter,
    TaskStatus,
    costly,
    request_cost,
)
from conode.errors import NetworkError, RemoteProtocolError, StorageError

__all__ = ["Faults", "MemoryNetwork", "MemoryTransport"]

_ADDR_PREFIX = "/memory/"


@dataclass(slots=True)
class Faults:
    """What the network does to each request: drop, delay (seconds), duplicate."""

    drop: float = 0.0
    delay_min: float = 0.0
    delay_max: float = 0.0
    duplicate: float = 0.0


class MemoryNetwork:
    """The wires between ``MemoryTransport`` nodes, with faults and partitions."""

    def __init__(self, *, seed: int = 0, faults: Faults | None = None) -> None:
        self.rng = random.Random(seed)
        self.faults = faults or Faults()
        self.nodes: dict[PeerId, MemoryTransport] = {}
        self._groups: list[set[PeerId]] | None = None

    def transport(self, name: str) -> MemoryTransport:
        """A new node on this network, named ``name`` (its peer id)."""
        peer = PeerId(name)
        if peer in self.nodes:
            raise ValueError(f"a node named {name!r} is already on the network")
        node = MemoryTransport(self, peer)
        self.nodes[peer] = node
        return node

    def partition(self, *groups: set[str]) -> None:
        """Split the network: nodes reach only nodes of their own group."""
        self._groups = [{PeerId(p) for p in group} for group in groups]

    def heal(self) -> None:
        """Join every partition again."""
        self._groups = None

    def reachable(self, a: PeerId, b: PeerId) -> bool:
        """True if ``a`` and ``b`` are online and on the same side of any partition."""
        node = self.nodes.get(b)
        if node is None or not node.online or not self.nodes[a].online:
            return False
        if self._groups is None:
            return True
        return any(a in group and b in group for group in self._groups)

    async def _deliver(
        self, source: PeerId, target: PeerId, protocol: str, payload: bytes
    ) -> bytes | None:
        """The response, or None if the request or its response was lost."""
        faults = self.faults
        if faults.delay_max > 0:
            await trio.sleep(self.rng.uniform(faults.delay_min, faults.delay_max))
        if not self.reachable(source, target) or self.rng.random() < faults.drop:
            return None
        node = self.nodes[target]
        response = await node._serve(source, protocol, payload)
        if faults.duplicate and self.rng.random() < faults.duplicate:
            await node._serve(source, protocol, payload)
        if not self.reachable(source, target) or self.rng.random() < faults.drop:
            return None
        return response


class MemoryTransport:
    """One node's end of a ``MemoryNetwork``; see ``conode.dht.transport.Transport``."""

    def __init__(self, network: MemoryNetwork, peer: PeerId) -> None:
        self.network = network
        self._peer = peer
        self._handlers: dict[str, Handler] = {}
        self._connected: set[PeerId] = set()
        self._limiter = PeerLimiter(cost_burst=math.inf)
        """Rates and concurrency as on libp2p; no cost limit: tests under trio's MockClock
        spend real CPU in no time (the cost limit is tested on libp2p)."""
        self._nursery: trio.Nursery | None = None
        self.online = False

    @property
    def peer_id(self) -> PeerId:
        return self._peer

    def listen_addrs(self) -> list[str]:
        return [f"{_ADDR_PREFIX}{self._peer}"]

    def set_handler(self, protocol: str, handler: Handler) -> None:
        self._handlers[protocol] = handler

    async def request(
        self, peer: PeerId, protocol: str, payload: bytes, *, timeout: float
    ) -> bytes:
        if len(payload) > MAX_MESSAGE:
            raise NetworkError(
                f"a request of {len(payload)} bytes is over the {MAX_MESSAGE}-byte limit"
            )
        with trio.move_on_after(timeout):
            response = await self.network._deliver(self._peer, peer, protocol, payload)
            if response is not None:
                self._connected.add(peer)
                return response
            await trio.sleep_forever()
        raise NetworkError(f"{peer} did not answer {protocol} within {timeout:g} s")

    async def _serve(self, source: PeerId, protocol: str, payload: bytes) -> bytes | None:
        """Run the handler in this node's own nursery (as a libp2p stream handler runs): stopping
        the node stops it, and an asker that gives up does not cancel it."""
        handler = self._handlers.get(protocol)
        nursery = self._nursery
        if handler is None or nursery is None or len(payload) > MAX_MESSAGE:
            return None
        if nursery.cancel_scope.cancel_called:
            return None  # stopping: it serves nothing new
        if not self._limiter.admit(source, trio.current_time(), costly=costly(protocol)):
            return None
        done = trio.Event()
        answer: list[bytes] = []

        async def serve() -> None:
            cost = 0.0
            try:
                self._connected.add(source)
                started = time.thread_time()
                response = await handler(source, payload)
                cost = request_cost(time.thread_time() - started, len(payload), len(response))
                if len(response) <= MAX_MESSAGE:
                    answer.append(response)
            except (RemoteProtocolError, StorageError):
                pass  # reset, as libp2p does: the asker hears nothing
            finally:
                self._limiter.release(source, cost)
                done.set()

        nursery.start_soon(serve)
        await done.wait()
        return answer[0] if answer else None

    async def connect(self, addr: str) -> PeerId:
        if not addr.startswith(_ADDR_PREFIX):
            raise NetworkError(f"{addr!r} is not an in-memory address")
        peer = PeerId(addr[len(_ADDR_PREFIX) :])
        if not self.network.reachable(self._peer, peer):
            raise NetworkError(f"cannot reach {peer}")
        self._connected.add(peer)
        self.network.nodes[peer]._connected.add(self._peer)
        return peer

    def connected_peers(self) -> list[PeerId]:
        return sorted(p for p in self._connected if self.network.reachable(self._peer, p))

    def network_peers(self) -> list[PeerId]:
        """Every connected peer: an in-memory network holds only conode nodes of one network."""
        return self.connected_peers()

    def peer_addrs(self, peer: PeerId) -> list[str]:
        return [f"{_ADDR_PREFIX}{peer}"] if peer in self.network.nodes else []

    async def run(self, *, task_status: TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        self.online = True
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            self.online = False
            self._connected.clear()
