"""Held grants as the exchange's functions read them: a grant, a co-op's grant line, the shares the
Foundation collected. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from conode.apps.exchange.config import (
    GRANT,
    SHARE,
)
from conode.apps.exchange.grant_figures import LineState, Sales, expiry_terms
from conode.apps.sdk import Read
from conode.hashes import ActionHash, AgentKey
from conode.validation.calendar import period_label

__all__ = ["Grant", "GrantLine", "grant_lines", "lines_of", "shares_collected"]


@dataclass(frozen=True, slots=True)
class Grant:
    """One held grant, as its entry says."""

    hash: ActionHash
    author: AgentKey
    timestamp: int
    seq: int
    basis: str
    period: int
    prev_grant: ActionHash | None
    added: tuple[ActionHash, ...]
    dropped: tuple[ActionHash, ...]
    offered: int
    high: int
    estimate: int
    granted: int
    share: int
    delta: int
    sales: Sales | None
    advance: int | None
    due: int | None

    @property
    def gross(self) -> int:
        return self.delta + self.share

    @property
    def state(self) -> LineState:
        return LineState(self.granted, self.estimate, self.high)

    @classmethod
    def of(cls, read: Read) -> Grant:
        e = read.entry
        sales = e["sales"]
        return cls(
            hash=read.hash,
            author=read.author,
            timestamp=read.timestamp,
            seq=read.record.action.seq,
            basis=e["basis"],
            period=e["period"],
            prev_grant=e["prev_grant"],
            added=tuple(e["added"]),
            dropped=tuple(e["dropped"]),
            offered=e["offered"],
            high=e["high"],
            estimate=e["estimate"],
            granted=e["granted"],
            share=e["share"],
            delta=e["credit"]["delta"],
            sales=None if sales is None else Sales(**sales),
            advance=e["advance"],
            due=e["due"],
        )

    def to_value(self) -> dict[str, Any]:
        return {
            "hash": str(self.hash),
            "basis": self.basis,
            "period": period_label(self.period),
            "time": self.timestamp,
            "added": len(self.added),
            "dropped": len(self.dropped),
            "offered": self.offered,
            "high": self.high,
            "estimate": self.estimate,
            "gross": self.gross,
            "share": self.share,
            "credit": self.delta,
            "granted": self.granted,
            "sales": None if self.sales is None else self.sales.to_value(),
            "advance": self.advance,
            "due": self.due,
        }


@dataclass(frozen=True, slots=True)
class GrantLine:
    """A co-op's grants in order (each following the one before); ``latest`` is where it stands."""

    author: AgentKey
    grants: tuple[Grant, ...]

    @property
    def latest(self) -> Grant:
        return self.grants[-1]

    def steps(self) -> list[tuple[int, str, int, int]]:
        """``(period, basis, gross, delta)`` of each grant, oldest first."""
        return [(g.period, g.basis, g.gross, g.delta) for g in self.grants]

    def counted(self) -> frozenset[ActionHash]:
        """The revisions the line counts after its latest grant (its changes applied in turn)."""
        known: frozenset[ActionHash] = frozenset()
        for grant in self.grants:
            known = (known - set(grant.dropped)) | set(grant.added)
        return known

    @property
    def net(self) -> int:
        """What the line's grants since its last expiry moved to the co-op."""
        return expiry_terms(self.steps(), 0)[1]

    def expires(self, months: int) -> int | None:
        """The month from which the line may expire under ``grant_expiry_months`` = ``months``
        (None: never, with the switch off, or nothing granted since it last expired)."""
        if months == 0:
            return None
        return expiry_terms(self.steps(), months)[0]

    @property
    def last_expiry(self) -> int | None:
        """The month the line last expired, if it did."""
        return next((g.period for g in reversed(self.grants) if g.basis == "expire"), None)


def grant_lines(reads: Iterable[Read]) -> dict[AgentKey, GrantLine]:
    """Every co-op's grant line among ``reads`` (``exchange/grant`` records; others are ignored).

    The line is followed from the co-op's first grant by ``prev_grant`` links
    (the activity fold keeps it a line on the co-op's chain).
    """
    return lines_of(Grant.of(read) for read in reads if read.entry_type == GRANT)


def lines_of(grants: Iterable[Grant]) -> dict[AgentKey, GrantLine]:
    """Every co-op's grant line among ``grants`` (``grant_lines``, from grants already read)."""
    by_author: dict[AgentKey, dict[ActionHash | None, Grant]] = {}
    for grant in grants:
        by_author.setdefault(grant.author, {}).setdefault(grant.prev_grant, grant)
    lines = {}
    for author, following in by_author.items():
        first = following.get(None)
        if first is None:
            continue
        line = [first]
        while (after := following.get(line[-1].hash)) is not None:
            line.append(after)
        lines[author] = GrantLine(author, tuple(line))
    return lines


def shares_collected(reads: Iterable[Read]) -> dict[ActionHash, ActionHash]:
    """Grant -> the ``exchange/share`` record that collected its share, among ``reads``."""
    return {r.entry["grant"]: r.hash for r in reads if r.entry_type == SHARE}
