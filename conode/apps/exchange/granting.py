"""The exchange's grant functions: grant as offers grow, re-estimate monthly, collect shares.

Thin, like ``functions``: each reads what the node holds, works the figures
out with the same pure code the validator runs (``grants``: the walk back to
the co-op's last grant, its open offers, the month's sales, the arithmetic),
and commits. A node also runs ``grants-reestimate`` and ``share-collect`` by
itself (``conode.apphost``: the app duties, at start and every 30 s), so a
co-op's line is re-estimated as soon as a month begins, before the co-op
could be kept from paying (``overdue``); both are idempotent. The same pass
pauses a line when the rules switch grants off, and expires a line that is
due when the charter switches expiry on (``grant_expiry_months``): the
month's re-estimate first, then the expiry.

Grants read the rules in force (the cap, the Foundation's share, the limits)
and where a hosted agent's chain stands (its head and balance):
``api.rules()`` and ``api.activity(agent)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from conode.apps.exchange.config import GRANT, OFFER, SHARE, UPDATE, read_config
from conode.apps.exchange.entries import app
from conode.apps.exchange.grant_figures import (
    Amounts,
    LineState,
    Revision,
    Sales,
    advance_of,
    due_of,
    grant_amounts,
    offered_value,
    open_offers,
    read_revision,
)
from conode.apps.exchange.grant_sales import Scan, line_sales, scan_chain
from conode.apps.exchange.grant_views import Grant, GrantLine, lines_of, shares_collected
from conode.apps.exchange.grants import MAX_LINE_OFFERS
from conode.apps.exchange.market import listings
from conode.apps.sdk import AppAPI, Read
from conode.chain import Record
from conode.errors import ConodeError, EncodingError, ValidationError
from conode.hashes import ActionHash, AgentKey
from conode.validation.calendar import date_label, period_label, period_of
from conode.validation.charter import Limits
from conode.validation.credit import ISSUES_CREDIT
from conode.validation.entries import Genesis
from conode.validation.governance import Rules
from conode.validation.verdict import Missing, Verdict

__all__ = [
    "GrantPolicy",
    "grant_for",
    "grants_function",
    "grants_reestimate",
    "reestimate",
    "share_collect",
]

_RETRIES: Final = 2
"""A grant is worked out from the chain as it stands; if the chain moved before the commit (a
payment arrived), it is worked out again, at most this many more times."""
_GRANTS_CACHE: Final = 100_000
_MOVED: Final = frozenset(
    {"grant", "period", "sales", "offers", "basis", "balance", "prev-credit", "duplicate"}
)
"""Refusals that mean the chain, the clock or the month moved between working out and committing."""


class GrantPolicy:
    """The rules' grant settings as a function needs them; ``off`` says why there are no grants."""

    def __init__(self, rules: Rules) -> None:
        settings = rules.params.app_settings("exchange")
        self.off: str | None = None
        self.cap = 0
        self.expiry_months = 0
        try:
            config = read_config(settings)
        except ValueError as exc:
            self.off = f"the exchange configuration in force is malformed: {exc}"
            config = None
        if config is None:
            pass
        elif not (isinstance(settings, dict) and settings.get(ISSUES_CREDIT) is True):
            self.off = "the rules do not let the exchange issue credit (issues_credit)"
        elif config.grant_cap is None:
            self.off = "the rules set no grant_cap"
        else:
            self.cap = config.grant_cap
            self.expiry_months = config.grant_expiry_months
        self.share_bp = rules.params.foundation_share_bp if rules.foundation is not None else 0
        self.limits: Limits = rules.limits(True)
        self.foundation = rules.foundation


def _moved(exc: ConodeError) -> bool:
    return isinstance(exc, ValidationError) and exc.rule in _MOVED


def _reads(api: AppAPI, entry_type: str, authors: Iterable[AgentKey] | None = None) -> list[Read]:
    records = api.records(entry_type, authors=None if authors is None else list(authors))
    return [read for record in records if (read := app.read(record)) is not None]


def _get(api: AppAPI) -> Any:
    def get(action: ActionHash) -> Record | Verdict:
        record = api.get(action)
        return Missing((action,)) if record is None else record

    return get


_grants_read: dict[ActionHash, Grant] = {}
"""Grants already read, by record hash (records are immutable): the duty reads every line of
the node's co-ops every 30 s, and a grant is parsed once."""


def _grants(api: AppAPI, authors: Iterable[AgentKey] | None) -> list[Grant]:
    """The grants of ``authors`` (None: everyone's) held here."""
    grants = []
    for record in api.records(GRANT, authors=None if authors is None else list(authors)):
        grant = _grants_read.get(record.hash)
        if grant is None:
            read = app.read(record)
            if read is None:
                continue
            if len(_grants_read) >= _GRANTS_CACHE:
                _grants_read.clear()
            grant = _grants_read[record.hash] = Grant.of(read)
        grants.append(grant)
    return grants


def _lines(api: AppAPI, authors: Iterable[AgentKey] | None) -> dict[AgentKey, GrantLine]:
    """The grant lines of ``authors`` (None: every co-op's) held here."""
    return lines_of(_grants(api, authors))


def _line(api: AppAPI, author: AgentKey) -> GrantLine | None:
    return _lines(api, [author]).get(author)


_names: dict[AgentKey, str] = {}
"""Names read from geneses (a genesis never changes): the duty names every co-op every 30 s."""


def _name(api: AppAPI, agent: AgentKey) -> str | None:
    """The agent's name from its genesis, if this node holds it."""
    known = _names.get(agent)
    if known is not None:
        return known
    try:
        genesis = api.activity(agent).genesis
        record = None if genesis is None else api.get(genesis)
        if record is None:
            return None
        name = Genesis.from_value(record.entry_value()).name
    except (ConodeError, ValueError):
        return None
    if len(_names) >= _GRANTS_CACHE:
        _names.clear()
    _names[agent] = name
    return name


@dataclass(frozen=True, slots=True)
class _Plan:
    """A grant worked out from the chain as it stands: its entry and figures."""

    entry: dict[str, Any]
    amounts: Amounts
    offered: int
    sales: Sales | None


def _listed(current: dict[ActionHash, Revision]) -> list[Revision]:
    """What a line counts: every open offer, the largest if there are too many, ascending."""
    kept = sorted(current.values(), key=lambda r: (-r.value, r.hash.raw))[:MAX_LINE_OFFERS]
    return sorted(kept, key=lambda r: r.hash.raw)


def _plan(
    api: AppAPI, author: AgentKey, line: GrantLine | None, basis: str, policy: GrantPolicy
) -> _Plan | str:
    """The ``basis`` grant ``author``'s line needs now, or why it cannot be worked out here."""
    now = api.now()
    period = period_of(now)
    prev = None if line is None else line.latest
    activity = api.activity(author)
    head = None if activity.head is None else activity.head.hash
    get = _get(api)
    scan = scan_chain(
        get, head, author, stop=None if prev is None else prev.hash,
        period=period - 1 if basis == "reestimate" else None,
    )  # fmt: skip
    if not isinstance(scan, Scan):
        return f"the co-op's chain is not all held here: {scan}"
    before = frozenset() if line is None else line.counted()
    current = open_offers(get, tuple(before), scan.latest, author, now)
    if not isinstance(current, dict):
        return f"the co-op's offers are not all held here: {current}"
    listed = _listed(current)
    counted = {r.hash for r in listed}
    offered = offered_value(listed)
    sales: Sales | None = None
    advance: int | None = None
    net = 0
    if basis == "reestimate":
        assert line is not None and scan.tally is not None  # a re-estimate follows a grant
        month = line_sales(get, scan.tally, period - 1)
        if not isinstance(month, Sales):
            return f"the co-op's sales are not all held here: {month}"
        sales = month
        advance = advance_of(((g.period, g.basis, g.gross) for g in line.grants), period - 1)
    elif basis == "expire":
        assert line is not None
        net = line.net
    state = LineState() if prev is None else prev.state
    amounts = grant_amounts(
        basis, state, cap=policy.cap, share_bp=policy.share_bp, balance_before=activity.balance,
        limits=policy.limits, offered=offered, sales=0 if sales is None else sales.total,
        new_sales=0 if sales is None else sales.new, advance=advance or 0, net=net,
    )  # fmt: skip
    granted = state.granted + amounts.gross
    entry = {
        "basis": basis,
        "period": period,
        "prev_grant": None if prev is None else prev.hash,
        "added": sorted(counted - before, key=lambda h: h.raw),
        "dropped": sorted(before - counted, key=lambda h: h.raw),
        "offered": offered,
        "high": amounts.high,
        "sales": None if sales is None else sales.to_value(),
        "advance": advance,
        "estimate": amounts.estimate,
        "granted": granted,
        "share": amounts.share,
        "due": due_of(basis, period, granted),
        "credit": amounts.delta,  # App.prepare makes the move from the chain as it stands
    }
    return _Plan(entry, amounts, offered, sales)


Worth = Callable[["_Plan", GrantLine | None], str | None]
"""Whether a worked-out grant is worth writing: None, or why not (given the line as it stood)."""


async def _commit(api: AppAPI, author: AgentKey, basis: str, worth: Worth) -> dict[str, Any]:
    """Work a ``basis`` grant out and commit it, again if the chain moved meanwhile.

    ``worth(plan, line)``: None to commit, or why the grant is not worth writing (``skipped``).
    ``{"grant": ...}``, ``{"skipped": why}`` or ``{"refused": why}``.
    """
    for attempt in range(_RETRIES + 1):
        policy = GrantPolicy(api.rules())
        line = _line(api, author)
        plan = _plan(api, author, line, basis, policy)
        if isinstance(plan, str):
            return {"skipped": plan}
        why = worth(plan, line)
        if why is not None:
            return {"skipped": why}
        try:
            committed = await api.commit(author, GRANT, plan.entry)
        except ConodeError as exc:
            if attempt == _RETRIES or not _moved(exc):
                return {"refused": str(exc)}
            continue
        return {"grant": _summary(api, committed)}
    raise AssertionError("unreachable")  # the loop returns on its last attempt


def _committed(api: AppAPI, grant: ActionHash) -> Grant:
    record = api.get(grant)
    read = None if record is None else app.read(record)
    assert read is not None  # just committed here
    return Grant.of(read)


def _summary(api: AppAPI, grant: ActionHash) -> dict[str, Any]:
    return _committed(api, grant).to_value()


# -- grants as offers grow ---------------------------------------------------------------------------


async def grant_for(api: AppAPI, offer: ActionHash) -> dict[str, Any]:
    """Grant credit to the co-op of ``offer`` (just posted, renewed or enlarged) if what it has on
    offer now is worth more than its line was ever granted for; ``{"grant": ...}`` or
    ``{"skipped": why}``. Writes the month's re-estimate first if the line is owed it. Never
    raises for a refusal: the offer itself is posted either way."""
    record = api.get(offer)
    if record is None:
        return {"skipped": f"this node holds no offer {offer}"}
    author = record.action.author
    if author not in api.agents():
        return {"skipped": "the offer's co-op is not hosted here"}
    policy = GrantPolicy(api.rules())
    if policy.off is not None:
        return {"skipped": policy.off}
    line = _line(api, author)
    if line is not None and line.latest.period < period_of(api.now()):
        first = await _commit(api, author, "reestimate", lambda plan, line: None)
        if "grant" not in first:
            why = first.get("skipped") or first.get("refused")
            return {"skipped": f"the line's re-estimate for this month comes first, and: {why}"}

    def worth(plan: _Plan, line: GrantLine | None) -> str | None:
        if plan.amounts.gross > 0:
            return None
        if line is not None and line.latest.granted >= policy.cap:
            return "nothing to grant: the co-op's line stands at the cap"
        return (
            "nothing to grant: what the co-op has on offer is worth no more than its line was "
            "granted for already (see conode grants)"
        )

    return await _commit(api, author, "new" if line is None else "enlarge", worth)


# -- the month's duty: re-estimate, pause, expire -------------------------------------------------------


def _not_due(line: GrantLine, period: int) -> str | None:
    """Why the line has no re-estimate to write in ``period`` (None: its first grant of the month)."""
    this_month = [g for g in line.grants if g.period == period]
    if not this_month:
        return None
    if any(g.basis == "reestimate" for g in this_month):
        return f"re-estimated for {period_label(period - 1)} already"
    if any(g.basis == "pause" for g in this_month):
        return f"paused in {period_label(period)}: grants are off"
    return "the line began this month: its first re-estimate is next month"


async def reestimate(api: AppAPI, coop: AgentKey, line: GrantLine | None = None) -> dict[str, Any]:
    """The month's re-estimate of ``coop``'s line (a pause, with grants off), if it is owed one:
    ``{"grant": ...}``, ``{"skipped": why}`` or ``{"refused": why}``. No expiry (the duty's).
    ``line``: the line as the caller just read it (None: read it here)."""
    line = line or _line(api, coop)
    if line is None:
        return {"skipped": "the co-op has no grant line"}
    policy = GrantPolicy(api.rules())
    period = period_of(api.now())
    why = _not_due(line, period)
    if why is not None:
        return {"skipped": why}
    if policy.off is not None:
        if line.latest.due is None:
            return {"skipped": f"{policy.off}: the line owes nothing"}
        return await _commit(api, coop, "pause", lambda plan, line: None)

    def worth(plan: _Plan, line: GrantLine | None) -> str | None:
        # a line at zero that stays there owes nothing: nothing is written for it
        if plan.amounts.gross or plan.entry["granted"]:
            return None
        return f"unchanged at 0: {_sold(plan.sales)} in {period_label(period - 1)}"

    return await _commit(api, coop, "reestimate", worth)


async def _month(api: AppAPI, line: GrantLine) -> dict[str, Any]:
    """The line's duty this month: its re-estimate (or a pause, grants off), then its expiry."""
    author = line.author
    row: dict[str, Any] = {"coop": str(author), "name": _name(api, author)}
    row.update(await reestimate(api, author, line))
    expiry = await _expire(api, author, GrantPolicy(api.rules()), None if "grant" in row else line)
    if expiry is not None:
        row["expiry"] = expiry
    return row


def _sold(sales: Sales | None) -> str:
    count = 0 if sales is None else sales.count
    return f"{count} sale{'' if count == 1 else 's'} counted"


async def _expire(
    api: AppAPI, author: AgentKey, policy: GrantPolicy, line: GrantLine | None
) -> dict[str, Any] | None:
    """Expire the line if it is due: ``{"grant": ...}``, ``{"skipped": why}`` (due, but nothing
    unspent) or ``{"refused": why}``; None if it is not due (or the switch is off). ``line``: the
    line as the caller knows it to stand (None: read it here)."""
    if policy.off is not None or policy.expiry_months == 0:
        return None  # the switch is off (or grants are): read nothing
    line = line or _line(api, author)
    period = period_of(api.now())
    due = None if line is None else line.expires(policy.expiry_months)
    if line is None or due is None or period < due or line.latest.period < period:
        return None

    def worth(plan: _Plan, line: GrantLine | None) -> str | None:
        if plan.amounts.gross:
            return None
        return f"due since {period_label(due)}, but nothing of it is unspent"

    return await _commit(api, author, "expire", worth)


@app.function("grants-reestimate")
async def grants_reestimate(api: AppAPI, coop: AgentKey | None = None) -> list[dict[str, Any]]:
    """The month's duty for this node's co-ops (or one, ``coop``): each line's re-estimate from last
    month's sales, then its expiry if due; one row per co-op with a line.

    The re-estimate is the line's first grant of each month after the one it
    began in; it is written even when nothing changes, while the line stands
    above zero (the co-op may not pay until it is). With grants off it is a
    pause. Skipped: a line done this month, or begun this month, or standing
    at zero with nothing to change. With ``grant_expiry_months`` in force, a
    line that is due then expires (``expiry``: the grant, or why not).
    """
    hosted = list(api.agents())
    if coop is not None:
        key = _agent(coop)
        if key not in hosted:
            raise ValueError(f"this node does not host {key}")
        hosted = [key]
    lines = _lines(api, hosted)
    rows = []
    for author in sorted(lines, key=lambda a: a.raw):
        rows.append(await _month(api, lines[author]))
    return rows


def _offer(value: ActionHash | str) -> ActionHash:
    try:
        return value if isinstance(value, ActionHash) else ActionHash.parse(value)
    except EncodingError as exc:
        raise ValueError(f"offer: {exc}") from exc


def _agent(value: AgentKey | str) -> AgentKey:
    try:
        return value if isinstance(value, AgentKey) else AgentKey.parse(value)
    except EncodingError as exc:
        raise ValueError(f"agent: {exc}") from exc


# -- the Foundation's shares ---------------------------------------------------------------------------


@app.function("share-collect")
async def share_collect(api: AppAPI) -> dict[str, Any]:
    """On the node hosting the Foundation: collect its share of every held grant not yet collected.

    Elsewhere it collects nothing and says so (``steward`` false).
    """
    fund = api.rules().foundation
    if fund is None:
        return {"foundation": None, "steward": False, "collected": []}
    if fund not in api.agents():
        return {"foundation": str(fund), "steward": False, "collected": []}
    done = shares_collected(_reads(api, SHARE, [fund]))
    owed = [g for g in _grants(api, None) if g.share > 0 and g.hash not in done]
    owed.sort(key=lambda g: (g.timestamp, g.hash.raw))
    collected = []
    for grant in owed:
        share = grant.share
        try:
            record = await api.commit(fund, SHARE, {"grant": grant.hash, "credit": share})
        except ConodeError as exc:
            collected.append({"grant": str(grant.hash), "share": share, "refused": str(exc)})
            continue
        collected.append({"grant": str(grant.hash), "share": share, "record": str(record)})
    return {"foundation": str(fund), "steward": True, "collected": collected}


# -- the view ---------------------------------------------------------------------------------------------


@app.function("grants")
def grants_function(
    api: AppAPI, coop: AgentKey | None = None, offer: ActionHash | None = None
) -> list[dict[str, Any]]:
    """The grant lines held here, one per co-op (``coop``'s, or the line of ``offer``'s co-op, if
    given), newest first.

    Each: the co-op (``coop``, ``name``), where the line stands (``granted``,
    ``estimate``, last ``period`` and ``basis``), what the co-op has on offer
    (``offered``, and ``offers``: each listed offer's ``offer``, ``title``,
    ``value`` and whether it ``counted``: the same offer twice counts once),
    the high-water mark (``high``), when its next re-estimate is owed
    (``due``, ``YYYY-MM-DD``, or None) and whether that has passed
    (``overdue``), the Foundation's shares (owed and collected), when it may
    expire under the rules in force (``expires``: ``YYYY-MM``, or None) and
    when it last did (``last_expiry``), and every grant in order.
    """
    months = GrantPolicy(api.rules()).expiry_months
    who = None if coop is None else _agent(coop)
    if offer is not None:
        record = api.get(_offer(offer))
        if record is None or record.action.entry_type != OFFER:
            raise ValueError(f"this node holds no offer {offer}")
        who = record.action.author
    at = api.now()
    lines = list(_lines(api, None if who is None else [who]).values())
    lines.sort(key=lambda line: (-line.grants[0].timestamp, line.author.raw))
    held = listings(api.records(OFFER, UPDATE, authors=[line.author for line in lines]))
    done = shares_collected(_reads(api, SHARE))
    get = _get(api)
    rows = []
    for line in lines:
        latest = line.latest
        counted = sorted(line.counted(), key=lambda h: h.raw)
        reads = [r for h in counted if isinstance(r := read_revision(get, h), Revision)]
        first_of_key: dict[tuple[str, str, str], ActionHash] = {}
        for read in sorted(reads, key=lambda r: (-r.value, r.hash.raw)):
            first_of_key.setdefault(read.key, read.hash)
        offers = []
        for read in reads:
            listing = held.get(read.offer)
            offers.append(
                {
                    "offer": str(read.offer),
                    "title": None if listing is None else listing.title,
                    "value": read.value,
                    "counted": first_of_key[read.key] == read.hash,
                }
            )
        rows.append(
            {
                "coop": str(line.author),
                "name": _name(api, line.author),
                "granted": latest.granted,
                "estimate": latest.estimate,
                "offered": latest.offered,
                "high": latest.high,
                "offers": offers,
                "period": period_label(latest.period),
                "basis": latest.basis,
                "due": None if latest.due is None else date_label(latest.due),
                "overdue": latest.due is not None and at >= latest.due,
                "shares": sum(g.share for g in line.grants),
                "collected": sum(g.share for g in line.grants if g.hash in done),
                "expires": None if (due := line.expires(months)) is None else period_label(due),
                "last_expiry": None if line.last_expiry is None else period_label(line.last_expiry),
                "grants": [{**g.to_value(), "collected": g.hash in done} for g in line.grants],
            }
        )
    return rows
