"""The requests and replies of conode's peer protocols, each a small frozen dataclass.

Every message knows its wire form (a ``conode.dht.wire`` msgpack map, the
exact bytes that travelled before these types existed) and is checked when
it is decoded, at the seam: a malformed one is a ``RemoteProtocolError``
there, and nothing untyped reaches the node's services. A request names its
protocol (``protocol``) and decodes its own reply (``read_reply``), so
``PeerClient.ask(peer, request)`` returns the reply's type.

What a field means is the protocol's (``docs/protocol.md``); what may be
sent at most is here: ``MAX_CHAIN_BATCH`` records a reply, cut off past
``MAX_CHAIN_BYTES``, ``MAX_LINK_BASES`` bases a links request.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Protocol, TypeVar

from conode import encoding
from conode.chain import Record
from conode.chain.records import MAX_ENTRY_TYPE_LENGTH
from conode.crypto import SIG_RECEIPT, verify
from conode.dht import wire
from conode.dht.arcs import check_location
from conode.dht.ringview import LEGACY, Place
from conode.dht.wire import PeerId
from conode.errors import EncodingError, RemoteProtocolError
from conode.hashes import ActionHash, AgentKey, BundleHash, EntryHash, TypedHash
from conode.validation import countersign as cs

__all__ = [
    "LINKS_DIGEST_SIZE",
    "MAX_CHAIN_BATCH",
    "MAX_CHAIN_BYTES",
    "MAX_LINK_BASES",
    "BaseAsk",
    "BundleReply",
    "BundleRequest",
    "ChainRequest",
    "ChainsRequest",
    "Claim",
    "CountersignReply",
    "CountersignRequest",
    "Empty",
    "FetchRequest",
    "Heads",
    "HeadsReply",
    "HeadsRequest",
    "Hello",
    "HostReply",
    "HostRequest",
    "PlacesReply",
    "PlacesRequest",
    "LinksPageRequest",
    "LinksReply",
    "LinksRequest",
    "PublishReply",
    "PublishRequest",
    "Receipt",
    "ReconcileReply",
    "ReconcileRequest",
    "Records",
    "RecordsPage",
    "Request",
    "WarrantRequest",
    "WitnessReply",
    "WitnessRequest",
    "decode_links_request",
    "decode_record",
    "receipt_bytes",
]

MAX_CHAIN_BATCH: Final = 2_000
"""The most records one reply holds (a chain, chains, fetch or links reply)."""
MAX_CHAIN_BYTES: Final = 2 << 20
"""A chain(s) or links reply stops adding records once past this many bytes."""
MAX_LINK_BASES: Final = 64
"""The most bases one links request may name."""
LINKS_DIGEST_SIZE: Final = 32
"""The size of a links ``have`` digest (``conode.dht.links.links_digest``)."""
MAX_PLACES: Final = 32
"""The most places of other peers one hello passes on."""
SESSION_ID_SIZE: Final = 8
"""The size of a reconciliation session's id (the initiator's random choice)."""

Heads = dict[AgentKey, tuple[int, bytes]]
"""Chain heads by agent: (seq, the head's 32 raw hash bytes)."""

R_co = TypeVar("R_co", covariant=True)


class Request(Protocol[R_co]):
    """A request of one protocol, which reads its own reply."""

    @property
    def protocol(self) -> str:
        """The protocol's name (``conode.dht.wire``)."""

    def encode(self) -> bytes:
        """The request's wire bytes."""

    def read_reply(self, data: bytes) -> R_co:
        """The reply to this request, checked (``RemoteProtocolError`` if malformed)."""


def decode_record(blob: bytes) -> Record:
    """A record from a peer; ``RemoteProtocolError`` if its bytes are not one."""
    try:
        return Record.from_bytes(blob)
    except EncodingError as exc:
        raise RemoteProtocolError(f"a malformed record: {exc}") from exc


def _decode_records(blobs: Iterable[bytes]) -> list[Record]:
    return [decode_record(blob) for blob in blobs]


def _agent(raw: Any, what: str) -> AgentKey:
    try:
        return AgentKey.from_bytes(raw)
    except (EncodingError, TypeError) as exc:
        raise RemoteProtocolError(f"a bad {what}: {exc}") from exc


# -- records: fetch, chain, chains -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Records:
    """A reply of records (their portable bytes): to ``fetch`` and ``chain``."""

    records: tuple[bytes, ...]

    def encode(self) -> bytes:
        return wire.dumps({"records": list(self.records)})

    @classmethod
    def decode(cls, data: bytes) -> Records:
        return cls(tuple(wire.bytes_list(wire.loads(data, set()), "records")))

    def read(self) -> list[Record]:
        """The records, decoded (``RemoteProtocolError`` naming the first malformed one)."""
        return _decode_records(self.records)


@dataclass(frozen=True, slots=True)
class RecordsPage:
    """Records and whether more are held past them: a ``chains`` reply, a links reply's part."""

    records: tuple[bytes, ...]
    more: bool

    def to_wire(self) -> dict[str, Any]:
        return {"records": list(self.records), "more": self.more}

    @classmethod
    def from_wire(cls, message: dict[str, Any]) -> RecordsPage:
        return cls(tuple(wire.bytes_list(message, "records")), message.get("more") is True)

    def encode(self) -> bytes:
        return wire.dumps(self.to_wire())

    @classmethod
    def decode(cls, data: bytes) -> RecordsPage:
        return cls.from_wire(wire.loads(data, set()))

    def read(self) -> list[Record]:
        return _decode_records(self.records)


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """Records by action hash (at most ``MAX_CHAIN_BATCH`` are read; the rest are ignored)."""

    protocol: ClassVar[str] = wire.FETCH
    hashes: tuple[ActionHash, ...]

    def encode(self) -> bytes:
        return wire.dumps({"hashes": [h.to_bytes() for h in self.hashes]})

    @classmethod
    def decode(cls, data: bytes) -> FetchRequest:
        raw = wire.bytes_list(wire.loads(data, {"hashes"}), "hashes")[:MAX_CHAIN_BATCH]
        try:
            return cls(tuple(ActionHash.from_bytes(h) for h in raw))
        except EncodingError as exc:
            raise RemoteProtocolError(str(exc)) from exc

    def read_reply(self, data: bytes) -> Records:
        return Records.decode(data)


@dataclass(frozen=True, slots=True)
class ChainRequest:
    """One chain's records from seq ``start`` on, at most ``limit``."""

    protocol: ClassVar[str] = wire.CHAIN
    author: AgentKey
    start: int
    limit: int

    def encode(self) -> bytes:
        return wire.dumps({"author": self.author.to_bytes(), "from": self.start, "limit": self.limit})

    @classmethod
    def decode(cls, data: bytes) -> ChainRequest:
        message = wire.loads(data, {"author", "from", "limit"})
        author = _agent(message["author"], "chain request")
        start, limit = message["from"], message["limit"]
        if not isinstance(start, int) or not isinstance(limit, int) or start < 0 or limit < 1:
            raise RemoteProtocolError("a chain request takes a seq and a positive limit")
        return cls(author, start, limit)

    def read_reply(self, data: bytes) -> Records:
        return Records.decode(data)


@dataclass(frozen=True, slots=True)
class ChainsRequest:
    """Several chains, each from its seq, in one reply of at most ``limit`` records."""

    protocol: ClassVar[str] = wire.CHAINS
    chains: tuple[tuple[AgentKey, int], ...]
    limit: int

    def encode(self) -> bytes:
        wants = [[agent.to_bytes(), seq] for agent, seq in self.chains]
        return wire.dumps({"chains": wants, "limit": self.limit})

    @classmethod
    def decode(cls, data: bytes) -> ChainsRequest:
        message = wire.loads(data, {"chains", "limit"})
        wanted, limit = message["chains"], message["limit"]
        if not isinstance(wanted, list) or not isinstance(limit, int) or limit < 1:
            raise RemoteProtocolError("a chains request takes a list of chains and a positive limit")
        return cls(tuple(_chain_want(item) for item in wanted), limit)

    def read_reply(self, data: bytes) -> RecordsPage:
        return RecordsPage.decode(data)


def _chain_want(item: Any) -> tuple[AgentKey, int]:
    """One ``[author, from]`` pair of a chains request."""
    if not (isinstance(item, list) and len(item) == 2 and type(item[1]) is int and item[1] >= 0):
        raise RemoteProtocolError("a chains request names each chain as [author, seq]")
    return _agent(item[0], "chains request"), item[1]


# -- hello and hosting claims --------------------------------------------------------------------------


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


def _peers(items: Any) -> tuple[tuple[PeerId, tuple[str, ...]], ...]:
    """A hello's known peers: well-formed ``[peer, addrs]`` items (their text addresses)."""
    if not isinstance(items, list):
        return ()
    out = []
    for item in items:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            continue
        other, addrs = item
        good = tuple(a for a in addrs if isinstance(a, str)) if isinstance(addrs, list) else ()
        out.append((PeerId(other), good))
    return tuple(out)


def _place_wire(place: Place) -> list[Any]:
    return [place.loc, place.full]


def _read_place(item: Any) -> Place | None:
    """A place from the wire (``[loc or nil, full]``), or None if malformed."""
    if not (isinstance(item, list) and len(item) == 2 and type(item[1]) is bool):
        return None
    loc, full = item
    if loc is not None:
        try:
            check_location(loc)
        except ValueError:
            return None
    return Place(loc, full)


def _places(items: Any) -> tuple[tuple[PeerId, Place, int], ...]:
    """A hello's places of other peers: well-formed ``[peer, loc or nil, full, age µs]`` items."""
    if not isinstance(items, list):
        return ()
    out = []
    for item in items[:MAX_PLACES]:
        if not (isinstance(item, list) and len(item) == 4 and isinstance(item[0], str)):
            continue
        place = _read_place(item[1:3])
        age = item[3]
        if place is not None and type(age) is int and age >= 0:
            out.append((PeerId(item[0]), place, age))
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
    place: Place = LEGACY
    places: tuple[tuple[PeerId, Place, int], ...] = ()
    """Other peers' places this node knows, each with its age in µs."""
    now: int | None = None
    """The sender's clock (µs) when it sent the hello: how far apart the two clocks are."""

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
            message["places"] = [[p, *_place_wire(place), age] for p, place, age in self.places]
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
        place = LEGACY
        if "place" in message:
            place = _read_place(message["place"]) or Place(None)  # a garbled place: not placed
        return cls(
            node,
            _claims(message.get("agents") or []),
            _claims(message.get("hosts") or []),
            _peers(message.get("peers") or []),
            tuple(addrs) if good and isinstance(addrs, list) else None,
            place,
            _places(message.get("places") or []),
            now if type(now) is int and now >= 0 else None,
        )


@dataclass(frozen=True, slots=True)
class PlacesRequest:
    """Who holds location ``loc``? Asked of a node near it, which knows its neighbourhood."""

    protocol: ClassVar[str] = wire.PLACES
    loc: int

    def encode(self) -> bytes:
        return wire.dumps({"loc": self.loc})

    @classmethod
    def decode(cls, data: bytes) -> PlacesRequest:
        loc = wire.loads(data, {"loc"})["loc"]
        try:
            check_location(loc)
        except ValueError as exc:
            raise RemoteProtocolError(f"a bad places request: {exc}") from exc
        return cls(loc)

    def read_reply(self, data: bytes) -> PlacesReply:
        return PlacesReply.decode(data)


@dataclass(frozen=True, slots=True)
class PlacesReply:
    """Places the responder knows around the location asked about, with their ages."""

    places: tuple[tuple[PeerId, Place, int], ...]

    def encode(self) -> bytes:
        return wire.dumps({"places": [[p, *_place_wire(place), age] for p, place, age in self.places]})

    @classmethod
    def decode(cls, data: bytes) -> PlacesReply:
        return cls(_places(wire.loads(data, set()).get("places") or []))


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


# -- publishing and receipts ---------------------------------------------------------------------------


def receipt_bytes(record: ActionHash, valid: bool, at: int) -> bytes:
    """What an authority signs in a receipt."""
    return encoding.encode([record.to_bytes(), valid, at])


@dataclass(frozen=True, slots=True)
class Receipt:
    """An authority's signed statement that it judged a record (valid or not) at ``at``."""

    record: ActionHash
    authority: AgentKey
    valid: bool
    at: int
    signature: bytes

    def to_wire(self) -> list[Any]:
        return [self.record.to_bytes(), self.valid, self.at, self.signature, self.authority.to_bytes()]

    @classmethod
    def from_wire(cls, item: Any) -> Receipt | None:
        """A receipt from the wire if it is well formed and its signature verifies, else None."""
        if not (isinstance(item, list) and len(item) == 5):
            return None
        raw_record, valid, at, signature, raw_authority = item
        try:
            record = ActionHash.from_bytes(raw_record)
            authority = AgentKey.from_bytes(raw_authority)
        except (EncodingError, TypeError):
            return None
        if type(valid) is not bool or type(at) is not int or type(signature) is not bytes:
            return None
        if not verify(authority.raw, SIG_RECEIPT, receipt_bytes(record, valid, at), signature):
            return None
        return cls(record, authority, valid, at, signature)


@dataclass(frozen=True, slots=True)
class PublishRequest:
    """Records for an authority to judge and hold."""

    protocol: ClassVar[str] = wire.PUBLISH
    records: tuple[bytes, ...]
    claims: tuple[Claim, ...] = ()
    """The hosting claims of the records' authors, for their authorities to answer ``host``."""

    def encode(self) -> bytes:
        message: dict[str, Any] = {"records": list(self.records)}
        if self.claims:
            message["claims"] = [c.to_wire() for c in self.claims]
        return wire.dumps(message)

    @classmethod
    def decode(cls, data: bytes) -> PublishRequest:
        message = wire.loads(data, {"records"})
        return cls(tuple(wire.bytes_list(message, "records")), _claims(message.get("claims") or []))

    def read(self) -> list[Record]:
        return _decode_records(self.records)

    def read_reply(self, data: bytes) -> PublishReply:
        return PublishReply.decode(data)


@dataclass(frozen=True, slots=True)
class PublishReply:
    """The authority's receipts (those malformed or not signed by their authority dropped)."""

    receipts: tuple[Receipt, ...]

    def encode(self) -> bytes:
        return wire.dumps({"receipts": [r.to_wire() for r in self.receipts]})

    @classmethod
    def decode(cls, data: bytes) -> PublishReply:
        items = wire.loads(data, set()).get("receipts") or []
        if not isinstance(items, list):
            return cls(())
        return cls(tuple(r for r in map(Receipt.from_wire, items) if r is not None))


@dataclass(frozen=True, slots=True)
class WitnessRequest:
    """A payer's record for one of its activity authorities to take in and hold at its place."""

    protocol: ClassVar[str] = wire.WITNESS
    record: bytes

    def encode(self) -> bytes:
        return wire.dumps({"record": self.record})

    @classmethod
    def decode(cls, data: bytes) -> WitnessRequest:
        raw = wire.loads(data, {"record"})["record"]
        if type(raw) is not bytes:
            raise RemoteProtocolError("a witness request carries a record's bytes")
        return cls(raw)

    def read(self) -> Record:
        return decode_record(self.record)

    def read_reply(self, data: bytes) -> WitnessReply:
        return WitnessReply.decode(data)


@dataclass(frozen=True, slots=True)
class WitnessReply:
    """The authority holds the record at its place (``receipt``), holds another record of the
    author's there (``held``), or cannot tell yet (neither)."""

    receipt: Receipt | None = None
    held: bytes | None = None

    def encode(self) -> bytes:
        if self.receipt is not None:
            return wire.dumps({"receipt": self.receipt.to_wire()})
        return wire.dumps({} if self.held is None else {"held": self.held})

    @classmethod
    def decode(cls, data: bytes) -> WitnessReply:
        message = wire.loads(data, set())
        if "receipt" in message:
            receipt = Receipt.from_wire(message["receipt"])
            if receipt is None:
                raise RemoteProtocolError("a witness receipt that does not verify")
            return cls(receipt=receipt)
        held = message.get("held")
        if held is not None and type(held) is not bytes:
            raise RemoteProtocolError("a witness's held record is bytes")
        return cls(held=held)


# -- gossip and warrants -------------------------------------------------------------------------------


def _heads_wire(heads: Heads) -> list[list[Any]]:
    return [[agent.to_bytes(), seq, h] for agent, (seq, h) in heads.items()]


def _read_heads(message: dict[str, Any]) -> Heads:
    items = message.get("heads")
    if type(items) is not list:
        raise RemoteProtocolError("heads must be a list")
    heads = {}
    for item in items:
        if not (
            isinstance(item, list)
            and len(item) == 3
            and type(item[1]) is int
            and type(item[2]) is bytes
        ):
            raise RemoteProtocolError("a head is [agent, seq, hash]")
        heads[_agent(item[0], "head")] = (item[1], item[2])
    return heads


@dataclass(frozen=True, slots=True)
class HeadsRequest:
    """The asker's chain heads and the hashes of the warrants it holds; ``warrants_only``: the
    asker wants warrants only (its chains are reconciliation's), so no heads come back."""

    protocol: ClassVar[str] = wire.HEADS
    heads: Heads
    warrants: tuple[bytes, ...]
    warrants_only: bool = False

    def encode(self) -> bytes:
        message: dict[str, Any] = {"heads": _heads_wire(self.heads), "warrants": list(self.warrants)}
        if self.warrants_only:
            message["only"] = "warrants"
        return wire.dumps(message)

    @classmethod
    def decode(cls, data: bytes) -> HeadsRequest:
        message = wire.loads(data, {"heads", "warrants"})
        only = message.get("only") == "warrants"
        return cls(_read_heads(message), tuple(wire.bytes_list(message, "warrants")), only)

    def read_reply(self, data: bytes) -> HeadsReply:
        return HeadsReply.decode(data)


@dataclass(frozen=True, slots=True)
class HeadsReply:
    """The answerer's chain heads and the warrants (their bytes) the asker did not name."""

    heads: Heads
    warrants: tuple[bytes, ...]

    def encode(self) -> bytes:
        return wire.dumps({"heads": _heads_wire(self.heads), "warrants": list(self.warrants)})

    @classmethod
    def decode(cls, data: bytes) -> HeadsReply:
        message = wire.loads(data, set())
        return cls(_read_heads(message), tuple(wire.bytes_list(message, "warrants")))


@dataclass(frozen=True, slots=True)
class Empty:
    """A reply that says only that the request was taken."""

    def encode(self) -> bytes:
        return wire.dumps({})

    @classmethod
    def decode(cls, data: bytes) -> Empty:
        wire.loads(data, set())
        return cls()


@dataclass(frozen=True, slots=True)
class WarrantRequest:
    """A warrant's bytes, passed on."""

    protocol: ClassVar[str] = wire.WARRANT
    warrant: bytes

    def encode(self) -> bytes:
        return wire.dumps({"warrant": self.warrant})

    @classmethod
    def decode(cls, data: bytes) -> WarrantRequest:
        raw = wire.loads(data, {"warrant"})["warrant"]
        if type(raw) is not bytes:
            raise RemoteProtocolError("a warrant is bytes")
        return cls(raw)

    def read_reply(self, data: bytes) -> Empty:
        return Empty.decode(data)


# -- countersigning ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CountersignRequest:
    """A countersigning session message from agent ``sender`` to agent ``to``."""

    protocol: ClassVar[str] = wire.COUNTERSIGN
    sender: AgentKey
    to: AgentKey
    message: cs.Message

    def encode(self) -> bytes:
        return wire.dumps(
            {
                "from": self.sender.to_bytes(),
                "to": self.to.to_bytes(),
                "msg": cs.encode_message(self.message),
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> CountersignRequest:
        message = wire.loads(data, {"from", "to", "msg"})
        try:
            sender = AgentKey.from_bytes(message["from"])
            to = AgentKey.from_bytes(message["to"])
            inner = cs.decode_message(message["msg"])
        except (EncodingError, TypeError) as exc:
            raise RemoteProtocolError(f"a bad countersigning message: {exc}") from exc
        return cls(sender, to, inner)

    def read_reply(self, data: bytes) -> CountersignReply:
        return CountersignReply.decode(data)


@dataclass(frozen=True, slots=True)
class CountersignReply:
    """The session's answer, if it has one."""

    message: cs.Message | None

    def encode(self) -> bytes:
        raw = None if self.message is None else cs.encode_message(self.message)
        return wire.dumps({"msg": raw})

    @classmethod
    def decode(cls, data: bytes) -> CountersignReply:
        raw = wire.loads(data, set()).get("msg")
        try:
            return cls(None if raw is None else cs.decode_message(raw))
        except (EncodingError, TypeError) as exc:
            raise RemoteProtocolError(f"a bad countersigning message: {exc}") from exc


# -- app bundles ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BundleRequest:
    """An app bundle by hash."""

    protocol: ClassVar[str] = wire.BUNDLE
    bundle: BundleHash

    def encode(self) -> bytes:
        return wire.dumps({"hash": self.bundle.to_bytes()})

    @classmethod
    def decode(cls, data: bytes) -> BundleRequest:
        message = wire.loads(data, {"hash"})
        try:
            return cls(BundleHash.from_bytes(message["hash"]))
        except (EncodingError, TypeError) as exc:
            raise RemoteProtocolError(f"a bad bundle request: {exc}") from exc

    def read_reply(self, data: bytes) -> BundleReply:
        return BundleReply.decode(data)


@dataclass(frozen=True, slots=True)
class BundleReply:
    """The bundle's bytes, or None if the answerer does not keep it (the asker checks the hash)."""

    data: bytes | None

    def encode(self) -> bytes:
        return wire.dumps({"data": self.data})

    @classmethod
    def decode(cls, data: bytes) -> BundleReply:
        raw = wire.loads(data, set()).get("data")
        if raw is not None and type(raw) is not bytes:
            raise RemoteProtocolError("a bundle reply's data is bytes or nil")
        return cls(raw)


# -- links ---------------------------------------------------------------------------------------------

_LINK_BASES: Final = (EntryHash, ActionHash, AgentKey)
"""What a link's base may name: an entry (an anchor), a record, an agent."""


def _read_base(raw: Any) -> TypedHash:
    """A link base from the wire (33 typed-hash bytes); ``RemoteProtocolError`` otherwise."""
    for kind in _LINK_BASES:
        try:
            return kind.from_bytes(raw)
        except EncodingError:
            continue
    raise RemoteProtocolError("a link base is an entry, action or agent hash (33 bytes)")


def _read_have(raw: Any) -> bytes | None:
    """A links request's ``have``: null or a 32-byte digest; ``RemoteProtocolError`` otherwise."""
    if raw is not None and (type(raw) is not bytes or len(raw) != LINKS_DIGEST_SIZE):
        raise RemoteProtocolError("a links request's have is a 32-byte digest or nil")
    return raw


def _read_link_type(raw: Any) -> str | None:
    if raw is not None and (type(raw) is not str or not 0 < len(raw) <= MAX_ENTRY_TYPE_LENGTH):
        raise RemoteProtocolError("a links request's type is an entry type or nil")
    return raw


@dataclass(frozen=True, slots=True)
class BaseAsk:
    """One base of a links request, with the digest of the links the asker holds there."""

    base: TypedHash
    have: bytes | None


@dataclass(frozen=True, slots=True)
class LinksRequest:
    """The links at each of several bases (of one type, or any), from the start; none at a base
    where ``have`` is the digest of what the answerer holds there."""

    protocol: ClassVar[str] = wire.LINKS
    bases: tuple[BaseAsk, ...]
    link_type: str | None
    limit: int

    def encode(self) -> bytes:
        bases = [[ask.base.to_bytes(), ask.have] for ask in self.bases]
        return wire.dumps({"bases": bases, "type": self.link_type, "limit": self.limit})

    def read_reply(self, data: bytes) -> LinksReply:
        """The reply: one part per base, each checked by ``conode.dht.links.check_links``."""
        return LinksReply.decode(data, len(self.bases))


@dataclass(frozen=True, slots=True)
class LinksPageRequest:
    """The links at one base (of one type, or any) after the link ``after`` (None: the start)."""

    protocol: ClassVar[str] = wire.LINKS
    base: TypedHash
    link_type: str | None
    after: ActionHash | None
    limit: int
    have: bytes | None = None

    def encode(self) -> bytes:
        message: dict[str, Any] = {
            "base": self.base.to_bytes(),
            "type": self.link_type,
            "after": None if self.after is None else self.after.to_bytes(),
            "limit": self.limit,
        }
        if self.have is not None:
            message["have"] = self.have
        return wire.dumps(message)

    def read_reply(self, data: bytes) -> RecordsPage:
        return RecordsPage.decode(data)


def decode_links_request(data: bytes) -> LinksRequest | LinksPageRequest:
    """A links request of either form, checked."""
    message = wire.loads(data, {"limit"})
    link_type, limit = _read_link_type(message.get("type")), message["limit"]
    if type(limit) is not int or limit < 1:
        raise RemoteProtocolError("a links request takes a positive limit")
    if "bases" in message:
        return LinksRequest(_read_bases(message["bases"]), link_type, limit)
    if "base" not in message:
        raise RemoteProtocolError("a links request names its base or bases")
    base, after = _read_base(message["base"]), message.get("after")
    try:
        start = None if after is None else ActionHash.from_bytes(after)
    except (EncodingError, TypeError) as exc:
        raise RemoteProtocolError(f"a bad links request: {exc}") from exc
    return LinksPageRequest(base, link_type, start, limit, _read_have(message.get("have")))


def _read_bases(raw: Any) -> tuple[BaseAsk, ...]:
    """A links request's ``bases``: 1 to 64 ``[base, have]`` pairs."""
    if type(raw) is not list or not 0 < len(raw) <= MAX_LINK_BASES:
        raise RemoteProtocolError(f"a links request names 1 to {MAX_LINK_BASES} bases")
    pairs = []
    for item in raw:
        if type(item) is not list or len(item) != 2:
            raise RemoteProtocolError("each base of a links request is [base, have]")
        pairs.append(BaseAsk(_read_base(item[0]), _read_have(item[1])))
    return tuple(pairs)


@dataclass(frozen=True, slots=True)
class LinksReply:
    """A reply to a ``LinksRequest``: one part per base, in the order asked."""

    parts: tuple[RecordsPage, ...]

    def encode(self) -> bytes:
        return wire.dumps({"indexes": [part.to_wire() for part in self.parts]})

    @classmethod
    def decode(cls, data: bytes, bases: int) -> LinksReply:
        parts = wire.loads(data, set()).get("indexes")
        if type(parts) is not list or len(parts) != bases:
            raise RemoteProtocolError(f"a links reply has one part for each of the {bases} bases")
        read = []
        for part in parts:
            if type(part) is not dict:
                raise RemoteProtocolError("a part of a links reply is a map")
            read.append(RecordsPage.from_wire(part))
        return cls(tuple(read))


# -- reconciliation --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReconcileRequest:
    """One message of a reconciliation session (``conode.dht.reconcile``) from its initiator.

    ``session`` is the initiator's random id; ``globals`` says the session is over the
    data every node holds (the governance log) rather than over the two arcs' overlap.
    """

    protocol: ClassVar[str] = wire.RECONCILE
    session: bytes
    message: bytes
    globals: bool = False

    def encode(self) -> bytes:
        data: dict[str, Any] = {"session": self.session, "msg": self.message}
        if self.globals:
            data["set"] = "global"
        return wire.dumps(data)

    @classmethod
    def decode(cls, data: bytes) -> ReconcileRequest:
        message = wire.loads(data, {"session", "msg"})
        session, body, which = message["session"], message["msg"], message.get("set")
        if type(session) is not bytes or len(session) != SESSION_ID_SIZE:
            raise RemoteProtocolError(f"a reconciliation session id is {SESSION_ID_SIZE} bytes")
        if type(body) is not bytes:
            raise RemoteProtocolError("a reconciliation message is bytes")
        if which not in (None, "global"):
            raise RemoteProtocolError("a reconciliation set is 'global' or none")
        return cls(session, body, which == "global")

    def read_reply(self, data: bytes) -> ReconcileReply:
        return ReconcileReply.decode(data)


@dataclass(frozen=True, slots=True)
class ReconcileReply:
    """The responder's next message, or None when it is done."""

    message: bytes | None

    def encode(self) -> bytes:
        return wire.dumps({"msg": self.message})

    @classmethod
    def decode(cls, data: bytes) -> ReconcileReply:
        body = wire.loads(data, {"msg"})["msg"]
        if body is not None and type(body) is not bytes:
            raise RemoteProtocolError("a reconciliation reply is bytes or nil")
        return cls(body)
