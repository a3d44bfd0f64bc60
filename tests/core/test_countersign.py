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
        verify_peer=verifier_of(PAYEE),
    )


def responder(*, completer: Callable[[bytes, bytes], bytes | str] = complete) -> Responder:
    return Responder(
        SID,
        KEY_I,
        complete=completer,
        sign=signer_of(PAYEE),
        verify_peer=verifier_of(PAYER),
        retry_interval=RETRY,
    )


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
    assert complete_ == SendTo(KEY_R, Complete(SID, sig_i))
    assert phase(i) is Phase.COMMITTED and i.done

    commit_r, unlock_r, cancel_r = r.handle(Received(T0 + 3, complete_.message))
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
    assert i.handle(TimedOut(EXPIRES)) == ()
    assert r.handle(TimedOut(EXPIRES + RETRY)) == ()
    assert responder().handle(TimedOut(T0)) == ()


# --- resolution through the DHT -------------------------------------------------------------------


def test_dht_signature_commits_the_waiting_responder() -> None:
    r, _ = signed()
    sig_i = PAYER.sign(SIG_COUNTERSIGN, BODY)
    effects = r.handle(DHTAnswered(EXPIRES, initiator_signature=sig_i))
    assert isinstance(effects[0], Commit) and effects[0].record.peer_signature == sig_i
    assert r.phase is Phase.COMMITTED


def test_dht_forged_signature_is_rejected() -> None:
    r, _ = signed()
    forged = MALLORY.sign(SIG_COUNTERSIGN, BODY)
    effects = r.handle(DHTAnswered(EXPIRES, initiator_signature=forged))
    assert len(effects) == 1 and isinstance(effects[0], Reject)
    assert r.phase is Phase.SIGNED


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
    assert isinstance(again.handle(Received(T0 + 11, complete_))[0], Commit)


@pytest.mark.parametrize("status", [Phase.COMMITTED, Phase.ABORTED])
def test_responder_restarted_final_does_nothing(status: Phase) -> None:
    r, _ = signed()
    if status is Phase.COMMITTED:
        record = persisted(r.handle(Received(T0, Complete(SID, PAYER.sign(SIG_COUNTERSIGN, BODY)))))
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
    sig_i = PAYER.sign(SIG_COUNTERSIGN, BODY)
    to_initiator: tuple[Message, ...] = (offer, Complete(SID, sig_i), Abort(SID, "x"))
    for message in to_initiator:
        (reject,) = i.handle(Received(T0, message))
        assert isinstance(reject, Reject) and reject.message == message
    to_responder: tuple[Message, ...] = (accept, Decline(SID, "x"))
    for message in to_responder:
        (reject,) = r.handle(Received(T0, message))
        assert isinstance(reject, Reject)
    (reject,) = responder().handle(Received(T0, Complete(SID, sig_i)))
    assert isinstance(reject, Reject)
    r.handle(Received(T0, Complete(SID, sig_i)))
    (reject,) = r.handle(Received(T0, Abort(SID, "lie")))
    assert isinstance(reject, Reject)
    aborted, _ = signed(offer)
    aborted.handle(Received(T0, Abort(SID, "no")))
    (reject,) = aborted.handle(Received(T0, Complete(SID, sig_i)))
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
        (reject,) = r.handle(Received(T0, Complete(SID, sig)))
        assert isinstance(reject, Reject)
        assert r.phase is Phase.SIGNED
    assert isinstance(
        r.handle(Received(T0, Complete(SID, PAYER.sign(SIG_COUNTERSIGN, BODY))))[0], Commit
    )


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
        )
    with pytest.raises(ValueError):
        Responder(
            SID,
            KEY_I,
            complete=complete,
            sign=signer_of(PAYEE),
            verify_peer=verifier_of(PAYER),
            retry_interval=0,
        )


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
        Complete(SID, SIG),
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
        [4, bytes(15), SIG],  # a session id is 16 bytes
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
    data = encode_message(Complete(SID, SIG))
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
        Complete(session, sig),
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
