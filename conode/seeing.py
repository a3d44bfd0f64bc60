"""Seeing the network, for the local API: the warrants a node holds and every agent it knows.

``warrants``: each warrant held, with its offender named, the rule the
evidence breaks (re-judged here by the node's own engine, so the answer is
the rules', not the issuer's word), the evidence's records, when it was
issued, and what it means for the user. ``directory``: every agent whose
chain the node holds: name, key, role, co-op, the node hosting it (this
one, a peer, or not known), and whether it is revoked or warranted.

A shell over the store and the engine: it decides nothing.
"""

from __future__ import annotations

from typing import Any, Final

from conode.errors import EncodingError
from conode.hashes import AgentKey
from conode.node import Node
from conode.validation.activity import fold_chain
from conode.validation.entries import Genesis, Role
from conode.validation.governance import Rules
from conode.validation.verdict import Invalid, Missing
from conode.validation.warrants import Warrant

__all__ = ["directory", "named_proposal", "warrants"]

_MEANING: Final = {
    "fork": "it signed two different records at one place in its chain (spending one position twice)",
    "invalid": "it signed a record the network's rules refuse",
    "activity": "its chain breaks a rule of the chain as a whole (a skipped payment, a second vote, "
    "a bill paid twice, paying while owing)",
    "stale-rules": "it acted under old rules after a ratified change that barred it",
    "equivocation": "it countersigned a payment at a position and then put something else there",
}
_CONSEQUENCE: Final = (
    "honest nodes take no new records from it and open no payment with it: it can neither pay "
    "nor be paid; its past records stay as they were"
)


def warrants(node: Node) -> list[dict[str, Any]]:
    """Every warrant the node holds, newest first (see the module docstring)."""
    rows: list[dict[str, Any]] = []
    for digest, offender, data in node.store.warrants():
        try:
            warrant = Warrant.from_bytes(data)
        except (EncodingError, ValueError):
            continue  # kept only after it was checked; an unreadable one says nothing
        rule, reason = _offence(node, warrant)
        rows.append(
            {
                "id": digest.hex(),
                "offender": str(offender),
                "name": node.name_of(offender),
                "coop": _coop_name(node, offender),
                "kind": warrant.kind,
                "rule": rule,
                "reason": reason,
                "evidence": [
                    {
                        "record": str(r.hash),
                        "author": str(r.action.author),
                        "seq": r.action.seq,
                        "entry_type": r.action.entry_type,
                    }
                    for r in warrant.evidence
                ],
                "issuer": str(warrant.issuer),
                "issued_at": warrant.issued_at,
                "hosted_here": offender in node.agents,
                "meaning": f"{_MEANING.get(warrant.kind, warrant.kind)}; {_CONSEQUENCE}",
            }
        )
    rows.sort(key=lambda row: -int(row["issued_at"]))
    return rows


def _offence(node: Node, warrant: Warrant) -> tuple[str, str]:
    """The rule and reason the evidence shows, as this node's own engine judges it now."""
    if warrant.kind == "invalid" and warrant.evidence:
        verdict = node.engine.validate_record(warrant.evidence[0], node.store)
        if isinstance(verdict, Invalid):
            return verdict.rule, verdict.reason
        if isinstance(verdict, Missing):
            return "invalid", "the record's dependencies are not held here to re-judge it"
        return "invalid", "the record is valid under the rules this node holds now"
    if warrant.kind == "activity":
        _state, offence, _position = fold_chain(warrant.evidence)
        if offence is not None:
            return offence.rule, offence.reason
    if warrant.kind == "fork" and len(warrant.evidence) == 2:
        seq = warrant.evidence[0].action.seq
        return "fork", f"two different records signed at seq {seq}"
    return warrant.kind, _MEANING.get(warrant.kind, "")


def directory(node: Node) -> list[dict[str, Any]]:
    """Every agent whose chain the node holds, by role, co-op and name."""
    rules = _rules(node)
    rows: list[dict[str, Any]] = []
    for agent in node.store.authors():
        genesis = _genesis(node, agent)
        if genesis is None:
            continue
        coop = agent if genesis.role == Role.COOP else _credential_coop(genesis)
        head = node.store.head(agent)
        rows.append(
            {
                "name": genesis.name,
                "agent": str(agent),
                "role": genesis.role,
                "coop": None if coop is None else str(coop),
                "coop_name": None if coop is None else node.name_of(coop),
                "hosted_by": _host(node, agent),
                "revoked": rules is not None and agent in rules.revoked,
                "warranted": node.store.warranted(agent),
                "records": node.store.count(agent),
                "head": None if head is None else str(head.hash),
            }
        )
    order = {Role.FOUNDATION: 0, Role.COOP: 1, Role.MEMBER: 2}
    rows.sort(key=lambda r: (r["coop_name"] or "", order.get(r["role"], 3), r["name"]))
    return rows


def _genesis(node: Node, agent: AgentKey) -> Genesis | None:
    record = node.store.get_genesis(agent)
    if record is None:
        return None
    try:
        return Genesis.from_value(record.entry_value())
    except (EncodingError, ValueError):
        return None


def _credential_coop(genesis: Genesis) -> AgentKey | None:
    return None if genesis.credential is None else genesis.credential.coop


def _coop_name(node: Node, agent: AgentKey) -> str | None:
    genesis = _genesis(node, agent)
    if genesis is None:
        return None
    coop = agent if genesis.role == Role.COOP else _credential_coop(genesis)
    return None if coop is None else node.name_of(coop)


def _host(node: Node, agent: AgentKey) -> str | None:
    if agent in node.agents:
        return "this node"
    return node.hosts.get(agent)


def _rules(node: Node) -> Rules | None:
    rules = node.engine.rules_at(node.rules_head(), node.clock(), node.store)
    return rules if isinstance(rules, Rules) else None


def named_proposal(node: Node, value: dict[str, Any]) -> dict[str, Any]:
    """A proposal's JSON view (``ProposalView.to_value``) with people named beside their keys:
    ``author_name``, each vote's ``voter_name``, each comment's and report's ``author_name``."""

    def name(text: str) -> str:
        try:
            return node.name_of(AgentKey.parse(text))
        except EncodingError:
            return "?"

    out = {**value, "author_name": name(value["author"])}
    out["votes"] = [{**v, "voter_name": name(v["voter"])} for v in value["votes"]]
    for part in ("comments", "reports"):
        out[part] = [{**c, "author_name": name(c["author"])} for c in value[part]]
    return out
