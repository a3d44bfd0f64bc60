"""Places on the ring: where a peer stands (in ``hello``), and ``places`` (who holds a location).

Part of ``conode.dht.messages`` (its docstring says what a message is); pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Final

from conode.dht import wire
from conode.dht.arcs import check_location
from conode.dht.ringview import Place
from conode.dht.wire import PeerId
from conode.errors import RemoteProtocolError

MAX_PLACES: Final = 32
"""The most places of other peers one hello passes on."""


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


def _places_wire(places: tuple[tuple[PeerId, Place, int], ...]) -> list[list[Any]]:
    return [[p, *_place_wire(place), age] for p, place, age in places]


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
        return wire.dumps({"places": _places_wire(self.places)})

    @classmethod
    def decode(cls, data: bytes) -> PlacesReply:
        return cls(_places(wire.loads(data, set()).get("places") or []))
