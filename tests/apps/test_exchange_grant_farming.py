"""Farming grant credit, one pattern at a time (issue #13, item 7): each earns nothing.

Each test first does what a farming co-op does through its node's own
functions (``offer-add``, ``offer-withdraw``, ``grants-reestimate``, paying)
and checks that the co-op is granted no more than the rule allows; then it
forges the grant a modified node would write instead, and checks that the
rules every peer runs refuse it. Records are signed and judged by the same
activity fold and engine a peer runs (``Ledger``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conode.apps.exchange import GRANT, OFFER, app
from conode.apps.exchange.grant_views import grant_lines
from conode.chain import Record
from conode.hashes import ActionHash
from conode.testing import Ledger
from conode.testing.ledger import DAY
from conode.validation.audit import overdue
from conode.validation.calendar import period_of, period_start
from conode.validation.charter import Limits
from conode.validation.verdict import Invalid, Valid, Verdict

CAP = 50_000
SHARE_BP = 1_000  # the Ledger's charter: the Foundation's share is 10 %
WIDE = Limits(200_000, 1_000_000)

GrantAPI = Any
"""``LedgerAPI`` (``tests/apps/ledgerapi.py``): the ledger's ``AppAPI``."""


@pytest.fixture
def ledger() -> Ledger:
    return Ledger(
        apps={"exchange": app},
        foundation=True,
        app_config={"exchange": {"issues_credit": True, "grant_cap": CAP}},
        coop_limits=WIDE,
        member_limits=WIDE,
    )


@pytest.fixture
def api(ledger: Ledger, api_for: Callable[[Ledger, Any], GrantAPI]) -> GrantAPI:
    return api_for(ledger, app)


def rule(verdict: Verdict) -> str:
    assert isinstance(verdict, Invalid), f"expected a refusal, got {verdict!r}"
    return verdict.rule


def ok(verdict: Verdict) -> None:
    assert isinstance(verdict, Valid), verdict


def to_month(ledger: Ledger, months_on: int = 1) -> None:
    """Move the clock to the second day of the month ``months_on`` after the current one."""
    target = period_of(ledger.clock) + months_on
    ledger.advance(period_start(target) + DAY - ledger.clock)


def to_coop(gross: int) -> int:
    """What a grant of ``gross`` moves to the co-op: the gross less the Foundation's share."""
    return gross - gross * SHARE_BP // 10_000


async def post(
    api: GrantAPI, title: str = "Sourdough bread", price: int = 100, quantity: int = 200
) -> dict[str, Any]:
    """``offer-add`` for coop0, as its node runs it: the offer, with its grant (or why none)."""
    posted: dict[str, Any] = await app.functions["offer-add"](
        api, title=title, category="food/bakery", price=price, unit="loaf", quantity=quantity,
        agent=api.ledger["coop0"].key,
    )  # fmt: skip
    return posted


def grants_of(ledger: Ledger, name: str = "coop0") -> list[Record]:
    return [r for r in ledger[name].chain if r.action.entry_type == GRANT]


def forge(ledger: Ledger, **values: Any) -> Verdict:
    """Commit a grant for coop0 built by hand, as a modified node would (``credit``: the delta)."""
    activity = ledger["coop0"].activity
    period = period_of(ledger.clock + 1_000)
    values = {
        "period": period, "sales": None, "advance": None, "share": 0,
        "due": period_start(period + 1), "rules": ledger.gov_head, **values,
    }  # fmt: skip
    entry = app.prepare(GRANT, values, last_credit=activity.last_credit, balance=activity.balance)
    return ledger.create("coop0", GRANT, entry)[1]


def line_after(ledger: Ledger) -> dict[str, Any]:
    """The fields a forged grant following coop0's latest grant carries over."""
    prev = grants_of(ledger)[-1]
    e = prev.entry_value()
    return {"prev_grant": prev.hash, "high": e["high"], "granted": e["granted"]}


def counted(ledger: Ledger) -> frozenset[ActionHash]:
    """The revisions coop0's line counts after its latest grant."""
    reads = [read for r in grants_of(ledger) if (read := app.read(r)) is not None]
    return grant_lines(reads)[ledger["coop0"].key].counted()


def counted_twice(ledger: Ledger, listed: list[ActionHash]) -> dict[str, Any]:
    """A forged enlarge after coop0's line at 20 000 counting ``listed`` (two offers of 20 000
    each) in full: 40 000 on offer, the line granted 20 000 more."""
    added = sorted(set(listed) - counted(ledger), key=lambda h: h.raw)
    claim = {
        "basis": "enlarge", **line_after(ledger), "added": added, "dropped": [], "offered": 40_000,
        "estimate": 40_000, "share": 2_000, "credit": 18_000,
    }  # fmt: skip
    claim["high"], claim["granted"] = 40_000, 40_000
    return claim


def open_revisions(ledger: Ledger) -> list[ActionHash]:
    """coop0's offers as they stand (each offer's latest revision), ascending, as a grant lists them."""
    latest: dict[ActionHash, ActionHash] = {}
    for record in ledger["coop0"].chain:
        if record.action.entry_type == OFFER:
            latest[record.hash] = record.hash
        elif record.action.entry_type == "exchange/update":
            e = record.entry_value()
            item = ActionHash.from_bytes(e["item"])
            if e.get("close"):
                latest.pop(item, None)
            elif item in latest:
                latest[item] = record.hash
    return sorted(latest.values(), key=lambda h: h.raw)


async def test_many_offers_in_one_month_earn_the_cap_once(ledger: Ledger, api: GrantAPI) -> None:
    """Five offers, each worth more than the cap, in one month: the co-op's line stands at the
    cap, once (before: five full grants)."""
    for i in range(5):
        await post(api, title=f"Bread no. {i}", price=600, quantity=100)  # 60 000 a month each
    assert ledger["coop0"].balance == to_coop(CAP)
    gross = sum(
        r.entry_value()["credit"]["delta"] + r.entry_value()["share"] for r in grants_of(ledger)
    )
    assert gross == CAP
    # forged: a second line for another offer (a co-op has one), or its line past the cap
    second = {
        "basis": "new", "prev_grant": None, "added": open_revisions(ledger)[:1], "dropped": [],
        "offered": 60_000, "high": 60_000, "estimate": CAP, "granted": CAP,
        "share": CAP // 10, "credit": to_coop(CAP),
    }  # fmt: skip
    assert rule(forge(ledger, **second)) == "duplicate"
    over = {
        "basis": "enlarge", **line_after(ledger), "dropped": [],
        "added": sorted(set(open_revisions(ledger)) - counted(ledger), key=lambda h: h.raw),
        "offered": 300_000, "estimate": 2 * CAP, "share": CAP // 10, "credit": to_coop(CAP),
    }  # fmt: skip
    over["high"], over["granted"] = 300_000, 2 * CAP
    assert rule(forge(ledger, **over)) == "grant"
    assert ledger["coop0"].balance == to_coop(CAP)
    assert ledger.audit().ok


async def test_withdrawing_an_offer_and_posting_it_again_earns_nothing_new(
    ledger: Ledger, api: GrantAPI
) -> None:
    """Post, withdraw, post the same again within the minute: one grant (before: two)."""
    first = await post(api)
    assert first["grant"]["grant"]["gross"] == 20_000
    await app.functions["offer-withdraw"](api, offer=first["hash"])
    again = await post(api)
    assert "grant" not in again["grant"], again["grant"]  # not granted again
    assert "nothing to grant" in again["grant"]["skipped"]
    assert ledger["coop0"].balance == to_coop(20_000)
    # forged: count the withdrawn offer beside the new one, as if both were on offer
    both = sorted(
        [ActionHash.parse(first["hash"]), ActionHash.parse(again["hash"])], key=lambda h: h.raw
    )
    assert rule(forge(ledger, **counted_twice(ledger, both))) == "offers"
    # under another title it is another offer, but the co-op's total is still what was granted
    await app.functions["offer-withdraw"](api, offer=again["hash"])
    renamed = await post(api, title="Country sourdough")
    assert "nothing to grant" in renamed["grant"]["skipped"]
    named = sorted(
        [ActionHash.parse(first["hash"]), ActionHash.parse(renamed["hash"])], key=lambda h: h.raw
    )
    assert rule(forge(ledger, **counted_twice(ledger, named))) == "offers"
    assert ledger["coop0"].balance == to_coop(20_000)
    assert ledger.audit().ok


async def test_posting_the_same_offer_twice_earns_nothing_new(
    ledger: Ledger, api: GrantAPI
) -> None:
    """The same offer posted twice: one grant (before: two). Offers of one co-op with the same
    category, title and unit are one offer, counted at the larger value."""
    await post(api)
    twice = await post(api)
    assert "grant" not in twice["grant"], twice["grant"]  # not granted twice
    assert "nothing to grant" in twice["grant"]["skipped"]
    assert ledger["coop0"].balance == to_coop(20_000)
    listed = open_revisions(ledger)
    assert len(listed) == 2
    # forged: both counted in full
    claim = counted_twice(ledger, listed)
    assert rule(forge(ledger, **claim)) == "offers"
    # forged: counted once, but granted as if twice
    once = {**claim, "offered": 20_000, "high": 20_000}
    assert rule(forge(ledger, **once)) == "grant"
    # a different offer is more on offer, and earns its value
    other = await post(api, title="Rye loaf", quantity=50)
    assert other["grant"]["grant"]["gross"] == 5_000
    assert ledger.audit().ok


async def test_a_coop_may_not_pay_until_its_downward_reestimate_is_written(
    ledger: Ledger, api: GrantAPI
) -> None:
    """A month of no sales, and the co-op's node does not write the re-estimate that would take
    the grant back: every peer refuses the co-op's payments (``overdue``) until it is written
    (before: it spent the grant, and nothing ever made the re-estimate happen)."""
    posted = await post(api)  # granted 20 000 (18 000 to the co-op)
    lapsed = ActionHash.parse(posted["hash"])  # posted for 30 days: no longer on offer below
    to_month(ledger, 2)  # the offer's first whole month passes without a sale
    assert rule(ledger.pay("coop0", "coop1", 15_000)) == "overdue"
    owed = overdue(ledger.audit(), ledger.clock)  # the audit lists the line as owing
    assert [(o.agent, o.entry_type) for o in owed] == [(ledger["coop0"].key, GRANT)]
    # being paid is not paying: the co-op still sells while it owes its re-estimate
    ok(ledger.pay("coop1-m0", "coop0", 1_000, offer=ActionHash.parse(posted["hash"])))
    # forged: a grant that is not the re-estimate cannot come first in the month to move the due
    enlarge = {
        "basis": "enlarge", **line_after(ledger), "added": [], "dropped": [lapsed], "offered": 0,
        "estimate": 20_000,
        "credit": 0,
    }  # fmt: skip
    assert rule(forge(ledger, **enlarge)) == "basis"
    # forged: the re-estimate, claiming the line stays where it is
    kept = {
        "basis": "reestimate", **line_after(ledger), "added": [], "dropped": [lapsed], "offered": 0,
        "sales": {"count": 0, "total": 0, "excluded": 0, "new": 0}, "advance": 0,
        "estimate": 20_000, "credit": 0,
    }  # fmt: skip
    assert rule(forge(ledger, **kept)) == "grant"
    assert ledger["coop0"].balance == to_coop(20_000) + 1_000
    # the co-op's node writes it (as it does by itself at the month's start): then it pays
    (row,) = await app.functions["grants-reestimate"](api)
    assert (row["grant"]["gross"], row["grant"]["granted"]) == (-20_000, 0)
    ok(ledger.pay("coop0", "coop1", 15_000))
    assert ledger["coop0"].balance == to_coop(20_000) + 1_000 - 20_000 - 15_000
    assert overdue(ledger.audit(), ledger.clock) == []
    assert ledger.audit().ok
