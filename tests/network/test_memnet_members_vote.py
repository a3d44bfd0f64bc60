"""Members vote on real nodes (in-memory network) once a ratified amendment sets ``members_vote``.

Three co-ops, one node each, one member each hosted with its co-op. Before
the switch a member's vote is refused on its own node in one clear error. The
co-ops then vote the switch on; on a proposal made after that, members on two
other nodes vote (one through the API's ``gov.vote`` with ``as``, what
``conode foundation vote ID yes --as MEMBER`` sends), their co-ops do not, and
the proposer's node ratifies it on its own: quorum counted over the co-ops
whose members took part, every peer checking the ratification against the
geneses the votes pin. The nodes' clock jumps ahead (a day of voting) as in
``test_memnet_foundation.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing
from netkit import JumpClock, wait_until

from conode.api import ApiServer
from conode.errors import ValidationError
from conode.hashes import ActionHash
from conode.testing.network import TestNetwork
from conode.validation.governance import RATIFICATION, ProposalKind, Ratification, Vote

DAY_US = 86_400_000_000
SETTLE_US = 60_000_000


async def test_members_on_two_nodes_vote_and_the_proposers_node_ratifies(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    clock = JumpClock()
    async with TestNetwork.start(
        tmp_path, nodes=3, members=1, clock=clock, governance=True, settle_us=SETTLE_US
    ) as net:
        gov = net.governance
        coops = [net.agents[f"coop{i}"] for i in range(3)]
        members = [net.agents[f"coop{i}-m0"] for i in range(3)]

        # the switch is off: a member's vote is refused on its own node, in words
        switch = await gov[0].propose(
            coops[0], ProposalKind.AMEND, "members vote", {"param": "members_vote", "value": True}
        )
        await net.converge()
        with pytest.raises(ValidationError, match="members_vote") as refused:
            await gov[1].vote(members[1], switch.hash, "yes")
        assert refused.value.rule == "not-a-coop"
        for i in range(3):
            await gov[i].vote(coops[i], switch.hash, "yes")
        await net.converge()
        clock.jump(DAY_US + 2 * SETTLE_US)
        await wait_until(lambda: all(n.rules_now().params.members_vote for n in net.nodes))
        await net.converge()

        # a proposal made under the switch: members of coop1 and coop2 vote, on their own nodes
        proposal = await gov[0].propose(
            coops[0],
            ProposalKind.AMEND,
            "members may owe up to 2000",
            {"param": "member_limits", "value": {"credit": 2_000, "cap": 100_000}},
        )
        await net.converge()
        voted = await gov[1].vote(members[1], proposal.hash, "yes")
        assert (
            Vote.from_value(voted.entry_value()).genesis
            == net.nodes[1].store.activity(members[1]).genesis
        )
        await net.converge()
        api = ApiServer(net.nodes[2], tmp_path / "unused.sock", governance=gov[2])
        answer = await api.methods["gov.vote"](
            {"id": str(proposal.hash), "choice": "yes", "as": "coop2-m0"}
        )
        assert answer["tally"]["member_votes"] == 2  # node 2 holds node 1's member vote too
        mine = next(v for v in answer["votes"] if v["voter"] == str(members[2]))
        assert mine["counted"] and mine["member_of"] == str(coops[2])
        await net.converge()
        for governance in gov:
            view = governance.proposal(proposal.hash)
            assert view.tally is not None
            assert (view.tally.yes, view.tally.members, view.tally.took_part) == (2, 2, 2)
            assert view.tally.ratified  # two co-ops of three took part through their members
            by_voter = {v.voter: v for v in view.votes}
            assert by_voter[members[1]].member_of == coops[1] and by_voter[members[1]].counted
            assert by_voter[members[2]].member_of == coops[2] and by_voter[members[2]].counted

        clock.jump(DAY_US + 2 * SETTLE_US)  # past the deadline and the settling time
        await wait_until(lambda: all(g.proposal(proposal.hash).status == "ratified" for g in gov))
        await net.converge()
        ratifications = [
            Ratification.from_value(r.entry_value())
            for r in net.nodes[1].store.records_of_type(RATIFICATION)
            if r.action.author == coops[0]
        ]
        named = next(r for r in ratifications if r.proposal == proposal.hash)
        held_votes = {ActionHash(v.raw) for v in named.votes}
        assert voted.hash in held_votes and len(held_votes) == 2
        for node in net.nodes:
            assert node.rules_now().params.member_limits.credit == 2_000
        paid = await net.pay("coop2-m0", "coop1-m0", 1_000)  # under the amended limit
        assert paid.committed, paid.reason
