"""The libp2p transport: ``conode.dht.transport.Transport`` over py-libp2p 0.8.1.

How it works
------------
One libp2p host per node, built here by hand rather than with
``libp2p.new_host`` so that every choice is explicit:

- identity: the Ed25519 key from the node's 32-byte seed (same seed, same
  peer id across restarts);
- TCP only, **Noise** the only security protocol, **Yamux** the only muxer
  (the default host also accepts ``/plaintext/2.0.0``, TLS and secio);
- identify and ping, which ``BasicHost`` always serves;
- a ``_ConodeSwarm`` that gives an inbound connection's limiter slot back when
  the connection closes (py-libp2p keeps it until the swarm stops);
- a ``ConnectionConfig`` with one connection per peer (a dial returns as soon
  as it succeeds instead of waiting out a 250 ms happy-eyeballs delay) and no
  auto-connector (the node chooses whom to dial: bootstrap peers, mDNS);
- mDNS (opt-in) run by this module, its blocking zeroconf calls in a thread.

A request is a 4-byte big-endian length and the payload; its response the
same. A stream carries one exchange after another: opening a stream costs a
round trip and two of protocol negotiation (multistream-select), so the
asker keeps a small pool of idle streams per (peer, protocol) and takes one
for the next request (one exchange at a time on a stream; concurrent
requests take or open streams of their own). A stream that failed, timed out
or was cancelled mid-exchange is reset, never pooled, so a late response can
never answer the next request. The server waits ``idle_timeout`` for the
next request on a stream, then closes it; askers drop idle streams sooner.
A pooled stream found closed when it is used (the server closed it, or its
connection died) before any response byte came is retried once on a new
stream: every conode protocol takes a repeated request (see
``docs/protocol.md``). Both sides refuse a frame that declares more than
``MAX_MESSAGE`` bytes without reading it. The serving side admits each
request only under the peer's ``PeerLimiter`` budget and resets the stream
otherwise.

``run`` holds the host and its services in a shielded scope: when it is
cancelled it first closes every connection (``host.close()``, which ends in
``network.close()``), and only then stops them.

Alongside requests, ``run`` keeps the network's own Kademlia DHT
(``conode.dht.libp2p_kad``: ``find_peer``, an address for a peer id, never on
a hot path) and, unless ``gossip=False``, a gossipsub router for
announcements that may be lost (hints only). What the host advertises is
chosen by ``conode.dht.addresses`` (never a wildcard), and its peerstore is a
``BoundedPeerStore`` that never evicts its own key. ``docs/libp2p.md`` lists
each py-libp2p defect met here, how it is handled and the test that proves
it, and the figures measured.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass
from typing import Any, Final

import trio

from conode.crypto import SEED_SIZE
from conode.dht.addresses import advertised, announce_error, is_wildcard
from conode.dht.deferred_imports import libp2p_imports
from conode.dht.libp2p_kad import KAD_NAME, network_kad
from conode.dht.libp2p_peerstore import BoundedPeerStore
from conode.dht.reconnects import REFUSAL_MAX, ReconnectLimiter, printable_refusal
from conode.dht.transport import (
    COST_PER_REQUEST,
    MAX_MESSAGE,
    Handler,
    PeerId,
    PeerLimiter,
    TaskStatus,
    costly,
    protocol_id,
    request_cost,
)
from conode.errors import NetworkError, RemoteProtocolError, StorageError

# py-libp2p's import pulls in HTTP clients a node never runs: they load only if used
with libp2p_imports():
    import multiaddr
    import multiaddr.exceptions
    from libp2p.crypto.ed25519 import create_new_key_pair as ed25519_key_pair
    from libp2p.crypto.x25519 import create_new_key_pair as x25519_key_pair
    from libp2p.custom_types import TProtocol
    from libp2p.discovery.events.peerDiscovery import peerDiscovery
    from libp2p.discovery.mdns.mdns import create_mdns_discovery
    from libp2p.exceptions import BaseLibp2pError
    from libp2p.host.basic_host import BasicHost
    from libp2p.io.exceptions import ConnectionClosedError
    from libp2p.network.auto_connector import AutoConnector
    from libp2p.network.config import ConnectionConfig, RetryConfig
    from libp2p.network.connection.raw_connection import RawConnection
    from libp2p.network.stream.exceptions import StreamReset
    from libp2p.network.swarm import Swarm, _NegativePeerCache
    from libp2p.peer.id import ID
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from libp2p.peer.peerstore import PeerStoreError
    from libp2p.protocol_muxer.multiselect_client import MultiselectClient
    from libp2p.protocol_muxer.multiselect_communicator import MultiselectCommunicator
    from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11 as GOSSIPSUB_PROTOCOL_ID
    from libp2p.pubsub.gossipsub import GossipSub
    from libp2p.pubsub.pubsub import Pubsub
    from libp2p.rcmgr import new_resource_manager
    from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
    from libp2p.security.noise.transport import Transport as NoiseTransport
    from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
    from libp2p.stream_muxer.yamux.yamux import Yamux
    from libp2p.tools.anyio_service import background_trio_service
    from libp2p.transport.manager import TransportManager
    from libp2p.transport.tcp.tcp import TCP
    from libp2p.transport.upgrader import TransportUpgrader

__all__ = [
    "BOOTSTRAP_RETRY",
    "CONNECT_TIMEOUT",
    "FIND_PEER_TIMEOUT",
    "GOSSIP_HEARTBEAT",
    "IDENTIFY_WAIT",
    "INTERFACES_TTL",
    "SERVE_TIMEOUT",
    "START_TIMEOUT",
    "STREAM_IDLE_TIMEOUT",
    "AnnouncementHandler",
    "Libp2pTransport",
]

_LOG = logging.getLogger(__name__)

AnnouncementHandler = Callable[[PeerId, bytes], Awaitable[None]]
"""Takes one gossip announcement: the peer that published it, and its bytes."""

CONNECT_TIMEOUT: Final = 10.0
"""Seconds a dial (``connect``, a bootstrap peer) may take."""
BOOTSTRAP_RETRY: Final = 5.0
"""Seconds between two rounds of redialling unconnected bootstrap peers."""
FIND_PEER_TIMEOUT: Final = 10.0
"""Seconds a Kademlia ``find_peer`` lookup may take."""
GOSSIP_HEARTBEAT: Final = 1.0
"""Gossipsub heartbeat in seconds (py-libp2p's default is 120 s)."""
START_TIMEOUT: Final = 10.0
"""Seconds the host and its services may take to start."""
SERVE_TIMEOUT: Final = 30.0
"""Seconds a peer has to send its whole request, and we to send the response."""
STREAM_IDLE_TIMEOUT: Final = 60.0
"""Seconds a server keeps a stream open for the asker's next request (askers drop theirs at half)."""
IDENTIFY_WAIT: Final = 5.0
"""Seconds a new peer has to be identified before it is left out of the routing table (till the next sweep)."""
INTERFACES_TTL: Final = 30.0
"""Seconds the machine's interface addresses are reused before they are listed again."""

_CLOSE_TIMEOUT: Final = 5.0
_RESET_TIMEOUT: Final = 1.0
_ADDR_TTL: Final = 3_600
_NEGATIVE_DIAL_TTL: Final = 5.0
HANDSHAKE_TIMEOUT: Final = 10.0
"""Seconds an inbound connection has to finish its handshake (security and muxer)."""
HANDSHAKES_PER_IP: Final = 16
"""Inbound handshakes one remote IP may have in progress at once."""
BAN_S: Final = 60.0
"""Seconds a peer disconnected for asking on while over its CPU budget may not connect again."""
_DHT_QUEUE: Final = 64
_POOL_SIZE: Final = 8  # idle streams kept per (peer, protocol); more concurrent ones are closed
_MDNS_QUEUE: Final = 64
_IDENTIFY_POLL: Final = 0.05
_HEADER: Final = struct.Struct(">I")
REFUSAL_PROTOCOL: Final = "/conode/refusal/1"
"""The stream on which a node tells a peer why it closes the peer's new connection."""
_REFUSAL_TIMEOUT: Final = 2.0
_REFUSAL_FRESH_S: Final = 10.0  # a refusal older than this no longer explains a failure
_REFUSAL_GRACE: Final = (0.01, 5)  # (step, steps) waited for a refusal being read
# trio.to_thread.run_sync, typed Any: libp2p pulls in trio-typing, whose stale
# stubs do not know ``abandon_on_cancel``.
_in_thread: Any = trio.to_thread.run_sync

# What libp2p, trio and the OS raise when a peer, a stream or a socket fails;
# all of it becomes NetworkError at this seam.
_NETWORK_ERRORS: Final = (
    BaseLibp2pError,
    multiaddr.exceptions.Error,
    OSError,
    EOFError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
)


_CHURN_LOGGERS: Final = (
    "libp2p.host.basic_host",  # "Failed to open stream": request() reports it as NetworkError
    "libp2p.kad_dht.kad_dht",  # empty "Failed to read DHT message from stream"
    "libp2p.kad_dht.peer_routing",  # "Failed to open stream" to a peer that left
    "libp2p.network.swarm",  # "[ADDCONN_FAIL]" with a traceback when a dial is cancelled
    "libp2p.protocol_muxer.multiselect_client",  # a stream on a connection going down
    "libp2p.stream_muxer.yamux.yamux",  # "connection reset by peer", "closed unexpectedly"
    "libp2p.transport.tcp.tcp",  # "Failed to open TCP stream": connect() reports it
)
_DROP_LOGGERS: Final = (
    "libp2p.pubsub.gossipsub",  # "Rate limit exceeded": gossip drops by design
    "libp2p.pubsub.pubsub",  # "fail to deliver message to subscription": a full queue
)


def _quiet_libp2p_logs() -> None:
    """Tune py-libp2p's loggers, in this one place, for a long-running daemon.

    py-libp2p's import detaches its ``libp2p`` logger (no handler, no
    propagation), so its warnings reach stderr through ``logging.lastResort``
    whatever the application configured. Unless ``LIBP2P_DEBUG`` asks for
    py-libp2p's own logging set-up, hand its records back to the
    application's logging, and silence the loggers that report a peer going
    away as a warning or an error (this module reports what the node needs at
    its seam: ``NetworkError``, and the serving side's own log lines), and the
    ones that report gossip's by-design drops once per message. Idempotent.
    """
    if os.environ.get("LIBP2P_DEBUG"):
        return
    logging.getLogger("libp2p").propagate = True
    for name in _CHURN_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    for name in _DROP_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    # auto_connector forces its own logger to INFO at import; multiaddr logs
    # every parse at DEBUG.
    logging.getLogger("libp2p.network.auto_connector").setLevel(logging.WARNING)
    logging.getLogger("multiaddr").setLevel(logging.WARNING)


def _tune_yamux() -> None:
    """Batch Yamux window updates, as go-yamux does (py-libp2p reads the setting at each read).

    py-libp2p 0.8.1 sends a WINDOW_UPDATE frame after every read by default
    (``PY_YAMUX_RELEASE_ON_READ``): two extra encrypted frames per request and
    per response. With it off, a receiver gives credit back once half its
    window is used, so small exchanges send none and large ones still flow
    (4 MiB echoes are as fast). An operator's own setting wins.
    """
    os.environ.setdefault("PY_YAMUX_RELEASE_ON_READ", "0")


class _NoAutoConnector(AutoConnector):
    """An ``AutoConnector`` that dials nobody.

    py-libp2p's aims at (low + high watermark) / 2 connections (150 by
    default, whatever ``low_watermark`` says) and redials any peer in the
    peerstore, including one that just hung up. A conode node dials whom it
    means to: its bootstrap peers, mDNS finds, the peers it asks.
    """

    async def maybe_connect(self) -> None:
        return


class _ConodeSwarm(Swarm):
    """A ``Swarm`` whose inbound connections give their limiter slot back when they close.

    py-libp2p 0.8.1's ``Swarm._do_handle_inbound_connection`` ends a
    successful upgrade with ``await self.manager.wait_finished()``: the task
    that holds a slot of ``_inbound_limiter`` (``max_connections -
    min_connections`` slots) lives as long as the swarm, so once that many
    peers have *ever* connected, every new inbound connection is closed with
    only a DEBUG line. Here the task waits for its own connection to close;
    the caller's ``finally`` (unchanged) then releases the slot.

    Idle sockets cannot starve the handshakes: an inbound connection has
    ``HANDSHAKE_TIMEOUT`` seconds to finish its upgrade (py-libp2p waits for
    ever, its slot held), and one remote IP at most ``HANDSHAKES_PER_IP``
    upgrades in progress: 300 idle sockets from one address no longer fill
    the 250 slots.

    It also swaps in ``_NoAutoConnector``, and shortens the time a peer whose
    dial failed is refused without a try (py-libp2p: 60 s) to
    ``_NEGATIVE_DIAL_TTL``, so that a restarted peer is reachable again soon.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_peer_cache = _NegativePeerCache(ttl=_NEGATIVE_DIAL_TTL)
        self._handshaking: dict[str, int] = {}
        self.banned_until: dict[str, float] = {}
        """Peers refused for a while (by peer id, until a ``trio.current_time``): see ``BAN_S``."""
        self.reconnects = ReconnectLimiter()
        """How often one peer may connect (py-libp2p's own limit is off inbound: see ``_build_host``)."""
        self._told: dict[str, float] = {}  # peer -> when it was last told why it is refused
        """Inbound handshakes in progress, by remote IP (``HANDSHAKES_PER_IP`` at most each)."""

    def _init_connection_management(self) -> None:
        super()._init_connection_management()
        self.auto_connector = _NoAutoConnector(
            swarm=self, auto_connect_interval=self.connection_config.auto_connect_interval
        )

    async def _do_handle_inbound_connection(
        self, read_write_closer: Any, maddr: Any, failure_event: Any
    ) -> None:
        remote = self._build_remote_multiaddr(read_write_closer)
        if remote is not None and not await self.connection_gate.is_allowed(remote):
            await _close_quietly(read_write_closer)
            return
        raw_conn = RawConnection(read_write_closer, False)
        ip = _remote_ip(remote)
        if self._handshaking.get(ip, 0) >= HANDSHAKES_PER_IP:
            _LOG.debug("refused an inbound connection from %s: %d handshakes in progress", ip,
                       HANDSHAKES_PER_IP)  # fmt: skip
            await _close_quietly(raw_conn)
            return
        self._handshaking[ip] = self._handshaking.get(ip, 0) + 1
        muxed_conn: Any = None
        try:
            with trio.move_on_after(HANDSHAKE_TIMEOUT):
                muxed_conn = await self.upgrade_inbound_raw_conn(raw_conn, maddr)
        except Exception as exc:  # the task boundary of one inbound connection
            _LOG.debug("an inbound connection on %s failed to upgrade: %s", maddr, exc)
        finally:
            self._handshaking[ip] -= 1
            if not self._handshaking[ip]:
                del self._handshaking[ip]
        if muxed_conn is None:  # failed, or idle past the handshake timeout: its slot comes back
            await _close_quietly(raw_conn)
            return
        peer, now = str(muxed_conn.peer_id), trio.current_time()
        refusal = self._refusal(peer, now)
        if refusal is not None:
            _LOG.debug("refused a connection from %s: %s", muxed_conn.peer_id, refusal)
            # told once per _REFUSAL_FRESH_S, which its transport keeps the reason for: a peer
            # redialling in a loop is closed at once in between, as before (no extra round trip)
            if now - self._told.get(peer, -_REFUSAL_FRESH_S) >= _REFUSAL_FRESH_S:
                if len(self._told) >= 1024:
                    self._told = {p: t for p, t in self._told.items() if now - t < _REFUSAL_FRESH_S}
                self._told[peer] = now
                await self._tell_refused(muxed_conn.peer_id, refusal)
            await _close_quietly(muxed_conn)
            return
        await muxed_conn.event_closed.wait()  # Yamux's; the IMuxedConn interface lacks it

    def _refusal(self, peer: str, now: float) -> str | None:
        """Why a new connection of ``peer`` is refused (None: it is not)."""
        banned = self.banned_until.get(peer, 0.0)
        if banned > now:
            return (
                f"disconnected for {BAN_S:g} s for asking on while over its CPU budget: "
                f"try again in {banned - now:.0f} s"
            )
        if not self.reconnects.admit(peer, now):
            return self.reconnects.refusal(peer, now)
        return None

    async def _tell_refused(self, peer_id: Any, refusal: str) -> None:
        """Say why on a ``REFUSAL_PROTOCOL`` stream (a peer that does not speak it hears nothing)."""
        with trio.move_on_after(_REFUSAL_TIMEOUT), suppress(*_NETWORK_ERRORS):
            stream = await self.new_stream(peer_id)
            await MultiselectClient().select_one_of(
                [TProtocol(REFUSAL_PROTOCOL)], MultiselectCommunicator(stream)
            )
            await stream.write(refusal.encode()[:REFUSAL_MAX])
            await stream.close()


def _remote_ip(remote: Any) -> str:
    """The IP of an inbound connection's remote multiaddr ("?" if it has none)."""
    if remote is None:
        return "?"
    for protocol in ("ip4", "ip6"):
        try:
            return str(remote.value_for_protocol(protocol))
        except Exception:  # multiaddr raises its own errors for a missing protocol
            continue
    return "?"


async def _close_quietly(closeable: Any) -> None:
    """Close a connection or stream that may already be broken."""
    with trio.move_on_after(_RESET_TIMEOUT), suppress(*_NETWORK_ERRORS):
        await closeable.close()


async def _close_connection(conn: Any) -> None:
    """Close one connection while shutting down; a failure is logged, never raised."""
    try:
        await conn.close()
    except Exception as exc:  # the task boundary of one connection's close
        _LOG.debug("closing a connection to %s: %s", conn.muxed_conn.peer_id, _one_line(exc))


async def _reset_quietly(stream: Any) -> None:
    """Reset a stream, even while the calling task is being cancelled."""
    shielded = trio.CancelScope(shield=True)
    with shielded, trio.move_on_after(_RESET_TIMEOUT), suppress(*_NETWORK_ERRORS):
        await stream.reset()


_CAUSES_READ: Final = 8
"""How deep ``_connection_died`` looks into an error's causes (py-libp2p wraps a socket's in 4)."""


class _FrameTooLarge(Exception):
    """A frame declared more than ``MAX_MESSAGE`` bytes."""


class _Stale(Exception):
    """A stream's connection died under the request: it may go again on another one."""


@dataclass(slots=True)
class _Idle:
    """A pooled stream, and since when it has waited for a request."""

    stream: Any
    since: float


def _connected(stream: Any) -> bool:
    """False once the connection under ``stream`` is closed or closing."""
    conn = stream.muxed_conn
    return not (conn.is_closed or getattr(conn, "event_shutting_down", trio.Event()).is_set())


def _connection_died(stream: Any, exc: BaseException) -> bool:
    """True if ``exc`` (from a write or read on ``stream``) says its connection is gone: closed,
    or its socket broke (a write can fail so before py-libp2p marks the connection closed)."""
    if not _connected(stream):
        return True
    seen: BaseException | None = exc
    for _ in range(_CAUSES_READ):
        if seen is None:
            return False
        if isinstance(seen, (ConnectionClosedError, BrokenPipeError, ConnectionResetError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _usable(stream: Any) -> bool:
    """False if the peer closed or reset ``stream``, or its connection is going away."""
    muxed = stream.muxed_stream
    for flag in ("recv_closed", "reset_received", "closed"):
        if getattr(muxed, flag, False):
            return False
    return _connected(stream)


async def _read_exactly(stream: Any, size: int) -> bytes:
    buffer = bytearray()
    while len(buffer) < size:
        chunk: bytes = await stream.read(size - len(buffer))
        if not chunk:
            raise EOFError(f"the stream ended after {len(buffer)} of {size} bytes")
        buffer += chunk
    return bytes(buffer)


async def _read_frame(stream: Any, header: bytes | None = None) -> bytes:
    """One length-prefixed frame, its header already read if given.

    ``_FrameTooLarge`` before reading the body of a frame that declares too much.
    """
    if header is None:
        header = await _read_exactly(stream, _HEADER.size)
    (size,) = _HEADER.unpack(header)
    if size > MAX_MESSAGE:
        raise _FrameTooLarge(f"a frame declares {size} bytes, over the {MAX_MESSAGE}-byte limit")
    return await _read_exactly(stream, size)


async def _read_header(stream: Any) -> bytes | None:
    """The next frame's header, or None if the peer closed the stream before sending any of it."""
    try:
        first: bytes = await stream.read(_HEADER.size)
    except EOFError:
        return None
    if not first:
        return None
    if len(first) < _HEADER.size:
        first += await _read_exactly(stream, _HEADER.size - len(first))
    return first


def _frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload)) + payload


async def _exchange(stream: Any, frame: bytes) -> bytes:
    """Send one request frame and read its response; reset the stream unless both went through.

    ``_Stale`` if the stream's connection died before any byte of the response
    came (a pooled stream to a peer that restarted; a new stream on the one of
    two connections that both peers dialled at once that is then closed): the
    request may go again on a new stream, over another connection. A stream
    closed or reset on a live connection is the server's answer, never retried
    (py-libp2p cannot always tell a reset from a close on the asker's side).
    """
    done = False
    try:
        try:
            await stream.write(frame)
            header = await _read_header(stream)
        except _NETWORK_ERRORS as exc:
            if _connection_died(stream, exc):
                raise _Stale(_one_line(exc)) from exc
            raise
        if header is None:
            if not _connected(stream):
                raise _Stale("the connection closed")
            raise EOFError("the peer closed or reset the stream without answering")
        response = await _read_frame(stream, header)
        done = True
        return response
    finally:
        if not done:
            await _reset_quietly(stream)


def _one_line(exc: BaseException) -> str:
    """An exception as one short line (libp2p's can span many)."""
    if isinstance(exc, StreamReset):
        return "the peer reset the stream (it refused the request, or failed on it)"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


@functools.lru_cache(maxsize=4096)
def _peer_id(peer: str) -> Any:
    """A libp2p ``ID`` from its text (base58 in pure Python: cached, every request needs one)."""
    return ID.from_base58(peer)


@functools.lru_cache(maxsize=4096)
def _addr_text(addr: Any, peer: str) -> str:
    """A multiaddr as text ending in /p2p/<peer> (cached: hellos list every peer's, often)."""
    return _with_peer(str(addr), peer)


def _parse_peer(peer: PeerId) -> Any:
    try:
        return _peer_id(peer)
    except ValueError as exc:
        raise NetworkError(f"{peer!r} is not a libp2p peer id") from exc


def _interface_ips() -> list[str]:
    """Every IP address of this machine's network interfaces (IPv6 without its scope)."""
    import ifaddr  # cross-platform getifaddrs; only a node listening on a wildcard needs it

    ips = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            ips.append(ip.ip[0] if isinstance(ip.ip, tuple) else ip.ip)  # IPv6: (addr, flow, scope)
    return ips


class _Advertiser:
    """What the host advertises: ``BasicHost``'s ``addrs_factory`` (``conode.dht.addresses`` decides).

    py-libp2p hands it the transport's listen addresses followed by the
    observed addresses at least four peers (at distinct IPs) agree on; it
    lists the interfaces again at most every ``INTERFACES_TTL`` seconds and
    remembers its last answer, since identify, every Kademlia answer and every
    hello ask for it.
    """

    def __init__(self, announce: Sequence[str]) -> None:
        self.announce = tuple(announce)
        self.host: Any = None
        self._interfaces: tuple[str, ...] = ()
        self._listed_at = -math.inf
        self._last: tuple[tuple[str, ...], tuple[str, ...], list[Any]] | None = None

    def _interface_ips(self) -> tuple[str, ...]:
        if time.monotonic() - self._listed_at >= INTERFACES_TTL:
            try:
                self._interfaces = tuple(_interface_ips())
            except OSError as exc:  # keep the last list: a node should not stop over it
                _LOG.warning("could not list the network interfaces: %s", exc)
            self._listed_at = time.monotonic()
        return self._interfaces

    def __call__(self, candidates: list[Any]) -> list[Any]:
        texts = tuple(str(addr) for addr in candidates)
        listening = (
            texts if self.host is None else tuple(str(a) for a in self.host.get_transport_addrs())
        )
        wildcard = any(is_wildcard(a) for a in listening)
        interfaces = self._interface_ips() if wildcard and not self.announce else ()
        key = (texts, interfaces)
        if self._last is None or self._last[:2] != key:
            chosen = advertised(
                listening,
                interfaces,
                announce=self.announce,
                observed=[a for a in texts if a not in listening],
            )
            self._last = (*key, [multiaddr.Multiaddr(a) for a in chosen])
        return list(self._last[2])


def _rate_limit_outbound_only(resources: Any) -> None:
    """Keep py-libp2p's per-peer connection rate for this node's own dials only.

    Inbound, it closes a connection once its handshake is done and tells the peer
    nothing: _ConodeSwarm applies the same limit there and says why. Outbound, it
    stays: a node whose peer refuses it redials that peer no faster than on main
    (10 a second, bursts of 50), instead of failing in a loop as fast as its CPU goes.
    """
    limiter, acquire = resources.connection_rate_limiter, resources.acquire_connection

    def acquire_connection(
        peer_id: str = "", endpoint_ip: str | None = None, direction: str = "inbound"
    ) -> bool:
        # acquire_connection is synchronous: nothing runs between the swap and the call
        resources.connection_rate_limiter = None if direction == "inbound" else limiter
        return bool(acquire(peer_id, endpoint_ip=endpoint_ip, direction=direction))

    resources.acquire_connection = acquire_connection


def _build_host(key_pair: Any, advertiser: _Advertiser) -> Any:
    """A ``BasicHost`` on TCP with Noise and Yamux only, identify and ping, advertising dialable addresses."""
    noise = NoiseTransport(key_pair, noise_privkey=x25519_key_pair().private_key)
    upgrader = TransportUpgrader(
        secure_transports_by_protocol={NOISE_PROTOCOL_ID: noise},
        muxer_transports_by_protocol={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
    )
    peer_id = ID.from_pubkey(key_pair.public_key)
    peerstore = BoundedPeerStore(peer_id)
    peerstore.add_key_pair(peer_id, key_pair)
    config = ConnectionConfig(
        # One connection per peer: the dial returns as soon as it has one, not
        # after Swarm.dial_peer's 250 ms happy-eyeballs wait for more.
        max_connections_per_peer=1,
        # No connection floor to keep (see _NoAutoConnector); all of
        # max_connections is then open to inbound connections.
        min_connections=0,
        low_watermark=0,
    )
    swarm = _ConodeSwarm(
        peer_id,
        peerstore,
        upgrader,
        transports=[TCP()],
        connection_config=config,
        transport_manager=TransportManager(),
        # One try per dial, as go-libp2p: py-libp2p's three retries with backoff
        # made a refused dial take 0.7 s of one of its 32 dial slots; the node
        # dials again on its own schedule (bootstrap, hellos).
        retry_config=RetryConfig(max_retries=0),
    )
    # the peers it must never evict: those it is connected to (and itself)
    peerstore.keep = lambda peer: peer in swarm.connections
    # mDNS is not BasicHost's (enable_mDNS): its start and stop block the event
    # loop for seconds; Libp2pTransport._run_mdns runs them in a thread.
    resources = new_resource_manager()
    _rate_limit_outbound_only(resources)
    host = BasicHost(network=swarm, resource_manager=resources, addrs_factory=advertiser)
    advertiser.host = host
    return host


class Libp2pTransport:
    """A node's libp2p host; see the module docstring and ``conode.dht.transport.Transport``.

    ``network`` is the network's short id (``Node.network_short``): Kademlia
    runs on ``protocol_id(network, "kad")``, so the nodes of two networks never
    share a routing table (the default is for tests of the transport alone).
    ``announce``: the addresses to advertise instead of the ones chosen from
    the interfaces (a public address, a port forward; see
    ``conode.dht.addresses``).

    Invariants: the peer id is the Ed25519 public key of ``seed``; only Noise
    and Yamux are spoken; ``run`` may be entered once per instance; what it
    advertises (``listen_addrs``, identify, Kademlia) is never a wildcard;
    its routing table holds only peers that speak ``kad_protocol``; its
    peerstore never evicts its own key.
    """

    def __init__(
        self,
        seed: bytes,
        *,
        listen: str = "/ip4/127.0.0.1/tcp/0",
        bootstrap: Sequence[str] = (),
        mdns: bool = False,
        gossip: bool = True,
        heartbeat_interval: float = GOSSIP_HEARTBEAT,
        limiter: PeerLimiter | None = None,
        idle_timeout: float = STREAM_IDLE_TIMEOUT,
        network: str = "test",
        announce: Sequence[str] = (),
        serve_timeout: float = SERVE_TIMEOUT,
        reconnects: ReconnectLimiter | None = None,
    ) -> None:
        if type(seed) is not bytes or len(seed) != SEED_SIZE:
            raise ValueError(f"a node key seed is {SEED_SIZE} bytes")
        for addr in announce:
            error = announce_error(addr)
            if error is not None:
                raise ValueError(f"cannot announce {error}")
        _quiet_libp2p_logs()
        _tune_yamux()
        self._listen = multiaddr.Multiaddr(listen)
        self._bootstrap = list(bootstrap)
        self._host: Any = _build_host(ed25519_key_pair(seed), _Advertiser(announce))
        if reconnects is not None:
            self._host.get_network().reconnects = reconnects
        self._host.set_stream_handler(TProtocol(REFUSAL_PROTOCOL), self._on_refusal)
        self._refusals: dict[PeerId, tuple[str, float]] = {}
        self._peer = PeerId(str(self._host.get_id()))
        self._handlers: dict[str, Handler] = {}
        self._limiter = limiter if limiter is not None else PeerLimiter()
        self.limiter = self._limiter
        """Per-peer rates, costs and concurrency of the requests it serves (``PeerLimiter``)."""
        self._idle_timeout = idle_timeout
        self._serve_timeout = serve_timeout
        self._pool: dict[tuple[PeerId, str], list[_Idle]] = {}
        self.streams_opened = 0
        """Request streams this node has opened (diagnostics: each costs a negotiation)."""
        self.kad_protocol = protocol_id(network, KAD_NAME)
        """This network's Kademlia protocol id (never the public ``/ipfs/kad/1.0.0``)."""
        self._dht: Any = network_kad(self._host, self.kad_protocol, self._is_member)
        self._dht_send, self._dht_receive = trio.open_memory_channel[Any](_DHT_QUEUE)
        self._mdns = mdns
        self.heartbeat_interval = heartbeat_interval
        self._pubsub: Any = None
        self._gossip_router: Any = None
        if gossip:
            self._gossip_router = GossipSub(
                protocols=[GOSSIPSUB_PROTOCOL_ID],
                degree=6,
                degree_low=4,
                degree_high=12,
                # annotated int, but only ever passed to trio.sleep
                heartbeat_interval=heartbeat_interval,  # type: ignore[arg-type]
            )
            self._pubsub = Pubsub(self._host, self._gossip_router)
        self._announcement_handlers: dict[str, AnnouncementHandler] = {}
        self._nursery: trio.Nursery | None = None
        self._subscribed: set[str] = set()
        self._started = False
        self._running = False

    # -- the Transport protocol ---------------------------------------------

    @property
    def peer_id(self) -> PeerId:
        return self._peer

    @property
    def host(self) -> Any:
        """The py-libp2p host underneath (tests and diagnostics; not a stable API)."""
        return self._host

    @property
    def gossip_heartbeat(self) -> float | None:
        """The heartbeat (seconds) the gossipsub router runs with (None: no gossipsub)."""
        return None if self._gossip_router is None else float(self._gossip_router.heartbeat_interval)

    @property
    def gossip(self) -> bool:
        """True if this transport runs gossipsub (``announce``/``on_announcement``)."""
        return self._pubsub is not None

    def listen_addrs(self) -> list[str]:
        return [_addr_text(addr, self._peer) for addr in self._host.get_addrs()]

    def set_handler(self, protocol: str, handler: Handler) -> None:
        self._handlers[protocol] = handler

        async def serve(stream: Any) -> None:
            await self._serve(protocol, stream)

        self._host.set_stream_handler(TProtocol(protocol), serve)

    async def request(
        self, peer: PeerId, protocol: str, payload: bytes, *, timeout: float
    ) -> bytes:
        if len(payload) > MAX_MESSAGE:
            raise NetworkError(
                f"a request of {len(payload)} bytes is over the {MAX_MESSAGE}-byte limit"
            )
        peer_id = _parse_peer(peer)
        self._require_running()
        key = (peer, protocol)
        frame = _frame(payload)
        try:
            with trio.fail_after(timeout):
                stream = self._take_idle(key)
                for again in (True, False):  # once more if the connection died under it
                    if stream is None:
                        stream = await self._host.new_stream(peer_id, [TProtocol(protocol)])
                        self.streams_opened += 1
                    try:
                        response = await _exchange(stream, frame)
                    except _Stale as exc:
                        if not again or self._fresh_refusal(peer) is not None:
                            raise
                        _LOG.debug("%s to %s: the connection died: %s", protocol, peer, exc)
                        # new_stream refuses while the dead connection is still listed;
                        # dial_peer skips it and dials again
                        await self._host.get_network().dial_peer(peer_id)
                        stream = None
                        continue
                    await self._give_back(key, stream)
                    return response
                raise AssertionError("unreachable")  # the last try returns or raises
        except trio.TooSlowError as exc:
            raise NetworkError(f"{peer} did not answer {protocol} within {timeout:g} s") from exc
        except _FrameTooLarge as exc:
            raise NetworkError(f"{peer} answered {protocol} with {exc}") from exc
        except (_Stale, *_NETWORK_ERRORS) as exc:
            refusal = await self._refused_by(peer)
            if refusal is not None:
                raise NetworkError(f"{peer} refused this node's connection: {refusal}") from exc
            raise NetworkError(f"{protocol} request to {peer} failed: {_one_line(exc)}") from exc

    async def _on_refusal(self, stream: Any) -> None:
        """A peer says why it closes this node's connection: kept a while to explain failures."""
        peer = PeerId(str(stream.muxed_conn.peer_id))
        data = b""
        with trio.move_on_after(_REFUSAL_TIMEOUT), suppress(*_NETWORK_ERRORS):
            while len(data) < REFUSAL_MAX:
                chunk = await stream.read(REFUSAL_MAX - len(data))
                if not chunk:
                    break
                data += chunk
        await _close_quietly(stream)
        refusal = printable_refusal(data) or "no reason given"
        now = trio.current_time()
        if len(self._refusals) >= _POOL_SIZE * 128:  # bounded: the stale ones go first
            self._refusals = {
                p: r for p, r in self._refusals.items() if now - r[1] < _REFUSAL_FRESH_S
            }
        self._refusals[peer] = (refusal, now)
        _LOG.info("%s refused this node's connection: %s", peer, refusal)

    async def _refused_by(self, peer: PeerId) -> str | None:
        """Why ``peer`` refused this node's connection of late, if it said (None: it did not).

        Its refusal is read by another task, as the connection closes: wait a moment for it.
        """
        step, steps = _REFUSAL_GRACE
        for _ in range(steps):
            refusal = self._fresh_refusal(peer)
            if refusal is not None:
                return refusal
            await trio.sleep(step)
        return None

    def _fresh_refusal(self, peer: PeerId) -> str | None:
        """Why ``peer`` refused this node's connection, if it said so of late."""
        found = self._refusals.get(peer)
        if found is not None and trio.current_time() - found[1] < _REFUSAL_FRESH_S:
            return found[0]
        return None

    def _take_idle(self, key: tuple[PeerId, str]) -> Any:
        """The most recently used idle stream for ``key`` that is still usable, or None."""
        pool = self._pool.get(key)
        now = trio.current_time()
        while pool:
            idle = pool.pop()
            if _usable(idle.stream) and now - idle.since < self._idle_timeout / 2:
                return idle.stream
            self._close_soon(idle.stream)
        return None

    async def _give_back(self, key: tuple[PeerId, str], stream: Any) -> None:
        """Pool a stream that just finished an exchange cleanly (or close it if the pool is full)."""
        pool = self._pool.setdefault(key, [])
        if self._running and len(pool) < _POOL_SIZE:
            pool.append(_Idle(stream, trio.current_time()))
        else:
            await _close_quietly(stream)

    def _close_soon(self, stream: Any) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(_close_quietly, stream)

    async def connect(self, addr: str) -> PeerId:
        try:
            info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
        except (ValueError, multiaddr.exceptions.Error) as exc:
            raise NetworkError(f"{addr!r} is not a multiaddr ending in /p2p/<peer id>") from exc
        if info.peer_id == self._host.get_id():
            raise NetworkError(f"{addr!r} is this node's own address")
        self._require_running()
        peerstore = self._host.get_peerstore()
        known = peerstore.has_peer(info.peer_id)
        if info.peer_id not in self._host.get_connected_peers():
            # An explicit connect means "there, now": Swarm.dial_peer tries one
            # TCP address per peer, the oldest known, so forget stale ones (a
            # restarted peer on a new port), and a dial that failed a moment ago.
            peerstore.clear_addrs(info.peer_id)
            self._host.get_network().unblock_peer(info.peer_id)
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                await self._host.connect(info)
        except (trio.TooSlowError, *_NETWORK_ERRORS) as exc:
            if not known:  # a peer only named to us: its claimed address does not stay
                peerstore.forget(info.peer_id)
            if isinstance(exc, trio.TooSlowError):
                raise NetworkError(
                    f"could not connect to {addr} within {CONNECT_TIMEOUT:g} s"
                ) from exc
            raise NetworkError(f"could not connect to {addr}: {_one_line(exc)}") from exc
        # BasicHost.connect keeps the address for 120 s only.
        self._host.get_peerstore().add_addrs(info.peer_id, info.addrs, _ADDR_TTL)
        self._dht_add_soon(info.peer_id)
        return PeerId(str(info.peer_id))

    def connected_peers(self) -> list[PeerId]:
        return sorted(PeerId(str(peer)) for peer in self._host.get_connected_peers())

    def network_peers(self) -> list[PeerId]:
        """Connected peers that speak this network's protocols (identify lists ``kad_protocol``).

        A foreign libp2p peer (an IPFS node, another network's conode node)
        is connected but not listed. Identify runs just after a connection
        opens, so a peer is listed a moment after it connects.
        """
        return sorted(
            PeerId(str(peer)) for peer in self._host.get_connected_peers() if self._speaks(peer)
        )

    def routing_peers(self) -> list[PeerId]:
        """The peers in this node's Kademlia routing table (diagnostics, tests)."""
        return sorted(PeerId(str(peer)) for peer in self._dht.routing_table.get_peer_ids())

    def _protocols(self, peer_id: Any) -> list[str]:
        """The protocols identify said ``peer_id`` serves (none yet: not identified)."""
        try:
            protocols: list[str] = self._host.get_peerstore().get_protocols(peer_id)
        except PeerStoreError:
            return []
        return protocols

    def _speaks(self, peer_id: Any) -> bool:
        """True if identify said ``peer_id`` serves this network's Kademlia protocol."""
        return self.kad_protocol in self._protocols(peer_id)

    def _is_member(self, peer_id: Any, opened_our_stream: bool) -> bool:
        """May ``peer_id`` enter the routing table: connected, and it speaks this network's Kademlia."""
        conns = self._host.get_network().connections.get(peer_id) or []
        if not any(not conn.is_closed for conn in conns):
            return False
        return opened_our_stream or self._speaks(peer_id)

    def peer_addrs(self, peer: PeerId) -> list[str]:
        """Known addresses of a peer, each ending in /p2p/<peer> so ``connect`` takes it."""
        try:
            addrs = self._host.get_peerstore().addrs(_peer_id(peer))
        except (ValueError, KeyError):
            return []
        return [_addr_text(addr, peer) for addr in addrs]

    async def run(self, *, task_status: TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Listen and serve until cancelled; on the way out close every connection first."""
        if self._started:
            raise RuntimeError("a Libp2pTransport runs once; make a new one (same seed, same id)")
        self._started = True
        _check_port_free(self._listen)
        # The host and its services run in a shielded scope, so that when run()
        # is cancelled they are still alive while host.close() closes every
        # connection (py-libp2p's own exit path, cancelled, leaves sockets
        # ESTABLISHED); only then is their scope cancelled.
        host_scope = trio.CancelScope(shield=True)
        async with trio.open_nursery() as nursery:
            await nursery.start(self._run_host, host_scope)
            try:
                self._running = True
                self._nursery = nursery
                nursery.start_soon(self._feed_dht)
                nursery.start_soon(self._sweep_pool)
                if self._bootstrap:
                    nursery.start_soon(self._keep_bootstrap_peers)
                if self._mdns:
                    await nursery.start(self._run_mdns)
                for topic in list(self._announcement_handlers):
                    nursery.start_soon(self._subscribe, topic)
                _LOG.info("libp2p host %s listening on %s", self._peer, self.listen_addrs())
                task_status.started()
                await trio.sleep_forever()
            finally:
                self._running = False
                self._nursery = None
                self._pool.clear()  # closed with their connections, next
                await self._close_host()
                host_scope.cancel()

    async def _run_host(self, host_scope: trio.CancelScope, *, task_status: TaskStatus) -> None:
        """The host, Kademlia and gossipsub as services, inside ``host_scope``."""
        # The shield must not let a hung start-up make the node unstoppable.
        host_scope.deadline = trio.current_time() + START_TIMEOUT
        with host_scope:
            async with AsyncExitStack() as stack:
                await stack.enter_async_context(self._host.run([self._listen]))
                if not self._host.get_transport_addrs():
                    raise NetworkError(f"could not listen on {self._listen}")
                await stack.enter_async_context(background_trio_service(self._dht))
                if self._pubsub is not None:
                    await stack.enter_async_context(background_trio_service(self._pubsub))
                    await stack.enter_async_context(background_trio_service(self._gossip_router))
                    await self._pubsub.wait_until_ready()
                host_scope.deadline = math.inf
                task_status.started()
                await trio.sleep_forever()
        if host_scope.deadline != math.inf:
            raise NetworkError(f"the libp2p host did not start within {START_TIMEOUT:g} s")

    async def _close_host(self) -> None:
        """Close every connection while the host's tasks still run (ends in network.close())."""
        with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_TIMEOUT) as scope:
            # py-libp2p's Swarm.close closes connections one after another, each
            # with two fixed 100 ms sleeps: 20 peers took 4 s, past the bound.
            # Closed here all at once, they take 0.2 s; network.close() then
            # finds none left.
            async with trio.open_nursery() as nursery:
                for conns in list(self._host.get_network().connections.values()):
                    for conn in list(conns):
                        nursery.start_soon(_close_connection, conn)
            try:
                await self._host.close()
            except Exception:  # shutting down: log it and let the exit go on
                _LOG.exception("closing the libp2p host failed")
        if scope.cancelled_caught:
            _LOG.warning("closing the libp2p host took over %g s", _CLOSE_TIMEOUT)

    # -- beyond the Transport protocol --------------------------------------

    async def find_peer(self, peer: PeerId) -> list[str]:
        """Addresses of a peer known only by id, through Kademlia; slow, never on a hot path."""
        peer_id = _parse_peer(peer)
        self._require_running()
        try:
            with trio.fail_after(FIND_PEER_TIMEOUT):
                info = await self._dht.find_peer(peer_id)
        except trio.TooSlowError as exc:
            raise NetworkError(f"no address for {peer} within {FIND_PEER_TIMEOUT:g} s") from exc
        except _NETWORK_ERRORS as exc:
            raise NetworkError(f"looking up {peer} failed: {_one_line(exc)}") from exc
        if info is None:
            return []
        return [_with_peer(str(addr), peer) for addr in info.addrs]

    async def announce(self, topic: str, data: bytes) -> None:
        """Publish a hint on a gossip topic; it may be dropped (see ``docs/libp2p.md``)."""
        if self._pubsub is None:
            raise ValueError("this transport was made with gossip=False")
        self._require_running()
        try:
            await self._pubsub.publish(topic, data)
        except _NETWORK_ERRORS as exc:
            raise NetworkError(f"announcing on {topic} failed: {_one_line(exc)}") from exc

    def on_announcement(self, topic: str, handler: AnnouncementHandler) -> None:
        """Subscribe to a gossip topic; ``handler`` gets each announcement that arrives."""
        if self._pubsub is None:
            raise ValueError("this transport was made with gossip=False")
        self._announcement_handlers[topic] = handler
        if self._nursery is not None and topic not in self._subscribed:
            self._nursery.start_soon(self._subscribe, topic)

    def _require_running(self) -> None:
        # py-libp2p's dial path hangs, shielded from our timeouts, on a host
        # whose swarm is not running: refuse up front, like an offline node.
        if not self._running:
            raise NetworkError(f"the libp2p host {self._peer} is not running")

    # -- serving ------------------------------------------------------------

    async def _serve(self, protocol: str, stream: Any) -> None:
        """Answer the requests of one stream in turn; the task boundary of every inbound request."""
        peer = PeerId(str(stream.muxed_conn.peer_id))
        handler = self._handlers[protocol]
        try:
            while True:
                header = None
                with trio.move_on_after(self._idle_timeout):
                    header = await _read_header(stream)
                if header is None:  # the asker closed its end, or left the stream idle
                    await _close_quietly(stream)
                    return
                if not await self._serve_one(protocol, peer, handler, stream, header):
                    return
        except (trio.TooSlowError, *_NETWORK_ERRORS) as exc:
            _LOG.debug("a %s stream from %s broke off: %s", protocol, peer, _one_line(exc))
            await _reset_quietly(stream)

    async def _serve_one(
        self, protocol: str, peer: PeerId, handler: Handler, stream: Any, header: bytes
    ) -> bool:
        """Answer one request whose header has arrived; False if the stream was reset."""
        charged = costly(protocol)
        if not self._limiter.admit(peer, trio.current_time(), costly=charged):
            _LOG.debug("refused a %s request from %s: over its rate, cost or concurrency", protocol,
                       peer)  # fmt: skip
            await _reset_quietly(stream)
            if charged and self._limiter.refused(peer, COST_PER_REQUEST):
                _LOG.info("disconnecting %s for %g s: it kept asking while over its CPU budget",
                          peer, BAN_S)  # fmt: skip
                self._host.get_network().banned_until[peer] = trio.current_time() + BAN_S
                with suppress(*_NETWORK_ERRORS):
                    await self._host.disconnect(_peer_id(peer))
            return False
        cost = 0.0
        try:
            with trio.fail_after(self._serve_timeout):
                request = await _read_frame(stream, header)
            started = time.thread_time()
            response = await handler(peer, request)
            if charged:
                cost = request_cost(time.thread_time() - started, len(request), len(response))
            if len(response) > MAX_MESSAGE:
                raise ValueError(
                    f"the {protocol} handler answered {len(response)} bytes, "
                    f"over the {MAX_MESSAGE}-byte limit"
                )
            with trio.fail_after(self._serve_timeout):
                await stream.write(_frame(response))
            return True
        except (RemoteProtocolError, StorageError, _FrameTooLarge) as exc:
            _LOG.warning("reset a %s request from %s: %s", protocol, peer, exc)
        except (trio.TooSlowError, *_NETWORK_ERRORS) as exc:
            _LOG.debug("a %s request from %s broke off: %s", protocol, peer, _one_line(exc))
        except Exception:
            _LOG.exception("the %s handler failed on a request from %s", protocol, peer)
        finally:
            self._limiter.release(peer, cost)
        await _reset_quietly(stream)
        return False

    # -- background tasks ---------------------------------------------------

    async def _sweep_pool(self) -> None:
        """Close pooled streams that idled too long or died, so a peer that left keeps none."""
        while True:
            await trio.sleep(self._idle_timeout / 4)
            now = trio.current_time()
            for key, pool in list(self._pool.items()):
                keep = []
                for idle in pool:
                    if _usable(idle.stream) and now - idle.since < self._idle_timeout / 2:
                        keep.append(idle)
                    else:
                        self._close_soon(idle.stream)
                if keep:
                    self._pool[key] = keep
                else:
                    del self._pool[key]

    def _dht_add_soon(self, peer_id: Any) -> None:
        with suppress(trio.WouldBlock):  # full: _feed_dht's periodic sweep adds it later
            self._dht_send.send_nowait(peer_id)

    async def _feed_dht(self) -> None:
        """Keep the routing table to the connected peers of this network, as py-libp2p does not.

        A peer we dial is added once identify says it speaks this network's
        Kademlia (``IDENTIFY_WAIT`` at most); every ``BOOTSTRAP_RETRY`` s a
        sweep adds the connected ones not yet in (those that dialled us) and
        drops those no longer connected, so an answer never names a peer that left.
        """
        sweep = trio.current_time()
        async with trio.open_nursery() as nursery:
            while True:
                with trio.move_on_after(BOOTSTRAP_RETRY):
                    peer_id = await self._dht_receive.receive()
                    nursery.start_soon(self._dht_add_identified, peer_id)
                if trio.current_time() - sweep >= BOOTSTRAP_RETRY:
                    sweep = trio.current_time()
                    await self._sweep_routing_table()

    async def _sweep_routing_table(self) -> None:
        table = self._dht.routing_table
        connected = set(self._host.get_connected_peers())
        for peer_id in table.get_peer_ids():
            if peer_id not in connected:
                table.remove_peer(peer_id)
        for peer_id in connected:
            if not table.peer_in_table(peer_id):
                await self._dht_add(peer_id)

    async def _dht_add_identified(self, peer_id: Any) -> None:
        """Add a peer we just dialled once identify has run (or ``IDENTIFY_WAIT`` passed)."""
        with trio.move_on_after(IDENTIFY_WAIT):
            while not self._protocols(peer_id):
                await trio.sleep(_IDENTIFY_POLL)
        await self._dht_add(peer_id)

    async def _dht_add(self, peer_id: Any) -> None:
        try:
            await self._dht.add_peer(peer_id)
        except (PeerStoreError, *_NETWORK_ERRORS) as exc:
            _LOG.debug("could not add %s to the routing table: %s", peer_id, _one_line(exc))

    async def _keep_bootstrap_peers(self) -> None:
        """Dial each bootstrap peer we are not connected to, every ``BOOTSTRAP_RETRY`` s."""
        while True:
            connected = {str(peer) for peer in self._host.get_connected_peers()}
            for addr in self._bootstrap:
                if _peer_of(addr) in connected:
                    continue
                try:
                    await self.connect(addr)
                except NetworkError as exc:
                    _LOG.warning("bootstrap peer down, retrying in %g s: %s", BOOTSTRAP_RETRY, exc)
                else:
                    _LOG.info("connected to bootstrap peer %s", addr)
            await trio.sleep(BOOTSTRAP_RETRY)

    async def _run_mdns(self, *, task_status: TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Announce this node with mDNS, and dial the peers it finds on the local network."""
        discovery = create_mdns_discovery(self._host.get_network(), host=self._host)
        found_send, found_receive = trio.open_memory_channel[Any](_MDNS_QUEUE)
        token = trio.lowlevel.current_trio_token()

        def offer(info: Any) -> None:
            with suppress(trio.WouldBlock):  # full: drop it, mDNS repeats itself
                found_send.send_nowait(info)

        def discovered(info: Any) -> None:  # called on zeroconf's thread
            with suppress(trio.RunFinishedError):
                token.run_sync_soon(offer, info)

        peerDiscovery.register_peer_discovered_handler(discovered)
        try:
            task_status.started()
            # zeroconf probes the service name for 1.5-3 s before it returns:
            # off the event loop, and without holding up run()'s start.
            await _in_thread(discovery.broadcaster.register, abandon_on_cancel=True)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._forget_stale_mdns_peers, discovery)
                async for info in found_receive:
                    if info.peer_id in (self._host.get_id(), *self._host.get_connected_peers()):
                        continue
                    try:
                        with trio.fail_after(CONNECT_TIMEOUT):
                            await self._host.connect(info)
                    except (trio.TooSlowError, *_NETWORK_ERRORS) as exc:
                        _LOG.debug("could not dial mDNS peer %s: %s", info.peer_id, _one_line(exc))
                    else:
                        self._dht_add_soon(info.peer_id)
        finally:
            peerDiscovery.unregister_peer_discovered_handler(discovered)
            with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_TIMEOUT):
                # unregister and close zeroconf (~0.3-0.9 s), off the event loop too
                await _in_thread(discovery.stop, abandon_on_cancel=True)

    @staticmethod
    async def _forget_stale_mdns_peers(discovery: Any) -> None:
        """What ``MDNSDiscovery.start`` would run: drop services not seen for two TTLs."""
        while True:
            await trio.sleep(discovery.cleanup_interval)
            discovery.listener.cleanup_stale_entries(max_age=discovery.ttl * 2)

    async def _subscribe(self, topic: str) -> None:
        """Hand each announcement on ``topic`` to its handler; one task per topic."""
        if topic in self._subscribed:
            return
        self._subscribed.add(topic)
        try:
            subscription = await self._pubsub.subscribe(topic)
        except _NETWORK_ERRORS as exc:
            _LOG.error("could not subscribe to %s: %s", topic, _one_line(exc))
            return
        while True:
            message = await subscription.get()
            source = PeerId(str(ID(message.from_id)))
            if source == self._peer:
                continue
            handler = self._announcement_handlers.get(topic)
            if handler is None:
                continue
            try:
                await handler(source, message.data)
            except Exception:  # the task boundary of one announcement
                _LOG.exception("the %s announcement handler failed on one from %s", topic, source)


def _check_port_free(listen: Any) -> None:
    """``NetworkError`` if another socket listens on the fixed TCP port of ``listen``.

    py-libp2p listens with SO_REUSEPORT (for hole punching), so a second node
    on the same port would start as if all were well and the kernel would
    share the inbound connections between the two. A socket bound without
    SO_REUSEPORT cannot share the port, so try one first.
    """
    protocols = {p.name for p in listen.protocols()}
    if "tcp" not in protocols or not int(listen.value_for_protocol("tcp")):
        return
    if "ip4" in protocols:
        family, host = socket.AF_INET, listen.value_for_protocol("ip4")
    elif "ip6" in protocols:
        family, host = socket.AF_INET6, listen.value_for_protocol("ip6")
    else:
        return
    port = int(listen.value_for_protocol("tcp"))
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise NetworkError(f"cannot listen on {listen}: {exc.strerror}") from exc


def _peer_of(addr: str) -> str:
    """The peer id at the end of a /p2p/ multiaddr string ('' if none)."""
    _, sep, tail = addr.rpartition("/p2p/")
    return tail if sep else ""


def _with_peer(addr: str, peer: str) -> str:
    return addr if "/p2p/" in addr else f"{addr}/p2p/{peer}"
