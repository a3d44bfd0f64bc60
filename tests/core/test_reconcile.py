"""Range-based reconciliation: both sides end knowing exactly the difference, in O(log n) messages,
for bytes that grow with the difference and log n, not with n."""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from conode.dht.arcs import RING, Arc
from conode.dht.itemset import HeldItems, Item
from conode.dht.reconcile import Reconciler, Settings
from conode.hashes import ActionHash


def run(
    a: set[Item], b: set[Item], span: Arc, sa: Settings | None = None, sb: Settings | None = None
) -> tuple[Reconciler, Reconciler, list[int]]:
    """Run a whole session between holders of ``a`` (initiator) and ``b``; the sizes of its messages."""
    first, message = Reconciler.initiate(HeldItems(a), span, sa)
    sizes = [len(message)]
    second, reply = Reconciler.accept(HeldItems(b), message, sb)
    side, other = first, second
    while reply is not None:
        sizes.append(len(reply))
        assert len(sizes) < 500, "the session does not end"
        reply = side.receive(reply)
        side, other = other, side
    assert first.done and second.done
    return first, second, sizes


def check_outcome(first: Reconciler, second: Reconciler, a: set[Item], b: set[Item], span: Arc) -> None:
    a_on, b_on = {i for i in a if span.contains(i.loc)}, {i for i in b if span.contains(i.loc)}
    assert first.have == a_on - b_on and first.need == b_on - a_on
    assert second.have == b_on - a_on and second.need == a_on - b_on


def message_bound(n: int, s: Settings) -> int:
    """Messages a session may take when no message reaches the frame limit: 2 splits per level, plus 4."""
    return 2 * math.ceil(math.log(max(n, 2), s.branches)) + 4


def byte_bound(diff: int, n: int, messages: int, s: Settings) -> int:
    """Bytes a session may take: a version byte a message, the opening (a fingerprint, or an
    IDLIST of up to ``list_max`` keys) and its answer; then for each difference, at each of the
    (two sides') split levels, one split of ``branches`` parts (a part and its MATCH answer cost
    at most 100 bytes with 32-byte bound prefixes), and the IDLIST and DIFF that settle it (at
    most ``list_max`` 37-byte keys each, plus bitmaps)."""
    levels = 2 * math.ceil(math.log(max(n, 2), s.branches)) + 2
    per_difference = levels * s.branches * 100 + 2 * (s.list_max * 37 + 200)
    return messages + opening_bound(n, s) + diff * per_difference


def opening_bound(n: int, s: Settings) -> int:
    """The opening (span, and a fingerprint or an IDLIST of all the initiator holds) and a MATCH."""
    return 48 + 37 * min(n, s.list_max)


# -- strategies --------------------------------------------------------------------------------

locations = st.one_of(
    st.integers(0, RING - 1),
    st.sampled_from([0, 1, 77, RING // 2, RING - 1]),  # shared locations: bounds need hash prefixes
)
digests = st.one_of(
    st.binary(min_size=32, max_size=32),
    st.builds(lambda tail: b"\xab" * 20 + tail, st.binary(min_size=12, max_size=12)),  # long common prefixes
)
items = st.builds(lambda loc, digest: Item(loc, ActionHash(digest)), locations, digests)
spans = st.one_of(
    st.just(Arc.full()),
    st.builds(Arc, st.integers(0, RING - 1), st.integers(1, RING - 1)),
    st.builds(lambda start: Arc(start, RING // 2), st.sampled_from([0, RING // 2 + 1, RING - 3])),  # wrapping
)
sides = st.sampled_from(["a", "b", "both", "both", "both"])
session_settings = st.builds(
    lambda branches, list_max, bulk: Settings(
        branches=branches, list_max=list_max, bulk_max=list_max + bulk, frame_limit=4096
    ),
    st.integers(2, 16),
    st.integers(1, 16),
    st.integers(0, 48),
)


@st.composite
def drawn_sets(draw: st.DrawFn, max_size: int) -> tuple[set[Item], set[Item]]:
    """Small sets drawn item by item (they shrink well)."""
    pool = draw(st.lists(items, max_size=max_size, unique=True))
    where = draw(st.lists(sides, min_size=len(pool), max_size=len(pool)))
    a = {i for i, w in zip(pool, where, strict=True) if w in ("a", "both")}
    b = {i for i, w in zip(pool, where, strict=True) if w in ("b", "both")}
    return a, b


@st.composite
def seeded_sets(draw: st.DrawFn, scale: int) -> tuple[set[Item], set[Item]]:
    """Larger sets from a seed: a common part and a part only each side holds, at uniform
    locations, clustered ones, or a few shared ones (where bounds need hash prefixes)."""
    rnd = random.Random(draw(st.integers(0, 2**32)))
    layout = draw(st.sampled_from(["uniform", "clustered", "few"]))
    sizes = [draw(st.integers(0, scale)), draw(st.integers(0, scale // 10)), draw(st.integers(0, scale // 10))]
    low = rnd.randrange(RING)

    def one() -> Item:
        if layout == "uniform":
            loc = rnd.randrange(RING)
        elif layout == "clustered":
            loc = (low + rnd.randrange(1 << 12)) % RING
        else:
            loc = rnd.choice((low, RING - 1, 0))
        return Item(loc, ActionHash(rnd.randbytes(32)))

    common, only_a, only_b = ({one() for _ in range(size)} for size in sizes)
    return common | only_a, common | only_b


def two_sets(max_size: int = 300) -> st.SearchStrategy[tuple[set[Item], set[Item]]]:
    return st.one_of(drawn_sets(max_size), seeded_sets(10 * max_size))


# -- properties --------------------------------------------------------------------------------


@settings(max_examples=250, deadline=None)
@given(two_sets(), spans, session_settings)
def test_any_two_sets_end_knowing_exactly_what_each_lacks_on_the_span(
    sets: tuple[set[Item], set[Item]], span: Arc, s: Settings
) -> None:
    a, b = sets
    first, second, sizes = run(a, b, span, s, s)
    check_outcome(first, second, a, b, span)
    a_on, b_on = {i for i in a if span.contains(i.loc)}, {i for i in b if span.contains(i.loc)}
    n, diff = max(len(a_on), len(b_on)), len(a_on ^ b_on)
    assert max(sizes) <= s.frame_limit
    if first.deferrals == second.deferrals == 0:  # no message was cut short by the frame limit
        assert len(sizes) <= message_bound(n, s)
    assert sum(sizes) <= byte_bound(diff, n, len(sizes), s)


@settings(max_examples=100, deadline=None)
@given(two_sets(max_size=150), spans, session_settings, session_settings)
def test_sides_that_split_differently_still_agree(
    sets: tuple[set[Item], set[Item]], span: Arc, sa: Settings, sb: Settings
) -> None:
    a, b = sets
    first, second, _ = run(a, b, span, sa, sb)
    check_outcome(first, second, a, b, span)


@settings(max_examples=60, deadline=None)
@given(st.lists(items, max_size=200, unique=True), spans, st.sampled_from(["equal", "empty", "subset", "disjoint"]))
def test_equal_empty_subset_and_disjoint_sets(pool: list[Item], span: Arc, shape: str) -> None:
    half = len(pool) // 2
    a, b = {
        "equal": (set(pool), set(pool)),
        "empty": (set(), set(pool)),
        "subset": (set(pool[:half]), set(pool)),
        "disjoint": (set(pool[:half]), set(pool[half:])),
    }[shape]
    for x, y in ((a, b), (b, a)):
        first, second, sizes = run(x, y, span)
        check_outcome(first, second, x, y, span)
        if shape == "equal":
            assert len(sizes) <= 2 and sum(sizes) <= opening_bound(len(x), Settings())


# -- large sets, small differences -------------------------------------------------------------


def random_items(rnd: random.Random, count: int) -> list[Item]:
    return [Item(rnd.randrange(RING), ActionHash(rnd.randbytes(32))) for _ in range(count)]


def test_a_large_set_with_a_small_difference_costs_the_difference_not_the_set() -> None:
    rnd = random.Random(1)
    common = random_items(rnd, 50_000)
    extra = random_items(rnd, 20)
    s = Settings()
    for d in (0, 1, 10):
        a, b = set(common + extra[:d]), set(common + extra[10 : 10 + d])
        first, second, sizes = run(a, b, Arc.full())
        check_outcome(first, second, a, b, Arc.full())
        diff = 2 * d
        assert len(sizes) <= message_bound(len(a), s)
        assert sum(sizes) <= byte_bound(diff, len(a), len(sizes), s)
        assert sum(sizes) < 32 * len(common) / 50  # under 2 % of listing every hash


def test_a_frame_limit_spreads_a_large_difference_over_more_messages_without_losing_any() -> None:
    rnd = random.Random(2)
    held = set(random_items(rnd, 3_000))
    s = Settings(frame_limit=4096, bulk_max=64)
    for a, b in ((set(), held), (held, set())):
        first, second, sizes = run(a, b, Arc.full(), s, s)
        check_outcome(first, second, a, b, Arc.full())
        assert max(sizes) <= 4096
        assert len(sizes) > 30  # the limit really cut the listing into many messages
        assert sum(sizes) < 1.2 * 36 * len(held)  # about one key's bytes an item, however it is cut


def test_only_the_span_is_reconciled() -> None:
    rnd = random.Random(3)
    a, b = set(random_items(rnd, 400)), set(random_items(rnd, 400))
    span = Arc(RING - RING // 8, RING // 4)  # wraps past location 0
    first, second, _ = run(a, b, span)
    check_outcome(first, second, a, b, span)
    assert first.need and all(span.contains(i.loc) for i in first.need | first.have)
