"""A state machine for the store: valid and invalid appends, batches, reopening, against a model."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from conode.chain import ActionKind, ChainHead, Record, author_record
from conode.crypto import SIG_ACTION, Signer
from conode.errors import ChainError
from conode.hashes import AgentKey
from conode.store import Store

SIGNERS = [Signer(bytes([40 + i]) * 32) for i in range(3)]
AGENTS = st.sampled_from(range(len(SIGNERS)))
BAD = ["skip-seq", "repeat-seq", "wrong-prev", "bad-signature", "other-author", "old-timestamp"]


def _next(signer: Signer, head: ChainHead | None, gap: int, n: int) -> Record:
    if head is None:
        return author_record(signer, None, kind=ActionKind.GENESIS, timestamp=gap, entry={"g": 1})
    if n % 3 == 2:
        return author_record(
            signer, head, kind=ActionKind.DELETE, timestamp=head.timestamp + gap, ref=head.hash
        )
    return author_record(
        signer,
        head,
        kind=ActionKind.CREATE,
        timestamp=head.timestamp + gap,
        entry={"n": n},
        entry_type="note",
    )


class StoreMachine(RuleBasedStateMachine):
    """The store must hold exactly the model's chains, whatever is appended, refused or reopened."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="conode-store-machine-")
        self.path = Path(self.dir) / "node.db"
        self.store = Store.open(self.path)
        self.model: dict[int, list[Record]] = {i: [] for i in range(len(SIGNERS))}

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _head(self, agent: int) -> ChainHead | None:
        chain = self.model[agent]
        return ChainHead.after(chain[-1]) if chain else None

    def _build(self, agents: list[int], gap: int) -> list[Record]:
        """Valid next records for ``agents`` in order (an agent may repeat)."""
        heads = {i: self._head(i) for i in set(agents)}
        built: list[Record] = []
        for agent in agents:
            record = _next(SIGNERS[agent], heads[agent], gap, len(built))
            heads[agent] = ChainHead.after(record)
            built.append(record)
        return built

    @rule(agent=AGENTS, gap=st.integers(0, 5))
    def append_one(self, agent: int, gap: int) -> None:
        record = self._build([agent], gap)[0]
        self.store.append([record])
        self.model[agent].append(record)

    @rule(agents=st.lists(AGENTS, min_size=1, max_size=6), gap=st.integers(0, 5))
    def append_batch(self, agents: list[int], gap: int) -> None:
        batch = self._build(agents, gap)
        self.store.append(batch)
        for record in batch:
            self.model[SIGNERS.index(_signer_of(record))].append(record)

    @rule(
        agent=AGENTS,
        how=st.sampled_from(BAD),
        before=st.lists(AGENTS, max_size=3),
        gap=st.integers(1, 5),
    )
    def append_invalid(self, agent: int, how: str, before: list[int], gap: int) -> None:
        """A batch of valid records with one bad one at the end: refused whole."""
        batch = self._build(before, gap)
        heads = {i: self._head(i) for i in range(len(SIGNERS))}
        for record in batch:
            heads[SIGNERS.index(_signer_of(record))] = ChainHead.after(record)
        bad = self._bad(agent, heads, how, gap)
        if bad is None:
            return
        with pytest.raises(ChainError):
            self.store.append([*batch, bad])

    def _bad(
        self, agent: int, heads: dict[int, ChainHead | None], how: str, gap: int
    ) -> Record | None:
        signer, head = SIGNERS[agent], heads[agent]
        good = _next(signer, head, gap, 0)
        if how == "skip-seq":
            return _next(signer, ChainHead.after(good), gap, 0)
        if how == "bad-signature":
            flipped = bytes([good.signature[0] ^ 0x80]) + good.signature[1:]
            return dataclasses.replace(good, signature=flipped)
        if head is None:
            return None  # the other ways need a chain to break
        if how == "repeat-seq":
            return _next(signer, dataclasses.replace(head, seq=head.seq - 1), gap, 0)
        if how == "wrong-prev":
            action = dataclasses.replace(
                good.action, prev=dataclasses.replace(head.hash, raw=bytes(32))
            )
            return Record.make(action, signer.sign(SIG_ACTION, action.to_bytes()), good.entry)
        if how == "old-timestamp":
            if head.timestamp == 0:
                return None
            return _next(
                signer, dataclasses.replace(head, timestamp=head.timestamp - gap - 1), 0, 0
            )
        # another agent's record after this agent's head
        other = SIGNERS[(agent + 1) % len(SIGNERS)]
        return _next(other, dataclasses.replace(head, author=AgentKey(other.public_key)), gap, 0)

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = Store.open(self.path)

    @rule(agent=AGENTS)
    def import_own_chain_again(self, agent: int) -> None:
        """Importing a chain the store already holds changes nothing."""
        author = AgentKey(SIGNERS[agent].public_key)
        if not self.model[agent]:
            return
        done = self.store.import_chain(list(self.store.record_blobs(author)))
        assert done.added == 0

    @invariant()
    def matches_the_model(self) -> None:
        held = [i for i, chain in self.model.items() if chain]
        assert self.store.authors() == sorted(AgentKey(SIGNERS[i].public_key) for i in held)
        for agent, chain in self.model.items():
            author = AgentKey(SIGNERS[agent].public_key)
            assert self.store.head(author) == self._head(agent)
            assert self.store.count(author) == len(chain)
            assert list(self.store.records(author)) == chain
            assert self.store.verify(author) is None


def _signer_of(record: Record) -> Signer:
    return next(s for s in SIGNERS if s.public_key == record.action.author.raw)


StoreMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=25, deadline=None)
TestStoreMachine = pytest.mark.slow(StoreMachine.TestCase)  # a long search: not in --fast
