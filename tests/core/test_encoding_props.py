"""Properties of conode's canonical CBOR: round trips, one byte form per value, key order, refusals.

The uniqueness property is the one that matters for hashing and signing: a
second, independent CBOR writer below (``_write``) produces *other* valid
encodings of the same value (longer integer and length heads, indefinite
lengths, chunked strings, reordered keys, a self-describe tag), a lenient
decoder confirms that each one means the same value, and ``decode`` must
refuse every one of them that is not byte-for-byte ``encode(value)``.
"""

from __future__ import annotations

import decimal
import enum
import fractions
import itertools
import random
import struct
from collections.abc import Callable, Mapping
from typing import Any

import cbor2
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from conode.encoding import MAX_DEPTH, decode, encode
from conode.errors import EncodingError

INT_MIN, INT_MAX = -(2**64), 2**64 - 1

ints = st.one_of(
    st.integers(min_value=-30, max_value=30),
    st.integers(min_value=INT_MIN, max_value=INT_MAX),
    st.sampled_from([23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, INT_MAX,
                     -24, -25, -256, -257, -65536, -65537, -(2**32), -(2**32) - 1, INT_MIN]),
)
texts = st.text(max_size=12)
scalars = st.one_of(st.none(), st.booleans(), ints, st.binary(max_size=30), texts)


def _depth(value: Any) -> int:
    if isinstance(value, (list, tuple)):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


def _model(leaves: st.SearchStrategy[Any], *, tuples: bool = False) -> st.SearchStrategy[Any]:
    def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        seqs = st.lists(children, max_size=5)
        if tuples:
            seqs = st.one_of(seqs, seqs.map(tuple))
        return st.one_of(seqs, st.dictionaries(texts, children, max_size=5))

    return st.recursive(leaves, extend, max_leaves=25).filter(lambda v: _depth(v) <= MAX_DEPTH)


values = _model(scalars)
"""Every value of the data model (lists and text-keyed dicts of the scalars)."""

values_with_tuples = _model(scalars, tuples=True)


def normalise(value: Any) -> Any:
    """What decoding gives back for an encodable value: tuples become lists."""
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    if isinstance(value, Mapping):
        return {k: normalise(v) for k, v in value.items()}
    return value


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (``True`` is not ``1``)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


# --- an independent CBOR writer that may take every legal liberty -------------------------------

def _head(major: int, arg: int, rng: random.Random | None) -> bytes:
    """A head for ``arg``; with ``rng``, any legal width, not only the shortest."""
    widths = [w for w, limit in ((0, 24), (1, 2**8), (2, 2**16), (4, 2**32), (8, 2**64))
              if arg < limit]
    # mostly the shortest, so that a value has one liberty or a few, not dozens
    width = widths[0] if rng is None or rng.random() < 0.7 else rng.choice(widths)
    if width == 0:
        return bytes([major << 5 | arg])
    info = {1: 24, 2: 25, 4: 26, 8: 27}[width]
    return bytes([major << 5 | info]) + arg.to_bytes(width, "big")


def _chunks(rng: random.Random, n: int) -> list[tuple[int, int]]:
    cuts = sorted(rng.randint(0, n) for _ in range(rng.randint(0, 3)))
    bounds = [0, *cuts, n]
    return list(itertools.pairwise(bounds))


def _write(value: Any, rng: random.Random | None) -> bytes:
    """CBOR for ``value``; ``rng=None`` writes RFC 8949 4.2.1 deterministic bytes."""
    if value is None:
        return b"\xf6"
    if value is True:
        return b"\xf5"
    if value is False:
        return b"\xf4"
    if isinstance(value, int):
        return _head(0, value, rng) if value >= 0 else _head(1, -1 - value, rng)
    if isinstance(value, (bytes, str)):
        major = 2 if isinstance(value, bytes) else 3
        if rng is not None and rng.random() < 0.2:  # indefinite length, in definite chunks
            out = bytes([major << 5 | 31])
            for start, end in _chunks(rng, len(value)):
                piece = value[start:end]
                raw = piece if isinstance(piece, bytes) else piece.encode()
                out += _head(major, len(raw), rng) + raw
            return out + b"\xff"
        raw = value if isinstance(value, bytes) else value.encode()
        return _head(major, len(raw), rng) + raw
    if isinstance(value, (list, tuple)):
        items = b"".join(_write(v, rng) for v in value)
        if rng is not None and rng.random() < 0.2:
            return b"\x9f" + items + b"\xff"
        return _head(4, len(value), rng) + items
    if isinstance(value, dict):
        pairs = [(_write(k, None), k) for k in value]
        pairs.sort()  # bytewise order of the encoded keys (RFC 8949 4.2.1)
        if rng is not None and rng.random() < 0.3:
            rng.shuffle(pairs)
        body = b"".join(_write(k, rng) + _write(value[k], rng) for _, k in pairs)
        if rng is not None and rng.random() < 0.2:
            return b"\xbf" + body + b"\xff"
        return _head(5, len(value), rng) + body
    raise AssertionError(f"not a model value: {value!r}")


# --- properties -----------------------------------------------------------------------------------


@settings(max_examples=300)
@given(values_with_tuples)
def test_decode_inverts_encode(value: Any) -> None:
    assert same(decode(encode(value)), normalise(value))


@settings(max_examples=300)
@given(values)
def test_encode_matches_independent_rfc8949_deterministic_writer(value: Any) -> None:
    assert encode(value) == _write(value, None)


@settings(max_examples=400)
@given(values, st.randoms(use_true_random=False))
def test_every_value_has_exactly_one_accepted_encoding(value: Any, rng: random.Random) -> None:
    canonical = encode(value)
    other = _write(value, rng)
    if rng.random() < 0.1:
        other = b"\xd9\xd9\xf7" + other  # self-described CBOR: same value, one tag more
    # it really is a CBOR encoding of the same value (cbor2 reads arrays under a tag as tuples)
    assert normalise(cbor2.loads(other)) == value
    if other == canonical:
        assert same(decode(other), value)
    else:
        with pytest.raises(EncodingError):
            decode(other)


@settings(max_examples=200)
@given(st.dictionaries(st.text(max_size=6), scalars, min_size=2, max_size=8))
@example({"\u00e9": 0, "ab": 1})  # 2 bytes both: bytewise "ab" < "é" though "é" is 1 char
@example({"b": 0, "aa": 1})  # shorter encoded key first
@example({"\U00010151": 0, "aaa": 1, "aaaa": 2})  # 4 UTF-8 bytes vs 3 and 4 ASCII
def test_map_keys_are_in_bytewise_order_of_their_encodings(mapping: dict[str, Any]) -> None:
    data = encode(mapping)
    order = sorted(mapping, key=lambda k: encode(k))
    expected = _head(5, len(mapping), None) + b"".join(encode(k) + encode(mapping[k])
                                                      for k in order)
    assert data == expected
    assert list(decode(data)) == order


@settings(max_examples=200)
@given(st.dictionaries(st.text(max_size=6), scalars, min_size=2, max_size=6), st.data())
def test_decode_rejects_any_other_key_order(mapping: dict[str, Any], data: st.DataObject) -> None:
    keys = data.draw(st.permutations(sorted(mapping, key=lambda k: encode(k))))
    sorted_keys = sorted(mapping, key=lambda k: encode(k))
    assume(keys != sorted_keys)
    shuffled = _head(5, len(mapping), None) + b"".join(encode(k) + encode(mapping[k])
                                                       for k in keys)
    with pytest.raises(EncodingError):
        decode(shuffled)


@settings(max_examples=200)
@given(values, st.integers(min_value=0, max_value=255))
def test_decode_rejects_any_trailing_byte(value: Any, extra: int) -> None:
    with pytest.raises(EncodingError):
        decode(encode(value) + bytes([extra]))


# --- what encode refuses ----------------------------------------------------------------------


def _poison(bad: Any) -> st.SearchStrategy[Any]:
    """Model values with ``bad`` somewhere inside, at the top or nested."""
    wrappers: list[Callable[[Any, Any], Any]] = [
        lambda v, b: b,
        lambda v, b: [v, b],
        lambda v, b: (b, v),
        lambda v, b: {"k": b, "v": v},
        lambda v, b: [{"x": [v, {"y": b}]}],
    ]
    return st.builds(lambda wrap, v: wrap(v, bad), st.sampled_from(wrappers), values)


@settings(max_examples=100)
@given(st.floats(allow_nan=True, allow_infinity=True).flatmap(_poison))
def test_encode_rejects_floats_anywhere(value: Any) -> None:
    with pytest.raises(TypeError, match="float"):
        encode(value)


class Color(enum.IntEnum):
    RED = 1


class Text(str):
    pass


OTHER_TYPES = [
    1.0,
    float("nan"),
    {1, 2},
    frozenset(),
    bytearray(b"x"),
    memoryview(b"x"),
    decimal.Decimal(1),
    fractions.Fraction(1, 3),
    1j,
    object(),
    Color.RED,  # an int subclass: not silently encoded as an int
    Text("x"),
    struct,  # a module
    Ellipsis,
]


@pytest.mark.parametrize("bad", OTHER_TYPES, ids=lambda b: type(b).__name__)
def test_encode_rejects_types_outside_the_model(bad: Any) -> None:
    for value in (bad, [bad], {"k": bad}):
        with pytest.raises(TypeError):
            encode(value)


@settings(max_examples=100)
@given(
    st.one_of(st.integers(), st.binary(max_size=4), st.none(), st.booleans(),
              st.tuples(st.integers())),
    scalars,
)
def test_encode_rejects_non_text_map_keys(key: Any, item: Any) -> None:
    with pytest.raises(TypeError, match="keys must be text"):
        encode({key: item})
    with pytest.raises(TypeError, match="keys must be text"):
        encode([{"ok": 1, key: item}])


@settings(max_examples=100)
@given(st.one_of(st.integers(max_value=INT_MIN - 1), st.integers(min_value=INT_MAX + 1))
       .flatmap(_poison))
def test_encode_rejects_integers_outside_64_bit_range(value: Any) -> None:
    with pytest.raises(ValueError, match="64-bit"):
        encode(value)


def test_encode_rejects_cycles_instead_of_recursing_forever() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="deeper"):
        encode(loop)
