"""Grants of credit for offers: the rules of ``exchange/grant`` and ``exchange/share``.

Their figures are worked out in ``grant_figures`` (what a grant moves, what is on offer) and
``grant_sales`` (the chain walked back, a month's counted sales); ``grant_views`` reads held
grants for the functions.

How it works (section 1 and Appendix 1 of the proposal: credit is created when
goods and services are offered, "further tokens are only awarded when the
overall value of a co-op's offers is increased", and the grant is
re-estimated monthly from actual sales, down as well as up):

- **One grant line per co-op.** A co-op's grants are ``exchange/grant``
  records on its own chain, each naming the one before (``prev_grant``; the
  first names none). The ``once`` key is the previous grant (``line`` for the
  first), so the activity fold refuses two grants following one
  (``duplicate``): the line stays a line and a co-op has one. ``granted`` is
  what the line stands at (the previous ``granted`` plus this grant's gross),
  ``estimate`` what it was set to, ``high`` the **high-water mark**: the
  highest offered value the line was ever granted for.
- **What the co-op has on offer.** The line counts the co-op's open offers
  (the current revision of each); every grant states what changed since the
  grant before (``added``, ``dropped``: revisions, each list ascending), so
  the counted set is the line's changes applied in turn, and their value
  (``offered``: price x quantity of each counted revision, summed, offers of
  the same category, title and unit counted once, the largest). Every peer
  checks the changes from hash-linked data only: it walks the co-op's chain
  back from this grant to the previous one (``must_get``: O(records since the
  previous grant), each record walked by one grant only), applies the offers
  and updates found there to the previous set, and requires every counted
  revision to be the current revision of an open offer of the co-op at the
  grant's time, so a withdrawn, lapsed or renewed one must be dropped
  (``offers``); leaving an offer out only lowers ``offered``. Each grant
  carries only its changes (O(changes)); the set after a grant is remembered
  by its hash, and rebuilt from the line's grants where it is not.
- **new** (the line's first grant) and **enlarge** (any later one): posting,
  renewing or enlarging raised ``offered`` above ``high``: the line grows by
  the increase, ``min(offered, cap) - min(high,
  cap)``, and stands at most at the cap (``grant_cap``, per co-op); ``high``
  becomes ``offered``. So withdrawing and re-posting an offer, posting the
  same offer twice, or letting one lapse and renewing it, earns nothing new:
  the total never rises above what was granted for. Nothing to grant is
  refused (``grant``).
- **reestimate**: the line's **first grant in each month** after the one it
  began in (``basis``). The line is set to last month's counted sales
  (``sales``) at most the cap, except that for offers posted last month (whose
  first month was not whole) it keeps the larger of their sales (``sales.new``)
  and the credit granted last month by ``new`` and ``enlarge`` grants
  (``advance``): ``estimate = min(total - new + max(new, advance), cap)``. The difference is granted, or
  recovered: a recovery stops at the credit limit, a grant at the balance cap
  (what is left waits for the next month), so a re-estimate can always be
  written.
- **It is enforced.** A grant that leaves the line above zero carries ``due``
  = the first moment of the next month (the SDK's ``duty``): from then the
  co-op may not pay until its next grant, which in a new month can only be
  the re-estimate, is on its chain (the activity fold's rule ``overdue``, run
  by every peer). A line at zero owes nothing (there is nothing to recover).
- **pause**: with grants off in the rules in force (no ``grant_cap``, or the
  exchange may not issue credit), the month's first grant is a pause: it
  moves nothing and carries no due, so a co-op is never kept from paying by a
  rule that cannot be followed. The line stands where it was.
- **expire** (a charter switch: ``grant_expiry_months`` = N > 0 in the rules
  in force; absent or 0, grants never expire): once the line's last
  *positive* grant since its last expiry is N months old (``period_of``
  months), it may be cut once (``expiry-early``, ``expiry-off``). It recovers
  the line's **unspent** credit, ``min(net, max(0, balance before))``:
  ``net`` is what the line's grants since its last expiry moved to the co-op
  (the Foundation's shares are not taken back from the co-op); the balance
  before is read from the expiry's own credit move. A positive balance holds
  grant credit first, so a co-op at or below zero has spent its grant and
  loses nothing, and an expiry never takes a co-op below zero. The estimate
  is 0 and ``granted`` falls by what was recovered; the line goes on, so the
  next month's re-estimate sets it from sales again.
- **Counted sales** are the ``credit/payment`` records of the co-op's own
  chain in that month whose body names one of its offers (``offer``) and
  whose payer is outside the co-op (by the genesis the payment pins), less
  the payers the co-op itself paid in that month, or a member of whose co-op
  it paid (a closed loop: two co-ops buying each other's offers count for
  neither). The same walk back from the grant reads them (back to the start
  of the month counted); the grant states them and every peer recounts them.
- **The Foundation's share**: of a positive gross, ``share = floor(gross x
  foundation_share_bp / 10000)`` (0 with no Foundation in the rules); the
  co-op's credit move is ``gross - share``. The Foundation collects it with an
  ``exchange/share`` on its own chain (once per grant). A recovery carries no share.

Every figure is recomputed by every peer from the grant's dependencies and the
rules in force at its time; what reaches a chain is booked against the
issuance account by the audit (``AuditReport.issuance``).

Rule names: ``role``, ``provenance``, ``revoked`` (who grants or collects);
``config``, ``grants-off`` (grants off: only a pause); ``period`` (not the
record's month); ``basis`` (a line begins with ``new``, and only it; the first
grant of a month is the re-estimate or a pause, and only it); ``prev-grant`` (not this
co-op's latest grant, or later); ``offers`` (a listed revision that is not an
open offer of the co-op as it stands, or the list out of order, or its value);
``sales`` (not what the chain shows); ``grant`` (a figure that does not
follow, or nothing to grant or to expire); ``due``; ``expiry-off``,
``expiry-early``; ``share`` (the Foundation's collection).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from conode.apps.exchange.config import (
    GRANT,
    ExchangeConfig,
    config_in_force,
)
from conode.apps.exchange.grant_figures import (
    NO_SALES,
    OFFER_BASES,
    LineState,
    Sales,
    advance_of,
    due_of,
    expiry_terms,
    grant_amounts,
    offered_value,
    open_offers,
)
from conode.apps.exchange.grant_sales import Scan, line_sales, scan_chain
from conode.apps.sdk import Context, Fetched, Hash, Int, ListOf, Map, OneOf, Optional, Role
from conode.chain import Record
from conode.hashes import ActionHash
from conode.validation.calendar import period_label, period_of
from conode.validation.entries import MAX_AMOUNT
from conode.validation.schema import INT63
from conode.validation.verdict import VALID, Invalid, Verdict

__all__ = [
    "BASES",
    "GRANT_FIELDS",
    "MAX_LINE_OFFERS",
    "SHARE_FIELDS",
    "counted_after",
    "grant_key",
    "share_key",
    "validate_grant",
    "validate_share",
]

BASES: Final = ("new", "enlarge", "reestimate", "expire", "pause")
MAX_LINE_OFFERS: Final = 500
"""The most offers a line counts (a co-op with more counts its largest; the rest count from their
next renewal once it has fewer)."""
_FIRST: Final = b"line"
"""The ``once`` key of a co-op's first grant: a co-op has one line."""
_COUNTED_CACHE: Final = 4_096


# -- the rules ---------------------------------------------------------------------------------------------


def _mismatch(name: str, expected: Any, got: Any, rule: str = "grant") -> Invalid:
    return Invalid(rule, f"{name} must be {expected}, not {got}")


def _order(basis: str, prev: Fetched | None, period: int) -> Verdict:
    """Where a grant of ``basis`` may stand on the line: ``Invalid("basis")`` if not there."""
    if prev is None:
        if basis != "new":
            return Invalid("basis", f"a co-op's grant line begins with a new grant, not {basis}")
        return VALID
    if basis == "new":
        return Invalid("basis", "the co-op's line began already: a new grant is its first")
    first = prev.entry["period"] < period
    label = period_label(period)
    if basis in ("reestimate", "pause") and not first:
        return Invalid(
            "basis", f"the line has a grant in {label} already: the re-estimate comes first"
        )
    if basis in ("enlarge", "expire") and first:
        return Invalid(
            "basis", f"the line's first grant in {label} is its re-estimate (a pause, grants off)"
        )
    return VALID


def _line_back(
    ctx: Context, prev: Fetched, keep: Callable[[int, str], bool]
) -> list[tuple[int, str, int, int]] | Verdict:
    """``(period, basis, gross, delta)`` of the line's grants from ``prev`` back (newest first),
    while ``keep(period, basis)`` of the last one read says go on. Each is a valid dependency,
    so its fields are read as they are, without the schema again."""
    e = prev.entry
    steps = [(e["period"], e["basis"], e["credit"]["delta"] + e["share"], e["credit"]["delta"])]
    named: ActionHash | None = e["prev_grant"]
    while named is not None and keep(steps[-1][0], steps[-1][1]):
        record = ctx.must_get(named)
        if not isinstance(record, Record):
            return record
        if record.action.entry_type != GRANT:
            return Invalid("prev-grant", f"{named.short()} is not a grant")
        v = record.entry_value()
        delta = v["credit"]["delta"]
        steps.append((v["period"], v["basis"], delta + v["share"], delta))
        raw = v.get("prev_grant")
        named = None if raw is None else ActionHash.from_bytes(raw)
    return steps


def validate_grant(ctx: Context) -> Verdict:
    """A co-op's grant on its own line: every figure follows from its dependencies and the rules."""
    role = ctx.require_role(Role.COOP)
    if not role:
        return role
    config = config_in_force(ctx)
    if isinstance(config, Invalid):
        return config
    e = ctx.entry
    basis = e["basis"]
    period = period_of(ctx.timestamp)
    if e["period"] != period:
        return Invalid(
            "period", f"period must be {period} ({period_label(period)}), the record's month"
        )
    switched = _switches(basis, config)
    if not switched:
        return switched
    prev = _prev_grant(ctx)
    if prev is not None and not isinstance(prev, Fetched):
        return prev
    order = _order(basis, prev, period)
    if not order:
        return order
    line = LineState() if prev is None else _state(prev.entry)
    scan = scan_chain(
        ctx.must_get, ctx.record.action.prev, ctx.author,
        stop=None if prev is None else prev.hash,
        period=period - 1 if basis == "reestimate" else None,
    )  # fmt: skip
    if not isinstance(scan, Scan):
        return scan
    offered = _check_offers(ctx, prev, scan)
    if not isinstance(offered, int):
        return offered
    figures = _basis_figures(ctx, prev, scan, config.grant_expiry_months, period)
    if not isinstance(figures, tuple):
        return figures
    sales, advance, net = figures
    limits = ctx.rules.limits(True)
    move = e["credit"]
    amounts = grant_amounts(
        basis, line, cap=config.grant_cap or 0,
        share_bp=ctx.rules.params.foundation_share_bp if ctx.rules.foundation is not None else 0,
        balance_before=move["balance_after"] - move["delta"], limits=limits, offered=offered,
        sales=sales.total, new_sales=sales.new, advance=advance, net=net,
    )  # fmt: skip
    if basis in OFFER_BASES and amounts.gross <= 0:
        return Invalid(
            "grant",
            f"nothing to grant: the co-op's offers are worth {offered} a month, and its line was "
            f"granted for {line.high} already (it stands at {line.granted}, at most the cap)",
        )
    if basis == "expire" and amounts.gross == 0:
        return Invalid("grant", f"nothing to expire: the co-op holds none of the line's {net}")
    granted = line.granted + amounts.gross
    checks = (
        ("estimate", amounts.estimate, e["estimate"]),
        ("granted", granted, e["granted"]),
        ("high", amounts.high, e["high"]),
        ("share", amounts.share, e["share"]),
        ("the credit move's delta", amounts.delta, move["delta"]),
    )
    for name, expected, got in checks:
        if expected != got:
            return _mismatch(name, expected, got)
    due = due_of(basis, period, granted)
    if e["due"] != due:
        return _mismatch("due", due, e["due"], "due")
    return VALID


def _switches(basis: str, config: ExchangeConfig) -> Verdict:
    """Whether the rules in force let a grant of ``basis`` be made at all."""
    on = config.grant_cap is not None and config.issues_credit
    if basis == "pause" and on:
        return Invalid("basis", "grants are on: the line is re-estimated, not paused")
    if basis != "pause" and not on:
        return Invalid(
            "grants-off",
            "the rules in force set no grant_cap, or do not let the exchange issue credit: "
            "the line is paused, not granted",
        )
    if basis == "expire" and config.grant_expiry_months == 0:
        return Invalid(
            "expiry-off", "the rules in force set no grant_expiry_months: grants never expire"
        )
    return VALID


def _prev_grant(ctx: Context) -> Fetched | Verdict | None:
    """The grant this one follows (None for a co-op's first): the co-op's own, and not later."""
    named = ctx.entry["prev_grant"]
    if named is None:
        return None
    prev = ctx.must_get_entry(named, (GRANT,), rule="prev-grant", what="prev_grant")
    if not isinstance(prev, Fetched):
        return prev
    if prev.author != ctx.author:
        return Invalid("prev-grant", "prev_grant is another co-op's grant")
    if prev.record.action.timestamp > ctx.timestamp:
        return Invalid("prev-grant", "prev_grant is dated after this grant")
    return prev


def _state(entry: Mapping[str, Any]) -> LineState:
    return LineState(entry["granted"], entry["estimate"], entry["high"])


def _check_offers(ctx: Context, prev: Fetched | None, scan: Scan) -> int | Verdict:
    """The grant's ``added`` and ``dropped`` leave the line counting open offers of the co-op as
    it stands; their value, ``offered``."""
    added: tuple[ActionHash, ...] = ctx.entry["added"]
    dropped: tuple[ActionHash, ...] = ctx.entry["dropped"]
    for name, listed in (("added", added), ("dropped", dropped)):
        raws = [h.raw for h in listed]
        if raws != sorted(set(raws)):
            return Invalid("offers", f"{name} lists each revision once, in ascending order")
    before = _counted_before(ctx, prev)
    if not isinstance(before, frozenset):
        return before
    if not before.issuperset(dropped) or not before.isdisjoint(added):
        return Invalid("offers", "dropped names a revision not counted, or added one counted")
    counted = (before - set(dropped)) | set(added)
    if len(counted) > MAX_LINE_OFFERS:
        return Invalid("offers", f"a line counts at most {MAX_LINE_OFFERS} offers")
    current = open_offers(ctx.must_get, tuple(before), scan.latest, ctx.author, ctx.timestamp)
    if not isinstance(current, dict):
        return current
    by_revision = {rev.hash: rev for rev in current.values()}
    for h in sorted(counted, key=lambda h: h.raw):
        if h not in by_revision:
            return Invalid(
                "offers",
                f"{h.short()} is counted but is not an open offer of the co-op as it stands "
                "(withdrawn, expired, renewed since, or not its offer): drop it",
            )
    offered = offered_value(by_revision[h] for h in counted)
    if ctx.entry["offered"] != offered:
        return _mismatch("offered", offered, ctx.entry["offered"], "offers")
    return offered


_counted_sets: dict[ActionHash, frozenset[ActionHash]] = {}
"""The revisions a line counts after each grant, by the grant's hash: the line's ``added`` and
``dropped`` applied in turn, a pure function of hash-linked entries (so kept whatever the grant's
verdict)."""


def counted_after(before: frozenset[ActionHash], entry: Mapping[str, Any]) -> frozenset[ActionHash]:
    """The revisions a line counts after a grant's ``entry``, given those it counted before."""
    return (before - set(entry["dropped"])) | set(entry["added"])


def _counted_before(ctx: Context, prev: Fetched | None) -> frozenset[ActionHash] | Verdict:
    """What the line counted after ``prev`` (nothing before a first grant): remembered, or
    rebuilt from the line's grants back to one remembered or its first (O(grants))."""
    if prev is None:
        return frozenset()
    pending: list[Fetched] = []
    grant = prev
    while (known := _counted_sets.get(grant.hash)) is None:
        pending.append(grant)
        named = grant.entry["prev_grant"]
        if named is None:
            known = frozenset()
            break
        got = ctx.must_get_entry(named, (GRANT,), rule="prev-grant", what="prev_grant")
        if not isinstance(got, Fetched):
            return got
        grant = got
    for grant in reversed(pending):
        known = counted_after(known, grant.entry)
        if len(_counted_sets) >= _COUNTED_CACHE:
            _counted_sets.clear()
        _counted_sets[grant.hash] = known
    return known


def _basis_figures(
    ctx: Context, prev: Fetched | None, scan: Scan, months: int, period: int
) -> tuple[Sales, int, int] | Verdict:
    """A re-estimate's sales and advance, an expiry's net (checking what the basis requires)."""
    e = ctx.entry
    basis = e["basis"]
    if basis != "reestimate" and (e["sales"] is not None or e["advance"] is not None):
        return Invalid("sales", "only a re-estimate states sales and an advance")
    if basis == "reestimate":
        assert prev is not None and scan.tally is not None  # checked by _order, asked of scan
        sales = line_sales(ctx.must_get, scan.tally, period - 1)
        if not isinstance(sales, Sales):
            return sales
        got = None if e["sales"] is None else dict(e["sales"])
        if got != sales.to_value():
            return Invalid("sales", f"the co-op's chain shows sales {sales.to_value()}, not {got}")
        back = _line_back(ctx, prev, lambda p, _: p >= period - 1)
        if not isinstance(back, list):
            return back
        advance = advance_of(((p, b, gross) for p, b, gross, _ in back), period - 1)
        if e["advance"] != advance:
            return _mismatch("advance", advance, e["advance"], "sales")
        return sales, advance, 0
    if basis == "expire":
        assert prev is not None and months > 0  # checked by _order and validate_grant
        back = _line_back(ctx, prev, lambda _, b: b != "expire")
        if not isinstance(back, list):
            return back
        due, net = expiry_terms(reversed(back), months)
        if due is None:
            return Invalid("expiry-early", "nothing was granted since the line last expired")
        if period < due:
            return Invalid(
                "expiry-early",
                f"the line may expire from {period_label(due)} ({months} months after its last "
                f"positive grant), not in {period_label(period)}",
            )
        return NO_SALES, 0, net
    return NO_SALES, 0, 0


def validate_share(ctx: Context) -> Verdict:
    """The Foundation collects its share of one grant (once: the activity fold, ``duplicate``)."""
    if ctx.rules.foundation != ctx.author:
        return Invalid("role", "only the Foundation collects its share of grants")
    role = ctx.require_role(Role.FOUNDATION)
    if not role:
        return role
    grant = ctx.must_get_entry(ctx.entry["grant"], (GRANT,), what="grant")
    if not isinstance(grant, Fetched):
        return grant
    share = grant.entry["share"]
    if share <= 0:
        return Invalid("share", "that grant has no share for the Foundation")
    delta = ctx.entry["credit"]["delta"]
    if delta != share:
        return Invalid("share", f"the grant's share is {share}, not {delta}")
    return VALID


def grant_key(entry: Mapping[str, Any]) -> bytes:
    """A grant's ``once`` key: the grant it follows, or (a co-op's first) ``line``."""
    prev: ActionHash | None = entry["prev_grant"]
    return _FIRST if prev is None else b"p" + prev.to_bytes()


def share_key(entry: Mapping[str, Any]) -> bytes:
    """A share's ``once`` key: the grant (the Foundation collects each share once)."""
    grant: ActionHash = entry["grant"]
    return grant.to_bytes()


_SALES: Final = Map(
    {
        "count": Int(0, INT63),
        "total": Int(0, INT63),
        "excluded": Int(0, INT63),
        "new": Int(0, INT63),
    }
)
GRANT_FIELDS: Final = {
    "basis": OneOf(*BASES),
    "period": Int(0, 1 << 31),
    "prev_grant": Optional(Hash(ActionHash)),
    "added": ListOf(Hash(ActionHash), MAX_LINE_OFFERS),
    "dropped": ListOf(Hash(ActionHash), MAX_LINE_OFFERS),
    "offered": Int(0, MAX_AMOUNT),
    "high": Int(0, MAX_AMOUNT),
    "sales": Optional(_SALES),
    "advance": Optional(Int(0, MAX_AMOUNT)),
    "estimate": Int(0, MAX_AMOUNT),
    "granted": Int(0, MAX_AMOUNT),
    "share": Int(0, MAX_AMOUNT),
}
SHARE_FIELDS: Final = {"grant": Hash(ActionHash)}
