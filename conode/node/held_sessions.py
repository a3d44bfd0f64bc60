"""What the operator sees of payment sessions and may do to them: ``conode sessions`` and
``conode sessions release``.

A release is only ever safe: an undecided payer aborts; a payee that signed asks once more
for the outcome and gives the position up only when told to (``force``); a payee that holds
the payer's committed record is never given up.
"""

from __future__ import annotations

from conode.errors import ValidationError
from conode.node.sessions import Sessions
from conode.validation import countersign as cs

__all__ = ["listing", "release"]


def listing(sessions: Sessions) -> list[dict[str, object]]:
    """The sessions not finished here and the chains held, for ``conode sessions``."""
    held = sessions.locks.holders()
    resuming = sessions.resuming
    rows: list[dict[str, object]] = []
    for key, session in sessions.driver.sessions.items():
        state = session.machine.state
        if session.machine.done and key not in held:
            continue
        phase = state.phase.name.lower()
        if key in resuming:  # rebuilt, not fed its Restarted yet: what it persisted
            phase = f"resuming ({resuming[key].status.name.lower()})"
        rows.append({
            "id": key[: cs.SESSION_ID_SIZE].hex(),
            "agent": str(session.agent),
            "role": state.role.name.lower(),
            "phase": phase,
            "peer": str(state.peer),
            "expires_at": state.expires_at,
            "holds_chain": key in held,
            "payer_committed": state.role is cs.Role.RESPONDER and state.peer_signature is not None,
            "owes_write": None if state.owed is None else state.owed.name.lower(),
        })  # fmt: skip
    known = {k for k in sessions.driver.sessions}
    rows += [
        {"id": key[: cs.SESSION_ID_SIZE].hex(), "agent": str(agent), "role": None,
         "phase": "held without a session", "peer": None, "expires_at": None,
         "holds_chain": True, "payer_committed": False, "owes_write": None}
        for agent, key in sessions.locks.items() if key not in known
    ]  # fmt: skip
    return rows

async def release(sessions: Sessions, session_id: str, *, force: bool) -> str:
    """Give up session ``session_id`` (hex) as the operator: what happened, in one line.

    An undecided payer aborts. A payee that signed first asks again for the outcome (the
    payer, the DHT, the witnesses); if it is still unknown it is given up only with
    ``force``, since the payer may still commit it. A payee that holds the payer's
    committed record is never given up: it commits once the witnesses answer.
    """
    found = [(k, s) for k, s in sessions.driver.sessions.items() if k.hex().startswith(session_id)]
    if not found:
        stale = [(a, k) for a, k in sessions.locks.items() if k.hex().startswith(session_id)]
        if len(stale) == 1:
            sessions.locks.release(*stale[0])
            return f"released the chain of {stale[0][0].short()} (no session held it)"
        raise ValidationError("session", f"no session {session_id} is held here")
    if len(found) > 1:
        raise ValidationError("session", f"{session_id} names {len(found)} sessions")
    key, session = found[0]
    state = session.machine.state
    if session.machine.done and state.owed is None:
        return f"session {session_id} is already {state.phase.name.lower()}"
    if state.role is cs.Role.RESPONDER and state.phase is cs.Phase.SIGNED:
        if state.peer_signature is not None:
            raise ValidationError(
                "session", "the payer committed this payment: it completes once its "
                "witnesses answer, and cannot be released",
            )  # fmt: skip
        await sessions.driver.feed(key, lambda now: cs.TimedOut(now))  # ask once more, now
        if session.machine.done:
            return f"session {session_id} resolved: {session.machine.state.phase.name.lower()}"
        if not force:
            raise ValidationError(
                "session", "the payer's decision is not known yet; release --force gives "
                "the position up anyway, and if the payer commits later the payment stands "
                "on its chain only (the audit will name this chain)",
            )  # fmt: skip
    await sessions.driver.feed(key, lambda now: cs.Cancelled(now, "released by the operator"))
    phase = session.machine.state.phase.name.lower()
    return f"session {session_id} released ({phase})"
