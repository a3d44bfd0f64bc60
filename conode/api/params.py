"""Reading the API's request parameters: each reader returns the typed value or raises
``ValueError`` with a line that names the parameter (the server answers it as bad params).

``Names`` turns the names and keys a request gives into agents, through the node's public
methods only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from conode.errors import EncodingError, ValidationError
from conode.hashes import ActionHash, AgentKey, BundleHash, resolve
from conode.node import Node, PaymentResult
from conode.numerals import parse_whole

__all__ = [
    "Method",
    "Names",
    "amount",
    "bundle",
    "is_idempotency_key",
    "payment",
    "peer_list",
    "text",
    "whole",
]

Method = Callable[[dict[str, Any]], Awaitable[Any]]
"""An API method: the request's params in, a JSON value out."""


class Names:
    """Agents from the names or printable keys of a request, as ``node`` knows them."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def agent(self, text: str | None, *, hosted: bool = False) -> AgentKey:
        """An agent from a name or a printable key; the only hosted agent when ``text`` is None."""
        node = self.node
        if text is None:
            if len(node.agents) == 1:
                return next(iter(node.agents))
            raise ValidationError("agent", "this node hosts several agents: name one")
        if text.lower().startswith("agt_"):
            key = resolve(AgentKey, text, node.authors_between)
        else:
            matches = node.named(text)
            if len(matches) != 1:
                what = "no agent" if not matches else "several agents"
                raise ValidationError("agent", f"{what} named {text!r} here (give its agt_… key)")
            key = matches[0]
        if hosted and key not in node.agents:
            raise ValidationError("agent", f"{text} is not hosted on this node")
        return key

    async def find(self, text: str | None) -> AgentKey:
        """An agent to pay, bill or read, from a name or a printable key: as ``agent`` finds it,
        else a name looked up among the agents whose host this node knows (``Node.find_named``):
        on a sharded network the node holds its share of the chains, not everyone's."""
        try:
            return self.agent(text)
        except ValidationError:
            if text is None or text.lower().startswith("agt_"):
                raise
        matches = await self.node.find_named(text)
        if len(matches) != 1:
            what = "no agent" if not matches else "several agents"
            raise ValidationError("agent", f"{what} named {text!r} here (give its agt_… key)")
        return matches[0]

    def action(self, params: dict[str, Any], name: str) -> ActionHash:
        """A required record hash: whole, or a unique prefix of a record held here
        (``conode.hashes.resolve``)."""
        try:
            return resolve(ActionHash, text(params, name), self.node.actions_between)
        except EncodingError as exc:
            raise ValueError(f"{name}: {exc}") from exc

    def agent_key(self, params: dict[str, Any], name: str) -> AgentKey:
        """A required agent key: whole, or a unique prefix of a chain held here."""
        try:
            return resolve(AgentKey, text(params, name), self.node.authors_between)
        except EncodingError as exc:
            raise ValueError(f"{name}: {exc}") from exc

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


def text(params: dict[str, Any], name: str) -> str:
    """A required, non-empty string."""
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is required")
    return value


def amount(params: dict[str, Any]) -> int:
    """``amount``: a positive whole number of minor units (a JSON integer)."""
    value = params.get("amount")
    if type(value) is not int or value <= 0:
        raise ValueError("amount is a positive whole number of minor units")
    return value


def whole(params: dict[str, Any], name: str, default: int) -> int:
    """An optional whole number (``default`` if absent or 0): a JSON integer or ASCII digits."""
    value = params.get(name)
    if value is None or value == "" or value == 0:
        return default
    if type(value) is int:
        return value
    if isinstance(value, str):
        return parse_whole(value, name)
    raise ValueError(f"{name} is a whole number")


def bundle(params: dict[str, Any]) -> BundleHash:
    """``hash``: a required app bundle hash."""
    try:
        return BundleHash.parse(text(params, "hash"))
    except EncodingError as exc:
        raise ValueError(f"hash: {exc}") from exc


def peer_list(params: dict[str, Any]) -> list[str]:
    """``peers``: a list of peer ids."""
    peers = params.get("peers")
    if not isinstance(peers, list) or not all(isinstance(p, str) and p for p in peers):
        raise ValueError("peers is a list of peer ids")
    return peers


def is_idempotency_key(value: object) -> bool:
    """An idempotency key: 1 to 64 printable ASCII characters."""
    return type(value) is str and 0 < len(value) <= 64 and value.isascii() and value.isprintable()


def payment(result: PaymentResult) -> dict[str, Any]:
    """A payment's outcome as the API answers it."""
    return {
        "committed": result.committed,
        "reason": result.reason,
        "record": None if result.record is None else str(result.record),
        "elapsed_ms": round(result.elapsed_ms, 2),
    }
