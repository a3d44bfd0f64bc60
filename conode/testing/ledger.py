"""A whole conode network in memory with no network at all: agents, chains, rules.

``Ledger`` is pure (its clock is a counter) and judges every commit with the
same engine and activity rules a peer runs, so tests, benchmarks and app
authors can drive real records through the real rules in microseconds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from conode import encoding
from conode.chain import Action, ActionKind, Record, author_record, sign_record
from conode.crypto import Signer
from conode.hashes import ActionHash, AgentKey, EntryHash
from conode.validation.activity import Activity
from conode.validation.admit import Admitted, Needs, Refused, admit
from conode.validation.audit import AuditReport, audit
from conode.validation.charter import AppPin, Charter, FoundingCoop, Limits, Parameters
from conode.validation.engine import AppValidator, Engine
from conode.validation.entries import (
    BILL,
    BILL_DECLINE,
    Bill,
    BillDecline,
    Credential,
    Genesis,
    Payment,
    Role,
)
from conode.validation.governance import PROPOSAL, RATIFICATION, VOTE, Proposal, Ratification, Vote
from conode.validation.memory import HeldRecords
from conode.validation.payment import commit_payment, make_body, sign_body
from conode.validation.verdict import VALID, Invalid, Valid, Verdict

__all__ = ["Agent", "Ledger"]

START = 1_700_000_000_000_000
DAY = 86_400_000_000
COOP_LIMITS = Limits(1_000, 100_000)
MEMBER_LIMITS = Limits(100, 10_000)


@dataclass(slots=True)
class Agent:
    """One agent of the ledger: its key, role, chain and activity."""

    name: str
    signer: Signer
    role: str
    coop: str | None = None
    chain: list[Record] = field(default_factory=list)
    activity: Activity = field(default_factory=Activity)

    @property
    def key(self) -> AgentKey:
        return AgentKey(self.signer.public_key)

    @property
    def balance(self) -> int:
        return self.activity.balance


class Ledger:
    """A network in memory: founding co-ops with members, the engine, and every chain.

    ``apps``: the validators the engine runs; ``pins``: the apps the charter pins (by bundle hash).
    """

    def __init__(
        self,
        coops: int = 2,
        members: int = 2,
        *,
        coop_limits: Limits = COOP_LIMITS,
        member_limits: Limits = MEMBER_LIMITS,
        quorum_bp: int = 5_000,
        threshold_bp: int = 5_001,
        voting_period_us: int = DAY,
        apps: dict[str, AppValidator] | None = None,
        seed: str = "ledger",
        foundation: bool = False,
        app_config: dict[str, Any] | None = None,
        pins: tuple[AppPin, ...] = (),
        members_vote: bool = False,
    ) -> None:
        self.clock = START
        self.seed = seed
        self.agents: dict[str, Agent] = {}
        coop_agents = [self._new_agent(f"coop{i}", Role.COOP) for i in range(coops)]
        fund = self._new_agent("foundation", Role.FOUNDATION) if foundation else None
        self.charter = Charter(
            name=f"{seed} network",
            currency="CXT",
            scale=2,
            founding=tuple(
                FoundingCoop(a.key, f"{a.name} Ltd", f"REG-{i}") for i, a in enumerate(coop_agents)
            ),
            params=Parameters(
                coop_limits=coop_limits,
                member_limits=member_limits,
                foundation_share_bp=1_000,
                quorum_bp=quorum_bp,
                threshold_bp=threshold_bp,
                voting_period_us=voting_period_us,
                replication=3,
                apps=pins,
                app_config=app_config or {},
                members_vote=members_vote,
            ),
            created_at=START,
            foundation=None if fund is None else fund.key,
        )
        self.engine = Engine(self.charter, apps)
        self.held = HeldRecords()
        self.gov_head: ActionHash | None = None
        for i, agent in enumerate(coop_agents):
            self.commit_genesis(
                agent, Genesis(self.charter.network_id, Role.COOP, f"{agent.name} Ltd", f"REG-{i}")
            )
        for agent in coop_agents:
            for j in range(members):
                self.add_member(agent.name, f"{agent.name}-m{j}")
        if fund is not None:
            self.commit_genesis(
                fund, Genesis(self.charter.network_id, Role.FOUNDATION, "The Foundation")
            )

    # -- time and agents -------------------------------------------------------------------------

    def now(self) -> int:
        """The ledger's clock, one millisecond later each time it is read."""
        self.clock += 1_000
        return self.clock

    def _new_agent(self, name: str, role: str, coop: str | None = None) -> Agent:
        signer = Signer(_derive(f"{self.seed}/{name}"))
        agent = Agent(name, signer, role, coop)
        self.agents[name] = agent
        return agent

    def __getitem__(self, name: str) -> Agent:
        return self.agents[name]

    def add_member(self, coop: str, name: str) -> Verdict:
        """Admit a member: its co-op signs a credential, the member commits its genesis."""
        agent = self._new_agent(name, Role.MEMBER, coop)
        credential = Credential.issue(self.agents[coop].signer, agent.key, name, self.now())
        return self.commit_genesis(
            agent,
            Genesis(
                self.charter.network_id,
                Role.MEMBER,
                name,
                credential=credential,
                rules=self.gov_head,
            ),
        )

    def commit_genesis(self, agent: Agent, genesis: Genesis) -> Verdict:
        record = author_record(
            agent.signer,
            None,
            kind=ActionKind.GENESIS,
            timestamp=self.now(),
            entry=genesis.to_value(),
        )
        return self.commit(agent.name, record)

    # -- committing ---------------------------------------------------------------------------------

    def judge(self, name: str, record: Record) -> Verdict:
        """The verdict a peer would give ``record`` as the next of ``name``'s chain (nothing kept)."""
        return _verdict(admit(self.agents[name].activity, record, self.engine, self.held))

    def commit(self, name: str, record: Record) -> Verdict:
        """Append ``record`` to ``name``'s chain if every rule passes; the verdict either way."""
        agent = self.agents[name]
        outcome = admit(agent.activity, record, self.engine, self.held)
        if isinstance(outcome, Admitted):
            agent.activity = outcome.state
            agent.chain.append(record)
            self.held.add([record])
        return _verdict(outcome)

    def create(self, name: str, entry_type: str, entry: Any) -> tuple[Record, Verdict]:
        """Author and commit a create-entry record on ``name``'s chain."""
        agent = self.agents[name]
        record = author_record(
            agent.signer,
            agent.activity.head,
            kind=ActionKind.CREATE,
            timestamp=self.now(),
            entry=entry,
            entry_type=entry_type,
        )
        return record, self.commit(name, record)

    # -- payments and bills ----------------------------------------------------------------------------

    def payment(
        self,
        payer: str,
        payee: str,
        amount: int,
        *,
        memo: str = "",
        ref: ActionHash | None = None,
        offer: ActionHash | None = None,
    ) -> Payment:
        """A payment both parties have signed (not committed); ``offer``: an exchange offer it buys from."""
        a, b = self.agents[payer], self.agents[payee]
        body = make_body(
            self.charter.network_id,
            a.activity,
            b.activity,
            amount,
            timestamp=self.now(),
            memo=memo,
            rules=self.gov_head,
            ref=ref,
            offer=offer,
        )
        return Payment(body, sign_body(a.signer, body), sign_body(b.signer, body))

    def pay(
        self,
        payer: str,
        payee: str,
        amount: int,
        *,
        memo: str = "",
        ref: ActionHash | None = None,
        offer: ActionHash | None = None,
    ) -> Verdict:
        """Make and commit a countersigned payment on both chains, or neither (the first refusal)."""
        payment = self.payment(payer, payee, amount, memo=memo, ref=ref, offer=offer)
        return self.commit_both(payment)

    def commit_both(self, payment: Payment) -> Verdict:
        """Commit a signed payment on both parties' chains if both records pass."""
        names = [self.name_of(payment.body.payer.agent), self.name_of(payment.body.payee.agent)]
        records = [commit_payment(self.agents[n].signer, payment) for n in names]
        for name, record in zip(names, records, strict=True):
            verdict = self.judge(name, record)
            if not isinstance(verdict, Valid):
                return verdict
        for name, record in zip(names, records, strict=True):
            self.commit(name, record)
        return VALID

    def bill(
        self, payee: str, payer: str, amount: int, *, expires_in: int = DAY, memo: str = ""
    ) -> tuple[Record, Verdict]:
        """The payee asks the payer for ``amount``."""
        at = self.clock + 1_000
        payer_agent = self.agents[payer]
        assert payer_agent.activity.genesis is not None
        bill = Bill(
            payer_agent.key, payer_agent.activity.genesis, amount, memo, at + expires_in, self.gov_head
        )
        return self.create(payee, BILL, bill.to_value())

    def decline(self, payer: str, bill: ActionHash) -> tuple[Record, Verdict]:
        return self.create(payer, BILL_DECLINE, BillDecline(bill).to_value())

    # -- governance ---------------------------------------------------------------------------------------

    def propose(
        self, coop: str, kind: str, body: dict[str, Any], title: str = "a proposal"
    ) -> tuple[Record, Verdict]:
        at = self.clock + 1_000
        proposal = Proposal(
            kind, title, body, at + self.rules_now().params.voting_period_us, self.gov_head
        )
        return self.create(coop, PROPOSAL, proposal.to_value())

    def vote(self, coop: str, proposal: ActionHash, choice: str = "yes") -> tuple[Record, Verdict]:
        """A vote by ``coop`` (or by a member, pinning its genesis as a member's vote does)."""
        agent = self.agents[coop]
        pin = agent.activity.genesis if agent.role == Role.MEMBER else None
        return self.create(coop, VOTE, Vote(proposal, choice, self.gov_head, pin).to_value())

    def ratify(
        self, coop: str, proposal: ActionHash, votes: list[ActionHash]
    ) -> tuple[Record, Verdict]:
        """Record a ratification as entry n+1 of the governance log; on success it is the new head."""
        n = 1
        if self.gov_head is not None:
            head = self.held.get_record(self.gov_head)
            assert head is not None
            n = Ratification.from_value(head.entry_value()).n + 1
        record, verdict = self.create(
            coop, RATIFICATION, Ratification(proposal, tuple(votes), n, self.gov_head).to_value()
        )
        if isinstance(verdict, Valid):
            self.gov_head = record.hash
        return record, verdict

    def rules_now(self) -> Any:
        rules = self.engine.rules_at(self.gov_head, self.clock, self.held)
        assert not isinstance(rules, (Invalid,)), rules
        return rules

    def advance(self, micros: int) -> None:
        """Move the clock on (e.g. past a voting deadline)."""
        self.clock += micros

    # -- reading ----------------------------------------------------------------------------------------------

    def name_of(self, key: AgentKey) -> str:
        return next(n for n, a in self.agents.items() if a.key == key)

    def chains(self) -> list[list[Record]]:
        return [agent.chain for agent in self.agents.values() if agent.chain]

    def balances(self) -> dict[str, int]:
        return {name: agent.balance for name, agent in self.agents.items()}

    def audit(self) -> AuditReport:
        return audit(self.charter, self.chains(), self.engine.apps)

    def raw_record(self, name: str, action: Action, entry: Any | None) -> Record:
        """Sign an arbitrary action by ``name`` (for adversarial tests)."""
        entry_bytes = None if entry is None else encoding.encode(entry)
        if entry_bytes is not None and action.entry_hash is None:
            action = Action(
                **{
                    **{f: getattr(action, f) for f in action.__dataclass_fields__},
                    "entry_hash": EntryHash.of(entry_bytes),
                }
            )
        return sign_record(self.agents[name].signer, action, entry_bytes)


def _derive(label: str) -> bytes:
    return hashlib.blake2b(label.encode(), digest_size=32).digest()


def _verdict(outcome: Admitted | Refused | Needs) -> Verdict:
    """What ``admit`` said, as the verdict a peer would give."""
    if isinstance(outcome, Admitted):
        return VALID
    return outcome.verdict
