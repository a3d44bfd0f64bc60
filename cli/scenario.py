"""``conode devnet --scenario full``: every app on real node processes, step by step.

After the payments of an ordinary devnet run, through each node's API only
(what the CLI does):

1. **Offers and wants.** Each co-op offers something (and is granted credit
   for it); a member of each co-op posts a want that another co-op's offer
   matches; every offer is found by words from another node, and the
   wanter's node puts the match in the wanter's inbox by itself (a pushed
   notice: nobody asks for it).
2. **Sales.** Members of other co-ops buy from each offer (payments naming
   it), and two co-ops buy from each other (wash trading, which the monthly
   re-estimate must not count).
3. **Governance.** One proposal raises the members' credit limit, another
   asks the Foundation to fund a co-op; every co-op votes yes; the
   proposers' nodes ratify after the deadline and the steward (node 0) pays
   the disbursement, with nobody asking. A payment the old limit refused
   then commits.
4. **Lookout.** A signal, a sign citing it and a significance citing that,
   each posted on a different node.
5. **The month turns.** The nodes' clocks were set to run that far ahead
   (``clock_offset_ms``) that a month ends during the run: each co-op
   re-estimates its offers from last month's sales, and the steward
   collects the Foundation's share of every grant.

Every step is checked; a failed check is recorded in ``ScenarioResult.problems``
and fails the run. What the steps made (each offer with the credit it was
granted, every grant, the proposals and their votes, the disbursement, the
lookout items) is kept in the result, for the devnet's report to list
(``report_lines``) and its JSON summary to carry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from cli.client import ApiError
from conode.errors import ConodeError

__all__ = ["MONTH_LEAD_S", "ScenarioResult", "clock_offset_ms", "report_lines", "run_full"]

MONTH_LEAD_S: Final = 150
"""How long after the nodes are prepared their clocks reach the end of a month."""
VOTING_PERIOD_S: Final = 20
DISBURSEMENT: Final = 500
RAISED_MEMBER_CREDIT: Final = 2_000
SALE: Final = 300
WAIT_S: Final = 90.0
_NOTICE_WAIT_S: Final = 15.0  # how long the wanter's node may take to push its notice


def clock_offset_ms(now_s: float, lead_s: float = MONTH_LEAD_S, offset_ms: int = 0) -> int:
    """How far ahead the nodes' clocks must run so that the month they are in (running
    ``offset_ms`` ahead) ends ``lead_s`` from ``now_s``."""
    clock = datetime.fromtimestamp(now_s + offset_ms / 1000, UTC)
    year, month = (clock.year + 1, 1) if clock.month == 12 else (clock.year, clock.month + 1)
    month_end = datetime(year, month, 1, tzinfo=UTC).timestamp()
    return max(0, int((month_end - lead_s - now_s) * 1000))


@dataclass(slots=True)
class ScenarioResult:
    """What the full scenario did (its figures join the devnet's JSON summary)."""

    offers: int = 0
    wants: int = 0
    found_by_search: int = 0
    notices: int = 0
    sales: int = 0
    grants_issued: int = 0
    reestimates: int = 0
    foundation_balance: int | None = None
    proposals_ratified: int = 0
    disbursed: bool = False
    raised_limit_used: bool = False
    lookout_items: int = 0
    problems: list[str] = field(default_factory=list)
    offers_made: list[dict[str, Any]] = field(default_factory=list)
    """Each offer: co-op, title, price (minor units), unit, quantity, hash, credit granted on posting."""
    grants_made: list[dict[str, Any]] = field(default_factory=list)
    """Each grant on any offer: co-op, title, basis, period, gross, the Foundation's share, credit."""
    proposals_made: list[dict[str, Any]] = field(default_factory=list)
    """Each proposal: title, kind, status, the tally, and each co-op's vote by name."""
    disbursement: dict[str, Any] | None = None
    """The Foundation's disbursement: co-op, amount, purpose, the paying record (None: not paid)."""
    lookout_made: list[dict[str, Any]] = field(default_factory=list)
    """Each lookout item: stage, title, who posted it, hash."""

    def as_json(self) -> dict[str, Any]:
        return {
            "offers": self.offers,
            "wants": self.wants,
            "offers_found_by_search": self.found_by_search,
            "want_notices": self.notices,
            "offer_sales": self.sales,
            "grants_issued": self.grants_issued,
            "reestimates": self.reestimates,
            "foundation_balance": self.foundation_balance,
            "proposals_ratified": self.proposals_ratified,
            "disbursement_paid": self.disbursed,
            "raised_limit_used": self.raised_limit_used,
            "lookout_items": self.lookout_items,
            "scenario_problems": self.problems,
            "offers_made": self.offers_made,
            "grants_made": self.grants_made,
            "proposals_made": self.proposals_made,
            "disbursement": self.disbursement,
            "lookout_made": self.lookout_made,
        }


class _Net:
    """The devnet as the scenario drives it: agents by name, each through its home node's API."""

    def __init__(self, plan: Any, nodes: list[Any], say: Callable[[str], None]) -> None:
        self.plan = plan
        self.nodes = nodes
        self.say = say
        self.coops = len(plan.dirs)

    def node_of(self, name: str) -> Any:
        return self.nodes[self.plan.agents[name].node]

    def key(self, name: str) -> str:
        return str(self.plan.agents[name].key)

    def name_of(self, key: str) -> str:
        """The devnet name of the agent with printable key ``key`` (the key if none)."""
        return next((m.name for m in self.plan.agents.values() if str(m.key) == key), key)

    def call(self, name: str, method: str, params: dict[str, Any]) -> Any:
        """``method`` on the node hosting ``name``."""
        return self.node_of(name).client.call(method, params)

    def app(self, name: str, app: str, fn: str, **params: Any) -> Any:
        """An app function run as ``name`` on its node."""
        return self.call(name, "app.call", {"app": app, "fn": fn, "params": params, "agent": name})

    def query(self, name: str, app: str, fn: str, **params: Any) -> Any:
        """An app function that acts as no one, run on the node hosting ``name``."""
        return self.call(name, "app.call", {"app": app, "fn": fn, "params": params})


def run_full(
    plan: Any,
    nodes: list[Any],
    say: Callable[[str], None],
    *,
    month_turns_at: float,
    offset_ms: int,
    next_month: Callable[[int], None],
) -> ScenarioResult:
    """Run steps 1 to 5 (see the module docstring); problems are recorded, never raised.

    ``month_turns_at``: the machine time (``time.time()``) at which the nodes' clocks reach
    the next month. ``next_month(offset_ms)`` restarts every node with its clock that far
    ahead (``nodes`` is updated in place).
    """
    net = _Net(plan, nodes, say)
    result = ScenarioResult()
    steps: list[tuple[str, Callable[[_Net, ScenarioResult, dict[str, Any]], None]]] = [
        ("offers and wants", _offers_and_wants),
        ("a month passes", _a_month_passes),
        ("sales", _sales),
        ("governance", _governance),
        ("lookout", _lookout),
        ("the month turns", _month_turns),
    ]
    shared: dict[str, Any] = {
        "month_turns_at": month_turns_at,
        "offset_ms": offset_ms,
        "next_month": next_month,
    }
    for title, step in steps:
        say(f"scenario: {title}")
        try:
            step(net, result, shared)
        except (ConodeError, ApiError, KeyError, ValueError) as exc:
            result.problems.append(f"{title}: {exc}")
            say(f"scenario: {title} FAILED: {exc}")
    return result


def _offers_and_wants(net: _Net, result: ScenarioResult, shared: dict[str, Any]) -> None:
    for i in range(net.coops):  # wants first: an offer newer than a want is a notice for it
        wanter = f"coop{i}-m0"
        net.app(wanter, "exchange", "want-add", title="rye bread", category="food",
                price=SALE, unit="loaf", quantity=2)  # fmt: skip
        result.wants += 1
    _converge(net)
    offers: dict[int, str] = {}
    for i in range(net.coops):
        coop = f"coop{i}"
        title = f"Loaves of rye bread from co-op {i}"
        posted = net.app(
            coop, "exchange", "offer-add",
            title=title, category="food",
            price=SALE, unit="loaf", quantity=10 + i, description="baked daily",
        )  # fmt: skip
        offers[i] = posted["hash"]
        grant = posted.get("grant") or {}
        if "skipped" in grant:
            result.problems.append(f"{coop}'s offer earned no grant: {grant['skipped']}")
        granted = (grant.get("grant") or {}).get("gross")
        result.offers_made.append(
            {"coop": coop, "title": title, "price": SALE, "unit": "loaf",
             "quantity": 10 + i, "hash": posted["hash"], "granted": granted}
        )  # fmt: skip
    result.offers = len(offers)
    shared["offers"] = offers
    _converge(net)
    for i, offer in offers.items():
        searcher = f"coop{(i + 1) % net.coops}-m1"
        found = net.query(searcher, "exchange", "offer-search", text=f"rye co-op {i}")
        if any(item.get("hash") == offer for item in found):
            result.found_by_search += 1
        else:
            result.problems.append(f"the offer of coop{i} is not found by words on another node")
    deadline = time.monotonic() + _NOTICE_WAIT_S  # the wanter's node notices as offers arrive
    while True:
        notices = net.app("coop0-m0", "exchange", "inbox")
        if notices or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    result.notices = len(notices)
    if not notices:
        result.problems.append("no notice pushed to the inbox of a want that new offers match")


def _a_month_passes(net: _Net, result: ScenarioResult, shared: dict[str, Any]) -> None:
    """The offers' first whole month: every node restarts with its clock near that month's end.

    A re-estimate counts a whole month of sales, so the offers are posted in
    one month, sold in the next, and re-estimated in the one after.
    """
    _converge(net)
    wait = shared["month_turns_at"] - time.time()
    if wait > 0:
        net.say(f"scenario: waiting {wait:.0f} s for the month the offers were posted in to end")
        time.sleep(wait)
    offset = clock_offset_ms(time.time(), MONTH_LEAD_S, shared["offset_ms"] + 5_000)
    net.say("scenario: restarting the nodes near the end of the next month")
    shared["next_month"](offset)
    shared["offset_ms"] = offset
    shared["month_turns_at"] = _month_end(offset) - offset / 1000  # in the machine's time


def _sales(net: _Net, result: ScenarioResult, shared: dict[str, Any]) -> None:
    offers: dict[int, str] = shared["offers"]
    for i, offer in offers.items():
        buyer = f"coop{(i + 1) % net.coops}"  # another co-op: its credit is not used up
        paid = net.call(buyer, "pay", {"from": buyer, "to": net.key(f"coop{i}"), "amount": SALE,
                                       "memo": "a loaf", "offer": offer})  # fmt: skip
        if paid.get("committed"):
            result.sales += 1
        else:
            result.problems.append(f"{buyer} could not buy from coop{i}: {paid.get('reason')}")
    # wash trading: co-ops 0 and 1 buy each other's bread in the same month
    for buyer, seller in (("coop0", 1), ("coop1", 0)):
        net.call(buyer, "pay", {"from": buyer, "to": net.key(f"coop{seller}"), "amount": SALE,
                                "memo": "wash", "offer": offers[seller]})  # fmt: skip
    _converge(net)
    net.query("foundation", "exchange", "share-collect")  # the grants' shares fund the Foundation


def _governance(net: _Net, result: ScenarioResult, shared: dict[str, Any]) -> None:
    limit = {"param": "member_limits", "value": {"credit": RAISED_MEMBER_CREDIT, "cap": 100_000}}
    amend = net.call("coop0", "gov.propose", {"kind": "amend", "title": "members may owe 20.00",
                                              "as": "coop0", **limit})  # fmt: skip
    fund = net.call("coop1", "gov.propose", {"kind": "disburse", "title": "an oven for coop2",
                                             "coop": net.key("coop2"), "amount": DISBURSEMENT,
                                             "purpose": "a bakery oven", "as": "coop1"})  # fmt: skip
    proposals = [amend["id"], fund["id"]]
    _converge(net)
    for i in range(net.coops):
        for proposal in proposals:
            net.call(f"coop{i}", "gov.vote", {"id": proposal, "choice": "yes", "as": f"coop{i}"})
    _converge(net)
    net.say(f"scenario: waiting for the deadline ({VOTING_PERIOD_S} s) and the ratifications")
    ratified = _wait_for(
        lambda: all(
            net.call("coop0", "gov.proposal", {"id": p}).get("status") == "ratified"
            for p in proposals
        ),
        VOTING_PERIOD_S + WAIT_S,
        net,
    )
    views = [net.call("coop0", "gov.proposal", {"id": p}) for p in proposals]
    result.proposals_ratified = sum(view.get("status") == "ratified" for view in views)
    result.proposals_made = [_proposal(net, view) for view in views]
    if not ratified:
        result.problems.append("the proposals were not both ratified in time")
        return
    net.say("scenario: waiting for the steward to pay the disbursement")
    result.disbursed = _wait_for(
        lambda: bool(net.call("coop2", "gov.proposal", {"id": fund["id"]}).get("executed")),
        WAIT_S,
        net,
    )
    if not result.disbursed:
        result.problems.append("the steward did not pay the ratified disbursement")
    paid = net.call("coop2", "gov.proposal", {"id": fund["id"]}).get("disbursement") or {}
    result.disbursement = {
        "coop": net.name_of(str(paid.get("coop"))), "amount": paid.get("amount"),
        "purpose": paid.get("purpose"), "record": paid.get("paid_by"),
    }  # fmt: skip
    # the raised limit: a member pays more than the charter's 5.00 credit would allow
    _converge(net)
    big = net.call("coop2-m1", "pay", {"from": "coop2-m1", "to": net.key("coop0-m1"),
                                       "amount": RAISED_MEMBER_CREDIT - 500, "memo": "big"})  # fmt: skip
    result.raised_limit_used = bool(big.get("committed"))
    if not result.raised_limit_used:
        result.problems.append(f"a payment under the raised limit was refused: {big.get('reason')}")


def _lookout(net: _Net, result: ScenarioResult, shared: dict[str, Any]) -> None:
    seen = net.app("coop0-m1", "lookout", "signal", title="Rye flour up 30 %",
                   source="millers' bulletin", sectors="food")  # fmt: skip
    _converge(net)
    change = net.app(f"coop{1 % net.coops}-m1", "lookout", "sign",
                     title="Grain costs are rising", signals=seen)  # fmt: skip
    _converge(net)
    meaning = net.app(f"coop{2 % net.coops}", "lookout", "significance",
                      title="Bakeries should buy flour together", signs=change,
                      sectors="food")  # fmt: skip
    _converge(net)
    posted = [("signal", seen, "Rye flour up 30 %", "coop0-m1"),
              ("sign", change, "Grain costs are rising", f"coop{1 % net.coops}-m1"),
              ("significance", meaning, "Bakeries should buy flour together",
               f"coop{2 % net.coops}")]  # fmt: skip
    result.lookout_made = [
        {"stage": stage, "title": title, "by": by, "hash": item}
        for stage, item, title, by in posted
    ]
    board = net.query("coop0", "lookout", "board")
    items = {item.get("hash") for stage in _stages(board) for item in stage}
    result.lookout_items = len(items & {seen, change, meaning})
    if result.lookout_items != 3:
        result.problems.append(f"the lookout board shows {result.lookout_items} of the 3 items")


def _stages(board: Any) -> list[list[dict[str, Any]]]:
    """The board's items, whichever shape (stage -> items, or a list) the function returns."""
    if isinstance(board, dict):
        return [v for v in board.values() if isinstance(v, list)]
    return [board] if isinstance(board, list) else []


def _month_turns(net: _Net, result: ScenarioResult, shared: dict[str, Any]) -> None:
    ready_at = shared.get("month_turns_at")
    if ready_at is not None and time.time() < ready_at:
        net.say(f"scenario: waiting {ready_at - time.time():.0f} s for the month to end")
        time.sleep(max(0.0, ready_at - time.time()))
    for i in range(net.coops):  # the nodes also do this by themselves every 30 s
        net.query(f"coop{i}", "exchange", "grants-reestimate")
    _converge(net)
    net.query("foundation", "exchange", "share-collect")
    _converge(net)
    lines = net.query("coop0", "exchange", "grants")
    grants = [g for line in lines for g in line["grants"]]
    result.grants_issued = len(grants)
    result.grants_made = [
        {"coop": net.name_of(str(line.get("author"))), "title": line.get("title"),
         "offer": line.get("offer"), "basis": g.get("basis"), "period": g.get("period"),
         "gross": g.get("gross"), "share": g.get("share"), "credit": g.get("credit")}
        for line in lines
        for g in line["grants"]
    ]  # fmt: skip
    result.reestimates = sum(g.get("basis") == "reestimate" for g in grants)
    if not result.reestimates:
        result.problems.append("no offer was re-estimated after the month turned")
    result.foundation_balance = net.call("coop0", "gov.foundation", {}).get("balance")


def _month_end(offset_ms: int) -> float:
    """When (on the nodes' clock, seconds) the month the nodes' clock is in ends."""
    clock = datetime.fromtimestamp(time.time() + offset_ms / 1000, UTC)
    year, month = (clock.year + 1, 1) if clock.month == 12 else (clock.year, clock.month + 1)
    return datetime(year, month, 1, tzinfo=UTC).timestamp()


def _converge(net: _Net, timeout: float = WAIT_S) -> None:
    """Every node syncs until all hold the same chain heads."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        digests = {node.client.call("sync")["heads_digest"] for node in net.nodes}
        if len(digests) == 1:
            return
        time.sleep(0.5)
    raise ValueError(f"the nodes did not converge within {timeout:.0f} s")


def _wait_for(done: Callable[[], bool], timeout: float, net: _Net) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(1.0)
        for node in net.nodes:
            node.client.call("sync")
    return done()


def _proposal(net: _Net, view: dict[str, Any]) -> dict[str, Any]:
    """A proposal as the report lists it: title, kind, status, tally and each voter by name."""
    tally = view.get("tally") or {}
    return {
        "id": view.get("id"),
        "title": view.get("title"),
        "kind": view.get("kind"),
        "status": view.get("status"),
        "yes": tally.get("yes"),
        "no": tally.get("no"),
        "abstain": tally.get("abstain"),
        "electorate": tally.get("electorate"),
        "votes": [
            {"voter": net.name_of(str(v.get("voter"))), "choice": v.get("choice")}
            for v in view.get("votes", [])
        ],
    }


def report_lines(summary: dict[str, Any], money: Callable[[int], str]) -> list[str]:
    """What the scenario made, as text: every line reads a value its JSON summary carries."""
    lines = [f"offers:    {len(summary.get('offers_made', []))} posted by the co-ops"]
    for offer in summary.get("offers_made", []):
        granted = offer.get("granted")
        credit = "no grant" if granted is None else f"granted {money(granted)}"
        lines.append(
            f"  {offer['coop']}: {offer['title']!r}, {money(offer['price'])} a {offer['unit']}, "
            f"{offer['quantity']} a month; {credit}"
        )
    grants = summary.get("grants_made", [])
    lines.append(f"grants:    {len(grants)} (credit for offers, re-estimated from sales)")
    for grant in grants:
        figures = ", ".join(
            f"{label} {money(grant[key])}"
            for key, label in (("gross", "gross"), ("share", "Foundation share"), ("credit", "credit"))
            if isinstance(grant.get(key), int)
        )
        lines.append(
            f"  {grant['coop']}: {grant['basis']} for {grant['period']} on {grant['title']!r}: "
            f"{figures}"
        )
    proposals = summary.get("proposals_made", [])
    lines.append(f"votes:     {len(proposals)} proposals, one vote per co-op")
    for p in proposals:
        voters = ", ".join(f"{v['voter']} {v['choice']}" for v in p["votes"]) or "no votes"
        lines.append(
            f"  {p['title']!r} ({p['kind']}): {p['yes']} yes, {p['no']} no, {p['abstain']} "
            f"abstain of {p['electorate']} co-ops ({voters}): {p['status']}"
        )
    paid = summary.get("disbursement")
    if paid is not None and isinstance(paid.get("amount"), int):
        how = f"paid by {paid['record']}" if paid.get("record") else "NOT paid"
        lines.append(
            f"disbursed: the Foundation to {paid['coop']}: {money(paid['amount'])} for "
            f"{paid['purpose']!r}, {how}"
        )
    items = summary.get("lookout_made", [])
    lines.append(f"lookout:   {len(items)} items")
    lines += [f"  {i['stage']} {i['title']!r} by {i['by']} ({i['hash']})" for i in items]
    return lines
