"""The countersigning machines, one event at a time: each path, each restart, each bad message.

The payment rules here are a stand-in: I's partial is ``[payer_seq, amount]``
and the body is ``[payer_seq, amount, payee_seq]``, with real Ed25519
signatures under ``SIG_COUNTERSIGN``. ``test_countersign_model.py`` checks
every interleaving; these tests pin the exact effects of each step.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conode import encoding
from conode.crypto import SIG_COUNTERSIGN, Signer, verify
from conode.errors import EncodingError, LocalProtocolError
from conode.hashes import AgentKey
from conode.validation.countersign import (
    MAX_REASON_LENGTH,
    Abort,
    Accept,
    Cancelled,
    CancelTimer,
    Commit,
    Complete,
    Decline,
    DHTAnswered,
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
    Role,
    SendTo,
    SessionId,
    SessionRecord,
    SetTimer,
    TimedOut,
    Unlock,
    Witness,
    Witnessed,
    WriteFailed,
    decode_message,
    encode_message,
)

PAYER = Signer(bytes([1]) * 32)
PAYEE = Signer(bytes([2]) * 32)
MALLORY = Signer(bytes([3]) * 32)
KEY_I = AgentKey(PAYER.public_key)
KEY_R = AgentKey(PAYEE.public_key)
SID = SessionId(bytes(range(16)))
T0 = 1_700_000_000_000_000
EXPIRES = T0 + 30_000_000
RETRY = 5_000_000
HEAD_I = encoding.encode(7)  # the stand-in "chain head": the next seq
HEAD_R = encoding.encode(41)
PARTIAL = encoding.encode([7, 125])
BODY = encoding.encode([7, 125, 41])


def signer_of(signer: Signer) -> Callable[[bytes], bytes]:
    return lambda body: signer.sign(SIG_COUNTERSIGN, body)


def verifier_of(signer: Signer) -> Callable[[bytes, bytes], bool]:
    return lambda body, sig: verify(signer.public_key, SIG_COUNTERSIGN, body, sig)


def make_record(body: bytes, own: bytes, peer: bytes) -> bytes:
    """The stand-in for I's chain record of the payment: the body and I's signature."""
    return encoding.encode(["record", body, own])


def read_record(body: bytes, record: bytes) -> bytes | None:
    """I's signature, if ``record`` is the stand-in record of ``body``."""
    value = encoding.decode(record)
    if type(value) is list and len(value) == 3 and value[:2] == ["record", body]:
        return bytes(value[2])
    return None


def check_body(partial: bytes, body: bytes) -> str | None:
    mine, theirs = encoding.decode(partial), encoding.decode(body)
    if theirs[:2] != mine:
        return "the body does not extend my offer"
    return None if len(theirs) == 3 else "the body has no payee position"


def complete(partial: bytes, head: bytes) -> bytes | str:
    payer_seq, amount = encoding.decode(partial)
    if amount > 1_000:
        return "over my balance cap"
    return encoding.encode([payer_seq, amount, encoding.decode(head)])


def initiator(
    *,
    make_partial: Callable[[bytes], bytes | str] = lambda head: PARTIAL,
    check: Callable[[bytes, bytes], str | None] = check_body,
) -> Initiator:
    return Initiator(
        SID,
        KEY_R,
        EXPIRES,
        make_partial=make_partial,
        check_body=check,
        sign=signer_of(PAYER),
        make_record=make_record,
        verify_peer=verifier_of(PAYEE),
        retry_interval=RETRY,
    )


def responder(
    *, completer: Callable[[bytes, bytes], bytes | str] = complete, **bounds: int
) -> Responder:
    return Responder(
        SID,
        KEY_I,
        complete=completer,
        sign=signer_of(PAYEE),
        verify_peer=verifier_of(PAYER),
        read_record=read_record,
        **{"retry_interval": RETRY, **bounds},
    )


SIG_I = PAYER.sign(SIG_COUNTERSIGN, BODY)
RECORD_I = make_record(BODY, SIG_I, b"")
COMPLETE = Complete(SID, SIG_I, RECORD_I)


def offered() -> tuple[Initiator, Offer]:
    """An initiator that has sent its Offer, and the Offer."""
    i = initiator()
    assert i.start(T0) == (Lock(),)
    effects = i.handle(Locked(T0, HEAD_I))
    send = effects[-1]
    assert isinstance(send, SendTo) and isinstance(send.message, Offer)
    return i, send.message


def signed(offer: Offer | None = None) -> tuple[Responder, Accept]:
    """A responder that has signed and sent its Accept, and the Accept."""
    if offer is None:
        _, offer = offered()
    r = responder()
    assert r.handle(Received(T0, offer)) == (Lock(),)
    effects = r.handle(Locked(T0, HEAD_R))
    send = effects[1]
    assert isinstance(send, SendTo) and isinstance(send.message, Accept)
    return r, send.message


def phase(machine: Initiator | Responder) -> Phase:
    """The machine's phase (a call, so that mypy does not narrow it across events)."""
    return machine.phase


def sent(effects: tuple[object, ...]) -> list[Message]:
    return [effect.message for effect in effects if isinstance(effect, SendTo)]


# --- the happy path -------------------------------------------------------------------------------


def test_happy_path_effects_in_order() -> None:
    i = initiator()
    assert (i.phase, i.done) == (Phase.IDLE, False)
    assert i.start(T0) == (Lock(),)
    assert phase(i) is Phase.LOCKING

    persist, timer, send = i.handle(Locked(T0, HEAD_I))
    assert isinstance(persist, Persist)
    assert persist.record.status is Phase.OFFERED and persist.record.partial == PARTIAL
    assert timer == SetTimer(EXPIRES)
    assert send == SendTo(KEY_R, Offer(SID, PARTIAL, EXPIRES))
    assert phase(i) is Phase.OFFERED

    r = responder()
    assert r.handle(Received(T0 + 1, send.message)) == (Lock(),)
    persist_r, accept, timer_r = r.handle(Locked(T0 + 1, HEAD_R))
    # persist before you speak: the signature is on disk before the Accept leaves
    assert isinstance(persist_r, Persist) and persist_r.record.status is Phase.SIGNED
    sig_r = PAYEE.sign(SIG_COUNTERSIGN, BODY)
    assert persist_r.record.body == BODY and persist_r.record.own_signature == sig_r
    assert accept == SendTo(KEY_I, Accept(SID, BODY, sig_r))
    assert timer_r == SetTimer(EXPIRES + RETRY)
    assert phase(r) is Phase.SIGNED and not r.done

    commit, unlock, cancel, complete_ = i.handle(Received(T0 + 2, accept.message))
    sig_i = PAYER.sign(SIG_COUNTERSIGN, BODY)
    assert isinstance(commit, Commit)
    assert commit.record.status is Phase.COMMITTED
    assert (commit.record.body, commit.record.own_signature, commit.record.peer_signature) == (
        BODY,
        sig_i,
        sig_r,
    )
    assert (unlock, cancel) == (Unlock(), CancelTimer())
    assert complete_ == SendTo(KEY_R, Complete(SID, sig_i, make_record(BODY, sig_i, sig_r)))
    assert phase(i) is Phase.COMMITTED and i.done

    # R commits only once I's record is witnessed: I cannot have signed the position over twice
    witness, timer_w = r.handle(Received(T0 + 3, complete_.message))
    assert witness == Witness(make_record(BODY, sig_i, sig_r))
    assert timer_w == SetTimer(T0 + 3 + RETRY)
    assert phase(r) is Phase.SIGNED and not r.done
    commit_r, unlock_r, cancel_r = r.handle(Witnessed(T0 + 4))
    assert isinstance(commit_r, Commit)
    assert (commit_r.record.own_signature, commit_r.record.peer_signature) == (sig_r, sig_i)
    assert (unlock_r, cancel_r) == (Unlock(), CancelTimer())
    assert phase(r) is Phase.COMMITTED and r.done


def test_the_responders_signature_is_deterministic() -> None:
    """A responder that forgot (crashed before persisting) signs the same Accept again."""
    _, offer = offered()
    _, first = signed(offer)
    _, again = signed(offer)
    assert first == again


# --- refusals -------------------------------------------------------------------------------------


def test_initiator_refuses_a_body_and_tells_the_responder() -> None:
    i = initiator(check=lambda partial, body: "the amount changed")
    i.start(T0)
    i.handle(Locked(T0, HEAD_I))
    r, accept = signed()
    effects = i.handle(Received(T0, accept))
    persist, unlock, cancel, abort = effects
    assert isinstance(persist, Persist) and persist.record.status is Phase.ABORTED
    assert (unlock, cancel) == (Unlock(), CancelTimer())
    assert abort == SendTo(KEY_R, Abort(SID, "refused: the amount changed"))
    assert i.phase is Phase.ABORTED
    assert not any(isinstance(effect, Commit) for effect in effects)

    learned = r.handle(Received(T0, abort.message))
    assert isinstance(learned[0], Persist) and learned[0].record.status is Phase.ABORTED
    assert learned[1:] == (Unlock(), CancelTimer())
    assert r.phase is Phase.ABORTED


def test_responder_declines_a_body_it_cannot_complete() -> None:
    i, _ = offered()
    big = Offer(SID, encoding.encode([7, 5_000]), EXPIRES)
    r = responder()
    r.handle(Received(T0, big))
    assert r.handle(Locked(T0, HEAD_R)) == (
        Unlock(),
        SendTo(KEY_I, Decline(SID, "over my balance cap")),
    )
    assert r.phase is Phase.ABORTED

    effects = i.handle(Received(T0, Decline(SID, "over my balance cap")))
    assert isinstance(effects[0], Persist) and effects[0].record.status is Phase.ABORTED
    assert effects[0].record.reason == "declined: over my balance cap"
    # I says Abort even so: a stale Decline may race a later Accept of a restarted R
    assert sent(effects) == [Abort(SID, "declined: over my balance cap")]


def test_responder_busy_declines_without_unlocking() -> None:
    _, offer = offered()
    r = responder()
    r.handle(Received(T0, offer))
    assert r.handle(LockRefused(T0, "busy")) == (SendTo(KEY_I, Decline(SID, "busy")),)
    assert r.phase is Phase.ABORTED
    assert r.handle(Received(T0, offer)) == ()  # a late copy of the Offer changes nothing


def test_initiator_that_cannot_lock_or_build_gives_up_quietly() -> None:
    i = initiator()
    i.start(T0)
    assert i.handle(LockRefused(T0, "busy")) == ()
    assert i.phase is Phase.ABORTED and i.state.reason == "busy"

    j = initiator(make_partial=lambda head: "not a member")
    j.start(T0)
    assert j.handle(Locked(T0, HEAD_I)) == (Unlock(),)
    assert j.phase is Phase.ABORTED and j.state.reason == "not a member"


def test_long_reasons_are_cut_for_the_wire() -> None:
    r = responder(completer=lambda partial, head: "x" * 1000)
    _, offer = offered()
    r.handle(Received(T0, offer))
    _, decline = r.handle(Locked(T0, HEAD_R))
    assert isinstance(decline, SendTo) and isinstance(decline.message, Decline)
    assert len(decline.message.reason) == MAX_REASON_LENGTH
    decode_message(encode_message(decline.message))


# --- timeouts and expiry --------------------------------------------------------------------------


def test_initiator_times_out_then_refuses_the_late_accept() -> None:
    i, offer = offered()
    r, accept = signed(offer)
    effects = i.handle(TimedOut(EXPIRES))
    assert isinstance(effects[0], Persist) and effects[0].record.status is Phase.ABORTED
    assert effects[1:] == (Unlock(), CancelTimer(), SendTo(KEY_R, Abort(SID, "timed out")))

    late = i.handle(Received(EXPIRES + 1, accept))
    assert late == (SendTo(KEY_R, Abort(SID, "timed out")),)
    assert i.phase is Phase.ABORTED
    assert r.handle(Received(EXPIRES + 2, late[0].message))[1] == Unlock()


def test_an_accept_after_expiry_aborts_even_before_the_timer() -> None:
    i, offer = offered()
    _, accept = signed(offer)
    effects = i.handle(Received(EXPIRES, accept))
    assert not any(isinstance(effect, Commit) for effect in effects)
    assert i.phase is Phase.ABORTED


def test_start_after_expiry_does_nothing() -> None:
    i = initiator()
    assert i.start(EXPIRES) == ()
    assert i.phase is Phase.ABORTED


def test_responder_declines_an_expired_offer_without_locking() -> None:
    r = responder()
    offer = Offer(SID, PARTIAL, EXPIRES)
    assert r.handle(Received(EXPIRES, offer)) == (
        SendTo(KEY_I, Decline(SID, "the offer has expired")),
    )
    assert r.phase is Phase.ABORTED


def test_signed_responder_asks_again_until_it_learns() -> None:
    r, accept = signed()
    for k in range(3):
        now = EXPIRES + RETRY * (k + 1)
        assert r.handle(TimedOut(now)) == (
            SendTo(KEY_I, accept),
            QueryDHT(BODY),
            SetTimer(now + RETRY),
        )
        assert r.phase is Phase.SIGNED  # its lock is not bounded by time


def test_timeouts_after_the_end_are_ignored() -> None:
    i, offer = offered()
    r, accept = signed(offer)
    complete_ = sent(i.handle(Received(T0, accept)))[0]
    r.handle(Received(T0, complete_))
    r.handle(Witnessed(T0))
    assert i.handle(TimedOut(EXPIRES)) == ()
    assert r.handle(TimedOut(EXPIRES + RETRY)) == ()
    assert responder().handle(TimedOut(T0)) == ()


# --- resolution through the DHT -------------------------------------------------------------------


def test_dht_record_is_witnessed_then_commits_the_waiting_responder() -> None:
    r, _ = signed()
    effects = r.handle(DHTAnswered(EXPIRES, initiator_record=RECORD_I))
    assert effects == (Witness(RECORD_I), SetTimer(EXPIRES + RETRY))
    effects = r.handle(Witnessed(EXPIRES + 1))
    assert isinstance(effects[0], Commit) and effects[0].record.peer_signature == SIG_I
    assert r.phase is Phase.COMMITTED


def test_dht_forged_record_is_rejected() -> None:
    r, _ = signed()
    forged = make_record(BODY, MALLORY.sign(SIG_COUNTERSIGN, BODY), b"")
    for record in (forged, make_record(PARTIAL, SIG_I, b"")):
        effects = r.handle(DHTAnswered(EXPIRES, initiator_record=record))
        assert len(effects) == 1 and isinstance(effects[0], Reject)
        assert r.phase is Phase.SIGNED
    assert r.handle(Witnessed(EXPIRES)) == ()  # nothing is being witnessed: nothing commits


def test_dht_taken_position_releases_the_responder() -> None:
    r, _ = signed()
    effects = r.handle(DHTAnswered(EXPIRES, position_taken=True))
    assert isinstance(effects[0], Persist) and effects[0].record.status is Phase.ABORTED
    assert effects[1:] == (Unlock(), CancelTimer())


def test_dht_that_knows_nothing_changes_nothing() -> None:
    r, _ = signed()
    assert r.handle(DHTAnswered(EXPIRES)) == ()
    assert r.phase is Phase.SIGNED
    done = responder()
    assert done.handle(DHTAnswered(EXPIRES, position_taken=True)) == ()


# --- restarts -------------------------------------------------------------------------------------


def persisted(effects: tuple[object, ...]) -> SessionRecord:
    (record,) = [e.record for e in effects if isinstance(e, Persist | Commit)]
    return record


def test_initiator_restarted_undecided_aborts_durably_then_says_so() -> None:
    i = initiator()
    i.start(T0)
    record = persisted(i.handle(Locked(T0, HEAD_I)))
    _, accept = signed()

    again = initiator()
    effects = again.handle(Restarted(T0 + 5, record))
    assert isinstance(effects[0], Persist) and effects[0].record.status is Phase.ABORTED
    assert sent(effects) == [Abort(SID, "the initiator restarted before deciding")]
    assert not any(isinstance(effect, Unlock) for effect in effects)  # nothing held after a crash
    assert again.handle(Received(T0 + 6, accept)) == (
        SendTo(KEY_R, Abort(SID, "the initiator restarted before deciding")),
    )


def test_initiator_restarted_committed_resends_complete_when_asked() -> None:
    i, offer = offered()
    _, accept = signed(offer)
    effects = i.handle(Received(T0, accept))
    record = persisted(effects)

    again = initiator()
    assert again.handle(Restarted(T0, record)) == ()
    assert again.phase is Phase.COMMITTED
    assert sent(again.handle(Received(T0, accept))) == sent(effects)
    other = Accept(SID, encoding.encode([7, 125, 42]), accept.signature)
    (reject,) = again.handle(Received(T0, other))
    assert isinstance(reject, Reject)


def test_initiator_restarted_aborted_answers_abort() -> None:
    i, offer = offered()
    _, accept = signed(offer)
    record = persisted(i.handle(TimedOut(EXPIRES)))
    again = initiator()
    assert again.handle(Restarted(EXPIRES, record)) == ()
    assert again.handle(Received(EXPIRES, accept)) == (SendTo(KEY_R, Abort(SID, "timed out")),)


def test_responder_restarted_signed_resumes_resolution() -> None:
    i, offer = offered()
    r = responder()
    r.handle(Received(T0, offer))
    effects = r.handle(Locked(T0, HEAD_R))
    record = persisted(effects)

    again = responder()
    resumed = again.handle(Restarted(T0 + 9, record))
    assert resumed == (SendTo(KEY_I, sent(effects)[0]), QueryDHT(BODY), SetTimer(T0 + 9 + RETRY))
    assert again.phase is Phase.SIGNED
    complete_ = sent(i.handle(Received(T0 + 10, sent(resumed)[0])))[0]
    assert isinstance(again.handle(Received(T0 + 11, complete_))[0], Witness)
    assert isinstance(again.handle(Witnessed(T0 + 12))[0], Commit)


@pytest.mark.parametrize("status", [Phase.COMMITTED, Phase.ABORTED])
def test_responder_restarted_final_does_nothing(status: Phase) -> None:
    r, _ = signed()
    if status is Phase.COMMITTED:
        r.handle(Received(T0, COMPLETE))
        record = persisted(r.handle(Witnessed(T0)))
    else:
        record = persisted(r.handle(Received(T0, Abort(SID, "no"))))
    again = responder()
    assert again.handle(Restarted(T0, record)) == ()
    assert again.phase is status


def test_restarted_checks_the_record_and_the_phase() -> None:
    r, _ = signed()
    record = r.state.record(Phase.SIGNED)
    with pytest.raises(ValueError, match="another session"):
        initiator().handle(Restarted(T0, record))
    other = Responder(
        SessionId(bytes(16)),
        KEY_I,
        complete=complete,
        sign=signer_of(PAYEE),
        verify_peer=verifier_of(PAYER),
        read_record=read_record,
    )
    with pytest.raises(ValueError, match="another session"):
        other.handle(Restarted(T0, record))
    with pytest.raises(LocalProtocolError):
        r.handle(Restarted(T0, record))


# --- duplicates, late and misdirected messages ----------------------------------------------------


def test_duplicate_offer_to_a_signed_responder_resends_the_same_accept() -> None:
    _, offer = offered()
    r, accept = signed(offer)
    assert r.handle(Received(T0, offer)) == (SendTo(KEY_I, accept),)
    changed = Offer(SID, encoding.encode([7, 999]), EXPIRES)
    (reject,) = r.handle(Received(T0, changed))
    assert isinstance(reject, Reject)


def test_duplicate_complete_and_accept_are_harmless() -> None:
    i, offer = offered()
    r, accept = signed(offer)
    first = i.handle(Received(T0, accept))
    complete_ = sent(first)[0]
    r.handle(Received(T0, complete_))
    assert r.handle(Received(T0, complete_)) == ()  # already being witnessed
    r.handle(Witnessed(T0))
    assert r.handle(Received(T0, complete_)) == ()
    assert r.handle(Received(T0, offer)) == ()
    assert i.handle(Received(T0, accept)) == (SendTo(KEY_R, complete_),)
    assert i.handle(Received(T0, Decline(SID, "stale"))) == ()
    assert i.phase is Phase.COMMITTED and r.phase is Phase.COMMITTED


def test_abort_before_the_offer_makes_the_responder_ignore_it() -> None:
    _, offer = offered()
    r = responder()
    assert r.handle(Received(T0, Abort(SID, "timed out"))) == ()
    assert r.phase is Phase.ABORTED
    assert r.handle(Received(T0, offer)) == ()


def test_messages_that_cannot_be_honest_are_rejected() -> None:
    i, offer = offered()
    r, accept = signed(offer)
    to_initiator: tuple[Message, ...] = (offer, COMPLETE, Abort(SID, "x"))
    for message in to_initiator:
        (reject,) = i.handle(Received(T0, message))
        assert isinstance(reject, Reject) and reject.message == message
    to_responder: tuple[Message, ...] = (accept, Decline(SID, "x"))
    for message in to_responder:
        (reject,) = r.handle(Received(T0, message))
        assert isinstance(reject, Reject)
    (reject,) = responder().handle(Received(T0, COMPLETE))
    assert isinstance(reject, Reject)
    r.handle(Received(T0, COMPLETE))
    (reject,) = r.handle(Received(T0, Abort(SID, "lie")))  # I signed: an Abort now is a lie
    assert isinstance(reject, Reject) and r.phase is Phase.SIGNED
    aborted, _ = signed(offer)
    aborted.handle(Received(T0, Abort(SID, "no")))
    (reject,) = aborted.handle(Received(T0, COMPLETE))
    assert isinstance(reject, Reject)
    (reject,) = initiator().handle(Received(T0, accept))
    assert isinstance(reject, Reject)


# --- forged signatures ----------------------------------------------------------------------------


def test_forged_responder_signature_is_rejected_and_the_session_goes_on() -> None:
    i, offer = offered()
    _, accept = signed(offer)
    forged = Accept(SID, BODY, MALLORY.sign(SIG_COUNTERSIGN, BODY))
    (reject,) = i.handle(Received(T0, forged))
    assert isinstance(reject, Reject) and "signature" in reject.reason
    assert i.phase is Phase.OFFERED
    assert isinstance(i.handle(Received(T0, accept))[0], Commit)


def test_forged_initiator_signature_is_rejected_and_the_responder_waits() -> None:
    r, _ = signed()
    # right key, wrong body; then wrong key, right body
    for sig in (
        PAYER.sign(SIG_COUNTERSIGN, PARTIAL),
        MALLORY.sign(SIG_COUNTERSIGN, BODY),
        PAYER.sign(b"conode/message/v1\x00", BODY),
    ):
        (reject,) = r.handle(Received(T0, Complete(SID, sig, make_record(BODY, sig, b""))))
        assert isinstance(reject, Reject)
        assert r.phase is Phase.SIGNED
    # the right signature with a record that is not I's record of this body
    (reject,) = r.handle(Received(T0, Complete(SID, SIG_I, make_record(PARTIAL, SIG_I, b""))))
    assert isinstance(reject, Reject) and "record" in reject.reason
    assert r.handle(Received(T0, COMPLETE))[0] == Witness(RECORD_I)


# --- the shell's contract -------------------------------------------------------------------------


def test_events_out_of_phase_are_local_protocol_errors() -> None:
    i = initiator()
    with pytest.raises(LocalProtocolError):
        i.handle(Locked(T0, HEAD_I))
    i.start(T0)
    with pytest.raises(LocalProtocolError):
        i.start(T0)
    with pytest.raises(LocalProtocolError):
        i.handle(TimedOut(T0))  # the Lock must be answered first
    i.handle(Locked(T0, HEAD_I))
    with pytest.raises(LocalProtocolError):
        i.handle(DHTAnswered(T0))
    with pytest.raises(LocalProtocolError):
        i.handle(LockRefused(T0, "late"))


def test_a_message_of_another_session_is_a_caller_bug() -> None:
    i, _ = offered()
    with pytest.raises(ValueError, match="another session"):
        i.handle(Received(T0, Decline(SessionId(bytes(16)), "x")))


def test_constructor_checks() -> None:
    with pytest.raises(ValueError):
        Responder(
            SessionId(b"short"),
            KEY_I,
            complete=complete,
            sign=signer_of(PAYEE),
            verify_peer=verifier_of(PAYER),
            read_record=read_record,
        )
    for bad in ({"retry_interval": 0}, {"tolerance": -1}, {"max_expiry": 0}):
        with pytest.raises(ValueError):
            responder(**bad)


def test_a_copy_is_independent() -> None:
    i, offer = offered()
    twin = copy.copy(i)
    i.handle(TimedOut(EXPIRES))
    assert twin.phase is Phase.OFFERED and i.phase is Phase.ABORTED
    _, accept = signed(offer)
    assert isinstance(twin.handle(Received(T0, accept))[0], Commit)


# --- wire and store forms -------------------------------------------------------------------------

SIG = bytes(64)


def test_every_message_round_trips() -> None:
    for message in (
        Offer(SID, PARTIAL, EXPIRES),
        Accept(SID, BODY, SIG),
        Decline(SID, "busy"),
        Complete(SID, SIG, b"a record"),
        Abort(SID, "timed out"),
    ):
        data = encode_message(message)
        assert decode_message(data) == message
        assert encoding.decode(data)[1] == SID


@pytest.mark.parametrize(
    "value",
    [
        [9, SID, "x"],  # unknown tag
        [1, SID, PARTIAL],  # too few fields
        [2, SID, BODY, b"short"],  # a signature is 64 bytes
        [4, bytes(15), SIG, b"r"],  # a session id is 16 bytes
        [4, SID, SIG],  # a Complete carries I's record
        [1, SID, PARTIAL, -1],  # negative time
        [3, SID, "x" * (MAX_REASON_LENGTH + 1)],
        [5, SID, 7],
        [True, SID, PARTIAL, EXPIRES],  # true is not the tag 1
        {"tag": 1},
    ],
)
def test_bad_messages_are_encoding_errors(value: object) -> None:
    with pytest.raises(EncodingError):
        decode_message(encoding.encode(value))


def test_non_canonical_message_bytes_are_refused() -> None:
    data = encode_message(Complete(SID, SIG, b"r"))
    with pytest.raises(EncodingError):
        decode_message(data + b"\x00")


@given(
    st.binary(min_size=16, max_size=16),
    st.binary(max_size=200),
    st.integers(min_value=0, max_value=2**63 - 1),
    st.binary(min_size=64, max_size=64),
    st.text(max_size=MAX_REASON_LENGTH),
)
def test_messages_round_trip(sid: bytes, blob: bytes, at: int, sig: bytes, text: str) -> None:
    session = SessionId(sid)
    for message in (
        Offer(session, blob, at),
        Accept(session, blob, sig),
        Decline(session, text),
        Complete(session, sig, blob),
        Abort(session, text),
    ):
        assert decode_message(encode_message(message)) == message


def test_records_round_trip_and_check_their_shape() -> None:
    i, offer = offered()
    r, accept = signed(offer)
    records = [i.state.record(Phase.OFFERED), r.state.record(Phase.SIGNED)]
    records.append(persisted(i.handle(Received(T0, accept))))
    records.append(persisted(r.handle(Received(T0, Abort(SID, "x")))))
    for record in records:
        assert SessionRecord.from_bytes(record.to_bytes()) == record
    with pytest.raises(ValueError, match="cannot be SIGNED"):
        SessionRecord(Role.INITIATOR, Phase.SIGNED, SID, KEY_R, EXPIRES, PARTIAL, BODY, SIG)
    with pytest.raises(ValueError, match="body and its signature"):
        SessionRecord(Role.RESPONDER, Phase.SIGNED, SID, KEY_I, EXPIRES, PARTIAL)
    with pytest.raises(ValueError, match="both signatures"):
        SessionRecord(Role.RESPONDER, Phase.COMMITTED, SID, KEY_I, EXPIRES, PARTIAL, BODY, SIG)
    bad = encoding.encode([1, 1, 3, SID, KEY_R.to_bytes(), EXPIRES, PARTIAL, BODY, SIG, None, None])
    with pytest.raises(EncodingError, match="cannot be SIGNED"):
        SessionRecord.from_bytes(bad)
    with pytest.raises(EncodingError):
        SessionRecord.from_bytes(encoding.encode([2, 1]))


# --- offers bounded in time, clocks that differ ---------------------------------------------------


def test_an_offer_expiring_beyond_the_networks_cap_is_declined_before_locking() -> None:
    r = responder(max_expiry=60_000_000, tolerance=10_000_000)
    far = Offer(SID, PARTIAL, T0 + 100 * 365 * 86_400_000_000)  # a hundred years
    assert r.handle(Received(T0, far)) == (
        SendTo(KEY_I, Decline(SID, "the offer expires later than the network allows")),
    )
    assert r.phase is Phase.ABORTED  # nothing was locked, nothing is held
    within = responder(max_expiry=60_000_000, tolerance=10_000_000)
    assert within.handle(Received(T0, Offer(SID, PARTIAL, T0 + 70_000_000))) == (Lock(),)


def test_a_payee_whose_clock_runs_ahead_within_the_tolerance_still_signs() -> None:
    ahead = EXPIRES + 4 * 60_000_000  # the payee's clock is four minutes ahead of the payer's
    strict = responder()
    assert sent(strict.handle(Received(ahead, Offer(SID, PARTIAL, EXPIRES)))) == [
        Decline(SID, "the offer has expired")
    ]
    tolerant = responder(tolerance=5 * 60_000_000)
    assert tolerant.handle(Received(ahead, Offer(SID, PARTIAL, EXPIRES))) == (Lock(),)
    assert isinstance(tolerant.handle(Locked(ahead, HEAD_R))[0], Persist)
    assert tolerant.phase is Phase.SIGNED


# --- witnesses ------------------------------------------------------------------------------------


def test_a_witness_holding_another_record_of_the_payer_releases_the_payee() -> None:
    """The payer signed its position over to someone else first: this payee never commits."""
    r, _ = signed()
    assert r.handle(Received(T0, COMPLETE))[0] == Witness(RECORD_I)
    effects = r.handle(DHTAnswered(T0 + 1, position_taken=True))
    assert isinstance(effects[0], Persist) and effects[0].record.status is Phase.ABORTED
    assert effects[1:] == (Unlock(), CancelTimer())
    assert not any(isinstance(e, Commit) for e in effects)
    assert r.handle(Witnessed(T0 + 2)) == ()  # a late witness answer commits nothing


def test_a_payee_asks_the_witnesses_again_until_they_answer() -> None:
    r, _ = signed()
    r.handle(Received(T0, COMPLETE))
    for k in range(3):
        now = T0 + RETRY * (k + 1)
        assert r.handle(TimedOut(now)) == (Witness(RECORD_I), SetTimer(now + RETRY))
    assert isinstance(r.handle(Witnessed(T0 + 4 * RETRY))[0], Commit)


# --- writes that fail -----------------------------------------------------------------------------


def failed(effects: tuple[object, ...], now: int = T0) -> WriteFailed:
    """The WriteFailed the shell feeds when the first write of ``effects`` fails."""
    write = next(e for e in effects if isinstance(e, Persist | Commit))
    return WriteFailed(now, write.record, "disk full")


def test_an_offer_that_cannot_be_stored_is_never_sent() -> None:
    i = initiator()
    i.start(T0)
    effects = i.handle(Locked(T0, HEAD_I))
    after = i.handle(failed(effects))
    assert after == (Unlock(), CancelTimer())
    assert i.phase is Phase.ABORTED and i.done and "could not store" in (i.state.reason or "")


def test_a_signature_that_cannot_be_stored_is_declined_not_sent() -> None:
    _, offer = offered()
    r = responder()
    r.handle(Received(T0, offer))
    effects = r.handle(Locked(T0, HEAD_R))
    after = r.handle(failed(effects))
    assert after[:2] == (Unlock(), CancelTimer())
    (decline,) = sent(after)
    assert isinstance(decline, Decline) and "could not store" in decline.reason
    assert not any(isinstance(m, Accept) for m in sent(after))
    assert r.phase is Phase.ABORTED and r.state.own_signature is None


def test_a_payers_commit_that_cannot_be_written_becomes_an_abort() -> None:
    """The half payment of a full disk: the payer never says Complete for an unwritten commit."""
    i, offer = offered()
    _, accept = signed(offer)
    effects = i.handle(Received(T0, accept))
    assert isinstance(effects[0], Commit)
    after = i.handle(failed(effects))
    assert isinstance(after[0], Persist) and after[0].record.status is Phase.ABORTED
    assert after[0].record.body is None and after[0].record.own_signature is None
    assert after[1:3] == (Unlock(), CancelTimer())
    (abort,) = sent(after)
    assert isinstance(abort, Abort) and "could not write" in abort.reason
    assert not any(isinstance(m, Complete) for m in sent(after))
    # a re-sent Accept now gets Abort, never Complete
    assert sent(i.handle(Received(T0 + 1, accept))) == [abort]


def test_an_abort_that_cannot_be_written_is_retried_and_nothing_is_said_until_it_is() -> None:
    i, offer = offered()
    _, accept = signed(offer)
    effects = i.handle(TimedOut(EXPIRES))
    assert i.handle(failed(effects, EXPIRES)) == (SetTimer(EXPIRES + RETRY),)
    assert not i.done  # the abort is owed
    assert i.handle(Received(EXPIRES + 1, accept)) == ()  # no Abort before it is durable
    retry = i.handle(TimedOut(EXPIRES + RETRY))
    assert isinstance(retry[0], Persist) and retry[0].record.status is Phase.ABORTED
    assert retry[1:3] == (Unlock(), CancelTimer()) and sent(retry) == [Abort(SID, "timed out")]
    assert i.done


def test_a_payees_commit_that_cannot_be_written_is_retried_holding_the_chain() -> None:
    r, _ = signed()
    r.handle(Received(T0, COMPLETE))
    effects = r.handle(Witnessed(T0))
    assert r.handle(failed(effects)) == (SetTimer(T0 + RETRY),)
    assert r.phase is Phase.SIGNED and not r.done
    assert r.handle(Received(T0, COMPLETE)) == ()
    assert r.handle(DHTAnswered(T0, position_taken=True)) == ()  # it owes the commit now
    retry = r.handle(TimedOut(T0 + RETRY))
    assert isinstance(retry[0], Commit) and retry[1:] == (Unlock(), CancelTimer())
    assert r.done


def test_a_payees_abort_that_cannot_be_written_is_retried() -> None:
    r, _ = signed()
    effects = r.handle(Received(T0, Abort(SID, "no")))
    assert r.handle(failed(effects)) == (SetTimer(T0 + RETRY),)
    assert not r.done
    retry = r.handle(TimedOut(T0 + RETRY))
    assert isinstance(retry[0], Persist) and retry[0].record.status is Phase.ABORTED
    assert retry[1:] == (Unlock(), CancelTimer()) and r.done


def test_a_write_failure_out_of_phase_is_a_local_protocol_error() -> None:
    i, _ = offered()
    r, _ = signed()
    with pytest.raises(LocalProtocolError):
        i.handle(WriteFailed(T0, r.state.record(Phase.SIGNED), "x"))


# --- an operator gives a session up -----------------------------------------------------------


def test_an_operator_releases_an_undecided_payer_which_aborts_and_says_so() -> None:
    i, _ = offered()
    effects = i.handle(Cancelled(T0, "released by the operator"))
    assert isinstance(effects[0], Persist) and effects[0].record.status is Phase.ABORTED
    assert sent(effects) == [Abort(SID, "released by the operator")]


def test_an_operator_may_release_a_payee_that_does_not_know_the_payers_signature() -> None:
    r, _ = signed()
    effects = r.handle(Cancelled(T0, "released by the operator"))
    assert isinstance(effects[0], Persist) and effects[0].record.status is Phase.ABORTED
    assert effects[1:] == (Unlock(), CancelTimer())


def test_a_payee_holding_the_payers_committed_record_is_never_released() -> None:
    r, _ = signed()
    r.handle(Received(T0, COMPLETE))
    assert r.handle(Cancelled(T0, "released by the operator")) == ()
    assert r.phase is Phase.SIGNED
    assert isinstance(r.handle(Witnessed(T0))[0], Commit)
