"""Forks, Byzantine agents and hostile peers on the in-memory network.

A "Byzantine" agent is made by using its hosted signer directly: it signs
records outside the rules, and a rogue transport on the same ``MemoryNetwork``
pushes them to honest nodes with the ``publish`` protocol (or calls a
handler straight). Honest nodes must refuse them, warrant the author when it
really signed an offence (and never an agent that did not), spread the
warrant, refuse the warranted agent from then on, survive garbage, and keep
serving honest agents, whose payments go on succeeding. The toolkit is in
``netkit.py``; ``test_libp2p_byzantine.py`` uses it on real libp2p.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import msgpack
import pytest
import trio
import trio.testing
from netkit import (
    ask,
    assert_audit_clean,
    assert_nobody_else_warranted,
    assert_warranted_everywhere,
    bill_record,
    countersigned,
    honest_payments_still_work,
    network_with_rogue,
    push,
    signer_of,
    trio_clock,
    wait_until,
    warrants_against,
)

from conode import encoding
from conode.chain import Action, ActionKind, Record, author_record
from conode.dht import wire
from conode.dht.transport import MAX_MESSAGE, MAX_STREAMS_PER_PEER, RATE_BURST, PeerId, protocol_id
from conode.errors import NetworkError, RemoteProtocolError
from conode.hashes import ActionHash, AgentKey
from conode.testing.network import TestNetwork, derive_signer
from conode.validation import countersign as cs
from conode.validation.payment import offer_payment
from conode.validation.warrants import Warrant

# -- (a) forks -----------------------------------------------------------------------------------


async def test_a_double_spend_at_a_used_seq_is_warranted_as_a_fork_everywhere(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with network_with_rogue(tmp_path, nodes=3, members=2) as (net, rogue):
        x, y = net.agents["coop2-m0"], net.agents["coop2-m1"]
        home = net.home["coop2-m0"]
        x_before, y_before = home.store.activity(x), home.store.activity(y)
        assert (await net.pay("coop2-m0", "coop0-m0", 100)).committed
        await net.converge()
        spent = home.store.head(x)
        assert spent is not None
        # X spends the same position again, to its accomplice Y
        again, _accomplice = countersigned(
            net, "coop2-m0", "coop2-m1", 100, at=(x_before, y_before)
        )
        assert again.action.seq == spent.seq and again.hash != spent.hash
        for node in net.nodes[:2]:
            assert await push(rogue, node, again) == {again.hash.to_bytes(): False}
        await wait_until(lambda: all(node.store.warranted(x) for node in net.nodes))
        assert_warranted_everywhere(net.nodes, x, "fork")
        evidence = warrants_against(net.nodes[1], x)[0].evidence
        assert {r.hash for r in evidence} == {spent.hash, again.hash}
        assert_nobody_else_warranted(net, x)
        for node in net.nodes:  # the first spend stands, the second is nowhere
            assert node.store.hash_at(x, spent.seq) == spent.hash
        # from now on X is refused: its records, payments to it, payments from it
        nxt = bill_record(net, signer_of(net, "coop2-m0"), home, "coop0-m0", "after the fork")
        assert await push(rogue, net.nodes[0], nxt) == {nxt.hash.to_bytes(): False}
        assert net.nodes[0].store.get(nxt.hash) is None
        to_x = await net.pay("coop0-m0", "coop2-m0", 5)
        assert not to_x.committed and "warranted" in to_x.reason
        from_x = await net.pay("coop2-m0", "coop1-m0", 5)
        assert not from_x.committed
        await honest_payments_still_work(net, ("coop0-m0", "coop1-m0"), ("coop2-m1", "coop1-m1"))
        assert_audit_clean(net)


async def test_two_branches_sent_to_different_nodes_are_found_by_gossip_and_warranted(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with network_with_rogue(tmp_path, nodes=3, members=1) as (net, rogue):
        x = net.agents["coop2-m0"]
        signer = signer_of(net, "coop2-m0")
        left = bill_record(net, signer, net.nodes[0], "coop0-m0", "left")
        right = bill_record(net, signer, net.nodes[0], "coop1-m0", "right")
        assert left.action.seq == right.action.seq
        async with trio.open_nursery() as both:
            both.start_soon(push, rogue, net.nodes[0], left)
            both.start_soon(push, rogue, net.nodes[1], right)
        # each node took the branch it saw first; gossip brings the other and proves the fork
        await wait_until(lambda: all(node.store.warranted(x) for node in net.nodes))
        assert_warranted_everywhere(net.nodes, x, "fork")
        assert_nobody_else_warranted(net, x)
        assert net.nodes[0].store.hash_at(x, left.action.seq) == left.hash
        assert net.nodes[1].store.hash_at(x, right.action.seq) == right.hash
        to_x = await net.pay("coop0-m0", "coop2-m0", 5)
        assert not to_x.committed and "warranted" in to_x.reason
        await honest_payments_still_work(net, ("coop0-m0", "coop1-m0"), ("coop1", "coop0-m0"))


async def test_an_offer_from_a_position_already_spent_is_declined(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The payee's node holds the payer's chain past the offered seq: it must not sign."""
    async with network_with_rogue(tmp_path, nodes=3, members=1) as (net, rogue):
        x, victim = net.agents["coop2-m0"], net.agents["coop0-m0"]
        x_before = net.home["coop2-m0"].store.activity(x)
        assert (await net.pay("coop2-m0", "coop1-m0", 200)).committed
        await net.converge()
        offer = offer_payment(net.charter.network_id, x_before, victim, 200, timestamp=trio_clock())
        session = os.urandom(cs.SESSION_ID_SIZE)
        message = cs.Offer(cs.SessionId(session), offer.to_bytes(), trio_clock() + 3_000_000)
        reply = await ask(
            rogue,
            net.home["coop0-m0"],
            wire.COUNTERSIGN,
            {"from": x.to_bytes(), "to": victim.to_bytes(), "msg": cs.encode_message(message)},
        )
        answer = cs.decode_message(reply["msg"])
        assert isinstance(answer, cs.Decline), answer
        assert net.home["coop0-m0"].status()["locked_chains"] == 0
        await honest_payments_still_work(net, ("coop0-m0", "coop1-m0"))


# -- (b), (c), (d) payments outside the rules ------------------------------------------------------


async def test_a_payment_with_a_forged_countersignature_is_refused_and_warranted(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with network_with_rogue(tmp_path, nodes=3, members=1) as (net, rogue):
        x, honest = net.agents["coop2-m0"], net.agents["coop0-m0"]
        view = net.nodes[1].store
        # X claims that the honest agent paid it 300, "signing" for the payer with its own key
        _payer_side, claim = countersigned(
            net,
            "coop0-m0",
            "coop2-m0",
            300,
            at=(view.activity(honest), view.activity(x)),
            forged_by="coop2-m0",
        )
        for node in net.nodes[:2]:
            assert await push(rogue, node, claim) == {claim.hash.to_bytes(): False}
        await wait_until(lambda: all(node.store.warranted(x) for node in net.nodes))
        assert_warranted_everywhere(net.nodes, x, "invalid")
        assert_nobody_else_warranted(net, x)
        for node in net.nodes:
            assert node.store.get(claim.hash) is None
            assert node.store.activity(honest).balance == 0
            assert node.store.activity(x).balance == 0
        await honest_payments_still_work(net)
        await net.converge()
        assert_audit_clean(net)


async def test_an_over_limit_payment_signed_by_two_colluders_warrants_both(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with network_with_rogue(tmp_path, nodes=3, members=2) as (net, rogue):
        x, y = net.agents["coop1-m0"], net.agents["coop1-m1"]
        view = net.nodes[0].store
        x_side, y_side = countersigned(  # the member limit is 500
            net, "coop1-m0", "coop1-m1", 5_000, at=(view.activity(x), view.activity(y))
        )
        for node in (net.nodes[0], net.nodes[2]):
            receipts = await push(rogue, node, x_side, y_side)
            assert receipts == {x_side.hash.to_bytes(): False, y_side.hash.to_bytes(): False}
        await wait_until(
            lambda: all(node.store.warranted(x) and node.store.warranted(y) for node in net.nodes)
        )
        assert_warranted_everywhere(net.nodes, x, "invalid")
        assert_warranted_everywhere(net.nodes, y, "invalid")
        assert_nobody_else_warranted(net, x, y)
        for node in net.nodes:
            assert node.store.get(x_side.hash) is None and node.store.get(y_side.hash) is None
        assert net.balance("coop1-m0") == net.balance("coop1-m1") == 0
        refused = await net.pay("coop0-m0", "coop1-m1", 5)
        assert not refused.committed and "warranted" in refused.reason
        await honest_payments_still_work(net, ("coop0-m0", "coop2-m1"), ("coop1", "coop2"))


async def test_a_replayed_payment_entry_at_a_new_position_is_refused_and_warranted(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with network_with_rogue(tmp_path, nodes=3, members=1) as (net, rogue):
        x, payee = net.agents["coop1-m0"], net.agents["coop2-m0"]
        assert (await net.pay("coop2-m0", "coop1-m0", 40)).committed  # X is paid 40
        await net.converge()
        home = net.home["coop1-m0"]
        paid = home.store.head(x)
        assert paid is not None
        old = home.store.get(paid.hash)
        assert old is not None and old.entry is not None
        # a genuine copy of any held record is harmless
        for node in net.nodes:
            assert await push(rogue, node, old) == {old.hash.to_bytes(): True}
        # X commits the same payment entry again, one seq on: paid twice for one payment
        signer = signer_of(net, "coop1-m0")
        action = author_record(
            signer,
            paid,
            kind=ActionKind.CREATE,
            timestamp=trio_clock(),
            entry=encoding.decode(old.entry),
            entry_type=old.action.entry_type,
        )
        assert action.entry == old.entry and action.action.seq == paid.seq + 1
        for node in (net.nodes[0], net.nodes[2]):
            assert await push(rogue, node, action) == {action.hash.to_bytes(): False}
        await wait_until(lambda: all(node.store.warranted(x) for node in net.nodes))
        assert_nobody_else_warranted(net, x)
        for node in net.nodes:
            assert node.store.get(action.hash) is None
            assert node.store.activity(x).balance == 40
            assert node.store.activity(payee).balance == -40
        await honest_payments_still_work(net, ("coop0-m0", "coop2-m0"))
        assert_audit_clean(net)


async def test_a_relay_that_swaps_a_records_entry_or_signature_gets_nobody_warranted(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with network_with_rogue(tmp_path, nodes=3, members=1) as (net, rogue):
        honest = net.agents["coop0-m0"]
        genuine = bill_record(net, signer_of(net, "coop0-m0"), net.nodes[1], "coop1-m0", "genuine")
        swapped = Record.make(genuine.action, genuine.signature, encoding.encode({"evil": 1}))
        stolen_seat = author_record(  # the honest agent's next seq, signed by someone else
            derive_signer("rogue", "key"),
            None,
            kind=ActionKind.GENESIS,
            timestamp=trio_clock(),
            entry={"x": 1},
        )
        forged = Record.make(genuine.action, stolen_seat.signature, genuine.entry)
        for node in net.nodes[1:]:
            for bad in (swapped, forged):
                assert await push(rogue, node, bad) == {bad.hash.to_bytes(): False}
        await trio.sleep(2)
        for node in net.nodes:
            assert not node.store.warranted(honest)
            assert node.store.warrants() == []
        # the genuine record is still welcome, and its author keeps trading
        for node in net.nodes:
            assert await push(rogue, node, genuine) == {genuine.hash.to_bytes(): True}
        await honest_payments_still_work(net)


async def test_a_forged_warrant_is_refused_and_blocks_nobody(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with network_with_rogue(tmp_path, nodes=3, members=1) as (net, rogue):
        honest = net.agents["coop0-m0"]
        genesis = net.nodes[1].store.get_genesis(honest)
        assert genesis is not None
        liar = derive_signer("rogue", "issuer")
        bogus = [
            Warrant.issue(liar, "fork", honest, (genesis, genesis), trio_clock()),
            Warrant.issue(liar, "invalid", honest, (genesis,), trio_clock()),
            Warrant.issue(liar, "activity", honest, (genesis,), trio_clock()),
        ]
        for warrant in bogus:
            await ask(rogue, net.nodes[1], wire.WARRANT, {"warrant": warrant.to_bytes()})
        unsigned = Warrant("fork", honest, (genesis,), AgentKey(liar.public_key), 0, b"\x00" * 64)
        await ask(rogue, net.nodes[2], wire.WARRANT, {"warrant": unsigned.to_bytes()})
        await trio.sleep(1)
        assert all(node.store.warrants() == [] for node in net.nodes)
        await honest_payments_still_work(net)


async def test_a_warrant_framing_an_honest_agent_with_a_swapped_entry_is_refused(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with TestNetwork.start(tmp_path, nodes=3, members=1, clock=trio_clock) as net:
        await net.converge()
        honest = net.agents["coop0-m0"]
        genuine = bill_record(net, signer_of(net, "coop0-m0"), net.nodes[1], "coop1-m0", "g")
        swapped = Record.make(genuine.action, genuine.signature, encoding.encode({"evil": 1}))
        chain = tuple(net.nodes[1].store.records(honest))
        framing = Warrant.issue(
            derive_signer("rogue", "issuer"), "activity", honest, (*chain, swapped), trio_clock()
        )
        node = net.nodes[1]
        await node.receive_warrant(framing.to_bytes(), PeerId("rogue"))
        assert not node.store.warranted(honest)


# -- (e) garbage ---------------------------------------------------------------------------------

HANDLERS = [
    wire.HELLO,
    wire.PUBLISH,
    wire.FETCH,
    wire.CHAIN,
    wire.HEADS,
    wire.COUNTERSIGN,
    wire.WARRANT,
]


def _junk(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(11 if depth < 2 else 8)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, -1, 1, 2**63 - 1, 2**64 - 1, -(2**63), rng.randrange(-1000, 1000)])
    if choice == 3:
        return rng.random() * 1e6
    if choice == 4:
        return rng.randbytes(rng.choice([0, 1, 31, 32, 33, 64, 65, 200]))
    if choice == 5:
        return bytes([0x01]) + rng.randbytes(32)  # something shaped like a typed hash
    if choice == 6:
        return "".join(rng.choice("ab/é\x00") for _ in range(rng.randrange(6)))
    if choice == 7:
        return rng.choice(["/memory/node9", "/memory/rogue", "/ip4/1.2.3.4/tcp/1"])
    if choice in (8, 9):
        return [_junk(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(["a", "records", "heads"]): _junk(rng, depth + 1) for _ in range(2)}


_KEYS = {
    wire.HELLO: ["node", "agents", "peers", "hosts", "addrs"],
    wire.PUBLISH: ["records"],
    wire.FETCH: ["hashes"],
    wire.CHAIN: ["author", "from", "limit"],
    wire.HEADS: ["heads", "warrants"],
    wire.COUNTERSIGN: ["from", "to", "msg"],
    wire.WARRANT: ["warrant"],
}


def junk_envelopes(handler: str, count: int, seed: int) -> list[bytes]:
    """Fixed-shape garbage: raw bytes, non-maps, and maps with the right keys and wrong values."""
    rng = random.Random(seed)
    out = [
        b"",
        b"\xc1",
        b"\x81",
        b"\xdd\xff\xff\xff\xff",
        rng.randbytes(100),
        msgpack.packb([1, 2]),
    ]
    for _ in range(count):
        keys = [k for k in _KEYS[handler] if rng.random() < 0.85]
        out.append(msgpack.packb({k: _junk(rng) for k in keys}, use_bin_type=True))
    return out


async def test_garbage_sent_straight_to_every_handler_is_refused_without_harm(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with TestNetwork.start(tmp_path, nodes=2, members=1, clock=trio_clock) as net:
        await net.converge()
        node = net.nodes[0]
        before = node.heads_digest()
        peer = PeerId("rogue")
        for index, name in enumerate(HANDLERS):
            handler = node.handlers()[name]
            for payload in junk_envelopes(name, 150, seed=index):
                try:
                    answer = await handler(peer, payload)
                except RemoteProtocolError:
                    continue
                assert isinstance(answer, bytes)
                wire.loads(answer, set())  # whatever it answers is a well-formed envelope
        await trio.sleep(3)  # anything the garbage started (fetches from "rogue") has ended
        assert node.heads_digest() == before
        assert node.store.warrants() == []
        await honest_payments_still_work(net, ("coop0-m0", "coop1-m0"), ("coop1-m0", "coop0"))


async def test_oversized_and_malformed_frames_through_the_transport_get_network_errors(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with network_with_rogue(tmp_path, nodes=2, members=1) as (net, rogue):
        node = net.nodes[0]
        target = node.transport.peer_id
        for protocol in wire.PROTOCOLS:
            pid = protocol_id(node.network_short, protocol)
            with pytest.raises(NetworkError):
                await rogue.request(target, pid, b"\x00" * (MAX_MESSAGE + 1), timeout=1)
            for junk in (b"\xc1", msgpack.packb([1]), wire.dumps({"nothing": 1})):
                with pytest.raises(NetworkError):
                    await rogue.request(target, pid, junk, timeout=1)
        with pytest.raises(NetworkError):  # a protocol the node does not speak
            await rogue.request(
                target, "/conode/ffff/publish/1", wire.dumps({"records": []}), timeout=1
            )
        # and the wire decoder itself refuses a frame over the limit
        with pytest.raises(RemoteProtocolError):
            wire.loads(b"\x00" * (MAX_MESSAGE + 1), set())
        assert node.transport.online
        await honest_payments_still_work(net, ("coop0-m0", "coop1-m0"), ("coop1-m0", "coop0-m0"))


# -- (f) floods ----------------------------------------------------------------------------------


async def test_a_flood_from_one_peer_is_cut_by_its_rate_limit_and_others_are_still_served(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with network_with_rogue(tmp_path, nodes=3, members=1) as (net, rogue):
        node = net.nodes[0]
        fetch = protocol_id(node.network_short, wire.FETCH)

        async def wave(size: int) -> tuple[int, int]:
            """``size`` requests at once (fewer than the in-flight cap); (served, refused)."""
            counts = [0, 0]

            async def one() -> None:
                try:
                    await rogue.request(
                        node.transport.peer_id, fetch, wire.dumps({"hashes": []}), timeout=1
                    )
                    counts[0] += 1
                except NetworkError:
                    counts[1] += 1

            async with trio.open_nursery() as requests:
                for _ in range(size):
                    requests.start_soon(one)
            return counts[0], counts[1]

        # the mock clock stands still while requests are served at once: a burst, no refill
        served = 0
        for _ in range(int(RATE_BURST) // 20):
            served += (await wave(20))[0]
        assert served == RATE_BURST
        results: list[tuple[int, int]] = []

        async def flood() -> None:
            results.append(await wave(20))

        async with trio.open_nursery() as both:
            both.start_soon(flood)
            # meanwhile another peer is served as usual
            other = net.nodes[1]
            timeout = other.settings.request_timeout
            reply = await ask(other.transport, node, wire.FETCH, {"hashes": []}, timeout)
            assert reply == {"records": []}
        assert results == [(0, 20)]
        # the bucket refills with time: the same peer is served again after a pause
        await trio.sleep(1)
        assert await wave(20) == (20, 0)
        await honest_payments_still_work(net)


async def test_a_peer_cannot_hold_more_than_its_share_of_requests_in_flight(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # the rogue answers nothing: every fetch from it hangs
    async with network_with_rogue(tmp_path, nodes=2, members=1) as (net, rogue):
        node = net.nodes[0]
        x = net.agents["coop1-m0"]
        signer = signer_of(net, "coop1-m0")
        head = node.store.head(x)
        assert head is not None
        # records far ahead of X's chain: the node asks the rogue for the gap, and waits
        ahead = [
            Record.make(
                Action(ActionKind.DELETE, x, head.seq + 10 + i, ActionHash.of(bytes([i])), 0),
                signer.sign(b"not an action", bytes([i])),
            )
            for i in range(MAX_STREAMS_PER_PEER + 8)
        ]
        ok = refused = 0

        async def one(record: Record) -> None:
            nonlocal ok, refused
            try:
                await ask(rogue, node, wire.PUBLISH, {"records": [record.to_bytes()]})
                ok += 1
            except NetworkError:
                refused += 1

        async with trio.open_nursery() as burst:
            for record in ahead:
                burst.start_soon(one, record)
        assert (ok, refused) == (MAX_STREAMS_PER_PEER, 8)
        await honest_payments_still_work(net, ("coop0-m0", "coop1-m0"))


async def test_a_peer_that_claims_to_host_an_honest_agent_cannot_stop_payments_to_it(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with network_with_rogue(tmp_path, nodes=2, members=1) as (net, rogue):
        node = net.nodes[0]
        liar = derive_signer("rogue", "node")
        claim = {
            "node": AgentKey(liar.public_key).to_bytes(),
            "agents": [net.agents["coop1-m0"].to_bytes()],
            "peers": [],
        }
        await ask(rogue, node, wire.HELLO, claim)
        result = await net.pay("coop0-m0", "coop1-m0", 5)
        assert result.committed, result.reason
