"""``hello`` and the hosting claims it carries, and ``host`` (who hosts an agent).

Part of ``conode.dht.messages`` (its docstring says what a message is); pure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from conode import encoding
from conode.dht import wire
from conode.dht.messages.common import (
    _agent,
)
from conode.dht.messages.ring import _place_wire, _places, _places_wire, _read_place
from conode.dht.ringview import LEGACY, Place
from conode.dht.wire import PeerId
from conode.errors import EncodingError, RemoteProtocolError
from conode.hashes import AgentKey


@dataclass(frozen=True, slots=True)
class Claim:
    """An agent's signed statement that ``peer`` hosts it, from ``at`` on (checked by the node)."""

    agent: AgentKey
    peer: PeerId
    at: int
    signature: bytes

    def signed_bytes(self) -> bytes:
        """What the agent signs."""
        return encoding.encode(["conode-host", self.agent.to_bytes(), self.peer, self.at])

    def to_wire(self) -> list[Any]:
        return [self.agent.to_bytes(), self.peer, self.at, self.signature]

    @classmethod
    def from_wire(cls, item: Any) -> Claim | None:
        """A claim from the wire, or None if it is malformed (a hello skips it)."""
        if not (isinstance(item, list) and len(item) == 4):
            return None
        raw, peer, at, signature = item
        if not (isinstance(peer, str) and type(at) is int and type(signature) is bytes):
            return None
        try:
            return cls(AgentKey.from_bytes(raw), PeerId(peer), at, signature)
        except (EncodingError, TypeError):
            return None


def _claims(items: Any) -> tuple[Claim, ...]:
    if not isinstance(items, list):
        return ()
    return tuple(c for c in map(Claim.from_wire, items[: wire.MAX_ITEMS]) if c is not None)


CLAIMS_DIGEST_SIZE: Final = 8
"""Bytes of a ``claims_digest``: a mismatch costs one more exchange of claims, nothing else."""


def claims_digest(claims: Iterable[Claim]) -> bytes:
    """What a hello's ``seen`` says of a set of hosting claims: a short hash of each claim's
    agent and time, in agent order (the same claims hash alike whoever holds them)."""
    pairs = sorted((c.agent.raw, c.at) for c in claims)
    return hashlib.blake2b(encoding.encode([[a, at] for a, at in pairs]), digest_size=CLAIMS_DIGEST_SIZE).digest()


MAX_HELLO_PEERS: Final = 64
"""Most peers read from a hello (a node lists at most 32: ``conode.node.peers.HELLO_PEERS``)."""


def _peers(items: Any) -> tuple[tuple[PeerId, tuple[str, ...]], ...]:
    """A hello's known peers: the well-formed ``[peer, addrs]`` items among its first
    ``MAX_HELLO_PEERS`` (their text addresses)."""
    if not isinstance(items, list):
        return ()
    out = []
    for item in items[:MAX_HELLO_PEERS]:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            continue
        other, addrs = item
        good = tuple(a for a in addrs if isinstance(a, str)) if isinstance(addrs, list) else ()
        out.append((PeerId(other), good))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Hello:
    """Who a node is and hosts, the hosts it knows (by their agents' claims), its peers, its
    addresses, where it stands on the ring and where some others do; a hello and its reply
    alike. Malformed claims, peers and places are skipped; ``addrs`` is None unless given as
    a list of text; ``place`` is ``LEGACY`` when the sender said none (an earlier version)."""

    protocol: ClassVar[str] = wire.HELLO
    node: AgentKey
    agents: tuple[Claim, ...]
    hosts: tuple[Claim, ...]
    peers: tuple[tuple[PeerId, tuple[str, ...]], ...]
    addrs: tuple[str, ...] | None
    now: int | None = None
    """The sender's clock (µs) when it sent the hello: how far apart the two clocks are."""
    place: Place = LEGACY
    places: tuple[tuple[PeerId, Place, int], ...] = ()
    """Other peers' places this node knows, each with its age in µs."""
    seen: bytes | None = None
    """A digest of the receiver's own agents' claims as the sender holds them
    (``claims_digest``): a receiver whose claims hash alike leaves them out of what it sends
    the sender next. None: an earlier version, which holds nothing it was not sent."""

    def encode(self) -> bytes:
        message: dict[str, Any] = {
            "node": self.node.to_bytes(),
            "agents": [c.to_wire() for c in self.agents],
            "hosts": [c.to_wire() for c in self.hosts],
            "peers": [[p, list(addrs)] for p, addrs in self.peers],
            "addrs": [] if self.addrs is None else list(self.addrs),
        }
        if self.now is not None:
            message["now"] = self.now
        if not self.place.legacy:
            message["place"] = _place_wire(self.place)
            message["places"] = _places_wire(self.places)
        if self.seen is not None:
            message["seen"] = self.seen
        return wire.dumps(message)

    @classmethod
    def decode(cls, data: bytes) -> Hello:
        """A hello request (it names the node, its agents and its peers)."""
        return cls._from(wire.loads(data, {"node", "agents", "peers"}))

    def read_reply(self, data: bytes) -> Hello:
        """A hello reply (only the node's key is required)."""
        return Hello._from(wire.loads(data, set()))

    @classmethod
    def _from(cls, message: dict[str, Any]) -> Hello:
        if "node" not in message:
            raise RemoteProtocolError("a bad hello: 'node'")
        node = _agent(message["node"], "hello")
        addrs = message.get("addrs")
        good = isinstance(addrs, list) and all(isinstance(a, str) for a in addrs)
        now = message.get("now")
        seen = message.get("seen")
        place = LEGACY
        if "place" in message:
            place = _read_place(message["place"]) or Place(None)  # a garbled place: not placed
        return cls(
            node,
            _claims(message.get("agents") or []),
            _claims(message.get("hosts") or []),
            _peers(message.get("peers") or []),
            tuple(addrs) if good and isinstance(addrs, list) else None,
            now if type(now) is int and now >= 0 else None,
            place,
            _places(message.get("places") or []),
            seen if type(seen) is bytes and len(seen) == CLAIMS_DIGEST_SIZE else None,
        )


@dataclass(frozen=True, slots=True)
class HostRequest:
    """Who hosts ``agent``? Asked of the agent's authorities, which keep its hosting claims."""

    protocol: ClassVar[str] = wire.HOST
    agent: AgentKey

    def encode(self) -> bytes:
        return wire.dumps({"agent": self.agent.to_bytes()})

    @classmethod
    def decode(cls, data: bytes) -> HostRequest:
        return cls(_agent(wire.loads(data, {"agent"})["agent"], "host request"))

    def read_reply(self, data: bytes) -> HostReply:
        return HostReply.decode(data)


@dataclass(frozen=True, slots=True)
class HostReply:
    """The newest hosting claim of the agent asked about that the peer knows, or None."""

    claim: Claim | None

    def encode(self) -> bytes:
        return wire.dumps({"claim": None if self.claim is None else self.claim.to_wire()})

    @classmethod
    def decode(cls, data: bytes) -> HostReply:
        raw = wire.loads(data, set()).get("claim")
        return cls(None if raw is None else Claim.from_wire(raw))
