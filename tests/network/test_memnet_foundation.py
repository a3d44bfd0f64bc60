"""The Foundation on real nodes (in-memory network): proposed, voted, ratified and paid by the
nodes' own duties; reported on; and a Byzantine steward refused and warranted by its peers.

Three co-ops, one node each; node 0 is the steward (it hosts the Foundation
key the charter names). The nodes' clock can jump ahead (a day of voting)
without a day of trio timers, as in ``test_memnet_governance.py``.
"""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing
from netkit import JumpClock, wait_until

from conode.apps.foundation import REPORT, app
from conode.testing.network import TestNetwork
from conode.validation.activity import step
from conode.validation.entries import Payment
from conode.validation.governance import RATIFICATION
from conode.validation.payment import commit_payment, make_body, sign_body
from conode.validation.verdict import VALID, Invalid

DAY_US = 86_400_000_000
SETTLE_US = 60_000_000


async def test_a_disbursement_is_voted_ratified_paid_and_reported_on_with_no_hand_on_the_wheel(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    clock = JumpClock()
    async with TestNetwork.start(
        tmp_path,
        nodes=3,
        members=1,
        clock=clock,
        foundation=True,
        apps=("foundation",),
        governance=True,
        settle_us=SETTLE_US,
    ) as net:
        steward = net.home["foundation"]
        assert steward is net.nodes[0] and net.charter.foundation == net.agents["foundation"]
        funded = await net.pay("coop0", "foundation", 2_000)  # anyone may pay the Foundation
        assert funded.committed, funded.reason

        coop1, coop2 = net.agents["coop1"], net.agents["coop2"]
        proposal = await net.governance[1].disburse(
            coop1, coop2, 500, "solar panels for the bakery"
        )
        await net.converge()
        for i in range(3):
            await net.governance[i].vote(net.agents[f"coop{i}"], proposal.hash, "yes")
        await net.converge()
        assert all(g.proposal(proposal.hash).status == "open" for g in net.governance)
        assert all(g.proposal(proposal.hash).tally.yes == 3 for g in net.governance)

        clock.jump(DAY_US + 2 * SETTLE_US)  # past the deadline and the settling time
        # coop1's node ratifies (it proposed); the steward pays; nobody calls either
        await wait_until(lambda: all(g.proposal(proposal.hash).executed for g in net.governance))
        await net.converge()
        ratifications = list(net.nodes[0].store.records_of_type(RATIFICATION))
        assert [r.action.author for r in ratifications] == [
            coop1
        ]  # one ratification, by the proposer
        for node in net.nodes:
            assert node.store.activity(net.agents["foundation"]).balance == 1_500
            assert node.store.activity(coop2).balance == 500
            assert node.rules_head() == ratifications[0].hash

        # coop2 says what it did with the money, on its own node
        coop2_node = net.home["coop2"]
        (payment,) = [
            r for r in coop2_node.store.records(coop2) if r.action.entry_type == "credit/payment"
        ]
        entry = app.entry(REPORT, payment=payment.hash, text="12 panels installed", used=480)
        entry["rules"] = coop2_node.rules_head().to_bytes()  # type: ignore[union-attr]
        await coop2_node.create_entry(coop2, REPORT, entry)
        await net.converge()
        for governance in net.governance:
            view = governance.proposal(proposal.hash)
            assert [(r.text, r.used) for r in view.reports] == [("12 panels installed", 480)]
            assert governance.foundation()["balance"] == 1_500

        # the duties keep running: nothing is ratified or paid twice
        await trio.sleep(30)
        assert len(list(net.nodes[2].store.records_of_type(RATIFICATION))) == 1
        assert all(n.store.activity(coop2).balance == 500 for n in net.nodes)


async def test_a_byzantine_steward_paying_an_unratified_disbursement_is_refused_and_warranted(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    clock = JumpClock()
    async with TestNetwork.start(
        tmp_path, nodes=3, members=0, clock=clock, foundation=True
    ) as net:
        funded = await net.pay("coop1", "foundation", 1_000)
        assert funded.committed, funded.reason
        steward, fund, coop0 = net.nodes[0], net.agents["foundation"], net.agents["coop0"]
        # coop0 (hosted with the Foundation on the steward) proposes paying itself; nobody votes
        proposal = await net.governance[0].disburse(coop0, coop0, 800, "nothing much")
        await net.converge()

        # the steward signs for both and writes the payment past its own node's checks
        signers = [steward.agents[a].signer for a in (fund, coop0)]
        body = make_body(
            net.charter.network_id,
            steward.store.activity(fund),
            steward.store.activity(coop0),
            800,
            timestamp=steward.clock(),
            rules=steward.rules_head(),
            ref=proposal.hash,
        )
        payment = Payment(body, *(sign_body(s, body) for s in signers))
        records = [commit_payment(s, payment) for s in signers]
        for agent, record in zip((fund, coop0), records, strict=True):
            state, offence = step(steward.store.activity(agent), record)
            assert offence == VALID  # the chain step is fine: it is the spending rule it breaks
            steward.store.append([record], activities={agent: state}, publish=True)

        honest = net.nodes[1:]
        await wait_until(lambda: all(n.store.warranted(fund) for n in honest))
        for node in honest:
            assert all(node.store.get(r.hash) is None for r in records)  # refused
            verdict = node.engine.validate_record(records[0], node.store)
            assert isinstance(verdict, Invalid) and verdict.rule == "foundation", verdict
            assert node.store.activity(fund).balance == 1_000
            assert node.store.activity(coop0).balance == 0
            assert node.store.warranted(coop0)  # it countersigned the offence
        refused = await net.pay("coop1", "foundation", 10)  # honest nodes no longer deal with it
        assert not refused.committed and "warranted" in refused.reason


async def test_an_honest_steward_refuses_to_pay_what_was_not_ratified(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    clock = JumpClock()
    async with TestNetwork.start(
        tmp_path, nodes=3, members=0, clock=clock, foundation=True
    ) as net:
        funded = await net.pay("coop1", "foundation", 1_000)
        assert funded.committed, funded.reason
        coop2 = net.agents["coop2"]
        proposal = await net.governance[1].disburse(net.agents["coop1"], coop2, 300, "a van")
        await net.converge()
        # the steward's operator pays by hand (``conode pay --from foundation``): not ratified
        refused = await net.home["foundation"].pay(
            net.agents["foundation"], coop2, 300, ref=proposal.hash
        )
        assert not refused.committed and "foundation" in refused.reason, refused
        await trio.sleep(10)
        await net.converge()
        for node in net.nodes:
            assert node.store.activity(net.agents["foundation"]).balance == 1_000
            assert node.store.activity(coop2).balance == 0
            assert not node.store.warranted(net.agents["foundation"])
            assert node.status()["locked_chains"] == 0 and node.status()["sessions"] == 0


async def test_a_paid_disbursement_shows_executed_on_its_coops_node_that_does_not_hold_the_foundation(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """More nodes than R + 1: the co-op paid holds the Foundation's payment on its own chain (the
    payee's copy), not the Foundation's chain, and its node's view still says the disbursement
    was executed (as `conode foundation show` on the user guide's greenside must)."""
    clock = JumpClock()
    async with TestNetwork.start(
        tmp_path, nodes=6, members=0, clock=clock, foundation=True, governance=True,
        settle_us=SETTLE_US,
    ) as net:  # fmt: skip
        await net.converge()
        fund, steward = net.agents["foundation"], net.home["foundation"]
        funded = await net.pay("coop0", "foundation", 2_000)
        assert funded.committed, funded.reason
        coops = [f"coop{i}" for i in range(6)]
        payee = next(c for c in coops if not net.home[c].placement.holds_chain(fund))
        node = net.home[payee]
        governance = net.governance[net.nodes.index(node)]
        key = net.agents[payee]
        proposal = await governance.disburse(key, key, 500, "seed trays")
        await wait_until(lambda: all(n.store.get(proposal.hash) for n in net.nodes))
        for i, coop in enumerate(coops):
            await net.governance[i].vote(net.agents[coop], proposal.hash, "yes")
        await net.converge()
        clock.jump(DAY_US + 2 * SETTLE_US)  # past the deadline and the settling time
        await wait_until(lambda: proposal.hash in steward.store.activity(fund).bills_paid)
        await net.converge()
        assert node.store.head(fund) is None  # it holds the Foundation's chain neither whole...
        assert node.store.activity(key).balance == 500  # ...but it was paid, on its own chain
        await wait_until(lambda: governance.proposal(proposal.hash).executed, timeout=30)
        for i, other in enumerate(net.nodes):
            view = net.governance[i].proposal(proposal.hash)
            assert view.status == "ratified"
            if other.store.head(fund) is not None or other.store.head(key) is not None:
                assert view.executed, i  # every node holding either chain sees it paid
