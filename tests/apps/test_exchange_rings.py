"""Trade rings in an audit: co-ops that bought each other's offers in a circle within one month.

The grant rule sees a closed loop of two co-ops on the seller's chain; a ring
of three or more only shows across chains, so the audit of a whole export
lists it (a finding, not a violation). Records here are real: offers and
payments signed and judged by the engine (``Ledger``).
"""

from __future__ import annotations

from conode.apps.exchange import OFFER, app
from conode.apps.exchange.rings import trade_rings
from conode.chain import Record
from conode.testing import Ledger
from conode.testing.ledger import DAY
from conode.validation.calendar import period_label, period_of, period_start
from conode.validation.charter import Limits
from conode.validation.verdict import Valid

WIDE = Limits(1_000_000, 1_000_000)


def ledger_of(coops: int) -> Ledger:
    return Ledger(coops, members=1, coop_limits=WIDE, member_limits=WIDE, apps={"exchange": app})


def offer(ledger: Ledger, coop: str) -> Record:
    entry = app.entry(
        OFFER, title=f"{coop}'s jam", description="", category="food", price=100, unit="jar",
        quantity=100, expires=ledger.clock + 90 * DAY, rules=ledger.gov_head,
    )  # fmt: skip
    record, verdict = ledger.create(coop, OFFER, entry)
    assert isinstance(verdict, Valid), verdict
    return record


def buy(ledger: Ledger, buyer: str, seller: str, amount: int, offers: dict[str, Record]) -> None:
    verdict = ledger.pay(buyer, seller, amount, offer=offers[seller].hash)
    assert isinstance(verdict, Valid), verdict


def records(ledger: Ledger) -> list[Record]:
    return [r for chain in ledger.chains() for r in chain]


def test_a_three_coop_ring_in_one_month_is_found_once_with_what_each_paid_the_next() -> None:
    ledger = ledger_of(4)
    offers = {c: offer(ledger, c) for c in ("coop0", "coop1", "coop2", "coop3")}
    buy(ledger, "coop0", "coop1", 300, offers)
    buy(ledger, "coop1-m0", "coop2", 200, offers)  # a member buys for its co-op's side of the ring
    buy(ledger, "coop2", "coop0", 100, offers)
    buy(ledger, "coop3", "coop0", 50, offers)  # coop3 buys but is sold nothing: no ring
    found = trade_rings(records(ledger))
    assert found.complete
    (ring,) = found.rings
    keys = {ledger[c].key: c for c in ("coop0", "coop1", "coop2")}
    names = [keys[k] for k in ring.coops]
    paid = dict(zip(names, ring.amounts, strict=True))
    assert paid == {"coop0": 300, "coop1": 200, "coop2": 100}
    assert ring.coops[0] == min(keys, key=lambda k: k.raw)  # reported from its lowest key
    for i, coop in enumerate(names):  # each paid the next, round the circle
        assert {"coop0": "coop1", "coop1": "coop2", "coop2": "coop0"}[coop] == names[(i + 1) % 3]
    assert ring.month == period_label(period_of(ledger.clock))


def test_two_coops_buying_from_each_other_are_not_a_ring_here_the_grant_rule_sees_them() -> None:
    ledger = ledger_of(2)
    offers = {c: offer(ledger, c) for c in ("coop0", "coop1")}
    buy(ledger, "coop0", "coop1", 300, offers)
    buy(ledger, "coop1", "coop0", 300, offers)
    assert trade_rings(records(ledger)).rings == []


def test_a_circle_spread_over_two_months_is_not_a_ring() -> None:
    ledger = ledger_of(3)
    offers = {c: offer(ledger, c) for c in ("coop0", "coop1", "coop2")}
    buy(ledger, "coop0", "coop1", 300, offers)
    buy(ledger, "coop1", "coop2", 300, offers)
    ledger.advance(period_start(period_of(ledger.clock) + 1) + DAY - ledger.clock)
    buy(ledger, "coop2", "coop0", 300, offers)
    assert trade_rings(records(ledger)).rings == []


def test_payments_that_buy_no_offer_make_no_ring() -> None:
    ledger = ledger_of(3)
    for payer, payee in (("coop0", "coop1"), ("coop1", "coop2"), ("coop2", "coop0")):
        assert isinstance(ledger.pay(payer, payee, 100), Valid)
    assert trade_rings(records(ledger)).rings == []


def test_the_search_stops_at_its_bounds_and_says_so() -> None:
    ledger = ledger_of(5)
    coops = [f"coop{i}" for i in range(5)]
    offers = {c: offer(ledger, c) for c in coops}
    for buyer in coops:  # everybody buys from everybody: many rings of 3 and 4
        for seller in coops:
            if buyer != seller:
                buy(ledger, buyer, seller, 10, offers)
    everything = trade_rings(records(ledger), longest=4, most=1_000)
    assert everything.complete and len(everything.rings) == 2 * 10 + 6 * 5  # 3-cycles, 4-cycles
    capped = trade_rings(records(ledger), longest=4, most=7)
    assert not capped.complete and capped.rings == everything.rings[:7]
