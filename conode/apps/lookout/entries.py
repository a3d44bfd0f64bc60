"""The lookout's entry types and their rules: Signal -> Sign -> Significance, with discussion.

Stable rule names (the ``rule`` of an ``Invalid``): ``schema``,
``unknown-entry-type``, ``kind`` (from the SDK); ``role``, ``provenance``,
``revoked`` (who may post); ``citation`` (a sign cites signals, a
significance cites signs, never a later item); ``reference`` (a comment or
poll names a lookout item, a response names a significance and a record of
its kind); ``coop`` (a significance's co-op is a registered co-op);
``audience`` (a significance is for a sector or a co-op); ``anchor`` and
``sector`` (a sector link); ``duplicate`` (a second poll by one author on one
item: an activity rule: the entry carries the key as ``once``, and the fold refuses a second use).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from conode.apps.sdk import (
    App,
    Context,
    EntryType,
    Fetched,
    Hash,
    LinkType,
    ListOf,
    OneOf,
    Optional,
    Role,
    Text,
    anchor,
)
from conode.hashes import ActionHash, AgentKey, EntryHash
from conode.validation.credit import Party
from conode.validation.governance import PROPOSAL
from conode.validation.verdict import VALID, Invalid, Verdict

__all__ = [
    "APP_ID",
    "CHOICES",
    "COMMENT",
    "ITEMS",
    "POLL",
    "RESPOND",
    "RESPONSE_TYPES",
    "SECTOR_LINK",
    "SIGN",
    "SIGNAL",
    "SIGNIFICANCE",
    "VERSION",
    "app",
    "sector_anchor",
]

APP_ID: Final = "lookout"
VERSION: Final = "0.1.0"
SIGNAL: Final = "lookout/signal"
SIGN: Final = "lookout/sign"
SIGNIFICANCE: Final = "lookout/significance"
COMMENT: Final = "lookout/comment"
POLL: Final = "lookout/poll"
RESPOND: Final = "lookout/respond"
SECTOR_LINK: Final = "lookout/sector"
ITEMS: Final = (SIGNAL, SIGN, SIGNIFICANCE)
"""The items of the board: what comments and polls may name."""
CHOICES: Final = ("advance", "hold")
RESPONSE_TYPES: Final[dict[str, tuple[str, ...]]] = {
    "want": ("exchange/want",),
    "proposal": (PROPOSAL, "foundation/proposal"),
}
"""What a response may name, by kind: an exchange want, or a proposal to the co-ops."""
POSTERS: Final = (Role.COOP, Role.MEMBER)

_SECTOR: Final = Text(40, min_len=1, pattern=r"[a-z0-9]+(-[a-z0-9]+)*")
_TITLE: Final = Text(200, min_len=1)
_TEXT: Final = Text(4_000)
_CITES: Final = ListOf(Hash(ActionHash), max_len=50, min_len=1, unique=True)


def sector_anchor(sector: str) -> EntryHash:
    """The base of the ``lookout/sector`` links of one sector: its feed's index."""
    return anchor(APP_ID, f"sector/{sector}")


def _earlier(ctx: Context, fetched: Sequence[tuple[str, Fetched]], rule: str) -> Verdict:
    """Nothing cited may be dated after the record that cites it."""
    for where, item in fetched:
        if item.record.action.timestamp > ctx.timestamp:
            return Invalid(rule, f"{where} is dated after this {ctx.entry_type}")
    return VALID


def _cites(ctx: Context, field: str, entry_type: str) -> Verdict:
    """Every hash in ``field`` names a valid, earlier record of ``entry_type``."""
    got = ctx.must_get_entries(ctx.entry[field], (entry_type,), rule="citation", what=field)
    if not isinstance(got, list):
        return got
    return _earlier(ctx, [(f"{field}[{i}]", g) for i, g in enumerate(got)], "citation")


def _refers(ctx: Context, field: str, entry_types: Sequence[str]) -> Fetched | Verdict:
    """The field names a valid, earlier record of one of ``entry_types``."""
    got = ctx.must_get_entry(ctx.entry[field], entry_types, rule="reference", what=field)
    if not isinstance(got, Fetched):
        return got
    earlier = _earlier(ctx, [(field, got)], "reference")
    return got if earlier else earlier


# -- rules ---------------------------------------------------------------------------------------------


def validate_signal(ctx: Context) -> Verdict:
    """Any member or co-op may report what it has seen."""
    return ctx.require_role(*POSTERS)


def validate_sign(ctx: Context) -> Verdict:
    """A sign names the wider change its signals point to: it cites signals, at least one."""
    role = ctx.require_role(*POSTERS)
    if not role:
        return role
    return _cites(ctx, "signals", SIGNAL)


def validate_significance(ctx: Context) -> Verdict:
    """What a sign means for a sector or a co-op: it cites signs, and names who it is for."""
    role = ctx.require_role(*POSTERS)
    if not role:
        return role
    coop = ctx.entry["coop"]
    if not ctx.entry["sectors"] and coop is None:
        return Invalid("audience", "a significance is for one or more sectors, or a co-op")
    cites = _cites(ctx, "signs", SIGN)
    if not cites:
        return cites
    if coop is not None:
        party = ctx.party(coop)
        if isinstance(party, Invalid):
            return Invalid("coop", f"coop: {party.reason}")
        if not isinstance(party, Party):
            return party
        if party.role != Role.COOP:
            return Invalid("coop", f"coop: {party.name} is a {party.role}, not a co-op")
    return VALID


def validate_comment(ctx: Context) -> Verdict:
    """A comment is on a lookout item that exists."""
    role = ctx.require_role(*POSTERS)
    if not role:
        return role
    got = _refers(ctx, "item", ITEMS)
    return got if not isinstance(got, Fetched) else VALID


def validate_poll(ctx: Context) -> Verdict:
    """A sense-check vote on an item that exists (one per author per item: an activity rule)."""
    return validate_comment(ctx)


def validate_respond(ctx: Context) -> Verdict:
    """A response links a significance to what a co-op does about it: a want or a proposal."""
    role = ctx.require_role(*POSTERS)
    if not role:
        return role
    significance = _refers(ctx, "significance", (SIGNIFICANCE,))
    if not isinstance(significance, Fetched):
        return significance
    response = _refers(ctx, "response", RESPONSE_TYPES[ctx.entry["kind"]])
    return response if not isinstance(response, Fetched) else VALID


def validate_sector_link(ctx: Context) -> Verdict:
    """A sector link indexes a signal or significance under a sector it is tagged with."""
    role = ctx.require_role(*POSTERS)
    if not role:
        return role
    sector = ctx.entry["tag"]
    if ctx.entry["base"] != sector_anchor(sector):
        return Invalid("anchor", f"base is not the anchor of sector {sector!r}")
    target = _refers(ctx, "target", (SIGNAL, SIGNIFICANCE))
    if not isinstance(target, Fetched):
        return target
    if sector not in target.entry["sectors"]:
        return Invalid("sector", f"the target is not tagged {sector!r}")
    return VALID


def _poll_key(entry: Any) -> bytes:
    item: ActionHash = entry["item"]
    return item.to_bytes()


# -- the app -------------------------------------------------------------------------------------------

app: Final = App(
    APP_ID,
    VERSION,
    entry_types=[
        EntryType(
            "signal",
            {
                "title": _TITLE,
                "text": _TEXT,
                "source": Text(500, min_len=1),
                "sectors": ListOf(_SECTOR, max_len=10, unique=True),
                "location": Optional(Text(200, min_len=1)),
            },
            validate_signal,
            doc="What was seen: a report, a news item, a law, a post.",
        ),
        EntryType(
            "sign",
            {"title": _TITLE, "text": _TEXT, "signals": _CITES},
            validate_sign,
            doc="The wider change that signals point to.",
        ),
        EntryType(
            "significance",
            {
                "title": _TITLE,
                "text": _TEXT,
                "sectors": ListOf(_SECTOR, max_len=10, unique=True),
                "coop": Optional(Hash(AgentKey)),
                "suggested": ListOf(Text(500, min_len=1), max_len=20),
                "signs": _CITES,
            },
            validate_significance,
            doc="What a sign means for a sector or a co-op, and how it might respond.",
        ),
        EntryType(
            "comment",
            {"item": Hash(ActionHash), "text": Text(4_000, min_len=1)},
            validate_comment,
            doc="Discussion of a signal, sign or significance.",
        ),
        EntryType(
            "poll",
            {"item": Hash(ActionHash), "choice": OneOf(*CHOICES)},
            validate_poll,
            unique=_poll_key,
            doc="A sense-check: should this item move on to its next stage?",
        ),
        EntryType(
            "respond",
            {
                "significance": Hash(ActionHash),
                "response": Hash(ActionHash),
                "kind": OneOf(*RESPONSE_TYPES),
                "note": Optional(Text(1_000)),
            },
            validate_respond,
            doc="A response to a significance: an exchange want or a proposal.",
        ),
    ],
    link_types=[
        LinkType(
            "sector",
            tag=_SECTOR,
            validate=validate_sector_link,
            doc="Indexes a signal or significance under one of its sectors (base: sector_anchor).",
        )
    ],
    doc="Horizon scanning: Signal -> Sign -> Significance, by sector, with discussion and responses.",
)
