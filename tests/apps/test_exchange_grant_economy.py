"""A Hypothesis economy of the grant rule (issue #13, item 7): two co-ops and their members post,
renew, enlarge and withdraw offers, buy and pay, let days and months pass, and sometimes skip
their node's monthly duty or forge the grants a farming node would write.

Everything runs through the real rules: records are signed and judged by the activity fold and
the engine a peer runs (``Ledger``), and the co-ops' nodes act through the exchange's own
functions (``LedgerAPI``). Beside it runs ``Model``, the rule restated independently in a few
lines (what each co-op has on offer, its high-water mark, last month's counted sales), and after
every step the chain must stand exactly where the model says the rule allows:

- a co-op's line never stands above the cap, and what it was granted for offers never exceeds
  the most it ever had on offer (each offer once), at most the cap;
- every grant is the model's figure, so re-posting, duplicates, lapses and renewals earn
  nothing; re-estimates follow counted sales, down as well as up;
- a co-op owing its re-estimate cannot pay; forged grants (a second line, a withdrawn offer
  counted, inflated sales, a grant ahead of the re-estimate) are refused and change nothing;
- the audit passes and the network sums to zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from ledgerapi import LedgerAPI

from conode.apps.exchange import GRANT, OFFER, UPDATE, app
from conode.apps.exchange.grant_figures import Revision, offered_value, read_revision
from conode.apps.exchange.grant_views import grant_lines
from conode.hashes import ActionHash
from conode.testing import Ledger
from conode.testing.ledger import DAY
from conode.validation.calendar import period_of, period_start
from conode.validation.charter import Limits
from conode.validation.verdict import Invalid, Valid

CAP = 30_000
SHARE_BP = 1_000
COOPS = ("coop0", "coop1")
BUYERS = ("coop0", "coop1", "coop0-m0", "coop1-m0", "coop1-m1")
TITLES = ("bread", "rye", "jam")
WIDE = Limits(10**9, 10**12)
"""Limits that never bind here (the limits' own rules have their tests): the model is exact."""


@dataclass
class Offer:
    """An offer as the model sees it."""

    coop: str
    title: str
    price: int
    quantity: int
    expires: int
    posted: int
    withdrawn: bool = False

    @property
    def value(self) -> int:
        return self.price * self.quantity


@dataclass
class Line:
    """A co-op's grant line as the model sees it."""

    granted: int = 0
    estimate: int = 0
    high: int = 0
    last_period: int = -1
    due: int | None = None
    advance: dict[int, int] = field(default_factory=dict)
    """Period -> what new and enlarge grants granted in it."""
    offers_gross: int = 0
    issued: int = 0
    """What the line's grants moved to the co-op (gross less shares)."""


class Model:
    """The grant rule, restated independently of ``conode.apps.exchange.grants``."""

    def __init__(self) -> None:
        self.offers: dict[ActionHash, Offer] = {}
        self.lines: dict[str, Line] = {}
        self.most_offered: dict[str, int] = dict.fromkeys(COOPS, 0)
        self.sales: list[tuple[str, ActionHash, str, int, int]] = []
        """(seller, offer, buyer's co-op, amount, period)."""
        self.paid: set[tuple[str, str, int]] = set()
        """(payer co-op, payee's co-op, period) of payments by co-ops."""

    def offered(self, coop: str, at: int) -> int:
        largest: dict[str, int] = {}
        for offer in self.offers.values():
            if offer.coop == coop and not offer.withdrawn and at < offer.expires:
                largest[offer.title] = max(largest.get(offer.title, 0), offer.value)
        return sum(largest.values())

    def note_offered(self, coop: str, at: int) -> None:
        self.most_offered[coop] = max(self.most_offered[coop], self.offered(coop, at))

    def grant(self, coop: str, gross: int, period: int, offers: bool) -> None:
        line = self.lines.setdefault(coop, Line())
        line.granted += gross
        line.last_period = period
        share = gross * SHARE_BP // 10_000 if gross > 0 else 0
        line.issued += gross - share
        if offers:
            line.offers_gross += gross
            line.advance[period] = line.advance.get(period, 0) + gross
        line.due = period_start(period + 1) if line.granted > 0 else None

    def offers_grant(self, coop: str, at: int) -> int:
        """What posting or growing an offer grants the co-op now (and the line's new state)."""
        line = self.lines.get(coop, Line())
        offered = self.offered(coop, at)
        increase = max(0, min(offered, CAP) - min(line.high, CAP))
        estimate = min(line.granted + increase, CAP)
        gross = estimate - line.granted
        if gross > 0:
            self.grant(coop, gross, period_of(at), offers=True)
            self.lines[coop].estimate = estimate
            self.lines[coop].high = max(line.high, offered)
        return gross

    def reestimate(self, coop: str, period: int, write_zero: bool) -> int | None:
        """The month's re-estimate of the co-op's line (None: nothing written)."""
        line = self.lines[coop]
        last = period - 1
        total = new = 0
        for seller, offer, buyer, amount, when in self.sales:
            if seller != coop or when != last:
                continue
            if buyer == coop or (coop, buyer, last) in self.paid:
                continue
            total += amount
            if period_of(self.offers[offer].posted) == last:
                new += amount
        estimate = min(total - new + max(new, line.advance.get(last, 0)), CAP)
        gross = estimate - line.granted
        if gross == 0 and line.granted == 0 and not write_zero:
            return None
        self.grant(coop, gross, period, offers=False)
        line.estimate = estimate
        return gross

    def owes(self, coop: str, at: int) -> bool:
        line = self.lines.get(coop)
        return line is not None and line.due is not None and at >= line.due


def _group(name: str) -> str:
    return name.split("-")[0]


class ClockedAPI(LedgerAPI):
    """``LedgerAPI`` remembering the last time it told a function (``worked_at``)."""

    worked_at = 0

    def now(self) -> int:
        self.worked_at = super().now()
        return self.worked_at


class GrantEconomy(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ledger = Ledger(
            apps={"exchange": app}, foundation=True,
            app_config={"exchange": {"issues_credit": True, "grant_cap": CAP}},
            coop_limits=WIDE, member_limits=WIDE,
        )  # fmt: skip
        self.api = ClockedAPI(self.ledger, app)
        self.model = Model()
        self.order: list[ActionHash] = []

    # -- helpers ---------------------------------------------------------------------------------

    def call(self, fn: str, **params: Any) -> Any:
        return trio.run(lambda: app.functions[fn](self.api, **params))

    def at(self) -> int:
        """The timestamp the next record gets (the ledger's clock moves 1 ms a read)."""
        return self.ledger.clock + 1_000

    def offer(self, i: int) -> ActionHash | None:
        live = [h for h in self.order if not self.model.offers[h].withdrawn]
        return live[i % len(live)] if live else None

    def grant_for(self, coop: str, got: dict[str, Any]) -> None:
        """Check what the node's function granted against the model (its forced re-estimate too).

        What is on offer is read when the function worked the grant out (``worked_at``: the clock
        moves a millisecond a record, and an offer may lapse between its records)."""
        at = self.api.worked_at
        line = self.model.lines.get(coop)
        if line is not None and line.last_period < period_of(at):
            self.model.reestimate(coop, period_of(at), write_zero=True)
        self.model.note_offered(coop, at)
        expected = self.model.offers_grant(coop, at)
        gross = got["grant"]["gross"] if "grant" in got else 0
        assert gross == expected, (got, expected)
        event("an offer grew the line" if gross else "an offer earned nothing")
        if expected == 0:
            assert "nothing to grant" in got["skipped"], got

    # -- what co-ops do --------------------------------------------------------------------------

    @rule(
        coop=st.sampled_from(COOPS), title=st.sampled_from(TITLES), price=st.integers(0, 100),
        quantity=st.integers(1, 100), days=st.sampled_from([1, 10, 30, 45]),
    )  # fmt: skip
    def post(self, coop: str, title: str, price: int, quantity: int, days: int) -> None:
        posted = self.call(
            "offer-add", title=title, category="food", price=price, unit="loaf",
            quantity=quantity, days=days, agent=self.ledger[coop].key,
        )  # fmt: skip
        offer = ActionHash.parse(posted["hash"])
        record = self.ledger.held.get_record(offer)
        assert record is not None
        self.model.offers[offer] = Offer(
            coop, title, price, quantity, record.entry_value()["expires"], record.action.timestamp
        )
        self.order.append(offer)
        self.grant_for(coop, posted["grant"])

    @rule(
        i=st.integers(0, 50),
        quantity=st.none() | st.integers(1, 150),
        days=st.sampled_from([1, 30]),
    )
    def renew(self, i: int, quantity: int | None, days: int) -> None:
        offer = self.offer(i)
        if offer is None:
            return
        known = self.model.offers[offer]
        renewed = self.call("offer-renew", offer=str(offer), quantity=quantity, days=days)
        update = self.ledger[known.coop].chain[-1]  # the renewal (the grant, if any, follows it)
        if update.action.entry_type != UPDATE:
            update = next(
                r for r in reversed(self.ledger[known.coop].chain) if r.action.entry_type == UPDATE
            )
        known.expires = update.entry_value()["expires"]
        if quantity is not None:
            known.quantity = quantity
        self.grant_for(known.coop, renewed["grant"])

    @rule(i=st.integers(0, 50))
    def withdraw(self, i: int) -> None:
        offer = self.offer(i)
        if offer is None:
            return
        self.call("offer-withdraw", offer=str(offer))
        self.model.offers[offer].withdrawn = True

    def pay(self, payer: str, payee: str, amount: int, offer: ActionHash | None = None) -> bool:
        """A payment; refused exactly when the payer is a co-op owing its re-estimate."""
        at = self.at()
        verdict = self.ledger.pay(payer, payee, amount, offer=offer)
        if self.model.owes(payer, at):
            assert isinstance(verdict, Invalid) and verdict.rule == "overdue", verdict
            event("a co-op owing its re-estimate could not pay")
            return False
        assert isinstance(verdict, Valid), verdict
        if payer in COOPS:
            self.model.paid.add((payer, _group(payee), period_of(at)))
        return True

    @rule(buyer=st.sampled_from(BUYERS), i=st.integers(0, 50), amount=st.integers(1, 20_000))
    def sell(self, buyer: str, i: int, amount: int) -> None:
        if not self.order:
            return
        offer = self.order[i % len(self.order)]  # a withdrawn or lapsed offer may still be paid for
        seller = self.model.offers[offer].coop
        if buyer == seller:
            return
        at = self.at()
        if self.pay(buyer, seller, amount, offer):
            self.model.sales.append((seller, offer, _group(buyer), amount, period_of(at)))

    @rule(payer=st.sampled_from(COOPS), payee=st.sampled_from(BUYERS), amount=st.integers(1, 5_000))
    def spend(self, payer: str, payee: str, amount: int) -> None:
        if payer != payee:
            self.pay(payer, payee, amount)

    # -- time and the node's duty ------------------------------------------------------------------

    @rule(days=st.integers(1, 20))
    def days_pass(self, days: int) -> None:
        self.ledger.advance(days * DAY)

    @rule(skip=st.sampled_from([(), ("coop0",), ("coop1",), COOPS]))
    def month_ends(self, skip: tuple[str, ...]) -> None:
        """The month turns; the co-ops' nodes run their duty, except those in ``skip``."""
        target = period_of(self.ledger.clock) + 1
        self.ledger.advance(period_start(target) + DAY - self.ledger.clock)
        for coop in COOPS:
            if coop not in skip:
                self.duty(coop)

    @rule(coop=st.sampled_from(COOPS), amount=st.integers(1, 5_000))
    def skip_the_duty_and_pay(self, coop: str, amount: int) -> None:
        """Farming: the month turns, the co-op's node skips its re-estimate, and the co-op pays."""
        self.month_ends((coop,))
        self.spend(coop, "coop1-m0" if coop == "coop0" else "coop0-m0", amount)

    @rule(coop=st.sampled_from(COOPS))
    def duty(self, coop: str) -> None:
        """A co-op's node runs its month's duty (perhaps late)."""
        at = self.at()
        line = self.model.lines.get(coop)
        rows = self.call("grants-reestimate", coop=self.ledger[coop].key)
        if line is None:
            assert rows == []
            return
        (row,) = rows
        if line.last_period >= period_of(at):
            assert "skipped" in row, row
            return
        expected = self.model.reestimate(coop, period_of(at), write_zero=False)
        if expected is None:
            assert row["skipped"].startswith("unchanged at 0"), row
        else:
            assert row["grant"]["gross"] == expected, (row, expected)
            event(
                f"re-estimate {'up' if expected > 0 else 'down' if expected < 0 else 'unchanged'}"
            )

    # -- farming by a modified node ----------------------------------------------------------------

    def forged(self, coop: str, **values: Any) -> None:
        """A grant built by hand for ``coop``: refused by the rules, and nothing changes."""
        agent = self.ledger[coop]
        before = (len(agent.chain), agent.balance)
        period = period_of(self.at())
        values = {
            "period": period, "sales": None, "advance": None, "share": 0, "added": [], "dropped": [],
            "offered": 0, "due": period_start(period + 1), "rules": self.ledger.gov_head, **values,
        }  # fmt: skip
        entry = app.prepare(
            GRANT, values, last_credit=agent.activity.last_credit, balance=agent.activity.balance
        )
        verdict = self.ledger.create(coop, GRANT, entry)[1]
        assert isinstance(verdict, Invalid), values
        assert (len(agent.chain), agent.balance) == before
        event(f"forged {values['basis']} refused: {verdict.rule}")

    def latest(self, coop: str) -> dict[str, Any] | None:
        grants = [r for r in self.ledger[coop].chain if r.action.entry_type == GRANT]
        return None if not grants else {"hash": grants[-1].hash, **grants[-1].entry_value()}

    @rule(coop=st.sampled_from(COOPS), gross=st.integers(1, CAP))
    def forge_a_second_line(self, coop: str, gross: int) -> None:
        if self.latest(coop) is None:
            return
        self.forged(
            coop, basis="new", prev_grant=None, high=gross, estimate=gross, granted=gross,
            credit=gross,
        )  # fmt: skip

    @rule(coop=st.sampled_from(COOPS))
    def forge_stale_offers_counted(self, coop: str) -> None:
        """An enlarge counting every offer the co-op ever posted, as first posted (withdrawn,
        lapsed and renewed ones too), its figures worked out by the rule's own arithmetic: the
        grant withdrawing and re-posting (or a lapse, or a renewal) would earn if stale offers
        counted."""
        last = self.latest(coop)
        if last is not None and last["period"] < period_of(self.at()):
            self.duty(coop)  # the farmer's node writes the month's re-estimate first
            last = self.latest(coop)
        at = self.at()
        if last is None or last["period"] < period_of(at):
            return  # (a line at zero owes none: the next grant would be the re-estimate)
        mine = {h for h in self.order if self.model.offers[h].coop == coop}
        counted = self.counted(coop)
        stale = [
            h for h in mine
            if self.model.offers[h].withdrawn or at >= self.model.offers[h].expires
            or h not in counted
        ]  # fmt: skip
        if not stale:
            return
        claimed = counted | mine
        revisions = [read_revision(self.ledger.held.get_record, h) for h in claimed]
        offered = offered_value(r for r in revisions if isinstance(r, Revision))
        increase = min(offered, CAP) - min(last["high"], CAP)
        estimate = min(last["granted"] + max(increase, 0), CAP)
        gross = estimate - last["granted"]
        if gross <= 0:
            return  # nothing a farmer would gain
        share = gross * SHARE_BP // 10_000
        self.forged(
            coop, basis="enlarge", prev_grant=last["hash"],
            added=sorted(claimed - counted, key=lambda h: h.raw), offered=offered,
            high=max(offered, last["high"]), estimate=estimate, granted=estimate, share=share,
            credit=gross - share,
        )  # fmt: skip

    @rule(coop=st.sampled_from(COOPS), titles=st.permutations(TITLES), price=st.integers(1, 100))
    def lapse_then_post_another(self, coop: str, titles: list[str], price: int) -> None:
        """Farming by lapse: an offer posted for a day lapses, another (under another title, worth
        as much) is posted; then the farmer forges a grant counting both."""
        self.post(coop, titles[0], price, 50, 1)
        self.days_pass(2)
        self.post(coop, titles[1], price, 50, 30)
        self.forge_stale_offers_counted(coop)

    @rule(coop=st.sampled_from(COOPS), more=st.integers(1, CAP))
    def forge_the_month_without_its_reestimate(self, coop: str, more: int) -> None:
        """In a new month: an enlarge ahead of the re-estimate, or a re-estimate claiming sales
        the chain does not show."""
        last = self.latest(coop)
        if last is None or last["period"] >= period_of(self.at()):
            return
        self.forged(
            coop, basis="enlarge", prev_grant=last["hash"], high=last["high"],
            estimate=last["granted"], granted=last["granted"], credit=0,
        )  # fmt: skip
        claimed = {
            "count": 1,
            "total": more + self.model.lines[coop].granted,
            "excluded": 0,
            "new": 0,
        }
        estimate = min(claimed["total"], CAP)
        # the offers as they stand (so the refusal is the sales': the chain shows no such sales)
        now = self.current_revisions(coop, self.at())
        counted = self.counted(coop)
        self.forged(
            coop, basis="reestimate", prev_grant=last["hash"], high=last["high"], sales=claimed,
            added=sorted(now - counted, key=lambda h: h.raw),
            dropped=sorted(counted - now, key=lambda h: h.raw),
            offered=offered_value(
                r for h in now if isinstance(r := read_revision(self.ledger.held.get_record, h), Revision)
            ),
            advance=0, estimate=estimate, granted=estimate, credit=estimate - last["granted"],
        )  # fmt: skip

    def counted(self, coop: str) -> frozenset[ActionHash]:
        """The revisions the co-op's line counts after its latest grant."""
        reads = [r for g in self.ledger[coop].chain if (r := app.read(g)) and r.entry_type == GRANT]
        return grant_lines(reads)[self.ledger[coop].key].counted()

    def current_revisions(self, coop: str, at: int) -> frozenset[ActionHash]:
        """The latest revision of each of the co-op's offers open at ``at``, from its chain."""
        latest: dict[ActionHash, ActionHash] = {}
        for record in self.ledger[coop].chain:
            if record.action.entry_type == OFFER:
                latest[record.hash] = record.hash
            elif record.action.entry_type == UPDATE:
                item = ActionHash.from_bytes(record.entry_value()["item"])
                if item in latest:
                    latest[item] = record.hash
        return frozenset(
            rev for offer, rev in latest.items()
            if not self.model.offers[offer].withdrawn and at < self.model.offers[offer].expires
        )  # fmt: skip

    # -- what must hold ----------------------------------------------------------------------------

    @invariant()
    def the_lines_stand_where_the_rule_says(self) -> None:
        for coop in COOPS:
            last = self.latest(coop)
            line = self.model.lines.get(coop)
            if line is None:
                assert last is None
                continue
            assert last is not None
            assert (last["granted"], last["high"]) == (line.granted, line.high), (coop, last, line)
            assert 0 <= last["granted"] <= CAP
            assert line.offers_gross <= min(self.model.most_offered[coop], CAP)
            moved = sum(
                r.entry_value()["credit"]["delta"]
                for r in self.ledger[coop].chain
                if r.action.entry_type == GRANT
            )
            assert moved == line.issued

    def teardown(self) -> None:
        self.call("share-collect")
        report = self.ledger.audit()
        assert report.ok, report.violations
        assert report.zero_sum and sum(self.ledger.balances().values()) + report.issuance == 0


GrantEconomy.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_over_any_economy_grants_follow_the_rule_and_farming_earns_nothing = GrantEconomy.TestCase
