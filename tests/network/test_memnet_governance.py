"""Governance on nodes: an amendment ratified on one node changes the rules every node pays under;
stale-rules colluders are warranted; a forked governance log heals to one head."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing
from netkit import JumpClock, assert_audit_clean, wait_until

from conode.chain import Record
from conode.testing.network import TestNetwork
from conode.validation.charter import DEFAULT_RULES_GRACE_US
from conode.validation.entries import Payment
from conode.validation.governance import (
    PROPOSAL,
    RATIFICATION,
    VOTE,
    Proposal,
    ProposalKind,
    Ratification,
    Vote,
)
from conode.validation.payment import commit_payment, make_body, sign_body

DAY_US = 86_400_000_000


async def test_a_ratified_amendment_raises_a_credit_limit_on_every_node(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    clock = JumpClock()
    async with TestNetwork.start(tmp_path, nodes=3, members=1, clock=clock) as net:
        refused = await net.pay("coop0-m0", "coop1-m0", 1_000)  # the member credit limit is 500
        assert not refused.committed and "credit-limit" in refused.reason

        proposer = net.home["coop0"]
        now = proposer.clock()
        amendment = Proposal(
            ProposalKind.AMEND,
            "members may owe up to 2000",
            {"param": "member_limits", "value": {"credit": 2_000, "cap": 100_000}},
            now + net.charter.params.voting_period_us,
            None,
        )
        proposal = await proposer.create_entry(net.agents["coop0"], PROPOSAL, amendment.to_value())
        await net.converge()
        votes = []
        for coop in ("coop0", "coop1", "coop2"):
            vote = Vote(proposal.hash, "yes", None)
            votes.append(await net.home[coop].create_entry(net.agents[coop], VOTE, vote.to_value()))
        await net.converge()
        clock.jump(DAY_US + 60_000_000)  # past the deadline
        ratification = Ratification(proposal.hash, tuple(v.hash for v in votes), 1, None)
        record = await proposer.create_entry(
            net.agents["coop0"], RATIFICATION, ratification.to_value()
        )
        await net.converge()

        assert all(node.rules_head() == record.hash for node in net.nodes)
        paid = await net.pay("coop2-m0", "coop1-m0", 1_000)  # a third node, under the new rules
        assert paid.committed, paid.reason
        await net.converge()
        assert net.balance("coop2-m0") == -1_000


async def _ratify(
    net: TestNetwork, clock: JumpClock, kind: str, body: dict[str, object]
) -> Record:
    """Propose on coop0's node, every co-op votes yes, the deadline passes, coop0 ratifies."""
    proposer = net.home["coop0"]
    deadline = proposer.clock() + net.charter.params.voting_period_us
    proposal = Proposal(kind, "a proposal", body, deadline, proposer.rules_head())
    made = await proposer.create_entry(net.agents["coop0"], PROPOSAL, proposal.to_value())
    await net.converge()
    votes = []
    for coop in ("coop0", "coop1", "coop2"):
        vote = Vote(made.hash, "yes", net.home[coop].rules_head())
        votes.append(await net.home[coop].create_entry(net.agents[coop], VOTE, vote.to_value()))
    await net.converge()
    clock.jump(DAY_US + 60_000_000)  # past the deadline
    ratification = Ratification(made.hash, tuple(v.hash for v in votes), 1, None)
    record = await proposer.create_entry(net.agents["coop0"], RATIFICATION, ratification.to_value())
    await net.converge()
    return record


async def test_colluders_trading_under_the_rules_from_before_a_revocation_are_warranted_everywhere(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    clock = JumpClock()
    async with TestNetwork.start(tmp_path, nodes=3, members=2, clock=clock) as net:
        revoked, payee = net.agents["coop0-m0"], net.agents["coop0-m1"]
        await _ratify(net, clock, ProposalKind.REVOKE, {"agent": revoked.to_bytes(), "reason": "left"})
        # an honest node refuses to open a session for a revoked member
        refused = await net.pay("coop0-m0", "coop1-m0", 10)
        assert not refused.committed and "revoked" in refused.reason
        clock.jump(DEFAULT_RULES_GRACE_US)  # long after every node holds the revocation

        # coop0's node colludes: both parties sign a payment under the charter's rules (no head)
        colluder = net.home["coop0-m0"]
        signers = [colluder.agents[agent].signer for agent in (revoked, payee)]
        body = make_body(
            net.charter.network_id,
            colluder.store.activity(revoked),
            colluder.store.activity(payee),
            10,
            timestamp=colluder.clock(),
            rules=None,
        )
        payment = Payment(body, *(sign_body(signer, body) for signer in signers))
        paid, received = (commit_payment(signer, payment) for signer in signers)
        await colluder.commit(revoked, [paid])
        await colluder.commit(payee, [received])
        await net.converge()

        honest = [node for node in net.nodes if node is not colluder]
        for node in honest:
            assert node.store.get(paid.hash) is not None  # the record is valid under its head...
            assert node.store.warranted(revoked)  # ...and its author is warranted for it
            assert not node.store.warranted(payee)  # the payee is not, for the payer's standing
        assert colluder.store.warranted(revoked)  # the warrant reached the colluder too


async def test_a_forked_governance_log_heals_to_one_head_holding_both_proposals(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Two sides of a partition each ratify a different proposal as entry 1 of the log. After
    the heal every node follows the same head (the fork choice), the proposal left on the losing
    branch is ratified again on top of the winner by its proposer's node, both amendments are in
    force everywhere, and nobody is warranted for records made under the losing head."""
    clock = JumpClock()
    settle_us = 60_000_000
    async with TestNetwork.start(
        tmp_path, nodes=3, members=1, clock=clock, governance=True, settle_us=settle_us
    ) as net:
        amendments = {  # proposer -> (parameter, value)
            "coop0": ("member_limits", {"credit": 700, "cap": 100_000}),
            "coop1": ("coop_limits", {"credit": 9_000, "cap": 1_000_000}),
        }
        proposals = {}
        for i, (coop, (param, value)) in enumerate(amendments.items()):
            body = {"param": param, "value": value}
            made = await net.governance[i].propose(
                net.agents[coop], ProposalKind.AMEND, f"set {param}", body
            )
            proposals[coop] = made.hash
        await net.converge()
        for proposal in proposals.values():
            for i in range(3):
                await net.governance[i].vote(net.agents[f"coop{i}"], proposal, "yes")
        await net.converge()

        net.memnet.partition({"node0"}, {"node1", "node2"})
        clock.jump(DAY_US + 2 * settle_us)  # past both deadlines: each side ratifies its own
        lone, pair = net.nodes[0], net.nodes[1:]
        await wait_until(lambda: lone.rules_head() is not None)
        await wait_until(lambda: all(node.rules_head() is not None for node in pair))
        forked = {lone.rules_head(), net.nodes[1].rules_head()}
        assert len(forked) == 2 and None not in forked  # two different entries n = 1
        # each side trades under its own head meanwhile
        assert (await net.pay("coop0-m0", "coop0", 10)).committed
        assert (await net.pay("coop1-m0", "coop2-m0", 10)).committed

        net.memnet.heal()

        def one_log_with_both() -> bool:
            heads = {node.rules_head() for node in net.nodes}
            if len(heads) != 1:
                return False
            return all(set(proposals.values()) <= set(g.log()) for g in net.governance)

        await wait_until(one_log_with_both, timeout=600)
        head = net.nodes[0].rules_head()
        record = net.nodes[0].store.get(head)  # type: ignore[arg-type]
        assert record is not None and Ratification.from_value(record.entry_value()).n == 2
        for node in net.nodes:
            rules = node.rules_now()
            assert rules.params.member_limits.credit == 700
            assert rules.params.coop_limits.credit == 9_000
        await net.converge()
        assert all(not list(node.store.warrants()) for node in net.nodes)
        assert_audit_clean(net)
