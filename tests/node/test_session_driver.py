"""The real session driver, driven through random interleavings by a fake port (a hypothesis walk).

``conode.node.session_driver.SessionDriver`` carries out the countersigning
machines' effects, flat, through a ``SessionPort``. Here both parties run the
real driver and the real machines (``conode.validation.countersign``, real
Ed25519 signatures) over a fake port each: a chain of bodies, a durable
session record, a volatile lock and one timer. The walk draws, step by step:

- whether each request and each reply on the wire is lost (or sent twice);
- timers firing (the initiator's deadline, the responder's resend and DHT query);
- a party crashing at any port call (before or after it takes effect) or
  between events: its volatile state (driver, lock, timer) is lost, its
  store and chain survive, and it restarts from its store as a node does;
- the initiator using its chain for something else while it does not hold it;
- a write (a Persist or a Commit) failing with a ``StorageError`` (a full disk): the
  driver drops the rest of that batch and feeds the machine ``WriteFailed``.

Then the faults stop and the parties are left to resolve. Checked at every
commit and at the end, as in ``tests/core/test_countersign_model.py``: the
responder commits only if the initiator has; a party commits only at its
chain's head, at the body's position, while it holds that position; in the
end both committed or neither, and no chain is held; an honest run has no
``Reject``; and the hash the driver keeps for a commit is the one the port
wrote (what ``Node.pay`` returns).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conode import encoding
from conode.crypto import SIG_COUNTERSIGN, Signer, verify
from conode.errors import StorageError
from conode.hashes import ActionHash, AgentKey
from conode.node.session_driver import Session, SessionDriver
from conode.validation import countersign as cs

SID = cs.SessionId(bytes(range(16)))
SIGNER_I = Signer(bytes([1]) * 32)
SIGNER_R = Signer(bytes([2]) * 32)
KEY_I = AgentKey(SIGNER_I.public_key)
KEY_R = AgentKey(SIGNER_R.public_key)
KEY = SID + KEY_I.raw  # both sides key the session by id and their own agent; one id here
EXPIRES = 100
RETRY = 10
OTHER_USE = b"another use of the position"


@cache
def _sign(seed: bytes, body: bytes) -> bytes:
    return Signer(seed).sign(SIG_COUNTERSIGN, body)


@cache
def _verify(key: bytes, body: bytes, signature: bytes) -> bool:
    return verify(key, SIG_COUNTERSIGN, body, signature)


def make_record(body: bytes, own: bytes, _peer: bytes) -> bytes:
    """The stand-in for I's chain record of the payment."""
    return encoding.encode(["record", body, own])


def read_record(body: bytes, record: bytes) -> bytes | None:
    value = encoding.decode(record)
    return bytes(value[2]) if value[:2] == ["record", body] else None


def positions(body: bytes) -> tuple[int, int]:
    i_pos, r_pos = encoding.decode(body)
    return i_pos, r_pos


class Crashed(Exception):
    """The party died in the middle of carrying out an effect."""


class Violation(AssertionError):
    """An invariant of the protocol broke."""


@dataclass
class Party:
    """One side: its durable store and chain, and its volatile lock, timer and driver."""

    name: str
    agent: AgentKey
    peer: AgentKey
    signer: Signer
    chain: list[bytes] = field(default_factory=list)
    persisted: cs.SessionRecord | None = None
    locked: bool = False
    timer: int | None = None
    driver: SessionDriver | None = None
    committed: list[ActionHash] = field(default_factory=list)
    """The hash the port wrote for each commit of this party."""

    @property
    def alive(self) -> bool:
        return self.driver is not None

    @property
    def session(self) -> Session | None:
        return None if self.driver is None else self.driver.sessions.get(KEY)

    @property
    def holds(self) -> bool:
        """The position is held: the volatile lock, or R's durable SIGNED record."""
        signed = self.persisted is not None and self.persisted.status is cs.Phase.SIGNED
        return self.locked or signed

    def machine_for(self, record: cs.SessionRecord | None = None) -> cs.Initiator | cs.Responder:
        if self.name == "R":
            return cs.Responder(
                SID,
                KEY_I,
                complete=lambda partial, head: encoding.encode(
                    [*encoding.decode(partial), encoding.decode(head)]
                ),
                sign=lambda body: _sign(SIGNER_R.seed, body),
                verify_peer=lambda body, sig: _verify(SIGNER_I.public_key, body, sig),
                read_record=read_record,
                retry_interval=RETRY,
            )
        if record is None:
            return cs.Initiator(
                SID,
                KEY_R,
                EXPIRES,
                make_partial=lambda head: encoding.encode([encoding.decode(head)]),
                check_body=lambda partial, body: (
                    None if encoding.decode(body)[:1] == encoding.decode(partial) else "not mine"
                ),
                sign=lambda body: _sign(SIGNER_I.seed, body),
                make_record=make_record,
                verify_peer=lambda body, sig: _verify(SIGNER_R.public_key, body, sig),
                retry_interval=RETRY,
            )
        return cs.Initiator(
            record.session_id,
            record.peer,
            record.expires_at,
            make_partial=lambda _h: "restarted",
            check_body=lambda _p, _b: "restarted",
            sign=lambda body: _sign(SIGNER_I.seed, body),
            make_record=make_record,
            verify_peer=lambda body, sig: _verify(SIGNER_R.public_key, body, sig),
            retry_interval=RETRY,
        )


class World:
    """Both parties, the clock, and the draws that decide every fault."""

    def __init__(self, draw: Callable[[st.SearchStrategy[int]], int]) -> None:
        self._draw = draw
        self.faults = True
        self.crashes = 2
        self.other_uses = 1
        self.write_failures = 2
        self.now = 0
        self.i = Party("I", KEY_I, KEY_R, SIGNER_I)
        self.r = Party("R", KEY_R, KEY_I, SIGNER_R)
        self.trace: list[str] = []

    def party(self, agent: AgentKey) -> Party:
        return self.i if agent == KEY_I else self.r

    def other(self, party: Party) -> Party:
        return self.r if party is self.i else self.i

    def chance(self, one_in: int) -> bool:
        """A fault, drawn (never once the faults stopped)."""
        return self.faults and self._draw(st.integers(0, one_in - 1)) == 0

    def maybe_fail_write(self, party: Party, what: str) -> None:
        """A full disk: the write does not happen."""
        if self.write_failures and self.chance(8):
            self.write_failures -= 1
            self.trace.append(f"{party.name}'s {what} fails")
            raise StorageError(f"cannot {what}: database or disk is full")

    def maybe_crash(self, party: Party, where: str) -> None:
        if self.crashes and self.chance(12):
            self.crashes -= 1
            self.trace.append(f"{party.name} crashes {where}")
            raise Crashed(where)

    def died(self, party: Party) -> None:
        """Volatile state lost: the driver (machines, session locks), the chain lock, the timer."""
        party.driver = None
        party.locked = False
        party.timer = None

    async def restart(self, party: Party) -> None:
        """Start again from the store, as ``Sessions.restart`` does."""
        self.trace.append(f"{party.name} restarts")
        party.driver = SessionDriver(FakePort(self, party))
        record = party.persisted
        if record is None:
            return
        if record.role is cs.Role.RESPONDER and record.status in (
            cs.Phase.COMMITTED,
            cs.Phase.ABORTED,
        ):
            return  # nothing left to do or to answer: forgotten
        machine = party.machine_for(record if party is self.i else None)
        if record.role is cs.Role.RESPONDER and record.status is cs.Phase.SIGNED:
            party.locked = True
        party.driver.sessions[KEY] = Session(machine, party.agent)
        await self.run(party, lambda d: d.feed(KEY, lambda now: cs.Restarted(now, record)))

    async def run(self, party: Party, step: Callable[[SessionDriver], object]) -> None:
        """One event into ``party``'s driver; a crash in it kills the party."""
        if party.driver is None:
            return
        try:
            await step(party.driver)  # type: ignore[misc]
        except Crashed:
            self.died(party)

    async def inbound(self, to: Party, message: cs.Message) -> cs.Message | None:
        """A message for ``to``, as ``Sessions.inbound`` takes it; its answer."""
        driver = to.driver
        if driver is None:
            return None  # down: nobody answers
        session = driver.sessions.get(KEY)
        if session is None:
            if isinstance(message, cs.Offer) and to is self.r:
                driver.sessions[KEY] = Session(to.machine_for(), to.agent)
            elif isinstance(message, cs.Accept) and to is self.i:
                return self.late_accept(message)
            else:
                return None
        replies = await driver.feed(KEY, lambda now: cs.Received(now, message), to.peer)
        return replies[-1] if replies else None

    def late_accept(self, accept: cs.Accept) -> cs.Message:
        """The initiator answers an Accept for a session it no longer holds from its chain."""
        if accept.body in self.i.chain:
            own = _sign(SIGNER_I.seed, accept.body)
            return cs.Complete(accept.session_id, own, make_record(accept.body, own, b""))
        return cs.Abort(accept.session_id, "no such session here")


class FakePort:
    """One party's ``SessionPort``: a chain, a store, a lock and a timer, all in memory."""

    def __init__(self, world: World, party: Party) -> None:
        self.world = world
        self.party = party

    def now(self) -> int:
        return self.world.now

    def lock(self, key: bytes, agent: AgentKey) -> cs.Locked | cs.LockRefused:
        self.world.maybe_crash(self.party, "before Lock")
        self.party.locked = True
        return cs.Locked(self.world.now, encoding.encode(len(self.party.chain)))

    def unlock(self, key: bytes, agent: AgentKey) -> None:
        self.party.locked = False

    def persist(self, key: bytes, agent: AgentKey, record: cs.SessionRecord) -> None:
        self.world.maybe_crash(self.party, f"before Persist({record.status.name})")
        self.world.maybe_fail_write(self.party, f"Persist({record.status.name})")
        previous = self.party.persisted
        final = (cs.Phase.COMMITTED, cs.Phase.ABORTED)
        if previous is not None and previous.status is cs.Phase.SIGNED and record.status not in final:
            raise Violation(f"R left SIGNED for {record.status.name}")
        self.party.persisted = record
        self.world.maybe_crash(self.party, f"after Persist({record.status.name})")

    async def commit(
        self, key: bytes, agent: AgentKey, record: cs.SessionRecord
    ) -> ActionHash | str:
        world, party = self.world, self.party
        world.maybe_crash(party, "before Commit")
        world.maybe_fail_write(party, "Commit")
        assert record.body is not None
        i_pos, r_pos = positions(record.body)
        position = i_pos if party is world.i else r_pos
        if not party.holds:
            raise Violation(f"{party.name} commits without holding its position")
        if position != len(party.chain):
            raise Violation(f"{party.name} commits at {position}, its head is {len(party.chain)}")
        if party is world.r and record.body not in world.i.chain:
            raise Violation("R commits a payment I has not committed")
        party.chain.append(record.body)
        party.persisted = record
        written = ActionHash.of(party.name.encode() + record.body)
        party.committed.append(written)
        world.trace.append(f"{party.name} commits")
        world.maybe_crash(party, "after Commit")
        return written

    def set_timer(self, key: bytes, at: int) -> None:
        self.party.timer = at

    def cancel_timer(self, key: bytes) -> None:
        self.party.timer = None

    async def send(self, key: bytes, agent: AgentKey, effect: cs.SendTo) -> cs.Message | None:
        world = self.world
        to = world.party(effect.peer)
        world.trace.append(f"{self.party.name} -> {to.name}: {type(effect.message).__name__}")
        if world.chance(4):
            world.trace.append("  lost")
            return None
        times = 2 if world.chance(8) else 1
        reply = None
        for _ in range(times):
            try:
                reply = await world.inbound(to, effect.message)
            except Crashed:
                world.died(to)
                return None
        if reply is None or world.chance(4):
            return None
        world.trace.append(f"  <- {type(reply).__name__}")
        return reply

    async def query(self, key: bytes, body: bytes) -> cs.DHTAnswered:
        chain = self.world.i.chain
        i_pos, _r_pos = positions(body)
        now = self.world.now
        if len(chain) > i_pos and chain[i_pos] == body:
            found = make_record(body, _sign(SIGNER_I.seed, body), b"")
            return cs.DHTAnswered(now, initiator_record=found)
        if len(chain) > i_pos:
            return cs.DHTAnswered(now, position_taken=True)
        return cs.DHTAnswered(now)

    async def witness(self, key: bytes, record: bytes) -> cs.Witnessed | cs.DHTAnswered | None:
        """I's honest witnesses: they hold what I's chain holds at its position."""
        chain, body = self.world.i.chain, encoding.decode(record)[1]
        i_pos, _r_pos = positions(body)
        if self.world.chance(4):
            return None  # not reachable now: asked again on the timer
        if len(chain) > i_pos and chain[i_pos] == body:
            return cs.Witnessed(self.world.now)
        if len(chain) > i_pos:
            return cs.DHTAnswered(self.world.now, position_taken=True)
        return None

    def finished(self, key: bytes) -> None:
        pass


async def fire(world: World, party: Party) -> None:
    """The party's timer fires: the clock moves to its deadline."""
    at = party.timer
    if at is None or party.driver is None or KEY not in party.driver.sessions:
        return
    world.now = max(world.now, at)
    party.timer = None
    world.trace.append(f"{party.name} timer")
    await world.run(party, lambda d: d.feed(KEY, lambda _now: cs.TimedOut(at)))


async def walk(world: World, data: st.DataObject) -> None:
    i, r = world.i, world.r
    i.driver, r.driver = SessionDriver(FakePort(world, i)), SessionDriver(FakePort(world, r))
    i.driver.sessions[KEY] = Session(i.machine_for(), KEY_I)
    await world.run(i, lambda d: d.start(KEY))
    for _step in range(data.draw(st.integers(0, 12), label="steps")):
        move = data.draw(
            st.sampled_from(["I timer", "R timer", "crash I", "crash R", "restart", "other use"]),
            label="move",
        )
        party = i if move.endswith("I") else r
        if move.endswith("timer"):
            await fire(world, party)
        elif move.startswith("crash") and party.alive and world.crashes:
            world.crashes -= 1
            world.trace.append(f"{party.name} crashes between events")
            world.died(party)
        elif move == "restart":
            for dead in (p for p in (i, r) if not p.alive):
                await world.restart(dead)
        elif move == "other use" and world.other_uses and not i.holds and i.alive:
            world.other_uses -= 1
            i.chain.append(OTHER_USE)
            world.trace.append("I appends something else")
    # the faults stop: every party comes back, and the timers run until both have resolved
    world.faults = False
    for _round in range(40):
        for party in (i, r):
            if not party.alive:
                await world.restart(party)
        if i.timer is None and r.timer is None:
            break
        await fire(world, min((p for p in (i, r) if p.timer is not None), key=lambda p: p.timer))  # type: ignore[arg-type, return-value]


class RejectCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.rejects: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("countersigning:"):
            self.rejects.append(record.getMessage())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_driver_commits_both_or_neither_through_loss_crashes_and_restarts(
    data: st.DataObject,
) -> None:
    world = World(lambda strategy: data.draw(strategy))
    counter = RejectCounter()
    logger = logging.getLogger("conode.node")
    logger.addHandler(counter)
    try:
        trio.run(walk, world, data)
    except Violation as exc:
        raise Violation(f"{exc}\n" + "\n".join(world.trace)) from None
    finally:
        logger.removeHandler(counter)
    trace = "\n".join(world.trace)
    i, r = world.i, world.r
    i_paid = [b for b in i.chain if b != OTHER_USE]
    assert len(i_paid) <= 1 and len(r.chain) <= 1, trace
    assert (len(i_paid), len(r.chain)) in ((0, 0), (1, 1)), trace
    assert i_paid == r.chain, trace
    assert not i.locked and not r.locked, trace
    assert r.persisted is None or r.persisted.status is not cs.Phase.SIGNED, trace
    assert counter.rejects == [], trace
    for party in (i, r):  # the hash a session keeps is the one its own Commit wrote
        session = party.session
        if session is not None and session.committed is not None:
            assert session.committed in party.committed, trace


def test_a_failed_commit_drops_the_rest_of_its_batch_and_aborts_the_initiator() -> None:
    """A Commit the port cannot write: no Complete after it (nor the rest of its batch); the
    initiator aborts instead (persisted) and tells the responder."""
    sent: list[cs.Message] = []
    persisted: list[cs.SessionRecord] = []

    class Refusing(FakePort):
        async def commit(
            self, key: bytes, agent: AgentKey, record: cs.SessionRecord
        ) -> ActionHash | str:
            return "the rules cannot pass it here yet"

        def persist(self, key: bytes, agent: AgentKey, record: cs.SessionRecord) -> None:
            persisted.append(record)
            self.party.persisted = record

        async def send(
            self, key: bytes, agent: AgentKey, effect: cs.SendTo
        ) -> cs.Message | None:
            sent.append(effect.message)
            if isinstance(effect.message, cs.Offer):
                return await self.world.inbound(self.world.r, effect.message)
            return None

    async def main() -> None:
        world = World(lambda _strategy: 1)
        world.faults = False
        i, r = world.i, world.r
        i.driver, r.driver = SessionDriver(Refusing(world, i)), SessionDriver(FakePort(world, r))
        i.driver.sessions[KEY] = Session(i.machine_for(), KEY_I)
        await i.driver.start(KEY)
        session = i.driver.sessions[KEY]
        assert session.machine.state.phase is cs.Phase.ABORTED
        assert session.done.is_set() and session.committed is None
        assert [type(m).__name__ for m in sent] == ["Offer", "Abort"]
        assert [p.status for p in persisted] == [cs.Phase.OFFERED, cs.Phase.ABORTED]
        assert i.chain == [] and r.chain == []

    trio.run(main)


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
