"""Source chains: valid ones verify, any tampering is found, and each rule names itself.

Most rule tests build a record that breaks exactly one rule and is otherwise
perfect (in particular, correctly signed by its claimed author), so that the
violation reported is the rule under test and not a side effect of a bad
signature.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conode import encoding
from conode.chain import (
    Action,
    ActionKind,
    ChainHead,
    Record,
    Violation,
    author_record,
    check_append,
    verify_chain,
    verify_encoded_chain,
)
from conode.crypto import SIG_ACTION, SIG_MESSAGE, Signer
from conode.errors import EncodingError
from conode.hashes import ActionHash, AgentKey, EntryHash

ALICE = Signer(bytes([1]) * 32)
BOB = Signer(bytes([2]) * 32)
T0 = 1_700_000_000_000_000  # microseconds


# --- building chains ------------------------------------------------------------------------------


def start(signer: Signer = ALICE, timestamp: int = T0) -> list[Record]:
    """A chain holding only its genesis record."""
    return [
        author_record(signer, None, kind=ActionKind.GENESIS, timestamp=timestamp,
                      entry={"network": "chr_test", "proof": b"member"})
    ]


def add(chain: list[Record], kind: ActionKind, signer: Signer = ALICE, **kw: Any) -> Record:
    """Author the next record after ``chain``'s last one, append it, and return it."""
    kw.setdefault("timestamp", chain[-1].action.timestamp + 1_000)
    record = author_record(signer, ChainHead.after(chain[-1]), kind=kind, **kw)
    chain.append(record)
    return record


def sample_chain() -> list[Record]:
    """genesis, create, update, link, delete, create, close: every kind but open-chain."""
    chain = start()
    created = add(chain, ActionKind.CREATE, entry={"amount": 125}, entry_type="payment")
    add(chain, ActionKind.UPDATE, entry={"amount": 126}, entry_type="payment", ref=created.hash)
    link = add(chain, ActionKind.LINK, entry=["base", "target", b"tag"], entry_type="index")
    add(chain, ActionKind.DELETE, ref=link.hash)
    add(chain, ActionKind.CREATE, entry="note", entry_type="memo")
    add(chain, ActionKind.CLOSE_CHAIN, entry={"next": "agt_bob"})
    return chain


def signed(action: Action, entry: Any = None, *, signer: Signer = ALICE,
           context: bytes = SIG_ACTION, raw_entry: bytes | None = None) -> Record:
    """``action`` signed by ``signer``, carrying ``entry`` (a value) or ``raw_entry`` (bytes)."""
    entry_bytes = raw_entry if entry is None else encoding.encode(entry)
    return Record.make(action, signer.sign(context, action.to_bytes()), entry_bytes)


def next_action(chain: list[Record], **changes: Any) -> Action:
    """A valid create action after ``chain`` (with entry "x"), with ``changes`` applied."""
    last = chain[-1]
    action = Action(
        kind=ActionKind.CREATE,
        author=last.action.author,
        seq=last.action.seq + 1,
        prev=last.hash,
        timestamp=last.action.timestamp + 1,
        entry_type="memo",
        entry_hash=EntryHash.of(encoding.encode("x")),
    )
    return dataclasses.replace(action, **changes)


def first_action(**changes: Any) -> Action:
    """A valid genesis action by ALICE, with ``changes`` applied."""
    action = Action(
        kind=ActionKind.GENESIS,
        author=AgentKey(ALICE.public_key),
        seq=0,
        prev=None,
        timestamp=T0,
        entry_hash=EntryHash.of(encoding.encode("x")),
    )
    return dataclasses.replace(action, **changes)


def expect(violation: Violation | None, rule: str, position: int, *words: str) -> Violation:
    assert violation is not None, f"expected a {rule!r} violation, the chain verified"
    assert violation.rule == rule, violation
    assert violation.position == position, violation
    for word in words:
        assert word in violation.reason, violation
    return violation


# --- valid chains ---------------------------------------------------------------------------------


def test_sample_chain_of_every_kind_verifies() -> None:
    chain = sample_chain()
    assert [r.action.seq for r in chain] == list(range(7))
    assert verify_chain(chain) is None
    assert verify_encoded_chain([r.to_bytes() for r in chain]) is None


def test_empty_chain_verifies() -> None:
    assert verify_chain([]) is None


def test_continuing_chain_opens_at_seq_1_with_ref_to_old_close() -> None:
    old = sample_chain()
    new = start(BOB, timestamp=old[-1].action.timestamp)
    add(new, ActionKind.OPEN_CHAIN, signer=BOB, entry={"previous": "agt_alice"}, ref=old[-1].hash)
    add(new, ActionKind.CREATE, signer=BOB, entry=1, entry_type="memo")
    assert verify_chain(new) is None


def test_verify_from_a_head_checks_only_the_rest() -> None:
    chain = sample_chain()
    for cut in range(1, len(chain)):
        head = ChainHead.after(chain[cut - 1])
        assert verify_chain(chain[cut:], start=head) is None
        assert verify_encoded_chain([r.to_bytes() for r in chain[cut:]], start=head) is None


def test_verify_from_the_wrong_head_fails() -> None:
    chain = sample_chain()
    wrong = ChainHead.after(chain[1])
    expect(verify_chain(chain[3:], start=wrong), "seq", 0)


def test_equal_timestamps_are_allowed() -> None:
    chain = start()
    add(chain, ActionKind.CREATE, entry=1, entry_type="memo", timestamp=T0)
    assert verify_chain(chain) is None


def test_record_without_its_entry_still_verifies() -> None:
    """Entries may travel separately (e.g. private ones); the action still names their hash."""
    chain = sample_chain()
    stripped = [Record.make(r.action, r.signature, None) for r in chain]
    assert verify_chain(stripped) is None


def test_record_and_action_round_trip_through_portable_bytes() -> None:
    for record in sample_chain():
        again = Record.from_bytes(record.to_bytes())
        assert again == record
        assert Action.from_bytes(record.action_bytes) == record.action
        assert again.hash == ActionHash.of(record.action_bytes)


def test_chain_head_follows_the_last_record() -> None:
    chain = sample_chain()
    head = ChainHead.after(chain[-2])
    assert (head.seq, head.hash, head.closed) == (5, chain[-2].hash, False)
    assert ChainHead.after(chain[-1]).closed


# --- each rule names itself -----------------------------------------------------------------------


def test_chain_must_start_at_seq_0() -> None:
    record = signed(first_action(seq=1, kind=ActionKind.CREATE, entry_type="memo"), "x")
    expect(verify_chain([record]), "seq", 0, "seq 0")


def test_first_record_must_have_no_prev() -> None:
    record = signed(first_action(prev=ActionHash.of(b"elsewhere")), "x")
    expect(verify_chain([record]), "seq", 0)


@pytest.mark.parametrize("seq", [3, 4, 1, 0, 2**63 - 1])
def test_seq_must_be_one_more_than_the_previous(seq: int) -> None:
    chain = start()
    add(chain, ActionKind.CREATE, entry=1, entry_type="memo")  # seq 1
    bad = signed(next_action(chain, seq=seq), "x")
    v = expect(verify_chain([*chain, bad]), "seq", 2, f"seq {seq}", "seq 1")
    assert v.seq == seq


def test_prev_must_name_the_previous_action() -> None:
    chain = start()
    add(chain, ActionKind.CREATE, entry=1, entry_type="memo")
    for prev in (chain[0].hash, ActionHash.of(b"nothing"), None):
        bad = signed(next_action(chain, prev=prev), "x")
        expect(verify_chain([*chain, bad]), "prev", 2)


def test_every_record_is_by_the_chains_author() -> None:
    chain = start()
    bad = signed(next_action(chain, author=AgentKey(BOB.public_key)), "x", signer=BOB)
    expect(verify_chain([*chain, bad]), "author", 1)


@pytest.mark.parametrize(
    "key",
    [
        "0100000000000000000000000000000000000000000000000000000000000000",  # identity
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # order 2
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # non-canonical
    ],
)
def test_first_author_must_be_a_valid_public_key(key: str) -> None:
    record = Record.make(first_action(author=AgentKey(bytes.fromhex(key))), bytes(64),
                         encoding.encode("x"))
    expect(verify_chain([record]), "author", 0, "not a valid Ed25519 public key")


def test_timestamp_may_not_go_backwards() -> None:
    chain = start()
    bad = signed(next_action(chain, timestamp=T0 - 1), "x")
    expect(verify_chain([*chain, bad]), "timestamp", 1, str(T0 - 1), str(T0))


def test_genesis_only_at_seq_0() -> None:
    chain = start()
    bad = signed(next_action(chain, kind=ActionKind.GENESIS), "x")
    expect(verify_chain([*chain, bad]), "kind", 1, "genesis at seq 1")


@pytest.mark.parametrize("kind", [k for k in ActionKind if k is not ActionKind.GENESIS])
def test_seq_0_must_be_genesis(kind: ActionKind) -> None:
    record = signed(first_action(kind=kind, entry_type="memo",
                                 ref=ActionHash.of(b"r") if kind is not ActionKind.CREATE
                                 else None), "x")
    expect(verify_chain([record]), "kind", 0, f"{kind.name.lower()} at seq 0")


def test_open_chain_only_at_seq_1() -> None:
    chain = start()
    add(chain, ActionKind.CREATE, entry=1, entry_type="memo")
    bad = signed(next_action(chain, kind=ActionKind.OPEN_CHAIN, ref=ActionHash.of(b"old")), "x")
    expect(verify_chain([*chain, bad]), "kind", 2, "seq 1")


def test_nothing_follows_close_chain() -> None:
    chain = sample_chain()
    bad = signed(next_action(chain), "x")
    v = expect(verify_chain([*chain, bad]), "closed", 7, "closed at seq 6")
    assert v.seq == 7
    # not even another close
    again = signed(next_action(chain, kind=ActionKind.CLOSE_CHAIN, entry_type=None), "x")
    expect(verify_chain([*chain, again]), "closed", 7)


_REF = ActionHash.of(b"some earlier action")
_NO_ENTRY: dict[str, Any] = {"entry_hash": None}


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"kind": ActionKind.DELETE, "ref": _REF, "entry_type": None},
         "delete must not have an entry"),
        ({"kind": ActionKind.DELETE, **_NO_ENTRY}, "delete needs a ref"),
        ({"kind": ActionKind.CREATE, "ref": _REF}, "create must not have a ref"),
        ({"kind": ActionKind.CREATE, **_NO_ENTRY}, "create needs an entry"),
        ({"kind": ActionKind.CREATE, "entry_type": None}, "create needs an entry type"),
        ({"kind": ActionKind.UPDATE}, "update needs a ref"),
        ({"kind": ActionKind.UPDATE, "ref": _REF, **_NO_ENTRY}, "update needs an entry"),
        ({"kind": ActionKind.UPDATE, "ref": _REF, "entry_type": None},
         "update needs an entry type"),
        ({"kind": ActionKind.LINK, "entry_type": None}, "link needs an entry type"),
        ({"kind": ActionKind.LINK, "ref": _REF}, "link must not have a ref"),
        ({"kind": ActionKind.CLOSE_CHAIN, **_NO_ENTRY}, "close_chain needs an entry"),
        ({"kind": ActionKind.CLOSE_CHAIN, "ref": _REF}, "close_chain must not have a ref"),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_each_kind_has_its_shape(changes: dict[str, Any], words: str) -> None:
    chain = start()
    action = next_action(chain, **changes)
    bad = signed(action, "x" if action.entry_hash is not None else None)
    expect(verify_chain([*chain, bad]), "kind", 1, words)


def test_open_chain_needs_a_ref_and_an_entry() -> None:
    chain = start()
    no_ref = signed(next_action(chain, kind=ActionKind.OPEN_CHAIN), "x")
    expect(verify_chain([*chain, no_ref]), "kind", 1, "open_chain needs a ref")
    no_entry = signed(next_action(chain, kind=ActionKind.OPEN_CHAIN, ref=_REF, entry_hash=None))
    expect(verify_chain([*chain, no_entry]), "kind", 1, "open_chain needs an entry")


def test_genesis_has_an_entry_and_no_ref() -> None:
    no_entry = signed(first_action(entry_hash=None))
    expect(verify_chain([no_entry]), "kind", 0, "genesis needs an entry")
    with_ref = signed(first_action(ref=_REF), "x")
    expect(verify_chain([with_ref]), "kind", 0, "genesis must not have a ref")


def test_attached_entry_must_match_the_entry_hash() -> None:
    chain = start()
    bad = signed(next_action(chain), "not x")
    expect(verify_chain([*chain, bad]), "entry-hash", 1, "does not match")


def test_delete_carries_no_entry() -> None:
    """A delete names no entry hash, so an entry attached to it is refused, not ignored."""
    chain = start()
    action = next_action(chain, kind=ActionKind.DELETE, ref=_REF, entry_hash=None, entry_type=None)
    bad = signed(action, raw_entry=encoding.encode("smuggled"))
    expect(verify_chain([*chain, bad]), "entry-hash", 1, "names none")


def test_signature_must_be_by_the_author() -> None:
    chain = start()
    bad = signed(next_action(chain), "x", signer=BOB)
    expect(verify_chain([*chain, bad]), "signature", 1, "does not verify")


def test_signature_must_be_in_the_action_context() -> None:
    chain = start()
    bad = signed(next_action(chain), "x", context=SIG_MESSAGE)
    expect(verify_chain([*chain, bad]), "signature", 1)


def test_signature_must_cover_these_exact_action_bytes() -> None:
    chain = start()
    good = signed(next_action(chain), "x")
    other = signed(next_action(chain, timestamp=T0 + 2), "x")
    swapped = dataclasses.replace(good, signature=other.signature)
    expect(verify_chain([*chain, swapped]), "signature", 1)
    zeroed = dataclasses.replace(good, signature=bytes(64))
    expect(verify_chain([*chain, zeroed]), "signature", 1)


def test_genesis_signature_is_checked_too() -> None:
    genesis = start()[0]
    expect(verify_chain([dataclasses.replace(genesis, signature=bytes(64))]), "signature", 0)


def test_dropping_or_swapping_records_is_detected() -> None:
    chain = sample_chain()
    for i in range(1, len(chain) - 1):
        expect(verify_chain(chain[:i] + chain[i + 1:]), "seq", i)
        swapped = [*chain[:i], chain[i + 1], chain[i], *chain[i + 2:]]
        expect(verify_chain(swapped), "seq", i)


def test_bad_bytes_are_a_format_violation_at_their_position() -> None:
    blobs = [r.to_bytes() for r in sample_chain()]
    blobs[3] = blobs[3][:-1]
    v = expect(verify_encoded_chain(blobs), "format", 3)
    assert v.seq is None


def test_violation_reads_as_one_line_with_position_and_seq() -> None:
    chain = start()
    bad = signed(next_action(chain, timestamp=5), "x")
    v = verify_chain([*chain, bad])
    assert v is not None
    assert str(v).startswith("record 1 (seq 1): timestamp: ")
    assert "\n" not in str(v)
    assert str(Violation("format", "junk")) == "format: junk"


def test_check_append_is_one_step_of_verify_chain() -> None:
    chain = sample_chain()
    head = None
    for record in chain:
        assert check_append(head, record) is None
        head = ChainHead.after(record)
    v = check_append(ChainHead.after(chain[0]), chain[2])
    assert v is not None and v.rule == "seq" and v.position is None


# --- the portable form refuses what ``to_bytes`` would never write -------------------------------


def _action_fields(record: Record) -> list[Any]:
    fields = encoding.decode(record.action_bytes)
    assert isinstance(fields, list)
    return fields


@pytest.mark.parametrize(
    ("index", "value", "words"),
    [
        (0, 2, "format version"),
        (0, True, "format version"),
        (1, 7, "unknown action kind"),
        (1, -1, "unknown action kind"),
        (1, False, "unknown action kind"),
        (2, b"\x01" + bytes(32), "expected an agent key"),
        (2, bytes(32), "33 bytes"),
        (2, None, "33 bytes"),
        (3, -1, "seq"),
        (3, 2**63, "seq"),
        (3, "1", "seq"),
        (4, b"\x02" + bytes(32), "expected an action hash"),
        (5, -1, "timestamp"),
        (5, 2**63, "timestamp"),
        (6, "", "entry type"),
        (6, "x" * 65, "entry type"),
        (6, b"payment", "entry type"),
        (7, b"\x01" + bytes(32), "expected an entry hash"),
        (8, b"\x03" + bytes(32), "expected an action hash"),
    ],
)
def test_action_from_bytes_refuses_bad_field(index: int, value: Any, words: str) -> None:
    fields = _action_fields(sample_chain()[2])  # an update: every field is set
    fields[index] = value
    with pytest.raises(EncodingError, match=words):
        Action.from_bytes(encoding.encode(fields))


def test_action_from_bytes_refuses_wrong_arity() -> None:
    fields = _action_fields(sample_chain()[1])
    for bad in (fields[:-1], [*fields, None], {"v": 1}, 1):
        with pytest.raises(EncodingError, match="9 items"):
            Action.from_bytes(encoding.encode(bad))


def test_action_limits_are_inclusive() -> None:
    fields = _action_fields(sample_chain()[1])
    fields[3], fields[5], fields[6] = 2**63 - 1, 2**63 - 1, "x" * 64
    action = Action.from_bytes(encoding.encode(fields))
    assert (action.seq, action.timestamp, action.entry_type) == (2**63 - 1, 2**63 - 1, "x" * 64)


@pytest.mark.parametrize(
    ("parts", "words"),
    [
        (lambda r: [r.action_bytes, r.signature], "3 items"),
        (lambda r: [r.action_bytes, r.signature, r.entry, None], "3 items"),
        (lambda r: {"a": r.action_bytes}, "3 items"),
        (lambda r: [list(r.action_bytes), r.signature, r.entry], "action is a byte string"),
        (lambda r: [r.action_bytes, r.signature[:-1], r.entry], "64 bytes"),
        (lambda r: [r.action_bytes, r.signature + b"\x00", r.entry], "64 bytes"),
        (lambda r: [r.action_bytes, None, r.entry], "64 bytes"),
        (lambda r: [r.action_bytes, r.signature, "entry"], "byte string or null"),
        (lambda r: [r.action_bytes, r.signature, b"\x18\x05"], "canonical"),  # 5, long form
        (lambda r: [r.action_bytes, r.signature, b""], "no bytes"),
        (lambda r: [r.action_bytes + b"\x00", r.signature, r.entry], "canonical"),
    ],
)
def test_record_from_bytes_refuses_malformed_parts(parts: Any, words: str) -> None:
    record = sample_chain()[1]
    with pytest.raises(EncodingError, match=words):
        Record.from_bytes(encoding.encode(parts(record)))


def test_record_from_bytes_refuses_non_canonical_entry_even_if_the_action_names_it() -> None:
    """The author hashed and signed long-form bytes; still refused: an entry has one byte form."""
    chain = start()
    long_form = b"\x18\x05"  # the integer 5, not in its shortest form
    action = next_action(chain, entry_hash=EntryHash.of(long_form))
    record = signed(action, raw_entry=long_form)
    with pytest.raises(EncodingError):
        Record.from_bytes(record.to_bytes())
    assert verify_encoded_chain([chain[0].to_bytes(), record.to_bytes()]) == Violation(
        "format", "not the canonical encoding of the value it holds", position=1
    )


# --- tampering with portable bytes: hypothesis ----------------------------------------------------

entry_values = st.one_of(
    st.integers(-(2**63), 2**63),
    st.text(max_size=8),
    st.binary(max_size=8),
    st.dictionaries(st.text(max_size=4), st.integers(0, 1000), min_size=1, max_size=3),
)


@st.composite
def chains(draw: st.DrawFn, max_steps: int = 5) -> list[Record]:
    """A random valid chain: genesis, maybe open-chain, some steps of each kind, maybe close."""
    signer = Signer(draw(st.binary(min_size=32, max_size=32)))
    timestamp = draw(st.integers(0, 2**62))
    chain = start(signer, timestamp)
    if draw(st.booleans()):
        add(chain, ActionKind.OPEN_CHAIN, signer, entry=draw(entry_values),
            ref=ActionHash(draw(st.binary(min_size=32, max_size=32))),
            timestamp=timestamp)
    for _ in range(draw(st.integers(0, max_steps))):
        kind = draw(st.sampled_from([ActionKind.CREATE, ActionKind.UPDATE, ActionKind.DELETE,
                                     ActionKind.LINK]))
        timestamp += draw(st.integers(0, 10**9))
        ref = draw(st.sampled_from(chain)).hash
        if kind is ActionKind.DELETE:
            add(chain, kind, signer, ref=ref, timestamp=timestamp)
        else:
            add(chain, kind, signer, entry=draw(entry_values),
                entry_type=draw(st.sampled_from(["payment", "memo", "x" * 64])),
                ref=ref if kind is ActionKind.UPDATE else None, timestamp=timestamp)
    if draw(st.booleans()):
        add(chain, ActionKind.CLOSE_CHAIN, signer, entry=draw(entry_values), timestamp=timestamp)
    return chain


@settings(max_examples=100, deadline=None)
@given(chains())
def test_random_valid_chains_verify_as_records_and_as_bytes(chain: list[Record]) -> None:
    assert verify_chain(chain) is None
    blobs = [r.to_bytes() for r in chain]
    assert [Record.from_bytes(b) for b in blobs] == chain
    assert verify_encoded_chain(blobs) is None


@settings(max_examples=300, deadline=None)
@given(chains(max_steps=3), st.data())
def test_flipping_any_bit_of_any_record_is_detected(
    chain: list[Record], data: st.DataObject
) -> None:
    blobs = [r.to_bytes() for r in chain]
    index = data.draw(st.integers(0, len(blobs) - 1), label="record")
    bit = data.draw(st.integers(0, len(blobs[index]) * 8 - 1), label="bit")
    flipped = bytearray(blobs[index])
    flipped[bit // 8] ^= 1 << (bit % 8)
    blobs[index] = bytes(flipped)
    violation = verify_encoded_chain(blobs)
    assert violation is not None
    assert violation.position == index  # found at the record that was touched, not later


def test_flipping_every_bit_of_a_small_chain_is_detected() -> None:
    """Exhaustive over a genesis and a create: each of their ~3,500 bits, one at a time."""
    chain = start()
    add(chain, ActionKind.CREATE, entry={"amount": 5}, entry_type="payment")
    blobs = [r.to_bytes() for r in chain]
    rules: set[str] = set()
    for index, blob in enumerate(blobs):
        for bit in range(len(blob) * 8):
            flipped = bytearray(blob)
            flipped[bit // 8] ^= 1 << (bit % 8)
            tampered = [*blobs[:index], bytes(flipped), *blobs[index + 1:]]
            violation = verify_encoded_chain(tampered)
            assert violation is not None, f"record {index} bit {bit} went unnoticed"
            assert violation.position == index
            rules.add(violation.rule)
    # the flips were caught by the right layers: bytes, structure, hashes and signatures
    assert {"format", "signature", "entry-hash"} <= rules
