"""The local API: JSON-RPC 2.0 over a Unix domain socket (mode 0600), one request per line.

The CLI (and later a local web page) talks to a running node only through
this socket; there is no network listener, so reaching the API means being
the node's own user on its machine. Methods and their results are
documented in ``docs/api.md``; errors are JSON-RPC errors whose ``message``
is one readable line and whose ``data.kind`` names the conode error class.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket as stdlib_socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import trio

from conode.dht.firewall import Firewall
from conode.dht.transport import TaskStatus
from conode.errors import ConodeError, EncodingError, ValidationError
from conode.hashes import ActionHash, AgentKey
from conode.node import HostedAgent, Node, PaymentResult
from conode.validation.audit import AuditReport, audit_chain

__all__ = ["ApiServer", "MAX_REQUEST"]

log = logging.getLogger("conode.api")

MAX_REQUEST: Final = 1 << 20
_PARSE_ERROR: Final = -32700
_INVALID_REQUEST: Final = -32600
_NO_METHOD: Final = -32601
_BAD_PARAMS: Final = -32602
_INTERNAL: Final = -32603
_CONODE_ERROR: Final = 1

Method = Callable[[dict[str, Any]], Awaitable[Any]]
KeyLoader = Callable[[Path], HostedAgent]


class ApiServer:
    """Serves the node's API on a Unix socket at ``path``."""

    def __init__(
        self,
        node: Node,
        path: Path,
        key_loader: KeyLoader | None = None,
        *,
        firewall: Firewall | None = None,
    ) -> None:
        """``key_loader`` opens a key file for ``recover`` (the daemon knows the passphrase source);
        ``firewall`` is the node's transport wrapper for ``block``/``unblock``."""
        self.node = node
        self.path = path
        self.key_loader = key_loader
        self.firewall = firewall
        self.methods: dict[str, Method] = {
            "status": self.status,
            "peers": self.peers,
            "agents": self.agents,
            "balance": self.balance,
            "pay": self.pay,
            "bill": self.bill,
            "bills": self.bills,
            "accept": self.accept,
            "decline": self.decline,
            "history": self.history,
            "statement": self.statement,
            "audit": self.audit,
            "connect": self.connect,
            "sync": self.sync,
            "recover": self.recover,
            "block": self.block,
            "unblock": self.unblock,
        }

    async def run(self, *, task_status: TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on the socket until cancelled; the socket file is removed on the way out."""
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
        sock.listen(64)
        try:
            task_status.started()
            await trio.serve_listeners(self._serve, [trio.SocketListener(sock)])
        finally:
            with contextlib.suppress(OSError):
                self.path.unlink()

    async def _serve(self, stream: trio.SocketStream) -> None:
        buffer = b""
        try:
            while True:
                while b"\n" not in buffer:
                    if len(buffer) > MAX_REQUEST:
                        await stream.send_all(
                            _error_line(None, _INVALID_REQUEST, "request too large")
                        )
                        return
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        return
                    buffer += chunk
                line, buffer = buffer.split(b"\n", 1)
                await stream.send_all(await self.handle_line(line))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return

    async def handle_line(self, line: bytes) -> bytes:
        """One request line in, one response line out."""
        try:
            request = json.loads(line)
        except ValueError:
            return _error_line(None, _PARSE_ERROR, "the request is not JSON")
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return _error_line(None, _INVALID_REQUEST, "a request is {jsonrpc, id, method, params}")
        request_id = request.get("id")
        method = self.methods.get(request["method"])
        if method is None:
            return _error_line(request_id, _NO_METHOD, f"no method {request['method']!r}")
        params = request.get("params") or {}
        if not isinstance(params, dict):
            return _error_line(request_id, _BAD_PARAMS, "params must be an object")
        try:
            result = await method(params)
        except ConodeError as exc:
            return _error_line(request_id, _CONODE_ERROR, str(exc), type(exc).__name__)
        except (KeyError, TypeError, ValueError) as exc:
            return _error_line(request_id, _BAD_PARAMS, f"bad parameters: {exc}")
        except Exception as exc:  # a task boundary: log it, answer, keep the node alive
            log.exception("API method %s failed", request["method"])
            return _error_line(request_id, _INTERNAL, f"internal error: {exc}")
        return (json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}) + "\n").encode()

    # -- resolving names --------------------------------------------------------------------------------

    def agent(self, text: str | None, *, hosted: bool = False) -> AgentKey:
        """An agent from a name or a printable key; the only hosted agent when ``text`` is None."""
        node = self.node
        if text is None:
            if len(node.agents) == 1:
                return next(iter(node.agents))
            raise ValidationError("agent", "this node hosts several agents: name one")
        if text.startswith("agt_"):
            key = AgentKey.parse(text)
        else:
            matches = [k for k, a in node.agents.items() if a.name == text]
            if not matches:
                matches = [a for a in node.store.authors() if node.name_of(a) == text]
            if len(matches) != 1:
                what = "no agent" if not matches else "several agents"
                raise ValidationError("agent", f"{what} named {text!r} here (give its agt_… key)")
            key = matches[0]
        if hosted and key not in node.agents:
            raise ValidationError("agent", f"{text} is not hosted on this node")
        return key

    # -- methods ------------------------------------------------------------------------------------------

    async def status(self, params: dict[str, Any]) -> Any:
        return self.node.status()

    async def peers(self, params: dict[str, Any]) -> Any:
        node = self.node
        hosted: dict[str, list[str]] = {}
        for agent, peer in node.hosts.items():
            hosted.setdefault(peer, []).append(node.name_of(agent))
        return [
            {
                "peer_id": peer,
                "addrs": node.transport.peer_addrs(peer),
                "node_key": str(node.peer_keys[peer]) if peer in node.peer_keys else None,
                "agents": sorted(hosted.get(peer, [])),
            }
            for peer in node.transport.connected_peers()
        ]

    async def agents(self, params: dict[str, Any]) -> Any:
        node = self.node
        return [
            {
                "name": hosted.name,
                "key": str(key),
                "balance": node.store.activity(key).balance,
                "seq": _seq(node, key),
                "auto_accept": hosted.auto_accept,
            }
            for key, hosted in node.agents.items()
        ]

    async def balance(self, params: dict[str, Any]) -> Any:
        key = self.agent(params.get("agent"))
        state = self.node.store.activity(key)
        return {"agent": str(key), "name": self.node.name_of(key), "balance": state.balance}

    async def pay(self, params: dict[str, Any]) -> Any:
        payer = self.agent(params.get("from"), hosted=True)
        payee = self.agent(_text(params, "to"))
        amount = _amount(params)
        result = await self.node.pay(payer, payee, amount, memo=str(params.get("memo") or ""))
        return _payment(result)

    async def bill(self, params: dict[str, Any]) -> Any:
        payee = self.agent(params.get("from"), hosted=True)
        payer = self.agent(_text(params, "to"))
        expires_in = int(params.get("expires_in_s") or 7 * 86_400)
        if expires_in <= 0:
            raise ValueError("expires_in_s must be positive")
        record = await self.node.bill(
            payee,
            payer,
            _amount(params),
            memo=str(params.get("memo") or ""),
            expires_in_us=expires_in * 1_000_000,
        )
        return {"id": str(record.hash)}

    async def bills(self, params: dict[str, Any]) -> Any:
        return self.node.bills()

    async def accept(self, params: dict[str, Any]) -> Any:
        return _payment(await self.node.accept_bill(_bill_id(params)))

    async def decline(self, params: dict[str, Any]) -> Any:
        record = await self.node.decline_bill(_bill_id(params))
        return {"id": str(record.hash)}

    async def history(self, params: dict[str, Any]) -> Any:
        key = self.agent(params.get("agent"))
        return {
            "agent": str(key),
            "name": self.node.name_of(key),
            "payments": self.node.history(key),
        }

    async def statement(self, params: dict[str, Any]) -> Any:
        key = self.agent(params.get("agent"))
        month = _text(params, "month")
        try:
            first = dt.datetime.strptime(month, "%Y-%m").replace(tzinfo=dt.UTC)
        except ValueError as exc:
            raise ValueError("month is YYYY-MM") from exc
        after = (first + dt.timedelta(days=32)).replace(day=1)
        start_us, end_us = int(first.timestamp() * 1e6), int(after.timestamp() * 1e6)
        rows = self.node.history(key)
        before = [r for r in rows if r["timestamp"] < start_us]
        during = [r for r in rows if start_us <= r["timestamp"] < end_us]
        opening = before[-1]["balance_after"] if before else 0
        closing = during[-1]["balance_after"] if during else opening
        return {
            "agent": str(key),
            "name": self.node.name_of(key),
            "month": month,
            "opening_balance": opening,
            "closing_balance": closing,
            "paid_in": sum(r["amount"] for r in during if r["amount"] > 0),
            "paid_out": -sum(r["amount"] for r in during if r["amount"] < 0),
            "payments": during,
        }

    async def audit(self, params: dict[str, Any]) -> Any:
        key = self.agent(_text(params, "agent"))
        await self.node.fetch_chain(key)
        report = audit_chain(self.node.charter, key, self.node.store, self.node.engine.apps)
        return _report(report)

    async def connect(self, params: dict[str, Any]) -> Any:
        return {"peer_id": await self.node.connect(_text(params, "addr"))}

    async def recover(self, params: dict[str, Any]) -> Any:
        """Host an agent again from its key file and rebuild its chain from the DHT."""
        if self.key_loader is None:
            raise ValidationError("recover", "this node cannot open key files")
        hosted = self.key_loader(Path(_text(params, "key_file")))
        node = self.node
        fetched = await node.fetch_chain(hosted.key)
        if node.store.head(hosted.key) is None:
            raise ValidationError("recover", f"no peer holds a chain for {hosted.key.short()}")
        node.add_agent(hosted)
        for peer in node.transport.connected_peers():
            await node.hello(peer)
        return {"agent": str(hosted.key), "name": hosted.name, "records": fetched}

    async def block(self, params: dict[str, Any]) -> Any:
        """Stop talking to these peers (by peer id) until unblocked."""
        firewall = self._firewall()
        firewall.blocked.update(_peer_list(params))
        return {"blocked": sorted(firewall.blocked)}

    async def unblock(self, params: dict[str, Any]) -> Any:
        """Talk to these peers again (all of them with ``"all": true``)."""
        firewall = self._firewall()
        if params.get("all") is True:
            firewall.blocked.clear()
        else:
            firewall.blocked.difference_update(_peer_list(params))
        return {"blocked": sorted(firewall.blocked)}

    def _firewall(self) -> Firewall:
        if self.firewall is None:
            raise ValidationError("firewall", "this node has no firewall to set")
        return self.firewall

    async def sync(self, params: dict[str, Any]) -> Any:
        """Gossip with every connected peer now (the devnet's convergence check uses it)."""
        for peer in self.node.transport.connected_peers():
            await self.node.gossip_with(peer)
        await self.node.publish_pending()
        return {"heads_digest": self.node.heads_digest()}


def _seq(node: Node, key: AgentKey) -> int | None:
    head = node.store.head(key)
    return None if head is None else head.seq


def _peer_list(params: dict[str, Any]) -> list[str]:
    peers = params.get("peers")
    if not isinstance(peers, list) or not all(isinstance(p, str) and p for p in peers):
        raise ValueError("peers is a list of peer ids")
    return peers


def _text(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is required")
    return value


def _amount(params: dict[str, Any]) -> int:
    amount = params.get("amount")
    if type(amount) is not int or amount <= 0:
        raise ValueError("amount is a positive whole number of minor units")
    return amount


def _bill_id(params: dict[str, Any]) -> ActionHash:
    try:
        return ActionHash.parse(_text(params, "id"))
    except EncodingError as exc:
        raise ValueError(str(exc)) from exc


def _payment(result: PaymentResult) -> dict[str, Any]:
    return {
        "committed": result.committed,
        "reason": result.reason,
        "record": None if result.record is None else str(result.record),
        "elapsed_ms": round(result.elapsed_ms, 2),
    }


def _report(report: AuditReport) -> dict[str, Any]:
    return {
        "chains": report.chains,
        "records": report.records,
        "violations": [
            {"agent": str(v.agent), "seq": v.seq, "rule": v.rule, "reason": v.reason}
            for v in report.violations
        ],
        "balances": {str(a): b for a, b in report.balances.items()},
        "names": {str(a): n for a, n in report.names.items()},
        "valid": not report.violations,
    }


def _error_line(request_id: Any, code: int, message: str, kind: str | None = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if kind is not None:
        error["data"] = {"kind": kind}
    return (json.dumps({"jsonrpc": "2.0", "id": request_id, "error": error}) + "\n").encode()
