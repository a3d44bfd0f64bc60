"""The API's node and network methods: status, agents, peers, connecting, syncing, recovering
an agent, blocking peers, auditing a chain."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from conode import seeing
from conode.api import params as p
from conode.api.params import Method, Names
from conode.dht.firewall import Firewall
from conode.errors import KeyFileError, ValidationError
from conode.node import HostedAgent, Node
from conode.node.apps import AppHost
from conode.validation.audit import AuditReport

__all__ = ["KeyLoader", "NetworkMethods"]

KeyLoader = Callable[[Path, bytes | None], Awaitable[HostedAgent]]
"""Opens a key file for ``recover`` with the request's passphrase (None: the node's own
sources), off the event loop (``conode.unlock.KeyUnlocker.open``)."""


class NetworkMethods:
    """``status``, ``agents``, ``peers``, ``connect``, ``sync``, ``recover``, ``block``,
    ``unblock``, ``audit``."""

    def __init__(
        self,
        node: Node,
        names: Names,
        key_loader: KeyLoader | None,
        firewall: Firewall | None,
        apps: AppHost | None,
    ) -> None:
        self.node = node
        self.names = names
        self.key_loader = key_loader
        self.firewall = firewall
        self.apps = apps
        self._recovering = trio.Lock()  # one recovery at a time: a key's memory, a chain's pull

    def methods(self) -> dict[str, Method]:
        """The methods by name."""
        return {
            "status": self.status,
            "peers": self.peers,
            "agents": self.agents,
            "audit": self.audit,
            "connect": self.connect,
            "sync": self.sync,
            "recover": self.recover,
            "block": self.block,
            "unblock": self.unblock,
            "warrants": self.warrants,
            "directory": self.directory,
        }

    async def status(self, params: dict[str, Any]) -> Any:
        status = self.node.status()
        if self.apps is not None:
            status["apps"] = [
                {k: app[k] for k in ("id", "version", "running", "reason")}
                for app in self.apps.statuses()
            ]
        return status

    async def peers(self, params: dict[str, Any]) -> Any:
        return self.node.peer_listing()

    async def warrants(self, params: dict[str, Any]) -> Any:
        return seeing.warrants(self.node)

    async def directory(self, params: dict[str, Any]) -> Any:
        return seeing.directory(self.node)

    async def agents(self, params: dict[str, Any]) -> Any:
        node = self.node
        return [
            {
                "name": hosted.name,
                "key": str(key),
                "balance": node.balance(key),
                "seq": node.chain_seq(key),
                "auto_accept": hosted.auto_accept,
            }
            for key, hosted in node.agents.items()
        ]

    async def audit(self, params: dict[str, Any]) -> Any:
        key = await self.names.find(p.text(params, "agent"))
        return _report(await self.node.audit(key))

    async def connect(self, params: dict[str, Any]) -> Any:
        return {"peer_id": await self.node.connect(p.text(params, "addr"))}

    async def sync(self, params: dict[str, Any]) -> Any:
        """Gossip with every connected peer now (the devnet's convergence check uses it)."""
        return {"heads_digest": await self.node.sync()}

    async def recover(self, params: dict[str, Any]) -> Any:
        """Host an agent again from its key file and rebuild its chain from the DHT."""
        if self.key_loader is None:
            raise ValidationError("recover", "this node cannot open key files")
        path = Path(p.text(params, "key_file"))
        passphrase = _passphrase(params)
        async with self._recovering:
            hosted = await self.key_loader(path, passphrase)
            fetched = await self.node.recover(hosted)
        return {"agent": str(hosted.key), "name": hosted.name, "records": fetched}

    async def block(self, params: dict[str, Any]) -> Any:
        """Stop talking to these peers (by peer id) until unblocked."""
        firewall = self._firewall()
        firewall.blocked.update(p.peer_list(params))
        return {"blocked": sorted(firewall.blocked)}

    async def unblock(self, params: dict[str, Any]) -> Any:
        """Talk to these peers again (all of them with ``"all": true``)."""
        firewall = self._firewall()
        if params.get("all") is True:
            firewall.blocked.clear()
        else:
            firewall.blocked.difference_update(p.peer_list(params))
        return {"blocked": sorted(firewall.blocked)}

    def _firewall(self) -> Firewall:
        if self.firewall is None:
            raise ValidationError("firewall", "this node has no firewall to set")
        return self.firewall


def _passphrase(params: dict[str, Any]) -> bytes | None:
    """The request's ``passphrase_b64`` (a passphrase is bytes), if it gives one."""
    raw = params.get("passphrase_b64")
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise KeyFileError("recover: passphrase_b64 must be a base64 string")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyFileError("recover: passphrase_b64 is not base64") from exc


def _report(report: AuditReport) -> dict[str, Any]:
    return {
        "chains": report.chains,
        "records": report.records,
        "violations": [
            {"agent": str(v.agent), "seq": v.seq, "rule": v.rule, "reason": v.reason}
            for v in report.violations
        ],
        "balances": {str(a): b for a, b in report.balances.items()},
        "issued": report.issued,
        "names": {str(a): n for a, n in report.names.items()},
        "unmatched": [
            {"agent": str(u.agent), "seq": u.seq, "delta": u.delta, "in_flight": u.finding is None}
            for u in report.unmatched
        ],
        "valid": not report.violations,
    }
