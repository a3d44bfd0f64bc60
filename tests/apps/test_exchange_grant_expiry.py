"""Unspent grants expire (a charter switch): each rule with its attack and its honest variant.

Records are signed and judged by the same activity fold and engine a peer runs
(``Ledger``); the duty runs as ``grants-reestimate`` through the ledger's
``AppAPI``. The ledger's clock is moved across calendar months (it is the
only clock the rules and the functions read), so "due" is exact to the month.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conode.apps.exchange import GRANT, OFFER, app, read_config
from conode.apps.exchange.grant_figures import LineState, grant_amounts
from conode.apps.exchange.granting import reestimate
from conode.chain import Record
from conode.hashes import ActionHash
from conode.testing import Ledger
from conode.testing.ledger import DAY
from conode.validation.calendar import period_label, period_of, period_start
from conode.validation.charter import Limits
from conode.validation.governance import ProposalKind
from conode.validation.verdict import Invalid, Valid, Verdict

CAP = 50_000
MONTHS = 3
GRANTS = {"issues_credit": True, "grant_cap": CAP}
EXPIRING = {**GRANTS, "grant_expiry_months": MONTHS}
WIDE = Limits(200_000, 1_000_000)

GrantAPI = Any
"""``LedgerAPI`` (``tests/apps/ledgerapi.py``): the ledger's ``AppAPI``."""
MakeAPI = Callable[[Ledger], GrantAPI]


@pytest.fixture
def make_api(api_for: type) -> MakeAPI:
    return lambda ledger: api_for(ledger, app)


def grant_ledger(config: dict[str, Any]) -> Ledger:
    return Ledger(
        apps={"exchange": app},
        foundation=True,
        app_config={"exchange": config},
        coop_limits=WIDE,
        member_limits=WIDE,
    )


def rule(verdict: Verdict) -> str:
    assert isinstance(verdict, Invalid), f"expected a refusal, got {verdict!r}"
    return verdict.rule


def ok(verdict: Verdict) -> None:
    assert isinstance(verdict, Valid), verdict


def to_month(ledger: Ledger, months_on: int = 1) -> int:
    """Move the clock to the second day of the month ``months_on`` after the current one."""
    target = period_of(ledger.clock) + months_on
    ledger.advance(period_start(target) + DAY - ledger.clock)
    return target


def audited(ledger: Ledger) -> Any:
    report = ledger.audit()
    assert report.ok, report.violations
    assert report.zero_sum and report.total == report.issued
    return report


async def post(api: GrantAPI) -> ActionHash:
    """``offer-add`` worth 20 000 a month: granted 20 000, 2 000 of it the Foundation's share."""
    posted = await app.functions["offer-add"](
        api, title="Sourdough bread", category="food/bakery", price=100, unit="loaf",
        quantity=200, agent=api.ledger["coop0"].key,
    )  # fmt: skip
    assert posted["grant"]["grant"]["credit"] == 18_000
    return ActionHash.parse(posted["hash"])


def offer_record(ledger: Ledger) -> Record:
    entry = app.entry(
        OFFER, title="Jam", description="", category="food", price=100, unit="jar",
        quantity=200, expires=ledger.clock + 300 * DAY, rules=ledger.gov_head,
    )  # fmt: skip
    record, verdict = ledger.create("coop0", OFFER, entry)
    ok(verdict)
    return record


def grant(ledger: Ledger, name: str, **values: Any) -> tuple[Record, Verdict]:
    """Commit a grant entry built by hand (``credit`` is the delta; the move is filled in)."""
    activity = ledger[name].activity
    values.setdefault("rules", ledger.gov_head)
    values.setdefault("sales", None)
    entry = app.prepare(GRANT, values, last_credit=activity.last_credit, balance=activity.balance)
    return ledger.create(name, GRANT, entry)


def last_grant(ledger: Ledger, name: str = "coop0") -> Record:
    return next(r for r in reversed(ledger[name].chain) if r.action.entry_type == GRANT)


def granted_new(ledger: Ledger) -> tuple[Record, Record]:
    """An offer and its honest ``new`` grant by hand: 20 000 on the line, 18 000 to the co-op."""
    offer = offer_record(ledger)
    period = period_of(ledger.clock)
    new = {
        "basis": "new", "period": period, "prev_grant": None, "added": [offer.hash], "dropped": [],
        "offered": 20_000, "high": 20_000, "estimate": 20_000, "granted": 20_000,
        "share": 2_000, "credit": 18_000, "due": period_start(period + 1),
    }  # fmt: skip
    record, verdict = grant(ledger, "coop0", **new)
    ok(verdict)
    return offer, record


def expiry(ledger: Ledger, offer: Record, recovered: int) -> dict[str, Any]:
    """The fields of an expiry of coop0's line, after its latest grant, recovering ``recovered``."""
    prev = last_grant(ledger)
    line_granted = prev.entry_value()["granted"]
    period = period_of(ledger.clock + 1_000)
    granted = line_granted - recovered
    still_open = offer.entry_value()["expires"] > ledger.clock + 1_000
    return {
        "basis": "expire", "period": period, "prev_grant": prev.hash,
        "added": [], "dropped": [], "offered": 20_000 if still_open else 0,
        "high": 20_000, "estimate": 0, "granted": granted, "share": 0, "credit": -recovered,
        "due": period_start(period + 1) if granted > 0 else None,
    }  # fmt: skip


async def month_turns(ledger: Ledger, api: GrantAPI, months: int = 1, spend: bool = False) -> None:
    """Move on ``months`` months, an outside buyer paying 20 000 for coop0's offer in each (so
    its line stays where it is); at each turn only the month's re-estimate is written
    (``reestimate``, not the duty: no expiry). With ``spend``, coop0 then pays as much to its
    member, so it holds none of it."""
    offer = next(r.hash for r in ledger["coop0"].chain if r.action.entry_type == OFFER)
    for _ in range(months):
        ok(ledger.pay("coop1-m0", "coop0", 20_000, offer=offer))
        to_month(ledger)
        assert "grant" in await reestimate(api, ledger["coop0"].key)
        if spend:
            ok(ledger.pay("coop0", "coop0-m0", 20_000))


async def duty(api: GrantAPI) -> list[dict[str, Any]]:
    """The node's duty pass: re-estimate, then expire what is due."""
    rows: list[dict[str, Any]] = await app.functions["grants-reestimate"](api)
    return rows


def steady_month(ledger: Ledger, offer: ActionHash, spend: bool = False) -> None:
    """An outside buyer pays 20 000 for the offer (its line stays where it is); with ``spend``,
    the co-op pays as much to its member, so it holds nothing of it."""
    ok(ledger.pay("coop1-m0", "coop0", 20_000, offer=offer))
    if spend:
        ok(ledger.pay("coop0", "coop0-m0", 20_000))


# -- the switch --------------------------------------------------------------------------------------------


def test_grant_expiry_months_is_read_strictly_and_absent_means_never() -> None:
    assert read_config(GRANTS).grant_expiry_months == 0
    assert "grant_expiry_months" not in read_config({**GRANTS, "grant_expiry_months": 0}).to_value()
    assert read_config(EXPIRING).to_value() == EXPIRING
    for bad in (-1, "6", 1.5, True, 1_201):
        with pytest.raises(ValueError, match="grant_expiry_months"):
            read_config({**GRANTS, "grant_expiry_months": bad})


async def test_with_the_switch_off_a_line_never_expires(make_api: MakeAPI) -> None:
    ledger = grant_ledger(GRANTS)
    api = make_api(ledger)
    offer = await post(api)
    for _ in range(2 * MONTHS + 2):
        steady_month(ledger, offer)
        to_month(ledger)
        rows = await duty(api)
        assert all("expiry" not in row for row in rows), rows
    (line,) = app.functions["grants"](api)
    assert (line["expires"], line["last_expiry"], line["granted"]) == (None, None, 20_000)
    # re-estimated each month (the line stands above zero, so it is owed), never expired
    assert [g["basis"] for g in line["grants"]] == ["new"] + ["reestimate"] * (2 * MONTHS + 2)
    offer_rec = ledger.held.get_record(offer)
    assert offer_rec is not None
    refused = grant(ledger, "coop0", **expiry(ledger, offer_rec, 18_000))
    assert rule(refused[1]) == "expiry-off"
    audited(ledger)


# -- the duty ----------------------------------------------------------------------------------------------


async def test_a_line_expires_exactly_when_due_and_recovers_what_reached_the_coop(
    make_api: MakeAPI,
) -> None:
    ledger = grant_ledger(EXPIRING)
    api = make_api(ledger)
    posted_in = period_of(ledger.clock)
    offer = await post(api)
    (line,) = app.functions["grants"](api)
    assert line["expires"] == period_label(posted_in + MONTHS)
    for months_on in range(1, MONTHS):
        steady_month(ledger, offer)
        to_month(ledger)
        rows = await duty(api)
        assert all("expiry" not in row for row in rows), (months_on, rows)
    assert period_of(ledger.clock) == posted_in + MONTHS - 1  # a period before it is due
    assert "expire" not in [g["basis"] for g in app.functions["grants"](api)[0]["grants"]]
    steady_month(ledger, offer)
    to_month(ledger)
    balance_before = ledger["coop0"].balance
    assert balance_before > 18_000  # the co-op holds more than its grant: all of it is unspent
    (row,) = await duty(api)
    assert row["grant"]["gross"] == 0  # the month's re-estimate comes first: steady sales
    cut = row["expiry"]["grant"]
    assert (cut["basis"], cut["gross"], cut["share"], cut["credit"], cut["granted"]) == (
        "expire", -18_000, 0, -18_000, 2_000,
    )  # fmt: skip
    assert cut["period"] == period_label(posted_in + MONTHS)
    assert ledger["coop0"].balance == balance_before - 18_000
    (line,) = app.functions["grants"](api)
    assert (line["expires"], line["last_expiry"], line["basis"]) == (
        None, period_label(posted_in + MONTHS), "expire",
    )  # fmt: skip
    assert [g["basis"] for g in line["grants"]] == ["new"] + ["reestimate"] * MONTHS + ["expire"]
    assert "expiry" not in (await duty(api))[0]  # idempotent: once per positive grant
    # the co-op's line goes on (it is its only one): next month's re-estimate sets it from the
    # month's sales again, and that positive grant starts the expiry clock again
    steady_month(ledger, offer)
    to_month(ledger)
    (row,) = await duty(api)
    assert row["grant"]["gross"] == 18_000 and "expiry" not in row
    (line,) = app.functions["grants"](api)
    assert line["expires"] == period_label(posted_in + MONTHS + 1 + MONTHS)
    await app.functions["share-collect"](api)
    report = audited(ledger)
    assert report.issuance == -20_000  # the line stands at 20 000 again, shares included


async def test_a_coop_that_spent_its_grant_loses_nothing_and_keeps_its_line(
    make_api: MakeAPI,
) -> None:
    ledger = grant_ledger(EXPIRING)
    api = make_api(ledger)
    offer = await post(api)
    ok(ledger.pay("coop0", "coop0-m0", 18_000))  # the grant is spent at once
    for _ in range(MONTHS + 1):
        steady_month(ledger, offer, spend=True)
        to_month(ledger)
        before = ledger["coop0"].balance
        rows = await duty(api)
        assert ledger["coop0"].balance == before
    assert before <= 0
    (row,) = rows
    assert row["expiry"]["skipped"].endswith("nothing of it is unspent")
    (line,) = app.functions["grants"](api)
    assert line["last_expiry"] is None
    assert "expire" not in [g["basis"] for g in line["grants"]]
    audited(ledger)


async def test_an_expiry_recovers_at_most_the_positive_balance(make_api: MakeAPI) -> None:
    ledger = grant_ledger(EXPIRING)
    api = make_api(ledger)
    offer = await post(api)
    ok(ledger.pay("coop0", "coop0-m0", 18_000))
    for _ in range(MONTHS):
        steady_month(ledger, offer, spend=True)
        to_month(ledger)
        await duty(api)
    ok(ledger.pay("coop1-m1", "coop0", 5_000))  # a plain payment: the co-op holds 5 000
    assert ledger["coop0"].balance == 5_000
    (row,) = await duty(api)
    assert (row["expiry"]["grant"]["gross"], row["expiry"]["grant"]["granted"]) == (
        -5_000, 15_000,
    )  # fmt: skip
    assert ledger["coop0"].balance == 0
    audited(ledger)


async def test_a_reestimate_up_restarts_the_expiry_clock(make_api: MakeAPI) -> None:
    ledger = grant_ledger(EXPIRING)
    api = make_api(ledger)
    offer = await post(api)
    to_month(ledger)
    ok(ledger.pay("coop1-m0", "coop0", 30_000, offer=offer))  # more sales than the line
    to_month(ledger)
    (row,) = await duty(api)
    assert row["grant"]["gross"] == 10_000
    raised_in = period_of(ledger.clock)
    (line,) = app.functions["grants"](api)
    assert line["expires"] == period_label(raised_in + MONTHS)  # not the posting month's + N


# -- the rules, by hand ------------------------------------------------------------------------------------


async def test_the_honest_expiry_passes_and_every_wrong_amount_is_refused(
    make_api: MakeAPI,
) -> None:
    ledger = grant_ledger(EXPIRING)
    api = make_api(ledger)
    offer, _ = granted_new(ledger)
    ok(ledger.pay("coop0", "coop1", 10_000))  # the co-op holds 8 000 of its 18 000
    await month_turns(ledger, api, MONTHS, spend=True)
    for wrong in (18_000, 7_999, 8_001, 20_000):
        assert rule(grant(ledger, "coop0", **expiry(ledger, offer, wrong))[1]) == "grant"
    with_share = {**expiry(ledger, offer, 8_000), "share": 800, "credit": -7_200}
    assert rule(grant(ledger, "coop0", **with_share)[1]) == "grant"
    not_zero = {**expiry(ledger, offer, 8_000), "estimate": 12_000}
    assert rule(grant(ledger, "coop0", **not_zero)[1]) == "grant"
    assert ledger["coop0"].balance == 8_000  # nothing was taken by the refusals
    ok(grant(ledger, "coop0", **expiry(ledger, offer, 8_000))[1])
    assert ledger["coop0"].balance == 0
    audited(ledger)


async def test_an_expiry_a_period_before_it_is_due_is_refused(make_api: MakeAPI) -> None:
    ledger = grant_ledger(EXPIRING)
    api = make_api(ledger)
    offer, _ = granted_new(ledger)
    await month_turns(ledger, api, MONTHS - 1)
    assert rule(grant(ledger, "coop0", **expiry(ledger, offer, 18_000))[1]) == "expiry-early"
    await month_turns(ledger, api)
    ok(grant(ledger, "coop0", **expiry(ledger, offer, 18_000))[1])


async def test_a_second_expiry_needs_a_positive_grant_after_the_first(make_api: MakeAPI) -> None:
    ledger = grant_ledger(EXPIRING)
    api = make_api(ledger)
    offer, _ = granted_new(ledger)
    ok(ledger.pay("coop1-m0", "coop0", 30_000))  # the co-op holds more than its grant
    await month_turns(ledger, api, MONTHS)
    before = ledger["coop0"].balance
    first = expiry(ledger, offer, 18_000)
    cut, verdict = grant(ledger, "coop0", **first)
    ok(verdict)
    assert rule(grant(ledger, "coop0", **first)[1]) == "duplicate"
    again = expiry(ledger, offer, 2_000)
    assert again["prev_grant"] == cut.hash
    assert rule(grant(ledger, "coop0", **again)[1]) == "expiry-early"  # nothing granted since
    zero = {"count": 0, "total": 0, "excluded": 0, "new": 0}
    back_up = {
        **expiry(ledger, offer, 0), "basis": "reestimate", "sales": zero, "advance": 0,
        "estimate": 0, "granted": 0, "credit": -2_000, "due": None,
    }  # fmt: skip
    assert rule(grant(ledger, "coop0", **back_up)[1]) == "basis"  # one re-estimate a month
    assert ledger["coop0"].balance == before - 18_000
    await month_turns(ledger, api)  # the line goes on: re-estimated from sales next month
    assert last_grant(ledger).entry_value()["granted"] == 20_000
    audited(ledger)


async def test_only_a_coop_expires_its_own_line(make_api: MakeAPI) -> None:
    ledger = grant_ledger(EXPIRING)
    api = make_api(ledger)
    offer, _ = granted_new(ledger)
    ok(ledger.pay("coop1-m0", "coop1", 30_000))
    await month_turns(ledger, api, MONTHS)
    honest = expiry(ledger, offer, 18_000)
    assert rule(grant(ledger, "coop1", **honest)[1]) == "prev-grant"  # coop0's line
    assert rule(grant(ledger, "coop1", **{**honest, "prev_grant": None})[1]) == "basis"
    assert rule(grant(ledger, "coop0-m1", **expiry(ledger, offer, 1_000))[1]) == "role"
    ok(grant(ledger, "coop0", **honest)[1])
    audited(ledger)


async def test_an_expiry_that_recovers_nothing_is_refused(make_api: MakeAPI) -> None:
    ledger = grant_ledger(EXPIRING)
    api = make_api(ledger)
    offer, _ = granted_new(ledger)
    ok(ledger.pay("coop0", "coop1", 18_000))
    await month_turns(ledger, api, MONTHS, spend=True)
    assert ledger["coop0"].balance == 0
    assert rule(grant(ledger, "coop0", **expiry(ledger, offer, 0))[1]) == "grant"


async def test_the_switch_is_amendable_and_judged_under_the_rules_at_the_records_time(
    make_api: MakeAPI,
) -> None:
    ledger = grant_ledger(GRANTS)
    api = make_api(ledger)
    offer, _ = granted_new(ledger)
    await month_turns(ledger, api, MONTHS)
    assert rule(grant(ledger, "coop0", **expiry(ledger, offer, 18_000))[1]) == "expiry-off"
    amend = {"param": "app_config/exchange", "value": EXPIRING}
    proposal, verdict = ledger.propose("coop0", ProposalKind.AMEND, amend)
    ok(verdict)
    votes = []
    for coop in ("coop0", "coop1"):
        vote, verdict = ledger.vote(coop, proposal.hash)
        ok(verdict)
        votes.append(vote.hash)
    ledger.advance(DAY + 1)
    ok(ledger.ratify("coop0", proposal.hash, votes)[1])
    ledger.advance(1_000)
    ok(grant(ledger, "coop0", **expiry(ledger, offer, 18_000))[1])
    audited(ledger)


def test_the_expiry_figures_come_from_the_shared_arithmetic() -> None:
    def cut(net: int, balance: int) -> int:
        return grant_amounts(
            "expire", LineState(20_000, 20_000, 20_000), cap=CAP, share_bp=1_000,
            balance_before=balance, limits=Limits(5_000, 1_000_000), net=net,
        ).gross  # fmt: skip

    assert [cut(18_000, b) for b in (-4_000, 0, 1, 17_999, 18_000, 90_000)] == [
        0, 0, -1, -17_999, -18_000, -18_000,
    ]  # fmt: skip
    assert cut(-2_000, 50_000) == 0  # a line recovered below its shares has nothing unspent


# -- the whole economy, with expiry on ---------------------------------------------------------------------

MONTH = st.lists(
    st.one_of(
        st.tuples(st.just("offer"), st.integers(0, 1), st.integers(1, 300)),
        st.tuples(st.just("buy"), st.sampled_from(["coop0-m0", "coop1-m0", "coop0", "coop1"]),
                  st.integers(0, 3), st.integers(1, 20_000)),
        st.tuples(st.just("pay"), st.sampled_from(["coop0", "coop1"]),
                  st.sampled_from(["coop0-m1", "coop1-m1"]), st.integers(1, 20_000)),
        st.tuples(st.just("enlarge"), st.integers(0, 3), st.integers(1, 400)),
    ),
    max_size=6,
)  # fmt: skip


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.integers(1, 3), st.lists(MONTH, min_size=1, max_size=7))
async def test_any_run_with_expiry_on_sums_to_zero_and_no_coop_goes_below_zero_by_it(
    make_api: MakeAPI, months: int, script: list[list[tuple[Any, ...]]]
) -> None:
    ledger = grant_ledger({**GRANTS, "grant_expiry_months": months})
    api = make_api(ledger)
    offers: list[tuple[str, str]] = []
    for month in script:
        for action in month:
            if action[0] == "offer":
                seller = f"coop{action[1]}"
                posted = await app.functions["offer-add"](
                    api, title="Jam", category="food", price=100, unit="jar",
                    quantity=action[2], agent=ledger[seller].key,
                )  # fmt: skip
                offers.append((posted["hash"], seller))
            elif action[0] == "buy" and offers:
                offer, seller = offers[action[2] % len(offers)]
                if action[1] != seller:
                    ledger.pay(action[1], seller, action[3], offer=ActionHash.parse(offer))
            elif action[0] == "pay":
                ledger.pay(action[1], action[2], action[3])
            elif action[0] == "enlarge" and offers:
                offer, _ = offers[action[1] % len(offers)]
                await app.functions["offer-renew"](api, offer=offer, quantity=action[2])
        to_month(ledger)
        for row in await duty(api):
            assert "refused" not in row and "refused" not in row.get("expiry", {}), row
            cut = row.get("expiry", {}).get("grant")
            if cut is not None:
                event("expired")
                record = ledger.held.get_record(ActionHash.parse(cut["hash"]))
                assert record is not None
                move = record.entry_value()["credit"]
                # an expiry takes only from a positive balance, and never below zero
                assert move["delta"] < 0 <= move["balance_after"]
    audited(ledger)
