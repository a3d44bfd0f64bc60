"""The typed wire messages keep the wire bytes: old dict forms in, the same bytes out.

Each ``old_*`` builder below is the dict the node built before the messages
were typed (copied from ``conode/node.py`` at 21e7070). For every protocol
message: the old dict's bytes decode into the typed message, which encodes
to the very same bytes; and the typed message's bytes read back as the old
dict with ``wire.loads``, as an old peer reads them. So nodes before and
after the change speak one protocol.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conode import encoding
from conode.crypto import SIG_MESSAGE, SIG_RECEIPT, Signer
from conode.dht import messages as m
from conode.dht import wire
from conode.errors import RemoteProtocolError
from conode.hashes import ActionHash, AgentKey, BundleHash, EntryHash
from conode.validation import countersign as cs

# -- what the wire carried before the messages were typed -----------------------------------------


def old_claim(agent: AgentKey, peer: str, at: int, signature: bytes) -> list[Any]:
    return [agent.to_bytes(), peer, at, signature]


def old_hello(
    node: AgentKey,
    agents: list[list[Any]],
    hosts: list[list[Any]],
    peers: list[tuple[str, list[str]]],
    addrs: list[str],
) -> dict[str, Any]:
    return {
        "node": node.to_bytes(),
        "agents": agents,
        "hosts": hosts,
        "peers": [[p, a] for p, a in peers],
        "addrs": addrs,
    }


def old_receipt(signer: Signer, record: ActionHash, valid: bool, at: int) -> list[Any]:
    data = encoding.encode([record.to_bytes(), valid, at])
    signature = signer.sign(SIG_RECEIPT, data)
    return [record.to_bytes(), valid, at, signature, AgentKey(signer.public_key).to_bytes()]


def old_heads(heads: dict[AgentKey, tuple[int, bytes]]) -> list[list[Any]]:
    return [[agent.to_bytes(), seq, h] for agent, (seq, h) in heads.items()]


# -- values ---------------------------------------------------------------------------------------

raw32 = st.binary(min_size=32, max_size=32)
agents = raw32.map(AgentKey)
actions = raw32.map(ActionHash)
blobs = st.lists(st.binary(max_size=64), max_size=5)
peer_ids = st.text(min_size=1, max_size=20)
addrs = st.lists(st.text(max_size=30), max_size=3)
seqs = st.integers(min_value=0, max_value=2**40)
signatures = st.binary(min_size=64, max_size=64)
session_ids = st.binary(min_size=16, max_size=16).map(cs.SessionId)
cs_messages = st.one_of(
    st.builds(cs.Offer, session_ids, st.binary(max_size=100), seqs),
    st.builds(cs.Accept, session_ids, st.binary(max_size=100), signatures),
    st.builds(cs.Decline, session_ids, st.text(max_size=50)),
    st.builds(cs.Complete, session_ids, signatures),
    st.builds(cs.Abort, session_ids, st.text(max_size=50)),
)
claims = st.builds(old_claim, agents, peer_ids, seqs, signatures)
heads = st.dictionaries(agents, st.tuples(seqs, raw32), max_size=5)
link_types = st.none() | st.text(min_size=1, max_size=20)
bases = st.one_of(raw32.map(EntryHash), actions, agents)


def same_both_ways(old: dict[str, Any], decode: Any) -> Any:
    """``old``'s bytes decode to a message that encodes to the same bytes and reads back as ``old``."""
    data = wire.dumps(old)
    typed = decode(data)
    assert typed.encode() == data
    assert wire.loads(typed.encode(), set()) == old
    return typed


@settings(max_examples=50)
@given(agents, st.lists(claims, max_size=3), st.lists(claims, max_size=3),
       st.lists(st.tuples(peer_ids, addrs), max_size=3), addrs)  # fmt: skip
def test_hello_keeps_its_bytes(
    node: AgentKey,
    own: list[list[Any]],
    hosts: list[list[Any]],
    peers: list[tuple[str, list[str]]],
    listen: list[str],
) -> None:
    old = old_hello(node, own, hosts, peers, listen)
    hello = same_both_ways(old, m.Hello.decode)
    assert hello.node == node
    assert [c.to_wire() for c in hello.agents] == own
    same_both_ways(old, m.Hello(node, (), (), (), None).read_reply)


def test_a_hello_says_what_it_holds_of_the_receivers_claims_in_eight_bytes() -> None:
    signer = Signer(bytes(32))
    agent = AgentKey(signer.public_key)
    claim = m.Claim(agent, wire.PeerId("peer"), 7, b"s" * 64)
    later = m.Claim(agent, wire.PeerId("peer"), 8, b"s" * 64)
    seen = m.claims_digest([claim])
    assert len(seen) == m.CLAIMS_DIGEST_SIZE and seen != m.claims_digest([later])
    assert seen != m.claims_digest([])  # holding none is not holding these
    hello = m.Hello(agent, (), (), (), None, seen=seen)
    assert m.Hello.read_reply(hello, hello.encode()).seen == seen
    garbled = wire.dumps({"node": agent.to_bytes(), "agents": [], "peers": [], "seen": b"x"})
    assert m.Hello.decode(garbled).seen is None  # as from an earlier version: told every claim


def test_a_claim_reads_back_its_signed_bytes() -> None:
    signer = Signer(bytes(32))
    agent = AgentKey(signer.public_key)
    signed = encoding.encode(["conode-host", agent.to_bytes(), "peer", 7])
    claim = m.Claim.from_wire(old_claim(agent, "peer", 7, signer.sign(SIG_MESSAGE, signed)))
    assert claim is not None and claim.signed_bytes() == signed


@settings(max_examples=50)
@given(blobs, st.lists(st.tuples(actions, st.booleans(), seqs), max_size=3))
def test_publish_and_its_receipts_keep_their_bytes(
    records: list[bytes], receipts: list[tuple[ActionHash, bool, int]]
) -> None:
    same_both_ways({"records": records}, m.PublishRequest.decode)
    signer = Signer(bytes(range(32)))
    old = {"receipts": [old_receipt(signer, *r) for r in receipts]}
    reply = same_both_ways(old, m.PublishReply.decode)
    assert len(reply.receipts) == len(receipts)  # every one verifies


@settings(max_examples=50)
@given(st.lists(actions, max_size=5), blobs)
def test_fetch_keeps_its_bytes(hashes: list[ActionHash], records: list[bytes]) -> None:
    same_both_ways({"hashes": [h.to_bytes() for h in hashes]}, m.FetchRequest.decode)
    same_both_ways({"records": records}, m.Records.decode)


@settings(max_examples=50)
@given(agents, seqs, st.integers(min_value=1, max_value=2_000), blobs, st.booleans())
def test_chain_and_chains_keep_their_bytes(
    author: AgentKey, start: int, limit: int, records: list[bytes], more: bool
) -> None:
    old = {"author": author.to_bytes(), "from": start, "limit": limit}
    same_both_ways(old, m.ChainRequest.decode)
    old = {"chains": [[author.to_bytes(), start]], "limit": limit}
    same_both_ways(old, m.ChainsRequest.decode)
    same_both_ways({"records": records, "more": more}, m.RecordsPage.decode)


@settings(max_examples=50)
@given(heads, st.lists(raw32, max_size=3), blobs)
def test_heads_keep_their_bytes(
    held: dict[AgentKey, tuple[int, bytes]], hashes: list[bytes], warrants: list[bytes]
) -> None:
    same_both_ways({"heads": old_heads(held), "warrants": hashes}, m.HeadsRequest.decode)
    same_both_ways({"heads": old_heads(held), "warrants": warrants}, m.HeadsReply.decode)


@settings(max_examples=50)
@given(agents, agents, cs_messages, st.none() | cs_messages)
def test_countersign_keeps_its_bytes(
    sender: AgentKey, to: AgentKey, message: cs.Message, reply: cs.Message | None
) -> None:
    old = {"from": sender.to_bytes(), "to": to.to_bytes(), "msg": cs.encode_message(message)}
    assert same_both_ways(old, m.CountersignRequest.decode).message == message
    old = {"msg": None if reply is None else cs.encode_message(reply)}
    assert same_both_ways(old, m.CountersignReply.decode).message == reply


@settings(max_examples=30)
@given(st.binary(max_size=64), raw32.map(BundleHash), st.none() | st.binary(max_size=64))
def test_warrant_and_bundle_keep_their_bytes(
    warrant: bytes, bundle: BundleHash, data: bytes | None
) -> None:
    same_both_ways({"warrant": warrant}, m.WarrantRequest.decode)
    same_both_ways({}, m.Empty.decode)
    same_both_ways({"hash": bundle.to_bytes()}, m.BundleRequest.decode)
    same_both_ways({"data": data}, m.BundleReply.decode)


@settings(max_examples=50)
@given(st.lists(st.tuples(bases, st.none() | raw32), min_size=1, max_size=4), link_types,
       st.integers(min_value=1, max_value=2_000), st.none() | actions, blobs, st.booleans())  # fmt: skip
def test_links_keep_their_bytes(
    asked: list[tuple[Any, bytes | None]],
    link_type: str | None,
    limit: int,
    after: ActionHash | None,
    records: list[bytes],
    more: bool,
) -> None:
    old = {"bases": [[b.to_bytes(), have] for b, have in asked], "type": link_type, "limit": limit}
    request = same_both_ways(old, m.decode_links_request)
    assert isinstance(request, m.LinksRequest)
    old = {"indexes": [{"records": records, "more": more} for _ in asked]}
    same_both_ways(old, lambda data: request.read_reply(data))
    base = asked[0][0]
    start = None if after is None else after.to_bytes()
    old = {"base": base.to_bytes(), "type": link_type, "after": start, "limit": limit}
    page = same_both_ways(old, m.decode_links_request)
    assert isinstance(page, m.LinksPageRequest) and page.base == base and page.after == after


@pytest.mark.parametrize(
    ("decode", "old"),
    [
        (m.Hello.decode, {"node": b"short", "agents": [], "peers": []}),
        (m.ChainRequest.decode, {"author": b"\x00" * 33, "from": 0, "limit": 1}),
        (m.ChainRequest.decode, {"author": AgentKey(bytes(32)).to_bytes(), "from": -1, "limit": 1}),
        (m.ChainsRequest.decode, {"chains": [["x", 0]], "limit": 1}),
        (m.HeadsRequest.decode, {"heads": [[b"x", 0]], "warrants": []}),
        (m.WarrantRequest.decode, {"warrant": "text"}),
        (m.CountersignRequest.decode, {"from": b"", "to": b"", "msg": b""}),
        (m.decode_links_request, {"bases": [], "type": None, "limit": 1}),
        (m.decode_links_request, {"type": None, "limit": 1}),
    ],
)
def test_a_malformed_message_is_refused_at_the_seam(decode: Any, old: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError):
        decode(wire.dumps(old))
