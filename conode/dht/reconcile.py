"""Range-based set reconciliation of held items on a span, as a sans-I/O session.

No networking here (h11's model): bytes in, bytes out, plus what each side
learned. ``Reconciler.initiate`` gives the opening message;
``Reconciler.accept`` takes it on the other side; then each side passes the
other's message to ``receive`` and sends what it returns, until ``receive``
returns ``None`` (or the side reports ``done`` after sending). Both sides
then know ``have`` (items they hold on the span that the other lacks) and
``need`` (items the other holds there that they lack). The byte form is in
``reconcile_wire`` and ``docs/protocol.md`` section 11.

How it works (Meyer's range-based set reconciliation, as negentropy does it):

- The items of the span are in one total order (relative location, hash).
  Either side may **ask** about a range: FINGERPRINT (a digest of what it
  holds there) or IDLIST (all it holds there, when that is at most
  ``list_max`` items).
- Each ask is a **duty** for the other side, answered once, whole, in one
  message: a FINGERPRINT with MATCH if its own fingerprint is equal, else
  with its own IDLIST if it holds few items there, else by splitting the
  range into ``branches`` parts of equal counts of its items, each with its
  FINGERPRINT (new asks). An IDLIST is answered with MATCH, with DIFF (which
  of the listed keys it lacks, and the keys it holds beyond them: the range
  is settled for both), or, if it holds many items there, by a split.
- Where the peer holds nothing (the empty fingerprint) or few (an IDLIST of at
  most half as many items), a side lists up to ``bulk_max`` items at once
  instead of splitting further: a node that holds none of a range gets it at
  about the cost of its keys, not of a tree of fingerprints over them.
- Differences are found by descending only into ranges whose fingerprints
  differ, so the bytes grow with the difference times the log of the set
  size, and the messages with the log of the set size.
- A message holds at most ``frame_limit`` bytes: duties that do not fit wait
  for the next message, oldest first (the ranges in between are PASS). Every
  message answers at least one duty when there is one, so a session always
  moves on; one that sends ``max_messages`` is cut off.
- A side is done when it has no asks waiting and no duties: both learn it
  at the same message, so the last message is never answered.

What a peer sends is checked before any of it is used: every answer must be
whole and answer an ask this side made (a split has at least two parts, a
DIFF answers an IDLIST of exactly that range and size and names no key that
was listed), and the opening must ask about the whole span. Anything else
is ``RemoteProtocolError`` and ends the session.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from conode.dht.arcs import RING, Arc
from conode.dht.itemset import EMPTY_FINGERPRINT, Bound, Item, ItemSource, RelKey, SpanItems
from conode.dht.reconcile_wire import (
    MAX_IDS,
    MAX_MESSAGE,
    Diff,
    Fingerprint,
    IdList,
    Match,
    Pass,
    Range,
    bound_cost,
    decode_message,
    decode_opening,
    encode_message,
    key_cost,
)
from conode.errors import EncodingError, LocalProtocolError, RemoteProtocolError
from conode.hashes import ActionHash

__all__ = ["Reconciler", "Settings", "opening_span"]

_START: Final[Bound] = (0, b"")
_FINGERPRINT_COST: Final = 1 + 16
_MIN_FRAME_LIMIT: Final = 4096


@dataclass(frozen=True, slots=True)
class Settings:
    """How one side splits and sends; the two sides need not agree.

    Invariant: ``frame_limit`` leaves room for the largest single answer, so
    every message answers at least one duty and stays within the limit.
    """

    branches: int = 8
    """Parts a range is split into when fingerprints differ (16 saves a message or two, for ~1.5x the bytes)."""
    list_max: int = 8
    """The most items this side lists in an IDLIST instead of splitting."""
    bulk_max: int = 512
    """The most items this side lists at once where the peer holds few: none (an empty
    FINGERPRINT), or at most half as many as this side (a short IDLIST)."""
    frame_limit: int = 256 * 1024
    """The most bytes in a message this side sends."""
    max_messages: int = 4096
    """Messages (both ways) after which a session is cut off."""

    def __post_init__(self) -> None:
        if not 2 <= self.branches <= 256:
            raise ValueError("branches is 2 to 256")
        if not 1 <= self.list_max <= MAX_IDS:
            raise ValueError(f"list_max is 1 to {MAX_IDS}")
        if not self.list_max <= self.bulk_max <= MAX_IDS:
            raise ValueError(f"bulk_max is list_max to {MAX_IDS}")
        if not _MIN_FRAME_LIMIT <= self.frame_limit <= MAX_MESSAGE:
            raise ValueError(f"frame_limit is {_MIN_FRAME_LIMIT} to {MAX_MESSAGE} bytes")
        if self.frame_limit < 1 + self.largest_answer():
            raise ValueError("frame_limit is too small for one answer at these branches and bulk_max")
        if self.max_messages < 2:
            raise ValueError("max_messages is at least 2")

    def largest_answer(self) -> int:
        """The most bytes one answer (with the PASS range before it) can cost."""
        split = self.branches * (bound_cost((0, bytes(32))) + _FINGERPRINT_COST)
        listed = 1 + key_cost(self.bulk_max) + 3 + MAX_IDS // 8
        return 2 * bound_cost((0, bytes(32))) + 1 + max(split, listed)


@dataclass(frozen=True, slots=True)
class _Ask:
    """A range this side asked about; ``listed``: the keys of its IDLIST (None for a FINGERPRINT)."""

    lower: Bound
    upper: Bound
    listed: tuple[RelKey, ...] | None


@dataclass(frozen=True, slots=True)
class _Duty:
    """A range the peer asked about: its fingerprint, or the keys it listed."""

    lower: Bound
    upper: Bound
    fingerprint: bytes | None
    keys: tuple[RelKey, ...]


@dataclass(slots=True)
class _Answer:
    """What answering one duty sends and changes."""

    lower: Bound
    ranges: list[Range]
    asks: list[_Ask]
    have: list[RelKey] = field(default_factory=list)
    need: list[RelKey] = field(default_factory=list)

    def cost(self) -> int:
        """The most bytes the answer's ranges (and a PASS range before them) take."""
        total = bound_cost(self.lower) + 1
        for item in self.ranges:
            total += bound_cost(item.upper) + 1
            if isinstance(item, Fingerprint):
                total += 16
            elif isinstance(item, IdList):
                total += key_cost(len(item.keys))
            elif isinstance(item, Diff):
                total += 3 + (item.listed + 7) // 8 + key_cost(len(item.keys))
        return total


def opening_span(message: bytes) -> Arc:
    """The span an opening message asks to reconcile, so the shell can decide whether to accept it."""
    try:
        span, _ = decode_opening(message)
    except EncodingError as exc:
        raise RemoteProtocolError(f"malformed reconciliation opening: {exc}") from exc
    return span


class Reconciler:
    """One side of one reconciliation session over a span (see the module docstring)."""

    def __init__(self, held: ItemSource, span: Arc, settings: Settings) -> None:
        """Use ``initiate`` or ``accept``."""
        self.span = span
        self.settings = settings
        self._view: SpanItems = held.within(span)
        self._end: Bound = self._view.end
        self._asks: dict[Bound, _Ask] = {}
        self._ask_lowers: list[Bound] = []
        self._duties: deque[_Duty] = deque()
        self._have: set[RelKey] = set()
        self._need: set[RelKey] = set()
        self._broken = False
        self.done = False
        self.messages_sent = 0
        self.messages_received = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.deferrals = 0
        """Messages this side sent while some duties had to wait for the next (the frame limit)."""

    # -- the session -------------------------------------------------------------------------

    @classmethod
    def initiate(
        cls, held: ItemSource, span: Arc, settings: Settings | None = None
    ) -> tuple[Reconciler, bytes]:
        """A session on ``span`` and its opening message: one ask about the whole span."""
        if span.is_empty:
            raise ValueError("a reconciliation covers at least one location")
        session = cls(held, span, settings or Settings())
        count = len(session._view)
        if count <= session.settings.list_max:
            listed = tuple(session._view.keys(0, count))
            opening: Range = IdList(session._end, listed)
        else:
            listed = None
            opening = Fingerprint(session._end, session._view.fingerprint(0, count))
        session._set_asks([_Ask(_START, session._end, listed)])
        data = encode_message(span, [opening], opening=True)
        session._count_sent(data)
        return session, data

    @classmethod
    def accept(
        cls, held: ItemSource, opening: bytes, settings: Settings | None = None
    ) -> tuple[Reconciler, bytes | None]:
        """The other side of a session from its opening message, and the reply to send (None: done)."""
        try:
            span, ranges = decode_opening(opening)
        except EncodingError as exc:
            raise RemoteProtocolError(f"malformed reconciliation opening: {exc}") from exc
        session = cls(held, span, settings or Settings())
        session._count_received(opening)
        session._take_opening(ranges)
        return session, session._reply()

    def receive(self, message: bytes) -> bytes | None:
        """Take the peer's message; the reply to send, or None when the session is over."""
        if self._broken:
            raise LocalProtocolError("this reconciliation session already failed")
        if self.done:
            raise LocalProtocolError("this reconciliation session is over")
        try:
            ranges = decode_message(message, self.span)
        except EncodingError as exc:
            self._broken = True
            raise RemoteProtocolError(f"malformed reconciliation message: {exc}") from exc
        self._count_received(message)
        try:
            self._take_answers(ranges)
        except RemoteProtocolError:
            self._broken = True
            raise
        return self._reply()

    @property
    def have(self) -> frozenset[Item]:
        """Items this side holds on the span that the peer lacks (as learned so far)."""
        return frozenset(self._item(key) for key in self._have)

    @property
    def need(self) -> frozenset[Item]:
        """Items the peer holds on the span that this side lacks (as learned so far)."""
        return frozenset(self._item(key) for key in self._need)

    @property
    def messages(self) -> int:
        """Messages sent and received in this session."""
        return self.messages_sent + self.messages_received

    # -- taking the peer's message -----------------------------------------------------------

    def _take_opening(self, ranges: list[Range]) -> None:
        covered = _START
        for lower, item in _with_lowers(ranges):
            if not isinstance(item, Fingerprint | IdList):
                raise RemoteProtocolError("an opening only asks (FINGERPRINT or IDLIST ranges)")
            self._duties.append(_duty(lower, item))
            covered = item.upper
        if covered != self._end:
            raise RemoteProtocolError("an opening asks about the whole span")

    def _take_answers(self, ranges: list[Range]) -> None:
        answers: dict[Bound, list[tuple[Bound, Range]]] = {}
        for lower, item in _with_lowers(ranges):
            if isinstance(item, Pass):
                continue
            ask = self._ask_containing(lower, item.upper)
            parts = answers.setdefault(ask.lower, [])
            if (parts[-1][1].upper if parts else ask.lower) != lower:
                raise RemoteProtocolError("an answer leaves part of the range it answers unsaid")
            parts.append((lower, item))
        if self._asks and not answers:
            raise RemoteProtocolError("a message answers none of this side's asks")
        for ask_lower, parts in answers.items():
            ask = self._asks[ask_lower]
            if parts[-1][1].upper != ask.upper:
                raise RemoteProtocolError("an answer leaves part of the range it answers unsaid")
            self._take_answer(ask, parts)
        self._set_asks([ask for lower, ask in self._asks.items() if lower not in answers])

    def _ask_containing(self, lower: Bound, upper: Bound) -> _Ask:
        at = bisect.bisect_right(self._ask_lowers, lower) - 1
        if at >= 0:
            ask = self._asks[self._ask_lowers[at]]
            if upper <= ask.upper:
                return ask
        raise RemoteProtocolError("a message answers a range this side did not ask about")

    def _take_answer(self, ask: _Ask, parts: list[tuple[Bound, Range]]) -> None:
        if len(parts) == 1:
            lower, item = parts[0]
            if isinstance(item, Match):
                return
            if isinstance(item, Diff):
                self._take_diff(ask, item)
                return
            if isinstance(item, IdList) and ask.listed is None:
                self._duties.append(_duty(lower, item))
                return
            raise RemoteProtocolError("an answer neither settles nor splits the range it answers")
        for lower, item in parts:
            if not isinstance(item, Fingerprint | IdList):
                raise RemoteProtocolError("a split range holds only FINGERPRINT and IDLIST parts")
            self._duties.append(_duty(lower, item))

    def _take_diff(self, ask: _Ask, diff: Diff) -> None:
        if ask.listed is None:
            raise RemoteProtocolError("a DIFF answers a FINGERPRINT")
        if diff.listed != len(ask.listed):
            raise RemoteProtocolError(f"a DIFF answers {diff.listed} keys, the IDLIST had {len(ask.listed)}")
        listed = set(ask.listed)
        if any(key in listed for key in diff.keys):
            raise RemoteProtocolError("a DIFF offers a key its IDLIST listed")
        self._have.update(ask.listed[index] for index in diff.lacks)
        self._need.update(diff.keys)

    def _set_asks(self, asks: list[_Ask]) -> None:
        self._asks = {ask.lower: ask for ask in asks}
        self._ask_lowers = sorted(self._asks)

    # -- answering ---------------------------------------------------------------------------

    def _reply(self) -> bytes | None:
        """Answer duties, oldest first, while they fit; the message to send, or None when done."""
        budget = self.settings.frame_limit - 1
        chosen: list[_Answer] = []
        new_asks: list[_Ask] = []
        while self._duties:
            answer = self._answer(self._duties[0])
            cost = answer.cost()
            if chosen and cost > budget:
                self.deferrals += 1
                break
            budget -= cost
            self._duties.popleft()
            chosen.append(answer)
            new_asks.extend(answer.asks)
            self._have.update(answer.have)
            self._need.update(answer.need)
        self._set_asks([*self._asks.values(), *new_asks])
        self.done = not self._asks and not self._duties
        if self.done and not chosen:
            return None
        if self.messages >= self.settings.max_messages:
            self._broken = True
            raise RemoteProtocolError(f"reconciliation not finished after {self.messages} messages")
        data = encode_message(self.span, list(_with_passes(chosen)))
        self._count_sent(data)
        return data

    def _answer(self, duty: _Duty) -> _Answer:
        view = self._view
        first, last = view.position(duty.lower), view.position(duty.upper)
        count = last - first
        settings = self.settings
        if duty.fingerprint is not None:
            if view.fingerprint(first, last) == duty.fingerprint:
                return _Answer(duty.lower, [Match(duty.upper)], [])
            peer_empty = duty.fingerprint == EMPTY_FINGERPRINT
            if count <= settings.list_max or (peer_empty and count <= settings.bulk_max):
                keys = tuple(view.keys(first, last))
                return _Answer(duty.lower, [IdList(duty.upper, keys)], [_Ask(duty.lower, duty.upper, keys)])
            return self._split(duty, first, last)
        # listing is worth it if at least half of what it lists is new to the peer
        few = count <= settings.list_max or (count <= settings.bulk_max and 2 * len(duty.keys) <= count)
        if not few:
            return self._split(duty, first, last)
        mine = view.keys(first, last)
        held, theirs = set(mine), set(duty.keys)
        lacks = tuple(i for i, key in enumerate(duty.keys) if key not in held)
        extra = tuple(key for key in mine if key not in theirs)
        if not lacks and not extra:
            return _Answer(duty.lower, [Match(duty.upper)], [])
        diff = Diff(duty.upper, len(duty.keys), lacks, extra)
        need = [duty.keys[i] for i in lacks]
        return _Answer(duty.lower, [diff], [], have=list(extra), need=need)

    def _split(self, duty: _Duty, first: int, last: int) -> _Answer:
        """Fingerprints of ``branches`` parts of equal counts of this side's items (at least two parts)."""
        view, count = self._view, last - first
        parts = min(self.settings.branches, count)
        cuts = [first + count * i // parts for i in range(1, parts)]
        bounds = [duty.lower, *(view.separator(cut) for cut in cuts), duty.upper]
        edges = [first, *cuts, last]
        ranges: list[Range] = []
        asks = []
        for i in range(parts):
            ranges.append(Fingerprint(bounds[i + 1], view.fingerprint(edges[i], edges[i + 1])))
            asks.append(_Ask(bounds[i], bounds[i + 1], None))
        return _Answer(duty.lower, ranges, asks)

    # -- bookkeeping -------------------------------------------------------------------------

    def _item(self, key: RelKey) -> Item:
        rel, digest = key
        return Item((self.span.start + rel) % RING, ActionHash(digest))

    def _count_sent(self, data: bytes) -> None:
        self.messages_sent += 1
        self.bytes_sent += len(data)

    def _count_received(self, data: bytes) -> None:
        self.messages_received += 1
        self.bytes_received += len(data)


def _duty(lower: Bound, item: Fingerprint | IdList) -> _Duty:
    if isinstance(item, Fingerprint):
        return _Duty(lower, item.upper, item.fingerprint, ())
    return _Duty(lower, item.upper, None, item.keys)


def _with_lowers(ranges: list[Range]) -> Iterator[tuple[Bound, Range]]:
    lower = _START
    for item in ranges:
        yield lower, item
        lower = item.upper


def _with_passes(answers: list[_Answer]) -> Iterator[Range]:
    """The answers' ranges in order, with a PASS range over each gap between them."""
    at = _START
    for answer in sorted(answers, key=lambda a: a.lower):
        if answer.lower != at:
            yield Pass(answer.lower)
        yield from answer.ranges
        at = answer.ranges[-1].upper
