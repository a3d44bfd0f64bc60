"""Every decoder that reads untrusted bytes or text raises only ``EncodingError``, and quickly.

A peer can send us anything; the decoders are the first thing it reaches.
Each one must either return a value or raise ``EncodingError``: never
``IndexError``, ``RecursionError``, ``MemoryError``, ``UnicodeDecodeError``
or a hang. And whatever they do accept round-trips to the very same bytes
(or text), so accepting is never a silent re-interpretation.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conode import encoding, hashes
from conode.chain import ActionKind, Record, author_record
from conode.chain.records import Action, ChainHead
from conode.crypto import Signer
from conode.encoding import MAX_SIZE
from conode.errors import EncodingError
from conode.hashes import (
    ActionHash,
    AgentKey,
    BundleHash,
    CharterHash,
    EntryHash,
    OpHash,
    TypedHash,
)

HASH_CLASSES: list[type[TypedHash]] = [
    ActionHash, EntryHash, AgentKey, OpHash, CharterHash, BundleHash,
]


def _roundtrip_decode(data: bytes) -> None:
    value = encoding.decode(data)
    assert encoding.encode(value) == data


def _roundtrip_record(data: bytes) -> None:
    assert Record.from_bytes(data).to_bytes() == data


def _roundtrip_action(data: bytes) -> None:
    assert Action.from_bytes(data).to_bytes() == data


def _roundtrip_hash(cls: type[TypedHash]) -> Callable[[bytes], None]:
    def check(data: bytes) -> None:
        assert cls.from_bytes(data).to_bytes() == data

    return check


BYTE_DECODERS: dict[str, Callable[[bytes], None]] = {
    "encoding.decode": _roundtrip_decode,
    "Record.from_bytes": _roundtrip_record,
    "Action.from_bytes": _roundtrip_action,
    **{f"{cls.__name__}.from_bytes": _roundtrip_hash(cls) for cls in HASH_CLASSES},
}


def _roundtrip_parse_any(text: str) -> None:
    assert str(hashes.parse_any(text)) == text.strip().lower()


def _roundtrip_parse(cls: type[TypedHash]) -> Callable[[str], None]:
    def check(text: str) -> None:
        assert str(cls.parse(text)) == text.strip().lower()

    return check


TEXT_PARSERS: dict[str, Callable[[str], None]] = {
    "parse_any": _roundtrip_parse_any,
    **{f"{cls.__name__}.parse": _roundtrip_parse(cls) for cls in HASH_CLASSES},
}


def feed_bytes(data: bytes) -> None:
    """Each byte decoder accepts ``data`` (and re-encodes it exactly) or raises EncodingError."""
    for check in BYTE_DECODERS.values():
        with contextlib.suppress(EncodingError):
            check(data)


def feed_text(text: str) -> None:
    for check in TEXT_PARSERS.values():
        with contextlib.suppress(EncodingError):
            check(text)


# --- a small valid chain to mutate --------------------------------------------------------------

SIGNER = Signer(bytes(range(32)))


def _sample_records() -> list[Record]:
    head: ChainHead | None = None
    records: list[Record] = []
    steps: list[dict[str, Any]] = [
        {"kind": ActionKind.GENESIS, "entry": {"network": "test", "proof": b"\x01" * 8}},
        {"kind": ActionKind.CREATE, "entry": {"amount": 125, "memo": "coffee"},
         "entry_type": "payment"},
        {"kind": ActionKind.LINK, "entry": ["base", "target", b"tag"], "entry_type": "index"},
    ]
    for step in steps:
        record = author_record(SIGNER, head, timestamp=1_000_000 * (len(records) + 1), **step)
        records.append(record)
        head = ChainHead.after(record)
    create = records[1]
    delete = author_record(SIGNER, head, kind=ActionKind.DELETE, timestamp=9_000_000,
                           ref=create.hash)
    records.append(delete)
    return records


RECORDS = _sample_records()
RECORD_BLOBS = [r.to_bytes() for r in RECORDS]
ACTION_BLOBS = [r.action_bytes for r in RECORDS]
HASH_BLOBS = [h.to_bytes() for r in RECORDS for h in (r.hash, r.action.author)]
VALID_BLOBS = RECORD_BLOBS + ACTION_BLOBS + HASH_BLOBS
VALID_TEXTS = [str(r.hash) for r in RECORDS] + [str(RECORDS[0].action.author)]


def test_sample_blobs_are_accepted_by_their_own_decoders() -> None:
    """The mutation tests below start from bytes that really are valid."""
    for blob in RECORD_BLOBS:
        _roundtrip_record(blob)
    for blob in ACTION_BLOBS:
        _roundtrip_action(blob)
    for record in RECORDS:
        _roundtrip_hash(ActionHash)(record.hash.to_bytes())
    for text in VALID_TEXTS:
        _roundtrip_parse_any(text)


# --- hypothesis ---------------------------------------------------------------------------------

# bytes that look like CBOR heads, so that random input often gets past the first byte
cbor_tokens = st.one_of(
    st.sampled_from(
        [b"\x00", b"\x17", b"\x18", b"\x19", b"\x1b", b"\x20", b"\x38", b"\x40", b"\x41", b"\x58",
         b"\x5f", b"\x60", b"\x61", b"\x7f", b"\x80", b"\x81", b"\x83", b"\x89", b"\x98", b"\x9f",
         b"\xa0", b"\xa1", b"\xbf", b"\xc2", b"\xd8", b"\xf4", b"\xf6", b"\xf7", b"\xf9", b"\xfb",
         b"\xff", b"\x58\x21\x01", b"\x58\x21\x03", b"\x58\x40", b"\x61a", b"\x01"]
    ),
    st.binary(min_size=1, max_size=4),
)
cbor_like = st.lists(cbor_tokens, max_size=40).map(b"".join)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_byte_decoders_survive_random_bytes(data: bytes) -> None:
    feed_bytes(data)


@settings(max_examples=300)
@given(cbor_like)
def test_byte_decoders_survive_cbor_shaped_bytes(data: bytes) -> None:
    feed_bytes(data)


@settings(max_examples=300)
@given(
    st.sampled_from(VALID_BLOBS),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_byte_decoders_survive_valid_blobs_with_byte_edits(
    blob: bytes, edits: list[tuple[int, int]]
) -> None:
    mutated = bytearray(blob)
    for position, byte in edits:
        mutated[position % len(mutated)] = byte
    feed_bytes(bytes(mutated))


@settings(max_examples=200)
@given(st.sampled_from(VALID_BLOBS), st.integers(min_value=0), st.binary(min_size=1, max_size=9),
       st.booleans())
def test_byte_decoders_survive_insertions_and_deletions(
    blob: bytes, position: int, chunk: bytes, insert: bool
) -> None:
    at = position % (len(blob) + 1)
    mutated = blob[:at] + chunk + blob[at:] if insert else blob[:at] + blob[at + len(chunk):]
    feed_bytes(mutated)


base32 = "abcdefghijklmnopqrstuvwxyz234567"
hash_like_text = st.builds(
    lambda prefix, body: f"{prefix}_{body}",
    st.sampled_from(["agt", "act", "ent", "op", "chr", "app", "AGT", "xyz", ""]),
    st.text(alphabet=base32 + base32.upper() + "=_ 01\u212a\u0131", max_size=70),
)


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=80), hash_like_text))
def test_text_parsers_survive_random_text(text: str) -> None:
    feed_text(text)


@settings(max_examples=200)
@given(st.sampled_from(VALID_TEXTS), st.integers(min_value=0), st.characters())
def test_text_parsers_survive_valid_text_with_one_character_changed(
    text: str, position: int, char: str
) -> None:
    at = position % len(text)
    feed_text(text[:at] + char + text[at + 1:])


# --- a deterministic random loop (no shrinking, but the same inputs on every run) ---------------


def test_byte_decoders_survive_seeded_random_loop() -> None:
    rng = random.Random(0xC0DE)
    for _ in range(3000):
        choice = rng.random()
        if choice < 0.3:
            data = rng.randbytes(rng.randint(0, 64))
        elif choice < 0.8:
            edited = bytearray(rng.choice(VALID_BLOBS))
            for _ in range(rng.randint(1, 3)):
                edited[rng.randrange(len(edited))] = rng.randrange(256)
            data = bytes(edited)
        else:
            blob = rng.choice(VALID_BLOBS)
            data = blob[: rng.randrange(len(blob))] + rng.randbytes(rng.randint(0, 4))
        feed_bytes(data)


# --- the adversarial cases by name ----------------------------------------------------------------


ACCEPTED_BY: dict[str, list[bytes]] = {
    "encoding.decode": RECORD_BLOBS + ACTION_BLOBS,
    "Record.from_bytes": RECORD_BLOBS,
    "Action.from_bytes": ACTION_BLOBS,
    **{f"{cls.__name__}.from_bytes": [cls.of(b"x").to_bytes()] for cls in HASH_CLASSES},
}


@pytest.mark.parametrize("name", list(BYTE_DECODERS))
def test_every_truncation_of_an_accepted_blob_is_refused(name: str) -> None:
    check = BYTE_DECODERS[name]
    for blob in ACCEPTED_BY[name]:
        check(blob)
        for cut in range(len(blob)):
            with pytest.raises(EncodingError):
                check(blob[:cut])


ADVERSARIAL = {
    "huge byte string length": "5b7fffffffffffffff",
    "huge byte string length, max": "5bffffffffffffffff",
    "huge text length": "7b7fffffffffffffff",
    "huge array length": "9b7fffffffffffffff00",
    "huge map length": "bb7fffffffffffffff616100",
    "huge 32-bit length": "5affffffff",
    "record with a huge action": "835b7fffffffffffffff",
    "record with a huge entry": "8341005840" + "00" * 64 + "5b7fffffffffffffff",
    "deep arrays": "81" * 100_000 + "00",
    "deep maps": "a16161" * 100_000 + "00",
    "deep tags": "d818" * 100_000 + "00",
    "deep indefinite arrays": "9f" * 100_000,
    "many tiny items": "9b000000000000ffff" + "00" * 65535,
}


@pytest.mark.parametrize("name", list(BYTE_DECODERS))
@pytest.mark.parametrize("case", list(ADVERSARIAL))
def test_adversarial_input_is_refused_quickly(name: str, case: str) -> None:
    data = bytes.fromhex(ADVERSARIAL[case])
    started = time.perf_counter()
    with pytest.raises(EncodingError):
        BYTE_DECODERS[name](data)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("name", list(BYTE_DECODERS))
def test_input_over_max_size_is_refused(name: str) -> None:
    oversized = encoding.encode(b"\x00" * MAX_SIZE)
    with pytest.raises(EncodingError):
        BYTE_DECODERS[name](oversized)


def test_record_with_entry_over_max_size_is_refused() -> None:
    record = RECORDS[1]
    big = encoding.encode([record.action_bytes, record.signature, b"\x00" * MAX_SIZE])
    with pytest.raises(EncodingError):
        Record.from_bytes(big)


@pytest.mark.parametrize("name", list(TEXT_PARSERS))
@pytest.mark.parametrize(
    "text",
    ["", "_", "agt_", "agt", "agt__", "x" * 100_000, "agt_" + "a" * 100_000, "agt_" + "=" * 8,
     "op_\x00", "\u212agt_aaaa", "agt_\udcff"],
)
def test_text_parsers_refuse_junk(name: str, text: str) -> None:
    with pytest.raises(EncodingError):
        TEXT_PARSERS[name](text)
