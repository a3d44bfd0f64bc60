"""Views: what a node shows of what it holds (names, payment history, bills), as JSON values.

Read-only: each view reads the store and the rules' entry types; nothing is
decided or written here.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from typing import Any

from conode.errors import EncodingError
from conode.hashes import ActionHash, AgentKey
from conode.store import NodeStore
from conode.validation.entries import (
    BILL,
    BILL_DECLINE,
    PAYMENT,
    Bill,
    BillDecline,
    Genesis,
    Payment,
)

__all__ = ["Views"]


class Views:
    """Read-only views over ``store`` for the agents this node hosts (``hosted``)."""

    def __init__(
        self, store: NodeStore, hosted: Container[AgentKey], clock: Callable[[], int]
    ) -> None:
        self.store = store
        self.hosted = hosted
        self.clock = clock
        self._geneses: dict[AgentKey, Genesis] = {}
        """Geneses read so far: a genesis never changes once held (one per held chain)."""
        self._directory: tuple[int, list[dict[str, Any]]] = (-1, [])

    def genesis(self, agent: AgentKey) -> Genesis | None:
        """An agent's genesis (its name, role, credential), if its chain is held and it parses."""
        genesis = self._geneses.get(agent)
        if genesis is None:
            record = self.store.get_genesis(agent)
            if record is None:
                return None
            try:
                genesis = Genesis.from_value(record.entry_value())
            except EncodingError:
                return None
            self._geneses[agent] = genesis
        return genesis

    def name_of(self, agent: AgentKey) -> str:
        """The name an agent's genesis gives it ("?" if its chain is not held)."""
        genesis = self.genesis(agent)
        return "?" if genesis is None else genesis.name

    def named(self, name: str) -> list[AgentKey]:
        """The authors of held chains whose genesis names them ``name``."""
        return [a for a in self.store.authors() if self.name_of(a) == name]

    def directory(self) -> list[dict[str, Any]]:
        """Every agent whose genesis is held, by name: ``key``, ``name``, ``role``, ``coop`` and
        ``coop_name`` (a member's co-op, else None), ``hosted`` (here); read again only when the
        number of held chains changes."""
        authors = self.store.authors()
        held, rows = self._directory
        if held == len(authors):
            return rows
        rows = []
        for key in authors:
            genesis = self.genesis(key)
            if genesis is None:
                continue
            coop = genesis.credential.coop if genesis.credential is not None else None
            rows.append(
                {
                    "key": key,
                    "name": genesis.name,
                    "role": genesis.role,
                    "coop": coop,
                    "coop_name": None if coop is None else self.name_of(coop),
                    "hosted": key in self.hosted,
                }
            )
        rows.sort(key=lambda row: (row["name"].casefold(), str(row["key"])))
        self._directory = (len(authors), rows)
        return rows

    def history(self, agent: AgentKey, from_seq: int = 0) -> list[dict[str, Any]]:
        """The payments on ``agent``'s chain at ``from_seq`` or later, oldest first, with named
        counterparties (a reader that keeps what it read asks from its last row's ``seq`` + 1)."""
        rows = []
        for record in self.store.records(agent, from_seq):
            if record.action.entry_type != PAYMENT or record.entry is None:
                continue
            body = Payment.from_value(record.entry_value()).body
            outgoing = body.payer.agent == agent
            other = body.payee.agent if outgoing else body.payer.agent
            mine = body.payer if outgoing else body.payee
            rows.append(
                {
                    "seq": record.action.seq,
                    "timestamp": body.timestamp,
                    "direction": "out" if outgoing else "in",
                    "counterparty": str(other),
                    "counterparty_name": self.name_of(other),
                    "amount": -body.amount if outgoing else body.amount,
                    "memo": body.memo,
                    "balance_after": mine.balance_after,
                    "ref": None if body.ref is None else str(body.ref),
                    "offer": None if body.offer is None else str(body.offer),
                    "offer_title": None if body.offer is None else self._title(body.offer),
                    "record": str(record.hash),
                }
            )
        return rows

    def statement(self, agent: AgentKey, start_us: int, end_us: int) -> dict[str, Any]:
        """``agent``'s payments from ``start_us`` (included) to ``end_us`` (excluded), with the
        balances before and after and the sums paid in and out."""
        rows = self.history(agent)
        before = [r for r in rows if r["timestamp"] < start_us]
        during = [r for r in rows if start_us <= r["timestamp"] < end_us]
        opening = before[-1]["balance_after"] if before else 0
        closing = during[-1]["balance_after"] if during else opening
        return {
            "opening_balance": opening,
            "closing_balance": closing,
            "paid_in": sum(r["amount"] for r in during if r["amount"] > 0),
            "paid_out": -sum(r["amount"] for r in during if r["amount"] < 0),
            "payments": during,
        }

    def _title(self, action: ActionHash) -> str | None:
        """The ``title`` of a held record's entry (an exchange offer's), if it has one."""
        record = self.store.get(action)
        entry = None if record is None or record.entry is None else record.entry_value()
        title = entry.get("title") if isinstance(entry, dict) else None
        return title if isinstance(title, str) else None

    def _refs_received(self, payee: AgentKey) -> set[ActionHash]:
        """The bills and app records that payments to ``payee`` paid, as its chain holds them."""
        found = set()
        for record in self.store.records_of_type(PAYMENT, authors=(payee,)):
            body = Payment.from_value(record.entry_value()).body
            if body.payee.agent == payee and body.ref is not None:
                found.add(body.ref)
        return found

    def bills(self) -> list[dict[str, Any]]:
        """Bills to or from hosted agents, with their status (open, paid, declined, expired)."""
        declined = set()
        for record in self.store.records_of_type(BILL_DECLINE):
            declined.add(BillDecline.from_value(record.entry_value()).bill)
        now = self.clock()
        result = []
        received: dict[AgentKey, set[ActionHash]] = {}
        for record in self.store.records_of_type(BILL):
            bill = Bill.from_value(record.entry_value())
            payee = record.action.author
            if payee not in self.hosted and bill.payer not in self.hosted:
                continue
            if payee not in received:
                received[payee] = self._refs_received(payee)
            # paid: as the payer's chain says, or (a payee's node that does not hold the
            # payer's chain) as the payee's own record of the payment does
            paid = (
                record.hash in self.store.activity(bill.payer).bills_paid
                or record.hash in received[payee]
            )
            status = (
                "paid"
                if paid
                else "declined"
                if record.hash in declined
                else "expired"
                if now > bill.expires_at
                else "open"
            )
            result.append(
                {
                    "id": str(record.hash),
                    "payee": str(payee),
                    "payee_name": self.name_of(payee),
                    "payer": str(bill.payer),
                    "payer_name": self.name_of(bill.payer),
                    "amount": bill.amount,
                    "memo": bill.memo,
                    "expires_at": bill.expires_at,
                    "status": status,
                }
            )
        return result
