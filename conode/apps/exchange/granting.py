"""The exchange's grant functions: grant on posting or enlarging an offer, re-estimate monthly, collect shares.

Thin, like ``functions``: each reads what the node holds, works the figures
out with the same pure code the validator runs (``grants``), and commits.
A node also runs ``grants-reestimate`` and ``share-collect`` by itself
(``conode.apphost``: the app duties), so grants follow sales without anyone
typing a command; both are idempotent. The same re-estimation pass expires
the lines that are due when the charter switches expiry on
(``grant_expiry_months``): re-estimate first (from last month's sales), then
expire, so an expiry never pre-empts the month's re-estimate.

Grants read the rules in force (the cap and the Foundation's share) and where
a hosted agent's chain stands (its head and balance): ``api.rules()`` and
``api.activity(agent)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from conode.apps.exchange.config import GRANT, OFFER, SHARE, UPDATE, read_config
from conode.apps.exchange.entries import app
from conode.apps.exchange.grants import (
    NO_SALES,
    Amounts,
    Grant,
    GrantLine,
    Sales,
    grant_amounts,
    grant_lines,
    period_label,
    period_of,
    shares_collected,
    tally_sales,
)
from conode.apps.exchange.market import Listing, listings
from conode.apps.sdk import AppAPI, Read
from conode.chain import Record
from conode.errors import ConodeError, EncodingError, ValidationError
from conode.hashes import ActionHash, AgentKey
from conode.validation.credit import ISSUES_CREDIT
from conode.validation.entries import MAX_AMOUNT
from conode.validation.governance import Rules
from conode.validation.verdict import Missing, Verdict

__all__ = [
    "GrantPolicy",
    "grant_for",
    "grants_function",
    "grants_reestimate",
    "share_collect",
]

_RETRIES: Final = 2
"""A grant is worked out from the chain as it stands; if the chain moved before the commit (a
payment arrived), it is worked out again, at most this many more times."""
_MOVED: Final = frozenset({"grant", "period", "sales", "balance", "prev-credit", "duplicate"})
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
            return
        if not (isinstance(settings, dict) and settings.get(ISSUES_CREDIT) is True):
            self.off = "the rules do not let the exchange issue credit (issues_credit)"
        elif config.grant_cap is None:
            self.off = "the rules set no grant_cap"
        else:
            self.cap = config.grant_cap
            self.expiry_months = config.grant_expiry_months
        self.share_bp = rules.params.foundation_share_bp if rules.foundation is not None else 0
        self.credit_limit = rules.limits(True).credit
        self.foundation = rules.foundation


def _moved(exc: ConodeError) -> bool:
    return isinstance(exc, ValidationError) and exc.rule in _MOVED


def _reads(api: AppAPI, *entry_types: str) -> list[Read]:
    return [read for record in api.records(*entry_types) if (read := app.read(record)) is not None]


def _get(api: AppAPI) -> Any:
    def get(action: ActionHash) -> Record | Verdict:
        record = api.get(action)
        return Missing((action,)) if record is None else record

    return get


def _value(listing: Listing) -> int:
    return min(listing.price * listing.quantity, MAX_AMOUNT)


def _entry(
    line_offer: ActionHash,
    basis: str,
    period: int,
    revision: ActionHash,
    value: int,
    prev: Grant | None,
    amounts: Amounts,
    sales: Sales | None,
) -> dict[str, Any]:
    prev_granted = 0 if prev is None else prev.granted
    return {
        "offer": line_offer,
        "basis": basis,
        "period": period,
        "revision": revision,
        "value": value,
        "prev_grant": None if prev is None else prev.hash,
        "estimate": amounts.estimate,
        "granted": prev_granted + amounts.gross,
        "share": amounts.share,
        "sales": None if sales is None else sales.to_value(),
        "credit": amounts.delta,  # App.prepare makes the move from the chain as it stands
    }


def _line(api: AppAPI, offer: ActionHash) -> GrantLine | None:
    return grant_lines(_reads(api, GRANT)).get(offer)


def _committed(api: AppAPI, grant: ActionHash) -> Grant:
    record = api.get(grant)
    read = None if record is None else app.read(record)
    assert read is not None  # just committed here
    return Grant.of(read)


def _summary(api: AppAPI, grant: ActionHash) -> dict[str, Any]:
    return _committed(api, grant).to_value()


# -- new and enlarge ---------------------------------------------------------------------------------


async def grant_for(api: AppAPI, offer: ActionHash) -> dict[str, Any]:
    """Grant credit for a hosted co-op's offer as it now stands (``new``, or ``enlarge`` after an
    update that raised its value); ``{"grant": ...}`` or ``{"skipped": why}``. Never raises for a
    refusal: the offer itself is posted either way."""

    for attempt in range(_RETRIES + 1):
        policy = GrantPolicy(api.rules())
        if policy.off is not None:
            return {"skipped": policy.off}
        record = api.get(offer)
        listing = listings([record, *api.records(UPDATE)]).get(offer) if record else None
        if listing is None or listing.kind != "offer":
            return {"skipped": f"this node holds no offer {offer}"}
        if listing.closed is not None or not listing.is_open(api.now()):
            return {"skipped": f"the offer is {listing.status(api.now())}"}
        line = _line(api, offer)
        if line is not None and line.expired:
            return {"skipped": f"its grant line expired in {period_label(line.latest.period)}"}
        prev = None if line is None else line.latest
        if prev is not None and prev.revision == listing.head:
            return {"skipped": "the offer has not changed since it was last granted for"}
        basis = "new" if prev is None else "enlarge"
        activity = api.activity(listing.author)
        amounts = grant_amounts(
            basis,
            cap=policy.cap,
            value=_value(listing),
            prev_value=0 if prev is None else prev.value,
            prev_granted=0 if prev is None else prev.granted,
            sales=0,
            share_bp=policy.share_bp,
            balance_before=activity.balance,
            credit_limit=policy.credit_limit,
        )
        if amounts.gross <= 0:
            return {"skipped": "nothing to grant: the offer's value did not rise past the line"}
        entry = _entry(
            offer, basis, period_of(api.now()), listing.head, _value(listing), prev, amounts, None
        )
        try:
            committed = await api.commit(listing.author, GRANT, entry)
        except ConodeError as exc:
            if attempt == _RETRIES or not _moved(exc):
                return {"skipped": f"refused: {exc}"}
            continue
        return {"grant": _summary(api, committed)}
    raise AssertionError("unreachable")  # the loop returns on its last attempt


# -- re-estimation ---------------------------------------------------------------------------------


def _due(line: GrantLine, listing: Listing | None, period: int) -> str | None:
    """Why the line is not re-estimated in ``period`` (None: it is due)."""
    if line.expired:
        return f"expired in {period_label(line.latest.period)}"
    if line.reestimated_in(period):
        return f"re-estimated for {period_label(period - 1)} already"
    posted = listing.timestamp if listing is not None else line.grants[0].timestamp
    if period_of(posted) >= period - 1:
        return "posted last month or this one: its first whole month is not over"
    return None


async def _reestimate_author(
    api: AppAPI,
    author: AgentKey,
    lines: Sequence[GrantLine],
    held: dict[ActionHash, Listing],
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    tallies: dict[tuple[ActionHash | None, int], dict[ActionHash, Sales]] = {}
    for line in lines:
        listing = held.get(line.offer)
        row: dict[str, Any] = {
            "offer": str(line.offer),
            "title": None if listing is None else listing.title,
        }
        for attempt in range(_RETRIES + 1):
            policy = GrantPolicy(api.rules())
            period = period_of(api.now())
            # the pass read every line once; a refusal may mean the line moved: read it again
            current = line if attempt == 0 else (_line(api, line.offer) or line)
            why = policy.off or _due(current, listing, period)
            if why is not None:
                row["skipped"] = why
                break
            activity = api.activity(author)
            head = None if activity.head is None else activity.head.hash
            key = (head, period)
            if key not in tallies:
                tally = tally_sales(_get(api), head, author, period - 1)
                if not isinstance(tally, dict):
                    row["skipped"] = f"the co-op's chain is not all held here: {tally}"
                    break
                tallies[key] = tally
            sales = tallies[key].get(line.offer, NO_SALES)
            prev = current.latest
            amounts = grant_amounts(
                "reestimate",
                cap=policy.cap,
                value=prev.value,
                prev_value=prev.value,
                prev_granted=prev.granted,
                sales=sales.total,
                share_bp=policy.share_bp,
                balance_before=activity.balance,
                credit_limit=policy.credit_limit,
            )
            if amounts.gross == 0:
                row["skipped"] = f"unchanged: {sales.count} sales in {period_label(period - 1)}"
                break
            entry = _entry(
                line.offer, "reestimate", period, prev.revision, prev.value, prev, amounts, sales
            )
            try:
                committed = await api.commit(author, GRANT, entry)
            except ConodeError as exc:
                if attempt == _RETRIES or not _moved(exc):
                    row["refused"] = str(exc)
                    break
                continue
            done = _committed(api, committed)
            row["grant"] = done.to_value()
            current = GrantLine(current.offer, current.author, (*current.grants, done))
            break
        expiry = await _expire(api, author, line.offer, current)
        if expiry is not None:
            row["expiry"] = expiry
        results.append(row)
    return results


async def _expire(
    api: AppAPI, author: AgentKey, offer: ActionHash, known: GrantLine | None
) -> dict[str, Any] | None:
    """Expire ``offer``'s line if it is due: ``{"grant": ...}``, ``{"skipped": why}`` (due, but
    nothing unspent) or ``{"refused": why}``; None if it is not due (or the switch is off).
    ``known``: the line as the caller last saw it (None: read it here); re-read after a refusal."""
    for attempt in range(_RETRIES + 1):
        policy = GrantPolicy(api.rules())
        if policy.expiry_months == 0:  # the switch is off (or grants are): read nothing
            return None
        line = known if attempt == 0 and known is not None else _line(api, offer)
        period = period_of(api.now())
        due = None if line is None else line.expires(policy.expiry_months)
        if line is None or due is None or period < due:
            return None
        prev = line.latest
        amounts = grant_amounts(
            "expire",
            cap=policy.cap,
            value=prev.value,
            prev_value=prev.value,
            prev_granted=prev.granted,
            sales=0,
            share_bp=policy.share_bp,
            balance_before=api.activity(author).balance,
            credit_limit=policy.credit_limit,
            net=line.net,
        )
        if amounts.gross == 0:
            return {"skipped": f"due since {period_label(due)}, but nothing of it is unspent"}
        entry = _entry(offer, "expire", period, prev.revision, prev.value, prev, amounts, None)
        try:
            committed = await api.commit(author, GRANT, entry)
        except ConodeError as exc:
            if attempt == _RETRIES or not _moved(exc):
                return {"refused": str(exc)}
            continue
        return {"grant": _summary(api, committed)}
    raise AssertionError("unreachable")  # the loop returns on its last attempt


@app.function("grants-reestimate")
async def grants_reestimate(api: AppAPI, coop: AgentKey | None = None) -> list[dict[str, Any]]:
    """Re-estimate the granted offers of this node's co-ops (or one, ``coop``) from last month's sales,
    then expire the lines that are due.

    Each line is set to the counted sales of the previous month (at most the
    cap): the difference is granted or recovered. Skipped: lines re-estimated
    this month, offers whose first whole month is not over, lines the sales
    leave unchanged (nothing is written for them), and expired lines. With
    ``grant_expiry_months`` in force, a line that is due then expires
    (``expiry``: the grant, or why not); a line not due has no ``expiry``.
    """

    hosted = list(api.agents())
    if coop is not None:
        key = _agent(coop)
        if key not in hosted:
            raise ValueError(f"this node does not host {key}")
        hosted = [key]
    lines = [line for line in grant_lines(_reads(api, GRANT)).values() if line.author in hosted]
    if not lines:
        return []
    held = listings(api.records(OFFER, UPDATE))
    results = []
    for author in hosted:
        mine = sorted(
            (line for line in lines if line.author == author), key=lambda line: line.offer.raw
        )
        if mine:
            results += await _reestimate_author(api, author, mine, held)
    return results


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
    done = shares_collected(r for r in _reads(api, SHARE) if r.author == fund)
    owed = [g for g in _reads(api, GRANT) if g.entry["share"] > 0 and g.hash not in done]
    owed.sort(key=lambda g: (g.timestamp, g.hash.raw))
    collected = []
    for grant in owed:
        share = grant.entry["share"]
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
    """Grant lines held here, per offer (of ``coop``, or one ``offer``, if given), newest first.

    Each: the offer's title and status, where the line stands (``granted``,
    ``estimate``, last ``period`` and ``basis``), the Foundation's shares
    (owed and collected), when it may expire under the rules in force
    (``expires``: ``YYYY-MM``, or None: never) or when it did (``expired``),
    and every grant in order.
    """
    months = GrantPolicy(api.rules()).expiry_months
    who = None if coop is None else _agent(coop)
    only = None if offer is None else _offer(offer)
    at = api.now()
    held = listings(api.records(OFFER, UPDATE))
    done = shares_collected(_reads(api, SHARE))
    lines = [
        line
        for line in grant_lines(_reads(api, GRANT)).values()
        if (who is None or line.author == who) and (only is None or line.offer == only)
    ]
    lines.sort(key=lambda line: (-line.grants[0].timestamp, line.offer.raw))
    rows = []
    for line in lines:
        listing = held.get(line.offer)
        latest = line.latest
        rows.append(
            {
                "offer": str(line.offer),
                "title": None if listing is None else listing.title,
                "status": None if listing is None else listing.status(at),
                "author": str(line.author),
                "granted": latest.granted,
                "estimate": latest.estimate,
                "period": period_label(latest.period),
                "basis": latest.basis,
                "shares": sum(g.share for g in line.grants),
                "collected": sum(g.share for g in line.grants if g.hash in done),
                "expires": None if (due := line.expires(months)) is None else period_label(due),
                "expired": period_label(latest.period) if line.expired else None,
                "grants": [{**g.to_value(), "collected": g.hash in done} for g in line.grants],
            }
        )
    return rows
