"""RFC 8949 Appendix A, split at the edge of conode's data model, and the strict decoder's refusals.

Every example inside the model must encode to exactly the RFC's bytes and
decode back to a value of the same types. Every example outside it must be
refused by ``decode``; to be sure each refusal is about the value and not
about a typo in our hex, a lenient ``cbor2.loads`` first reads the same bytes
to the RFC's value.
"""

from __future__ import annotations

import math
from typing import Any

import cbor2
import pytest

from conode.encoding import MAX_DEPTH, MAX_SIZE, decode, encode
from conode.errors import EncodingError

# (diagnostic value, hex): every Appendix A example that is inside the data model
INSIDE_MODEL: list[tuple[Any, str]] = [
    (0, "00"),
    (1, "01"),
    (10, "0a"),
    (23, "17"),
    (24, "1818"),
    (25, "1819"),
    (100, "1864"),
    (1000, "1903e8"),
    (1000000, "1a000f4240"),
    (1000000000000, "1b000000e8d4a51000"),
    (18446744073709551615, "1bffffffffffffffff"),
    (-18446744073709551616, "3bffffffffffffffff"),
    (-1, "20"),
    (-10, "29"),
    (-100, "3863"),
    (-1000, "3903e7"),
    (False, "f4"),
    (True, "f5"),
    (None, "f6"),
    (b"", "40"),
    (b"\x01\x02\x03\x04", "4401020304"),
    ("", "60"),
    ("a", "6161"),
    ("IETF", "6449455446"),
    ('"\\', "62225c"),
    ("\u00fc", "62c3bc"),
    ("\u6c34", "63e6b0b4"),
    ("\U00010151", "64f0908591"),  # "\ud800\udd51" in the RFC's JSON-style escape
    ([], "80"),
    ([1, 2, 3], "83010203"),
    ([1, [2, 3], [4, 5]], "8301820203820405"),
    (list(range(1, 26)), "98190102030405060708090a0b0c0d0e0f101112131415161718181819"),
    ({}, "a0"),
    ({"a": 1, "b": [2, 3]}, "a26161016162820203"),
    (["a", {"b": "c"}], "826161a161626163"),
    (
        {"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"},
        "a56161614161626142616361436164614461656145",
    ),
]

NAN = float("nan")
INF = float("inf")

# (what a lenient decoder reads, hex): every Appendix A example outside the model
FLOATS: list[tuple[Any, str]] = [
    (0.0, "f90000"),
    (-0.0, "f98000"),
    (1.0, "f93c00"),
    (1.1, "fb3ff199999999999a"),
    (1.5, "f93e00"),
    (65504.0, "f97bff"),
    (100000.0, "fa47c35000"),
    (3.4028234663852886e38, "fa7f7fffff"),
    (1.0e300, "fb7e37e43c8800759c"),
    (5.960464477539063e-8, "f90001"),
    (0.00006103515625, "f90400"),
    (-4.0, "f9c400"),
    (-4.1, "fbc010666666666666"),
    (INF, "f97c00"),
    (NAN, "f97e00"),
    (-INF, "f9fc00"),
    (INF, "fa7f800000"),
    (NAN, "fa7fc00000"),
    (-INF, "faff800000"),
    (INF, "fb7ff0000000000000"),
    (NAN, "fb7ff8000000000000"),
    (-INF, "fbfff0000000000000"),
]

BIGNUMS: list[tuple[Any, str]] = [
    (18446744073709551616, "c249010000000000000000"),
    (-18446744073709551617, "c349010000000000000000"),
]

# tagged and simple values: checked for "well-formed" by a lenient decode, without comparing
OTHER_OUTSIDE: list[str] = [
    "c074323031332d30332d32315432303a30343a30305a",  # 0("2013-03-21T20:04:00Z")
    "c11a514b67b0",  # 1(1363896240)
    "c1fb41d452d9ec200000",  # 1(1363896240.5)
    "d74401020304",  # 23(h'01020304')
    "d818456449455446",  # 24(h'6449455446')
    "d82076687474703a2f2f7777772e6578616d706c652e636f6d",  # 32("http://www.example.com")
    "f7",  # undefined
    "f0",  # simple(16)
    "f8ff",  # simple(255)
    "a201020304",  # {1: 2, 3: 4}: integer keys, and our maps have text keys only
]

# (the definite value it stands for, hex): indefinite-length examples
INDEFINITE: list[tuple[Any, str]] = [
    (b"\x01\x02\x03\x04\x05", "5f42010243030405ff"),
    ("streaming", "7f657374726561646d696e67ff"),
    ([], "9fff"),
    ([1, [2, 3], [4, 5]], "9f018202039f0405ffff"),
    ([1, [2, 3], [4, 5]], "9f01820203820405ff"),
    ([1, [2, 3], [4, 5]], "83018202039f0405ff"),
    ([1, [2, 3], [4, 5]], "83019f0203ff820405"),
    (list(range(1, 26)), "9f0102030405060708090a0b0c0d0e0f101112131415161718181819ff"),
    ({"a": 1, "b": [2, 3]}, "bf61610161629f0203ffff"),
    (["a", {"b": "c"}], "826161bf61626163ff"),
    ({"Fun": True, "Amt": -2}, "bf6346756ef563416d7421ff"),
]


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (so True is not 1, and 1 is not 1.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def _id(case: tuple[Any, str]) -> str:
    return case[1][:24]


# --- inside the model: exact bytes both ways ----------------------------------------------------


@pytest.mark.parametrize("case", INSIDE_MODEL, ids=_id)
def test_encode_gives_rfc8949_appendix_a_bytes(case: tuple[Any, str]) -> None:
    value, hex_ = case
    assert encode(value).hex() == hex_


@pytest.mark.parametrize("case", INSIDE_MODEL, ids=_id)
def test_decode_reads_rfc8949_appendix_a_bytes_to_same_typed_value(case: tuple[Any, str]) -> None:
    value, hex_ = case
    decoded = decode(bytes.fromhex(hex_))
    assert same(decoded, value), (decoded, value)


def test_integer_range_ends_are_exactly_the_64_bit_heads() -> None:
    assert decode(encode(2**64 - 1)) == 2**64 - 1
    assert decode(encode(-(2**64))) == -(2**64)
    with pytest.raises(ValueError):
        encode(2**64)
    with pytest.raises(ValueError):
        encode(-(2**64) - 1)


# --- outside the model: refused -----------------------------------------------------------------


@pytest.mark.parametrize("case", FLOATS, ids=_id)
def test_decode_rejects_every_float(case: tuple[Any, str]) -> None:
    value, hex_ = case
    data = bytes.fromhex(hex_)
    lenient = cbor2.loads(data)
    assert type(lenient) is float
    assert (math.isnan(lenient) and math.isnan(value)) or lenient == value
    with pytest.raises(EncodingError, match="float"):
        decode(data)


@pytest.mark.parametrize("case", BIGNUMS, ids=_id)
def test_decode_rejects_bignum(case: tuple[Any, str]) -> None:
    value, hex_ = case
    data = bytes.fromhex(hex_)
    assert cbor2.loads(data) == value
    with pytest.raises(EncodingError):
        decode(data)


def test_decode_rejects_bignum_even_when_its_value_fits_in_64_bits() -> None:
    data = bytes.fromhex("c24101")  # 2(h'01') == 1
    assert cbor2.loads(data) == 1
    with pytest.raises(EncodingError):
        decode(data)


@pytest.mark.parametrize("hex_", OTHER_OUTSIDE)
def test_decode_rejects_tags_simple_values_and_integer_keys(hex_: str) -> None:
    data = bytes.fromhex(hex_)
    cbor2.loads(data)  # well-formed CBOR: a lenient decoder reads it
    with pytest.raises(EncodingError):
        decode(data)


@pytest.mark.parametrize("case", INDEFINITE, ids=_id)
def test_decode_rejects_every_indefinite_length_example(case: tuple[Any, str]) -> None:
    value, hex_ = case
    data = bytes.fromhex(hex_)
    assert cbor2.loads(data) == value  # the same value has a definite (canonical) form...
    assert decode(encode(value)) == value
    with pytest.raises(EncodingError):  # ...and only that one is accepted
        decode(data)


@pytest.mark.parametrize(
    "hex_",
    [
        "c0",  # tag with nothing after it
        "d9d9f700",  # self-described CBOR 55799(0)
        "d81c80",  # shareable 28([])
        "d903e880",  # 1000([])
        "c6f6",  # tag 6 (unassigned) on null
        "8118c100",  # a tag inside an array
    ],
)
def test_decode_rejects_any_tag(hex_: str) -> None:
    with pytest.raises(EncodingError):
        decode(bytes.fromhex(hex_))


@pytest.mark.parametrize("hex_", ["e0", "f3", "f820", "f818", "f81f", "fc", "fd", "fe", "ff"])
def test_decode_rejects_other_simple_values_and_reserved_bytes(hex_: str) -> None:
    with pytest.raises(EncodingError):
        decode(bytes.fromhex(hex_))


@pytest.mark.parametrize(
    "hex_",
    [
        "a1400f",  # {h'': 15}: byte-string key
        "a1f500",  # {true: 0}
        "a1f600",  # {null: 0}
        "a18000",  # {[]: 0}
        "a1a000",  # {{}: 0}
    ],
)
def test_decode_rejects_non_text_map_keys(hex_: str) -> None:
    with pytest.raises(EncodingError):
        decode(bytes.fromhex(hex_))


# --- one byte form per value ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hex_", "canonical"),
    [
        ("1800", "00"),
        ("1817", "17"),
        ("190017", "17"),
        ("190018", "1818"),
        ("1900ff", "18ff"),
        ("1a0000ffff", "19ffff"),
        ("1a00000000", "00"),
        ("1b00000000ffffffff", "1affffffff"),
        ("1b0000000000000000", "00"),
        ("3800", "20"),
        ("390000", "20"),
        ("3b0000000000000000", "20"),
        ("5800", "40"),
        ("59000161", "4161"),
        ("7800", "60"),
        ("780161", "6161"),
        ("7a0000000161", "6161"),
        ("9800", "80"),
        ("990000", "80"),
        ("980101", "8101"),
        ("b800", "a0"),
        ("b90000", "a0"),
        ("b801616101", "a1616101"),
        ("811800", "8100"),  # [0] with a non-shortest item head
    ],
)
def test_decode_rejects_non_shortest_integer_or_length(hex_: str, canonical: str) -> None:
    data, good = bytes.fromhex(hex_), bytes.fromhex(canonical)
    assert cbor2.loads(data) == cbor2.loads(good)  # the same value...
    assert decode(good) == cbor2.loads(good)  # ...whose shortest form is accepted
    with pytest.raises(EncodingError):
        decode(data)


@pytest.mark.parametrize(
    ("hex_", "canonical"),
    [
        ("a2616201616101", "a2616101616201"),  # {"b": 1, "a": 1}
        ("a262616101616202", "a261620262616101"),  # "aa" before "b": length first
        ("a262c3a90162616202", "a26261620262c3a901"),  # "é" before "ab"
        ("a3616301616201616101", "a3616101616201616301"),
    ],
)
def test_decode_rejects_unsorted_map_keys(hex_: str, canonical: str) -> None:
    data, good = bytes.fromhex(hex_), bytes.fromhex(canonical)
    assert cbor2.loads(data) == cbor2.loads(good)
    assert decode(good) == cbor2.loads(good)
    assert encode(cbor2.loads(data)) == good
    with pytest.raises(EncodingError):
        decode(data)


@pytest.mark.parametrize(
    "hex_",
    [
        "a2616101616102",  # {"a": 1, "a": 2}
        "a2616101616101",  # {"a": 1, "a": 1}
        "a3616101616201616102",  # {"a": 1, "b": 1, "a": 2}
    ],
)
def test_decode_rejects_duplicate_map_keys(hex_: str) -> None:
    with pytest.raises(EncodingError):
        decode(bytes.fromhex(hex_))


@pytest.mark.parametrize("hex_", ["0001", "8000", "f6f6", "a000", "4000", "6000", "0000"])
def test_decode_rejects_trailing_bytes(hex_: str) -> None:
    with pytest.raises(EncodingError):
        decode(bytes.fromhex(hex_))


@pytest.mark.parametrize(
    "hex_",
    ["", "18", "1900", "1a000000", "1b00000000000000", "38", "5801", "4201", "62", "6261",
     "81", "8201", "a1", "a16161", "9f", "d8", "f8"],
)
def test_decode_rejects_truncated_input(hex_: str) -> None:
    with pytest.raises(EncodingError):
        decode(bytes.fromhex(hex_))


def test_decode_rejects_every_proper_prefix_of_a_valid_encoding() -> None:
    data = encode({"amount": 125, "memo": "coffee \u2615", "to": b"\x03" * 33, "tags": [1, [2]]})
    for cut in range(len(data)):
        with pytest.raises(EncodingError):
            decode(data[:cut])


@pytest.mark.parametrize(
    "hex_",
    [
        "61ff",  # 0xff is never UTF-8
        "62c328",  # bad continuation byte
        "62c0af",  # overlong "/"
        "63eda080",  # an encoded surrogate (CESU-8)
        "64f4908080",  # above U+10FFFF
        "6180",  # lone continuation byte
        "8162c328",  # inside an array
        "a162c32800",  # as a map key
    ],
)
def test_decode_rejects_invalid_utf8_in_text(hex_: str) -> None:
    with pytest.raises(EncodingError):
        decode(bytes.fromhex(hex_))


def test_decode_rejects_input_over_max_size() -> None:
    data = encode(b"x" * 100)
    assert decode(data, max_size=len(data)) == b"x" * 100
    with pytest.raises(EncodingError, match="over the limit"):
        decode(data, max_size=len(data) - 1)


def test_decode_default_limit_is_max_size() -> None:
    at_limit = encode(b"\x00" * (MAX_SIZE - 5))  # 5 bytes of head
    assert len(at_limit) == MAX_SIZE
    assert len(decode(at_limit)) == MAX_SIZE - 5
    over = encode(b"\x00" * (MAX_SIZE - 4))
    with pytest.raises(EncodingError, match="over the limit"):
        decode(over)


def _nested_list(levels: int, innermost: Any) -> Any:
    value = innermost
    for _ in range(levels):
        value = [value]
    return value


def _nested_map(levels: int, innermost: Any) -> Any:
    value = innermost
    for _ in range(levels):
        value = {"k": value}
    return value


@pytest.mark.parametrize("nest", [_nested_list, _nested_map])
def test_nesting_up_to_max_depth_round_trips(nest: Any) -> None:
    deepest = nest(MAX_DEPTH, 0)  # MAX_DEPTH containers, then a scalar
    assert decode(encode(deepest)) == deepest
    empty_innermost = nest(MAX_DEPTH, [])
    assert decode(encode(empty_innermost)) == empty_innermost


@pytest.mark.parametrize("nest", [_nested_list, _nested_map])
def test_nesting_deeper_than_max_depth_is_refused_both_ways(nest: Any) -> None:
    too_deep = nest(MAX_DEPTH + 1, 0)
    with pytest.raises(ValueError, match="deeper"):
        encode(too_deep)
    data = cbor2.dumps(too_deep, canonical=True)
    with pytest.raises(EncodingError):
        decode(data)


@pytest.mark.parametrize("levels", [MAX_DEPTH + 2, 1000, 100_000])
def test_decode_rejects_deep_nesting_without_recursing_into_it(levels: int) -> None:
    with pytest.raises(EncodingError):
        decode(b"\x81" * levels + b"\x00")


def test_decode_errors_are_one_readable_line() -> None:
    for hex_ in ["1800", "f97c00", "5b7fffffffffffffff", "a2616101616102", "0001", "c0"]:
        with pytest.raises(EncodingError) as info:
            decode(bytes.fromhex(hex_))
        message = str(info.value)
        assert message and "\n" not in message


def test_decode_takes_only_bytes() -> None:
    with pytest.raises(TypeError):
        decode(bytearray(b"\x00"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        decode("00")  # type: ignore[arg-type]
