"""Typed hashes: the printable form and its checksum, kinds that do not mix, domain separation."""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conode.errors import EncodingError
from conode.hashes import (
    ActionHash,
    AgentKey,
    BundleHash,
    CharterHash,
    EntryHash,
    HashKind,
    OpHash,
    TypedHash,
    blake2b_256,
    parse_any,
    resolve,
)

CLASSES: list[type[TypedHash]] = [ActionHash, EntryHash, AgentKey, OpHash, CharterHash, BundleHash]
PREFIXES = {
    ActionHash: "act",
    EntryHash: "ent",
    AgentKey: "agt",
    OpHash: "op",
    CharterHash: "chr",
    BundleHash: "app",
}
BASE32 = "abcdefghijklmnopqrstuvwxyz234567"

classes = st.sampled_from(CLASSES)
raws = st.binary(min_size=32, max_size=32)
typed_hashes = st.builds(lambda cls, raw: cls(raw), classes, raws)


def test_every_kind_has_a_distinct_kind_byte_and_prefix() -> None:
    assert sorted(cls.KIND for cls in CLASSES) == sorted(HashKind)
    assert len(set(PREFIXES.values())) == len(CLASSES)


# --- printable form -----------------------------------------------------------------------------


@settings(max_examples=200)
@given(typed_hashes)
def test_printable_form_round_trips_for_every_kind(h: TypedHash) -> None:
    text = str(h)
    assert text.startswith(PREFIXES[type(h)] + "_")
    assert type(h).parse(text) == h
    parsed = parse_any(text)
    assert type(parsed) is type(h) and parsed == h


@settings(max_examples=100)
@given(typed_hashes)
def test_printable_form_is_lowercase_base32_of_raw_and_checksum(h: TypedHash) -> None:
    body = str(h).partition("_")[2]
    assert set(body) <= set(BASE32)
    data = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
    assert data[:32] == h.raw and len(data) == 36


@settings(max_examples=100)
@given(typed_hashes)
def test_parse_accepts_upper_case_and_surrounding_whitespace(h: TypedHash) -> None:
    assert parse_any(str(h).upper()) == h
    assert parse_any(f"  {h}\n") == h


@settings(max_examples=300)
@given(typed_hashes, st.integers(min_value=0), st.sampled_from(BASE32))
def test_checksum_catches_any_single_character_typo_in_body(
    h: TypedHash, position: int, char: str
) -> None:
    text = str(h)
    start = len(PREFIXES[type(h)]) + 1
    at = start + position % (len(text) - start)
    if text[at] == char:
        char = BASE32[(BASE32.index(char) + 1) % len(BASE32)]
    typo = text[:at] + char + text[at + 1 :]
    with pytest.raises(EncodingError):
        parse_any(typo)
    with pytest.raises(EncodingError):
        type(h).parse(typo)


@settings(max_examples=200)
@given(typed_hashes, st.integers(min_value=0), st.sampled_from("abcdefghijklmnopqrstuvwxyz0_"))
def test_any_single_character_typo_in_prefix_is_refused(
    h: TypedHash, position: int, char: str
) -> None:
    """A typo can turn one prefix into another ("agt" -> "act"): the checksum covers the kind."""
    text = str(h)
    at = position % (len(PREFIXES[type(h)]) + 1)  # the prefix or its "_"
    if text[at] == char:
        char = "9"
    with pytest.raises(EncodingError):
        parse_any(text[:at] + char + text[at + 1 :])


@pytest.mark.parametrize("cls", CLASSES)
def test_prefix_typo_into_another_valid_prefix_fails_checksum(cls: type[TypedHash]) -> None:
    h = cls(bytes(range(32)))
    text = str(h)
    body = text.partition("_")[2]
    for other, prefix in PREFIXES.items():
        if other is cls:
            continue
        with pytest.raises(EncodingError, match="checksum"):
            parse_any(f"{prefix}_{body}")


def test_last_character_padding_bits_are_not_a_second_spelling() -> None:
    """36 bytes fill 57.6 base32 characters; the last one's 2 spare bits must be zero."""
    h = AgentKey(bytes(range(32)))
    text = str(h)
    assert len(text.partition("_")[2]) == 58
    last = BASE32.index(text[-1])
    assert last & 0b11 == 0
    for spare in (1, 2, 3):
        twin = text[:-1] + BASE32[last | spare]
        # same 36 bytes once decoded, so only a canonical-form check can refuse it
        assert base64.b32decode(twin[4:].upper() + "======") == base64.b32decode(
            text[4:].upper() + "======"
        )
        with pytest.raises(EncodingError):
            AgentKey.parse(twin)


@pytest.mark.parametrize(
    "lookalike",
    ["\u212a", "\u0131", "\u017f"],  # KELVIN SIGN -> "k", dotless i -> "I", long s -> "S"
    ids=["kelvin", "dotless-i", "long-s"],
)
def test_parse_refuses_non_ascii_lookalikes(lookalike: str) -> None:
    """str.lower()/upper() would fold these onto base32 letters: a second spelling of one key."""
    ascii_twin = {"\u212a": "k", "\u0131": "i", "\u017f": "s"}[lookalike]
    h = next(
        AgentKey(bytes([n]) * 32)
        for n in range(256)
        if ascii_twin in str(AgentKey(bytes([n]) * 32))[4:]
    )
    text = str(h)
    at = text.index(ascii_twin, 4)
    with pytest.raises(EncodingError):
        AgentKey.parse(text[:at] + lookalike + text[at + 1 :])


@pytest.mark.parametrize(
    "text",
    ["", "agt", "agt_", "xyz_aaaa", "agt_1111", "agt_aaaa", "agt-aaaa", "_", "agt_!!"],
)
def test_parse_refuses_text_that_is_not_a_hash(text: str) -> None:
    with pytest.raises(EncodingError):
        parse_any(text)


def test_parse_refuses_wrong_length_body() -> None:
    text = str(ActionHash(bytes(32)))
    for body in (text[4:-8], text[4:] + "aaaaaaaa"):
        with pytest.raises(EncodingError):
            ActionHash.parse("act_" + body)


def test_parse_takes_only_text() -> None:
    with pytest.raises(TypeError):
        parse_any(b"agt_aaaa")  # type: ignore[arg-type]


# --- kinds do not mix ---------------------------------------------------------------------------


def test_wrong_kind_is_refused_with_a_clear_message() -> None:
    agent = AgentKey(bytes(range(32)))
    with pytest.raises(EncodingError, match="expected an action hash, got an agent key"):
        ActionHash.parse(str(agent))
    with pytest.raises(EncodingError, match="expected an agent key, got an entry hash"):
        AgentKey.from_bytes(EntryHash(bytes(32)).to_bytes())


@settings(max_examples=100)
@given(typed_hashes, classes)
def test_every_other_kind_is_refused_in_text_and_on_the_wire(
    h: TypedHash, cls: type[TypedHash]
) -> None:
    if cls is type(h):
        assert cls.parse(str(h)) == h
        assert cls.from_bytes(h.to_bytes()) == h
        return
    with pytest.raises(EncodingError, match="expected"):
        cls.parse(str(h))
    with pytest.raises(EncodingError, match="expected"):
        cls.from_bytes(h.to_bytes())


def test_different_kinds_with_same_bytes_are_not_equal() -> None:
    raw = bytes(range(32))
    action: TypedHash = ActionHash(raw)
    entry: TypedHash = EntryHash(raw)
    assert action != entry
    assert len({str(cls(raw)) for cls in CLASSES}) == len(CLASSES)


# --- wire form ----------------------------------------------------------------------------------


@settings(max_examples=100)
@given(typed_hashes)
def test_wire_form_is_kind_byte_then_32_bytes(h: TypedHash) -> None:
    wire = h.to_bytes()
    assert len(wire) == 33
    assert wire[0] == type(h).KIND
    assert wire[1:] == h.raw
    assert type(h).from_bytes(wire) == h


@pytest.mark.parametrize("length", [0, 1, 32, 34, 66])
def test_from_bytes_refuses_wrong_length(length: int) -> None:
    with pytest.raises(EncodingError, match="33 bytes"):
        ActionHash.from_bytes(b"\x01" * length)


def test_from_bytes_refuses_unknown_kind_byte() -> None:
    with pytest.raises(EncodingError, match="unknown hash kind 0x7f"):
        ActionHash.from_bytes(b"\x7f" + bytes(32))


@pytest.mark.parametrize("raw", [b"", bytes(31), bytes(33), bytearray(32), "x" * 32])
def test_typed_hash_must_be_32_bytes(raw: object) -> None:
    with pytest.raises(ValueError):
        ActionHash(raw)  # type: ignore[arg-type]


# --- digests ------------------------------------------------------------------------------------


@settings(max_examples=100)
@given(st.binary(max_size=200))
def test_same_bytes_as_entry_and_as_action_give_different_digests(data: bytes) -> None:
    assert EntryHash.of(data).raw != ActionHash.of(data).raw
    digests = {blake2b_256(kind, data) for kind in HashKind}
    assert len(digests) == len(HashKind)
    assert hashlib.blake2b(data, digest_size=32).digest() not in digests


def test_digest_is_personalised_blake2b_256() -> None:
    """Pinned: changing a personalisation string would rename every hash on every chain."""
    expected = {
        HashKind.ACTION: b"conode-act",
        HashKind.ENTRY: b"conode-ent",
        HashKind.AGENT: b"conode-agt",
        HashKind.OP: b"conode-op",
        HashKind.CHARTER: b"conode-chr",
        HashKind.BUNDLE: b"conode-app",
    }
    for kind, person in expected.items():
        assert (
            blake2b_256(kind, b"abc")
            == hashlib.blake2b(b"abc", digest_size=32, person=person).digest()
        )
    assert ActionHash.of(b"abc").raw == blake2b_256(HashKind.ACTION, b"abc")


def test_short_form_is_prefix_and_eight_characters() -> None:
    h = OpHash(bytes(range(32)))
    assert h.short() == str(h)[:11]
    assert AgentKey(bytes(range(32))).short() == str(AgentKey(bytes(range(32))))[:12]


def test_hashes_are_frozen_and_hashable() -> None:
    h = ActionHash(bytes(32))
    with pytest.raises(AttributeError):
        h.raw = bytes(32)  # type: ignore[misc]
    assert {h, ActionHash(bytes(32))} == {h}
    assert repr(h) == f"ActionHash({str(h)!r})"


# -- prefixes: the one resolver -------------------------------------------------------------------


def _held(*keys: AgentKey) -> Callable[[bytes, bytes], list[bytes]]:
    return lambda lo, hi: sorted(k.raw for k in keys if lo <= k.raw <= hi)


def test_a_unique_prefix_of_eight_characters_or_more_resolves_as_tables_print_it() -> None:
    a, b = AgentKey(bytes(range(32))), AgentKey(bytes(range(1, 33)))
    held = _held(a, b)
    assert resolve(AgentKey, str(a), held) == a  # whole
    assert resolve(AgentKey, str(a)[:12], held) == a  # 8 characters after agt_
    assert resolve(AgentKey, a.short() + "…", held) == a  # as `short()` prints it in tables
    assert resolve(AgentKey, str(b)[:20].upper(), held) == b
    assert resolve(AgentKey, str(a), _held()) == a  # a whole key needs nothing held


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("agt_aaaaaaa", "too short"),
        ("agt_zzzzzzzz", "nothing held here"),
        ("agt_aaaaaaa1", "outside base32"),
    ],
)
def test_a_short_unknown_or_malformed_prefix_is_refused_with_its_reason(
    text: str, reason: str
) -> None:
    with pytest.raises(EncodingError, match=reason):
        resolve(AgentKey, text, _held(AgentKey(bytes(32))))


def test_a_prefix_shared_by_two_held_keys_asks_for_more_characters() -> None:
    a, b = AgentKey(bytes(31) + b"\x01"), AgentKey(bytes(31) + b"\x02")
    assert str(a)[:20] == str(b)[:20]
    with pytest.raises(EncodingError, match="more than one agent key"):
        resolve(AgentKey, str(a)[:20], _held(a, b))
    for length in range(53, len(str(a))):  # they part in the last bits and the checksum
        if str(a)[:length] != str(b)[:length]:
            assert resolve(AgentKey, str(a)[:length], _held(a, b)) == a
            assert resolve(AgentKey, str(b)[:length], _held(a, b)) == b


def test_the_range_of_a_prefix_is_exactly_the_keys_that_print_with_it() -> None:
    rng = random.Random(7)
    keys = [AgentKey(rng.randbytes(32)) for _ in range(300)]
    for key in keys[:50]:
        for length in (8, 9, 13, 20):
            text = str(key)[: 4 + length]
            seen: list[tuple[bytes, bytes]] = []

            def between(
                lo: bytes, hi: bytes, seen: list[tuple[bytes, bytes]] = seen
            ) -> list[bytes]:
                seen.append((lo, hi))
                return []

            with pytest.raises(EncodingError, match="nothing held here"):
                resolve(AgentKey, text, between)
            lo, hi = seen[0]
            inside = {k for k in keys if lo <= k.raw <= hi}
            assert inside == {k for k in keys if str(k).startswith(text)}
