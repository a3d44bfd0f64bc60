"""A model check of the countersigning session over every interleaving of a small world.

The world: an initiator I and a responder R (the real machines of
``conode.validation.countersign``, real Ed25519 signatures), each with a chain
head, a volatile lock, one timer, a durable store and a queue of effects its
shell has still to carry out; a network holding the messages in flight; and
the DHT, which answers R's ``QueryDHT`` from what I's chain really holds.

From every world state, any of these may happen next:

- a shell carries out its party's next effect (``Lock`` is answered at once,
  by ``Locked`` or, once per run, ``LockRefused``);
- a message in flight (or a DHT query) is delivered, dropped, or, once per run,
  delivered and kept in flight (a duplicate); a party takes an event only when
  its shell has carried out the effects of the last one;
- a party's timer fires;
- a party crashes (at most twice in a run): its volatile state (machine,
  lock, timer, effects not yet carried out) is lost, its store and chain
  survive, and it restarts from its store (``Restarted``) at once;
- a party whose chain is not held appends something else (once each): the
  "another use" of its position;
- a ``Persist`` or ``Commit`` fails (once per run): nothing is written, the
  effects after it are dropped, and the party gets ``WriteFailed``; the
  failed write stays a *ghost* until the party's next successful write, and a
  crash before that may bring it back (SQLite may find a WAL frame whose
  fsync reported an error): both outcomes are explored.

R has I's record witnessed before it commits (``Witness``): the witness
answers from what I's chain really holds, as I's honest activity
authorities would.

The network is a set: two copies of one message in flight are one (a resent
message is idempotent; a second delivery is what the duplicate models).
Time is abstract: timers fire whenever armed, and no message arrives after
``expires_at`` (the unit tests cover that).

Checked in every state and at every effect:

- **atomic**: R has committed only if I has; if I has committed, R has
  committed or still holds its signed position. In every terminal state (no
  message in flight, nothing left to do, no timer but R's resolution timer)
  both committed or neither did, and no lock is held unless R is waiting.
- **no honest fork**: a party commits only at its chain's head, at the
  position fixed in the body, while it holds that position (volatile lock, or
  R's durable SIGNED record); so never after it unlocked it for another use.
- **a given signature is held**: R leaves SIGNED only for COMMITTED (I
  committed) or ABORTED (I durably aborted, or used its position otherwise);
  R never forgets a persisted signature; every abort and commit is persisted
  before the party unlocks.
- **honest runs are clean**: no ``Reject`` and no ``LocalProtocolError``.
- **liveness**: from every reachable state a resolved terminal state (both
  committed or neither, no locks, nothing in flight) can be reached by
  ordinary moves alone (effects, deliveries, losses, timers, DHT answers: no
  further crash, duplicate or other use to help it along), and both outcomes
  are reached.

Three broken variants of the protocol are checked too, and each must fail.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Final

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from conode import encoding
from conode.crypto import SIG_COUNTERSIGN, Signer, verify
from conode.errors import ProtocolError
from conode.hashes import AgentKey
from conode.validation.countersign import (
    Abort,
    Accept,
    CancelTimer,
    Commit,
    Complete,
    Decline,
    DHTAnswered,
    Effect,
    Event,
    Initiator,
    Lock,
    Locked,
    LockRefused,
    Message,
    Offer,
    Persist,
    Phase,
    QueryDHT,
    Received,
    Reject,
    Responder,
    Restarted,
    SendTo,
    SessionId,
    SessionRecord,
    SessionState,
    SetTimer,
    TimedOut,
    Unlock,
    Witness,
    Witnessed,
    WriteFailed,
)

NOW = 0
EXPIRES = 100
RETRY = 10
SID = SessionId(bytes(range(16)))
SIGNER_I = Signer(bytes([1]) * 32)
SIGNER_R = Signer(bytes([2]) * 32)
KEY_I = AgentKey(SIGNER_I.public_key)
KEY_R = AgentKey(SIGNER_R.public_key)

Machine = Initiator | Responder

# --- the payment rules of the model: a body is [I's seq, R's seq] ------------------------------


@cache
def _sign(seed: bytes, body: bytes) -> bytes:
    return Signer(seed).sign(SIG_COUNTERSIGN, body)


@cache
def _verify(key: bytes, body: bytes, signature: bytes) -> bool:
    return verify(key, SIG_COUNTERSIGN, body, signature)


@cache
def positions(body: bytes) -> tuple[int, int]:
    i_pos, r_pos = encoding.decode(body)
    return i_pos, r_pos


def make_partial(head: bytes) -> bytes:
    return encoding.encode([encoding.decode(head)])


def check_body(partial: bytes, body: bytes) -> str | None:
    return None if encoding.decode(body)[:1] == encoding.decode(partial) else "not my position"


def complete(partial: bytes, head: bytes) -> bytes:
    return encoding.encode([*encoding.decode(partial), encoding.decode(head)])


@cache
def make_record(body: bytes, own: bytes, peer: bytes) -> bytes:
    """I's chain record of the payment, as the model has it: the body and I's signature."""
    return encoding.encode(["record", body, own])


@cache
def read_record(body: bytes, record: bytes) -> bytes | None:
    """I's signature, if ``record`` is I's record of ``body``."""
    value = encoding.decode(record)
    return bytes(value[2]) if value[:2] == ["record", body] else None


def new_initiator(cls: type[Initiator] = Initiator) -> Initiator:
    return cls(
        SID,
        KEY_R,
        EXPIRES,
        make_partial=make_partial,
        check_body=check_body,
        sign=lambda body: _sign(SIGNER_I.seed, body),
        make_record=make_record,
        verify_peer=lambda body, sig: _verify(SIGNER_R.public_key, body, sig),
        retry_interval=RETRY,
    )


def new_responder(
    cls: type[Responder] = Responder, *, peer: AgentKey = KEY_I, signer: Signer = SIGNER_R
) -> Responder:
    return cls(
        SID,
        peer,
        complete=complete,
        sign=lambda body: _sign(signer.seed, body),
        verify_peer=lambda body, sig: _verify(peer.raw, body, sig),
        read_record=read_record,
        retry_interval=RETRY,
    )


def describe(thing: object) -> str:
    """A short readable form of an effect, event or message for traces."""
    if isinstance(thing, Persist | Commit | WriteFailed):
        return f"{type(thing).__name__}({thing.record.status.name})"
    if isinstance(thing, Witness):
        return f"Witness({list(positions(encoding.decode(thing.record)[1]))})"
    if isinstance(thing, SendTo):
        return f"SendTo({describe(thing.message)})"
    if isinstance(thing, Accept):
        return f"Accept({list(positions(thing.body))})"
    if isinstance(thing, QueryDHT):
        return f"QueryDHT({list(positions(thing.body))})"
    if isinstance(thing, bytes):
        value = encoding.decode(thing)
        if value[0] == "record":
            return f"I's record {list(positions(value[1]))}"
        return f"query {list(positions(thing))}"
    if isinstance(thing, DHTAnswered):
        found = "record" if thing.initiator_record else "taken" if thing.position_taken else "-"
        return f"DHTAnswered({found})"
    if isinstance(thing, Received):
        return describe(thing.message)
    if isinstance(thing, Abort | Decline):
        return f"{type(thing).__name__}({thing.reason!r})"
    name = type(thing).__name__
    known = ("Lock", "Unlock", "CancelTimer", "Offer", "Complete", "Witnessed")
    return name if name in known else repr(thing)


# --- the world --------------------------------------------------------------------------------


class ModelViolation(AssertionError):
    """An invariant failed; the message holds the trace that led there."""


@dataclass(frozen=True, slots=True)
class Side:
    """One party: its machine (volatile), its shell's queue, its store and chain."""

    state: SessionState | None  # the machine's state; None: no machine (I forgot all)
    pending: tuple[Effect, ...]  # effects the shell has still to carry out, in order
    persisted: SessionRecord | None  # the durable session record
    locked: bool  # the volatile chain lock
    timer: bool
    head: int  # the seq of the next append on this chain
    committed: bool  # the payment is on this chain
    uses: int  # other appends made ("another use")
    ghosts: tuple[Persist | Commit, ...] = ()  # failed writes a crash may still bring back
    machine: Machine | None = field(default=None, compare=False, repr=False)

    @property
    def holds(self) -> bool:
        """The position is held: the volatile lock, or R's durable SIGNED record."""
        signed = self.persisted is not None and self.persisted.status is Phase.SIGNED
        return self.locked or signed

    @property
    def phase(self) -> Phase | None:
        return None if self.state is None else self.state.phase


@dataclass(frozen=True, slots=True)
class World:
    """Both parties, what is in flight, and what is left of the fault budget."""

    i: Side
    r: Side
    net: frozenset[tuple[str, Message | bytes]]  # ("I"|"R", message), ("D", body), ("W", record)
    crashes: int
    dups: int
    refusals: int
    failures: int = 0


@dataclass(frozen=True, slots=True)
class Budget:
    """How many faults one run may hold."""

    crashes: int = 2
    dups: int = 1
    refusals: int = 1
    uses: int = 1
    failures: int = 1


@dataclass(slots=True)
class Stats:
    """What an exploration saw."""

    states: int = 0
    transitions: int = 0
    terminal: int = 0
    both_committed: int = 0
    neither_committed: int = 0
    waiting: int = 0  # terminal states with R signed and waiting for an unreachable I


def _side(machine: Machine | None, pending: tuple[Effect, ...] = ()) -> Side:
    return Side(
        state=None if machine is None else machine.state,
        pending=pending,
        persisted=None,
        locked=False,
        timer=False,
        head=0,
        committed=False,
        uses=0,
        machine=machine,
    )


def initial_world(
    budget: Budget, make_i: Callable[[], Initiator], make_r: Callable[[], Responder]
) -> World:
    initiator = make_i()
    return World(
        i=_side(initiator, initiator.start(NOW)),
        r=_side(make_r()),
        net=frozenset(),
        crashes=budget.crashes,
        dups=budget.dups,
        refusals=budget.refusals,
        failures=budget.failures,
    )


# --- transitions --------------------------------------------------------------------------------


_FAULTS = (
    "crashes and restarts", "crashes and restarts (the failed write came back)",
    "appends something else", "(duplicated)", "(the write fails)",
)  # fmt: skip
"""Labels of the moves that liveness may not count on: a run must resolve without them."""


class Explorer:
    """Breadth-first search of every world reachable from the start, with invariant checks."""

    def __init__(
        self,
        budget: Budget = Budget(),
        make_i: Callable[[], Initiator] = new_initiator,
        make_r: Callable[[], Responder] = new_responder,
    ) -> None:
        self.budget = budget
        self.make_i = make_i
        self.make_r = make_r
        self.parent: dict[World, tuple[World | None, str]] = {}
        self.seen: set[str] = set()  # every move label, for the non-vacuity checks
        self._current: World | None = None

    # invariants

    def fail(self, why: str, label: str = "") -> ModelViolation:
        trace: list[str] = [label] if label else []
        world = self._current
        while world is not None and world in self.parent:
            before, step = self.parent[world]
            if step:
                trace.append(step)
            world = before
        steps = "\n  ".join(reversed(trace))
        return ModelViolation(f"{why}\nafter {len(trace)} steps:\n  {steps}")

    def check_state(self, w: World, label: str) -> None:
        i, r = w.i, w.r
        if r.committed and not i.committed:
            raise self.fail("atomic: R committed, I did not", label)
        r_signed = r.persisted is not None and r.persisted.status is Phase.SIGNED
        if i.committed and not (r.committed or r_signed):
            raise self.fail("atomic: I committed while R holds nothing", label)
        if r_signed and r.phase not in (Phase.SIGNED, Phase.COMMITTED, Phase.ABORTED):
            raise self.fail("R forgot a signature it persisted", label)

    def is_terminal(self, w: World) -> bool:
        return (
            not w.net
            and not w.i.pending
            and not w.r.pending
            and not w.i.timer
            and (not w.r.timer or w.r.phase is Phase.SIGNED)
        )

    def check_terminal(self, w: World, stats: Stats) -> bool:
        """Check a terminal state; True if it is resolved (nothing holds, both agree)."""
        i, r = w.i, w.r
        stats.terminal += 1
        if r.phase is Phase.SIGNED:
            stats.waiting += 1
            if i.locked:
                raise self.fail("terminal: I holds its lock while R waits")
            return False
        if i.committed != r.committed:
            raise self.fail("terminal: one party committed and the other did not")
        if i.holds or r.holds:
            raise self.fail("terminal: a lock is still held")
        if i.phase not in (None, Phase.COMMITTED, Phase.ABORTED):
            raise self.fail(f"terminal: I is stuck in {i.phase}")
        if r.phase not in (Phase.IDLE, Phase.COMMITTED, Phase.ABORTED):
            raise self.fail(f"terminal: R is stuck in {r.phase}")
        if i.committed:
            stats.both_committed += 1
        else:
            stats.neither_committed += 1
        return True

    # moves

    def feed(self, w: World, who: str, event: Event, label: str) -> World:
        side = w.i if who == "I" else w.r
        if side.machine is None:
            raise self.fail(f"{who} got {describe(event)} with no record of the session", label)
        machine = copy.copy(side.machine)
        try:
            effects = machine.handle(event)
        except ProtocolError as exc:
            raise self.fail(f"{who}: {exc!r}", label) from exc
        new = replace(side, state=machine.state, machine=machine, pending=side.pending + effects)
        return replace(w, i=new) if who == "I" else replace(w, r=new)

    def execute(self, w: World, who: str) -> Iterator[tuple[str, World]]:
        side, other = (w.i, w.r) if who == "I" else (w.r, w.i)
        effect, rest = side.pending[0], side.pending[1:]
        label = f"{who} does {describe(effect)}"
        side = replace(side, pending=rest)
        if isinstance(effect, Lock):
            if side.locked or rest:
                raise self.fail(f"{who}: Lock while locked, or not last", label)
            granted = replace(side, locked=True)
            yield (
                label + " -> Locked",
                self.feed(
                    self._put(w, who, granted), who, Locked(NOW, encoding.encode(side.head)), label
                ),
            )
            if w.refusals:
                refused = replace(self._put(w, who, side), refusals=w.refusals - 1)
                yield (
                    label + " -> LockRefused",
                    self.feed(refused, who, LockRefused(NOW, "busy"), label),
                )
            return
        if isinstance(effect, Unlock):
            done = side.persisted is None or side.persisted.status in (
                Phase.COMMITTED,
                Phase.ABORTED,
            )
            if not done:
                raise self.fail(f"{who} unlocks before its decision is persisted", label)
            side = replace(side, locked=False)
        if isinstance(effect, Persist | Commit) and w.failures:
            # nothing is written; the rest of the batch is dropped; the write may come back later
            broken = replace(side, pending=(), ghosts=(*side.ghosts, effect))
            w_failed = replace(self._put(w, who, broken), failures=w.failures - 1)
            event = WriteFailed(NOW, effect.record, "disk full")
            yield label + " (the write fails)", self.feed(w_failed, who, event, label)
        if isinstance(effect, Persist):
            self._check_persist(w, who, side, effect.record, label)
            side = replace(side, persisted=effect.record, ghosts=())
        elif isinstance(effect, Commit):
            assert effect.record.body is not None
            i_pos, r_pos = positions(effect.record.body)
            pos = i_pos if who == "I" else r_pos
            if side.committed:
                raise self.fail(f"{who} commits the payment twice", label)
            if not side.holds or side.head != pos:
                raise self.fail(f"fork: {who} commits at {pos}, head {side.head}", label)
            if who == "R" and not other.committed:
                raise self.fail("R commits before I did", label)
            side = replace(
                side, committed=True, head=side.head + 1, persisted=effect.record, ghosts=()
            )
        elif isinstance(effect, SendTo):
            w = replace(w, net=w.net | {("R" if who == "I" else "I", effect.message)})
        elif isinstance(effect, SetTimer):
            side = replace(side, timer=True)
        elif isinstance(effect, CancelTimer):
            side = replace(side, timer=False)
        elif isinstance(effect, QueryDHT):
            w = replace(w, net=w.net | {("D", effect.body)})
        elif isinstance(effect, Witness):
            w = replace(w, net=w.net | {("W", effect.record)})
        elif isinstance(effect, Reject):
            raise self.fail(f"{who} rejected a message of an honest peer: {effect}", label)
        yield label, self._put(w, who, side)

    def _check_persist(
        self, w: World, who: str, side: Side, record: SessionRecord, label: str
    ) -> None:
        old = side.persisted
        if who == "I" and record.status is Phase.ABORTED and side.committed:
            raise self.fail("I persists an abort after committing", label)
        if who == "R" and old is not None and old.status is Phase.SIGNED:
            assert old.body is not None
            i_pos, _ = positions(old.body)
            i = w.i
            i_aborted = i.persisted is not None and i.persisted.status is Phase.ABORTED
            i_moved_on = not i.committed and i.head > i_pos
            if record.status is Phase.ABORTED and not (i_aborted or i_moved_on):
                raise self.fail("R gave up its signed position before I aborted", label)

    @staticmethod
    def _put(w: World, who: str, side: Side) -> World:
        return replace(w, i=side) if who == "I" else replace(w, r=side)

    def crashes(self, w: World, who: str) -> Iterator[tuple[str, World]]:
        """A crash, and, for each failed write still a ghost, a crash that brings it back.

        Writes that failed one after another since the last good one went to the same place
        in SQLite's WAL: any one of them may be what a crash leaves there.
        """
        yield self.crash(w, who)
        side = w.i if who == "I" else w.r
        for ghost in side.ghosts:
            back = replace(side, persisted=ghost.record, ghosts=())
            if isinstance(ghost, Commit):
                back = replace(back, committed=True, head=back.head + 1)
            yield self.crash(self._put(w, who, back), who, " (the failed write came back)")

    def crash(self, w: World, who: str, note: str = "") -> tuple[str, World]:
        side = w.i if who == "I" else w.r
        label = f"{who} crashes and restarts{note}"
        effects: tuple[Effect, ...] = ()
        # I without a record never spoke: nothing to restart. R without one is a fresh R.
        machine: Machine | None = self.make_r() if who == "R" else None
        if who == "I" and side.persisted is not None:
            machine = self.make_i()
        if machine is not None and side.persisted is not None:
            try:
                effects = machine.handle(Restarted(NOW, side.persisted))
            except ProtocolError as exc:
                raise self.fail(f"{who}: {exc!r}", label) from exc
        side = replace(
            side,
            state=None if machine is None else machine.state,
            machine=machine,
            pending=effects,
            locked=False,
            timer=False,
            ghosts=(),
        )
        return label, replace(self._put(w, who, side), crashes=w.crashes - 1)

    def dht_answer(self, w: World, body: bytes) -> DHTAnswered | None:
        i = w.i
        i_pos, _ = positions(body)
        if i.committed and i.persisted is not None and i.persisted.body == body:
            record = i.persisted
            assert record.own_signature is not None and record.peer_signature is not None
            found = make_record(body, record.own_signature, record.peer_signature)
            return DHTAnswered(NOW, initiator_record=found)
        if i.head > i_pos:
            return DHTAnswered(NOW, position_taken=True)
        return None  # nothing published yet: the same as losing the query

    def witness_answer(self, w: World, record: bytes) -> Witnessed | DHTAnswered | None:
        """What I's honest activity authorities say of I's record: they hold what I's chain holds."""
        i = w.i
        body = encoding.decode(record)[1]
        if i.committed and i.persisted is not None and i.persisted.body == body:
            return Witnessed(NOW)
        if i.head > positions(body)[0]:
            return DHTAnswered(NOW, position_taken=True)
        return None

    def successors(self, w: World) -> Iterator[tuple[str, World]]:
        for who in ("I", "R"):
            side = w.i if who == "I" else w.r
            if side.pending:
                yield from self.execute(w, who)
            if w.crashes and side.machine is not None:
                yield from self.crashes(w, who)
            if not side.pending and not side.holds and side.uses < self.budget.uses:
                moved = replace(side, head=side.head + 1, uses=side.uses + 1, ghosts=())
                yield f"{who} appends something else", self._put(w, who, moved)
            if side.timer and not side.pending:
                label = f"{who}'s timer fires"
                fired = self._put(w, who, replace(side, timer=False))
                yield label, self.feed(fired, who, TimedOut(NOW), label)
        for item in w.net:
            dest, payload = item
            gone = replace(w, net=w.net - {item})
            yield f"net drops {describe(payload)} to {dest}", gone
            choices = [(gone, "")]
            if w.dups:
                choices.append((replace(w, dups=w.dups - 1), " (duplicated)"))
            for left, note in choices:
                if dest in ("D", "W"):
                    assert isinstance(payload, bytes)
                    answer = (
                        self.dht_answer(w, payload)
                        if dest == "D"
                        else self.witness_answer(w, payload)
                    )
                    if answer is None or w.r.pending:
                        continue  # an empty answer changes nothing: the same as a drop
                    who_answers = "DHT" if dest == "D" else "witness"
                    label = f"{who_answers} answers {describe(answer)}{note}"
                    yield label, self.feed(left, "R", answer, label)
                elif not (w.i if dest == "I" else w.r).pending:
                    assert not isinstance(payload, bytes)
                    label = f"{dest} receives {describe(payload)}{note}"
                    yield label, self.feed(left, dest, Received(NOW, payload), label)

    # the search

    def run(self, start: World | None = None) -> Stats:
        """Explore every world reachable from ``start`` (default: a new session)."""
        stats = Stats()
        if start is None:
            start = initial_world(self.budget, self.make_i, self.make_r)
        self.parent.setdefault(start, (None, ""))
        index: dict[World, int] = {start: 0}
        edges: list[list[int]] = [[]]
        resolved: list[int] = []
        queue = deque([start])
        while queue:
            world = queue.popleft()
            self._current = world
            here = index[world]
            if self.is_terminal(world) and self.check_terminal(world, stats):
                resolved.append(here)
            for label, nxt in self.successors(world):
                stats.transitions += 1
                self.seen.add(label)
                if nxt not in index:
                    self.parent[nxt] = (world, label)
                    self._current = nxt
                    self.check_state(nxt, "")
                    self._current = world
                    index[nxt] = len(edges)
                    edges.append([])
                    queue.append(nxt)
                if not label.endswith(_FAULTS):
                    edges[here].append(index[nxt])
        stats.states = len(edges)
        self._check_liveness(index, edges, resolved)
        return stats

    def _check_liveness(
        self, index: dict[World, int], edges: list[list[int]], resolved: list[int]
    ) -> None:
        back: list[list[int]] = [[] for _ in edges]
        for src, targets in enumerate(edges):
            for dst in targets:
                back[dst].append(src)
        can_end = [False] * len(edges)
        todo = list(resolved)
        for node in todo:
            can_end[node] = True
        while todo:
            node = todo.pop()
            for src in back[node]:
                if not can_end[src]:
                    can_end[src] = True
                    todo.append(src)
        if not all(can_end):
            stuck = next(w for w, n in index.items() if not can_end[n])
            self._current = stuck
            raise self.fail("liveness: no resolved state is reachable from here")


# --- the checks ---------------------------------------------------------------------------------


_FAILURE_MOVES: Final = (
    "I does Commit(COMMITTED) (the write fails)",
    "R does Commit(COMMITTED) (the write fails)",
    "I does Persist(OFFERED) (the write fails)",
    "R does Persist(SIGNED) (the write fails)",
    "I does Persist(ABORTED) (the write fails)",
    "R does Persist(ABORTED) (the write fails)",
    "I crashes and restarts (the failed write came back)",
    "R crashes and restarts (the failed write came back)",
)


@pytest.mark.parametrize(
    "budget",
    [
        pytest.param(Budget(failures=0), id="two crashes"),
        pytest.param(Budget(crashes=1, failures=1), id="a crash and a failed write"),
        pytest.param(Budget(crashes=2, failures=1), marks=pytest.mark.slow, id="all faults"),
    ],
)
def test_every_interleaving_is_atomic_fork_free_and_live(budget: Budget) -> None:
    explorer = Explorer(budget)
    stats = explorer.run()
    summary = (
        f"{stats.states} states, {stats.transitions} transitions, {stats.terminal} terminal "
        f"({stats.both_committed} both committed, {stats.neither_committed} neither, "
        f"{stats.waiting} R waiting)"
    )
    print(summary)
    assert stats.both_committed > 0, summary
    assert stats.neither_committed > 0, summary
    assert stats.waiting > 0, summary
    assert stats.states > 10_000, summary
    # the interesting paths were all taken, not only the happy one
    for move in (
        "I receives Accept([0, 0]) (duplicated)",  # a late Accept after I decided
        "R receives Complete (duplicated)",
        "I receives Decline('busy')",
        "R receives Abort('the initiator restarted before deciding')",
        "R receives Abort('timed out')",
        "DHT answers DHTAnswered(record)",
        "DHT answers DHTAnswered(taken)",
        "witness answers Witnessed",
        *(_FAILURE_MOVES if budget.failures else ()),
        "I crashes and restarts",
        "R crashes and restarts",
        "R appends something else",
    ):
        assert move in explorer.seen, f"{move!r} never happened; {summary}"


def test_fault_free_world_always_commits() -> None:
    """With no crash, loss, duplicate, refusal or other use, the only end is a commit."""

    class Lossless(Explorer):
        def successors(self, w: World) -> Iterator[tuple[str, World]]:
            for label, nxt in super().successors(w):
                lost = label.startswith("net drops") and not label.endswith("to D")
                if not lost and not label.startswith("I's timer"):
                    yield label, nxt

    stats = Lossless(Budget(crashes=0, dups=0, refusals=0, uses=0, failures=0)).run()
    assert stats.both_committed > 0 and stats.neither_committed == 0, stats


# --- broken variants: the checker must catch each -----------------------------------------------


class _SpeaksBeforePersisting(Responder):
    """R sends its Accept before its signature is on disk."""

    def handle(self, event: Event) -> tuple[Effect, ...]:
        effects = super().handle(event)
        if effects and isinstance(effects[0], Persist) and len(effects) > 1:
            return (effects[1], effects[0], *effects[2:])
        return effects


class _ForgetsAbort(Initiator):
    """I ignores an Accept once it has aborted, instead of answering Abort."""

    def handle(self, event: Event) -> tuple[Effect, ...]:
        if self.phase is Phase.ABORTED and isinstance(event, Received):
            return ()
        return super().handle(event)


class _ResumesAfterRestart(Initiator):
    """I, restarted while undecided, forgets the abort and waits for Accept again."""

    def handle(self, event: Event) -> tuple[Effect, ...]:
        effects = super().handle(event)
        if isinstance(event, Restarted) and event.record.status is Phase.OFFERED:
            # keep the old OFFERED decision-free state but without the lock: a bug
            resumed = SessionState.from_record(event.record, Phase.OFFERED)
            self._state = replace(resumed, timer_at=EXPIRES)
            return (SetTimer(EXPIRES),)
        return effects


class _AbortsBeforeItIsDurable(Initiator):
    """I says Abort although its abort could not be written (a failed commit may come back)."""

    def handle(self, event: Event) -> tuple[Effect, ...]:
        effects = super().handle(event)
        if isinstance(event, WriteFailed) and event.record.status is Phase.ABORTED:
            return (SendTo(KEY_R, Abort(SID, "said too soon")), *effects)
        return effects


class _CompletesDespiteFailedCommit(Initiator):
    """I sends Complete although its commit was never written."""

    def handle(self, event: Event) -> tuple[Effect, ...]:
        if isinstance(event, WriteFailed) and event.record.status is Phase.COMMITTED:
            return (CancelTimer(), SendTo(KEY_R, self._complete()))
        return super().handle(event)


_BROKEN: dict[str, tuple[Callable[[], Initiator], Callable[[], Responder], Budget]] = {
    "speaks-before-persisting": (
        new_initiator, lambda: new_responder(_SpeaksBeforePersisting), Budget(failures=0)
    ),
    "forgets-abort": (lambda: new_initiator(_ForgetsAbort), new_responder, Budget(failures=0)),
    "resumes-after-restart": (
        lambda: new_initiator(_ResumesAfterRestart), new_responder, Budget(failures=0)
    ),
    "aborts-before-durable": (
        lambda: new_initiator(_AbortsBeforeItIsDurable),
        new_responder,
        Budget(crashes=1, dups=0, refusals=0, uses=0, failures=2),
    ),
    "completes-despite-failed-commit": (
        lambda: new_initiator(_CompletesDespiteFailedCommit),
        new_responder,
        Budget(crashes=0, dups=0, refusals=0, uses=0, failures=1),
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("speaks-before-persisting", "atomic"),
        ("forgets-abort", "liveness"),
        ("resumes-after-restart", "fork"),
        ("aborts-before-durable", "gave up its signed position"),
        ("completes-despite-failed-commit", "terminal"),
    ],
)
def test_the_checker_catches_broken_protocols(variant: str, expected: str) -> None:
    make_i, make_r, budget = _BROKEN[variant]
    explorer = Explorer(budget, make_i=make_i, make_r=make_r)
    with pytest.raises(ModelViolation) as caught:
        explorer.run()
    assert expected in str(caught.value).split("\n")[0], str(caught.value)


# --- deeper, at random: a hypothesis walk with a larger fault budget ---------------------------


class RandomRuns(RuleBasedStateMachine):
    """Long random runs with many faults; at the end, the run must still resolve without more."""

    def __init__(self) -> None:
        super().__init__()
        self.explorer = Explorer(Budget(crashes=6, dups=4, refusals=2, uses=3, failures=3))
        self.world = initial_world(self.explorer.budget, new_initiator, new_responder)
        self.explorer.parent[self.world] = (None, "")

    @rule(data=st.data())
    def move(self, data: st.DataObject) -> None:
        self.explorer._current = self.world
        moves = sorted(self.explorer.successors(self.world), key=lambda move: move[0])
        if not moves:
            return
        label, world = data.draw(st.sampled_from(moves), label="move")
        self.explorer.parent.setdefault(world, (self.world, label))
        self.explorer._current = world
        self.explorer.check_state(world, "")
        self.world = world

    def teardown(self) -> None:
        # from wherever the run stopped, with no more faults, every way on must resolve
        calm = replace(self.world, crashes=0, dups=0, refusals=0, failures=0)
        finish = Explorer(Budget(crashes=0, dups=0, refusals=0, uses=0, failures=0))
        finish.parent = dict(self.explorer.parent)
        finish.parent.setdefault(calm, (self.world, "faults end here"))
        finish.run(start=calm)


TestRandomRuns = RandomRuns.TestCase
TestRandomRuns.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)


# --- a Byzantine payer: one position offered to two payees ------------------------------------------
#
# The payer B follows none of the rules: it offers its one chain position (seq 0) to two payees
# R1 and R2 (real responder machines and shells, as above), and may at any moment and in any
# order send either of them a Complete with its real signature and its real record of that
# payee's body, send Abort, publish either record to the witness itself, or make another record
# at that position. The witness W stands for I's honest activity authorities: it holds the first
# record of B's at the position that reaches it, and refuses any other there. What the payees'
# shells do is exactly the contract above: Witness(record) asks W; QueryDHT asks W what it holds.
#
# Checked in every state: at most one payee commits, and a payee commits only the record W holds,
# so no credit is created however B behaves. And B cannot keep a payee waiting once W holds a
# record: from every such state, a state where neither payee holds a signed position is
# reachable without B's help.

SIGNER_R2 = Signer(bytes([3]) * 32)
PAYEES = {"R1": SIGNER_R, "R2": SIGNER_R2}


@dataclass(frozen=True, slots=True)
class Payee:
    """One payee: its machine and shell (as ``Side``), without the chain's other uses."""

    state: SessionState
    pending: tuple[Effect, ...]
    persisted: SessionRecord | None
    locked: bool
    timer: bool
    committed: bool
    machine: Responder = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Byzantine:
    """The world with a Byzantine payer: two payees, the witness, what B knows and has done."""

    payees: tuple[tuple[str, Payee], ...]
    net: frozenset[tuple[str, Message | bytes]]  # (payee, message) or ("W"/"D" + payee, bytes)
    witness: bytes | None  # the record of B's the witness holds at B's position
    accepts: frozenset[tuple[str, bytes, bytes]]  # (payee, body, payee's signature) B has seen
    done: frozenset[str]  # B's moves made (each at most once)
    crashes: int

    def payee(self, name: str) -> Payee:
        return dict(self.payees)[name]

    def put(self, name: str, payee: Payee) -> Byzantine:
        return replace(self, payees=tuple((n, payee if n == name else p) for n, p in self.payees))


def b_record(body: bytes) -> bytes:
    """B's real record of a body it signs."""
    return make_record(body, _sign(SIGNER_I.seed, body), b"")


OTHER_RECORD = encoding.encode(["record", encoding.encode([0, 9, 9]), bytes(64)])
"""Another record of B's at its position (not a payment to either payee)."""


class ByzantineExplorer:
    """Every interleaving of B's moves and the payees' (breadth first), with the checks above."""

    def __init__(self, make_r: Callable[..., Responder] = new_responder, crashes: int = 1) -> None:
        self.make_r = make_r
        self.crashes = crashes
        self.seen: set[str] = set()
        self.states = 0

    def start(self) -> Byzantine:
        payees = tuple(
            (name, self._payee(self.make_r(peer=KEY_I, signer=signer)))
            for name, signer in PAYEES.items()
        )
        return Byzantine(payees, frozenset(), None, frozenset(), frozenset(), self.crashes)

    @staticmethod
    def _payee(machine: Responder, pending: tuple[Effect, ...] = ()) -> Payee:
        return Payee(machine.state, pending, None, False, False, False, machine)

    def feed(self, w: Byzantine, name: str, event: Event) -> Byzantine:
        payee = w.payee(name)
        machine = copy.copy(payee.machine)
        effects = machine.handle(event)
        return w.put(
            name,
            replace(payee, state=machine.state, machine=machine, pending=payee.pending + effects),
        )

    def execute(self, w: Byzantine, name: str) -> Byzantine:
        payee = w.payee(name)
        effect, rest = payee.pending[0], payee.pending[1:]
        payee = replace(payee, pending=rest)
        if isinstance(effect, Lock):
            w = w.put(name, replace(payee, locked=True))
            return self.feed(w, name, Locked(NOW, encoding.encode(0)))
        if isinstance(effect, Unlock):
            payee = replace(payee, locked=False)
        elif isinstance(effect, Persist):
            payee = replace(payee, persisted=effect.record)
        elif isinstance(effect, Commit):
            payee = replace(payee, committed=True, persisted=effect.record)
        elif isinstance(effect, SendTo):
            if isinstance(effect.message, Accept):  # B sees everything sent to it
                seen = (name, effect.message.body, effect.message.signature)
                w = replace(w, accepts=w.accepts | {seen})
        elif isinstance(effect, SetTimer):
            payee = replace(payee, timer=True)
        elif isinstance(effect, CancelTimer):
            payee = replace(payee, timer=False)
        elif isinstance(effect, QueryDHT):
            w = replace(w, net=w.net | {("D" + name, effect.body)})
        elif isinstance(effect, Witness):
            w = replace(w, net=w.net | {("W" + name, effect.record)})
        elif isinstance(effect, Reject):
            pass  # B's lies are rejected: that is the point
        return w.put(name, payee)

    def answer(self, w: Byzantine, kind: str, payload: bytes) -> tuple[Byzantine, Event | None]:
        """The witness's answer to a Witness push ("W") or a query ("D")."""
        if kind == "W":
            if w.witness is None:
                w = replace(w, witness=payload)  # the first record of B's there: held for good
            if w.witness == payload:
                return w, Witnessed(NOW)
            return w, DHTAnswered(NOW, position_taken=True)  # and a fork warrant against B
        if w.witness is None:
            return w, None
        if encoding.decode(w.witness)[1] == payload:
            return w, DHTAnswered(NOW, initiator_record=w.witness)
        return w, DHTAnswered(NOW, position_taken=True)

    def b_moves(self, w: Byzantine) -> Iterator[tuple[str, Byzantine]]:
        def once(move: str, world: Byzantine) -> tuple[str, Byzantine]:
            return f"B {move}", replace(world, done=world.done | {move})

        for name in PAYEES:
            k = 1 if name == "R1" else 2
            if f"offers {name}" not in w.done:
                offer = Offer(SID, encoding.encode([0, k]), EXPIRES)
                yield once(f"offers {name}", replace(w, net=w.net | {(name, offer)}))
            if f"aborts {name}" not in w.done:
                yield once(f"aborts {name}", replace(w, net=w.net | {(name, Abort(SID, "lie"))}))
            for payee, body, _sig in w.accepts:
                if payee != name:
                    continue
                if f"completes {name}" not in w.done:
                    complete_ = Complete(SID, _sign(SIGNER_I.seed, body), b_record(body))
                    yield once(f"completes {name}", replace(w, net=w.net | {(name, complete_)}))
                if f"publishes {name}" not in w.done and w.witness is None:
                    yield once(f"publishes {name}", replace(w, witness=b_record(body)))
        if "uses its position" not in w.done and w.witness is None:
            yield once("uses its position", replace(w, witness=OTHER_RECORD))

    def successors(self, w: Byzantine) -> Iterator[tuple[str, Byzantine]]:
        yield from self.b_moves(w)
        for name, payee in w.payees:
            if payee.pending:
                yield f"{name} carries out an effect", self.execute(w, name)
            elif payee.timer:
                fired = w.put(name, replace(payee, timer=False))
                yield f"{name}'s timer fires", self.feed(fired, name, TimedOut(NOW))
            if w.crashes and payee.persisted is not None:
                machine = self.make_r(peer=KEY_I, signer=PAYEES[name])
                effects = machine.handle(Restarted(NOW, payee.persisted))
                restarted = replace(
                    payee, state=machine.state, machine=machine, pending=effects,
                    locked=False, timer=False,
                )  # fmt: skip
                yield f"{name} crashes", replace(w.put(name, restarted), crashes=w.crashes - 1)
        # messages arrive in any order, but are not lost: B choosing not to send covers a loss
        # to a payee, and a lost witness answer is a later one (the payee's timer asks again)
        for item in w.net:
            dest, payload = item
            gone = replace(w, net=w.net - {item})
            name = dest[-2:]
            if w.payee(name).pending:
                continue
            if dest[0] in "WD":
                assert isinstance(payload, bytes)
                answered, event = self.answer(gone, dest[0], payload)
                if event is not None:
                    label = f"witness answers {name} {type(event).__name__}"
                    yield label, self.feed(answered, name, event)
            else:
                assert not isinstance(payload, bytes)
                label = f"{name} receives {type(payload).__name__}"
                yield label, self.feed(gone, name, Received(NOW, payload))

    def check(self, w: Byzantine) -> None:
        committed = [name for name, payee in w.payees if payee.committed]
        if len(committed) > 1:
            raise ModelViolation(f"B spent its position twice: {committed} both committed")
        for name in committed:
            body = w.payee(name).persisted
            assert body is not None and body.body is not None
            if w.witness != b_record(body.body):
                raise ModelViolation(f"{name} committed a record the witness does not hold")

    def run(self) -> int:
        start = self.start()
        index = {start: 0}
        edges: list[list[int]] = [[]]
        queue = deque([start])
        worlds = [start]
        while queue:
            world = queue.popleft()
            here = index[world]
            for label, nxt in self.successors(world):
                self.seen.add(label)
                if nxt not in index:
                    self.check(nxt)
                    index[nxt] = len(worlds)
                    worlds.append(nxt)
                    edges.append([])
                    queue.append(nxt)
                if not label.startswith("B ") and not label.endswith("crashes"):
                    edges[here].append(index[nxt])
        self._check_no_wait_once_decided(worlds, edges)
        self.states = len(worlds)
        return self.states

    @staticmethod
    def _check_no_wait_once_decided(worlds: list[Byzantine], edges: list[list[int]]) -> None:
        """Once W holds a record of B's, every payee resolves without B's help."""

        def settled(w: Byzantine) -> bool:
            return all(not p.locked and (p.persisted is None or p.state.phase is not Phase.SIGNED)
                       and p.state.owed is None for _n, p in w.payees)  # fmt: skip

        back: list[list[int]] = [[] for _ in worlds]
        for src, targets in enumerate(edges):
            for dst in targets:
                back[dst].append(src)
        can_settle = [settled(w) for w in worlds]
        todo = [n for n, ok in enumerate(can_settle) if ok]
        while todo:
            node = todo.pop()
            for src in back[node]:
                if not can_settle[src]:
                    can_settle[src] = True
                    todo.append(src)
        for n, world in enumerate(worlds):
            if world.witness is not None and not can_settle[n]:
                raise ModelViolation(f"a payee waits for ever although W decided: {world}")


@pytest.mark.parametrize(
    "crashes", [0, pytest.param(1, marks=pytest.mark.slow, id="a payee crashes")]
)
def test_a_byzantine_payer_spends_its_position_at_most_once(crashes: int) -> None:
    explorer = ByzantineExplorer(crashes=crashes)
    states = explorer.run()
    print(f"Byzantine payer: {states} states")
    assert states > 1_000
    for move in (
        "B completes R1",
        "B completes R2",
        "B publishes R2",
        "B uses its position",
        "witness answers R1 Witnessed",
        "witness answers R2 DHTAnswered",
    ):
        assert move in explorer.seen, move
    assert crashes == 0 or "R1 crashes" in explorer.seen


class _CommitsWithoutWitness(Responder):
    """R commits as soon as I's signature verifies, as conode did before witnesses."""

    def handle(self, event: Event) -> tuple[Effect, ...]:
        effects = super().handle(event)
        if any(isinstance(effect, Witness) for effect in effects):
            return super().handle(Witnessed(NOW))
        return effects


def test_the_byzantine_checker_catches_a_payee_that_commits_unwitnessed() -> None:
    explorer = ByzantineExplorer(
        make_r=lambda **kw: new_responder(_CommitsWithoutWitness, **kw), crashes=0
    )
    with pytest.raises(ModelViolation, match=r"twice|does not hold"):
        explorer.run()
