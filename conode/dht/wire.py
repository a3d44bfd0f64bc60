"""Wire envelopes of conode's peer protocols: msgpack maps of already-signed bytes.

Every request and response is one msgpack map. Decoding is strict about
shape and size, and any problem is a ``RemoteProtocolError`` (the peer sent
garbage): the transport then resets the request. Signed things (records,
warrants, receipts, countersigning messages) travel as the exact bytes that
were signed, so nothing is re-encoded before it is checked.
"""

from __future__ import annotations

from typing import Any, Final, NewType

import msgpack

from conode.errors import RemoteProtocolError

__all__ = [
    "BUNDLE",
    "CHAIN",
    "CHAINS",
    "COUNTERSIGN",
    "FETCH",
    "HEADS",
    "HELLO",
    "LINKS",
    "MAX_ITEMS",
    "MAX_MESSAGE",
    "PROTOCOLS",
    "PUBLISH",
    "RECONCILE",
    "HOST",
    "PLACES",
    "WARRANT",
    "WITNESS",
    "PeerId",
    "bytes_list",
    "dumps",
    "loads",
]

PeerId = NewType("PeerId", str)
"""A peer's id on the transport (a libp2p peer id, or a name on the in-memory network)."""
MAX_MESSAGE: Final = 4 << 20
"""The most bytes one request or response may take (every transport enforces it)."""

HELLO: Final = "hello"
PUBLISH: Final = "publish"
FETCH: Final = "fetch"
CHAIN: Final = "chain"
CHAINS: Final = "chains"
"""Several chains from given seqs in one reply: ``{"chains": [[author, from], ...], "limit"}``
-> ``{"records": [...], "more": bool}`` (each chain's records in order, chains in the order asked)."""
HEADS: Final = "heads"
COUNTERSIGN: Final = "countersign"
WARRANT: Final = "warrant"
BUNDLE: Final = "bundle"
"""An app bundle by hash: ``{"hash": BundleHash bytes}`` -> ``{"data": bundle bytes or nil}``."""
LINKS: Final = "links"
"""The link records held at a base (a DHT link index):
``{"base": typed hash bytes, "type": entry type or nil, "after": action hash bytes or nil, "limit"}``
-> ``{"records": [...], "more": bool}`` (in action-hash order after ``after``; cut off at the limits)."""
WITNESS: Final = "witness"
"""A payer's record for one of its activity authorities to hold at its place (or to show the record
it holds there instead): ``{"record": record bytes}`` -> ``{"receipt": receipt}`` or
``{"held": record bytes}`` or ``{}`` (not known yet)."""
RECONCILE: Final = "reconcile"
"""One round trip of a range reconciliation: ``{"session": 8 bytes, "msg": bytes, "set"?: "global"}``
-> ``{"msg": bytes or nil}`` (``docs/protocol.md`` section 11)."""
HOST: Final = "host"
"""Who hosts an agent, asked of its authorities: ``{"agent": agent key}`` -> ``{"claim": claim or nil}``."""
PLACES: Final = "places"
"""Who holds a location, asked of a node near it: ``{"loc": location}`` -> ``{"places": [[peer, loc or
nil, full, age µs], ...]}`` (the holders it knows around the location, and itself)."""
PROTOCOLS: Final = (
    HELLO, PUBLISH, FETCH, CHAIN, CHAINS, HEADS, COUNTERSIGN, WARRANT, BUNDLE, LINKS, WITNESS,
    RECONCILE, HOST, PLACES
)  # fmt: skip
MAX_ITEMS: Final = 10_000


def dumps(message: dict[str, Any]) -> bytes:
    """One envelope's bytes."""
    data: bytes = msgpack.packb(message, use_bin_type=True)
    return data


def loads(data: bytes, required: set[str]) -> dict[str, Any]:
    """An envelope with at least the ``required`` keys; ``RemoteProtocolError`` otherwise."""
    if len(data) > MAX_MESSAGE:
        raise RemoteProtocolError(f"a {len(data)}-byte message is over the limit")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_bin_len=MAX_MESSAGE,
            max_str_len=1 << 16,
            max_array_len=MAX_ITEMS,
            max_map_len=64,
            max_ext_len=0,  # conode sends no extension types: one is refused at its head,
            ext_hook=_refuse_ext,  # and an empty one when it is read
        )
    except msgpack.StackError as exc:
        raise RemoteProtocolError("malformed message: nested too deeply") from exc
    except Exception as exc:  # the seam to msgpack: any failure is the peer's garbage
        raise RemoteProtocolError(f"malformed message: {exc}") from exc
    if type(value) is not dict:
        raise RemoteProtocolError("a message is a map")
    missing = required - set(value)
    if missing:
        raise RemoteProtocolError(f"the message lacks {', '.join(sorted(missing))}")
    return value


def _refuse_ext(code: int, _data: bytes) -> None:
    raise ValueError(f"msgpack extension type {code} is not allowed")


def bytes_list(message: dict[str, Any], key: str) -> list[bytes]:
    """A list of byte strings from an envelope."""
    value = message.get(key)
    if type(value) is not list or not all(type(item) is bytes for item in value):
        raise RemoteProtocolError(f"{key} must be a list of byte strings")
    return value
