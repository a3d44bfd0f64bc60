"""The exchange app through the real engine: each rule with its attack and its honest variant,
search (text on a real SQLite FTS5 index, category subtree, distance), matches and notices,
and the functions through ``LedgerAPI``.

Every record is correctly signed and judged by the same activity fold and engine a peer runs
(``Ledger.create``/``commit``), so a refusal comes from the exchange rule under test.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conode.apps.exchange import (
    CATEGORY_LINK,
    OFFER,
    UPDATE,
    WANT,
    ExchangeConfig,
    app,
    category_anchor,
    distance_km,
    listings,
    matches,
    notices,
    read_config,
    search,
)
from conode.apps.exchange.functions import SEARCH_MARGIN, parse_location
from conode.apps.sdk import EntryType, Int, Text
from conode.chain import ActionKind, Record, author_record
from conode.errors import ValidationError
from conode.hashes import ActionHash, EntryHash
from conode.store.search import TextIndex, fts_query
from conode.testing import Ledger
from conode.testing.ledger import DAY
from conode.validation.governance import ProposalKind
from conode.validation.schema import SchemaError
from conode.validation.verdict import Invalid, Valid, Verdict

LONDON = (51_507_400, -127_800)  # micro-degrees
OXFORD = (51_752_000, -1_257_800)  # about 80 km from London
PARIS = (48_856_600, 2_352_200)  # about 344 km from London

# -- helpers -------------------------------------------------------------------------------------------


def rule(verdict: Verdict) -> str:
    assert isinstance(verdict, Invalid), f"expected a refusal, got {verdict!r}"
    return verdict.rule


def ok(verdict: Verdict) -> None:
    assert isinstance(verdict, Valid), verdict


def listing_values(ledger: Ledger, **values: Any) -> dict[str, Any]:
    """An offer's or want's fields (defaults: a month of sourdough in London)."""
    location = values.pop("at", LONDON)
    values.setdefault("title", "Sourdough bread")
    values.setdefault("description", "Baked daily with organic flour")
    values.setdefault("category", "food/bakery")
    values.setdefault("price", 350)
    values.setdefault("unit", "loaf")
    values.setdefault("quantity", 400)
    values.setdefault(
        "location", None if location is None else {"lat": location[0], "lon": location[1]}
    )
    values.setdefault("expires", ledger.clock + 30 * DAY)
    values.setdefault("rules", ledger.gov_head)
    return values


def post(ledger: Ledger, name: str, entry_type: str, **values: Any) -> tuple[Record, Verdict]:
    """Commit an offer or want, checked by the SDK on the way out."""
    return ledger.create(
        name, entry_type, app.entry(entry_type, **listing_values(ledger, **values))
    )


def offer(ledger: Ledger, name: str = "coop0", **values: Any) -> Record:
    record, verdict = post(ledger, name, OFFER, **values)
    ok(verdict)
    return record


def want(ledger: Ledger, name: str = "coop1-m0", **values: Any) -> Record:
    record, verdict = post(ledger, name, WANT, **values)
    ok(verdict)
    return record


def update(
    ledger: Ledger, name: str, item: ActionHash, prev: ActionHash, **values: Any
) -> tuple[Record, Verdict]:
    entry = app.entry(UPDATE, item=item, prev=prev, rules=ledger.gov_head, **values)
    return ledger.create(name, UPDATE, entry)


def link(ledger: Ledger, name: str, base: EntryHash, target: ActionHash, tag: str) -> Verdict:
    agent = ledger[name]
    record = author_record(
        agent.signer, agent.activity.head, kind=ActionKind.LINK, timestamp=ledger.now(),
        entry={"base": base.to_bytes(), "target": target.to_bytes(), "tag": tag},
        entry_type=CATEGORY_LINK,
    )  # fmt: skip
    return ledger.commit(name, record)


def ratified(ledger: Ledger, kind: str, body: dict[str, Any]) -> None:
    """Propose, vote (both co-ops) and ratify: the ledger's governance head moves on."""
    proposal, verdict = ledger.propose("coop0", kind, body)
    ok(verdict)
    votes = []
    for coop in ("coop0", "coop1"):
        vote, verdict = ledger.vote(coop, proposal.hash)
        ok(verdict)
        votes.append(vote.hash)
    ledger.advance(DAY + 1)
    ok(ledger.ratify("coop0", proposal.hash, votes)[1])


def configure(ledger: Ledger, value: Any) -> None:
    """Ratify an amendment that sets the exchange's configuration."""
    ratified(ledger, ProposalKind.AMEND, {"param": "app_config/exchange", "value": value})


def held(ledger: Ledger) -> list[Record]:
    return [r for chain in ledger.chains() for r in chain]


def exchange_ledger(**kw: Any) -> Ledger:
    return Ledger(apps={"exchange": app}, **kw)


@pytest.fixture
def ledger() -> Ledger:
    return exchange_ledger()


# -- offers and wants: who may post --------------------------------------------------------------------


def test_a_coop_offers_and_a_member_and_a_coop_post_wants(ledger: Ledger) -> None:
    offer(ledger, "coop0")
    want(ledger, "coop1-m0")
    want(ledger, "coop1")
    assert ledger.audit().ok


def test_an_offer_by_a_member_not_a_coop_is_refused(ledger: Ledger) -> None:
    _, verdict = post(ledger, "coop0-m0", OFFER)
    assert rule(verdict) == "role"
    assert ledger["coop0-m0"].chain[-1].action.entry_type != OFFER  # nothing was committed


def test_a_member_of_a_revoked_coop_may_no_longer_post_a_want(ledger: Ledger) -> None:
    ratified(
        ledger, ProposalKind.REVOKE, {"agent": ledger["coop1"].key.to_bytes(), "reason": "wound up"}
    )
    _, verdict = post(ledger, "coop1-m0", WANT)
    assert rule(verdict) == "provenance"
    want(ledger, "coop0-m0")  # a member of a co-op in good standing still may


def test_money_and_coordinates_are_integers_never_floats(ledger: Ledger) -> None:
    values = listing_values(ledger)
    with pytest.raises(SchemaError):
        app.entry(OFFER, **{**values, "price": 3.5})
    with pytest.raises(SchemaError):
        app.entry(OFFER, **{**values, "location": {"lat": 51.5074, "lon": -0.1278}})
    entry = app.entry(OFFER, **values)
    with pytest.raises(TypeError):  # nor can a float be signed: the encoding has none
        ledger.create("coop0", OFFER, {**entry, "price": 3.5})
    assert rule(ledger.create("coop0", OFFER, {**entry, "price": "3.50"})[1]) == "schema"
    ok(ledger.create("coop0", OFFER, entry)[1])


def test_an_offer_that_expires_at_or_before_its_own_time_is_refused(ledger: Ledger) -> None:
    _, verdict = post(ledger, "coop0", OFFER, expires=ledger.clock)
    assert rule(verdict) == "expiry"


def test_an_offer_may_run_at_most_a_year(ledger: Ledger) -> None:
    _, verdict = post(ledger, "coop0", OFFER, expires=ledger.clock + 400 * DAY)
    assert rule(verdict) == "expiry"
    offer(ledger, expires=ledger.clock + 364 * DAY)


def test_the_maximum_expiry_comes_from_the_configuration_in_force(ledger: Ledger) -> None:
    configure(ledger, {"max_expiry_days": 10})
    _, verdict = post(ledger, "coop0", OFFER, expires=ledger.clock + 20 * DAY)
    assert rule(verdict) == "expiry"
    offer(ledger, expires=ledger.clock + 9 * DAY)


def test_a_want_with_a_radius_but_no_location_is_refused(ledger: Ledger) -> None:
    _, verdict = post(ledger, "coop1-m0", WANT, at=None, radius_km=20)
    assert rule(verdict) == "locality"
    want(ledger, at=None, region="Hackney")  # a region alone is a locality too
    want(ledger, radius_km=20)


# -- categories from the rules ---------------------------------------------------------------------------


def test_with_no_category_tree_any_well_formed_category_is_allowed(ledger: Ledger) -> None:
    offer(ledger, category="anything/at-all")
    entry = app.entry(OFFER, **listing_values(ledger))
    assert rule(ledger.create("coop0", OFFER, {**entry, "category": "Food/Bread"})[1]) == "schema"
    assert rule(ledger.create("coop0", OFFER, {**entry, "category": "food//x"})[1]) == "schema"


def test_an_unknown_category_is_refused_under_the_tree_in_force(ledger: Ledger) -> None:
    configure(ledger, {"categories": ["food/bakery", "services/repair"]})
    _, verdict = post(ledger, "coop0", OFFER, category="crafts/pottery")
    assert rule(verdict) == "category"
    _, verdict = post(ledger, "coop1-m0", WANT, category="food/dairy")
    assert rule(verdict) == "category"
    offer(ledger, category="food/bakery")
    offer(ledger, category="food")  # the parent of a listed category is in the tree
    want(ledger, category="services/repair")


def test_a_category_is_allowed_after_an_amendment_adds_it(ledger: Ledger) -> None:
    configure(ledger, {"categories": ["food"]})
    _, verdict = post(ledger, "coop0", OFFER, category="crafts/pottery")
    assert rule(verdict) == "category"
    configure(ledger, {"categories": ["food", "crafts/pottery"]})
    offer(ledger, category="crafts/pottery")
    assert ledger.audit().ok


def test_a_malformed_configuration_refuses_posting_until_it_is_amended(ledger: Ledger) -> None:
    configure(ledger, {"categories": "food"})
    _, verdict = post(ledger, "coop0", OFFER)
    assert rule(verdict) == "config"
    configure(ledger, {"categories": ["food/bakery"]})
    offer(ledger)


def test_the_configuration_reads_its_documented_shape() -> None:
    assert read_config(None) == ExchangeConfig()
    config = read_config({"categories": ["food/bakery"], "max_expiry_days": 90, "later": 1})
    assert config.allows("food") and config.allows("food/bakery")
    assert not config.allows("foo") and not config.allows("food/bakery/rye")
    assert read_config(config.to_value()) == config
    for bad in ([1], {"categories": ["Food"]}, {"max_expiry_days": 0}, {"max_expiry_days": 367}):
        with pytest.raises(ValueError):
            read_config(bad)


# -- updates ---------------------------------------------------------------------------------------


def test_the_author_renews_changes_and_withdraws_an_offer(ledger: Ledger) -> None:
    item = offer(ledger)
    renewed, verdict = update(
        ledger, "coop0", item.hash, item.hash, expires=ledger.clock + 60 * DAY
    )
    ok(verdict)
    enlarged, verdict = update(ledger, "coop0", item.hash, renewed.hash, quantity=800, price=300)
    ok(verdict)
    ok(update(ledger, "coop0", item.hash, enlarged.hash, close="withdrawn")[1])
    state = listings(held(ledger))[item.hash]
    assert (state.quantity, state.price, state.closed) == (800, 300, "withdrawn")
    assert ledger.audit().ok


def test_an_update_by_someone_else_is_refused(ledger: Ledger) -> None:
    item = offer(ledger, "coop0")
    _, verdict = update(ledger, "coop1", item.hash, item.hash, close="withdrawn")
    assert rule(verdict) == "author"
    _, verdict = update(ledger, "coop0-m0", item.hash, item.hash, expires=ledger.clock + DAY)
    assert rule(verdict) == "author"


def test_renewal_after_withdrawal_is_refused(ledger: Ledger) -> None:
    item = offer(ledger)
    withdrawal, verdict = update(ledger, "coop0", item.hash, item.hash, close="withdrawn")
    ok(verdict)
    _, verdict = update(
        ledger, "coop0", item.hash, withdrawal.hash, expires=ledger.clock + 30 * DAY
    )
    assert rule(verdict) == "closed"


def test_a_renewal_beside_a_withdrawal_is_a_duplicate_and_never_reopens_the_offer(
    ledger: Ledger,
) -> None:
    item = offer(ledger)
    ok(update(ledger, "coop0", item.hash, item.hash, close="withdrawn")[1])
    # a renewal that follows the same revision as the withdrawal: the activity fold refuses the
    # author's second use of that revision (its ``once`` key), whatever the record says alone
    beside, verdict = update(ledger, "coop0", item.hash, item.hash, expires=ledger.clock + 9 * DAY)
    assert rule(verdict) == "duplicate"
    assert isinstance(app.validate(beside, beside.entry_value(), ledger.rules_now(), ledger.engine, ledger.held), Valid)
    # and a peer that holds it anyway (a fork's copy) still sees the offer closed
    state = listings([*held(ledger), beside])[item.hash]
    assert state.closed == "withdrawn" and not state.is_open(ledger.clock)


def test_a_want_closes_as_met_but_an_offer_cannot(ledger: Ledger) -> None:
    item = offer(ledger)
    assert rule(update(ledger, "coop0", item.hash, item.hash, close="met")[1]) == "update"
    wanted = want(ledger)
    ok(update(ledger, "coop1-m0", wanted.hash, wanted.hash, close="met")[1])
    assert listings(held(ledger))[wanted.hash].status(ledger.clock) == "met"


def test_an_update_that_changes_nothing_is_refused(ledger: Ledger) -> None:
    item = offer(ledger)
    assert rule(update(ledger, "coop0", item.hash, item.hash)[1]) == "update"


def test_a_renewal_must_expire_after_it_and_within_the_maximum(ledger: Ledger) -> None:
    item = offer(ledger)
    _, verdict = update(ledger, "coop0", item.hash, item.hash, expires=ledger.clock - DAY)
    assert rule(verdict) == "expiry"
    _, verdict = update(ledger, "coop0", item.hash, item.hash, expires=ledger.clock + 500 * DAY)
    assert rule(verdict) == "expiry"


def test_an_update_follows_a_revision_of_its_own_item(ledger: Ledger) -> None:
    first, second = offer(ledger), offer(ledger, title="Rye bread")
    of_second, verdict = update(ledger, "coop0", second.hash, second.hash, quantity=5)
    ok(verdict)
    _, verdict = update(ledger, "coop0", first.hash, of_second.hash, quantity=6)
    assert rule(verdict) == "revision"
    third = offer(ledger, title="Spelt bread")
    _, verdict = update(ledger, "coop0", first.hash, third.hash, quantity=6)  # another item
    assert rule(verdict) == "revision"


def test_an_update_of_something_that_is_no_offer_or_want_is_refused(ledger: Ledger) -> None:
    item = offer(ledger)
    not_an_item, verdict = update(ledger, "coop0", item.hash, item.hash, quantity=5)
    ok(verdict)
    _, verdict = update(ledger, "coop0", not_an_item.hash, not_an_item.hash, quantity=6)
    assert rule(verdict) == "reference"


def test_a_revoked_coop_may_withdraw_its_offer_but_not_renew_it(ledger: Ledger) -> None:
    item = offer(ledger, "coop1")
    ratified(
        ledger, ProposalKind.REVOKE, {"agent": ledger["coop1"].key.to_bytes(), "reason": "wound up"}
    )
    _, verdict = update(ledger, "coop1", item.hash, item.hash, expires=ledger.clock + DAY)
    assert rule(verdict) in ("revoked", "provenance")
    ok(update(ledger, "coop1", item.hash, item.hash, close="withdrawn")[1])


# -- category links --------------------------------------------------------------------------------------


def test_an_item_is_indexed_under_its_own_category_by_its_author(ledger: Ledger) -> None:
    item = offer(ledger, category="food/bakery")
    ok(link(ledger, "coop0", category_anchor("food/bakery"), item.hash, "food/bakery"))


def test_a_category_link_whose_base_is_not_its_tags_anchor_is_refused(ledger: Ledger) -> None:
    item = offer(ledger, category="food/bakery")
    verdict = link(ledger, "coop0", category_anchor("food"), item.hash, "food/bakery")
    assert rule(verdict) == "anchor"


def test_a_category_link_under_another_category_is_refused(ledger: Ledger) -> None:
    item = offer(ledger, category="food/bakery")
    assert rule(link(ledger, "coop0", category_anchor("food"), item.hash, "food")) == "category"


def test_a_category_link_to_someone_elses_item_is_refused(ledger: Ledger) -> None:
    item = offer(ledger, "coop0", category="food/bakery")
    verdict = link(ledger, "coop1", category_anchor("food/bakery"), item.hash, "food/bakery")
    assert rule(verdict) == "author"


# -- listings, search, matches, notices (pure views) ----------------------------------------------------------


def test_an_offer_is_open_until_it_expires(ledger: Ledger) -> None:
    item = offer(ledger, expires=ledger.clock + 2 * DAY)
    state = listings(held(ledger))[item.hash]
    assert state.status(ledger.clock) == "open"
    assert "conode offer renew" in (state.reminder(ledger.clock) or "")
    assert state.status(state.expires) == "expired"
    assert search(listings(held(ledger)).values(), at=state.expires) == []


def test_the_same_records_in_any_order_give_the_same_listings(ledger: Ledger) -> None:
    item = offer(ledger)
    renewed, _ = update(ledger, "coop0", item.hash, item.hash, expires=ledger.clock + 40 * DAY)
    update(ledger, "coop0", item.hash, renewed.hash, quantity=9)
    records = held(ledger)
    assert listings(records) == listings(list(reversed(records))) == listings(records + records)


def test_search_by_category_finds_the_whole_subtree_only(ledger: Ledger) -> None:
    bread = offer(ledger, category="food/bakery")
    cheese = offer(ledger, title="Cheddar", category="food/dairy")
    repair = offer(ledger, title="Bike repair", category="services/repair")
    pool = listings(held(ledger)).values()
    found = {f.listing.hash for f in search(pool, at=ledger.clock, category="food")}
    assert found == {bread.hash, cheese.hash}
    found = {f.listing.hash for f in search(pool, at=ledger.clock, category="services")}
    assert found == {repair.hash}
    assert search(pool, at=ledger.clock, category="foo") == []  # "food" is not under "foo"


def test_search_by_distance_keeps_what_is_within_and_sorts_nearest_first(ledger: Ledger) -> None:
    paris = offer(ledger, at=PARIS)
    oxford = offer(ledger, at=OXFORD)
    london = offer(ledger, at=LONDON)
    nowhere = offer(ledger, at=None, region="Online")
    pool = listings(held(ledger)).values()
    near = search(pool, at=ledger.clock, near=LONDON, within_km=100)
    assert [f.listing.hash for f in near] == [london.hash, oxford.hash]
    assert 70 < (near[1].distance_km or 0) < 90
    everywhere = search(pool, at=ledger.clock, near=LONDON)
    assert [f.listing.hash for f in everywhere] == [
        london.hash,
        oxford.hash,
        paris.hash,
        nowhere.hash,
    ]
    assert [f.listing.hash for f in search(pool, at=ledger.clock, region="online")] == [
        nowhere.hash
    ]


def test_distances_are_great_circle_kilometres() -> None:
    assert distance_km(LONDON, LONDON) == 0
    assert 340 < distance_km(LONDON, PARIS) < 346
    assert distance_km(LONDON, PARIS) == pytest.approx(distance_km(PARIS, LONDON))
    assert distance_km((0, 0), (0, 180_000_000)) == pytest.approx(3.14159 * 6371.0088, rel=1e-4)


def test_a_matching_offer_is_in_the_wants_subtree_shares_a_word_and_is_within_its_radius(
    ledger: Ledger,
) -> None:
    wanted = want(ledger, title="Sourdough loaves", category="food", radius_km=100)
    good = offer(ledger, title="Sourdough", category="food/bakery", at=OXFORD)
    far = offer(ledger, title="Sourdough", category="food/bakery", at=PARIS)
    other_words = offer(ledger, title="Cheddar", description="Aged cheese", category="food/dairy")
    other_tree = offer(ledger, title="Sourdough classes", category="services/teaching")
    nowhere = offer(ledger, title="Sourdough", category="food/bakery", at=None)
    pool = listings(held(ledger))
    found = matches(
        pool[wanted.hash], [pool[h.hash] for h in (good, far, other_words, other_tree, nowhere)]
    )
    assert [m.hash for m in found] == [good.hash]


def test_notices_tell_the_wanter_of_newer_open_matching_offers(ledger: Ledger) -> None:
    older = offer(ledger, title="Rye sourdough")
    wanted = want(
        ledger, "coop1-m0", title="Sourdough for our cafe", description="", category="food"
    )
    newer = offer(ledger, title="Sourdough, sliced")
    withdrawn = offer(ledger, title="Sourdough rolls")
    ok(update(ledger, "coop0", withdrawn.hash, withdrawn.hash, close="withdrawn")[1])
    offer(ledger, title="Spelt flour", description="")  # shares no word with the want
    pool = listings(held(ledger)).values()
    got = notices(pool, [ledger["coop1-m0"].key], ledger.clock)
    assert [(n.want.hash, n.offer.hash) for n in got] == [(wanted.hash, newer.hash)]
    assert older.hash not in {n.offer.hash for n in got}
    assert notices(pool, [ledger["coop0-m0"].key], ledger.clock) == []  # not their want
    ok(update(ledger, "coop1-m0", wanted.hash, wanted.hash, close="met")[1])
    assert notices(listings(held(ledger)).values(), [ledger["coop1-m0"].key], ledger.clock) == []


# -- the text index (real SQLite FTS5) ----------------------------------------------------------------------


def test_the_text_index_finds_every_word_in_bm25_order_and_forgets_removed_records() -> None:
    index = TextIndex(sqlite3.connect(":memory:"))
    a, b, c = (ActionHash.of(bytes([i])) for i in range(3))
    index.add(a, OFFER, "Sourdough bread\nBread, bread and more bread")
    index.add(b, OFFER, "Bread flour from the Café")
    index.add(c, WANT, "Bread wanted")
    assert index.search("bread", [OFFER]) == [a, b]  # more mentions rank first
    assert index.search("BREAD cafe", [OFFER]) == [b]  # every word, case and accents folded
    assert index.search("bre", [OFFER, WANT]) == [a, c, b]  # words are prefixes
    assert index.search("bread", [WANT]) == [c]
    index.remove(a)
    index.add(b, OFFER, "Rye")  # adding again replaces the text
    assert index.search("bread", [OFFER]) == [] and len(index) == 2


@pytest.mark.parametrize(
    "text", ['"', "bread AND", "NEAR(bread", "bread*", "-bread", "title:bread", "(", "^bread", "'"]
)
def test_what_people_type_is_never_an_fts_query(text: str) -> None:
    index = TextIndex(sqlite3.connect(":memory:"))
    index.add(ActionHash.of(b"x"), OFFER, "bread and near title")
    index.search(text, [OFFER])  # no syntax error, whatever the text
    assert fts_query('"') is None


def test_searchable_fields_must_be_text() -> None:
    with pytest.raises(ValueError):
        EntryType("x", {"title": Text(10)}, searchable=("missing",))
    with pytest.raises(ValueError):
        EntryType("x", {"count": Int(0, 9)}, searchable=("count",))
    spec = EntryType("x", {"title": Text(10), "body": Text(10)}, searchable=("title", "body"))
    assert spec.text({"title": "a", "body": "b"}) == "a\nb"


def test_an_offer_is_indexed_by_its_title_description_and_region_and_an_update_not_at_all(
    ledger: Ledger,
) -> None:
    item = offer(ledger, title="Rye", description="Dark loaf", at=None, region="Leeds")
    assert app.search_text(item) == "Rye\nDark loaf\nLeeds"
    renewed, _ = update(ledger, "coop0", item.hash, item.hash, quantity=3)
    assert app.search_text(renewed) is None
    assert app.searchable_types == (OFFER, WANT)


# -- the functions, through the node's API played by the ledger --------------------------------------------


async def test_offer_functions_add_list_renew_and_withdraw(api_for: Any, ledger: Ledger) -> None:
    api = api_for(ledger, app)
    coop = str(ledger["coop0"].key)
    added = await app.functions["offer-add"](
        api, agent=coop, title="Sourdough", category="food/bakery", price="350", unit="loaf",
        quantity=400, location="51.5074,-0.1278", days=5,
    )  # fmt: skip
    assert added["location"] == {"lat": 51_507_400, "lon": -127_800}
    assert added["status"] == "open" and "expires in 5 days" in added["reminder"]
    links = [r for r in ledger["coop0"].chain if r.action.entry_type == CATEGORY_LINK]
    assert [r.entry_value()["tag"] for r in links] == ["food/bakery"]
    renewed = await app.functions["offer-renew"](api, offer=added["hash"], days=60, quantity=500)
    assert renewed["quantity"] == 500 and renewed["reminder"] is None
    assert renewed["expires"] > added["expires"]
    listed = app.functions["offer-list"](api, agent=coop)
    assert [o["hash"] for o in listed] == [added["hash"]]
    withdrawn = await app.functions["offer-withdraw"](api, offer=added["hash"])
    assert withdrawn["status"] == "withdrawn"
    with pytest.raises(ValidationError) as refused:
        await app.functions["offer-renew"](api, offer=added["hash"])
    assert refused.value.rule == "closed"


async def test_offer_add_by_a_member_is_refused_through_the_api(
    api_for: Any, ledger: Ledger
) -> None:
    api = api_for(ledger, app)
    with pytest.raises(ValidationError) as refused:
        await app.functions["offer-add"](
            api, agent=str(ledger["coop0-m0"].key), title="Jam", category="food", price=1,
            unit="jar", quantity=1,
        )  # fmt: skip
    assert refused.value.rule == "role"


async def test_offer_search_by_text_category_and_distance(api_for: Any, ledger: Ledger) -> None:
    api = api_for(ledger, app)
    add = app.functions["offer-add"]

    async def added(title: str, category: str, where: str, description: str = "") -> str:
        value = await add(
            api, agent=str(ledger["coop0"].key), title=title, category=category, price=100,
            unit="each", quantity=10, location=where, description=description,
        )  # fmt: skip
        return str(value["hash"])

    rye = await added("Rye sourdough", "food/bakery", "51.5074,-0.1278")
    spelt = await added("Spelt loaf", "food/bakery", "48.8566,2.3522", "a sourdough loaf")
    kefir = await added("Kefir", "food/dairy", "51.5074,-0.1278", "sourdough starter culture")
    search_fn = app.functions["offer-search"]
    by_text = [o["hash"] for o in await search_fn(api, text="sourdough")]
    assert set(by_text) == {rye, spelt, kefir} and by_text[0] == rye  # in the title ranks first
    in_bakery = await search_fn(api, text="sourdough", category="food/bakery")
    assert [o["hash"] for o in in_bakery] == [rye, spelt]
    near = await search_fn(api, text="sourdough", near="51.5,-0.12", within_km="50")
    assert {o["hash"] for o in near} == {rye, kefir}
    assert [o["hash"] for o in await search_fn(api, category="food/dairy")] == [kefir]
    assert await search_fn(api, text="croissant") == []
    with pytest.raises(ValueError):
        await search_fn(api, within_km=5)


async def test_offer_search_reads_a_page_of_hits_and_deeper_only_when_filters_drop_them(
    api_for: Any, ledger: Ledger
) -> None:
    api = api_for(ledger, app)
    limits: list[int] = []
    searched = api.search

    def search_spy(text: str, *entry_types: str, limit: int = 50) -> Any:
        limits.append(limit)  # how many text hits each round reads from the store
        return searched(text, *entry_types, limit=limit)

    api.search = search_spy
    made = []
    for i in range(30):  # equal texts rank by age: the 24 dairy ones come first
        value = await app.functions["offer-add"](
            api, agent=str(ledger["coop0"].key), title=f"Bread {i}", price=100, unit="each",
            quantity=1, category="food/dairy" if i < 24 else "food/bakery",
        )  # fmt: skip
        made.append(value["hash"])
    search_fn = app.functions["offer-search"]
    page = await search_fn(api, text="bread", limit=3, local=True)
    assert [o["hash"] for o in page] == made[:3]
    assert limits == [3 + SEARCH_MARGIN]  # one round, a page and its margin: not 200 hits
    limits.clear()
    bakery = await search_fn(api, text="bread", category="food/bakery", limit=3, local=True)
    assert [o["hash"] for o in bakery] == made[24:27]  # the same as one deep read would show
    assert len(limits) == 2 and limits[1] >= 30  # the first round found none: it read deeper


async def test_want_functions_and_notices(api_for: Any, ledger: Ledger) -> None:
    api = api_for(ledger, app)
    member = str(ledger["coop1-m0"].key)
    wanted = await app.functions["want-add"](
        api, agent=member, title="Oat milk", category="food", price=200, unit="litre",
        quantity=30, location="51.5074,-0.1278", radius_km=50,
    )  # fmt: skip
    assert [w["hash"] for w in await app.functions["want-search"](api, text="oat")] == [
        wanted["hash"]
    ]
    await app.functions["offer-add"](
        api, agent=str(ledger["coop0"].key), title="Oat milk, organic", category="food/dairy",
        price=180, unit="litre", quantity=1000, location="51.52,-0.10",
    )  # fmt: skip
    told = app.functions["notices"](api, agent=member)
    assert [(n["want"], n["offer"]["title"]) for n in told] == [
        (wanted["hash"], "Oat milk, organic")
    ]
    closed = await app.functions["want-close"](api, want=wanted["hash"], reason="met")
    assert closed["status"] == "met"
    assert app.functions["notices"](api, agent=member) == []
    assert await app.functions["want-search"](api, text="oat") == []
    assert [w["status"] for w in app.functions["want-list"](api, agent=member)] == ["met"]


def test_locations_are_read_exactly_as_micro_degrees() -> None:
    assert parse_location("51.5074, -0.1278") == {"lat": 51_507_400, "lon": -127_800}
    assert parse_location({"lat": 1, "lon": 2}) == {"lat": 1, "lon": 2}
    assert parse_location("0.0000015,0") == {"lat": 2, "lon": 0}  # rounded to the micro-degree
    for bad in ("91,0", "0,181", "north", "1,2,3", "1e1,0", "nan,0"):
        with pytest.raises(ValueError):
            parse_location(bad)
    # only the digits 0-9: Decimal() reads Arabic-Indic and fullwidth digits and 1_0
    for bad in ("\u0665\u0661.\u0665,0", "\uff15\uff11,0", "1_0,0", "0,-1_0"):
        with pytest.raises(ValueError, match="not a number of degrees"):
            parse_location(bad)


def test_whole_number_parameters_given_as_text_take_only_the_digits_0_to_9() -> None:
    assert parse_location({"lat": "5", "lon": "6"}) == {"lat": 5, "lon": 6}
    for bad in ("\u0665", "\uff15", "1_0", "\u00b2"):
        with pytest.raises(ValueError, match="the digits 0-9"):
            parse_location({"lat": bad, "lon": "6"})


# -- property: search shows only open offers --------------------------------------------------------------

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(1, 20)),  # days until it expires
        st.tuples(st.just("renew"), st.integers(0, 30), st.integers(1, 20)),
        st.tuples(st.just("withdraw"), st.integers(0, 30)),
        # a renewal that follows the original, not the latest revision: a fork of the line
        st.tuples(st.just("fork"), st.integers(0, 30), st.integers(1, 20)),
        st.tuples(st.just("wait"), st.integers(1, 10)),  # days
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS, st.sampled_from(["", "bread", "rye bread", "food"]))
def test_search_never_returns_an_expired_or_withdrawn_offer(
    ops: list[tuple[Any, ...]], text: str
) -> None:
    ledger = exchange_ledger(members=0)
    items: list[ActionHash] = []
    heads: dict[ActionHash, ActionHash] = {}
    expires: dict[ActionHash, int] = {}
    withdrawn: set[ActionHash] = set()
    for op in ops:
        if op[0] == "add":
            title = "Rye bread" if len(items) % 2 else "White bread"
            record = offer(ledger, title=title, expires=ledger.clock + op[1] * DAY)
            items.append(record.hash)
            heads[record.hash] = record.hash
            expires[record.hash] = record.entry_value()["expires"]
        elif op[0] in ("renew", "withdraw") and items:
            item = items[op[1] % len(items)]
            values: dict[str, Any] = (
                {"expires": ledger.clock + op[2] * DAY}
                if op[0] == "renew"
                else {"close": "withdrawn"}
            )
            record, verdict = update(ledger, "coop0", item, heads[item], **values)
            if item in withdrawn:
                assert rule(verdict) == "closed"
                continue
            ok(verdict)
            heads[item] = record.hash
            if op[0] == "renew":
                expires[item] = values["expires"]
            else:
                withdrawn.add(item)
        elif op[0] == "fork" and items:
            item = items[op[1] % len(items)]
            values = {"expires": ledger.clock + op[2] * DAY}
            _, verdict = update(ledger, "coop0", item, item, **values)
            if heads[item] == item:  # not a fork after all: the first update of the line
                ok(verdict)
                heads[item] = ledger["coop0"].chain[-1].hash
                expires[item] = values["expires"]
            else:  # the author used that revision already: the activity fold refuses it
                assert rule(verdict) == "duplicate"
        elif op[0] == "wait":
            ledger.advance(op[1] * DAY)
    pool = listings(held(ledger)).values()
    at = ledger.clock
    index = TextIndex(sqlite3.connect(":memory:"))
    for record in held(ledger):
        found_text = app.search_text(record)
        if found_text is not None:
            index.add(record.hash, OFFER, found_text)
    ranked = index.search(text, [OFFER], 1_000) if text else None
    shown = {f.listing.hash for f in search(pool, at=at, ranked=ranked, limit=1_000)}
    expected_open = {h for h in items if h not in withdrawn and at < expires[h]}
    assert shown <= expected_open
    if not text:
        assert shown == expected_open  # and nothing open is lost
