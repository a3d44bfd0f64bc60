"""A decided commit that the rules cannot pass here yet never leaves half a payment.

The judge one party's node admits records with is made to answer ``Missing`` for
that party's own payment record (as if a dependency could not be fetched): the payer then
aborts from what it persisted, the payee holds its lock and retries until the
record passes; either way both chains end the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from conode.chain import Record
from conode.node import Node
from conode.testing.network import TestNetwork
from conode.validation.entries import PAYMENT
from conode.validation.verdict import Missing, Verdict

PAYER, PAYEE = "coop0-m0", "coop1-m0"


def refuse_own_payments(node: Node, agent: Any, times: int) -> list[int]:
    """Make the judge ``node`` admits records with answer Missing for ``agent``'s payment records
    ``times`` times."""
    original = node.ingestion.judge
    refused = [0]

    class Refusing:
        """The node's judge, but for those records."""

        def __getattr__(self, name: str) -> Any:
            return getattr(original, name)

        def validate_record(self, record: Record, ctx: Any, **kwargs: Any) -> Verdict:
            if (
                record.action.author == agent
                and record.action.entry_type == PAYMENT
                and refused[0] < times
            ):
                refused[0] += 1
                return Missing((record.hash,))
            return original.validate_record(record, ctx, **kwargs)

    node.ingestion.judge = Refusing()  # type: ignore[assignment]
    return refused


def payments_on(node: Node, agent: Any) -> int:
    return sum(1 for r in node.store.records(agent) if r.action.entry_type == PAYMENT)


async def test_a_payer_that_cannot_commit_aborts_and_the_payee_commits_nothing(tmp_path: Path) -> None:
    async with TestNetwork.start(tmp_path, nodes=2, members=1) as net:
        payer_node, payee_node = net.home[PAYER], net.home[PAYEE]
        refuse_own_payments(payer_node, net.agents[PAYER], times=1_000)
        result = await net.pay(PAYER, PAYEE, 5)
        assert not result.committed
        with trio.fail_after(10):
            while payee_node.locks:
                await trio.sleep(0.05)
        assert payments_on(payer_node, net.agents[PAYER]) == 0
        assert payments_on(payee_node, net.agents[PAYEE]) == 0
        assert (net.balance(PAYER), net.balance(PAYEE)) == (0, 0)


async def test_a_payee_that_cannot_commit_yet_keeps_its_lock_and_commits_later(tmp_path: Path) -> None:
    async with TestNetwork.start(tmp_path, nodes=2, members=1) as net:
        payee_node = net.home[PAYEE]
        refused = refuse_own_payments(payee_node, net.agents[PAYEE], times=4)
        result = await net.pay(PAYER, PAYEE, 5)
        assert result.committed, result.reason
        with trio.fail_after(20):
            while payments_on(payee_node, net.agents[PAYEE]) == 0:
                assert payee_node.locks, "the payee let go of its chain before it committed"
                await trio.sleep(0.02)
        assert refused[0] == 4
        assert not payee_node.locks
        assert (net.balance(PAYER), net.balance(PAYEE)) == (-5, 5)
