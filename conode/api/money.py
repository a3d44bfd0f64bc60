"""The API's money methods: balances, payments, sessions, bills, history and statements."""

from __future__ import annotations

import datetime as dt
from typing import Any

from conode.api import params as p
from conode.api.params import Method, Names
from conode.hashes import AgentKey
from conode.node import Node

__all__ = ["MoneyMethods"]

_BILL_DAYS_S = 7 * 86_400
"""A bill's life when the request does not say (seconds)."""


class MoneyMethods:
    """``balance``, ``pay``, ``sessions``, ``sessions.release``, ``bill``, ``bills``,
    ``accept``, ``decline``, ``history``, ``statement``."""

    def __init__(self, node: Node, names: Names) -> None:
        self.node = node
        self.names = names

    def methods(self) -> dict[str, Method]:
        """The methods by name."""
        return {
            "balance": self.balance,
            "pay": self.pay,
            "sessions": self.sessions,
            "sessions.release": self.sessions_release,
            "bill": self.bill,
            "bills": self.bills,
            "accept": self.accept,
            "decline": self.decline,
            "history": self.history,
            "statement": self.statement,
        }

    async def balance(self, params: dict[str, Any]) -> Any:
        key = await self._read(params)
        return {"agent": str(key), "name": self.node.name_of(key), "balance": self.node.balance(key)}

    async def pay(self, params: dict[str, Any]) -> Any:
        payer = self.names.agent(params.get("from"), hosted=True)
        payee = await self.names.find(p.text(params, "to"))
        amount = p.amount(params)
        offer = None if params.get("offer") is None else self.names.action(params, "offer")
        key = params.get("idempotency_key")
        if key is not None and not p.is_idempotency_key(key):
            raise ValueError("idempotency_key is 1 to 64 printable ASCII characters")
        result = await self.node.pay(
            payer, payee, amount, memo=str(params.get("memo") or ""), offer=offer,
            idempotency_key=key,
        )  # fmt: skip
        return {**p.payment(result), "idempotency_key": key}

    async def sessions(self, params: dict[str, Any]) -> Any:
        """The payment sessions not finished on this node and the chains they hold."""
        return {"sessions": self.node.sessions_held()}

    async def sessions_release(self, params: dict[str, Any]) -> Any:
        """Give up one session (its id or a unique prefix of at least 8 hex digits)."""
        session_id = p.text(params, "id").lower()
        if len(session_id) < 8 or any(c not in "0123456789abcdef" for c in session_id):
            raise ValueError("a session id is at least 8 hex digits")
        said = await self.node.release_session(session_id, force=params.get("force") is True)
        return {"released": said}

    async def bill(self, params: dict[str, Any]) -> Any:
        payee = self.names.agent(params.get("from"), hosted=True)
        payer = await self.names.find(p.text(params, "to"))
        expires_in = p.whole(params, "expires_in_s", _BILL_DAYS_S)
        if expires_in <= 0:
            raise ValueError("expires_in_s must be positive")
        record = await self.node.bill(
            payee,
            payer,
            p.amount(params),
            memo=str(params.get("memo") or ""),
            expires_in_us=expires_in * 1_000_000,
        )
        return {"id": str(record.hash)}

    async def bills(self, params: dict[str, Any]) -> Any:
        return self.node.bills()

    async def accept(self, params: dict[str, Any]) -> Any:
        return p.payment(await self.node.accept_bill(self.names.action(params, "id")))

    async def decline(self, params: dict[str, Any]) -> Any:
        record = await self.node.decline_bill(self.names.action(params, "id"))
        return {"id": str(record.hash)}

    async def history(self, params: dict[str, Any]) -> Any:
        key = await self._read(params)
        return {
            "agent": str(key),
            "name": self.node.name_of(key),
            "payments": self.node.history(key),
        }

    async def statement(self, params: dict[str, Any]) -> Any:
        key = await self._read(params)
        month = p.text(params, "month")
        try:
            first = dt.datetime.strptime(month, "%Y-%m").replace(tzinfo=dt.UTC)
        except ValueError as exc:
            raise ValueError("month is YYYY-MM") from exc
        after = (first + dt.timedelta(days=32)).replace(day=1)
        start_us, end_us = int(first.timestamp() * 1e6), int(after.timestamp() * 1e6)
        return {
            "agent": str(key),
            "name": self.node.name_of(key),
            "month": month,
            **self.node.statement(key, start_us, end_us),
        }

    async def _read(self, params: dict[str, Any]) -> AgentKey:
        """The agent a view names (a hosted one by default), its chain brought here if this
        node does not hold it (``Node.chain_here``)."""
        key = await self.names.find(params.get("agent"))
        await self.node.chain_here(key)
        return key
