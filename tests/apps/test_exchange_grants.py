"""Grants of credit for offers through the real engine: each rule with its attack and its honest variant.

Records are signed and judged by the same activity fold and engine a peer runs
(``Ledger``); the functions run through ``GrantAPI``, the ledger's ``AppAPI``
with the rules and chain state a node lends grants. The ledger's clock is
moved across calendar months to drive re-estimation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conode.apps.exchange import GRANT, OFFER, SHARE, UPDATE, app, read_config
from conode.apps.exchange.grant_sales import count_sales
from conode.chain import Record
from conode.hashes import ActionHash
from conode.testing import Ledger
from conode.testing.ledger import DAY
from conode.validation.calendar import period_label, period_of, period_start
from conode.validation.charter import Limits
from conode.validation.governance import ProposalKind
from conode.validation.verdict import Invalid, Valid, Verdict

CAP = 50_000
GRANTS = {"issues_credit": True, "grant_cap": CAP}
WIDE = Limits(200_000, 1_000_000)
"""Limits wide enough for buyers to spend: a co-op's grants, sales and purchases fit."""


GrantAPI = Any
"""``LedgerAPI`` (``tests/apps/ledgerapi.py``): the ledger's ``AppAPI``."""
MakeAPI = Callable[[Ledger], GrantAPI]


@pytest.fixture
def make_api(api_for: type) -> MakeAPI:
    """``make_api(ledger)``: the ledger's ``AppAPI`` for the exchange."""
    return lambda ledger: api_for(ledger, app)


def grant_ledger(config: dict[str, Any] | None = None, **kw: Any) -> Ledger:
    kw.setdefault("coop_limits", WIDE)
    kw.setdefault("member_limits", WIDE)
    return Ledger(
        apps={"exchange": app},
        foundation=True,
        app_config={"exchange": GRANTS if config is None else config},
        **kw,
    )


def rule(verdict: Verdict) -> str:
    assert isinstance(verdict, Invalid), f"expected a refusal, got {verdict!r}"
    return verdict.rule


def ok(verdict: Verdict) -> None:
    assert isinstance(verdict, Valid), verdict


def to_month(ledger: Ledger, months_on: int) -> int:
    """Move the clock to the second day of the month ``months_on`` after the current one."""
    target = period_of(ledger.clock) + months_on
    ledger.advance(period_start(target) + DAY - ledger.clock)
    return target


async def post(
    api: GrantAPI, name: str = "coop0", price: int = 100, quantity: int = 200
) -> dict[str, Any]:
    """``offer-add`` through the function: the offer, with its grant (or why none)."""
    posted: dict[str, Any] = await app.functions["offer-add"](
        api, title="Sourdough bread", category="food/bakery", price=price, unit="loaf",
        quantity=quantity, agent=api.ledger[name].key,
    )  # fmt: skip
    return posted


def offer_record(
    ledger: Ledger, name: str = "coop0", price: int = 100, quantity: int = 200
) -> Record:
    """An offer committed directly (no grant)."""
    entry = app.entry(
        OFFER, title="Jam", description="", category="food", price=price, unit="jar",
        quantity=quantity, expires=ledger.clock + 60 * DAY, rules=ledger.gov_head,
    )  # fmt: skip
    record, verdict = ledger.create(name, OFFER, entry)
    ok(verdict)
    return record


def grant(ledger: Ledger, name: str, **values: Any) -> tuple[Record, Verdict]:
    """Commit a grant entry built by hand (``credit`` is the delta; the move is filled in)."""
    activity = ledger[name].activity
    values.setdefault("rules", ledger.gov_head)
    values.setdefault("sales", None)
    entry = app.prepare(GRANT, values, last_credit=activity.last_credit, balance=activity.balance)
    return ledger.create(name, GRANT, entry)


def honest_new(ledger: Ledger, offer: Record, value: int = 20_000) -> dict[str, Any]:
    """The fields of the honest ``new`` grant for ``offer``, the co-op's only offer (cap 50 000,
    share 10 %): the line begins at the offer's value, at most the cap."""
    estimate = min(value, CAP)
    share = estimate // 10
    period = period_of(offer.action.timestamp)
    return {
        "basis": "new", "period": period, "prev_grant": None, "added": [offer.hash], "dropped": [],
        "offered": value, "high": value, "estimate": estimate, "granted": estimate,
        "share": share, "credit": estimate - share, "due": period_start(period + 1),
    }  # fmt: skip


def last_grant(ledger: Ledger, name: str) -> Record:
    return next(r for r in reversed(ledger[name].chain) if r.action.entry_type == GRANT)


def audited(ledger: Ledger) -> Any:
    report = ledger.audit()
    assert report.ok, report.violations
    assert report.zero_sum and report.total == report.issued
    return report


@pytest.fixture
def ledger() -> Ledger:
    return grant_ledger()


@pytest.fixture
def api(ledger: Ledger, make_api: MakeAPI) -> GrantAPI:
    return make_api(ledger)


# -- months -------------------------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=4_000_000_000_000_000))
def test_a_period_is_the_utc_calendar_month_of_the_timestamp(micros: int) -> None:
    when = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)
    period = period_of(micros)
    assert period == (when.year - 1970) * 12 + when.month - 1
    assert period_start(period) <= micros < period_start(period + 1)
    assert period_label(period) == f"{when.year:04d}-{when.month:02d}"


# -- new grants ---------------------------------------------------------------------------------------


async def test_posting_an_offer_grants_its_value_less_the_foundations_share(
    ledger: Ledger, api: GrantAPI
) -> None:
    posted = await post(api, price=100, quantity=200)
    got = posted["grant"]["grant"]
    assert (got["basis"], got["estimate"], got["gross"], got["share"], got["credit"]) == (
        "new", 20_000, 20_000, 2_000, 18_000,
    )  # fmt: skip
    assert ledger["coop0"].balance == 18_000
    report = audited(ledger)
    assert report.issuance == -18_000  # the share is not issued until the Foundation collects it
    collected = await app.functions["share-collect"](api)
    assert collected["steward"] and [c["share"] for c in collected["collected"]] == [2_000]
    assert ledger["foundation"].balance == 2_000
    assert audited(ledger).issuance == -20_000


async def test_a_grant_is_at_most_the_cap(ledger: Ledger, api: GrantAPI) -> None:
    posted = await post(api, price=1_000, quantity=100)  # worth 100 000 a month
    assert posted["grant"]["grant"]["estimate"] == CAP
    record = offer_record(ledger, "coop1", price=1_000, quantity=100)
    over = {**honest_new(ledger, record, 100_000), "estimate": 60_000, "granted": 60_000}
    assert rule(grant(ledger, "coop1", **{**over, "share": 6_000, "credit": 54_000})[1]) == "grant"
    ok(grant(ledger, "coop1", **honest_new(ledger, record, 100_000))[1])


def test_the_honest_new_grant_passes_and_every_wrong_figure_is_refused(ledger: Ledger) -> None:
    record = offer_record(ledger)
    honest = honest_new(ledger, record)
    for field, wrong in (
        ("offered", 30_000), ("high", 30_000), ("estimate", 25_000), ("granted", 25_000),
        ("share", 0), ("credit", 20_000), ("period", honest["period"] - 1), ("due", None),
    ):  # fmt: skip
        verdict = grant(ledger, "coop0", **{**honest, field: wrong})[1]
        assert rule(verdict) in ("grant", "period", "offers", "due"), (field, verdict)
    sales = {"count": 0, "total": 0, "excluded": 0, "new": 0}
    assert rule(grant(ledger, "coop0", **{**honest, "sales": sales})[1]) == "sales"
    ok(grant(ledger, "coop0", **honest)[1])
    assert ledger["coop0"].balance == 18_000


def test_a_member_cannot_grant_nor_anyone_for_another_coops_offer(ledger: Ledger) -> None:
    record = offer_record(ledger, "coop0")
    assert rule(grant(ledger, "coop0-m0", **honest_new(ledger, record))[1]) == "role"
    # another co-op's offer is not one of coop1's open offers
    assert rule(grant(ledger, "coop1", **honest_new(ledger, record))[1]) == "offers"
    ok(grant(ledger, "coop0", **honest_new(ledger, record))[1])


def test_no_grants_without_issues_credit_or_without_a_grant_cap() -> None:
    for config, refused in (
        ({"grant_cap": CAP}, "credit-app"),
        ({"issues_credit": True}, "grants-off"),
    ):
        ledger = grant_ledger(config)
        record = offer_record(ledger)
        assert rule(grant(ledger, "coop0", **honest_new(ledger, record))[1]) == refused
    assert ledger["coop0"].balance == 0


async def test_offer_add_posts_the_offer_and_says_why_there_is_no_grant(make_api: MakeAPI) -> None:
    ledger = grant_ledger({"issues_credit": True})
    posted = await post(make_api(ledger))
    assert posted["status"] == "open"
    assert posted["grant"] == {"skipped": "the rules set no grant_cap"}
    assert ledger["coop0"].balance == 0 and ledger.audit().ok


async def test_a_free_offer_is_granted_nothing(api: GrantAPI) -> None:
    posted = await post(api, price=0)
    assert "nothing to grant" in posted["grant"]["skipped"]


def test_a_second_grant_following_the_same_one_is_a_duplicate(ledger: Ledger) -> None:
    record = offer_record(ledger)
    ok(grant(ledger, "coop0", **honest_new(ledger, record))[1])
    assert rule(grant(ledger, "coop0", **honest_new(ledger, record))[1]) == "duplicate"
    assert ledger["coop0"].balance == 18_000


def test_a_grant_for_a_withdrawn_or_expired_offer_is_refused(ledger: Ledger) -> None:
    record = offer_record(ledger)
    entry = app.entry(UPDATE, item=record.hash, prev=record.hash, close="withdrawn", rules=None)
    closing, verdict = ledger.create("coop0", UPDATE, entry)
    ok(verdict)
    # neither the withdrawal nor the offer it closed is an open offer to list
    withdrawn = {**honest_new(ledger, record), "added": [closing.hash]}
    assert rule(grant(ledger, "coop0", **withdrawn)[1]) == "offers"
    assert rule(grant(ledger, "coop0", **honest_new(ledger, record))[1]) == "offers"
    short = offer_record(ledger)
    ledger.advance(61 * DAY)
    period = period_of(ledger.clock + 1_000)
    late = {**honest_new(ledger, short), "period": period, "due": period_start(period + 1)}
    assert rule(grant(ledger, "coop0", **late)[1]) == "offers"


# -- enlarging ----------------------------------------------------------------------------------------


async def test_enlarging_an_offer_grants_the_increase_only(ledger: Ledger, api: GrantAPI) -> None:
    posted = await post(api, price=100, quantity=200)
    renew = app.functions["offer-renew"]
    bigger = await renew(api, offer=posted["hash"], quantity=300)
    got = bigger["grant"]["grant"]
    assert (got["basis"], got["gross"], got["granted"]) == ("enlarge", 10_000, 30_000)
    same = await renew(api, offer=posted["hash"])
    assert "nothing to grant" in same["grant"]["skipped"]
    await renew(api, offer=posted["hash"], quantity=100)  # smaller: nothing granted...
    back = await renew(api, offer=posted["hash"], quantity=300)  # ...and back up: no new increase
    assert "nothing to grant" in back["grant"]["skipped"]
    assert ledger["coop0"].balance == 18_000 + 9_000
    audited(ledger)


async def test_an_enlarge_must_list_the_offers_as_they_stand_and_grow_past_the_line(
    ledger: Ledger, api: GrantAPI
) -> None:
    posted = await post(api)
    first = last_grant(ledger, "coop0")
    offer = ActionHash.parse(posted["hash"])
    period = period_of(ledger.clock)
    again = {
        "basis": "enlarge", "period": period, "prev_grant": first.hash, "added": [],
        "dropped": [], "offered": 20_000, "high": 20_000, "estimate": 20_000, "granted": 20_000, "share": 0,
        "credit": 0, "due": period_start(period + 1),
    }  # fmt: skip
    assert rule(grant(ledger, "coop0", **again)[1]) == "grant"  # nothing above the line
    renewed = await app.functions["offer-renew"](api, offer=posted["hash"], quantity=300)
    assert renewed["grant"]["grant"]["gross"] == 10_000
    # counting the offer as it stood before the renewal, at the new value, is refused
    enlarged = last_grant(ledger, "coop0")
    (renewal,) = [ActionHash.from_bytes(h) for h in enlarged.entry_value()["added"]]
    stale = {
        **again, "prev_grant": enlarged.hash, "added": [offer], "dropped": [renewal],
        "offered": 30_000, "high": 30_000, "estimate": 30_000, "granted": 30_000,
    }  # fmt: skip
    assert rule(grant(ledger, "coop0", **stale)[1]) == "offers"


# -- re-estimation ------------------------------------------------------------------------------------


async def reestimate(api: GrantAPI, name: str | None = None) -> list[dict[str, Any]]:
    coop = None if name is None else api.ledger[name].key
    rows: list[dict[str, Any]] = await app.functions["grants-reestimate"](api, coop=coop)
    return rows


async def test_reestimation_grants_more_after_good_sales_and_recovers_after_poor_ones(
    ledger: Ledger, api: GrantAPI
) -> None:
    posted = await post(api, price=100, quantity=200)  # granted 20 000
    offer = ActionHash.parse(posted["hash"])
    assert (await reestimate(api, "coop0"))[0]["skipped"] == (
        "the line began this month: its first re-estimate is next month"
    )
    to_month(ledger, 1)
    # the offer's first month was not whole: the line keeps what was advanced for it
    (kept,) = await reestimate(api, "coop0")
    assert (kept["grant"]["gross"], kept["grant"]["advance"], kept["grant"]["granted"]) == (
        0, 20_000, 20_000,
    )  # fmt: skip
    for _ in range(6):
        ok(ledger.pay("coop1-m0", "coop0", 5_000, offer=offer))  # 30 000 of outside sales
    to_month(ledger, 1)
    (up,) = await reestimate(api, "coop0")
    got = up["grant"]
    assert (got["basis"], got["sales"]["total"], got["gross"], got["share"]) == (
        "reestimate", 30_000, 10_000, 1_000,
    )  # fmt: skip
    assert (await reestimate(api, "coop0"))[0]["skipped"].startswith("re-estimated for")
    ok(ledger.pay("coop1-m1", "coop0", 4_000, offer=offer))
    to_month(ledger, 1)
    (down,) = await reestimate(api, "coop0")
    got = down["grant"]
    assert (got["sales"]["total"], got["gross"], got["share"], got["granted"]) == (
        4_000, -26_000, 0, 4_000,
    )  # fmt: skip
    lines = app.functions["grants"](api, coop=ledger["coop0"].key)
    assert [g["basis"] for g in lines[0]["grants"]] == [
        "new", "reestimate", "reestimate", "reestimate",
    ]  # fmt: skip
    assert lines[0]["granted"] == 4_000
    await app.functions["share-collect"](api)
    audited(ledger)


async def test_sales_from_the_coops_own_members_are_not_counted(
    ledger: Ledger, api: GrantAPI
) -> None:
    posted = await post(api)
    offer = ActionHash.parse(posted["hash"])
    to_month(ledger, 1)
    ok(ledger.pay("coop0-m0", "coop0", 9_000, offer=offer))
    ok(ledger.pay("coop1-m0", "coop0", 3_000, offer=offer))
    to_month(ledger, 1)
    (row,) = await reestimate(api, "coop0")
    assert row["grant"]["sales"] == {"count": 1, "total": 3_000, "excluded": 9_000, "new": 0}


async def test_wash_trading_between_two_coops_counts_for_neither(
    ledger: Ledger, api: GrantAPI
) -> None:
    bread = ActionHash.parse((await post(api, "coop0"))["hash"])
    jam = ActionHash.parse((await post(api, "coop1"))["hash"])
    to_month(ledger, 1)
    await reestimate(api)  # owed before either co-op pays this month
    # the two co-ops buy each other's offer in the same month: a closed loop
    ok(ledger.pay("coop1", "coop0", 20_000, offer=bread))
    ok(ledger.pay("coop0", "coop1", 20_000, offer=jam))
    to_month(ledger, 1)
    rows = await reestimate(api)
    by_coop = {r["coop"]: r["grant"] for r in rows}
    loop = {"count": 0, "total": 0, "excluded": 20_000, "new": 0}
    assert by_coop[str(ledger["coop0"].key)]["sales"] == by_coop[str(ledger["coop1"].key)]["sales"]
    assert by_coop[str(ledger["coop0"].key)]["sales"] == loop
    assert by_coop[str(ledger["coop0"].key)]["granted"] == 0
    assert by_coop[str(ledger["coop1"].key)]["granted"] == 0
    # claiming the loop's sales as counted is refused by every peer: the chain shows the loop
    prev = last_grant(ledger, "coop0")
    period = period_of(ledger.clock)
    claimed = {
        "basis": "reestimate", "period": period, "prev_grant": prev.hash, "added": [],
        "dropped": [], "offered": 0, "high": 20_000,
        "sales": {"count": 1, "total": 20_000, "excluded": 0, "new": 0},
        "advance": 0, "estimate": 20_000, "granted": 20_000, "share": 2_000, "credit": 18_000,
        "due": period_start(period + 1),
    }  # fmt: skip
    verdict = grant(ledger, "coop0", **claimed)[1]
    assert rule(verdict) in ("duplicate", "basis")  # re-estimated this month already
    audited(ledger)


async def test_a_claim_of_sales_the_chain_does_not_show_is_refused(
    ledger: Ledger, api: GrantAPI
) -> None:
    posted = await post(api)
    offer = ActionHash.parse(posted["hash"])
    to_month(ledger, 1)
    await reestimate(api, "coop0")  # owed before coop0 pays this month
    first = last_grant(ledger, "coop0")
    ok(ledger.pay("coop1", "coop0", 12_000, offer=offer))
    ok(ledger.pay("coop0", "coop1-m1", 500))  # coop0 paid a member of coop1: a loop
    ok(ledger.pay("coop1-m0", "coop0", 7_000, offer=offer))  # no loop? coop1-m0 is of coop1 too
    to_month(ledger, 1)
    shown = count_sales(
        lambda h: ledger.held.get_record(h) or Invalid("x", "not held"),
        ledger["coop0"].activity.head.hash if ledger["coop0"].activity.head else None,
        ledger["coop0"].key, offer, period_of(ledger.clock) - 1,
    )  # fmt: skip
    assert shown.count == 0 and shown.excluded == 19_000  # type: ignore[union-attr]
    period = period_of(ledger.clock + 1_000)
    base = {
        "basis": "reestimate", "period": period, "prev_grant": first.hash, "added": [],
        "dropped": [offer], "offered": 0, "high": 20_000, "advance": 0, "share": 0,
    }  # fmt: skip
    lie = {**base, "sales": {"count": 2, "total": 19_000, "excluded": 0, "new": 0},
           "estimate": 19_000, "granted": 19_000, "credit": -1_000,
           "due": period_start(period + 1)}  # fmt: skip
    assert rule(grant(ledger, "coop0", **lie)[1]) == "sales"
    honest = {**base, "sales": {"count": 0, "total": 0, "excluded": 19_000, "new": 0},
              "estimate": 0, "granted": 0, "credit": -20_000, "due": None}  # fmt: skip
    ok(grant(ledger, "coop0", **honest)[1])


async def test_a_reestimate_comes_first_in_a_month_after_the_line_began_and_once(
    ledger: Ledger, api: GrantAPI
) -> None:
    await post(api)
    first = last_grant(ledger, "coop0")
    zero = {"count": 0, "total": 0, "excluded": 0, "new": 0}
    early = {
        "basis": "reestimate", "period": period_of(ledger.clock + 1_000), "prev_grant": first.hash,
        "added": [], "dropped": [], "offered": 20_000, "high": 20_000, "sales": zero, "advance": 0,
        "estimate": 0, "granted": 0, "share": 0, "credit": -20_000, "due": None,
    }  # fmt: skip
    assert rule(grant(ledger, "coop0", **early)[1]) == "basis"  # the line began this month
    to_month(ledger, 1)
    now = period_of(ledger.clock + 1_000)
    kept = {**early, "period": now, "advance": 20_000, "estimate": 20_000, "granted": 20_000,
            "credit": 0, "due": period_start(now + 1)}  # fmt: skip
    ok(grant(ledger, "coop0", **kept)[1])
    again = {**kept, "prev_grant": last_grant(ledger, "coop0").hash, "advance": 0, "estimate": 0,
             "granted": 0, "credit": -20_000, "due": None}  # fmt: skip
    assert rule(grant(ledger, "coop0", **again)[1]) == "basis"


async def test_a_recovery_stops_at_the_credit_limit_and_the_rest_waits(make_api: MakeAPI) -> None:
    ledger = grant_ledger(coop_limits=Limits(5_000, 1_000_000))
    api = make_api(ledger)
    await post(api)  # +18 000
    ok(ledger.pay("coop0", "coop1", 21_000))  # spent it all and more: at -3 000
    to_month(ledger, 2)
    (row,) = await reestimate(api, "coop0")
    assert row["grant"]["gross"] == -2_000 and row["grant"]["granted"] == 18_000
    assert ledger["coop0"].balance == -5_000
    audited(ledger)


async def test_an_enlarge_cannot_undo_a_recovery(ledger: Ledger, api: GrantAPI) -> None:
    posted = await post(api, quantity=200)
    to_month(ledger, 2)
    (row,) = await reestimate(api, "coop0")  # no sales: back to 0
    assert row["grant"]["granted"] == 0
    renewed = await app.functions["offer-renew"](api, offer=posted["hash"])
    assert "nothing to grant" in renewed["grant"]["skipped"]
    bigger = await app.functions["offer-renew"](api, offer=posted["hash"], quantity=250)
    assert bigger["grant"]["grant"]["gross"] == 5_000  # only the increase since the last grant


# -- the monthly duty can always be met -----------------------------------------------------------------


def amend_exchange(ledger: Ledger, value: dict[str, Any]) -> None:
    """Ratify an amendment of ``app_config/exchange`` (every co-op votes yes)."""
    proposal, verdict = ledger.propose(
        "coop1", ProposalKind.AMEND, {"param": "app_config/exchange", "value": value}
    )
    ok(verdict)
    votes = [ledger.vote(coop, proposal.hash)[0].hash for coop in ("coop0", "coop1")]
    ledger.advance(DAY + 1)
    ok(ledger.ratify("coop1", proposal.hash, votes)[1])


async def test_with_grants_switched_off_a_line_pauses_and_its_coop_pays_again(
    ledger: Ledger, api: GrantAPI
) -> None:
    await post(api)  # the line stands at 20 000: from next month it owes re-estimates
    amend_exchange(ledger, {"issues_credit": True})  # no grant_cap: grants off
    to_month(ledger, 1)
    assert rule(ledger.pay("coop0", "coop1", 1_000)) == "overdue"
    (row,) = await reestimate(api, "coop0")
    got = row["grant"]
    assert (got["basis"], got["gross"], got["granted"], got["due"]) == ("pause", 0, 20_000, None)
    ok(ledger.pay("coop0", "coop1", 1_000))  # the pause owes nothing
    assert (await reestimate(api, "coop0"))[0]["skipped"].startswith("paused in")
    to_month(ledger, 1)
    assert "owes nothing" in (await reestimate(api, "coop0"))[0]["skipped"]
    ok(ledger.pay("coop0", "coop1", 1_000))
    # a re-estimate with grants off, or a pause with them on, is refused
    period = period_of(ledger.clock + 1_000)
    prev = last_grant(ledger, "coop0")
    again = {
        "basis": "reestimate", "period": period, "prev_grant": prev.hash, "added": [],
        "dropped": [], "offered": 0, "high": 20_000,
        "sales": {"count": 0, "total": 0, "excluded": 0, "new": 0},
        "advance": 0, "estimate": 0, "granted": 0, "share": 0, "credit": -20_000, "due": None,
    }  # fmt: skip
    assert rule(grant(ledger, "coop0", **again)[1]) == "grants-off"
    amend_exchange(ledger, GRANTS)  # on again: the line goes on from where it stood
    paused = {**again, "basis": "pause", "sales": None, "advance": None, "estimate": 20_000,
              "granted": 20_000, "credit": 0}  # fmt: skip
    assert rule(grant(ledger, "coop0", **paused)[1]) == "basis"
    (row,) = await reestimate(api, "coop0")
    assert (row["grant"]["basis"], row["grant"]["granted"]) == ("reestimate", 0)
    audited(ledger)


async def test_a_reestimate_up_stops_at_the_balance_cap_and_is_never_refused(
    make_api: MakeAPI,
) -> None:
    ledger = grant_ledger(coop_limits=Limits(5_000, 30_000))
    api = make_api(ledger)
    posted = await post(api, quantity=100)  # 10 000 a month: 9 000 to the co-op
    offer = ActionHash.parse(posted["hash"])
    to_month(ledger, 1)
    await reestimate(api, "coop0")
    ok(ledger.pay("coop1-m0", "coop0", 20_000, offer=offer))  # at 29 000 of a 30 000 cap
    to_month(ledger, 1)
    (row,) = await reestimate(api, "coop0")  # sales say 20 000; the cap leaves room for 1 000
    got = row["grant"]
    assert (got["estimate"], got["gross"], got["credit"], got["granted"]) == (
        20_000, 1_000, 900, 11_000,
    )  # fmt: skip
    assert ledger["coop0"].balance == 29_900
    ok(ledger.pay("coop0", "coop1", 10_000))  # its duty met, it pays
    audited(ledger)


# -- the Foundation's share ----------------------------------------------------------------------------


async def test_the_foundation_collects_each_share_once(ledger: Ledger, api: GrantAPI) -> None:
    await post(api)
    grant_hash = last_grant(ledger, "coop0").hash
    collect = app.functions["share-collect"]
    assert len((await collect(api))["collected"]) == 1
    assert (await collect(api))["collected"] == []

    def share(name: str, delta: int) -> Verdict:
        activity = ledger[name].activity
        entry = app.prepare(
            SHARE, {"grant": grant_hash, "credit": delta, "rules": None},
            last_credit=activity.last_credit, balance=activity.balance,
        )  # fmt: skip
        return ledger.create(name, SHARE, entry)[1]

    assert rule(share("foundation", 2_000)) == "duplicate"
    assert rule(share("coop1", 2_000)) == "role"
    assert ledger["foundation"].balance == 2_000
    other = offer_record(ledger, "coop1")
    ok(grant(ledger, "coop1", **honest_new(ledger, other))[1])
    grant_hash = last_grant(ledger, "coop1").hash
    assert rule(share("foundation", 3_000)) == "share"
    ok(share("foundation", 2_000))
    audited(ledger)


async def test_without_a_foundation_in_the_rules_there_is_no_share(make_api: MakeAPI) -> None:
    ledger = Ledger(apps={"exchange": app}, app_config={"exchange": GRANTS}, coop_limits=WIDE)
    api = make_api(ledger)
    got = (await post(api))["grant"]["grant"]
    assert (got["share"], got["credit"]) == (0, 20_000)
    assert (await app.functions["share-collect"](api))["steward"] is False


# -- configuration -------------------------------------------------------------------------------------


def test_the_grant_settings_are_read_strictly() -> None:
    assert read_config(GRANTS).grant_cap == CAP and read_config(GRANTS).to_value() == GRANTS
    for bad in ({"grant_cap": -1}, {"grant_cap": "50"}, {"issues_credit": 1}):
        with pytest.raises(ValueError):
            read_config(bad)


# -- the whole economy ----------------------------------------------------------------------------------

OFFER_ACTION = st.tuples(
    st.just("offer"), st.integers(0, 1), st.integers(0, 500), st.integers(1, 300)
)
MONTH = st.lists(
    st.one_of(
        OFFER_ACTION,
        st.tuples(st.just("buy"), st.sampled_from(["coop0", "coop1", "coop0-m0", "coop1-m0"]),
                  st.integers(0, 5), st.integers(1, 20_000)),
        st.tuples(st.just("buy"), st.sampled_from(["coop0", "coop1", "coop0-m0", "coop1-m0"]),
                  st.integers(0, 5), st.integers(1, 5_000)),
        st.tuples(st.just("pay"), st.sampled_from(["coop0", "coop1"]),
                  st.sampled_from(["coop0", "coop1", "coop0-m1", "coop1-m1"]), st.integers(1, 5_000)),
        st.tuples(st.just("collect")),
        st.tuples(st.just("enlarge"), st.integers(0, 5), st.integers(1, 400)),
    ),
    max_size=8,
)  # fmt: skip
"""What happens in one month: offers, sales (some from the seller's own co-op), plain payments
(which may close a loop), collections, enlargements; re-estimation runs as the month turns."""


def _not_refused(result: dict[str, Any]) -> None:
    """What a function works out, every peer's rule accepts: only the balance cap may stop it."""
    refusal = result.get("refused") or result.get("skipped", "").partition("refused: ")[2]
    assert not refusal or "balance-cap" in refusal, result


@settings(
    max_examples=60,
    deadline=None,
    # make_api gives a fresh API over each example's fresh ledger
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(OFFER_ACTION, min_size=1, max_size=3), st.lists(MONTH, min_size=1, max_size=5))
async def test_any_run_of_offers_sales_and_reestimates_sums_to_zero_within_limits(
    make_api: MakeAPI, first: list[tuple[Any, ...]], months: list[list[tuple[Any, ...]]]
) -> None:
    ledger = grant_ledger(
        coop_limits=Limits(30_000, 120_000), member_limits=Limits(30_000, 120_000)
    )
    api = make_api(ledger)
    offers: list[tuple[str, str]] = []
    script = list(first)
    for month in months:
        script += [*month, ("month",)]
    for action in script:
        kind = action[0]
        if kind == "offer":
            posted = await post(api, f"coop{action[1]}", price=action[2], quantity=action[3])
            offers.append((posted["hash"], f"coop{action[1]}"))
            _not_refused(posted["grant"])
        elif kind == "buy" and offers:
            offer, seller = offers[action[2] % len(offers)]
            if action[1] != seller:
                ledger.pay(action[1], seller, action[3], offer=ActionHash.parse(offer))
        elif kind == "pay" and action[1] != action[2]:
            ledger.pay(action[1], action[2], action[3])
        elif kind == "month":
            to_month(ledger, 1)
            for row in await reestimate(api):
                event("re-estimated" if "grant" in row else "re-estimate skipped")
                _not_refused(row)
        elif kind == "collect":
            await app.functions["share-collect"](api)
        elif kind == "enlarge" and offers:
            offer, _ = offers[action[1] % len(offers)]
            renewed = await app.functions["offer-renew"](api, offer=offer, quantity=action[2])
            _not_refused(renewed["grant"])
    report = audited(ledger)
    for name, agent in ledger.agents.items():
        limits = ledger.charter.params.coop_limits if agent.role == "coop" else None
        if limits is not None:
            assert -limits.credit <= agent.balance <= limits.cap, name
        elif agent.role == "foundation":
            assert agent.balance >= 0
    assert sum(ledger.balances().values()) + report.issuance == 0
