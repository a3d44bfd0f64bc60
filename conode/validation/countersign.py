"""The countersigning session: a sans-I/O state machine for each party of a payment.

A payment is one entry signed by both parties and committed on both chains at
positions fixed in the entry. This module holds no networking, storage, clock
or randomness: bytes and events go in, effects come out (h11's ``_state.py``
and magic-wormhole's journal are the models). What a body *is* belongs to the
payment rules; the machines only move bytes through small pure callables
given at construction.

How it works
------------

Two machines, one per side, each one session (``session_id``, from the shell)::

    Initiator (I)                                   Responder (R)
    start()        -> Lock
    Locked(head)   -> Persist(OFFERED) SetTimer(expires_at)
                      SendTo(Offer) ---------------> Received(Offer)  -> Lock
                                                    Locked(head)     -> Persist(SIGNED)
                      Received(Accept) <------------ SendTo(Accept)      SetTimer(resolve)
    check body, sig_R -> Commit Unlock CancelTimer
                      SendTo(Complete) ------------> Received(Complete) -> Witness(I's record)
                                                    Witnessed         -> Commit Unlock
                                                                         CancelTimer

Phases: ``IDLE -> LOCKING -> OFFERED`` (I) or ``SIGNED`` (R) ``-> COMMITTED |
ABORTED``. The rules that make it atomic:

- **Persist before you speak.** I persists ``OFFERED`` before the Offer
  leaves; R persists its signature (``SIGNED``) before the Accept leaves; I's
  ``Commit`` (the shell appends the entry *and* the ``COMMITTED`` record in one
  transaction) is I's decision, made before Complete leaves. Every abort is
  persisted before the lock is released.
- **Only R waits without bound.** I gave no signature until it committed, so
  I may abort at any time before (timeout at ``expires_at``, a refusal, a
  restart) and its abort is final: a later Accept is answered with Abort. R
  has given its signature once ``SIGNED`` is on disk: from then on it holds
  its position until it learns I's decision, and the ``SIGNED`` record *is*
  that lock (the store refuses any other append on R's chain while it
  exists), so it survives a crash.
- **R commits only what I cannot spend twice.** Complete carries I's own
  chain record of the payment. R has it *witnessed* (``Witness``) by I's
  activity authorities, who keep the first record of I's they see at each
  position and refuse (and warrant) a second; only when they all hold this
  one (``Witnessed``) does R commit. A payer that signs one position over to
  several payees therefore gets at most one of them to commit, whatever its
  own node does.
- **A write that fails is never half done.** The shell reports a ``Persist``
  or ``Commit`` it could not make durable with ``WriteFailed`` (and drops
  the effects that followed it). Nothing that depends on the write is said:
  a failed OFFERED or SIGNED record ends the session at once (no Offer, a
  Decline instead of the Accept); a failed commit of I's turns into an
  abort; R's failed commit and every failed abort are retried every
  ``retry_interval`` while the chain stays held (``owed``), and Abort is sent
  only once it is durable.
- **Resolution.** While R waits it re-sends its Accept every
  ``retry_interval`` (``SetTimer``) and asks the DHT (``QueryDHT``). I
  answers an Accept in every phase: still ``OFFERED`` -> it decides now
  (commit, or abort if it can no longer or will not); ``COMMITTED`` ->
  Complete again; ``ABORTED`` -> Abort again. So the "resolve request" is the
  Accept itself, and the answers are Complete and Abort. The DHT answers with
  I's record when I's committed entry is found (R has it witnessed, then
  commits), or says that I's position holds another action of I's (R learns
  the abort). "Not found" means nothing: I may have committed and not
  published yet.
- **Restart.** The shell builds a machine from each stored ``SessionRecord``
  and feeds ``Restarted`` before it lets any other append happen: I
  ``OFFERED`` aborts (persists, then tells R); I ``COMMITTED``/``ABORTED``
  answer when asked; R ``SIGNED`` resumes resolution; R without a record
  never gave a signature and simply forgets (nothing to restart).

The shell's side of the contract:

- ``Lock`` is a try-lock of the party's chain, answered at once, before any
  other event, by ``Locked(now, head)`` (``head``: the canonical bytes of the
  chain head under the lock) or ``LockRefused``. The pure callables get
  ``head`` so the body is built from the chain as it stands under the lock.
- ``Unlock`` is idempotent (after a restart the volatile lock is gone already).
- Effects are carried out in order, before the next event is fed in; a crash
  may stop them half-way, which the protocol allows for. A ``Persist`` or
  ``Commit`` that could not be made durable is answered with ``WriteFailed``
  carrying its record, and the effects after it are *not* carried out.
- ``Witness(record)``: have I's record held by I's activity authorities;
  answer ``Witnessed`` once every one holds it at its position, or
  ``DHTAnswered(position_taken=True)`` if one holds another record of I's
  there; nothing while it cannot tell (the retry timer asks again).
- ``SetTimer(at)`` replaces the session's one timer and ``CancelTimer`` clears
  it; ``TimedOut`` means the deadline passed (the machine does not re-read
  the clock; a ``TimedOut`` with no timer armed is ignored).
- ``Reject`` asks the shell to drop a message that broke the protocol (a
  forged signature, a body that changed): log it, and hold it against the peer.
- Only messages from a channel authenticated as ``peer`` are fed in: Complete
  proves itself (I's signature), but Abort does not.

Raised, never returned: ``LocalProtocolError`` when the shell feeds an event
the phase cannot take (a bug here), ``ValueError`` for a message or record of
another session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Final, NewType, Self, TypeAlias

from conode import encoding
from conode.crypto import SIGNATURE_SIZE
from conode.errors import EncodingError, LocalProtocolError
from conode.hashes import AgentKey

__all__ = [
    "DEFAULT_RETRY_INTERVAL",
    "MAX_BODY_SIZE",
    "MAX_RECORD_SIZE",
    "MAX_REASON_LENGTH",
    "SESSION_ID_SIZE",
    "Abort",
    "Accept",
    "CancelTimer",
    "Cancelled",
    "Commit",
    "Complete",
    "DHTAnswered",
    "Decline",
    "Effect",
    "Event",
    "Initiator",
    "Lock",
    "LockRefused",
    "Locked",
    "Message",
    "Offer",
    "Persist",
    "Phase",
    "QueryDHT",
    "Received",
    "Reject",
    "Responder",
    "Restarted",
    "Role",
    "SendTo",
    "SessionId",
    "SessionRecord",
    "SessionState",
    "SetTimer",
    "TimedOut",
    "Unlock",
    "Witness",
    "Witnessed",
    "WriteFailed",
    "decode_message",
    "encode_message",
]

SESSION_ID_SIZE: Final = 16
"""Bytes in a session id (random, chosen by the initiator's shell)."""
MAX_BODY_SIZE: Final = 64 * 1024
"""Largest partial or body a message may carry."""
MAX_RECORD_SIZE: Final = MAX_BODY_SIZE + 4 * 1024
"""Largest chain record a Complete may carry (a payment entry holds a body and two signatures)."""
MAX_REASON_LENGTH: Final = 200
"""Longest refusal reason sent on the wire; longer ones are cut."""
DEFAULT_RETRY_INTERVAL: Final = 30_000_000
"""How often (µs) a responder that has signed asks again for the outcome."""

SessionId = NewType("SessionId", bytes)
"""The id of one countersigning session: ``SESSION_ID_SIZE`` bytes."""


class Role(IntEnum):
    """Which side of the session a machine or record is."""

    INITIATOR = 1
    RESPONDER = 2


class Phase(IntEnum):
    """Where a session stands; the last four are also the statuses a record may hold."""

    IDLE = 0
    """Nothing done yet (R: waiting for an Offer)."""
    LOCKING = 1
    """``Lock`` emitted; only ``Locked``/``LockRefused`` may come next."""
    OFFERED = 2
    """I: Offer persisted and sent; undecided, locked until ``expires_at``."""
    SIGNED = 3
    """R: signature persisted and sent; locked until it learns the outcome."""
    COMMITTED = 4
    """The entry is on this party's chain (final)."""
    ABORTED = 5
    """This party will never commit this session (final); its lock is released."""


# ---------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Offer:
    """I -> R: I's half of the body; R may sign it until ``expires_at`` (µs)."""

    session_id: SessionId
    partial: bytes
    expires_at: int


@dataclass(frozen=True, slots=True)
class Accept:
    """R -> I: the completed body and R's signature; re-sent by R until it learns the outcome."""

    session_id: SessionId
    body: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class Decline:
    """R -> I: R will not sign (busy, expired, refused); R has given no signature."""

    session_id: SessionId
    reason: str


@dataclass(frozen=True, slots=True)
class Complete:
    """I -> R: I committed; ``signature`` is I's over the body R accepted, ``record`` I's chain
    record of the payment (the one R has witnessed before it commits)."""

    session_id: SessionId
    signature: bytes
    record: bytes


@dataclass(frozen=True, slots=True)
class Abort:
    """I -> R: I has durably aborted and will never commit this session."""

    session_id: SessionId
    reason: str


Message: TypeAlias = Offer | Accept | Decline | Complete | Abort

_TAGS: Final[dict[type, int]] = {Offer: 1, Accept: 2, Decline: 3, Complete: 4, Abort: 5}


# ---------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """What a party persists about a session; ``status`` is OFFERED, SIGNED, COMMITTED or ABORTED.

    OFFERED is the initiator's only, SIGNED the responder's only; SIGNED and
    COMMITTED carry the body and this party's signature, COMMITTED also the peer's.
    """

    role: Role
    status: Phase
    session_id: SessionId
    peer: AgentKey
    expires_at: int
    partial: bytes
    body: bytes | None = None
    own_signature: bytes | None = None
    peer_signature: bytes | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.status not in _STATUSES[self.role]:
            raise ValueError(f"a {self.role.name.lower()} record cannot be {self.status.name}")
        _check_session_id(self.session_id)
        if self.status in (Phase.SIGNED, Phase.COMMITTED) and (
            self.body is None or self.own_signature is None
        ):
            raise ValueError(f"a {self.status.name} record carries the body and its signature")
        if self.status is Phase.COMMITTED and self.peer_signature is None:
            raise ValueError("a COMMITTED record carries both signatures")

    def to_bytes(self) -> bytes:
        """The canonical CBOR form the shell stores."""
        return encoding.encode(
            [
                1,
                int(self.role),
                int(self.status),
                self.session_id,
                self.peer.to_bytes(),
                self.expires_at,
                self.partial,
                self.body,
                self.own_signature,
                self.peer_signature,
                self.reason,
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SessionRecord:
        """Read a stored record; ``EncodingError`` if it is not one."""
        fields = encoding.decode(data)
        if (
            type(fields) is not list
            or len(fields) != 11
            or type(fields[0]) is not int
            or fields[0] != 1
        ):
            raise EncodingError("a session record is a CBOR array of 11 items, version 1")
        _, role, status, sid, peer, expires_at, partial, body, own, peer_sig, reason = fields
        try:
            return cls(
                role=Role(_int(role)),
                status=Phase(_int(status)),
                session_id=SessionId(_bytes(sid)),
                peer=AgentKey.from_bytes(peer),
                expires_at=_int(expires_at),
                partial=_bytes(partial, MAX_BODY_SIZE),
                body=None if body is None else _bytes(body, MAX_BODY_SIZE),
                own_signature=None if own is None else _sig(own),
                peer_signature=None if peer_sig is None else _sig(peer_sig),
                reason=None if reason is None else _text(reason),
            )
        except (ValueError, TypeError) as exc:
            raise EncodingError(f"bad session record: {exc}") from exc


_STATUSES: Final = {
    Role.INITIATOR: (Phase.OFFERED, Phase.COMMITTED, Phase.ABORTED),
    Role.RESPONDER: (Phase.SIGNED, Phase.COMMITTED, Phase.ABORTED),
}


# ---------------------------------------------------------------- events in


@dataclass(frozen=True, slots=True)
class Locked:
    """The shell holds this party's chain for the session; ``head`` is the chain head's bytes."""

    now: int
    head: bytes


@dataclass(frozen=True, slots=True)
class LockRefused:
    """The shell could not lock the chain (another session holds it)."""

    now: int
    reason: str


@dataclass(frozen=True, slots=True)
class Received:
    """A message of this session arrived from the peer."""

    now: int
    message: Message


@dataclass(frozen=True, slots=True)
class TimedOut:
    """The deadline of the last ``SetTimer`` passed."""

    now: int


@dataclass(frozen=True, slots=True)
class DHTAnswered:
    """The DHT's answer to ``QueryDHT`` (or to ``Witness``, when a witness holds another record).

    ``initiator_record``: I's chain record of the payment, if found (R still has it witnessed).
    ``position_taken``: a valid record of I's, other than this payment, holds
    I's position (so I can never commit it). Neither: nothing is known yet.
    """

    now: int
    initiator_record: bytes | None = None
    position_taken: bool = False


@dataclass(frozen=True, slots=True)
class Witnessed:
    """Every one of I's activity authorities holds I's record (the last ``Witness``) at its place."""

    now: int


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The operator gives the session up (``conode sessions release``).

    I aborts if undecided. R gives up a signed position only if it does not know I's
    signature; the operator has been told that I may still commit it (a payment that then
    stands on I's chain alone). A session that knows I committed is never given up.
    """

    now: int
    reason: str


@dataclass(frozen=True, slots=True)
class WriteFailed:
    """The ``Persist`` or ``Commit`` of ``record`` could not be made durable (disk full, I/O
    error, read-only store); the effects after it were not carried out."""

    now: int
    record: SessionRecord
    reason: str


@dataclass(frozen=True, slots=True)
class Restarted:
    """The node restarted; ``record`` is what this party had persisted for the session."""

    now: int
    record: SessionRecord


Event: TypeAlias = (
    Locked
    | LockRefused
    | Received
    | TimedOut
    | DHTAnswered
    | Witnessed
    | WriteFailed
    | Cancelled
    | Restarted
)


# ---------------------------------------------------------------- effects out


@dataclass(frozen=True, slots=True)
class Lock:
    """Try to lock this party's chain for the session; answer with ``Locked`` or ``LockRefused``."""


@dataclass(frozen=True, slots=True)
class Unlock:
    """Release the session's lock on the chain (idempotent)."""


@dataclass(frozen=True, slots=True)
class Persist:
    """Store ``record`` durably (replacing the session's previous record) before going on."""

    record: SessionRecord


@dataclass(frozen=True, slots=True)
class Commit:
    """Append the countersigned entry at its fixed position and store ``record``, atomically."""

    record: SessionRecord


@dataclass(frozen=True, slots=True)
class SendTo:
    """Send ``message`` to the agent ``peer``."""

    peer: AgentKey
    message: Message


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Arm the session's one timer for ``at`` (µs), replacing any earlier one."""

    at: int


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Disarm the session's timer."""


@dataclass(frozen=True, slots=True)
class QueryDHT:
    """Ask the DHT whether I's chain holds ``body`` at I's position; answer with ``DHTAnswered``."""

    body: bytes


@dataclass(frozen=True, slots=True)
class Witness:
    """Have I's chain ``record`` held by I's activity authorities; answer with ``Witnessed``,
    ``DHTAnswered(position_taken=True)``, or nothing (the timer asks again)."""

    record: bytes


@dataclass(frozen=True, slots=True)
class Reject:
    """A message (or DHT answer) broke the protocol and was dropped: log it, blame the peer."""

    reason: str
    message: Message | None = None


Effect: TypeAlias = (
    Lock | Unlock | Persist | Commit | SendTo | SetTimer | CancelTimer | QueryDHT | Witness | Reject
)
Effects: TypeAlias = tuple[Effect, ...]


# ---------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class SessionState:
    """A machine's whole state, as a value: equal states behave identically."""

    role: Role
    phase: Phase
    session_id: SessionId
    peer: AgentKey
    expires_at: int | None = None
    partial: bytes | None = None
    body: bytes | None = None
    own_signature: bytes | None = None
    peer_signature: bytes | None = None
    timer_at: int | None = None
    reason: str | None = None
    peer_record: bytes | None = None
    """R: I's chain record, once I's signature is known (what R has witnessed)."""
    owed: Phase | None = None
    """A write that failed and is retried on the timer: COMMITTED (R) or ABORTED (either)."""

    def record(self, status: Phase) -> SessionRecord:
        """The record to persist for this state under ``status``."""
        if self.expires_at is None or self.partial is None:
            raise LocalProtocolError(f"nothing to persist in phase {self.phase.name}")
        return SessionRecord(
            role=self.role,
            status=status,
            session_id=self.session_id,
            peer=self.peer,
            expires_at=self.expires_at,
            partial=self.partial,
            body=self.body,
            own_signature=self.own_signature,
            peer_signature=self.peer_signature,
            reason=self.reason,
        )

    @classmethod
    def from_record(cls, record: SessionRecord, phase: Phase) -> SessionState:
        """The state a restarted machine resumes from."""
        return cls(
            role=record.role,
            phase=phase,
            session_id=record.session_id,
            peer=record.peer,
            expires_at=record.expires_at,
            partial=record.partial,
            body=record.body,
            own_signature=record.own_signature,
            peer_signature=record.peer_signature,
            reason=record.reason,
        )


_FINAL: Final = (Phase.COMMITTED, Phase.ABORTED)


class _Machine:
    """What both machines share: the state value, and the checks on what is fed in."""

    __slots__ = ("_state",)

    def __init__(self, state: SessionState) -> None:
        self._state = state

    @property
    def state(self) -> SessionState:
        """The current state (a value; keep it to compare, never to edit)."""
        return self._state

    @property
    def phase(self) -> Phase:
        """The current phase."""
        return self._state.phase

    @property
    def done(self) -> bool:
        """True once the session is COMMITTED or ABORTED on this side, durably."""
        return self._state.phase in _FINAL and self._state.owed is None

    def _check_event(self, event: Event) -> None:
        state = self._state
        if state.phase is Phase.LOCKING and not isinstance(event, Locked | LockRefused):
            raise LocalProtocolError(f"{type(event).__name__} fed before the Lock was answered")
        if isinstance(event, Locked | LockRefused) and state.phase is not Phase.LOCKING:
            raise LocalProtocolError(f"{type(event).__name__} fed in phase {state.phase.name}")
        if isinstance(event, Restarted):
            if state.phase is not Phase.IDLE:
                raise LocalProtocolError(f"Restarted fed in phase {state.phase.name}")
            record = event.record
            if (record.role, record.session_id, record.peer) != (
                state.role,
                state.session_id,
                state.peer,
            ):
                raise ValueError("the record is of another session, role or peer")
        if isinstance(event, Received) and event.message.session_id != state.session_id:
            raise ValueError("a message of another session")

    def _to(self, message: Message) -> SendTo:
        return SendTo(self._state.peer, message)


class Initiator(_Machine):
    """The side that proposes the payment; its lock is bounded by ``expires_at``.

    ``make_partial(head)`` builds I's half of the body at the locked chain head,
    or returns a reason not to; ``check_body(partial, body)`` is ``None`` when
    R's completed body is acceptable, else the reason; ``sign(body)`` is I's
    deterministic signature; ``make_record(body, own, peer)`` is I's chain record
    of the payment (deterministic too: the same bytes whenever it is made);
    ``verify_peer(body, signature)`` checks R's.
    """

    __slots__ = (
        "_check_body", "_make_partial", "_make_record", "_retry_interval", "_sign", "_verify_peer"
    )  # fmt: skip

    def __init__(
        self,
        session_id: SessionId,
        peer: AgentKey,
        expires_at: int,
        *,
        make_partial: Callable[[bytes], bytes | str],
        check_body: Callable[[bytes, bytes], str | None],
        sign: Callable[[bytes], bytes],
        make_record: Callable[[bytes, bytes, bytes], bytes],
        verify_peer: Callable[[bytes, bytes], bool],
        retry_interval: int = DEFAULT_RETRY_INTERVAL,
    ) -> None:
        _check_session_id(session_id)
        if retry_interval <= 0:
            raise ValueError("retry_interval must be positive")
        super().__init__(
            SessionState(Role.INITIATOR, Phase.IDLE, session_id, peer, expires_at=expires_at)
        )
        self._make_partial = make_partial
        self._check_body = check_body
        self._sign = sign
        self._make_record = make_record
        self._verify_peer = verify_peer
        self._retry_interval = retry_interval

    def __copy__(self) -> Self:
        new = object.__new__(type(self))
        new._state = self._state
        new._make_partial = self._make_partial
        new._check_body = self._check_body
        new._sign = self._sign
        new._make_record = self._make_record
        new._verify_peer = self._verify_peer
        new._retry_interval = self._retry_interval
        return new

    def start(self, now: int) -> Effects:
        """Begin a new session: ask for the lock (or give up at once if already expired)."""
        state = self._state
        if state.phase is not Phase.IDLE:
            raise LocalProtocolError(f"start() in phase {state.phase.name}")
        assert state.expires_at is not None
        if now >= state.expires_at:
            self._state = replace(state, phase=Phase.ABORTED, reason="expired before it started")
            return ()
        self._state = replace(state, phase=Phase.LOCKING)
        return (Lock(),)

    def handle(self, event: Event) -> Effects:
        """Take one event; return the effects the shell must carry out, in order."""
        self._check_event(event)
        state = self._state
        if isinstance(event, Restarted):
            return self._restart(event.record)
        if isinstance(event, Locked):
            return self._locked(event.now, event.head)
        if isinstance(event, LockRefused):
            self._state = replace(state, phase=Phase.ABORTED, reason=event.reason)
            return ()
        if isinstance(event, WriteFailed):
            return self._write_failed(event)
        if isinstance(event, Cancelled):
            return self._abort(event.reason) if state.phase is Phase.OFFERED else ()
        if isinstance(event, TimedOut):
            if state.owed is Phase.ABORTED and state.timer_at is not None:
                return self._abort(state.reason or "aborted")
            if state.phase is Phase.OFFERED and state.timer_at is not None:
                return self._abort("timed out")
            return ()
        if isinstance(event, DHTAnswered | Witnessed):
            raise LocalProtocolError("an initiator never queries the DHT")
        return self._received(event.now, event.message)

    def _locked(self, now: int, head: bytes) -> Effects:
        state = self._state
        expires_at = state.expires_at
        assert expires_at is not None
        partial = self._make_partial(head)
        if isinstance(partial, str) or now >= expires_at:
            reason = partial if isinstance(partial, str) else "expired before it was offered"
            self._state = replace(state, phase=Phase.ABORTED, reason=reason)
            return (Unlock(),)
        self._state = state = replace(
            state, phase=Phase.OFFERED, partial=partial, timer_at=expires_at
        )
        return (
            Persist(state.record(Phase.OFFERED)),
            SetTimer(expires_at),
            self._to(Offer(state.session_id, partial, expires_at)),
        )

    def _received(self, now: int, message: Message) -> Effects:
        state = self._state
        if isinstance(message, Accept):
            if state.phase is Phase.OFFERED:
                return self._accepted(now, message)
            if state.phase is Phase.COMMITTED:
                if message.body != state.body:
                    return (Reject("an Accept of another body after the commit", message),)
                return (self._to(self._complete()),)
            if state.owed is not None:
                return ()  # the abort is not durable yet: nothing may be said until it is
            if state.phase is Phase.ABORTED and state.partial is not None:
                return (self._to(Abort(state.session_id, _short(state.reason or "aborted"))),)
            return (Reject(f"an Accept in phase {state.phase.name}", message),)
        if isinstance(message, Decline):
            if state.phase is Phase.OFFERED:
                return self._abort(f"declined: {message.reason}")
            return ()  # a stale Decline: the session is decided already
        return (Reject(f"{type(message).__name__} is not for an initiator", message),)

    def _complete(self) -> Complete:
        state = self._state
        assert (
            state.body is not None
            and state.own_signature is not None
            and state.peer_signature is not None
        )
        record = self._make_record(state.body, state.own_signature, state.peer_signature)
        return Complete(state.session_id, state.own_signature, record)

    def _accepted(self, now: int, message: Accept) -> Effects:
        state = self._state
        assert state.expires_at is not None and state.partial is not None
        if now >= state.expires_at:
            return self._abort("the Accept came after the offer expired")
        if not self._verify_peer(message.body, message.signature):
            return (Reject("the responder's signature does not verify", message),)
        refusal = self._check_body(state.partial, message.body)
        if refusal is not None:
            return self._abort(f"refused: {refusal}")
        own = self._sign(message.body)
        self._state = state = replace(
            state,
            phase=Phase.COMMITTED,
            body=message.body,
            own_signature=own,
            peer_signature=message.signature,
            timer_at=None,
        )
        return (
            Commit(state.record(Phase.COMMITTED)),
            Unlock(),
            CancelTimer(),
            self._to(self._complete()),
        )

    def _abort(self, reason: str) -> Effects:
        self._state = state = replace(
            self._state, phase=Phase.ABORTED, reason=reason, timer_at=None, owed=None
        )
        return (
            Persist(state.record(Phase.ABORTED)),
            Unlock(),
            CancelTimer(),
            self._to(Abort(state.session_id, _short(reason))),
        )

    def _write_failed(self, event: WriteFailed) -> Effects:
        """A write that did not happen: end without a word, or owe the abort and retry it."""
        state = self._state
        status = event.record.status
        if status is Phase.OFFERED and state.phase is Phase.OFFERED:
            # nothing was sent: the session simply never happened
            reason = f"could not store the offer: {event.reason}"
            self._state = replace(state, phase=Phase.ABORTED, reason=reason, timer_at=None)
            return (Unlock(), CancelTimer())
        if status is Phase.COMMITTED and state.phase is Phase.COMMITTED:
            # the decision never reached the disk and nothing was said: abort instead
            self._state = replace(state, body=None, own_signature=None, peer_signature=None)
            return self._abort(f"could not write the payment: {event.reason}")
        if status is Phase.ABORTED and state.phase is Phase.ABORTED:
            at = event.now + self._retry_interval
            self._state = replace(state, owed=Phase.ABORTED, timer_at=at)
            return (SetTimer(at),)
        raise LocalProtocolError(f"WriteFailed({status.name}) in phase {state.phase.name}")

    def _restart(self, record: SessionRecord) -> Effects:
        if record.status is Phase.OFFERED:
            # undecided at the crash: the lock is gone, so decide now, durably, then say so
            reason = "the initiator restarted before deciding"
            self._state = state = replace(
                SessionState.from_record(record, Phase.ABORTED), reason=reason
            )
            return (
                Persist(state.record(Phase.ABORTED)),
                self._to(Abort(state.session_id, reason)),
            )
        self._state = SessionState.from_record(record, record.status)
        return ()


class Responder(_Machine):
    """The side that completes and signs first; once it has signed it waits for the outcome.

    ``complete(partial, head)`` fills R's position from the locked chain head
    and returns the full body, or a reason to decline; ``sign(body)`` is R's
    deterministic signature; ``verify_peer(body, signature)`` checks I's;
    ``read_record(body, record)`` is I's signature if ``record`` is I's valid
    chain record of ``body`` at I's position (else None).

    Offers are bounded in time: one already expired by more than
    ``tolerance`` (clocks differ), or expiring more than ``max_expiry`` (+
    ``tolerance``) from now, is declined before anything is locked.
    """

    __slots__ = (
        "_complete", "_max_expiry", "_read_record", "_retry_interval", "_sign", "_tolerance",
        "_verify_peer",
    )  # fmt: skip

    def __init__(
        self,
        session_id: SessionId,
        peer: AgentKey,
        *,
        complete: Callable[[bytes, bytes], bytes | str],
        sign: Callable[[bytes], bytes],
        verify_peer: Callable[[bytes, bytes], bool],
        read_record: Callable[[bytes, bytes], bytes | None],
        retry_interval: int = DEFAULT_RETRY_INTERVAL,
        tolerance: int = 0,
        max_expiry: int | None = None,
    ) -> None:
        _check_session_id(session_id)
        if retry_interval <= 0:
            raise ValueError("retry_interval must be positive")
        if tolerance < 0 or (max_expiry is not None and max_expiry <= 0):
            raise ValueError("tolerance must be >= 0 and max_expiry positive")
        super().__init__(SessionState(Role.RESPONDER, Phase.IDLE, session_id, peer))
        self._complete = complete
        self._sign = sign
        self._verify_peer = verify_peer
        self._read_record = read_record
        self._retry_interval = retry_interval
        self._tolerance = tolerance
        self._max_expiry = max_expiry

    def __copy__(self) -> Self:
        new = object.__new__(type(self))
        new._state = self._state
        new._complete = self._complete
        new._sign = self._sign
        new._verify_peer = self._verify_peer
        new._read_record = self._read_record
        new._retry_interval = self._retry_interval
        new._tolerance = self._tolerance
        new._max_expiry = self._max_expiry
        return new

    def handle(self, event: Event) -> Effects:
        """Take one event; return the effects the shell must carry out, in order."""
        self._check_event(event)
        state = self._state
        if isinstance(event, Restarted):
            return self._restart(event.now, event.record)
        if isinstance(event, Locked):
            return self._locked(event.now, event.head)
        if isinstance(event, LockRefused):
            return self._decline(event.reason, locked=False)
        if isinstance(event, WriteFailed):
            return self._write_failed(event)
        if isinstance(event, Cancelled):
            if state.phase is Phase.SIGNED and state.peer_signature is None and not state.owed:
                return self._learned_abort(event.reason)
            return ()  # I's signature is known (it committed), or nothing is held: nothing to do
        if isinstance(event, TimedOut):
            if state.timer_at is None:
                return ()
            if state.owed is not None:
                return self._retry_owed(event.now)
            if state.phase is Phase.SIGNED:
                return self._ask(event.now)
            return ()
        if isinstance(event, DHTAnswered):
            return self._dht(event)
        if isinstance(event, Witnessed):
            if state.phase is Phase.SIGNED and state.peer_signature is not None and not state.owed:
                return self._commit(state.peer_signature)
            return ()
        return self._received(event.now, event.message)

    def _expiry_problem(self, now: int, expires_at: int) -> str | None:
        if now >= expires_at + self._tolerance:
            return "the offer has expired"
        if self._max_expiry is not None and expires_at > now + self._max_expiry + self._tolerance:
            return "the offer expires later than the network allows"
        return None

    def _received(self, now: int, message: Message) -> Effects:
        state = self._state
        phase = state.phase
        if isinstance(message, Offer):
            if phase is Phase.IDLE:
                self._state = replace(
                    state,
                    phase=Phase.LOCKING,
                    partial=message.partial,
                    expires_at=message.expires_at,
                )
                problem = self._expiry_problem(now, message.expires_at)
                if problem is not None:
                    return self._decline(problem, locked=False)
                return (Lock(),)
            if phase is Phase.SIGNED:
                if message.partial != state.partial:
                    return (Reject("an Offer that changed after it was signed", message),)
                return (self._accept(),)
            return ()  # a late copy of an Offer already decided
        if isinstance(message, Complete):
            if phase is Phase.SIGNED:
                if state.peer_signature is not None:
                    return ()  # witnessing already (or owing the commit): nothing new
                assert state.body is not None
                if not self._verify_peer(state.body, message.signature):
                    return (Reject("the initiator's signature does not verify", message),)
                if self._read_record(state.body, message.record) != message.signature:
                    return (Reject("the initiator's record is not its record of the body", message),)
                return self._witness(now, message.signature, message.record)
            if phase is Phase.COMMITTED:
                return ()
            return (Reject(f"a Complete in phase {phase.name}", message),)
        if isinstance(message, Abort):
            if phase is Phase.SIGNED:
                if state.peer_signature is not None:
                    return (Reject("an Abort after the initiator's signature", message),)
                return self._learned_abort(f"aborted by the initiator: {message.reason}")
            if phase is Phase.IDLE:
                self._state = replace(state, phase=Phase.ABORTED, reason=message.reason)
                return ()
            if phase is Phase.COMMITTED:
                return (Reject("an Abort after the initiator's signature", message),)
            return ()
        return (Reject(f"{type(message).__name__} is not for a responder", message),)

    def _locked(self, now: int, head: bytes) -> Effects:
        state = self._state
        assert state.partial is not None and state.expires_at is not None
        problem = self._expiry_problem(now, state.expires_at)
        if problem is not None:
            return self._decline(problem, locked=True)
        body = self._complete(state.partial, head)
        if isinstance(body, str):
            return self._decline(body, locked=True)
        at = max(now, state.expires_at) + self._retry_interval
        self._state = state = replace(
            state, phase=Phase.SIGNED, body=body, own_signature=self._sign(body), timer_at=at
        )
        return (Persist(state.record(Phase.SIGNED)), self._accept(), SetTimer(at))

    def _decline(self, reason: str, *, locked: bool) -> Effects:
        self._state = state = replace(self._state, phase=Phase.ABORTED, reason=reason)
        decline = self._to(Decline(state.session_id, _short(reason)))
        return (Unlock(), decline) if locked else (decline,)

    def _accept(self) -> SendTo:
        state = self._state
        assert state.body is not None and state.own_signature is not None
        return self._to(Accept(state.session_id, state.body, state.own_signature))

    def _ask(self, now: int) -> Effects:
        at = now + self._retry_interval
        self._state = state = replace(self._state, timer_at=at)
        assert state.body is not None
        if state.peer_record is not None:
            return (Witness(state.peer_record), SetTimer(at))
        return (self._accept(), QueryDHT(state.body), SetTimer(at))

    def _witness(self, now: int, signature: bytes, record: bytes) -> Effects:
        """I's signature and record are known: have the record witnessed before committing."""
        at = now + self._retry_interval
        self._state = replace(
            self._state, peer_signature=signature, peer_record=record, timer_at=at
        )
        return (Witness(record), SetTimer(at))

    def _dht(self, answer: DHTAnswered) -> Effects:
        state = self._state
        if state.phase is not Phase.SIGNED or state.owed is not None:
            return ()
        assert state.body is not None
        if answer.position_taken:
            return self._learned_abort("the initiator used its position for another action")
        if answer.initiator_record is not None and state.peer_signature is None:
            signature = self._read_record(state.body, answer.initiator_record)
            if signature is None or not self._verify_peer(state.body, signature):
                return (Reject("the DHT's initiator record is not its record of the body"),)
            return self._witness(answer.now, signature, answer.initiator_record)
        return ()

    def _commit(self, peer_signature: bytes) -> Effects:
        self._state = state = replace(
            self._state,
            phase=Phase.COMMITTED,
            peer_signature=peer_signature,
            timer_at=None,
            owed=None,
        )
        return (Commit(state.record(Phase.COMMITTED)), Unlock(), CancelTimer())

    def _learned_abort(self, reason: str) -> Effects:
        self._state = state = replace(
            self._state, phase=Phase.ABORTED, reason=reason, timer_at=None, owed=None
        )
        return (Persist(state.record(Phase.ABORTED)), Unlock(), CancelTimer())

    def _write_failed(self, event: WriteFailed) -> Effects:
        """A write that did not happen: decline, or owe it and retry while the chain stays held."""
        state = self._state
        status = event.record.status
        at = event.now + self._retry_interval
        if status is Phase.SIGNED and state.phase is Phase.SIGNED and state.peer_signature is None:
            # the signature never reached the disk, so it must not leave: decline instead
            reason = f"could not store the signature: {event.reason}"
            self._state = replace(
                state, phase=Phase.ABORTED, reason=reason, timer_at=None, own_signature=None
            )
            return (Unlock(), CancelTimer(), self._to(Decline(state.session_id, _short(reason))))
        if status is Phase.COMMITTED and state.phase is Phase.COMMITTED:
            self._state = replace(state, phase=Phase.SIGNED, owed=Phase.COMMITTED, timer_at=at)
            return (SetTimer(at),)
        if status is Phase.ABORTED and state.phase is Phase.ABORTED:
            self._state = replace(state, owed=Phase.ABORTED, timer_at=at)
            return (SetTimer(at),)
        raise LocalProtocolError(f"WriteFailed({status.name}) in phase {state.phase.name}")

    def _retry_owed(self, now: int) -> Effects:
        state = self._state
        if state.owed is Phase.COMMITTED:
            assert state.peer_signature is not None
            return self._commit(state.peer_signature)
        return self._learned_abort(state.reason or "aborted")

    def _restart(self, now: int, record: SessionRecord) -> Effects:
        if record.status is Phase.SIGNED:
            # the SIGNED record still holds the chain: resume asking for the outcome
            self._state = SessionState.from_record(record, Phase.SIGNED)
            return self._ask(now)
        self._state = SessionState.from_record(record, record.status)
        return ()


# ---------------------------------------------------------------- wire form


def encode_message(message: Message) -> bytes:
    """The canonical CBOR form of a message: ``[tag, session_id, ...fields]``."""
    tag = _TAGS[type(message)]
    if isinstance(message, Offer):
        fields: list[object] = [message.partial, message.expires_at]
    elif isinstance(message, Accept):
        fields = [message.body, message.signature]
    elif isinstance(message, Complete):
        fields = [message.signature, message.record]
    else:
        fields = [message.reason]
    return encoding.encode([tag, message.session_id, *fields])


def decode_message(data: bytes) -> Message:
    """Read a message's canonical form; ``EncodingError`` with the reason if it is not one."""
    value = encoding.decode(data, max_size=2 * MAX_BODY_SIZE + MAX_RECORD_SIZE)
    if type(value) is not list or len(value) < 3:
        raise EncodingError("a countersigning message is a CBOR array [tag, session, ...]")
    tag, sid, *rest = value
    if type(tag) is not int:  # True == 1 in Python: a bool must not pass for a tag
        raise EncodingError(f"a message tag is an integer, not {tag!r}")
    try:
        session_id = SessionId(_bytes(sid))
        _check_session_id(session_id)
        if tag == 1 and len(rest) == 2:
            return Offer(session_id, _bytes(rest[0], MAX_BODY_SIZE), _int(rest[1]))
        if tag == 2 and len(rest) == 2:
            return Accept(session_id, _bytes(rest[0], MAX_BODY_SIZE), _sig(rest[1]))
        if tag == 3 and len(rest) == 1:
            return Decline(session_id, _text(rest[0]))
        if tag == 4 and len(rest) == 2:
            return Complete(session_id, _sig(rest[0]), _bytes(rest[1], MAX_RECORD_SIZE))
        if tag == 5 and len(rest) == 1:
            return Abort(session_id, _text(rest[0]))
    except (TypeError, ValueError) as exc:
        raise EncodingError(f"bad countersigning message: {exc}") from exc
    raise EncodingError(f"unknown countersigning message tag {tag!r} with {len(rest)} fields")


def _check_session_id(session_id: bytes) -> None:
    if type(session_id) is not bytes or len(session_id) != SESSION_ID_SIZE:
        raise ValueError(f"a session id is {SESSION_ID_SIZE} bytes")


def _short(reason: str) -> str:
    return reason if len(reason) <= MAX_REASON_LENGTH else reason[: MAX_REASON_LENGTH - 1] + "…"


def _int(value: object) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"expected a non-negative integer, got {value!r}")
    return value


def _bytes(value: object, limit: int = SESSION_ID_SIZE) -> bytes:
    if type(value) is not bytes or len(value) > limit:
        raise ValueError(f"expected at most {limit} bytes")
    return value


def _sig(value: object) -> bytes:
    if type(value) is not bytes or len(value) != SIGNATURE_SIZE:
        raise ValueError(f"a signature is {SIGNATURE_SIZE} bytes")
    return value


def _text(value: object) -> str:
    if type(value) is not str or len(value) > MAX_REASON_LENGTH:
        raise ValueError(f"a reason is text of at most {MAX_REASON_LENGTH} characters")
    return value
