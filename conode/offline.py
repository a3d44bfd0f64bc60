"""Committing records to a node's store while its node is not running (geneses, set-up).

A shell: it reads the store, asks the pure rules (``admit``: the activity
fold, then the engine), and appends only what both accept, each record with
its new activity state in one durable transaction — the same step
``Node.ingest`` takes, without the network. The CLI uses it for geneses (``conode coop genesis``, ``member
add``, ``agent join``) and ``conode devnet`` to prepare its data dirs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from conode.chain import Record
from conode.errors import ValidationError
from conode.store import NodeStore
from conode.validation.admit import Needs, Refused, admit
from conode.validation.charter import Charter
from conode.validation.engine import AppValidator, Engine

__all__ = ["commit_offline"]


def commit_offline(
    store: NodeStore,
    charter: Charter,
    records: Sequence[Record],
    apps: Mapping[str, AppValidator] | None = None,
) -> None:
    """Judge and append ``records`` in order; ``ValidationError(rule, reason)`` at the first refusal.

    ``apps``: the app validators to judge app entries with (none: every app entry is refused as
    ``unknown-app``, which is what a peer that runs no app and knows no pin does).

    Each record is folded into its author's kept activity state and judged by
    the engine with the store as context; it is appended (with the new state,
    and queued for publishing: the node sends it to its authorities once it
    runs) only if both pass. Records before a refused one stay appended: each is a
    valid, durable step on its own.
    """
    engine = Engine(charter, apps)
    for record in records:
        author = record.action.author
        outcome = admit(store.activity(author), record, engine, store)
        if isinstance(outcome, Refused):
            raise ValidationError(outcome.verdict.rule, outcome.verdict.reason)
        if isinstance(outcome, Needs):
            raise ValidationError(
                "missing", f"this store does not hold what it needs ({outcome.verdict})"
            )
        # queued for publishing, as a record authored by a running node is: on a sharded
        # network only its host would hold it otherwise (nothing gossips every chain)
        store.append([record], activities={author: outcome.state}, publish=True)
