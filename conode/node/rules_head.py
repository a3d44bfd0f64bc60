"""The governance head a node follows: the newest ratification ``log_rank`` puts first.

Kept on disk (store meta ``rules_head``) and in memory, since every record
taken in is checked against it (stale rules). A valid ratification that
ranks above the head becomes the head: usually it extends the log; on a
fork (another n-th entry than ours) the higher-ranked branch wins on every
node, wherever it arrived first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from conode.chain import Record
from conode.errors import ValidationError
from conode.hashes import ActionHash
from conode.store import NodeStore
from conode.validation.charter import Parameters
from conode.validation.engine import Engine
from conode.validation.governance import Ratification, Rules, log_rank

__all__ = ["RulesHead"]

log = logging.getLogger("conode.node")

_META = "rules_head"


class RulesHead:
    """The head of the governance log this node follows, and the rules in force under it."""

    def __init__(self, store: NodeStore, engine: Engine, clock: Callable[[], int]) -> None:
        self.store = store
        self.engine = engine
        self.clock = clock
        raw = store.get_meta(_META)
        self._head = None if raw is None else ActionHash.from_bytes(raw)

    def current(self) -> ActionHash | None:
        """The newest governance log head this node knows."""
        return self._head

    def rules_now(self) -> Rules:
        """The rules in force now under this head (``ValidationError`` if they are not known)."""
        rules = self.engine.rules_at(self._head, self.clock(), self.store)
        if not isinstance(rules, Rules):
            raise ValidationError("rules", f"the rules in force are not known here ({rules})")
        return rules

    def params_now(self) -> Parameters:
        """The parameters in force now, or the charter's while the newest head's rules are not
        known here (a ratification held, a dependency of it not yet)."""
        rules = self.engine.rules_at(self._head, self.clock(), self.store)
        return rules.params if isinstance(rules, Rules) else self.engine.charter.params

    def advance(self, record: Record) -> None:
        """A valid ratification just stored: it becomes the head if ``log_rank`` puts it above."""
        ratification = Ratification.from_value(record.entry_value())
        current = self._head
        held = None if current is None else self.store.get(current)
        if current is not None and held is not None:
            current_n = Ratification.from_value(held.entry_value()).n
            if log_rank(ratification.n, record.hash) <= log_rank(current_n, current):
                return
        if ratification.prev != current:
            log.warning(
                "the governance log forked: following %s (n=%d) instead of %s",
                record.hash.short(), ratification.n, "none" if current is None else current.short(),
            )  # fmt: skip
        self.store.set_meta(_META, record.hash.to_bytes())
        self._head = record.hash
        log.info("governance log now at n=%d (%s)", ratification.n, record.hash.short())
