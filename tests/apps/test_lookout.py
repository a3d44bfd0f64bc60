"""The lookout app through the real engine: a whole thread, then each rule refusing its attack.

Every record is correctly signed and judged by the same activity fold and
engine a peer runs (``Ledger.create``/``commit``), so a refusal comes from
the lookout rule under test.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest

from conode import encoding
from conode.apps.lookout import (
    COMMENT,
    POLL,
    RESPOND,
    SECTOR_LINK,
    SIGN,
    SIGNAL,
    SIGNIFICANCE,
    app,
    board,
    feed,
    sector_anchor,
)
from conode.apps.sdk import App, EntryType, Text
from conode.chain import Action, ActionKind, Record, author_record, sign_record
from conode.crypto import Signer
from conode.hashes import ActionHash, AgentKey, EntryHash
from conode.testing import Ledger
from conode.testing.ledger import DAY, Agent
from conode.validation.activity import step
from conode.validation.engine import Engine
from conode.validation.entries import Credential, Genesis, Role
from conode.validation.governance import ProposalKind
from conode.validation.memory import HeldRecords
from conode.validation.verdict import Invalid, Missing, Valid, Verdict

FUND = {"app": "foundation", "data": {"grant": "seed fund"}}
"""The body of a Foundation proposal: an opaque ``gov/proposal`` for the foundation app."""

# -- helpers -------------------------------------------------------------------------------------------


def rule(verdict: Verdict) -> str:
    assert isinstance(verdict, Invalid), f"expected a refusal, got {verdict!r}"
    return verdict.rule


def ok(verdict: Verdict) -> None:
    assert isinstance(verdict, Valid), verdict


def post(ledger: Ledger, name: str, entry_type: str, **values: Any) -> tuple[Record, Verdict]:
    """Commit an entry of the lookout, checked by the SDK on the way out, under the current rules."""
    values.setdefault("rules", ledger.gov_head)
    return ledger.create(name, entry_type, app.entry(entry_type, **values))


def posted(ledger: Ledger, name: str, entry_type: str, **values: Any) -> Record:
    record, verdict = post(ledger, name, entry_type, **values)
    ok(verdict)
    return record


def signal(ledger: Ledger, name: str = "coop0-m0", sectors: tuple[str, ...] = ("food",)) -> Record:
    return posted(
        ledger, name, SIGNAL, title="Seed prices up 40%", text="", source="Growers' bulletin",
        sectors=list(sectors),
    )  # fmt: skip


def sign(ledger: Ledger, signals: list[ActionHash], name: str = "coop0") -> Record:
    return posted(ledger, name, SIGN, title="Input costs rising", text="", signals=signals)


def significance(
    ledger: Ledger, signs: list[ActionHash], name: str = "coop1-m0", **kw: Any
) -> Record:
    kw.setdefault("sectors", ["food"])
    kw.setdefault("suggested", ["Buy seed together"])
    return posted(ledger, name, SIGNIFICANCE, title="Margins squeezed", text="", signs=signs, **kw)


def raw_entry(ledger: Ledger, name: str, entry_type: str, entry: Any) -> Verdict:
    """Commit an entry as written (no SDK check on the way out)."""
    return ledger.create(name, entry_type, entry)[1]


def link(ledger: Ledger, name: str, base: EntryHash, target: ActionHash, tag: str) -> Verdict:
    agent = ledger[name]
    record = author_record(
        agent.signer, agent.activity.head, kind=ActionKind.LINK, timestamp=ledger.now(),
        entry={"base": base.to_bytes(), "target": target.to_bytes(), "tag": tag},
        entry_type=SECTOR_LINK,
    )  # fmt: skip
    return ledger.commit(name, record)


def ratified(ledger: Ledger, kind: str, body: dict[str, Any]) -> None:
    proposal, verdict = ledger.propose("coop0", kind, body)
    ok(verdict)
    votes = []
    for coop in ("coop0", "coop1"):
        vote, verdict = ledger.vote(coop, proposal.hash)
        ok(verdict)
        votes.append(vote.hash)
    ledger.advance(DAY + 1)
    ok(ledger.ratify("coop0", proposal.hash, votes)[1])


def lookout_ledger(**kw: Any) -> Ledger:
    return Ledger(apps={"lookout": app}, **kw)


@pytest.fixture
def ledger() -> Ledger:
    return lookout_ledger()


# -- a whole thread ---------------------------------------------------------------------------------------


def test_a_whole_thread_signal_sign_significance_comment_poll_respond_is_valid(
    ledger: Ledger,
) -> None:
    seen = signal(ledger, "coop0-m0", ("food", "farming"))
    also = posted(
        ledger, "coop1-m1", SIGNAL, title="Drought in the south", text="Third dry year",
        source="https://example.org/weather", sectors=["farming"], location="Andalusia",
    )  # fmt: skip
    change = sign(ledger, [seen.hash, also.hash])
    meaning = significance(ledger, [change.hash], coop=ledger["coop0"].key)
    ok(post(ledger, "coop1-m1", COMMENT, item=seen.hash, text="We see this too")[1])
    ok(post(ledger, "coop0-m1", COMMENT, item=meaning.hash, text="Bulk buying?")[1])
    ok(post(ledger, "coop0-m1", POLL, item=seen.hash, choice="advance")[1])
    ok(post(ledger, "coop1-m0", POLL, item=seen.hash, choice="advance")[1])
    ok(post(ledger, "coop1", POLL, item=seen.hash, choice="hold")[1])
    ok(post(ledger, "coop1", POLL, item=meaning.hash, choice="advance")[1])
    proposal, verdict = ledger.propose("coop0", ProposalKind.OPAQUE, FUND)
    ok(verdict)
    ok(post(ledger, "coop0", RESPOND, significance=meaning.hash, response=proposal.hash,
            kind="proposal", note="A seed-buying fund")[1])  # fmt: skip
    ok(link(ledger, "coop0-m0", sector_anchor("food"), seen.hash, "food"))
    ok(link(ledger, "coop1-m0", sector_anchor("food"), meaning.hash, "food"))
    assert ledger.audit().ok

    view = board(r for chain in ledger.chains() for r in chain)
    assert [i.hash for i in view.signals] == [also.hash, seen.hash]  # newest first
    assert [i.hash for i in view.signs] == [change.hash]
    assert [i.hash for i in view.significances] == [meaning.hash]
    first = view.item(seen.hash)
    assert first is not None
    assert (first.polls.advance, first.polls.hold, first.polls.leaning) == (2, 1, "advance")
    assert len(first.comments) == 1 and first.cited_by == (change.hash,)
    the_sign = view.item(change.hash)
    assert the_sign is not None
    assert the_sign.sectors == ("farming", "food")  # a sign's sectors are its signals'
    assert set(the_sign.cites) == {seen.hash, also.hash}
    the_meaning = view.item(meaning.hash)
    assert the_meaning is not None
    assert [r.response for r in the_meaning.responses] == [proposal.hash]
    assert the_meaning.to_value()["coop"] == str(ledger["coop0"].key)
    assert [i.hash for i in feed(ledger["coop0-m0"].chain + ledger["coop1-m1"].chain, "farming")] == [
        also.hash, seen.hash,
    ]  # fmt: skip
    assert {i.hash for i in view.feed("food")} == {seen.hash, change.hash, meaning.hash}
    assert {i.hash for i in view.thread(also.hash)} == {also.hash, change.hash, meaning.hash}
    assert {i.hash for i in view.thread(change.hash)} == {
        seen.hash,
        also.hash,
        change.hash,
        meaning.hash,
    }
    assert view.thread(ActionHash.of(b"nothing")) == ()


def test_the_board_is_the_same_whatever_order_the_records_arrive_in(ledger: Ledger) -> None:
    seen = signal(ledger)
    change = sign(ledger, [seen.hash])
    significance(ledger, [change.hash])
    for name in ("coop0-m1", "coop1-m0", "coop1-m1"):
        ok(post(ledger, name, POLL, item=change.hash, choice="hold")[1])
        ok(post(ledger, name, COMMENT, item=change.hash, text=f"from {name}")[1])
    records = [r for chain in ledger.chains() for r in chain]
    expected = board(records)
    for seed in range(5):
        shuffled = records * 2  # duplicates too
        random.Random(seed).shuffle(shuffled)
        assert board(shuffled) == expected
    assert expected.to_value()["signs"][0]["comments"] == 3


# -- who may post ----------------------------------------------------------------------------------------


def test_a_member_of_a_revoked_coop_may_no_longer_post(ledger: Ledger) -> None:
    ratified(
        ledger, ProposalKind.REVOKE, {"agent": ledger["coop1"].key.to_bytes(), "reason": "wound up"}
    )
    _, verdict = post(ledger, "coop1-m0", SIGNAL, title="t", text="", source="s", sectors=[])
    assert rule(verdict) == "provenance"
    ok(post(ledger, "coop0-m0", SIGNAL, title="t", text="", source="s", sectors=[])[1])


def test_a_revoked_member_may_no_longer_post(ledger: Ledger) -> None:
    ratified(
        ledger, ProposalKind.REVOKE, {"agent": ledger["coop0-m0"].key.to_bytes(), "reason": "left"}
    )
    _, verdict = post(ledger, "coop0-m0", SIGNAL, title="t", text="", source="s", sectors=[])
    assert rule(verdict) == "revoked"


def test_an_agent_vouched_for_by_an_unregistered_coop_may_not_post(ledger: Ledger) -> None:
    rogue = Signer(hashlib.blake2b(b"rogue co-op", digest_size=32).digest())
    stranger = Agent(
        "stranger", Signer(hashlib.blake2b(b"stranger", digest_size=32).digest()), Role.MEMBER
    )
    credential = Credential.issue(rogue, stranger.key, "stranger", ledger.now())
    genesis = author_record(
        stranger.signer, None, kind=ActionKind.GENESIS, timestamp=ledger.now(),
        entry=Genesis(ledger.charter.network_id, Role.MEMBER, "stranger", credential=credential).to_value(),
    )  # fmt: skip
    assert rule(ledger.engine.validate_record(genesis, ledger.held)) == "provenance"
    # the peer holds its genesis all the same (gossip brought it): the post is still refused
    ledger.agents["stranger"] = stranger
    stranger.activity, _ = step(stranger.activity, genesis)
    ledger.held.add([genesis])
    _, verdict = post(ledger, "stranger", SIGNAL, title="t", text="", source="s", sectors=[])
    assert rule(verdict) == "provenance"


def test_an_agent_whose_genesis_is_not_held_is_missing_not_refused(ledger: Ledger) -> None:
    ghost = Signer(hashlib.blake2b(b"ghost", digest_size=32).digest())
    entry = app.entry(SIGNAL, title="t", text="", source="s", sectors=[])
    entry_bytes = encoding.encode(entry)
    action = Action(
        kind=ActionKind.CREATE, author=AgentKey(ghost.public_key), seq=1,
        prev=ActionHash.of(b"its genesis"), timestamp=ledger.now(), entry_type=SIGNAL,
        entry_hash=EntryHash.of(entry_bytes),
    )  # fmt: skip
    record = sign_record(ghost, action, entry_bytes)
    verdict = ledger.engine.validate_record(record, ledger.held)
    assert verdict == Missing((AgentKey(ghost.public_key),))


def test_coops_may_post_too(ledger: Ledger) -> None:
    seen = signal(ledger, "coop1")
    sign(ledger, [seen.hash], name="coop0")


# -- citations -----------------------------------------------------------------------------------------


def test_a_sign_must_cite_at_least_one_signal(ledger: Ledger) -> None:
    _, verdict = post(ledger, "coop0", SIGN, title="t", text="", signals=[ActionHash.of(b"x")])
    assert isinstance(verdict, Missing)
    verdict = raw_entry(ledger, "coop0", SIGN, {"title": "t", "text": "", "signals": []})
    assert rule(verdict) == "schema"
    assert "signals" in str(verdict)


def test_a_sign_may_not_cite_a_non_signal(ledger: Ledger) -> None:
    seen = signal(ledger)
    change = sign(ledger, [seen.hash])
    _, verdict = post(ledger, "coop1", SIGN, title="t", text="", signals=[seen.hash, change.hash])
    assert rule(verdict) == "citation"
    assert "signals[1]" in str(verdict)
    comment = posted(ledger, "coop0-m1", COMMENT, item=seen.hash, text="hm")
    _, verdict = post(ledger, "coop1", SIGN, title="t", text="", signals=[comment.hash])
    assert rule(verdict) == "citation"


def test_a_sign_citing_signals_this_peer_lacks_names_all_of_them_in_one_missing(
    ledger: Ledger,
) -> None:
    seen = signal(ledger)
    a, b = ActionHash.of(b"a"), ActionHash.of(b"b")
    _, verdict = post(ledger, "coop0", SIGN, title="t", text="", signals=[a, seen.hash, b])
    assert verdict == Missing((a, b))


def test_a_significance_must_cite_signs_not_signals(ledger: Ledger) -> None:
    seen = signal(ledger)
    _, verdict = post(
        ledger, "coop1-m0", SIGNIFICANCE, title="t", text="", sectors=["food"], suggested=[],
        signs=[seen.hash],
    )  # fmt: skip
    assert rule(verdict) == "citation"
    assert "lookout/signal, not lookout/sign" in str(verdict)


def test_a_significance_is_for_a_sector_or_a_registered_coop(ledger: Ledger) -> None:
    change = sign(ledger, [signal(ledger).hash])
    base = {"title": "t", "text": "", "suggested": [], "signs": [change.hash]}
    _, verdict = post(ledger, "coop0-m0", SIGNIFICANCE, sectors=[], **base)
    assert rule(verdict) == "audience"
    _, verdict = post(
        ledger, "coop0-m0", SIGNIFICANCE, sectors=[], coop=ledger["coop1-m1"].key, **base
    )
    assert rule(verdict) == "coop"
    ok(post(ledger, "coop0-m0", SIGNIFICANCE, sectors=[], coop=ledger["coop1"].key, **base)[1])


def test_a_citation_may_not_be_dated_after_the_record_citing_it(ledger: Ledger) -> None:
    before = ledger["coop0"].activity.head
    assert before is not None
    later = signal(ledger, "coop1-m0")
    entry = app.entry(SIGN, title="t", text="", signals=[later.hash])
    backdated = author_record(
        ledger["coop0"].signer, before, kind=ActionKind.CREATE, timestamp=before.timestamp + 1,
        entry=entry, entry_type=SIGN,
    )  # fmt: skip
    assert backdated.action.timestamp < later.action.timestamp
    assert rule(ledger.commit("coop0", backdated)) == "citation"


# -- comments, polls, responses ----------------------------------------------------------------------


def test_a_comment_on_an_item_this_peer_lacks_is_missing(ledger: Ledger) -> None:
    absent = ActionHash.of(b"never posted")
    _, verdict = post(ledger, "coop0-m0", COMMENT, item=absent, text="?")
    assert verdict == Missing((absent,))


def test_comments_and_polls_name_a_signal_sign_or_significance(ledger: Ledger) -> None:
    seen = signal(ledger)
    comment = posted(ledger, "coop0-m1", COMMENT, item=seen.hash, text="first")
    _, verdict = post(ledger, "coop1-m0", COMMENT, item=comment.hash, text="reply")
    assert rule(verdict) == "reference"
    proposal, _ = ledger.propose("coop0", ProposalKind.OPAQUE, FUND)
    _, verdict = post(ledger, "coop1-m0", POLL, item=proposal.hash, choice="advance")
    assert rule(verdict) == "reference"


def test_a_poll_choice_is_advance_or_hold(ledger: Ledger) -> None:
    seen = signal(ledger)
    verdict = raw_entry(ledger, "coop0-m1", POLL, {"item": seen.hash.to_bytes(), "choice": "maybe"})
    assert rule(verdict) == "schema"
    assert "choice" in str(verdict)


def test_a_second_poll_by_one_author_on_one_item_is_caught_by_the_activity_fold(
    ledger: Ledger,
) -> None:
    seen = signal(ledger)
    other = signal(ledger, "coop1-m1")
    first = posted(ledger, "coop0-m1", POLL, item=seen.hash, choice="advance")
    posted(ledger, "coop0-m1", POLL, item=other.hash, choice="hold")
    # The record rules cannot see the first poll (it is no dependency of the second) ...
    second, verdict = post(ledger, "coop0-m1", POLL, item=seen.hash, choice="hold")
    assert isinstance(app.validate(second, second.entry_value(), ledger.rules_now(), ledger.engine, ledger.held), Valid)
    # ... the fold over the author's chain can (its ``once`` key is the item), as for a co-op's
    # second vote
    assert rule(verdict) == "duplicate"
    assert first in ledger["coop0-m1"].chain and second not in ledger["coop0-m1"].chain
    # and the board counts only the author's first poll
    item = board([*(r for chain in ledger.chains() for r in chain), second]).item(seen.hash)
    assert item is not None and (item.polls.advance, item.polls.hold) == (1, 0)


def test_a_response_names_a_significance_and_a_record_of_its_kind(ledger: Ledger) -> None:
    seen = signal(ledger)
    change = sign(ledger, [seen.hash])
    meaning = significance(ledger, [change.hash])
    proposal, _ = ledger.propose("coop0", ProposalKind.OPAQUE, FUND)
    _, verdict = post(
        ledger, "coop0", RESPOND, significance=change.hash, response=proposal.hash, kind="proposal"
    )
    assert rule(verdict) == "reference"
    assert "significance" in str(verdict)
    _, verdict = post(
        ledger, "coop0", RESPOND, significance=meaning.hash, response=seen.hash, kind="proposal"
    )
    assert rule(verdict) == "reference"
    assert "response" in str(verdict)


def test_a_response_may_be_a_want_of_the_exchange_app() -> None:
    exchange = App("exchange", "0.0.1", [EntryType("want", {"title": Text(100, min_len=1)})])
    ledger = Ledger(apps={"lookout": app, "exchange": exchange})
    meaning = significance(ledger, [sign(ledger, [signal(ledger).hash]).hash])
    want, verdict = ledger.create(
        "coop1", "exchange/want", exchange.entry("want", title="Seed, 2 t")
    )
    ok(verdict)
    ok(
        post(ledger, "coop1", RESPOND, significance=meaning.hash, response=want.hash, kind="want")[
            1
        ]
    )
    _, verdict = post(
        ledger, "coop1", RESPOND, significance=meaning.hash, response=want.hash, kind="proposal"
    )
    assert rule(verdict) == "reference"


# -- sector links -------------------------------------------------------------------------------------------


def test_a_sector_link_indexes_an_item_under_a_sector_it_carries(ledger: Ledger) -> None:
    seen = signal(ledger, sectors=("food",))
    change = sign(ledger, [seen.hash])
    ok(link(ledger, "coop0-m0", sector_anchor("food"), seen.hash, "food"))
    assert rule(link(ledger, "coop0-m0", sector_anchor("energy"), seen.hash, "food")) == "anchor"
    assert rule(link(ledger, "coop0-m0", sector_anchor("energy"), seen.hash, "energy")) == "sector"
    assert rule(link(ledger, "coop0-m0", sector_anchor("food"), change.hash, "food")) == "reference"


# -- structure -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"text": "", "source": "s", "sectors": []}, "title"),
        ({"title": "x" * 201, "text": "", "source": "s", "sectors": []}, "title"),
        ({"title": "t", "text": "", "source": "s", "sectors": ["food", "Not A Tag"]}, "sectors[1]"),
        ({"title": "t", "text": "", "source": "s", "sectors": ["food", "food"]}, "sectors[1]"),
        ({"title": "t", "text": "", "source": "s", "sectors": "food"}, "sectors"),
        ({"title": "t", "text": "", "source": "s", "sectors": [], "location": 7}, "location"),
        ({"title": "t", "text": "", "source": "s", "sectors": [], "colour": "red"}, "colour"),
        (["not", "a", "map"], "map"),
    ],
)
def test_a_structural_failure_is_a_schema_refusal_naming_the_field(
    ledger: Ledger, entry: Any, field: str
) -> None:
    verdict = raw_entry(ledger, "coop0-m0", SIGNAL, entry)
    assert rule(verdict) == "schema"
    assert field in str(verdict)


def test_a_malformed_rules_head_is_a_schema_refusal_naming_rules(ledger: Ledger) -> None:
    entry = {"title": "t", "text": "", "source": "s", "sectors": [], "rules": b"\x01"}
    verdict = raw_entry(ledger, "coop0-m0", SIGNAL, entry)
    assert rule(verdict) == "schema"
    assert "rules" in str(verdict)


def test_an_entry_type_the_app_does_not_have_is_refused(ledger: Ledger) -> None:
    verdict = raw_entry(ledger, "coop0-m0", "lookout/rumour", {"title": "t"})
    assert rule(verdict) == "unknown-entry-type"


def test_a_link_type_is_not_an_entry_and_an_entry_type_is_not_a_link(ledger: Ledger) -> None:
    seen = signal(ledger)
    as_entry = {
        "base": sector_anchor("food").to_bytes(),
        "target": seen.hash.to_bytes(),
        "tag": "food",
    }
    assert rule(raw_entry(ledger, "coop0-m0", SECTOR_LINK, as_entry)) == "kind"
    agent = ledger["coop0-m0"]
    record = author_record(
        agent.signer, agent.activity.head, kind=ActionKind.LINK, timestamp=ledger.now(),
        entry=app.entry(SIGNAL, title="t", text="", source="s", sectors=[]), entry_type=SIGNAL,
    )  # fmt: skip
    assert rule(ledger.commit("coop0-m0", record)) == "kind"


def test_lookout_entries_cannot_be_updated(ledger: Ledger) -> None:
    seen = signal(ledger)
    agent = ledger["coop0-m0"]
    record = author_record(
        agent.signer, agent.activity.head, kind=ActionKind.UPDATE, timestamp=ledger.now(),
        entry=app.entry(SIGNAL, title="edited", text="", source="s", sectors=[]),
        entry_type=SIGNAL, ref=seen.hash,
    )  # fmt: skip
    assert rule(ledger.commit("coop0-m0", record)) == "update"


def test_a_verdict_does_not_depend_on_the_peer_that_gives_it(ledger: Ledger) -> None:
    seen = signal(ledger)
    change = sign(ledger, [seen.hash])
    meaning = significance(ledger, [change.hash])
    comment = posted(ledger, "coop0-m1", COMMENT, item=meaning.hash, text="!")
    held = HeldRecords(r for chain in ledger.chains() for r in chain)
    # another peer (its own engine, nothing cached) holding the same records agrees ...
    assert Engine(ledger.charter, {"lookout": app}).validate_record(comment, held) == Valid()
    # ... and one holding only the comment asks for what it lacks instead of refusing
    alone = Engine(ledger.charter, {"lookout": app}).validate_record(
        comment, HeldRecords([comment])
    )
    assert alone == Missing((comment.action.author,))


# -- functions through the node's API ------------------------------------------------------------------------


async def test_the_posting_functions_commit_and_index_and_the_board_reads_them_by_name(
    api_for: Any,
) -> None:
    ledger = lookout_ledger()
    api = api_for(ledger, app)
    member = str(ledger["coop0-m0"].key)
    seen = await app.functions["signal"](
        api,
        agent=member,
        title="Co-op bank closing branches",
        source="news",
        sectors="finance, retail",
    )
    change = await app.functions["sign"](
        api, agent=ledger["coop1"].key, title="Branch retreat", signals=seen
    )
    meaning = await app.functions["significance"](
        api, agent=ledger["coop1-m0"].key, title="Cash handling", signs=[change], sectors=["retail"],
        suggested=["Shared cash collection"],
    )  # fmt: skip
    await app.functions["comment"](api, agent=member, item=meaning, text="Agreed")
    await app.functions["poll"](api, agent=member, item=meaning, choice="advance")
    proposal, _ = ledger.propose("coop0", ProposalKind.OPAQUE, FUND)
    await app.functions["respond"](api, agent=ledger["coop0"].key, significance=meaning,
                                   response=str(proposal.hash), kind="proposal")  # fmt: skip
    links = [r for r in api.records(SECTOR_LINK)]
    assert len(links) == 3  # the signal under finance and retail, the significance under retail
    whole = app.functions["board"](api)
    assert [i["title"] for i in whole["signals"]] == ["Co-op bank closing branches"]
    assert whole["significances"][0]["comments"] == 1
    assert whole["significances"][0]["polls"] == {"advance": 1, "hold": 0}
    assert whole["significances"][0]["responses"][0]["kind"] == "proposal"
    assert [i["stage"] for i in app.functions["feed"](api, sector="retail")] == [
        "significance",
        "sign",
        "signal",
    ]
    assert len(app.functions["thread"](api, item=seen)) == 3
    # people named beside their keys: authors, responders, commenters
    assert [i["author_name"] for i in whole["signals"]] == ["coop0-m0"]
    assert [i["author_name"] for i in whole["signs"]] == ["coop1"]
    meant = whole["significances"][0]
    assert (meant["author"], meant["author_name"]) == (str(ledger["coop1-m0"].key), "coop1-m0")
    assert meant["responses"][0]["author_name"] == "coop0"
    assert [i["author_name"] for i in app.functions["feed"](api, sector="retail")] == [
        "coop1-m0", "coop1", "coop0-m0",
    ]  # fmt: skip
    (discussed,) = [i for i in app.functions["thread"](api, item=meaning) if i["hash"] == meaning]
    assert [(c["author_name"], c["text"]) for c in discussed["discussion"]] == [
        ("coop0-m0", "Agreed"),
    ]  # fmt: skip
    assert ledger.audit().ok
