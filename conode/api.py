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

from conode import boundedjson
from conode.apiserve import ApiLimits, LineServer
from conode.apiserve import error_line as _error_line
from conode.apphost import AppHost
from conode.dht.firewall import Firewall
from conode.dht.transport import TaskStatus
from conode.errors import AppError, ConodeError, EncodingError, ValidationError
from conode.governing import Governance
from conode.hashes import ActionHash, AgentKey, BundleHash
from conode.node import HostedAgent, Node, PaymentResult
from conode.validation.audit import AuditReport, audit_chain
from conode.validation.charter import AppPin
from conode.validation.governance import ProposalKind

__all__ = ["ApiServer"]

log = logging.getLogger("conode.api")

_BACKLOG: Final = 64
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
        apps: AppHost | None = None,
        governance: Governance | None = None,
        limits: ApiLimits | None = None,
    ) -> None:
        """``key_loader`` opens a key file for ``recover`` (the daemon knows the passphrase source);
        ``firewall`` is the node's transport wrapper for ``block``/``unblock``; ``apps`` runs the
        ``app.*`` methods; ``limits`` bound the connections (``conode.apiserve``)."""
        self.node = node
        self.path = path
        self.key_loader = key_loader
        self.firewall = firewall
        self.apps = apps
        self.governance = governance or (apps.governance if apps is not None else Governance(node))
        self.server = LineServer(self.handle_line, limits)
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
            "app.call": self.app_call,
            "app.list": self.app_list,
            "app.show": self.app_show,
            "app.fetch": self.app_fetch,
            "app.approve": self.app_approve,
            "app.withdraw": self.app_withdraw,
            "gov.proposals": self.gov_proposals,
            "gov.proposal": self.gov_proposal,
            "gov.propose": self.gov_propose,
            "gov.vote": self.gov_vote,
            "gov.ratify": self.gov_ratify,
            "gov.foundation": self.gov_foundation,
            "gov.coop": self.gov_coop,
        }

    async def run(self, *, task_status: TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on the socket until cancelled; the socket file is removed on the way out.

        Connections are served within ``self.limits`` (``conode.apiserve``).
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
            return _error_line(None, _PARSE_ERROR, f"the request is {exc}")
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
        status = self.node.status()
        if self.apps is not None:
            status["apps"] = [
                {k: app[k] for k in ("id", "version", "running", "reason")}
                for app in self.apps.statuses()
            ]
        return status

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
        offer = None if params.get("offer") is None else _action(params, "offer")
        result = await self.node.pay(
            payer, payee, amount, memo=str(params.get("memo") or ""), offer=offer
        )
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

    # -- apps ---------------------------------------------------------------------------------------

    def _apps(self) -> AppHost:
        if self.apps is None:
            raise AppError("this node has no app host")
        return self.apps

    async def app_call(self, params: dict[str, Any]) -> Any:
        """Run a function of a running app: ``{app, fn, params?, agent?}``; its result."""
        args = params.get("params") or {}
        if not isinstance(args, dict):
            raise ValueError("params is an object of the function's parameters")
        agent = params.get("agent")
        if agent is not None and not isinstance(agent, str):
            raise ValueError("agent is a name or an agt_… key")
        return await self._apps().call(
            _text(params, "app"),
            _text(params, "fn"),
            args,
            agent=agent,
            resolve=lambda text, hosted: self.agent(text, hosted=hosted),
        )

    async def app_list(self, params: dict[str, Any]) -> Any:
        """Every pinned or installed app: running?, approved?, and why not."""
        return self._apps().statuses()

    async def app_show(self, params: dict[str, Any]) -> Any:
        """A bundle's files and their text (installed or fetched here)."""
        return self._apps().catalog.show(_bundle(params))

    async def app_fetch(self, params: dict[str, Any]) -> Any:
        """Fetch a bundle from the peers; kept only if its bytes hash to the hash asked for."""
        return await self._apps().fetch(_bundle(params))

    async def app_approve(self, params: dict[str, Any]) -> Any:
        """Approve a bundle: its app runs from the node's next start (if installed at that hash)."""
        return self._apps().catalog.approve(_bundle(params))

    async def app_withdraw(self, params: dict[str, Any]) -> Any:
        """Withdraw an approval: the app stops at the node's next start."""
        return self._apps().catalog.withdraw(_bundle(params))

    # -- governance and the Foundation ----------------------------------------------------------

    def coop(self, text: Any) -> AgentKey:
        """The hosted co-op that acts: named, or the only registered co-op this node hosts."""
        if text is not None:
            if not isinstance(text, str):
                raise ValueError("as is a name or an agt_… key")
            return self.agent(text, hosted=True)
        rules = self.node.rules_now()
        coops = [k for k in self.node.agents if rules.is_registered_coop(k)]
        if len(coops) != 1:
            what = "no co-op" if not coops else "several co-ops"
            raise ValidationError(
                "agent", f"this node hosts {what}: name the co-op that acts (--as)"
            )
        return coops[0]

    async def gov_coop(self, params: dict[str, Any]) -> Any:
        """``{as?}``: the hosted co-op that acts (named, or the node's only co-op)."""
        key = self.coop(params.get("as"))
        return {"agent": str(key), "name": self.node.name_of(key)}

    async def gov_proposals(self, params: dict[str, Any]) -> Any:
        """Every proposal held, newest first (``status``: only those in that status)."""
        status = params.get("status")
        views = [v.to_value() for v in self.governance.proposals()]
        return [v for v in views if status is None or v["status"] == status]

    async def gov_proposal(self, params: dict[str, Any]) -> Any:
        """One proposal: votes, tally, status, payment, comments, reports."""
        return self.governance.proposal(_action(params, "id")).to_value()

    async def gov_propose(self, params: dict[str, Any]) -> Any:
        """``{kind, title?, as?, ...}``: disburse {coop, amount, purpose}, amend {param, value},
        admit {agent, legal_name, registration}, revoke {agent, reason}, app {id, version, hash}."""
        proposer = self.coop(params.get("as"))
        kind = _text(params, "kind")
        title = str(params.get("title") or "")
        gov = self.governance
        if kind == "disburse":
            record = await gov.disburse(
                proposer,
                self.agent(_text(params, "coop")),
                _amount(params),
                _text(params, "purpose"),
                title,
            )
        else:
            body = self._proposal_body(kind, params)
            record = await gov.propose(proposer, kind, title or _default_title(kind, params), body)
        return gov.proposal(record.hash).to_value()

    def _proposal_body(self, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        if kind == ProposalKind.AMEND:
            if "value" not in params:
                raise ValueError("value is required (any JSON value)")
            return {"param": _text(params, "param"), "value": params["value"]}
        if kind == ProposalKind.ADMIT:
            return {
                "agent": _agent_key(params, "agent").to_bytes(),
                "legal_name": _text(params, "legal_name"),
                "registration": _text(params, "registration"),
            }
        if kind == ProposalKind.REVOKE:
            target = self.agent(_text(params, "agent"))
            return {"agent": target.to_bytes(), "reason": _text(params, "reason")}
        if kind == ProposalKind.APP:
            pin = AppPin(_text(params, "id"), _text(params, "version"), _bundle(params))
            return {"app": pin.to_value()}
        raise ValueError("kind is disburse, amend, admit, revoke or app")

    async def gov_vote(self, params: dict[str, Any]) -> Any:
        """``{id, choice, as?}``: a hosted co-op (or member, where the rules let members vote) votes."""
        proposal = _action(params, "id")
        record = await self.governance.vote(
            self.coop(params.get("as")), proposal, _text(params, "choice")
        )
        return {"vote": str(record.hash), **self.governance.proposal(proposal).to_value()}

    async def gov_ratify(self, params: dict[str, Any]) -> Any:
        """``{id, as?}``: ratify a proposal that passed (entry n+1 of this node's log)."""
        proposal = _action(params, "id")
        record = await self.governance.ratify(self.coop(params.get("as")), proposal)
        return {"ratification": str(record.hash), **self.governance.proposal(proposal).to_value()}

    async def gov_foundation(self, params: dict[str, Any]) -> Any:
        """The Foundation's key, balance (its chain fetched first), steward, owed disbursements."""
        key = self.governance.foundation_key()
        if key is not None and key not in self.node.agents:
            with contextlib.suppress(ConodeError):  # answer from what is held if no peer has it
                await self.node.fetch_chain(key)
        return self.governance.foundation()

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


def _action(params: dict[str, Any], name: str) -> ActionHash:
    try:
        return ActionHash.parse(_text(params, name))
    except EncodingError as exc:
        raise ValueError(f"{name}: {exc}") from exc


def _agent_key(params: dict[str, Any], name: str) -> AgentKey:
    try:
        return AgentKey.parse(_text(params, name))
    except EncodingError as exc:
        raise ValueError(f"{name}: {exc}") from exc


def _default_title(kind: str, params: dict[str, Any]) -> str:
    """A title for a proposal proposed without one."""
    if kind == ProposalKind.AMEND:
        return f"Amend {params.get('param')}"
    if kind == ProposalKind.ADMIT:
        return f"Admit {params.get('legal_name')}"
    if kind == ProposalKind.REVOKE:
        return f"Revoke {params.get('agent')}"
    return f"Run app {params.get('id')} {params.get('version')}"


def _bundle(params: dict[str, Any]) -> BundleHash:
    try:
        return BundleHash.parse(_text(params, "hash"))
    except EncodingError as exc:
        raise ValueError(f"hash: {exc}") from exc


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
        "issued": report.issued,
        "names": {str(a): n for a, n in report.names.items()},
        "valid": not report.violations,
    }
