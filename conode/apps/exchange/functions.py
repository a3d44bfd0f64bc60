"""The exchange's functions, exposed by the node as ``conode call exchange FN`` (and ``conode offer|want``).

Thin: each turns its parameters into values, asks the pure views
(``market``) or commits one entry (and its category link), and returns
JSON-able values (hashes as text). Parameters may be typed values or the
text a command line passes: amounts and quantities as integers (minor units)
or their digits, a location as ``"51.5074,-0.1278"`` (decimal degrees) or
``{"lat": ..., "lon": ...}`` in micro-degrees.

``agent``: who posts (a hosted agent's key); when it is left out the node's
only hosted agent posts. Renewing, changing and closing act for the item's
author, who must be hosted here. Posting or enlarging an offer also grants
its co-op credit when the rules allow it (``granting``).

Notices are pushed: the node calls the exchange's watchers (``notice_listing``,
``notice_reopened``) with each offer, want and update it stores, and they keep
each match in the wanter's inbox (the app's state, ``NOTICE_PREFIX``), once;
``inbox`` lists it, ``notices`` computes the same rule when asked.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from conode.apps.exchange import market
from conode.apps.exchange.entries import (
    APP_ID,
    CATEGORY_LINK,
    DAY_US,
    MICRO_DEGREES,
    OFFER,
    UPDATE,
    WANT,
    app,
    category_anchor,
    in_subtree,
    read_config,
)
from conode.apps.exchange.granting import grant_for
from conode.apps.exchange.market import Found, Listing, listings
from conode.apps.sdk import AppAPI
from conode.chain import Record
from conode.errors import ConodeError, EncodingError
from conode.hashes import ActionHash, AgentKey
from conode.numerals import parse_decimal, parse_whole

__all__ = [
    "DEFAULT_DAYS",
    "inbox",
    "notice_listing",
    "notice_reopened",
    "notices_function",
    "offer_add",
    "offer_list",
    "offer_renew",
    "offer_search",
    "offer_withdraw",
    "parse_location",
    "want_add",
    "want_close",
    "want_list",
    "want_renew",
    "want_search",
]

log = logging.getLogger("conode.apps.exchange")

DEFAULT_DAYS: Final = 30
"""How long a new or renewed offer or want runs unless told otherwise."""
FETCH_WAIT: Final = 3.0
"""Seconds a search waits at most for the DHT's category indexes before it searches what is held."""
SEARCH_MARGIN: Final = 8
"""Text hits read in a search's first round beyond the page it shows (``limit``), for the few a
filter or a withdrawal drops; when the filters keep too few, the next round reads deeper by what
they let through (at least four times as deep). Each hit read is a record read and decoded from
the store: a first round of 200 for a page of 50 was 58 % of a search over 10 000 offers."""
_HAS_WORD: Final = re.compile(r"\w")
NOTICE_PREFIX: Final = "notice/"
"""Inbox keys in the exchange's state: ``notice/<wanter>/<want>/<offer>``, value ``{noticed, read}``."""
TYPES: Final = {"offer": OFFER, "want": WANT}


# -- parameters -----------------------------------------------------------------------------------------


def _agent(value: AgentKey | str) -> AgentKey:
    try:
        return value if isinstance(value, AgentKey) else AgentKey.parse(value)
    except EncodingError as exc:
        raise ValueError(f"agent: {exc}") from exc


def _action(value: ActionHash | str, what: str) -> ActionHash:
    try:
        return value if isinstance(value, ActionHash) else ActionHash.parse(value)
    except EncodingError as exc:
        raise ValueError(f"{what}: {exc}") from exc


def _int(value: int | str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{what} must be a whole number")
    if isinstance(value, str):
        return parse_whole(value, what)  # the digits 0-9 only, as people read them
    return value


def _km(value: float | int | str) -> float:
    if isinstance(value, str):
        return float(parse_decimal(value, "within_km"))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("within_km must be a number")
    return float(value)


def _opt_int(value: int | str | None, what: str) -> int | None:
    return None if value is None else _int(value, what)


def _degrees(text: str, what: str) -> int:
    try:
        degrees = parse_decimal(text, what, signed=True)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a number of degrees") from None
    return int(degrees.scaleb(6).to_integral_value())


def parse_location(value: str | Mapping[str, Any] | None) -> dict[str, int] | None:
    """A location as the entry holds it (micro-degrees), from ``"lat,lon"`` degrees or a map.

    Degrees are read exactly (``decimal``) and rounded to the micro-degree.
    ``ValueError`` for anything else or a point off the globe.
    """
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.split(",")
        if len(parts) != 2:
            raise ValueError(f"a location is 'LAT,LON' in decimal degrees, not {value!r}")
        lat, lon = _degrees(parts[0], "latitude"), _degrees(parts[1], "longitude")
    elif isinstance(value, Mapping) and set(value) == {"lat", "lon"}:
        lat, lon = _int(value["lat"], "lat"), _int(value["lon"], "lon")
    else:
        raise ValueError("a location is 'LAT,LON' in degrees or {lat, lon} in micro-degrees")
    if not -90 * MICRO_DEGREES <= lat <= 90 * MICRO_DEGREES:
        raise ValueError("latitude must be from -90 to 90 degrees")
    if not -180 * MICRO_DEGREES <= lon <= 180 * MICRO_DEGREES:
        raise ValueError("longitude must be from -180 to 180 degrees")
    return {"lat": lat, "lon": lon}


def _point(value: str | Mapping[str, Any] | None) -> tuple[int, int] | None:
    location = parse_location(value)
    return None if location is None else (location["lat"], location["lon"])


def _poster(api: AppAPI, agent: AgentKey | str | None) -> AgentKey:
    hosted = list(api.agents())
    if agent is None:
        if len(hosted) != 1:
            raise ValueError(f"this node hosts {len(hosted)} agents: say which posts (agent)")
        return hosted[0]
    key = _agent(agent)
    if key not in hosted:
        raise ValueError(f"this node does not host {key}")
    return key


def _owners(api: AppAPI, agent: AgentKey | str | None) -> list[AgentKey]:
    return list(api.agents()) if agent is None else [_agent(agent)]


def _expires(api: AppAPI, days: int | str) -> int:
    whole = _int(days, "days")
    if whole < 1:
        raise ValueError("days must be at least 1")
    return api.now() + whole * DAY_US


# -- reading -----------------------------------------------------------------------------------------------


def _listing(api: AppAPI, item: ActionHash | str, kind: str) -> Listing:
    """The current state of one held offer or want (its updates applied)."""
    h = _action(item, kind)
    record = api.get(h)
    if record is None or record.action.entry_type != TYPES[kind]:
        raise ValueError(f"this node holds no {kind} {h}")
    return listings([record, *api.records(UPDATE)])[h]


def _own_listings(api: AppAPI, kind: str, agent: AgentKey | str | None) -> list[dict[str, Any]]:
    owners = set(_owners(api, agent))
    at = api.now()
    mine = [
        item
        for item in listings(api.records(TYPES[kind], UPDATE)).values()
        if item.author in owners and item.kind == kind
    ]
    mine.sort(key=lambda i: (-i.timestamp, i.hash.raw))
    return [_shown(api, i, at) for i in mine]


def _filters(
    kind: str,
    category: str | None,
    near: str | Mapping[str, Any] | None,
    within_km: float | int | str | None,
    region: str | None,
    limit: int | str,
) -> dict[str, Any]:
    """``market.search``'s filters from a search's parameters (all but the time)."""
    radius = None if within_km is None else _km(within_km)
    point = _point(near)
    if radius is not None and (point is None or not radius > 0):
        raise ValueError("within_km needs a point to measure from (near) and a positive radius")
    return {
        "kind": kind, "category": category, "near": point, "within_km": radius,
        "region": region, "limit": _int(limit, "limit"),
    }  # fmt: skip


def _scope(api: AppAPI, category: str | None) -> list[str]:
    """The categories whose DHT indexes a search reads: ``category`` and every node of the tree
    in force below it; the whole tree without a category. With no tree configured, the nodes
    below a category cannot be known: only ``category`` itself (nothing without one)."""
    try:
        tree = read_config(api.rules().params.app_settings(APP_ID)).categories or ()
    except (ConodeError, ValueError) as exc:  # rules not known here, or a malformed config
        log.info("exchange search: no category tree (%s)", exc)
        tree = ()
    nodes: set[str] = set()
    for path in tree:  # a listed path and its parents are the tree's nodes
        parts = path.split("/")
        nodes.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    if category is None:
        return sorted(nodes)
    return sorted({category} | {node for node in nodes if in_subtree(node, category)})


async def _refresh(api: AppAPI, kind: str, category: str | None) -> None:
    """Take in from the DHT the listings indexed under the categories a search covers."""
    scope = _scope(api, category)
    if not scope:
        return
    anchors = [category_anchor(c) for c in scope]
    links = await api.fetch_links(CATEGORY_LINK, *anchors, wait=FETCH_WAIT)
    targets = (_link_target(link) for link in links)
    found = sum(1 for t in targets if t is not None and _is_kind(api.get(t), kind))
    log.info(
        "exchange %s search: %d new from the DHT (%d categories asked)", kind, found, len(scope)
    )


def _link_target(link: Record) -> ActionHash | None:
    read = app.read(link)
    target = None if read is None else read.entry.get("target")
    return target if isinstance(target, ActionHash) else None


def _is_kind(record: Record | None, kind: str) -> bool:
    return record is not None and record.action.entry_type == TYPES[kind]


async def _search_everywhere(
    api: AppAPI, kind: str, text: str, filters: dict[str, Any], local: bool
) -> list[dict[str, Any]]:
    """Refresh the categories in scope from the DHT (unless ``local``), then search what is held."""
    if not local:
        await _refresh(api, kind, filters["category"])
    return _search(api, kind, text, filters)


def _shown(api: AppAPI, item: Listing | Found, at: int) -> dict[str, Any]:
    """A listing (or search result) as JSON values, its author named (``author_name``): who sells
    or wants it."""
    author = item.listing.author if isinstance(item, Found) else item.author
    return {**item.to_value(at), "author_name": api.name_of(author)}


def _search(api: AppAPI, kind: str, text: str, filters: dict[str, Any]) -> list[dict[str, Any]]:
    """Held open listings by words and ``filters``, best first, as JSON values."""
    at = api.now()
    count = filters["limit"]
    filters = {**filters, "at": at}
    updates: Sequence[Record] = api.records(UPDATE)
    if not _HAS_WORD.search(text):
        pool = listings([*api.records(TYPES[kind]), *updates])
        return [_shown(api, f, at) for f in market.search(pool.values(), **filters)]
    depth = max(1, count + max(SEARCH_MARGIN, count // 8))
    while True:
        hits = api.search(text, TYPES[kind], limit=depth)
        pool = listings([*hits, *updates])
        found = market.search(pool.values(), ranked=[h.hash for h in hits], **filters)
        if len(found) >= count or len(hits) < depth:
            return [_shown(api, f, at) for f in found]
        # read deep enough for what the filters let through so far (with a margin), at least 4x
        depth = max(4 * depth, depth * count * 3 // max(1, len(found)))


# -- writing ---------------------------------------------------------------------------------------------


async def _post(
    api: AppAPI,
    kind: str,
    agent: AgentKey | str | None,
    values: dict[str, Any],
    days: int | str,
) -> dict[str, Any]:
    poster = _poster(api, agent)
    entry = app.entry(TYPES[kind], **values, expires=_expires(api, days))
    posted = await api.commit(poster, TYPES[kind], entry)
    category = values["category"]
    await api.link(poster, CATEGORY_LINK, category_anchor(category), posted, category)
    return _shown(api, _listing(api, posted, kind), api.now())


def _listing_values(
    title: str,
    category: str,
    price: int | str,
    unit: str,
    quantity: int | str,
    description: str,
    location: str | Mapping[str, Any] | None,
    region: str | None,
) -> dict[str, Any]:
    return {
        "title": title,
        "description": description,
        "category": category,
        "price": _int(price, "price"),
        "unit": unit,
        "quantity": _int(quantity, "quantity"),
        "location": parse_location(location),
        "region": region,
    }


async def _update(
    api: AppAPI,
    kind: str,
    item: ActionHash | str,
    *,
    expires: int | None = None,
    quantity: int | None = None,
    price: int | None = None,
    close: str | None = None,
) -> dict[str, Any]:
    listing = _listing(api, item, kind)
    if listing.author not in api.agents():
        raise ValueError(f"this node does not host the author of {kind} {listing.hash}")
    entry = app.entry(
        UPDATE,
        item=listing.hash,
        prev=listing.head,
        expires=expires,
        quantity=quantity,
        price=price,
        close=close,
    )
    await api.commit(listing.author, UPDATE, entry)
    return _shown(api, _listing(api, listing.hash, kind), api.now())


# -- offers ---------------------------------------------------------------------------------------------


@app.function("offer-add")
async def offer_add(
    api: AppAPI,
    title: str,
    category: str,
    price: int | str,
    unit: str,
    quantity: int | str,
    description: str = "",
    location: str | Mapping[str, Any] | None = None,
    region: str | None = None,
    days: int | str = DEFAULT_DAYS,
    agent: AgentKey | str | None = None,
) -> dict[str, Any]:
    """A co-op offers something: price per unit in minor units, quantity per month; the new offer.

    When the rules allow grants, the co-op is granted credit for it at once
    (``grant``: the grant, or ``{"skipped": why}``).
    """
    values = _listing_values(title, category, price, unit, quantity, description, location, region)
    posted = await _post(api, "offer", agent, values, days)
    posted["grant"] = await grant_for(api, ActionHash.parse(posted["hash"]))
    return posted


@app.function("offer-list")
def offer_list(api: AppAPI, agent: AgentKey | str | None = None) -> list[dict[str, Any]]:
    """The offers of this node's agents (or ``agent``), every status, newest first, with reminders."""
    return _own_listings(api, "offer", agent)


@app.function("offer-search")
async def offer_search(
    api: AppAPI,
    text: str = "",
    category: str | None = None,
    near: str | Mapping[str, Any] | None = None,
    within_km: float | int | str | None = None,
    region: str | None = None,
    limit: int | str = 50,
    local: bool = False,
) -> list[dict[str, Any]]:
    """Open offers by words, category subtree, distance from ``near`` and region; best first.

    First the DHT's category indexes in scope are read (at most ``FETCH_WAIT`` s) and what
    they name is taken in; ``local``: search only what this node holds.
    """
    filters = _filters("offer", category, near, within_km, region, limit)
    return await _search_everywhere(api, "offer", text, filters, local)


@app.function("offer-renew")
async def offer_renew(
    api: AppAPI,
    offer: ActionHash | str,
    days: int | str = DEFAULT_DAYS,
    quantity: int | str | None = None,
    price: int | str | None = None,
) -> dict[str, Any]:
    """Renew an offer for ``days`` from now (also after it expired), optionally with a new quantity or price.

    A larger quantity or price enlarges the offer: its co-op is granted the
    increase when the rules allow grants (``grant``, as for ``offer-add``).
    """
    renewed = await _update(
        api,
        "offer",
        offer,
        expires=_expires(api, days),
        quantity=_opt_int(quantity, "quantity"),
        price=_opt_int(price, "price"),
    )
    renewed["grant"] = await grant_for(api, ActionHash.parse(renewed["hash"]))
    return renewed


@app.function("offer-withdraw")
async def offer_withdraw(api: AppAPI, offer: ActionHash | str) -> dict[str, Any]:
    """Withdraw an offer for good (nothing can renew it)."""
    return await _update(api, "offer", offer, close="withdrawn")


# -- wants ---------------------------------------------------------------------------------------------


@app.function("want-add")
async def want_add(
    api: AppAPI,
    title: str,
    category: str,
    price: int | str,
    unit: str,
    quantity: int | str,
    description: str = "",
    location: str | Mapping[str, Any] | None = None,
    region: str | None = None,
    radius_km: int | str | None = None,
    days: int | str = DEFAULT_DAYS,
    agent: AgentKey | str | None = None,
) -> dict[str, Any]:
    """A co-op or member says what it is looking for (at most ``price`` per unit); the new want."""
    values = _listing_values(title, category, price, unit, quantity, description, location, region)
    values["radius_km"] = _opt_int(radius_km, "radius_km")
    return await _post(api, "want", agent, values, days)


@app.function("want-list")
def want_list(api: AppAPI, agent: AgentKey | str | None = None) -> list[dict[str, Any]]:
    """The wants of this node's agents (or ``agent``), every status, newest first."""
    return _own_listings(api, "want", agent)


@app.function("want-search")
async def want_search(
    api: AppAPI,
    text: str = "",
    category: str | None = None,
    near: str | Mapping[str, Any] | None = None,
    within_km: float | int | str | None = None,
    region: str | None = None,
    limit: int | str = 50,
    local: bool = False,
) -> list[dict[str, Any]]:
    """The Wanted section: open wants by words, category subtree, distance and region.

    The DHT's category indexes are read first, as for ``offer-search``, unless ``local``.
    """
    filters = _filters("want", category, near, within_km, region, limit)
    return await _search_everywhere(api, "want", text, filters, local)


@app.function("want-renew")
async def want_renew(
    api: AppAPI, want: ActionHash | str, days: int | str = DEFAULT_DAYS
) -> dict[str, Any]:
    """Renew a want for ``days`` from now."""
    return await _update(api, "want", want, expires=_expires(api, days))


@app.function("want-close")
async def want_close(api: AppAPI, want: ActionHash | str, reason: str = "met") -> dict[str, Any]:
    """Close a want: ``met`` (found what was needed) or ``withdrawn`` (no longer wanted)."""
    if reason not in ("met", "withdrawn"):
        raise ValueError(f"a want is closed as met or withdrawn, not {reason!r}")
    return await _update(api, "want", want, close=reason)


# -- notices ---------------------------------------------------------------------------------------------


@app.function("notices")
def notices_function(api: AppAPI, agent: AgentKey | str | None = None) -> list[dict[str, Any]]:
    """For the open wants of this node's agents (or ``agent``): newer open offers that match them.

    Computed when asked (the pull view); the same rule fills each agent's
    inbox as offers arrive (``inbox``, the push view).
    """
    at = api.now()
    pool = listings(api.records(OFFER, WANT, UPDATE))
    return [n.to_value(at) for n in market.notices(pool.values(), _owners(api, agent), at)]


def _notice_key(wanter: AgentKey, want: ActionHash, offer: ActionHash) -> str:
    return f"{NOTICE_PREFIX}{wanter}/{want}/{offer}"


def _keep_notices(api: AppAPI, item: Record) -> int:
    """Keep in the inbox every notice ``item`` (an offer or want) is part of now; how many were new.

    The rule is the pull view's (``market.notices``: an open offer, newer than
    an open want of an agent hosted here, that matches it), over ``item`` and
    the held listings of the other kind, so push and pull never disagree.
    The key names the want and the offer: a notice is kept once, however often
    its records are watched.
    """
    hosted = api.agents()
    author = item.action.author
    if item.action.entry_type == WANT:
        if author not in hosted:
            return 0
        others = list(api.records(OFFER, UPDATE))
    else:  # only the wants of hosted agents, and updates by their authors, can make a notice
        others = [*api.records(WANT, UPDATE, authors=hosted), *api.records(UPDATE, authors=[author])]
    at = api.now()
    pool = listings([item, *others])
    kept = 0
    for notice in market.notices(pool.values(), hosted, at):
        want, offer = notice.want, notice.offer
        key = _notice_key(want.author, want.hash, offer.hash)
        if api.state.add(key, {"noticed": at, "read": False}):
            kept += 1
            log.info(
                "notice for %s: offer %s %r matches want %s %r",
                want.author.short(), offer.hash.short(), offer.title, want.hash.short(), want.title,
            )  # fmt: skip
    return kept


@app.watch(OFFER)
@app.watch(WANT)
def notice_listing(api: AppAPI, record: Record) -> None:
    """A new offer (or a want of an agent hosted here, which may arrive after newer offers):
    a notice in the wanter's inbox for each match."""
    _keep_notices(api, record)


@app.watch(UPDATE)
def notice_reopened(api: AppAPI, record: Record) -> None:
    """An offer or want renewed after it expired is open again: what it matches now is noticed."""
    read = app.read(record)
    item = None if read is None else api.get(read.entry["item"])
    if item is not None and item.action.entry_type in (OFFER, WANT):
        _keep_notices(api, item)


@app.function("inbox")
def inbox(
    api: AppAPI,
    agent: AgentKey | str | None = None,
    unread: bool = False,
    mark_read: bool = False,
) -> list[dict[str, Any]]:
    """The notices kept for ``agent`` (default: every agent hosted here), newest first.

    Each is the pull view's notice with ``noticed`` (when it was kept) and
    ``read``. ``unread``: only those not read yet. ``mark_read``: mark the
    listed ones read (they are returned as they were, so the new ones show).
    """
    kept: dict[str, tuple[ActionHash, ActionHash, Mapping[str, Any]]] = {}
    for owner in _owners(api, agent):
        for key, value in api.state.items(f"{NOTICE_PREFIX}{owner}/"):
            if not (unread and value["read"]):
                want_text, offer_text = key.rsplit("/", 2)[1:]
                kept[key] = (ActionHash.parse(want_text), ActionHash.parse(offer_text), value)
    items = {h for want, offer, _ in kept.values() for h in (want, offer)}
    held = [record for h in items if (record := api.get(h)) is not None]
    authors = {record.action.author for record in held}  # an item changes by its author's updates
    pool = listings([*held, *api.records(UPDATE, authors=authors)])
    at = api.now()
    shown: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    for key, (want, offer, value) in kept.items():
        if want not in pool or offer not in pool:
            continue  # never so on a node: it keeps every record it stored
        told = market.Notice(pool[want], pool[offer]).to_value(at)
        told.update(noticed=value["noticed"], read=value["read"])
        shown.append(((-value["noticed"], -pool[offer].timestamp, key), told))
    shown.sort(key=lambda pair: pair[0])
    if mark_read:
        api.state.put({k: {**v, "read": True} for k, (_, _, v) in kept.items() if not v["read"]})
    return [told for _, told in shown]
