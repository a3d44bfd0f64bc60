"""Where a record is held (its ops' locations) and which agents it names (where its dependencies are)."""

from __future__ import annotations

from conode.chain import ActionKind, author_record
from conode.chain.ops import location, named_agents, op_locations
from conode.crypto import Signer
from conode.hashes import ActionHash, AgentKey, EntryHash

ALICE = Signer(bytes([1]) * 32)
BOB = AgentKey(Signer(bytes([2]) * 32).public_key)
CAROL = AgentKey(Signer(bytes([3]) * 32).public_key)


def test_a_location_is_the_first_four_raw_bytes_big_endian() -> None:
    assert location(bytes([0, 0, 1, 2]) + bytes(28)) == 0x0102
    assert location(bytes([0xFF] * 32)) == 2**32 - 1


def test_a_record_is_held_at_its_author_and_a_link_also_at_its_base() -> None:
    author = location(ALICE.public_key)
    create = author_record(ALICE, None, kind=ActionKind.GENESIS, timestamp=1, entry={"x": 1})
    assert op_locations(create) == (author,)
    base = EntryHash.of(b"anchor")
    link = author_record(
        ALICE, None, kind=ActionKind.LINK, timestamp=1, entry_type="shop/category",
        entry={"base": base.to_bytes(), "target": create.hash.to_bytes(), "tag": "t"},
    )  # fmt: skip
    assert op_locations(link) == (author, location(base.raw))
    # a create whose entry happens to have a base is no link
    lookalike = author_record(
        ALICE, None, kind=ActionKind.CREATE, timestamp=1, entry_type="shop/item",
        entry={"base": base.to_bytes()},
    )  # fmt: skip
    assert op_locations(lookalike) == (author,)


def test_named_agents_are_the_typed_agent_keys_anywhere_in_the_entry_author_first() -> None:
    entry = {
        "payer": {"agent": BOB.to_bytes(), "prev": ActionHash.of(b"p").to_bytes()},
        "payee": [{"agent": CAROL.to_bytes()}, BOB.to_bytes()],
        "raw": BOB.raw,  # 32 bytes without the kind byte: not a typed key
    }
    record = author_record(ALICE, None, kind=ActionKind.GENESIS, timestamp=1, entry=entry)
    # in the entry's canonical order: its map keys sorted ("payee" before "payer")
    assert named_agents(record) == (AgentKey(ALICE.public_key), CAROL, BOB)
    bare = author_record(ALICE, None, kind=ActionKind.GENESIS, timestamp=1, entry=None)
    assert named_agents(bare) == (AgentKey(ALICE.public_key),)
