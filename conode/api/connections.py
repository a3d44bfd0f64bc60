"""The local API's connections: how many, how long idle, how much buffered (a trio shell).

How it works: ``LineServer.serve`` accepts connections on a listening stream
socket and serves each in its own task: read one request line, answer it
with the line ``handle_line`` returns, repeat. Limits (``ApiLimits``):

- a line is at most ``max_line`` bytes; a longer one is answered with a
  JSON-RPC error and the connection closed, so a connection never buffers
  more than ``max_line`` plus one read;
- a connection waiting for its next line is *idle*; each line must be
  complete within ``idle_timeout`` seconds of the previous answer (or of
  the connection), else the connection is closed: a client that sends
  nothing, or a byte at a time, is dropped;
- an answer the client does not read within ``send_timeout`` closes it;
- at most ``max_connections`` are served at once. A connection arriving at
  the cap makes room by closing the connection idle longest (it has no
  request in flight, so it loses nothing); if every served connection is
  busy with a request, the newcomer gets one JSON-RPC error line and is
  closed.

So any number of idle connections can neither lock out a new client nor hold
more than ``max_connections`` descriptors and ``max_connections * max_line``
bytes of buffers, and the node's peers keep the rest of the process's
descriptors. A connection's task is a task boundary: whatever it raises is
logged and closes that connection only.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import trio

from conode.dht.transport import TaskStatus

__all__ = [
    "IDLE_TIMEOUT",
    "MAX_CONNECTIONS",
    "MAX_LINE",
    "SEND_TIMEOUT",
    "ApiLimits",
    "LineHandler",
    "LineServer",
    "error_line",
]

log = logging.getLogger("conode.api")

MAX_CONNECTIONS: Final = 32
"""API connections served at once."""
IDLE_TIMEOUT: Final = 30.0
"""Seconds a connection may take to send its next complete request line."""
SEND_TIMEOUT: Final = 30.0
"""Seconds a client may take to read an answer."""
MAX_LINE: Final = 1 << 20
"""Longest request line, in bytes (1 MiB)."""

INVALID_REQUEST: Final = -32600
"""JSON-RPC's code for a request that is not one (here: an over-long line)."""
SERVER_BUSY: Final = -32000
"""JSON-RPC server error: every connection slot is busy with a request."""

_READ_SIZE: Final = 65536
_ACCEPT_CAPACITY_ERRNOS: Final = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
)
_ACCEPT_RETRY: Final = 0.1

LineHandler = Callable[[bytes], Awaitable[bytes]]
"""One request line in (without its newline), one answer line out (with it)."""


@dataclass(frozen=True, slots=True)
class ApiLimits:
    """The API's connection limits; see the module docstring. Every figure is positive."""

    max_connections: int = MAX_CONNECTIONS
    idle_timeout: float = IDLE_TIMEOUT
    send_timeout: float = SEND_TIMEOUT
    max_line: int = MAX_LINE

    def __post_init__(self) -> None:
        if min(self.max_connections, self.idle_timeout, self.send_timeout, self.max_line) <= 0:
            raise ValueError("API limits are positive")


def error_line(request_id: object, code: int, message: str, kind: str | None = None) -> bytes:
    """A JSON-RPC error answer, as one line."""
    error: dict[str, object] = {"code": code, "message": message}
    if kind is not None:
        error["data"] = {"kind": kind}
    return (json.dumps({"jsonrpc": "2.0", "id": request_id, "error": error}) + "\n").encode()


class _LineTooLong(Exception):
    pass


class _Connection:
    """A served connection: its cancel scope, and since when it has waited for a line (None: busy)."""

    __slots__ = ("idle_since", "scope")

    def __init__(self, now: float) -> None:
        self.scope = trio.CancelScope()
        self.idle_since: float | None = now


class LineServer:
    """Serves request lines on accepted connections within ``limits``."""

    def __init__(self, handle_line: LineHandler, limits: ApiLimits | None = None) -> None:
        self.handle_line = handle_line
        self.limits = limits or ApiLimits()
        self._served: set[_Connection] = set()

    @property
    def connections(self) -> int:
        """How many connections are being served now."""
        return len(self._served)

    async def serve(
        self,
        listener: trio.socket.SocketType,
        *,
        task_status: TaskStatus = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept and serve connections on the listening ``listener`` until cancelled."""
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                try:
                    sock, _ = await listener.accept()
                except OSError as exc:
                    if exc.errno not in _ACCEPT_CAPACITY_ERRNOS:
                        raise
                    log.warning("API: cannot accept a connection: %s", exc.strerror)
                    await trio.sleep(_ACCEPT_RETRY)
                    continue
                stream = trio.SocketStream(sock)
                if len(self._served) >= self.limits.max_connections and not self._close_idlest():
                    nursery.start_soon(self._refuse, stream)
                    continue
                connection = _Connection(trio.current_time())
                self._served.add(connection)
                nursery.start_soon(self._serve_connection, stream, connection)

    def _close_idlest(self) -> bool:
        """Close the connection idle longest; False if every connection is busy."""
        idle = [c for c in self._served if c.idle_since is not None]
        if not idle:
            return False
        idlest = min(idle, key=lambda c: c.idle_since or 0.0)
        self._served.discard(idlest)
        idlest.scope.cancel()
        return True

    async def _refuse(self, stream: trio.SocketStream) -> None:
        message = f"the node is busy with {len(self._served)} API requests: try again"
        with (
            trio.move_on_after(self.limits.send_timeout),
            contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
        ):
            await stream.send_all(error_line(None, SERVER_BUSY, message))
        await stream.aclose()

    async def _serve_connection(self, stream: trio.SocketStream, connection: _Connection) -> None:
        limits = self.limits
        buffer = bytearray()
        try:
            with connection.scope:
                while True:
                    connection.idle_since = trio.current_time()
                    line: bytes | None = None
                    with trio.move_on_after(limits.idle_timeout):
                        line = await _read_line(stream, buffer, limits.max_line)
                    if line is None:  # the client closed, or took too long
                        return
                    connection.idle_since = None
                    answer = await self.handle_line(line)
                    with trio.move_on_after(limits.send_timeout) as sending:
                        await stream.send_all(answer)
                    if sending.cancelled_caught:
                        return
        except _LineTooLong:
            with trio.move_on_after(limits.send_timeout):
                message = f"a request line is at most {limits.max_line} bytes"
                await stream.send_all(error_line(None, INVALID_REQUEST, message))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:  # a task boundary: this connection ends, the node keeps serving
            log.exception("API connection failed")
        finally:
            self._served.discard(connection)
            await stream.aclose()


async def _read_line(stream: trio.SocketStream, buffer: bytearray, max_line: int) -> bytes | None:
    """The next line (without its newline), None at the end of the stream; ``_LineTooLong``."""
    scanned = 0
    while (end := buffer.find(b"\n", scanned)) < 0:
        if len(buffer) > max_line:
            raise _LineTooLong
        scanned = len(buffer)
        chunk = await stream.receive_some(_READ_SIZE)
        if not chunk:
            return None
        buffer += chunk
    if end > max_line:
        raise _LineTooLong
    line = bytes(buffer[:end])
    del buffer[: end + 1]
    return line
