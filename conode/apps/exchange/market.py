"""The exchange's pure views: listings with their updates applied, search filters, matches, notices.

Pure: every function reads records or listings and a time ``at`` (the
caller's clock, in microseconds) and returns values. The same records in any
order give the same listings:

- a listing is an offer or want with its author's updates applied along its
  line of revisions (each update follows the listing's latest revision;
  updates by anyone else, or off the line, change nothing);
- a closing update by the author closes the listing wherever it sits, so a
  renewal made beside a withdrawal (two updates after one revision, which the
  activity fold refuses) can never reopen it;
- a listing is **open** at ``at`` if it is not closed and ``at`` is before
  its expiry. Search and notices only ever show open listings.

Distances are great-circle (haversine) kilometres over the integer
micro-degree coordinates; floats are fine here, outside anything signed.
"""

from __future__ import annotations

import dataclasses
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from conode.apps.exchange.entries import (
    DAY_US,
    MICRO_DEGREES,
    OFFER,
    UPDATE,
    WANT,
    app,
    in_subtree,
)
from conode.apps.sdk import Read
from conode.chain import Record
from conode.hashes import ActionHash, AgentKey

__all__ = [
    "EARTH_RADIUS_KM",
    "REMINDER_US",
    "Found",
    "Listing",
    "Notice",
    "distance_km",
    "listings",
    "matches",
    "notices",
    "search",
    "terms",
]

EARTH_RADIUS_KM: Final = 6_371.0088
REMINDER_US: Final = 7 * DAY_US
"""An offer or want expiring within this long is listed with a reminder to renew it."""
KINDS: Final = {OFFER: "offer", WANT: "want"}
_WORD: Final = re.compile(r"\w+")
_STOPWORDS: Final = frozenset(
    {"all", "and", "any", "are", "but", "can", "for", "from", "has", "have", "into", "its",
     "not", "off", "our", "out", "per", "that", "the", "this", "with", "you", "your"}
)  # fmt: skip
_CACHE_SIZE: Final = 200_000
_reads: dict[ActionHash, Read | Listing | None] = {}
"""Records are immutable, so what one reads as (an update's ``Read``, an offer's or want's
``Listing`` before updates) is kept: search reads the same records again and again."""


def _read(record: Record) -> Read | Listing | None:
    try:
        return _reads[record.hash]
    except KeyError:
        pass
    read = app.read(record)
    value: Read | Listing | None = read
    if read is not None and read.entry_type in KINDS:
        value = _listing(read)
    if len(_reads) >= _CACHE_SIZE:
        _reads.clear()
    _reads[record.hash] = value
    return value


def terms(text: str) -> frozenset[str]:
    """The words of ``text`` that say something: case and accents folded, 3+ letters, no stopwords."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in folded if not unicodedata.combining(c))
    return frozenset(w for w in _WORD.findall(plain) if len(w) >= 3 and w not in _STOPWORDS)


def distance_km(a: tuple[int, int], b: tuple[int, int]) -> float:
    """The great-circle distance between two (lat, lon) points in micro-degrees, in km."""
    lat1, lon1, lat2, lon2 = (math.radians(v / MICRO_DEGREES) for v in (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True, slots=True)
class Listing:
    """An offer or want as it stands after its updates.

    ``hash`` names the original; ``head`` is its latest revision (what the
    next update follows); ``closed`` is ``withdrawn``/``met`` or None.
    """

    hash: ActionHash
    kind: str
    author: AgentKey
    timestamp: int
    title: str
    description: str
    category: str
    price: int
    unit: str
    quantity: int
    location: tuple[int, int] | None
    region: str | None
    radius_km: int | None
    expires: int
    closed: str | None
    head: ActionHash
    updated: int

    def is_open(self, at: int) -> bool:
        """Not closed, and not yet expired at ``at``."""
        return self.closed is None and at < self.expires

    def status(self, at: int) -> str:
        """``open``, ``expired``, ``withdrawn`` or ``met``."""
        if self.closed is not None:
            return self.closed
        return "open" if at < self.expires else "expired"

    def reminder(self, at: int) -> str | None:
        """For an item expiring within 7 days or expired (not closed): the one-step renewal."""
        if self.closed is not None or self.expires - at > REMINDER_US:
            return None
        command = f"conode {self.kind} renew {self.hash}"
        if at >= self.expires:
            return f"expired: renew it with `{command}`"
        days = max(1, -(-(self.expires - at) // DAY_US))  # whole days, rounded up
        return f"expires in {days} day{'s' if days != 1 else ''}: renew it with `{command}`"

    def to_value(self, at: int) -> dict[str, Any]:
        """A JSON-ready summary at time ``at`` (hashes as printable text)."""
        return {
            "hash": str(self.hash),
            "kind": self.kind,
            "author": str(self.author),
            "posted": self.timestamp,
            "title": self.title,
            "description": self.description,
            "category": self.category,
            "price": self.price,
            "unit": self.unit,
            "quantity": self.quantity,
            "location": None
            if self.location is None
            else {"lat": self.location[0], "lon": self.location[1]},
            "region": self.region,
            "radius_km": self.radius_km,
            "expires": self.expires,
            "status": self.status(at),
            "head": str(self.head),
            "updated": self.updated,
            "reminder": self.reminder(at),
        }


def _listing(read: Read) -> Listing:
    e = read.entry
    location = e["location"]
    return Listing(
        hash=read.hash,
        kind=KINDS[read.entry_type],
        author=read.author,
        timestamp=read.timestamp,
        title=e["title"],
        description=e["description"],
        category=e["category"],
        price=e["price"],
        unit=e["unit"],
        quantity=e["quantity"],
        location=None if location is None else (location["lat"], location["lon"]),
        region=e["region"],
        radius_km=e.get("radius_km"),
        expires=e["expires"],
        closed=None,
        head=read.hash,
        updated=read.timestamp,
    )


def _apply(listing: Listing, updates: Sequence[Read]) -> Listing:
    """Fold the author's updates (in chain order) along the line of revisions."""
    state: dict[str, Any] = {}
    head, updated = listing.head, listing.updated
    closed: str | None = None
    for u in updates:
        if u.author != listing.author:
            continue
        e = u.entry
        if e["close"] is not None and closed is None:
            closed = e["close"]  # closed wherever it sits: nothing reopens a withdrawn item
        if e["prev"] != head or (closed is not None and e["close"] is None):
            continue
        for name in ("expires", "quantity", "price"):
            if e[name] is not None:
                state[name] = e[name]
        head, updated = u.hash, u.timestamp
    return dataclasses.replace(listing, **state, head=head, updated=updated, closed=closed)


def listings(records: Iterable[Record]) -> dict[ActionHash, Listing]:
    """Every offer and want in ``records`` with its updates applied (other records are ignored)."""
    items: dict[ActionHash, Listing] = {}
    updates: dict[ActionHash, dict[ActionHash, Read]] = {}
    for record in records:
        read = _read(record)
        if isinstance(read, Listing):
            items[read.hash] = read
        elif read is not None and read.entry_type == UPDATE:
            updates.setdefault(read.entry["item"], {})[read.hash] = read
    for h, of_item in updates.items():
        base = items.get(h)
        if base is not None:
            in_order = sorted(of_item.values(), key=lambda u: (u.record.action.seq, u.hash.raw))
            items[h] = _apply(base, in_order)
    return items


# -- search ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Found:
    """A search result: the listing and its distance from the search point (km), if both are known."""

    listing: Listing
    distance_km: float | None

    def to_value(self, at: int) -> dict[str, Any]:
        value = self.listing.to_value(at)
        value["distance_km"] = None if self.distance_km is None else round(self.distance_km, 3)
        return value


def search(
    candidates: Iterable[Listing],
    *,
    at: int,
    kind: str | None = None,
    ranked: Sequence[ActionHash] | None = None,
    category: str | None = None,
    near: tuple[int, int] | None = None,
    within_km: float | None = None,
    region: str | None = None,
    limit: int = 50,
) -> list[Found]:
    """The open listings that pass every filter, by relevance, then distance, then newest.

    ``ranked``: the text search's hits, best first; only those are kept and
    their order is the relevance (None: no text, all equally relevant).
    ``category``: the listing is in that subtree. ``near``/``within_km``: a
    point (micro-degrees) and a radius; a listing without coordinates is left
    out when a radius is given and sorts last otherwise. ``region``: the
    listing's region, compared without case.
    """
    if within_km is not None and near is None:
        raise ValueError("a distance needs a point to measure from (near)")
    rank = None if ranked is None else {h: i for i, h in enumerate(ranked)}
    wanted_region = None if region is None else region.casefold()
    found: list[tuple[tuple[Any, ...], Found]] = []
    for listing in candidates:
        if not listing.is_open(at) or (kind is not None and listing.kind != kind):
            continue
        if rank is not None and listing.hash not in rank:
            continue
        if category is not None and not in_subtree(listing.category, category):
            continue
        if wanted_region is not None and (listing.region or "").casefold() != wanted_region:
            continue
        distance = None
        if near is not None and listing.location is not None:
            distance = distance_km(near, listing.location)
        if within_km is not None and (distance is None or distance > within_km):
            continue
        key = (
            0 if rank is None else rank[listing.hash],
            math.inf if distance is None else distance,
            -listing.timestamp,
            listing.hash.raw,
        )
        found.append((key, Found(listing, distance)))
    found.sort(key=lambda pair: pair[0])
    return [f for _, f in found[: max(0, limit)]]


# -- matches and notices ---------------------------------------------------------------------------------


def _text_terms(listing: Listing) -> frozenset[str]:
    return terms(f"{listing.title}\n{listing.description}")


def _matches(want: Listing, offer: Listing, want_terms: frozenset[str]) -> bool:
    if offer.kind != "offer" or not in_subtree(offer.category, want.category):
        return False
    if not want_terms & _text_terms(offer):
        return False
    if want.radius_km is not None:
        if want.location is None or offer.location is None:
            return False
        return distance_km(want.location, offer.location) <= want.radius_km
    return True


def matches(want: Listing, offers: Iterable[Listing]) -> list[Listing]:
    """The offers that meet a want: in its category's subtree, sharing a word with it, and
    within its radius if it has one (an offer without coordinates is then too far)."""
    want_terms = _text_terms(want)
    return [o for o in offers if _matches(want, o, want_terms)]


@dataclass(frozen=True, slots=True)
class Notice:
    """An open offer that matches an open want and was posted after it: tell the wanter."""

    want: Listing
    offer: Listing

    def to_value(self, at: int) -> dict[str, Any]:
        distance = None
        if self.want.location is not None and self.offer.location is not None:
            distance = round(distance_km(self.want.location, self.offer.location), 3)
        return {
            "want": str(self.want.hash),
            "want_title": self.want.title,
            "wanter": str(self.want.author),
            "offer": self.offer.to_value(at),
            "distance_km": distance,
        }


def notices(all_listings: Iterable[Listing], wanters: Iterable[AgentKey], at: int) -> list[Notice]:
    """For the open wants of ``wanters``: the open offers that match and are newer, newest first."""
    who = set(wanters)
    pool = list(all_listings)
    offers = [o for o in pool if o.kind == "offer" and o.is_open(at)]
    wants = [w for w in pool if w.kind == "want" and w.author in who and w.is_open(at)]
    out = [
        Notice(want, offer)
        for want in wants
        for offer in matches(want, offers)
        if offer.timestamp > want.timestamp and offer.author != want.author
    ]
    out.sort(key=lambda n: (-n.offer.timestamp, n.offer.hash.raw, -n.want.timestamp))
    return out
