"""Reconciliation messages: one byte form each, and anything else a peer sends is refused cleanly."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conode.dht.arcs import RING, Arc
from conode.dht.itemset import HeldItems, Item
from conode.dht.reconcile import Reconciler, Settings, opening_span
from conode.dht.reconcile_wire import (
    MAX_IDS,
    MAX_MESSAGE,
    Diff,
    Fingerprint,
    IdList,
    Match,
    Pass,
    Range,
    decode_message,
    decode_opening,
    encode_message,
)
from conode.errors import ConodeError, EncodingError, LocalProtocolError, RemoteProtocolError
from conode.hashes import ActionHash

SPAN = Arc(RING - 100, 1000)  # wraps past 0; relative locations 0..999
FP = bytes(range(16))


def key(rel: int, fill: int = 0x42) -> tuple[int, bytes]:
    return (rel, bytes([fill]) * 32)


# -- one byte form -----------------------------------------------------------------------------


def test_a_message_reads_back_as_written_byte_for_byte() -> None:
    ranges: list[Range] = [
        Pass((5, b"")),
        Fingerprint((5, b"\x80"), FP),
        IdList((9, b""), (key(5, 0x90), key(7))),
        Diff((20, b"\x01"), 10, (0, 9), (key(9), key(20, 0x00))),
        Match((SPAN.length, b"")),
    ]
    data = encode_message(SPAN, ranges, opening=True)
    assert decode_opening(data) == (SPAN, ranges)
    assert encode_message(SPAN, ranges[1:]) != data
    assert decode_message(encode_message(SPAN, ranges), SPAN) == ranges


def documented_example() -> bytes:
    """The example opening of docs/protocol.md section 11, read from the page's hex column."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    block = text.split("01                        version 1", 1)[1].split("```", 1)[0]
    data = b"\x01"
    for line in block.strip().splitlines():
        column = re.split(r"\s{2,}", line.strip())[0]
        data += bytes.fromhex(re.sub(r"([0-9a-f]{2})\N{MULTIPLICATION SIGN}(\d+)", lambda m: m[1] * int(m[2]), column))
    return data


def test_the_documented_example_is_what_the_encoder_writes() -> None:
    data = encode_message(
        Arc(0x10000000, 0x20000000),
        [Fingerprint((0x1000, b""), bytes(16)), IdList((0x20000000, b""), (key(0x1800, 0xAA),))],
        opening=True,
    )
    assert data == documented_example()
    assert len(data) == 1 + 4 + 5 + 3 + 1 + 16 + 1 + 2 + 2 + 32


@st.composite
def valid_messages(draw: st.DrawFn) -> tuple[Arc, list[Range]]:
    span = draw(st.sampled_from([SPAN, Arc.full(), Arc(7, 3)]))
    rels = sorted(set(draw(st.lists(st.integers(0, span.length - 1), max_size=6))))
    bounds = [(rel, draw(st.sampled_from([b"", b"\x01", b"\x00\x07", bytes([0xFF]) * 32]))) for rel in rels]
    bounds = sorted(set(bounds))
    if draw(st.booleans()) or not bounds:
        bounds.append((span.length, b""))
    ranges: list[Range] = []
    lower = (0, b"")
    for upper in bounds:
        if upper <= lower:
            continue
        kind = draw(st.sampled_from(["pass", "match", "fp", "ids", "diff"]))
        if kind == "pass" and (not ranges or isinstance(ranges[-1], Pass)):
            kind = "match"
        inside = [k for k in (key(lower[0], 0xFF), key(upper[0], 0x00)) if lower <= k < upper]
        if kind == "pass":
            ranges.append(Pass(upper))
        elif kind == "match":
            ranges.append(Match(upper))
        elif kind == "fp":
            ranges.append(Fingerprint(upper, draw(st.binary(min_size=16, max_size=16))))
        elif kind == "ids":
            ranges.append(IdList(upper, tuple(inside)))
        else:
            listed = draw(st.integers(0, 20))
            lacks = tuple(sorted(set(draw(st.lists(st.integers(0, max(listed - 1, 0)), max_size=listed)))))
            ranges.append(Diff(upper, listed, lacks if listed else (), tuple(inside)))
        lower = upper
    if ranges and isinstance(ranges[-1], Pass):
        ranges.pop()
    return span, ranges


@settings(max_examples=300)
@given(valid_messages())
def test_every_message_round_trips(message: tuple[Arc, list[Range]]) -> None:
    span, ranges = message
    assert decode_opening(encode_message(span, ranges, opening=True)) == (span, ranges)
    assert decode_message(encode_message(span, ranges), span) == ranges


def accepted_bytes_are_canonical(data: bytes, span: Arc) -> None:
    """``data`` is refused with EncodingError, or it is exactly what the encoder writes for what it holds."""
    try:
        opened_span, opened = decode_opening(data)
    except EncodingError:
        pass
    else:
        assert encode_message(opened_span, opened, opening=True) == data
    try:
        ranges = decode_message(data, span)
    except EncodingError:
        return
    assert encode_message(span, ranges) == data


# bytes that look like message parts, so random input often gets past the version byte
message_tokens = st.one_of(
    st.sampled_from([b"\x00", b"\x01", b"\x02", b"\x03", b"\x04", b"\x05", b"\x7f", b"\x80", b"\x81\x00",
                     b"\xff\xff\xff\xff\x0f", b"\x20", bytes(16), b"\x42" * 32]),
    st.binary(min_size=1, max_size=3),
)


@settings(max_examples=500)
@given(
    st.lists(message_tokens, max_size=30).map(lambda parts: b"\x01" + b"".join(parts)),
    st.sampled_from([SPAN, Arc.full()]),
)
def test_whatever_the_reader_accepts_has_one_byte_form(data: bytes, span: Arc) -> None:
    accepted_bytes_are_canonical(data, span)


@settings(max_examples=300)
@given(valid_messages(), st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=3))
def test_a_valid_message_with_bytes_changed_is_refused_or_still_canonical(
    message: tuple[Arc, list[Range]], edits: list[tuple[int, int]]
) -> None:
    span, ranges = message
    data = bytearray(encode_message(span, ranges, opening=True))
    for position, byte in edits:
        data[position % len(data)] = byte
    accepted_bytes_are_canonical(bytes(data), span)


# -- refused -----------------------------------------------------------------------------------

BAD = {
    "empty": b"",
    "another version": b"\x02",
    "a bound past the end": b"\x01" + b"\x8a\x08\x00\x01",  # rel 1033 > 999
    "a non-shortest varint": b"\x01\x81\x00\x00\x01",
    "a varint over 5 bytes": b"\x01\xff\xff\xff\xff\xff\x01",
    "a prefix over 32 bytes": b"\x01\x02\x21" + b"\x01" * 33 + b"\x01",
    "a prefix ending in zero": b"\x01\x02\x01\x00\x01",
    "bounds that do not increase": b"\x01\x02\x00\x01\x01\x00\x01",
    "an empty first range": b"\x01\x01\x00\x01",
    "a range after the end": b"\x01\x00\x01\x02\x00\x01",
    "an unknown mode": b"\x01\x00\x05",
    "a truncated fingerprint": b"\x01\x00\x02" + b"\x00" * 15,
    "a trailing PASS": b"\x01\x02\x00\x01\x03\x00\x00",
    "two PASS ranges": b"\x01\x02\x00\x00\x02\x00\x00\x00\x01",
    "keys out of order": b"\x01\x00\x03\x02\x05" + b"\x02" * 32 + b"\x00" + b"\x01" * 32,
    "a key past its range": b"\x01\x06\x00\x03\x01\x06" + b"\x01" * 32,
    "too many keys": b"\x01\x00\x03\x81\x08",
    "bitmap bits past the listed count": b"\x01\x00\x04\x03\x08\x00",
    "a DIFF answering too many keys": b"\x01\x00\x04\x81\x08",
    "bytes after the last key": b"\x01\x00\x03\x00\x07",
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_malformed_message_is_refused_with_a_reason(name: str) -> None:
    with pytest.raises(EncodingError):
        decode_message(BAD[name], SPAN)


def test_a_message_over_the_limit_is_refused_before_it_is_read() -> None:
    with pytest.raises(EncodingError, match="over the limit"):
        decode_message(b"\x01" + b"\x00" * MAX_MESSAGE, SPAN)
    with pytest.raises(EncodingError, match="over the limit"):
        decode_message(b"\x01\x00\x01", SPAN, max_size=2)


@pytest.mark.parametrize(
    "opening",
    [
        b"\x01\x00\x00\x00",
        b"\x01\x00\x00\x00\x05\x00",
        b"\x01\x00\x00\x00\x07\x80\x80\x80\x80\x10",
        b"\x01\x00\x00\x00\x07\x80\x80\x80\x80\x20",
    ],
    ids=["truncated span", "empty span", "a whole ring that does not start at 0", "a span over 2**32"],
)
def test_a_malformed_opening_is_refused(opening: bytes) -> None:
    with pytest.raises(EncodingError):
        decode_opening(opening)
    with pytest.raises(RemoteProtocolError):
        opening_span(opening)


# -- refused by the session --------------------------------------------------------------------


def held(count: int, seed: int) -> HeldItems:
    rnd = random.Random(seed)
    return HeldItems(Item(rnd.randrange(RING), ActionHash(rnd.randbytes(32))) for _ in range(count))


def started(count: int = 200) -> tuple[Reconciler, bytes]:
    """A session whose responder answered the opening with a split; the initiator and the split."""
    first, opening = Reconciler.initiate(held(count, 1), Arc.full())
    _, reply = Reconciler.accept(held(count, 2), opening)
    assert reply is not None
    return first, reply


def test_an_answer_to_a_range_never_asked_about_is_refused() -> None:
    rnd = random.Random(4)
    common = [Item(rnd.randrange(RING // 2), ActionHash(rnd.randbytes(32))) for _ in range(300)]
    last = Item(RING - 1, ActionHash(bytes(32)))
    first, opening = Reconciler.initiate(HeldItems([*common, last]), Arc.full())
    _, split = Reconciler.accept(HeldItems(common), opening)
    assert split is not None
    first.receive(split)  # all parts match but the last: first now asks only about the ring's end
    stray = encode_message(Arc.full(), [Pass((10, b"")), Match((20, b""))])
    with pytest.raises(RemoteProtocolError, match="did not ask"):
        first.receive(stray)
    with pytest.raises(LocalProtocolError):
        first.receive(stray)  # a failed session takes nothing more


def test_a_split_into_one_part_is_refused() -> None:
    first, _ = Reconciler.initiate(held(200, 1), Arc.full())
    echo = encode_message(Arc.full(), [Fingerprint((RING, b""), FP)])
    with pytest.raises(RemoteProtocolError, match="neither settles nor splits"):
        first.receive(echo)


def test_an_answer_that_leaves_part_of_its_range_unsaid_is_refused() -> None:
    first, _ = Reconciler.initiate(held(200, 1), Arc.full())
    half = encode_message(Arc.full(), [Match((RING // 2, b""))])
    with pytest.raises(RemoteProtocolError, match="unsaid"):
        first.receive(half)


def test_a_message_that_answers_nothing_is_refused() -> None:
    first, _ = Reconciler.initiate(held(200, 1), Arc.full())
    with pytest.raises(RemoteProtocolError, match="answers none"):
        first.receive(b"\x01")


def test_a_diff_must_answer_an_idlist_of_its_size_and_offer_only_new_keys() -> None:
    items = held(3, 1)
    _, opening = Reconciler.initiate(items, Arc.full())  # 3 items: an IDLIST of them
    listed = decode_opening(opening)[1][0]
    assert isinstance(listed, IdList) and len(listed.keys) == 3
    end = (RING, b"")
    for diff, reason in [
        (Diff(end, 2, (), ()), "answers 2 keys"),
        (Diff(end, 3, (), (listed.keys[0],)), "listed"),
    ]:
        session, _ = Reconciler.initiate(items, Arc.full())
        with pytest.raises(RemoteProtocolError, match=reason):
            session.receive(encode_message(Arc.full(), [diff]))
    session, _ = Reconciler.initiate(held(200, 1), Arc.full())  # a FINGERPRINT, not an IDLIST
    with pytest.raises(RemoteProtocolError, match="answers a FINGERPRINT"):
        session.receive(encode_message(Arc.full(), [Diff(end, 0, (), ())]))
    assert MAX_IDS >= 3


def test_an_opening_must_ask_about_the_whole_span() -> None:
    part = encode_message(Arc.full(), [Fingerprint((5, b""), FP)], opening=True)
    with pytest.raises(RemoteProtocolError, match="whole span"):
        Reconciler.accept(held(10, 1), part)
    answer = encode_message(Arc.full(), [Match((RING, b""))], opening=True)
    with pytest.raises(RemoteProtocolError, match="only asks"):
        Reconciler.accept(held(10, 1), answer)


def test_a_session_that_runs_too_long_is_cut_off() -> None:
    s = Settings(max_messages=3)
    first, opening = Reconciler.initiate(held(5_000, 1), Arc.full(), s)
    second, reply = Reconciler.accept(held(5_000, 2), opening, s)
    assert reply is not None
    third = first.receive(reply)
    assert third is not None
    with pytest.raises(RemoteProtocolError, match="not finished after 3 messages"):
        second.receive(third)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_mutated_message_is_refused_or_taken_never_crashes(data: st.DataObject) -> None:
    first, reply = started()
    mutated = bytearray(reply)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(mutated) - 1))
        choice = data.draw(st.sampled_from(["set", "insert", "delete"]))
        if choice == "set":
            mutated[at] = data.draw(st.integers(0, 255))
        elif choice == "insert":
            mutated[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        elif len(mutated) > 1:
            del mutated[at]
    try:
        first.receive(bytes(mutated))
    except ConodeError as exc:
        assert isinstance(exc, RemoteProtocolError)
        assert isinstance(exc.__cause__, EncodingError) or "malformed" not in str(exc)
