"""The payment session driver: a flat executor of the countersigning machines' effects.

How it works: a machine (``conode.validation.countersign``) turns each event
into a tuple of effects. ``feed`` carries them out in order, one at a time,
through a small port (``SessionPort``: lock, persist, commit, send, query,
timers), with no recursion: an effect that sets off an event of its own
(``Lock`` is answered by ``Locked``, ``SendTo`` by the peer's reply,
``QueryDHT`` by what the DHT holds) has the machine's effects for that event
carried out next, before the rest of its batch, which is the order the
protocol's failure table assumes. A batch ends with a check whether the
machine is done. A ``Persist`` or ``Commit`` the port cannot make durable
(a ``StorageError``: disk full, an I/O error; or a commit the rules cannot
pass here yet) drops the rest of its batch (never the Unlock, the Accept or
the Complete after a failed write) and feeds the machine ``WriteFailed``,
whose answer (an abort, a decline, a retry on the timer) is carried out
next: a write that fails is never half a payment.

Crash points (``CONODE_CRASH_AT``, process tests only) fire before and after
each effect; an effect's "after" comes once the effects it set off are done,
and ``<role>-got-reply`` between a reply's arrival and its handling.

The driver holds no domain decision: the machines decide, the port does.
``tests/node/test_session_driver.py`` drives it with a fake port.
"""

from __future__ import annotations

import logging
import os
import signal
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

import trio

from conode.errors import StorageError
from conode.hashes import ActionHash, AgentKey
from conode.validation import countersign as cs

__all__ = ["CRASH_ENV", "Session", "SessionDriver", "SessionPort"]

log = logging.getLogger("conode.node")

CRASH_ENV: Final = "CONODE_CRASH_AT"
"""Fault injection for the process tests: ``initiator-after-commit`` (say) makes this process
SIGKILL itself at that step of a payment session, as a power cut would (see ``crash_point``)."""
_CRASH_AT: Final = frozenset(filter(None, os.environ.get(CRASH_ENV, "").split(",")))


def crash_point(role: cs.Role, when: str, effect: cs.Effect | str) -> None:
    """Kill this process here if the environment asks for it (see ``CRASH_ENV``).

    Points are ``<role>-<before|after>-<effect>`` around each effect of a
    session (``after-lock`` and ``after-sendto`` come only once the effects
    they set off are done: use ``before-`` points to land between them), and
    ``initiator-got-reply``: a reply arrived, not yet handled.
    """
    if _CRASH_AT:
        name = effect if isinstance(effect, str) else type(effect).__name__.lower()
        point = f"{role.name.lower()}-{when}-{name}" if when else f"{role.name.lower()}-{name}"
        if point in _CRASH_AT:
            log.critical("%s=%s: killing this process", CRASH_ENV, point)
            os.kill(os.getpid(), signal.SIGKILL)


@dataclass(slots=True)
class Session:
    """One payment session of a hosted agent: its machine, and who waits for it."""

    machine: cs.Initiator | cs.Responder
    agent: AgentKey
    lock: trio.Lock = field(default_factory=trio.Lock)
    """Held while the session's effects are carried out: one event at a time."""
    done: trio.Event = field(default_factory=trio.Event)
    committed: ActionHash | None = None
    """The hash of this party's record its Commit wrote (None: not committed by this session)."""
    error: str | None = None
    """Why the session was given up without a decision (an exception out of its driver)."""


class SessionPort(Protocol):
    """What the driver asks of the node to carry out a machine's effects."""

    def now(self) -> int:
        """The node's clock (µs)."""

    def lock(self, key: bytes, agent: AgentKey) -> cs.Locked | cs.LockRefused:
        """Try to hold ``agent``'s chain for session ``key``, at once."""

    def unlock(self, key: bytes, agent: AgentKey) -> None:
        """Let go of ``agent``'s chain if session ``key`` holds it."""

    def persist(self, key: bytes, agent: AgentKey, record: cs.SessionRecord) -> None:
        """Write the session record durably (``StorageError`` if it cannot)."""

    async def commit(
        self, key: bytes, agent: AgentKey, record: cs.SessionRecord
    ) -> ActionHash | str:
        """Append this party's record of the payment with the COMMITTED session record,
        atomically; its hash, or why it was not written (the rules cannot pass it here now;
        ``StorageError`` if the store cannot write)."""

    def set_timer(self, key: bytes, at: int) -> None:
        """Arm the session's one timer for ``at`` (µs): ``TimedOut`` is fed then."""

    def cancel_timer(self, key: bytes) -> None:
        """Disarm the session's timer."""

    async def send(self, key: bytes, agent: AgentKey, effect: cs.SendTo) -> cs.Message | None:
        """Send a session message to its peer; the peer's answer, if any."""

    async def query(self, key: bytes, body: bytes) -> cs.DHTAnswered:
        """Look for the initiator's record at its position in the DHT (``QueryDHT``)."""

    async def witness(self, key: bytes, record: bytes) -> cs.Witnessed | cs.DHTAnswered | None:
        """Have the initiator's record held by its witnesses (``Witness``): ``Witnessed`` once
        all hold it, ``DHTAnswered(position_taken)`` if one holds another record there."""

    def finished(self, key: bytes) -> None:
        """The session's machine reached a final phase."""


@dataclass(frozen=True, slots=True)
class _Do:
    """An effect to carry out; ``reply_to``: the peer whose request this batch answers."""

    effect: cs.Effect
    reply_to: _Replies | None


@dataclass(frozen=True, slots=True)
class _After:
    """The "after" crash point of an effect whose follow-up batch has been carried out."""

    effect: cs.Effect


@dataclass(frozen=True, slots=True)
class _BatchEnd:
    """The end of one event's effects: check whether the machine is done."""


@dataclass(frozen=True, slots=True)
class _Replies:
    """Messages to ``peer`` that go back as the answer to its request, not as requests."""

    peer: AgentKey
    messages: list[cs.Message]


_Item = _Do | _After | _BatchEnd
_END: Final = _BatchEnd()


class SessionDriver:
    """The sessions of one node and the executor that drives them through ``port``."""

    def __init__(self, port: SessionPort) -> None:
        self.port = port
        self.sessions: dict[bytes, Session] = {}

    async def start(self, key: bytes) -> None:
        """Start a new initiator's session (registered under ``key``)."""
        session = self.sessions[key]
        assert isinstance(session.machine, cs.Initiator)
        async with session.lock:
            await self._run(key, session, session.machine.start(self.port.now()), None)

    async def feed(
        self, key: bytes, event: Callable[[int], cs.Event], reply_to: AgentKey | None = None
    ) -> list[cs.Message]:
        """Feed ``event(now)`` (now: read under the session's lock) and carry out what follows;
        the messages to ``reply_to`` that answer its request."""
        session = self.sessions[key]
        replies = None if reply_to is None else _Replies(reply_to, [])
        async with session.lock:
            effects = session.machine.handle(event(self.port.now()))
            await self._run(key, session, effects, replies)
        return [] if replies is None else replies.messages

    async def _run(
        self, key: bytes, session: Session, effects: cs.Effects, replies: _Replies | None
    ) -> None:
        """Carry out ``effects`` and everything they set off, in order (the session's lock held)."""
        todo: deque[_Item] = deque()
        _push(todo, effects, replies)
        while todo:
            item = todo.popleft()
            if isinstance(item, _BatchEnd):
                if session.machine.done:
                    session.done.set()
                    self.port.finished(key)
                continue
            role = session.machine.state.role
            if isinstance(item, _After):
                crash_point(role, "after", item.effect)
                continue
            effect = item.effect
            crash_point(role, "before", effect)
            if isinstance(effect, cs.Persist | cs.Commit):
                failure = await self._write(key, session, effect)
                if failure is not None:
                    _drop_batch(todo)  # nothing after a failed write: no Unlock, Accept, Complete
                    failed = cs.WriteFailed(self.port.now(), effect.record, failure)
                    log.error("session %s: %s", key[:4].hex(), failure)
                    # its answer goes where the failed batch's would have (a Decline, say)
                    _push(todo, session.machine.handle(failed), item.reply_to, front=True)
                    continue
                crash_point(role, "after", effect)
                continue
            follow_up = await self._carry_out(key, session, item)
            if follow_up is None:
                crash_point(role, "after", effect)
                continue
            event, follow_replies = follow_up
            todo.appendleft(_After(effect))
            _push(todo, session.machine.handle(event), follow_replies, front=True)

    async def _carry_out(
        self, key: bytes, session: Session, item: _Do
    ) -> tuple[cs.Event, _Replies | None] | None:
        """Carry out one effect; the event it sets off (and whom that batch answers), if any."""
        port, agent, effect = self.port, session.agent, item.effect
        if isinstance(effect, cs.Lock):
            return port.lock(key, agent), item.reply_to
        if isinstance(effect, cs.Unlock):
            port.unlock(key, agent)
        elif isinstance(effect, cs.SetTimer):
            port.set_timer(key, effect.at)
        elif isinstance(effect, cs.CancelTimer):
            port.cancel_timer(key)
        elif isinstance(effect, cs.SendTo):
            if item.reply_to is not None and effect.peer == item.reply_to.peer:
                item.reply_to.messages.append(effect.message)
                return None
            reply = await port.send(key, agent, effect)
            if reply is None or reply.session_id != key[: cs.SESSION_ID_SIZE]:
                return None
            crash_point(session.machine.state.role, "", "got-reply")
            return cs.Received(port.now(), reply), None
        elif isinstance(effect, cs.QueryDHT):
            return await port.query(key, effect.body), None
        elif isinstance(effect, cs.Witness):
            answer = await port.witness(key, effect.record)
            return None if answer is None else (answer, None)
        elif isinstance(effect, cs.Reject):
            log.warning("countersigning: %s", effect.reason)
        return None

    async def _write(
        self, key: bytes, session: Session, effect: cs.Persist | cs.Commit
    ) -> str | None:
        """Make a Persist or Commit durable; why not, if it could not be."""
        try:
            if isinstance(effect, cs.Persist):
                self.port.persist(key, session.agent, effect.record)
                return None
            committed = await self.port.commit(key, session.agent, effect.record)
        except StorageError as exc:
            return str(exc)
        if isinstance(committed, str):
            return committed
        session.committed = committed
        return None


def _push(
    todo: deque[_Item], effects: cs.Effects, replies: _Replies | None, *, front: bool = False
) -> None:
    """Queue one event's effects and the check at their end (at the front: carried out next)."""
    batch: list[_Item] = [_Do(effect, replies) for effect in effects]
    batch.append(_END)
    if front:
        todo.extendleft(reversed(batch))
    else:
        todo.extend(batch)


def _drop_batch(todo: deque[_Item]) -> None:
    """Drop what is left of the batch being carried out, its end check included."""
    while todo and not isinstance(todo.popleft(), _BatchEnd):
        pass
