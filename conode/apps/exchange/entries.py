"""The exchange's entry types and their rules: offers, wants, their updates, and category links.

- ``exchange/offer``: what a co-op offers (co-ops only): title, description,
  category, price per unit (minor units), unit, quantity per month, locality
  (micro-degree coordinates and/or a region), expiry.
- ``exchange/want``: what a co-op or member is looking for, the same shape,
  plus an optional radius around its location: the Wanted section, the
  record of unmet needs.
- ``exchange/update``: a change to one's own offer or want: renew (a new
  expiry), a new quantity or price, or close it (``withdrawn``; a want may
  also be ``met``). Updates form a line of revisions: each names the item and
  the revision it follows (``prev``: the item itself or its latest update),
  and nothing may follow a closing update. Two updates following the same
  revision are an activity offence (``EntryType.unique`` keyed by ``prev``),
  so the line stays a line.
- link ``exchange/category``: indexes an offer or want under its category
  (base ``category_anchor(path)``) so peers find items by category through
  the DHT.
- ``exchange/grant`` and ``exchange/share``: credit granted to a co-op for
  what it offers (one line per co-op), and the Foundation's share of it
  (rules in ``grants``).

**Categories** come from the rules in force at the record's time: the
charter's amendable ``app_config["exchange"]`` (see ``ExchangeConfig``).
Without a ``categories`` list, any well-formed category is allowed; with one,
an item's category must be a node of that tree (listed, or the parent of a
listed one).

Stable rule names (the ``rule`` of an ``Invalid``): ``schema``, ``kind``
(SDK); ``role``, ``provenance``, ``revoked`` (who may post); ``category``
(not in the tree in force); ``config`` (the configuration in force is
malformed: nothing can be posted until it is amended); ``expiry`` (not after
the record, or further ahead than the maximum); ``locality`` (a radius
without a location); ``reference`` (an update or link names no offer or
want); ``author`` (an update or link by someone other than the item's
author); ``revision`` (``prev`` is not the item nor one of its updates, or is
later); ``closed`` (after a withdrawal or close); ``update`` (changes
nothing, or a close that does not fit the item); ``anchor`` (a link's base is
not its tag's anchor); ``duplicate`` (a second update following one revision:
an activity rule: the entry carries the key as ``once``, and the fold refuses a second use).

Money is integer minor units, coordinates integer micro-degrees, times
integer microseconds: no floats in anything signed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from conode.apps.exchange.config import (
    APP_ID,
    CATEGORY,
    CATEGORY_LINK,
    CATEGORY_PATTERN,
    DAY_US,
    DEFAULT_MAX_EXPIRY_DAYS,
    GRANT,
    LISTINGS,
    OFFER,
    SHARE,
    UPDATE,
    VERSION,
    WANT,
    ExchangeConfig,
    config_in_force,
    in_subtree,
    read_config,
)
from conode.apps.exchange.grants import (
    GRANT_FIELDS,
    SHARE_FIELDS,
    grant_key,
    share_key,
    validate_grant,
    validate_share,
)
from conode.apps.sdk import (
    App,
    Context,
    EntryType,
    Fetched,
    Hash,
    Int,
    LinkType,
    Map,
    OneOf,
    Optional,
    Role,
    Text,
    anchor,
)
from conode.hashes import ActionHash, EntryHash
from conode.validation.credit import Party
from conode.validation.entries import MAX_AMOUNT
from conode.validation.schema import INT63
from conode.validation.verdict import VALID, Invalid, Verdict

__all__ = [
    "APP_ID",
    "CATEGORY_LINK",
    "CATEGORY_PATTERN",
    "CLOSE_REASONS",
    "DAY_US",
    "DEFAULT_MAX_EXPIRY_DAYS",
    "GRANT",
    "LISTINGS",
    "MAX_QUANTITY",
    "MICRO_DEGREES",
    "OFFER",
    "SHARE",
    "UPDATE",
    "VERSION",
    "WANT",
    "ExchangeConfig",
    "app",
    "category_anchor",
    "in_subtree",
    "read_config",
]

MAX_QUANTITY: Final = 10**9
MICRO_DEGREES: Final = 1_000_000
"""Coordinates are integer micro-degrees (about 0.1 m): 51.5074 N is 51_507_400."""
CLOSE_REASONS: Final = {OFFER: ("withdrawn",), WANT: ("withdrawn", "met")}
"""How each kind of item may be closed: an offer is withdrawn; a want is withdrawn or met."""


def category_anchor(category: str) -> EntryHash:
    """The base of the ``exchange/category`` links of one category: its index in the DHT."""
    return anchor(APP_ID, f"category:{category}")


# -- rules ---------------------------------------------------------------------------------------------


def _expiry(ctx: Context, expires: int, config: ExchangeConfig) -> Verdict:
    if expires <= ctx.timestamp:
        return Invalid("expiry", "expires must be after the record's time")
    if expires - ctx.timestamp > config.max_expiry_us:
        return Invalid("expiry", f"expires is more than {config.max_expiry_days} days ahead")
    return VALID


def _listing(ctx: Context) -> Verdict:
    """What offers and wants share: a category in the tree in force, a bounded future expiry."""
    config = config_in_force(ctx)
    if isinstance(config, Invalid):
        return config
    category = ctx.entry["category"]
    if not config.allows(category):
        return Invalid("category", f"{category!r} is not in the exchange's category tree")
    return _expiry(ctx, ctx.entry["expires"], config)


def validate_offer(ctx: Context) -> Verdict:
    """Only co-ops offer (what they offer is co-operatively produced)."""
    role = ctx.require_role(Role.COOP)
    if not role:
        return role
    return _listing(ctx)


def validate_want(ctx: Context) -> Verdict:
    """Co-ops and members say what they are looking for; a radius needs a centre."""
    role = ctx.require_role(Role.COOP, Role.MEMBER)
    if not role:
        return role
    if ctx.entry["radius_km"] is not None and ctx.entry["location"] is None:
        return Invalid("locality", "a radius needs a location to be around")
    return _listing(ctx)


def validate_update(ctx: Context) -> Verdict:
    """A change to one's own open offer or want, following its latest revision."""
    entry = ctx.entry
    item = ctx.must_get_entry(entry["item"], LISTINGS, what="item")
    if not isinstance(item, Fetched):
        return item
    if item.author != ctx.author:
        return Invalid("author", "only the author of an offer or want may update it")
    if entry["prev"] != item.hash:
        prev = ctx.must_get_entry(entry["prev"], (UPDATE,), rule="revision", what="prev")
        if not isinstance(prev, Fetched):
            return prev
        if prev.entry["item"] != item.hash:
            return Invalid("revision", "prev is an update of another item")
        if prev.record.action.timestamp > ctx.timestamp:
            return Invalid("revision", "prev is dated after this update")
        if prev.entry["close"] is not None:
            kind = item.entry_type.partition("/")[2]
            return Invalid("closed", f"the {kind} was {prev.entry['close']}: nothing follows that")
    close = entry["close"]
    changes = [entry[f] for f in ("expires", "quantity", "price")]
    if close is None and all(c is None for c in changes):
        return Invalid("update", "an update renews, changes or closes: this one changes nothing")
    if close is not None and close not in CLOSE_REASONS[item.entry_type]:
        kind = item.entry_type.partition("/")[2]
        return Invalid("update", f"an {kind} cannot be closed as {close!r}")
    if close is None or any(c is not None for c in changes):
        # anything but a bare close needs the author to be a valid party still
        # (a revoked co-op may withdraw, not renew)
        party = ctx.party()
        if not isinstance(party, Party):
            return party
    if entry["expires"] is not None:
        config = config_in_force(ctx)
        if isinstance(config, Invalid):
            return config
        return _expiry(ctx, entry["expires"], config)
    return VALID


def validate_category_link(ctx: Context) -> Verdict:
    """A category link indexes the author's own offer or want under its own category."""
    tag = ctx.entry["tag"]
    if ctx.entry["base"] != category_anchor(tag):
        return Invalid("anchor", f"base is not the anchor of category {tag!r}")
    item = ctx.must_get_entry(ctx.entry["target"], LISTINGS, what="target")
    if not isinstance(item, Fetched):
        return item
    if item.author != ctx.author:
        return Invalid("author", "only an item's author indexes it")
    if item.entry["category"] != tag:
        return Invalid("category", f"the target's category is not {tag!r}")
    party = ctx.party()
    return party if not isinstance(party, Party) else VALID


def _prev_key(entry: Mapping[str, Any]) -> bytes:
    prev: ActionHash = entry["prev"]
    return prev.to_bytes()


# -- the app -------------------------------------------------------------------------------------------

_CATEGORY: Final = CATEGORY
_LOCATION: Final = Optional(
    Map(
        {
            "lat": Int(-90 * MICRO_DEGREES, 90 * MICRO_DEGREES),
            "lon": Int(-180 * MICRO_DEGREES, 180 * MICRO_DEGREES),
        }
    )
)
_LISTING: Final = {
    "title": Text(200, min_len=1),
    "description": Text(4_000),
    "category": _CATEGORY,
    "price": Int(0, MAX_AMOUNT),
    "unit": Text(40, min_len=1),
    "quantity": Int(1, MAX_QUANTITY),
    "location": _LOCATION,
    "region": Optional(Text(100, min_len=1)),
    "expires": Int(0, INT63),
}
_SEARCHABLE: Final = ("title", "description", "region")

app: Final = App(
    APP_ID,
    VERSION,
    entry_types=[
        EntryType(
            "offer",
            _LISTING,
            validate_offer,
            doc="What a co-op offers: price per unit (minor units), quantity per month, locality.",
            searchable=_SEARCHABLE,
        ),
        EntryType(
            "want",
            {**_LISTING, "radius_km": Optional(Int(1, 20_000))},
            validate_want,
            doc="What a co-op or member is looking for: the Wanted section of unmet needs.",
            searchable=_SEARCHABLE,
        ),
        EntryType(
            "update",
            {
                "item": Hash(ActionHash),
                "prev": Hash(ActionHash),
                "expires": Optional(Int(0, INT63)),
                "quantity": Optional(Int(1, MAX_QUANTITY)),
                "price": Optional(Int(0, MAX_AMOUNT)),
                "close": Optional(OneOf("withdrawn", "met")),
            },
            validate_update,
            unique=_prev_key,
            doc="Renew, change or close one's own offer or want (after its latest revision).",
        ),
        EntryType(
            "grant",
            GRANT_FIELDS,
            validate_grant,
            unique=grant_key,
            moves_credit=True,
            duty=True,
            doc="Credit granted to a co-op for what it offers (its one line: grown by offers above "
            "the high-water mark, re-estimated monthly, owed before it pays in a new month).",
        ),
        EntryType(
            "share",
            SHARE_FIELDS,
            validate_share,
            unique=share_key,
            moves_credit=True,
            doc="The Foundation collects its share of one grant.",
        ),
    ],
    link_types=[
        LinkType(
            "category",
            tag=_CATEGORY,
            validate=validate_category_link,
            doc="Indexes an offer or want under its category (base: category_anchor).",
        )
    ],
    doc="Offers and wants between co-ops and members: search, categories and match notices.",
)
