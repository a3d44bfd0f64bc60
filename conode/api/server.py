"""The local API's server: the Unix socket (mode 0600), JSON-RPC 2.0 one request per line, and
each error mapped to one readable line.

The CLI (and later a local web page) talks to a running node only through
this socket; there is no network listener, so reaching the API means being
the node's own user on its machine. Methods and their results are
documented in ``docs/api.md``; errors are JSON-RPC errors whose ``message``
is one readable line and whose ``data.kind`` names the conode error class.
The methods live in groups of one job each (``money``, ``network``,
``apps``, ``governance``), and call only the ``Node`` façade's public
methods.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket as stdlib_socket
from pathlib import Path
from typing import Final

import trio

from conode import boundedjson
from conode.api.apps import AppMethods
from conode.api.connections import ApiLimits, LineServer, error_line
from conode.api.governance import GovernanceMethods
from conode.api.money import MoneyMethods
from conode.api.network import KeyLoader, NetworkMethods
from conode.api.params import Method, Names
from conode.dht.firewall import Firewall
from conode.dht.transport import TaskStatus
from conode.errors import ConodeError
from conode.node import Node
from conode.node.apps import AppHost
from conode.node.governance import Governance

__all__ = ["ApiServer"]

log = logging.getLogger("conode.api")

_BACKLOG: Final = 64
_PARSE_ERROR: Final = -32700
_INVALID_REQUEST: Final = -32600
_NO_METHOD: Final = -32601
_BAD_PARAMS: Final = -32602
_INTERNAL: Final = -32603
_CONODE_ERROR: Final = 1


class ApiServer:
    """Serves the node's API on a Unix socket at ``path``."""

    def __init__(
        self,
        node: Node,
        path: Path,
        key_loader: KeyLoader | None = None,
        *,
        firewall: Firewall | None = None,
        apps: AppHost | None = None,
        governance: Governance | None = None,
        limits: ApiLimits | None = None,
    ) -> None:
        """``key_loader`` opens a key file for ``recover`` (the daemon knows the passphrase source);
        ``firewall`` is the node's transport wrapper for ``block``/``unblock``; ``apps`` runs the
        ``app.*`` methods; ``limits`` bound the connections (``conode.api.connections``)."""
        self.path = path
        self.server = LineServer(self.handle_line, limits)
        names = Names(node)
        governance = governance or (apps.governance if apps is not None else Governance(node))
        self.methods: dict[str, Method] = {
            **NetworkMethods(node, names, key_loader, firewall, apps).methods(),
            **MoneyMethods(node, names).methods(),
            **AppMethods(apps, names).methods(),
            **GovernanceMethods(node, names, governance).methods(),
        }

    async def run(self, *, task_status: TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on the socket until cancelled; the socket file is removed on the way out.

        Connections are served within the server's limits (``conode.api.connections``).
        """
        sock = trio.socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old_umask = os.umask(
            0o177
        )  # the socket file is born 0600: no window where others may connect
        try:
            await sock.bind(os.fspath(self.path))
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        sock.listen(_BACKLOG)
        try:
            await self.server.serve(sock, task_status=task_status)
        finally:
            sock.close()
            with contextlib.suppress(OSError):
                self.path.unlink()

    async def handle_line(self, line: bytes) -> bytes:
        """One request line in, one response line out."""
        try:
            request = boundedjson.loads(line)
        except boundedjson.JsonTooLarge as exc:
            return error_line(None, _PARSE_ERROR, f"the request is {exc}")
        except ValueError:
            return error_line(None, _PARSE_ERROR, "the request is not JSON")
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return error_line(None, _INVALID_REQUEST, "a request is {jsonrpc, id, method, params}")
        request_id = request.get("id")
        method = self.methods.get(request["method"])
        if method is None:
            return error_line(request_id, _NO_METHOD, f"no method {request['method']!r}")
        params = request.get("params") or {}
        if not isinstance(params, dict):
            return error_line(request_id, _BAD_PARAMS, "params must be an object")
        try:
            result = await method(params)
        except ConodeError as exc:
            return error_line(request_id, _CONODE_ERROR, str(exc), type(exc).__name__)
        except (KeyError, TypeError, ValueError) as exc:
            return error_line(request_id, _BAD_PARAMS, f"bad parameters: {exc}")
        except Exception as exc:  # a task boundary: log it, answer, keep the node alive
            log.exception("API method %s failed", request["method"])
            return error_line(request_id, _INTERNAL, f"internal error: {exc}")
        return (json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}) + "\n").encode()
