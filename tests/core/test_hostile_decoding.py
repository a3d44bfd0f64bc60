"""Hostile input is refused at its head, before any decoder does work on what follows.

cbor2 has its own decoders for many CBOR tags (shared references, decimals,
bigfloats, regular expressions, MIME, ...), and a 185-byte nest of shared
references cost the old ``decode`` 2 s (doubling per level) before it said
no. Each test here gives a decoder an input whose *content* would fail some
other way (an indefinite length, a truncation, an expensive value) and
checks that the refusal names the *head*: so the content was never read.
Timing is measured by ``bench/hostile.py``, not asserted here.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conode import boundedjson, encoding, keyfile
from conode.apps.sdk import pack_bundle, unpack_bundle
from conode.chain import Record
from conode.chain.records import Action
from conode.dht import wire
from conode.errors import AppError, EncodingError, KeyFileError, RemoteProtocolError
from conode.validation.charter import Charter
from conode.validation.countersign import decode_message
from conode.validation.entries import PaymentBody
from conode.validation.warrants import Warrant

# every tag cbor2 decodes itself (6.x), one it does not know, and the largest tag number
TAGS = [0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260, 261, 1004]
TAGS += [43000, 55799, 6, 1000, 2**64 - 1]


def tag_head(number: int) -> bytes:
    """The head of CBOR tag ``number`` (major type 6), shortest form."""
    if number < 24:
        return bytes([0xC0 | number])
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if number < 1 << (8 * size):
            return bytes([0xC0 | extra]) + number.to_bytes(size, "big")
    raise ValueError(number)


def shared_reference_bomb(levels: int) -> bytes:
    """``[28([]), 28([29(0), 29(0)]), 28([29(1), 29(1)]), ...]``: 2**levels paths through the value."""
    out = bytearray(b"\x98" + bytes([levels + 1]) + b"\xd8\x1c\x80")
    for i in range(levels):
        ref = b"\xd8\x1d" + (bytes([i]) if i < 24 else b"\x18" + bytes([i]))
        out += b"\xd8\x1c\x82" + ref * 2
    return bytes(out)


@pytest.mark.parametrize("number", TAGS)
def test_every_tag_is_refused_at_its_head_before_what_it_holds(number: int) -> None:
    # what follows the tag is an indefinite-length string: read, it would fail as such
    with pytest.raises(EncodingError, match=f"^CBOR tag {number} is not allowed$"):
        encoding.decode(tag_head(number) + b"\x7f")


@pytest.mark.parametrize("number", [28, 4, 5, 35])
def test_a_tag_deep_inside_a_value_is_refused_as_a_tag(number: int) -> None:
    value = encoding.encode({"a": [1, 2, {"b": b"x" * 100}], "c": 3})
    data = value[:-1] + tag_head(number) + b"\x03"  # the last item, tagged
    with pytest.raises(EncodingError, match=f"CBOR tag {number} is not allowed"):
        encoding.decode(data)


def test_shared_reference_bomb_is_refused_at_its_first_tag() -> None:
    # walked or re-encoded, this value has 2**16 paths (the old decode took 0.12 s here,
    # doubling per level); refused at the first tag head it is three bytes of work
    with pytest.raises(EncodingError, match=r"^CBOR tag 28 is not allowed$"):
        encoding.decode(shared_reference_bomb(16))


def _warrant_bytes(evidence_item: bytes) -> bytes:
    """A warrant's bytes with raw CBOR ``evidence_item`` as its one piece of evidence."""
    good = encoding.encode(
        {
            "kind": "fork",
            "issuer": b"\x00" * 33,
            "evidence": [b"E"],
            "offender": b"\x00" * 33,
            "issued_at": 1,
            "signature": b"\x00" * 64,
        }
    )
    return good.replace(b"\x81\x41E", b"\x81" + evidence_item, 1)


BOMB_IN: dict[str, Callable[[bytes], object]] = {
    "encoding.decode": encoding.decode,
    "Action.from_bytes": Action.from_bytes,
    "Record.from_bytes": Record.from_bytes,
    "PaymentBody.from_bytes": PaymentBody.from_bytes,
    "Charter.from_bytes": Charter.from_bytes,
    "countersign.decode_message": decode_message,
}


@pytest.mark.parametrize("path", list(BOMB_IN))
def test_every_cbor_decoder_a_peer_reaches_refuses_the_bomb_at_its_first_tag(path: str) -> None:
    with pytest.raises(EncodingError, match="CBOR tag 28 is not allowed"):
        BOMB_IN[path](shared_reference_bomb(16))


def test_a_warrant_refuses_a_tag_in_its_evidence_before_reading_it() -> None:
    data = _warrant_bytes(tag_head(28) + b"\x7f")
    with pytest.raises(EncodingError, match="CBOR tag 28 is not allowed"):
        Warrant.from_bytes(data)


# -- msgpack envelopes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "81a161c7050568656c6c6f",  # {"a": ext 5 "hello"}
        "81a161d6ff00000001",  # {"a": timestamp ext -1}
        "81a161c70005",  # {"a": an empty ext 5}
    ],
)
def test_wire_envelopes_refuse_extension_types(raw: str) -> None:
    with pytest.raises(RemoteProtocolError, match="ext"):
        wire.loads(bytes.fromhex(raw), set())


def test_wire_envelope_nested_deeply_is_refused_with_a_reason() -> None:
    with pytest.raises(RemoteProtocolError, match="nested too deeply"):
        wire.loads(b"\x91" * 100_000 + b"\xc0", set())


# -- JSON: the local API's lines, key files ---------------------------------------------------------


def test_a_line_of_a_thousand_brackets_is_too_deep_not_a_recursion_error() -> None:
    with pytest.raises(boundedjson.JsonTooDeep):
        boundedjson.loads("[" * 1000 + "]" * 1000)
    with pytest.raises(boundedjson.JsonTooLarge):  # too deep, and too many objects
        boundedjson.loads(b'{"a":' * 100_000)


def test_json_nesting_up_to_the_limit_is_read() -> None:
    limit = boundedjson.MAX_DEPTH
    assert boundedjson.loads("[" * limit + "]" * limit) is not None
    with pytest.raises(boundedjson.JsonTooDeep):
        boundedjson.loads("[" * (limit + 1) + "]" * (limit + 1))


def test_brackets_inside_strings_are_not_nesting() -> None:
    text = json.dumps({"memo": "[" * 10_000 + '\\"{' * 100, "list": [["]]]"]]})
    assert boundedjson.depth(text) == 3
    assert boundedjson.loads(text)["list"] == [["]]]"]]


def test_an_unterminated_string_ends_the_measure_and_json_refuses_it() -> None:
    text = '["' + '\\"[' * 10_000  # every quote escaped: one string to the end
    assert boundedjson.depth(text) == 1
    with pytest.raises(ValueError):
        boundedjson.loads(text)


def _nesting(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(_nesting, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_nesting, value.values()), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab,:\n'),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(alphabet='[]{}"\\a'), inner, max_size=4)
    ),
    max_leaves=40,
)


@given(json_values)
def test_measured_depth_is_the_nesting_of_any_json_value(value: Any) -> None:
    text = json.dumps(value, ensure_ascii=False)
    assert boundedjson.depth(text) == _nesting(value)


def test_a_key_file_of_deep_brackets_is_not_a_key_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.key"
    path.write_text("[" * 5_000)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="not a key file"):
        keyfile.read_key_info(path)


# -- app bundles --------------------------------------------------------------------------------------


def _pax_bomb(digits: int) -> bytes:
    """A tar whose first member is a pax header of ``digits`` digits (tarfile's slow case)."""
    header = tarfile.TarInfo("././@PaxHeader")
    header.type, header.size = tarfile.XHDTYPE, digits
    body = b"1" * digits + b"\0" * (-digits % 512)
    return header.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict") + body + b"\0" * 1024


def test_a_bundle_with_a_pax_header_is_refused_before_tarfile_reads_it() -> None:
    # tarfile's pax parsing is quadratic in the header (Python 3.11.7: 20 KB took 1.2 s)
    with pytest.raises(AppError, match="byte 0 is not a regular file"):
        unpack_bundle(_pax_bomb(20_000))


def test_a_bundle_with_a_gnu_long_name_is_refused_at_its_header() -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("a/" + "x" * 200 + ".py")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"1"))
    with pytest.raises(AppError, match="not a regular file"):
        unpack_bundle(out.getvalue())


def test_a_canonical_bundle_still_unpacks() -> None:
    files = {"app/__init__.py": b"x = 1\n", "app/README.md": b"# hi\n" * 1000}
    assert unpack_bundle(pack_bundle(files)) == files


# -- the item limit ----------------------------------------------------------------------------------


def _items(value: Any) -> int:
    if isinstance(value, list):
        return 1 + sum(map(_items, value))
    if isinstance(value, dict):
        return 1 + sum(1 + _items(v) for v in value.values())
    return 1


cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64 - 1)
    | st.binary(max_size=300)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=60,
)


def _containers(value: Any) -> int:
    if isinstance(value, list):
        return 1 + sum(map(_containers, value))
    if isinstance(value, dict):
        return 1 + sum(map(_containers, value.values()))
    return 0


@given(cbor_values)
def test_heads_are_counted_as_items_without_decoding(value: Any) -> None:
    data = encoding.encode(value)
    items, containers = _items(value), _containers(value)
    assert encoding._over_limits(data, items, containers) is None
    assert encoding._over_limits(data, items - 1, containers) == f"more than {items - 1} CBOR items"
    if containers:
        too_many = encoding._over_limits(data, items, containers - 1)
        assert too_many == f"more than {containers - 1} arrays and maps"


def test_a_value_over_the_item_limit_is_refused_before_it_is_built() -> None:
    at_limit = encoding.encode([0] * (encoding.MAX_ITEMS - 1))  # the array and its items
    assert len(encoding.decode(at_limit)) == encoding.MAX_ITEMS - 1
    with pytest.raises(EncodingError, match="more than 65536 CBOR items"):
        encoding.decode(encoding.encode([0] * encoding.MAX_ITEMS))
    tiny_arrays = encoding.encode([[0]] * 400_000)  # 800 001 items in 800 KiB
    with pytest.raises(EncodingError, match="more than 8192 arrays and maps"):
        encoding.decode(tiny_arrays)
    at_container_limit = encoding.encode([[]] * (encoding.MAX_CONTAINERS - 1))
    assert len(encoding.decode(at_container_limit)) == encoding.MAX_CONTAINERS - 1
    with pytest.raises(EncodingError, match="more than 8192 arrays and maps"):
        encoding.decode(encoding.encode([[]] * encoding.MAX_CONTAINERS))


def test_long_strings_count_as_one_item_each() -> None:
    value = [b"x" * 70_000, "y" * 70_000] * 3
    assert encoding.decode(encoding.encode(value)) == value


def test_json_of_too_many_values_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(boundedjson.JsonTooLarge, match="more than 65536 values"):
        boundedjson.loads("[" + "0," * 70_000 + "0]")
    with pytest.raises(boundedjson.JsonTooLarge, match="more than 8192 arrays and objects"):
        boundedjson.loads("[" + "[]," * 10_000 + "[]]")
    many = "[" + "0," * 60_000 + "0]"
    assert len(boundedjson.loads(many)) == 60_001
    commas_in_strings = json.dumps({"memo": "," * 100_000 + "[" * 10_000})
    assert boundedjson.loads(commas_in_strings)["memo"].startswith(",,,")


def test_a_bundle_of_too_many_files_is_refused_at_its_headers() -> None:
    from conode.apps.sdk import MAX_BUNDLE_FILES

    files = {f"app/m{i:04d}.py": b"x = 1\n" for i in range(MAX_BUNDLE_FILES)}
    assert len(unpack_bundle(pack_bundle(files))) == MAX_BUNDLE_FILES
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i in range(MAX_BUNDLE_FILES + 1):
            info = tarfile.TarInfo(f"app/m{i:04d}.py")
            info.size, info.mode = 6, 0o644
            tar.addfile(info, io.BytesIO(b"x = 1\n"))
    with pytest.raises(AppError, match="more than 256 files"):
        unpack_bundle(out.getvalue())
