"""An amendment ratified on one node changes the rules every node pays under."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from conode.testing.network import START_US, TestNetwork
from conode.validation.governance import (
    PROPOSAL,
    RATIFICATION,
    VOTE,
    Proposal,
    ProposalKind,
    Ratification,
    Vote,
)

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
