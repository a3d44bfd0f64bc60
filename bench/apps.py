"""Benchmarks of the apps: a list of measurements, each adding figures to one JSON line.

Measurements:

- ``search``: the exchange's ``offer-search`` function over 10k offers (plus
  1k updates: renewals and withdrawals) held in a real SQLite ``TextIndex``
  (a WAL file in a temporary directory), p50 and p99 per query, target
  ``search_p50_ms`` <= 50. The queries are one or two words, a quarter with a
  category and a quarter with a distance filter. The function runs whole, with
  ``local`` (reading the DHT's category indexes first is network time,
  measured on real libp2p nodes by ``bench/network.py --only search``): FTS5,
  reading the hits, applying updates, filtering,
  sorting, JSON values.
  Records are held in memory (a node reads them from its store), so the
  figure leaves out reading record bytes from disk. ``browse_p50_ms`` is the
  same with no words (category browsing: every offer is a candidate).

- ``grants``: grant re-estimation over a co-op with 10k sales in a month
  (1k with ``--quick``), built through the real rules in a ``Ledger``: the
  time a peer takes to validate the re-estimate (a fresh engine over a store
  of judged records: the walk of the month's chain), per record walked,
  compared with judging one payment; the time the function takes to work it
  out (``tally_sales``) and its whole call (its node's judgement included).

- ``tally``: ``governance.tally`` of 1k votes (one per co-op of 1k) on one
  proposal, median ms (target ``tally_1k_votes_ms`` <= 100), and the
  foundation app's ``proposals`` view over the same records.

Later measurements append themselves to ``MEASUREMENTS``.

Usage: ``python bench/apps.py [--quick]``. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import trio

from conode.apps.exchange import OFFER, UPDATE, app
from conode.apps.exchange.entries import DAY_US
from conode.chain import ActionKind, ChainHead, Record, author_record
from conode.crypto import Signer
from conode.hashes import ActionHash, AgentKey, TypedHash
from conode.store.search import TextIndex

START = 1_700_000_000_000_000
_WORD_TEXT = (
    "bread sourdough rye spelt flour oats barley honey jam cheese butter milk yoghurt kefir "
    "apples pears plums cherries berries potatoes carrots onions garlic leeks kale cabbage "
    "beans lentils peas tomatoes peppers squash pumpkin eggs chicken lamb beef fish coffee "
    "tea cocoa chocolate beer cider wine soap candles wool cotton linen timber firewood "
    "compost seeds seedlings tools bicycle repair plumbing electrics carpentry roofing "
    "painting cleaning laundry childcare tutoring bookkeeping accounting legal design "
    "printing web hosting software training translation transport delivery storage "
    "solar insulation heating ventilation furniture pottery ceramics glass textiles "
    "clothing shoes bags paper books music theatre catering events venue rooms"
)
_ADJECTIVE_TEXT = "organic local fresh seasonal wholesale handmade recycled fair bulk weekly"
WORDS = _WORD_TEXT.split()
"""Product words, commonest first (their frequencies follow ``ZIPF``)."""
ADJECTIVES = _ADJECTIVE_TEXT.split()
CATEGORIES = (
    "food/bakery", "food/dairy", "food/produce", "food/drink", "goods/household",
    "goods/clothing", "goods/crafts", "services/repair", "services/care",
    "services/business", "services/transport", "energy/solar", "energy/heating",
)  # fmt: skip


class BenchAPI:
    """An ``AppAPI`` over records held in memory, with a real SQLite ``TextIndex`` for search."""

    def __init__(self, index: TextIndex, now: int) -> None:
        self.index = index
        self.clock = now
        self.by_hash: dict[ActionHash, Record] = {}
        self.by_type: dict[str, list[Record]] = {}

    @property
    def app_id(self) -> str:
        return app.app_id

    def hold(self, record: Record) -> None:
        self.by_hash[record.hash] = record
        entry_type = record.action.entry_type or ""
        self.by_type.setdefault(entry_type, []).append(record)
        text = app.search_text(record)
        if text is not None:
            self.index.add(record.hash, entry_type, text)

    def agents(self) -> Sequence[AgentKey]:
        return []

    async def commit(
        self, agent: AgentKey, entry_type: str, entry: Mapping[str, Any]
    ) -> ActionHash:
        raise NotImplementedError("the benchmark only reads")

    async def link(
        self, agent: AgentKey, link_type: str, base: TypedHash, target: TypedHash, tag: Any
    ) -> ActionHash:
        raise NotImplementedError("the benchmark only reads")

    def records(self, *entry_types: str) -> Sequence[Record]:
        return [r for t in entry_types for r in self.by_type.get(t, [])]

    def get(self, action: ActionHash) -> Record | None:
        return self.by_hash.get(action)

    def now(self) -> int:
        return self.clock

    def name_of(self, agent: AgentKey) -> str:
        return "?"  # no genesis held here: what a node says of a chain it does not hold

    def search(self, text: str, *entry_types: str, limit: int = 50) -> Sequence[Record]:
        types = entry_types or app.searchable_types
        return [self.by_hash[h] for h in self.index.search(text, types, limit)]


ZIPF = [1 / rank for rank in range(1, len(WORDS) + 1)]
"""Word frequencies as in text (Zipf): the commonest word is in about a third of the titles."""


def _word(rng: random.Random) -> str:
    return rng.choices(WORDS, ZIPF)[0]


def _title(rng: random.Random) -> str:
    words = dict.fromkeys(_word(rng) for _ in range(2))
    return f"{rng.choice(ADJECTIVES).capitalize()} {' '.join(words)}"


def build_market(offers: int, rng: random.Random, path: Path) -> BenchAPI:
    """``offers`` signed offers by 50 co-ops around London, 10% of them updated once."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    api = BenchAPI(TextIndex(conn), START + 2 * DAY_US)
    signers = [Signer(bytes([i + 1]) * 32) for i in range(50)]
    heads: dict[AgentKey, ChainHead | None] = {AgentKey(s.public_key): None for s in signers}
    clock = START

    def sign(signer: Signer, entry_type: str, entry: dict[str, Any]) -> Record:
        nonlocal clock
        clock += 1_000
        key = AgentKey(signer.public_key)
        record = author_record(
            signer, heads[key], kind=ActionKind.CREATE, timestamp=clock,
            entry=entry, entry_type=entry_type,
        )  # fmt: skip
        heads[key] = ChainHead.after(record)
        return record

    conn.execute("BEGIN")
    posted: list[tuple[Signer, Record]] = []
    for _ in range(offers):
        signer = rng.choice(signers)
        entry = app.entry(
            OFFER,
            title=_title(rng),
            description=" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 20))),
            category=rng.choice(CATEGORIES),
            price=rng.randint(50, 50_000),
            unit=rng.choice(("each", "kg", "hour", "litre", "box")),
            quantity=rng.randint(1, 1_000),
            location={
                "lat": 51_507_400 + rng.randint(-1_000_000, 1_000_000),
                "lon": -127_800 + rng.randint(-1_500_000, 1_500_000),
            },
            region=None,
            expires=clock + rng.randint(1, 60) * DAY_US,
        )
        record = sign(signer, OFFER, entry)
        api.hold(record)
        posted.append((signer, record))
    for signer, record in rng.sample(posted, offers // 10):
        change: dict[str, Any] = (
            {"close": "withdrawn"} if rng.random() < 0.3 else {"expires": clock + 90 * DAY_US}
        )
        api.hold(
            sign(signer, UPDATE, app.entry(UPDATE, item=record.hash, prev=record.hash, **change))
        )
    conn.execute("COMMIT")
    return api


def _query(rng: random.Random) -> dict[str, Any]:
    words = [_word(rng)]
    if rng.random() < 0.3:
        words.append(rng.choice(ADJECTIVES))
    params: dict[str, Any] = {"text": " ".join(words)}
    roll = rng.random()
    if roll < 0.25:
        params["category"] = rng.choice(CATEGORIES).split("/")[0]
    elif roll < 0.5:
        params["near"] = "51.5074,-0.1278"
        params["within_km"] = 30
    return params


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure_search(quick: bool, rng: random.Random) -> dict[str, Any]:
    offers = 10_000
    queries = 200 if quick else 1_000
    search = app.functions["offer-search"]  # local: what the node holds, not the DHT's indexes
    times: list[float] = []
    found: list[int] = []
    browse: list[float] = []

    async def run(api: BenchAPI) -> None:
        for _ in range(queries):
            params = _query(rng)
            t0 = time.perf_counter()
            results = await search(api, **params, local=True)
            times.append((time.perf_counter() - t0) * 1_000)
            found.append(len(results))
        for _ in range(max(10, queries // 20)):
            t0 = time.perf_counter()
            await search(api, category=rng.choice(CATEGORIES), local=True)
            browse.append((time.perf_counter() - t0) * 1_000)

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        api = build_market(offers, rng, Path(tmp) / "index.sqlite")
        print(
            f"built {offers} offers and their text index in {time.perf_counter() - started:.1f} s"
        )
        trio.run(run, api)
    figures = {
        "search_offers": offers,
        "search_queries": queries,
        "search_p50_ms": round(statistics.median(times), 2),
        "search_p99_ms": round(_percentile(times, 0.99), 2),
        "search_mean_results": round(statistics.fmean(found), 1),
        "browse_p50_ms": round(statistics.median(browse), 2),
    }
    print(
        f"offer search over {offers} offers: p50 {figures['search_p50_ms']} ms, "
        f"p99 {figures['search_p99_ms']} ms (target p50 <= 50 ms), "
        f"{figures['search_mean_results']} results on average; "
        f"category browse (no words) p50 {figures['browse_p50_ms']} ms"
    )
    return figures


class GrantBenchAPI:
    """An ``AppAPI`` over a ``Ledger`` (with the rules and chain state grants need): commits are
    judged by the ledger's engine; ``records`` is kept by type as the ledger grows."""

    def __init__(self, ledger: Any) -> None:
        self.ledger = ledger

    @property
    def app_id(self) -> str:
        return app.app_id

    def agents(self) -> Sequence[AgentKey]:
        return [agent.key for agent in self.ledger.agents.values()]

    async def commit(
        self, agent: AgentKey, entry_type: str, entry: Mapping[str, Any]
    ) -> ActionHash:
        name = self.ledger.name_of(agent)
        activity = self.ledger[name].activity
        prepared = app.prepare(
            entry_type, dict(entry), last_credit=activity.last_credit, balance=activity.balance
        )
        return self._commit(name, ActionKind.CREATE, entry_type, prepared)

    async def link(
        self, agent: AgentKey, link_type: str, base: TypedHash, target: TypedHash, tag: Any
    ) -> ActionHash:
        entry = {"base": base.to_bytes(), "target": target.to_bytes(), "tag": tag}
        return self._commit(self.ledger.name_of(agent), ActionKind.LINK, link_type, entry)

    def _commit(self, name: str, kind: ActionKind, entry_type: str, entry: Any) -> ActionHash:
        from conode.errors import ValidationError
        from conode.validation.verdict import Invalid, Valid

        record = author_record(
            self.ledger[name].signer, self.ledger[name].activity.head, kind=kind,
            timestamp=self.ledger.now(), entry=entry, entry_type=entry_type,
        )  # fmt: skip
        verdict = self.ledger.commit(name, record)
        if not isinstance(verdict, Valid):
            rule = verdict.rule if isinstance(verdict, Invalid) else "missing"
            raise ValidationError(rule, str(verdict))
        return record.hash

    def records(
        self, *entry_types: str, authors: Collection[AgentKey] | None = None
    ) -> Sequence[Record]:
        wanted = set(entry_types)
        return [
            r for chain in self.ledger.chains() for r in chain
            if r.action.entry_type in wanted and (authors is None or r.action.author in authors)
        ]  # fmt: skip

    def get(self, action: ActionHash) -> Record | None:
        record: Record | None = self.ledger.held.get_record(action)
        return record

    def now(self) -> int:
        clock: int = self.ledger.clock
        return clock

    def search(self, text: str, *entry_types: str, limit: int = 50) -> Sequence[Record]:
        return []

    def rules(self) -> Any:
        return self.ledger.rules_now()

    def activity(self, agent: AgentKey) -> Any:
        return self.ledger[self.ledger.name_of(agent)].activity


def measure_grants(quick: bool, rng: random.Random) -> dict[str, Any]:
    """Grant re-estimation over a co-op with 10k sales in the month (1k with ``--quick``)."""
    import trio

    from conode.apps.exchange import GRANT, period_of, period_start
    from conode.apps.exchange import grants as grants_module
    from conode.apps.exchange.grants import tally_sales
    from conode.testing import Ledger
    from conode.validation.charter import Limits
    from conode.validation.engine import Engine
    from conode.validation.memory import HeldRecords

    sales = 1_000 if quick else 10_000
    wide = Limits(10**12, 10**13)
    ledger = Ledger(
        coops=3, members=4, apps={"exchange": app}, foundation=True, coop_limits=wide,
        member_limits=wide, app_config={"exchange": {"issues_credit": True, "grant_cap": 10**9}},
    )  # fmt: skip
    api = GrantBenchAPI(ledger)
    seller = ledger["coop0"].key

    def next_month() -> None:
        ledger.advance(period_start(period_of(ledger.clock) + 1) + DAY_US - ledger.clock)

    async def run(fn: str, **params: Any) -> Any:
        return await app.functions[fn](api, **params)

    started = time.perf_counter()
    posted = trio.run(lambda: run(
        "offer-add", title="Sourdough bread", category="food/bakery", price=350, unit="loaf",
        quantity=2_000, agent=seller,
    ))  # fmt: skip
    offer = ActionHash.parse(posted["hash"])
    next_month()
    # the line's first re-estimate (its first month kept as advanced): owed before coop0 pays
    trio.run(lambda: run("grants-reestimate", coop=seller))
    # buyers: members of the other co-ops, one in 20 sales from coop0's own members (not
    # counted), and coop0 pays coop2 once (a closed loop: coop2's members' purchases not counted)
    buyers = [f"coop{c}-m{m}" for c in (1, 2) for m in range(4)]
    assert type(ledger.pay("coop0", "coop2", 100)).__name__ == "Valid"
    for i in range(sales):
        buyer = f"coop0-m{i % 4}" if i % 20 == 0 else rng.choice(buyers)
        ledger.pay(buyer, "coop0", rng.randint(100, 2_000), offer=offer)
    next_month()
    print(f"built a month of {sales} sales of one offer in {time.perf_counter() - started:.1f} s")

    head = ledger["coop0"].activity.head
    assert head is not None
    forget = grants_module._terms_read.clear  # payments read once are remembered: start afresh
    forget()
    t0 = time.perf_counter()
    tally = tally_sales(ledger.held.get_record, head.hash, seller, period_of(ledger.clock) - 1)
    build_ms = (time.perf_counter() - t0) * 1_000
    assert isinstance(tally, dict)
    forget()
    t0 = time.perf_counter()
    (row,) = trio.run(lambda: run("grants-reestimate", coop=seller))
    function_ms = (time.perf_counter() - t0) * 1_000
    grant = row["grant"]
    record = ledger["coop0"].chain[-1]
    assert record.action.entry_type == GRANT
    walked = sum(
        1 for r in ledger["coop0"].chain
        if r.action.timestamp >= period_start(period_of(ledger.clock) - 1)
    ) - 1  # fmt: skip

    # a peer judges a chain's records as they arrive, so the walk reads records it has judged:
    # a store of judged records ("trusted"), a fresh engine (no verdict cached for the grant)
    held = HeldRecords([r for chain in ledger.chains() for r in chain if r != record], trusted=True)

    def judge(one: Record, warm: bool = False) -> float:
        if not warm:
            forget()
        engine = Engine(ledger.charter, {"exchange": app})
        t0 = time.perf_counter()
        verdict = engine.validate_record(one, held)
        elapsed = (time.perf_counter() - t0) * 1_000
        assert type(verdict).__name__ == "Valid", verdict
        return elapsed

    validate_ms = min(judge(record) for _ in range(3))
    warm_ms = min(judge(record, warm=True) for _ in range(3))
    payments = [r for r in ledger["coop0"].chain[-50:] if r.action.entry_type == "credit/payment"]
    payment_us = 1_000 * statistics.median(judge(p) for p in payments)
    figures = {
        "grant_sales": sales,
        "grant_month_records": walked,
        "grant_counted": grant["sales"]["count"],
        "grant_build_ms": round(build_ms, 1),
        "grant_function_ms": round(function_ms, 1),
        "grant_validate_ms": round(validate_ms, 1),
        "grant_validate_us_per_record": round(validate_ms * 1_000 / walked, 1),
        "grant_validate_warm_ms": round(warm_ms, 1),
        "payment_validate_us": round(payment_us, 1),
    }
    print(
        f"grant re-estimation over {sales} sales ({walked} records in the month, "
        f"{grant['sales']['count']} counted): the function works it out in {build_ms:.0f} ms "
        f"(whole call, its own node's judgement included: {function_ms:.0f} ms); a peer that "
        f"holds the chain (judged) validates it in {validate_ms:.0f} ms "
        f"({figures['grant_validate_us_per_record']} µs per record walked; judging one payment "
        f"takes {payment_us:.0f} µs); again, with the payments read: {warm_ms:.1f} ms"
    )
    return figures


Measurement = Callable[[bool, random.Random], dict[str, Any]]
MEASUREMENTS: list[tuple[str, Measurement]] = [("search", measure_search)]
"""Each measurement prints its own lines and returns its figures for the last JSON line."""
MEASUREMENTS.append(("grants", measure_grants))


def measure_tally(quick: bool, rng: random.Random) -> dict[str, Any]:
    """The tally of 1k votes (one per co-op of 1k) on one proposal, and the proposals view over them.

    ``tally_1k_votes_ms``: ``governance.tally`` (what a ratification is checked
    with and a node shows), target <= 100 ms. ``proposals_view_1k_votes_ms``:
    the foundation app's ``proposals`` view over the same records (reading
    each vote, the tally, the status), what ``conode foundation show`` costs.
    """
    from conode.apps.foundation.views import proposals
    from conode.validation.charter import Charter, FoundingCoop, Limits, Parameters
    from conode.validation.foundation import disbursement_data
    from conode.validation.governance import (
        PROPOSAL,
        VOTE,
        Proposal,
        ProposalKind,
        Vote,
        rules_from_charter,
        tally,
    )

    voters = 1_000
    signers = [Signer(rng.randbytes(32)) for _ in range(voters)]
    period = DAY_US
    charter = Charter(
        name="bench",
        currency="CXT",
        scale=2,
        founding=tuple(
            FoundingCoop(AgentKey(s.public_key), f"coop {i}", f"REG-{i}")
            for i, s in enumerate(signers)
        ),
        params=Parameters(
            coop_limits=Limits(10_000, 1_000_000),
            member_limits=Limits(500, 100_000),
            foundation_share_bp=1_000,
            quorum_bp=5_000,
            threshold_bp=5_001,
            voting_period_us=period,
            replication=3,
        ),
        created_at=START,
        foundation=AgentKey(Signer(rng.randbytes(32)).public_key),
    )
    rules = rules_from_charter(charter)
    body = disbursement_data(AgentKey(signers[1].public_key), 50_000, "a new bakery")
    proposal = Proposal(ProposalKind.OPAQUE, "a bakery", body, START + period, None)
    made = author_record(
        signers[0], None, kind=ActionKind.CREATE, timestamp=START,
        entry=proposal.to_value(), entry_type=PROPOSAL,
    )  # fmt: skip
    votes = [
        author_record(
            signer, None, kind=ActionKind.CREATE, timestamp=START + 1 + i,
            entry=Vote(made.hash, rng.choice(("yes", "yes", "no", "abstain")), None).to_value(),
            entry_type=VOTE,
        )
        for i, signer in enumerate(signers)
    ]
    rng.shuffle(votes)
    runs = 5 if quick else 30
    tally_ms, view_ms = [], []
    result = tally(made, proposal.deadline, votes, rules)
    for _ in range(runs):
        started = time.perf_counter()
        result = tally(made, proposal.deadline, votes, rules)
        tally_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        (view,) = proposals([made, *votes], rules_at=lambda _r, _p: rules, now=START + 2 * period)
        view_ms.append((time.perf_counter() - started) * 1000)
    assert len(result.counted) == voters and view.tally == result
    figures = {
        "tally_votes": voters,
        "tally_1k_votes_ms": round(statistics.median(tally_ms), 2),
        "proposals_view_1k_votes_ms": round(statistics.median(view_ms), 2),
    }
    print(
        f"tally: {voters} votes by {voters} co-ops ({result.reason}): "
        f"{figures['tally_1k_votes_ms']} ms (median of {runs}; target <= 100 ms); "
        f"the proposals view over them: {figures['proposals_view_1k_votes_ms']} ms"
    )
    return figures


MEASUREMENTS.append(("tally", measure_tally))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer queries, under a minute")
    parser.add_argument("--only", metavar="NAME", help="run one measurement")
    args = parser.parse_args()
    figures: dict[str, Any] = {"quick": args.quick}
    for name, measure in MEASUREMENTS:
        if args.only is None or args.only == name:
            figures.update(measure(args.quick, random.Random(name)))
    sys.stdout.flush()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
