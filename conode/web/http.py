"""A small HTTP/1.1 server for trio on h11: requests in, responses (or event streams) out.

Why not a framework: h11 is the sans-IO HTTP/1.1 machine made for trio by
trio's author, and it is already in the node's process (py-libp2p brings
it); hypercorn + Starlette measured 4.4 MB more idle RSS on a node whose
target is 80 MB, and bring anyio, h2 and a multipart parser the page does
not use. What a framework would add here is a router and a form parser:
a dict and ``urllib.parse``.

Limits, so a client cannot hold the node: a request's head within
``HEAD_TIMEOUT`` and at most ``MAX_HEAD`` bytes, a body of at most
``MAX_BODY`` bytes, an idle keep-alive connection closed after
``IDLE_TIMEOUT``, at most ``MAX_CONNECTIONS`` at once (more are answered 503
and closed). A response with ``stream`` (server-sent events) is sent chunked
until the stream ends, and its connection is then closed.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from typing import Final
from urllib.parse import parse_qsl, urlsplit

import h11
import trio

__all__ = [
    "MAX_BODY",
    "Handler",
    "Request",
    "Response",
    "parse_listen",
    "serve_http",
]

log = logging.getLogger("conode.web")

MAX_HEAD: Final = 16 * 1024
MAX_BODY: Final = 64 * 1024
HEAD_TIMEOUT: Final = 10.0
IDLE_TIMEOUT: Final = 30.0
MAX_CONNECTIONS: Final = 128
_REASONS: Final = {
    200: "OK", 303: "See Other", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 413: "Content Too Large", 429: "Too Many Requests",
    500: "Internal Server Error", 503: "Service Unavailable",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Request:
    """One request: method, path and query, lower-cased headers, body, the client's address."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    client: str

    def cookie(self, name: str) -> str | None:
        """The value of cookie ``name``, if the request carries it."""
        jar = SimpleCookie()
        with contextlib.suppress(CookieError):
            jar.load(self.headers.get("cookie", ""))
        morsel = jar.get(name)
        return None if morsel is None else morsel.value

    def form(self) -> dict[str, str]:
        """The fields of an ``application/x-www-form-urlencoded`` body (the last of a repeated name)."""
        kind = self.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            return {}
        try:
            text = self.body.decode()
        except UnicodeDecodeError:
            return {}
        return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=200))


@dataclass(slots=True)
class Response:
    """What to answer: a status, headers and a body, or a ``stream`` of chunks (sent as they come)."""

    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: AsyncIterator[bytes] | None = None


Handler = Callable[[Request], Awaitable[Response]]


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) as (host, port); ``ValueError`` otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"a web listen address is HOST:PORT (like 127.0.0.1:7448), not {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    number = int(port)
    if not 0 <= number <= 65535:
        raise ValueError(f"port {number} is out of range")
    return host, number


async def serve_http(
    handler: Handler,
    listeners: Sequence[trio.abc.Listener[trio.abc.Stream]],
) -> None:
    """Serve ``handler`` on ``listeners`` until cancelled."""
    limiter = trio.CapacityLimiter(MAX_CONNECTIONS)

    async def connection(stream: trio.abc.Stream) -> None:
        try:
            limiter.acquire_on_behalf_of_nowait(stream)
        except trio.WouldBlock:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await stream.send_all(
                    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n"
                    b"connection: close\r\n\r\n"
                )
            await trio.aclose_forcefully(stream)
            return
        try:
            await _Connection(stream, handler).serve()
        except (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError):
            pass  # the client went away
        except h11.ProtocolError as exc:
            log.debug("web: %s", exc)
        except Exception:  # a task boundary: one connection's failure never stops the node
            log.exception("web: a connection failed")
        finally:
            limiter.release_on_behalf_of(stream)
            await trio.aclose_forcefully(stream)

    await trio.serve_listeners(connection, list(listeners))


class _Connection:
    """One client connection: requests answered in turn until it closes or idles out."""

    def __init__(self, stream: trio.abc.Stream, handler: Handler) -> None:
        self.stream = stream
        self.handler = handler
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.client = _peer_of(stream)

    async def _next(self, timeout: float) -> h11.Event | type[h11.PAUSED] | type[h11.NEED_DATA]:
        with trio.fail_after(timeout):
            while True:
                try:
                    event = self.conn.next_event()
                except h11.RemoteProtocolError as exc:
                    raise _Refused(exc.error_status_hint, "bad request") from exc
                if event is not h11.NEED_DATA:
                    return event
                data = await self.stream.receive_some(65536)
                self.conn.receive_data(data)

    async def _send(self, event: h11.Event) -> None:
        data = self.conn.send(event)
        if data:
            await self.stream.send_all(data)

    async def serve(self) -> None:
        while True:
            try:
                request = await self._read_request()
            except trio.TooSlowError:
                return
            except _Refused as refused:
                if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await self._respond(Response(refused.status, refused.text.encode()), close=True)
                return
            if request is None:
                return
            try:
                response = await self.handler(request)
            except Exception:  # a task boundary: answer 500, keep the node alive
                log.exception("web: %s %s failed", request.method, request.path)
                response = Response(500, b"internal error", [("content-type", "text/plain")])
            await self._respond(response, close=response.stream is not None)
            if self.conn.our_state is h11.MUST_CLOSE or response.stream is not None:
                return
            try:
                self.conn.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _read_request(self) -> Request | None:
        event = await self._next(IDLE_TIMEOUT)
        if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None
        if not isinstance(event, h11.Request):
            return None
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers}
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            raise _Refused(413, "the request body is too large")
        body = bytearray()
        with trio.fail_after(HEAD_TIMEOUT):
            while True:
                part = await self._next(HEAD_TIMEOUT)
                if isinstance(part, h11.Data):
                    body += part.data
                    if len(body) > MAX_BODY:
                        raise _Refused(413, "the request body is too large")
                elif isinstance(part, h11.EndOfMessage):
                    break
                else:
                    return None
        target = urlsplit(event.target.decode("latin-1"))
        query = dict(parse_qsl(target.query, keep_blank_values=True, max_num_fields=50))
        return Request(
            method=event.method.decode("ascii").upper(),
            path=target.path or "/",
            query=query,
            headers=headers,
            body=bytes(body),
            client=self.client,
        )

    async def _respond(self, response: Response, *, close: bool) -> None:
        headers = list(response.headers)
        if response.stream is None:
            headers.append(("content-length", str(len(response.body))))
        if close:
            headers.append(("connection", "close"))
        reason = _REASONS.get(response.status, "").encode()
        await self._send(h11.Response(status_code=response.status, headers=headers, reason=reason))
        if response.stream is None:
            if response.body:
                await self._send(h11.Data(data=response.body))
        else:
            stream = response.stream
            try:
                async for chunk in stream:
                    await self._send(h11.Data(data=chunk))
            finally:
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:  # the client left: end the stream's subscription now
                    with trio.CancelScope(shield=True):
                        await aclose()
        await self._send(h11.EndOfMessage())


class _Refused(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def _peer_of(stream: trio.abc.Stream) -> str:
    inner = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
    if isinstance(inner, trio.SocketStream):
        with contextlib.suppress(OSError):
            peer = inner.socket.getpeername()
            return str(peer[0]) if isinstance(peer, tuple) else str(peer)
    return "?"
