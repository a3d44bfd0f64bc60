"""What records ahead of their chain can make a node keep (issue 12, item 6), on the in-memory network.

- A member whose genesis is held parks at most ``PER_AUTHOR`` records
  ahead (1 500 sent: every one was kept before).
- Authors whose genesis is not held share a pool of ``STRANGERS`` records,
  ``STRANGER_PER_AUTHOR`` each, dropped after ``STRANGER_EXPIRY_US``.
- The gap record drains the parked records in batches, letting the event
  loop run after each one (before: all in one synchronous step, each step
  reading every parked record again: 1 500 took 11 s and 2.7 GB), and the
  node keeps paying.

The records are real, signed by the member's own key (the Byzantine
toolkit's ``signer_of``); node1 sends them, as a peer would publish them.
"""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing
from netkit import push, signer_of, trio_clock

from conode.chain import ActionKind, ChainHead, Record, author_record
from conode.crypto import Signer
from conode.hashes import ActionHash, AgentKey
from conode.node import Node
from conode.node.pending_quota import (
    PER_AUTHOR,
    STRANGER_EXPIRY_US,
    STRANGER_PER_AUTHOR,
    STRANGERS,
)
from conode.testing.network import TestNetwork
from conode.validation.entries import BILL, Bill

SENT = 1_500


def bills_ahead(net: TestNetwork, name: str, holder: Node, payer: str, count: int) -> list[Record]:
    """``count`` bills by ``name``, the next ``count`` records of its chain as ``holder`` holds it."""
    signer = signer_of(net, name)
    head = holder.store.head(AgentKey(signer.public_key))
    genesis = holder.store.activity(net.agents[payer]).genesis
    assert genesis is not None and head is not None
    now = holder.clock()
    out = []
    for i in range(count):
        bill = Bill(net.agents[payer], genesis, 1, f"bill {i}", now + 3_600_000_000, None)
        record = author_record(
            signer, head, kind=ActionKind.CREATE, timestamp=now + i,
            entry=bill.to_value(), entry_type=BILL,
        )  # fmt: skip
        out.append(record)
        head = ChainHead.after(record)
    return out


def strangers_records(signer: Signer, count: int, now: int) -> list[Record]:
    """Records of a chain whose genesis nobody holds, from seq 1 on (a made-up prev)."""
    head = ChainHead(AgentKey(signer.public_key), 0, ActionHash(bytes(32)), now)
    out = []
    for i in range(count):
        record = author_record(
            signer, head, kind=ActionKind.CREATE, timestamp=now + i, entry={"n": i},
            entry_type="made-up/note",
        )  # fmt: skip
        out.append(record)
        head = ChainHead.after(record)
    return out


async def send(sender: Node, node: Node, records: list[Record]) -> None:
    for start in range(0, len(records), 100):
        await push(sender.transport, node, *records[start : start + 100], timeout=600)


async def test_a_member_parks_at_most_per_author_records_ahead_of_its_chain(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with TestNetwork.start(tmp_path, nodes=2, members=2, clock=trio_clock) as net:
        a, b = net.nodes
        await net.converge()
        chain = bills_ahead(net, "coop1-m1", b, "coop0-m0", SENT + 1)
        await send(b, a, chain[1:])  # all ahead: the first is the gap
        assert a.store.pending_count() == PER_AUTHOR  # before: 1 500


async def test_authors_without_a_genesis_share_a_small_pool_that_expires(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with TestNetwork.start(tmp_path, nodes=2, members=1, clock=trio_clock) as net:
        a, b = net.nodes
        await net.converge()  # placed: of two nodes with R = 3 each holds every location
        first = strangers_records(Signer.generate(), 100, a.clock())
        await send(b, a, first)
        assert a.store.pending_count() == STRANGER_PER_AUTHOR
        for _ in range(2 * STRANGERS // STRANGER_PER_AUTHOR):
            await send(b, a, strangers_records(Signer.generate(), STRANGER_PER_AUTHOR, a.clock()))
        assert a.store.pending_count() == STRANGERS
        await trio.sleep(STRANGER_EXPIRY_US / 1e6 + 61)
        await send(b, a, strangers_records(Signer.generate(), 1, a.clock()))
        assert a.store.pending_count() == 1  # the old ones expired; the new one kept


async def test_the_gap_record_drains_parked_records_in_batches_and_the_node_keeps_paying(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with TestNetwork.start(tmp_path, nodes=2, members=2, clock=trio_clock) as net:
        a, b = net.nodes
        await net.converge()
        author = net.agents["coop1-m1"]
        chain = bills_ahead(net, "coop1-m1", b, "coop0-m0", PER_AUTHOR + 1)
        start = a.store.head(author)
        assert start is not None
        await send(b, a, chain[1:])
        assert a.store.pending_count() == PER_AUTHOR
        ticks = 0
        draining = True

        async def tick() -> None:
            nonlocal ticks
            while draining:
                ticks += 1
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(tick)
            await a.ingest(chain[0], b.transport.peer_id)
            draining = False
        head = a.store.head(author)
        assert head is not None and head.seq == start.seq + PER_AUTHOR + 1
        assert a.store.pending_count() == 0
        assert ticks >= PER_AUTHOR // 2, ticks  # the loop ran while they drained
        result = await net.pay("coop0-m0", "coop1-m0", 3)
        assert result.committed, result.reason
