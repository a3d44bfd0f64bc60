"""A blocking client of a running node's API: JSON-RPC 2.0, one JSON object per line, a Unix socket.

One connection per call: send one request line, read one response line,
close. Errors are ``ConodeError`` subclasses with one readable line:
``NodeNotRunning`` when nothing answers at the socket, ``ApiError`` when the
node answered with an error (``code``, ``kind`` as in ``docs/api.md``).
"""

from __future__ import annotations

import itertools
import json
import socket
from pathlib import Path
from typing import Any, Final

from cli.datadir import CommandError, DataDir

__all__ = ["DEFAULT_TIMEOUT", "ApiClient", "ApiError", "NodeNotRunning", "node_running"]

DEFAULT_TIMEOUT: Final = 120.0
"""Seconds to wait for an answer: a payment waits for its countersigning session."""
_MAX_RESPONSE: Final = 64 << 20
_MAX_SOCKET_PATH: Final = 100  # sun_path is 104 (BSD) or 108 (Linux) bytes with its NUL
_ids = itertools.count(1)


class NodeNotRunning(CommandError):
    """Nothing answers at the data dir's API socket."""


class ApiError(CommandError):
    """The node answered a call with an error."""

    def __init__(self, message: str, code: int, kind: str | None) -> None:
        super().__init__(message)
        self.code = code
        self.kind = kind


class ApiClient:
    """Calls the API of the node that serves ``data``'s socket."""

    def __init__(self, data: DataDir, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.data = data
        self.path = data.socket_path
        self.timeout = timeout

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """The result of one call; ``NodeNotRunning``, ``ApiError`` or ``CommandError`` if none."""
        request = {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params or {}}
        line = self._exchange(json.dumps(request).encode() + b"\n")
        try:
            response = json.loads(line)
        except ValueError as exc:
            raise CommandError(
                f"the node at {self.path} answered something that is not JSON"
            ) from exc
        if not isinstance(response, dict):
            raise CommandError(f"the node at {self.path} answered {response!r}")
        error = response.get("error")
        if error is not None:
            message = str(error.get("message", error)) if isinstance(error, dict) else str(error)
            data = error.get("data") if isinstance(error, dict) else None
            kind = data.get("kind") if isinstance(data, dict) else None
            code = error.get("code", 0) if isinstance(error, dict) else 0
            raise ApiError(message, code if isinstance(code, int) else 0, kind)
        return response.get("result")

    def _exchange(self, payload: bytes) -> bytes:
        sock = _connect(self.data, self.path, self.timeout)
        try:
            sock.sendall(payload)
            chunks: list[bytes] = []
            size = 0
            while True:
                chunk = sock.recv(1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if b"\n" in chunk:
                    break
                if size > _MAX_RESPONSE:
                    raise CommandError(f"the node at {self.path} sent an over-long answer")
        except TimeoutError as exc:
            raise CommandError(
                f"the node for {self.data.root} did not answer within {self.timeout:g} s"
            ) from exc
        except OSError as exc:
            raise CommandError(
                f"lost the connection to the node for {self.data.root}: {exc.strerror or exc}"
            ) from exc
        finally:
            sock.close()
        data = b"".join(chunks)
        if b"\n" not in data:
            raise CommandError(f"the node for {self.data.root} closed the connection mid-answer")
        return data.split(b"\n", 1)[0]


def node_running(data: DataDir) -> bool:
    """True if a node answers at ``data``'s API socket."""
    try:
        sock = _connect(data, data.socket_path, 2.0)
    except CommandError:
        return False
    sock.close()
    return True


def _connect(data: DataDir, path: Path, timeout: float) -> socket.socket:
    if not hasattr(socket, "AF_UNIX"):
        raise CommandError("this platform has no Unix sockets: the node API needs them")
    if len(str(path)) > _MAX_SOCKET_PATH:
        raise CommandError(
            f"the socket path {path} is too long for a Unix socket: use a shorter --data-dir"
        )
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        sock.close()
        raise NodeNotRunning(
            f"no node is running for {data.root} (start it with `conode run`)"
        ) from exc
    except OSError as exc:
        sock.close()
        raise CommandError(f"cannot reach the node at {path}: {exc.strerror or exc}") from exc
    return sock
