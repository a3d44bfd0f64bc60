"""The lookout board, built from held records: Signal -> Sign -> Significance, by sector.

Pure: ``board(records)`` reads any iterable of records (the node passes the
valid lookout records it holds; others are ignored) and returns one value.
The same records in any order give the same board: items are ordered newest
first (ties by hash), and when an author polled one item twice (which the
activity fold refuses, see ``entries``) only the author's first poll counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from conode.apps.lookout.entries import (
    COMMENT,
    POLL,
    RESPOND,
    SIGN,
    SIGNAL,
    SIGNIFICANCE,
    app,
)
from conode.apps.sdk import Read
from conode.chain import Record
from conode.hashes import ActionHash, AgentKey

__all__ = ["Board", "Comment", "Item", "Response", "Tally", "board", "feed"]

STAGES: Final = {SIGNAL: "signal", SIGN: "sign", SIGNIFICANCE: "significance"}


@dataclass(frozen=True, slots=True)
class Tally:
    """The sense-check polls on one item: one vote per author."""

    advance: int = 0
    hold: int = 0

    @property
    def total(self) -> int:
        return self.advance + self.hold

    @property
    def leaning(self) -> str | None:
        """``advance`` if more authors said so than ``hold``; ``hold`` on a tie; None with no votes."""
        if self.total == 0:
            return None
        return "advance" if self.advance > self.hold else "hold"


@dataclass(frozen=True, slots=True)
class Comment:
    """One comment on an item."""

    hash: ActionHash
    author: AgentKey
    timestamp: int
    text: str


@dataclass(frozen=True, slots=True)
class Response:
    """What a co-op does about a significance: an exchange want or a proposal."""

    hash: ActionHash
    author: AgentKey
    timestamp: int
    kind: str
    response: ActionHash
    note: str | None


@dataclass(frozen=True, slots=True)
class Item:
    """A signal, sign or significance with its links on the board.

    ``sectors``: a signal's and a significance's own tags; a sign's are those
    of the signals it cites. ``cites``/``cited_by`` name only items on the board.
    """

    hash: ActionHash
    stage: str
    author: AgentKey
    timestamp: int
    title: str
    text: str
    sectors: tuple[str, ...]
    cites: tuple[ActionHash, ...]
    cited_by: tuple[ActionHash, ...]
    comments: tuple[Comment, ...]
    polls: Tally
    responses: tuple[Response, ...]
    entry: Mapping[str, Any] = field(repr=False)

    def to_value(self) -> dict[str, Any]:
        """A JSON-ready summary (hashes as printable text)."""
        value: dict[str, Any] = {
            "hash": str(self.hash),
            "stage": self.stage,
            "author": str(self.author),
            "timestamp": self.timestamp,
            "title": self.title,
            "text": self.text,
            "sectors": list(self.sectors),
            "cites": [str(h) for h in self.cites],
            "cited_by": [str(h) for h in self.cited_by],
            "comments": len(self.comments),
            "polls": {"advance": self.polls.advance, "hold": self.polls.hold},
            "responses": [
                {"kind": r.kind, "response": str(r.response), "author": str(r.author)}
                for r in self.responses
            ],
        }
        if self.stage == "signal":
            value["source"] = self.entry["source"]
            value["location"] = self.entry["location"]
        if self.stage == "significance":
            coop = self.entry["coop"]
            value["coop"] = None if coop is None else str(coop)
            value["suggested"] = list(self.entry["suggested"])
        return value


def _newest_first(items: Iterable[Item]) -> tuple[Item, ...]:
    return tuple(sorted(items, key=lambda i: (-i.timestamp, i.hash.raw)))


@dataclass(frozen=True, slots=True)
class Board:
    """Every item by stage, newest first."""

    signals: tuple[Item, ...]
    signs: tuple[Item, ...]
    significances: tuple[Item, ...]

    @property
    def items(self) -> tuple[Item, ...]:
        """Every item of every stage, newest first."""
        return _newest_first((*self.signals, *self.signs, *self.significances))

    def item(self, hash: ActionHash) -> Item | None:
        return next((i for i in self.items if i.hash == hash), None)

    def feed(self, sector: str) -> tuple[Item, ...]:
        """The items of one sector, newest first."""
        return tuple(i for i in self.items if sector in i.sectors)

    def thread(self, hash: ActionHash) -> tuple[Item, ...]:
        """An item with everything it cites and everything that cites it, at any distance."""
        by_hash = {i.hash: i for i in self.items}
        if hash not in by_hash:
            return ()
        found = {hash}
        for direction in ("cites", "cited_by"):
            todo, visited = [hash], {hash}
            while todo:
                for h in getattr(by_hash[todo.pop()], direction):
                    if h not in visited and h in by_hash:
                        visited.add(h)
                        todo.append(h)
            found |= visited
        return _newest_first(by_hash[h] for h in found)

    def to_value(self) -> dict[str, Any]:
        """A JSON-ready board."""
        return {
            "signals": [i.to_value() for i in self.signals],
            "signs": [i.to_value() for i in self.signs],
            "significances": [i.to_value() for i in self.significances],
        }


def board(records: Iterable[Record]) -> Board:
    """The board of every lookout record in ``records`` (others, and unreadable ones, are ignored)."""
    reads: dict[ActionHash, Read] = {}
    for record in records:
        read = app.read(record)
        if read is not None:
            reads.setdefault(read.hash, read)
    in_order = sorted(reads.values(), key=lambda r: (r.author.raw, r.record.action.seq))
    items = {h: r for h, r in reads.items() if r.entry_type in STAGES}

    cites: dict[ActionHash, tuple[ActionHash, ...]] = {}
    cited_by: dict[ActionHash, list[ActionHash]] = {h: [] for h in items}
    for h, r in items.items():
        field_name = {SIGN: "signals", SIGNIFICANCE: "signs"}.get(r.entry_type)
        wanted = {SIGN: SIGNAL, SIGNIFICANCE: SIGN}.get(r.entry_type)
        cited = () if field_name is None else r.entry[field_name]
        cites[h] = tuple(c for c in cited if c in items and items[c].entry_type == wanted)
        for c in cites[h]:
            cited_by[c].append(h)

    comments: dict[ActionHash, list[Comment]] = {h: [] for h in items}
    votes: dict[ActionHash, dict[AgentKey, str]] = {h: {} for h in items}
    responses: dict[ActionHash, list[Response]] = {h: [] for h in items}
    for r in in_order:
        if r.entry_type == COMMENT and r.entry["item"] in items:
            comments[r.entry["item"]].append(
                Comment(r.hash, r.author, r.timestamp, r.entry["text"])
            )
        elif r.entry_type == POLL and r.entry["item"] in items:
            votes[r.entry["item"]].setdefault(r.author, r.entry["choice"])  # the first counts
        elif r.entry_type == RESPOND:
            target = items.get(r.entry["significance"])
            if target is not None and target.entry_type == SIGNIFICANCE:
                responses[target.hash].append(
                    Response(
                        r.hash,
                        r.author,
                        r.timestamp,
                        r.entry["kind"],
                        r.entry["response"],
                        r.entry["note"],
                    )
                )

    def sectors(h: ActionHash) -> tuple[str, ...]:
        r = items[h]
        if r.entry_type == SIGN:
            return tuple(sorted({s for c in cites[h] for s in items[c].entry["sectors"]}))
        return tuple(r.entry["sectors"])

    def by_time(values: list[Any]) -> tuple[Any, ...]:
        return tuple(sorted(values, key=lambda v: (v.timestamp, v.hash.raw)))

    built = [
        Item(
            hash=h,
            stage=STAGES[r.entry_type],
            author=r.author,
            timestamp=r.timestamp,
            title=r.entry["title"],
            text=r.entry["text"],
            sectors=sectors(h),
            cites=cites[h],
            cited_by=tuple(sorted(cited_by[h], key=lambda c: (items[c].timestamp, c.raw))),
            comments=by_time(comments[h]),
            polls=Tally(
                advance=sum(1 for c in votes[h].values() if c == "advance"),
                hold=sum(1 for c in votes[h].values() if c == "hold"),
            ),
            responses=by_time(responses[h]),
            entry=r.entry,
        )
        for h, r in items.items()
    ]
    return Board(
        signals=_newest_first(i for i in built if i.stage == "signal"),
        signs=_newest_first(i for i in built if i.stage == "sign"),
        significances=_newest_first(i for i in built if i.stage == "significance"),
    )


def feed(records: Iterable[Record], sector: str) -> tuple[Item, ...]:
    """The items of one sector, newest first (``board(records).feed(sector)``)."""
    return board(records).feed(sector)
