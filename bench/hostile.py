"""Hostile input: how long a node takes to refuse what strangers send, next to honest input.

Each *attack* is a function that takes the options and returns its figures;
``ATTACKS`` names them and ``--only`` picks some. This file has the decoding
attack; the attacks measured against a running node (hostile hellos, the
pending fill, a ``chains`` flood, idle sockets, API exhaustion: honest p95
quiet and under attack, RSS, CPU-seconds) are more functions of the same
shape, whose figures (``honest_p95_ratio``, ``rss_peak_mb``) join the last line.

The decoding attack: for every decoding path a peer or a local client can
reach (canonical CBOR, records, countersigning messages, charters, warrants,
wire envelopes, API request lines, key files, app bundles), a corpus of
hostile inputs (a tag bomb of each tag kind cbor2 knows and of unknown ones,
nested shared references, a tag after a whole value, deep nesting, huge
declared lengths, truncations, indefinite lengths, many tiny items with the
fault at the end, non-canonical forms, random junk), each at sizes up to
the largest that path accepts. Every input must be refused; the time of the
refusal is the best of three calls. Printed per path: the worst refusal and
its input, next to the time to decode an honest input of the same size (the
reference). ``worst_refusal_ms`` is the worst over every input of at most
4 MiB (target <= 50 ms); ``warrant_64mib_worst_refusal_ms`` the worst of the
stored-warrant path, which accepts up to 64 MiB (not in ``--quick``).

Usage: ``python bench/hostile.py [--quick] [--only decoding]``. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conode import boundedjson, encoding, keyfile
from conode.apps.sdk import MAX_BUNDLE_FILES, pack_bundle, unpack_bundle
from conode.chain import ActionKind, Record, author_record
from conode.crypto import Signer
from conode.dht import wire
from conode.dht.transport import MAX_MESSAGE
from conode.errors import ConodeError
from conode.hashes import AgentKey
from conode.store.node import MAX_BUNDLE
from conode.testing.network import make_charter
from conode.validation.charter import Charter
from conode.validation.countersign import (
    MAX_BODY_SIZE,
    Abort,
    SessionId,
    decode_message,
    encode_message,
)
from conode.validation.warrants import Warrant

KIB, MIB = 1 << 10, 1 << 20
TARGET_MS = 50.0
TARGET_SIZE = 4 * MIB
SIGNER = Signer(b"\x05" * 32)
TAGS = [0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260, 261, 1004]
TAGS += [43000, 55799, 6, 1000, 2**64 - 1]


# -- input makers ----------------------------------------------------------------------------------


def head(major: int, value: int) -> bytes:
    """A CBOR head, shortest form."""
    if value < 24:
        return bytes([major << 5 | value])
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * size):
            return bytes([major << 5 | extra]) + value.to_bytes(size, "big")
    raise ValueError(value)


def honest_cbor(size: int) -> bytes:
    """Canonical CBOR of about ``size`` bytes: a map of records-like byte strings."""
    items = max(1, size // 110)
    return encoding.encode({"items": [b"x" * 100] * items, "n": items})


def tiny_items(size: int, last: bytes) -> bytes:
    """An array of ``size`` one-byte items whose last is ``last``: all of it read before the fault."""
    count = max(1, size - 9 - len(last))
    return head(4, count + 1) + b"\x00" * count + last


def cbor_corpus(size: int, rng: random.Random) -> Iterator[tuple[str, bytes]]:
    """Hostile CBOR of about ``size`` bytes (each must be refused by every CBOR path)."""
    for tag in TAGS:
        yield f"tag {tag} nested", head(6, tag) * max(1, size // len(head(6, tag))) + b"\x00"
    levels = min(250, max(1, size // 8))
    bomb = bytearray(b"\x98" + bytes([levels + 1]) + b"\xd8\x1c\x80")
    for i in range(levels):
        ref = b"\xd8\x1d" + head(0, i)
        bomb += b"\xd8\x1c\x82" + ref * 2
    yield "shared-reference nest", bytes(bomb)
    body = honest_cbor(size)
    yield "tag 28 after a whole value", head(4, 2) + body + b"\xd8\x1c\x80"
    bigfloat = b"\xc5\x82\x1b\x7f" + b"\xff" * 7 + b"\x01"  # 5([2**63 - 1, 1])
    yield "bigfloat 2**(2**63) after a whole value", head(4, 2) + body + bigfloat
    yield "deep arrays", b"\x81" * size + b"\x00"
    yield "deep maps", b"\xa1\x61a" * (size // 3) + b"\x00"
    yield "indefinite arrays", b"\x9f" * size
    yield "indefinite byte string", b"\x5f" + b"\x41x" * (size // 2) + b"\xff"
    for name, major in (("bytes", 2), ("text", 3), ("array", 4), ("map", 5)):
        declared = bytes([major << 5 | 27]) + b"\x7f" + b"\xff" * 7
        yield f"huge declared {name} length", declared + b"\x00" * size
    yield "truncated whole value", body[:-1]
    yield "trailing byte", body + b"\x00"
    yield "many tiny items, a float last", tiny_items(size, b"\xfb" + b"\x00" * 8)
    yield "many tiny items, undefined last", tiny_items(size, b"\xf7")
    yield (
        "many tiny maps, an int key last",
        head(4, size // 3) + b"\xa1\x60\x00" * (size // 3 - 1) + b"\xa1\x00\x00",
    )
    yield (
        "many tiny arrays, non-canonical last",
        head(4, size // 2) + b"\x81\x00" * (size // 2 - 1) + b"\x81\x18\x00",
    )
    yield "random junk", rng.randbytes(size)


def msgpack_corpus(size: int, rng: random.Random) -> Iterator[tuple[str, bytes]]:
    """Hostile msgpack envelopes of about ``size`` bytes."""
    yield "deep arrays", b"\x91" * size + b"\xc0"
    yield "deep maps", b"\x81\xa1a" * (size // 3) + b"\xc0"
    yield "huge declared bin length", b"\x81\xa1a\xc6\xff\xff\xff\xff" + b"\x00" * size
    yield "huge declared array length", b"\x81\xa1a\xdd\xff\xff\xff\xff" + b"\x00" * size
    yield "extension types", b"\x81\xa1a\xdc\x27\x10" + b"\xd4\x05\x00" * min(10_000, size // 3)
    per = 10_000
    arrays = max(1, size // (per + 3))
    nested = (
        b"\xdc" + arrays.to_bytes(2, "big")
        if arrays < 65536
        else b"\xdd" + arrays.to_bytes(4, "big")
    )
    tiny = nested + (b"\xdc" + per.to_bytes(2, "big") + b"\xc0" * per) * arrays
    yield "many nils in nested arrays, not a map", tiny
    yield (
        "a whole envelope, then garbage",
        wire.dumps({"records": [b"x" * 100] * (size // 110)}) + b"\xc1",
    )
    yield "random junk", rng.randbytes(size)


def json_corpus(size: int, rng: random.Random) -> Iterator[tuple[str, bytes]]:
    """Hostile JSON text of about ``size`` bytes."""
    yield "deep arrays", b"[" * size
    yield "deep objects", b'{"a":' * (size // 5)
    yield "shallow, many brackets", b"[" + b"[]," * (size // 3) + b"[]"  # unterminated
    yield "many numbers, unterminated", b"[" + b"0," * (size // 2)
    yield "many strings, unterminated", b"[" + b'"a",' * (size // 4)
    yield "escaped quotes, unterminated", b'["' + b'\\"' * (size // 2)
    yield "a huge number, unterminated", b"[" + b"1" * size
    yield "invalid UTF-8", b'{"a": "' + b"\xff" * size + b'"}'
    yield "random junk", rng.randbytes(size)


def bundle_corpus(size: int, rng: random.Random) -> Iterator[tuple[str, bytes]]:
    """Hostile app bundles of about ``size`` bytes."""
    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type, pax.size = tarfile.XHDTYPE, size
    yield (
        "pax header of digits",
        pax.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict") + b"1" * size + b"\0" * 1024,
    )
    gnu = tarfile.TarInfo("././@LongLink")
    gnu.type, gnu.size = tarfile.GNUTYPE_LONGNAME, size
    yield (
        "GNU long name",
        gnu.tobuf(tarfile.GNU_FORMAT, "utf-8", "strict") + b"a" * size + b"\0" * 1024,
    )
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i in range(max(MAX_BUNDLE_FILES + 1, size // 1024)):
            info = tarfile.TarInfo(f"app/m{i:05d}.py")
            info.size, info.mode = 6, 0o644
            tar.addfile(info, io.BytesIO(b"x = 1\n"))
    yield "too many plain members", out.getvalue()
    files = {f"app/m{i:03d}.py": b"x = 1\n" for i in range(min(MAX_BUNDLE_FILES, size // 1024))}
    whole = pack_bundle(files)
    yield "most members, one byte not canonical", whole[: -1024 - 1] + b"\x01" + whole[-1024:]
    yield "random junk", rng.randbytes(size)


def honest_bundle(size: int) -> bytes:
    return pack_bundle({"app/data.md": b"y" * max(1, size - 2048), "app/__init__.py": b"x = 1\n"})


def honest_record(size: int) -> bytes:
    record = author_record(
        SIGNER,
        None,
        kind=ActionKind.GENESIS,
        timestamp=1_700_000_000_000_000,
        entry={"blob": b"x" * max(1, size - 400)},
    )
    return record.to_bytes()


def honest_warrant(size: int) -> bytes:
    record = Record.from_bytes(honest_record(400))
    count = max(2, size // (len(record.to_bytes()) + 3))
    offender = AgentKey(SIGNER.public_key)
    return Warrant.issue(SIGNER, "activity", offender, (record,) * count, 1).to_bytes()


def honest_message(size: int) -> bytes:
    """A countersigning Abort message with the longest reason (a message is as large as it is)."""
    return encode_message(Abort(SessionId(b"\x01" * 16), "r" * 200))


def honest_charter(size: int) -> bytes:
    """The test network's charter (a charter is as large as it is)."""
    return make_charter([("coop0", SIGNER)]).to_bytes()


def honest_envelope(size: int) -> bytes:
    """A reply of records (at most ``wire.MAX_ITEMS``, each as large as it takes)."""
    count = min(wire.MAX_ITEMS, max(1, size // 303))
    return wire.dumps({"records": [b"r" * (size // count - 5)] * count})


def honest_line(size: int) -> bytes:
    request = {"jsonrpc": "2.0", "id": 1, "method": "pay", "params": {"memo": "m" * size}}
    return json.dumps(request).encode()


# -- paths --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecodingPath:
    """One way bytes from a stranger (or a local client) get decoded."""

    name: str
    max_size: int
    decode: Callable[[bytes], object]
    corpus: Callable[[int, random.Random], Iterator[tuple[str, bytes]]]
    honest: Callable[[int], bytes]
    honest_what: str


def key_file_reader(directory: Path) -> Callable[[bytes], object]:
    path = directory / "hostile.key"

    def read(data: bytes) -> object:
        path.write_bytes(data)
        os.chmod(path, 0o600)
        return keyfile.read_key_info(path)

    return read


def honest_key_file(directory: Path) -> Callable[[int], bytes]:
    path = directory / "honest.key"
    if not path.exists():
        keyfile.save_key(path, SIGNER, "bench", None)
    data = path.read_bytes()
    return lambda size: data


def paths(directory: Path) -> list[DecodingPath]:
    cbor = "canonical CBOR"
    return [
        DecodingPath("cbor (encoding.decode)", encoding.MAX_SIZE, encoding.decode, cbor_corpus,
                     honest_cbor, cbor),
        DecodingPath("record", encoding.MAX_SIZE, Record.from_bytes, cbor_corpus, honest_record,
                     "a record"),
        DecodingPath("countersigning message", 2 * MAX_BODY_SIZE, decode_message, cbor_corpus,
                     honest_message, "a message (its own size)"),
        DecodingPath("charter file", encoding.MAX_SIZE, Charter.from_bytes, cbor_corpus,
                     honest_charter, "a charter (its own size)"),
        DecodingPath("warrant (a frame)", MAX_MESSAGE, Warrant.from_bytes, cbor_corpus,
                     honest_warrant, "a warrant"),
        DecodingPath("wire envelope", MAX_MESSAGE, lambda d: wire.loads(d, {"records"}),
                     msgpack_corpus, honest_envelope, "an envelope"),
        DecodingPath("API request line", MIB, boundedjson.loads, json_corpus, honest_line,
                     "a request line"),
        DecodingPath("key file", 64 * KIB, key_file_reader(directory), json_corpus,
                     honest_key_file(directory), "a key file (its own size)"),
        DecodingPath("app bundle", MAX_BUNDLE, unpack_bundle, bundle_corpus, honest_bundle,
                     "a bundle"),
    ]  # fmt: skip


WARRANT_64 = DecodingPath(
    "warrant (stored, 64 MiB)",
    64 * MIB,
    Warrant.from_bytes,
    cbor_corpus,
    honest_warrant,
    "a warrant",
)
WARRANT_64_KINDS = {"tag 28 nested", "shared-reference nest", "deep arrays", "huge declared array length",
                    "many tiny items, a float last", "random junk"}  # fmt: skip


def best_of(calls: int, function: Callable[[], object]) -> tuple[float, BaseException | None]:
    """The fastest of ``calls`` timings (ms) of ``function``, and what it raised."""
    best, raised = float("inf"), None
    for _ in range(calls):
        start = time.perf_counter()
        try:
            function()
            raised = None
        except (ConodeError, ValueError) as exc:  # how every path refuses
            raised = exc
        best = min(best, (time.perf_counter() - start) * 1000)
    return best, raised


def sizes_for(path: DecodingPath, quick: bool) -> list[int]:
    ladder = [256, 64 * KIB, MIB, 4 * MIB, 64 * MIB]
    chosen = [s for s in ladder if s < path.max_size] + [path.max_size - 16]
    return chosen[:2] + chosen[-1:] if quick and len(chosen) > 3 else chosen


def measure_path(path: DecodingPath, quick: bool, kinds: set[str] | None = None) -> dict[str, Any]:
    rng = random.Random(12)
    worst: dict[str, Any] = {"ms": 0.0}
    refused = accepted = 0
    for size in sizes_for(path, quick):
        for kind, data in path.corpus(size, rng):
            if kinds is not None and kind not in kinds:
                continue
            data = data[: path.max_size]
            calls = 1 if len(data) > 8 * MIB else 3
            ms, raised = best_of(calls, lambda data=data: path.decode(data))  # type: ignore[misc]
            if raised is None:
                accepted += 1
                print(f"  !! {path.name}: accepted {kind} ({len(data):,} bytes)")
                continue
            refused += 1
            if ms > worst["ms"]:
                worst = {"ms": ms, "input": kind, "bytes": len(data)}
            del data
    honest = path.honest(worst.get("bytes", 256))
    honest_ms, raised = best_of(3, lambda: path.decode(honest))
    assert raised is None, f"{path.name} refused its honest input: {raised}"
    return {
        "worst_refusal_ms": round(worst["ms"], 3),
        "worst_input": worst.get("input"),
        "worst_input_bytes": worst.get("bytes"),
        "honest_ms": round(honest_ms, 3),
        "honest_bytes": len(honest),
        "honest_what": path.honest_what,
        "refused": refused,
        "accepted": accepted,
    }


def decoding_attack(args: argparse.Namespace) -> dict[str, Any]:
    """Worst refusal time per decoding path over the hostile corpus, next to honest decodes."""
    figures: dict[str, Any] = {"paths": {}}
    with tempfile.TemporaryDirectory(prefix="conode-hostile-") as tmp:
        chosen = paths(Path(tmp))
        print(
            f"{'path':28} {'worst refusal':>14} {'input':>10}  {'honest, same size':>18}  worst input"
        )
        for path in chosen:
            result = measure_path(path, args.quick)
            figures["paths"][path.name] = result
            print(
                f"{path.name:28} {result['worst_refusal_ms']:11.2f} ms {result['worst_input_bytes'] or 0:>10,}"
                f"  {result['honest_ms']:15.2f} ms  {result['worst_input']}"
            )
        within = [
            r for r in figures["paths"].values() if (r["worst_input_bytes"] or 0) <= TARGET_SIZE
        ]
        figures["worst_refusal_ms"] = max(r["worst_refusal_ms"] for r in within)
        figures["accepted_hostile"] = sum(r["accepted"] for r in figures["paths"].values())
        if not args.quick:
            result = measure_path(WARRANT_64, False, WARRANT_64_KINDS)
            figures["paths"][WARRANT_64.name] = result
            figures["warrant_64mib_worst_refusal_ms"] = result["worst_refusal_ms"]
            print(
                f"{WARRANT_64.name:28} {result['worst_refusal_ms']:11.2f} ms {result['worst_input_bytes'] or 0:>10,}"
                f"  {result['honest_ms']:15.2f} ms  {result['worst_input']}"
            )
    print(
        f"worst refusal of any input <= 4 MiB: {figures['worst_refusal_ms']:.2f} ms (target <= {TARGET_MS:g} ms)"
    )
    return figures


ATTACKS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "decoding": decoding_attack,
}
"""Each attack's figures; the attacks on a running node join here (see the module docstring)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes, no 64 MiB warrants")
    parser.add_argument("--only", choices=list(ATTACKS), action="append", help="run only these")
    args = parser.parse_args()
    figures: dict[str, Any] = {"quick": args.quick, "loadavg_before": os.getloadavg()[0]}
    for name in args.only or list(ATTACKS):
        print(f"== {name}", flush=True)
        figures[name] = ATTACKS[name](args)
    figures["worst_refusal_ms"] = figures.get("decoding", {}).get("worst_refusal_ms")
    if "decoding" in figures and "warrant_64mib_worst_refusal_ms" in figures["decoding"]:
        figures["warrant_64mib_worst_refusal_ms"] = figures["decoding"][
            "warrant_64mib_worst_refusal_ms"
        ]
    figures["loadavg_after"] = os.getloadavg()[0]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
