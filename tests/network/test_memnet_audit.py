"""``Node.audit`` (``conode audit AGENT``) on a sharded network, in memory under trio's
``MockClock``: an authority of a payer that holds none of its payee's chain audits the payer
long after it took the payments in, when the dependencies it fetched then are forgotten, and
finds the chain valid: what judging a payment needs (the payee's previous credit, a record of
the payee's chain) is fetched again from the payee's authorities, as ingest's ``must_get``
does, not reported missing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import trio
import trio.testing

from conode.node import Node
from conode.testing import FAST, TestNetwork, holders_of, ring_of, trio_clock, wait_until

KEEP = dataclasses.replace(FAST, dependency_keep_us=30_000_000)
"""Dependencies kept 30 s, not 10 minutes: the same forgetting, less simulated time to run."""


def _held_where_they_should_be(net: TestNetwork) -> bool:
    """Every agent's chain is held, as its home node holds it, by every node that must hold it."""
    ring = ring_of(net.nodes)
    return all(
        node.store.head(key) == net.home[name].store.head(key)
        for name, key in net.agents.items()
        for node in holders_of(net, key, ring)
    )


def _payer_authority(net: TestNetwork) -> tuple[str, str, Node]:
    """Two members on different nodes and a node that must hold the first's chain and not the
    second's, hosting neither."""
    ring = ring_of(net.nodes)
    names = [n for n in net.agents if n.endswith("-m0")]
    for payer in names:
        for payee in names:
            homes = {net.home[payer], net.home[payee]}
            if len(homes) == 1:
                continue
            payee_holders = holders_of(net, net.agents[payee], ring)
            for node in holders_of(net, net.agents[payer], ring):
                if node not in homes and node not in payee_holders:
                    return payer, payee, node
    raise AssertionError("no such node on this ring")


async def test_an_authority_audits_a_payer_valid_fetching_again_the_payees_records_it_forgot(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with TestNetwork.start(
        tmp_path, nodes=10, members=1, clock=trio_clock, settings=KEEP
    ) as net:
        await net.converge()
        payer, payee, auditor = _payer_authority(net)
        # the payee's own record of the first payment is the second's dependency (the payee's
        # previous credit): on the payee's chain, which the auditor does not hold
        for frm, to, amount in ((payee, payer, 10), (payer, payee, 40)):
            paid = await net.pay(frm, to, amount)
            assert paid.committed, paid.reason
        await wait_until(lambda: _held_where_they_should_be(net))
        payer_key, payee_key = net.agents[payer], net.agents[payee]
        payee_first = net.home[payee].store.hash_at(payee_key, 1)
        assert payee_first is not None
        await trio.sleep(2 * KEEP.dependency_keep_us / 1e6)
        assert auditor.store.head(payee_key) is None
        assert auditor.store.get(payee_first) is None  # forgotten, or never held

        report = await auditor.audit(payer_key)
        assert report.violations == [], report.violations
        assert report.missing == []
        assert report.records == net.home[payer].store.count(payer_key) == 3
        assert report.balances[payer_key] == 10 - 40
