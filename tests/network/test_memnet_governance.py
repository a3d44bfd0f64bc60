"""An amendment ratified on one node changes the rules every node pays under."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from conode.chain import Record
from conode.testing.network import START_US, TestNetwork
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
skipped_us = [0]  # the nodes' clock may jump ahead (a day of voting) without a day of trio timers


def trio_clock() -> int:
    return START_US + skipped_us[0] + int(trio.current_time() * 1_000_000)


async def test_a_ratified_amendment_raises_a_credit_limit_on_every_node(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with TestNetwork.start(tmp_path, nodes=3, members=1, clock=trio_clock) as net:
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
        skipped_us[0] += DAY_US + 60_000_000  # past the deadline
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


async def _ratify(net: TestNetwork, kind: str, body: dict[str, object]) -> Record:
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
    skipped_us[0] += DAY_US + 60_000_000  # past the deadline
    ratification = Ratification(made.hash, tuple(v.hash for v in votes), 1, None)
    record = await proposer.create_entry(net.agents["coop0"], RATIFICATION, ratification.to_value())
    await net.converge()
    return record


async def test_colluders_trading_under_the_rules_from_before_a_revocation_are_warranted_everywhere(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with TestNetwork.start(tmp_path, nodes=3, members=2, clock=trio_clock) as net:
        revoked, payee = net.agents["coop0-m0"], net.agents["coop0-m1"]
        await _ratify(net, ProposalKind.REVOKE, {"agent": revoked.to_bytes(), "reason": "left"})
        # an honest node refuses to open a session for a revoked member
        refused = await net.pay("coop0-m0", "coop1-m0", 10)
        assert not refused.committed and "revoked" in refused.reason
        skipped_us[0] += DEFAULT_RULES_GRACE_US  # long after every node holds the revocation

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
