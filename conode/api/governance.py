"""The API's governance methods: proposals, votes, ratification, the Foundation."""

from __future__ import annotations

import contextlib
from typing import Any

from conode import seeing
from conode.api import params as p
from conode.api.params import Method, Names
from conode.apps.foundation.views import ProposalView
from conode.errors import ConodeError
from conode.hashes import AgentKey
from conode.node import Node
from conode.node.governance import Governance
from conode.validation.charter import AppPin
from conode.validation.governance import ProposalKind

__all__ = ["GovernanceMethods"]


class GovernanceMethods:
    """``gov.proposals``, ``gov.proposal``, ``gov.propose``, ``gov.vote``, ``gov.ratify``,
    ``gov.foundation``, ``gov.coop``."""

    def __init__(self, node: Node, names: Names, governance: Governance) -> None:
        self.node = node
        self.names = names
        self.governance = governance

    def methods(self) -> dict[str, Method]:
        """The methods by name."""
        return {
            "gov.proposals": self.proposals,
            "gov.proposal": self.proposal,
            "gov.propose": self.propose,
            "gov.vote": self.vote,
            "gov.ratify": self.ratify,
            "gov.foundation": self.foundation,
            "gov.coop": self.coop,
        }

    async def coop(self, params: dict[str, Any]) -> Any:
        """``{as?}``: the hosted co-op that acts (named, or the node's only co-op)."""
        key = self.names.coop(params.get("as"))
        return {"agent": str(key), "name": self.node.name_of(key)}

    async def proposals(self, params: dict[str, Any]) -> Any:
        """Every proposal held, newest first (``status``: only those in that status)."""
        status = params.get("status")
        held = [v for v in self.governance.proposals() if status is None or v.status == status]
        await self.node.know_names(a for v in held for a in _people(v))
        return [seeing.named_proposal(self.node, v.to_value()) for v in held]

    async def proposal(self, params: dict[str, Any]) -> Any:
        """One proposal: votes, tally, status, payment, comments, reports."""
        view = self.governance.proposal(self.names.action(params, "id"))
        await self.node.know_names(_people(view))
        return seeing.named_proposal(self.node, view.to_value())

    async def propose(self, params: dict[str, Any]) -> Any:
        """``{kind, title?, as?, ...}``: disburse {coop, amount, purpose}, amend {param, value},
        admit {agent, legal_name, registration}, revoke {agent, reason}, app {id, version, hash}."""
        proposer = self.names.coop(params.get("as"))
        kind = p.text(params, "kind")
        title = str(params.get("title") or "")
        gov = self.governance
        if kind == "disburse":
            record = await gov.disburse(
                proposer,
                self.names.agent(p.text(params, "coop")),
                p.amount(params),
                p.text(params, "purpose"),
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
            return {"param": p.text(params, "param"), "value": params["value"]}
        if kind == ProposalKind.ADMIT:
            return {
                "agent": self.names.agent_key(params, "agent").to_bytes(),
                "legal_name": p.text(params, "legal_name"),
                "registration": p.text(params, "registration"),
            }
        if kind == ProposalKind.REVOKE:
            target = self.names.agent(p.text(params, "agent"))
            return {"agent": target.to_bytes(), "reason": p.text(params, "reason")}
        if kind == ProposalKind.APP:
            pin = AppPin(p.text(params, "id"), p.text(params, "version"), p.bundle(params))
            return {"app": pin.to_value()}
        raise ValueError("kind is disburse, amend, admit, revoke or app")

    async def vote(self, params: dict[str, Any]) -> Any:
        """``{id, choice, as?}``: a hosted co-op (or member, where the rules let members vote) votes."""
        proposal = self.names.action(params, "id")
        record = await self.governance.vote(
            self.names.coop(params.get("as")), proposal, p.text(params, "choice")
        )
        return {"vote": str(record.hash), **self.governance.proposal(proposal).to_value()}

    async def ratify(self, params: dict[str, Any]) -> Any:
        """``{id, as?}``: ratify a proposal that passed (entry n+1 of this node's log)."""
        proposal = self.names.action(params, "id")
        record = await self.governance.ratify(self.names.coop(params.get("as")), proposal)
        return {"ratification": str(record.hash), **self.governance.proposal(proposal).to_value()}

    async def foundation(self, params: dict[str, Any]) -> Any:
        """The Foundation's key, balance (its chain fetched first), steward, owed disbursements."""
        key = self.governance.foundation_key()
        if key is not None and key not in self.node.agents:
            with contextlib.suppress(ConodeError):  # answer from what is held if no peer has it
                await self.node.fetch_chain(key)
        return self.governance.foundation()


def _people(view: ProposalView) -> list[AgentKey]:
    """Whom a proposal's view names: its author, voters, and its comments' and reports' authors
    (a sharded node may hold none of their chains: their names are fetched before it is shown)."""
    return [
        view.author,
        *(v.voter for v in view.votes),
        *(c.author for c in view.comments),
        *(r.author for r in view.reports),
    ]


def _default_title(kind: str, params: dict[str, Any]) -> str:
    """A title for a proposal proposed without one."""
    if kind == ProposalKind.AMEND:
        return f"Amend {params.get('param')}"
    if kind == ProposalKind.ADMIT:
        return f"Admit {params.get('legal_name')}"
    if kind == ProposalKind.REVOKE:
        return f"Revoke {params.get('agent')}"
    return f"Run app {params.get('id')} {params.get('version')}"
