"""The book of peers passed over after a failed request (``conode.node.passed_over``)."""

from __future__ import annotations

from conode.node.passed_over import BACKOFF_BASE_US, BACKOFF_MAX_US, PassedOver, backoff_us


def test_a_peer_failing_again_waits_twice_as_long_and_one_that_answers_starts_afresh() -> None:
    book = PassedOver()
    book.failed("p", 0)
    assert book.resting("p", BACKOFF_BASE_US - 1)
    assert not book.resting("p", BACKOFF_BASE_US)
    book.failed("p", BACKOFF_BASE_US)
    assert book.resting("p", 3 * BACKOFF_BASE_US - 1)
    assert not book.resting("p", 3 * BACKOFF_BASE_US)
    assert book.failures("p") == 2
    book.answered("p")
    assert book.failures("p") == 0
    assert not book.resting("p", BACKOFF_BASE_US + 1)


def test_the_wait_stops_growing_at_an_hour() -> None:
    assert backoff_us(1) == BACKOFF_BASE_US
    assert backoff_us(100) == BACKOFF_MAX_US


def test_a_flood_of_failing_peers_keeps_the_book_bounded_and_the_latest_in_it() -> None:
    book = PassedOver(max_peers=100)
    for i in range(10_000):
        book.failed(f"made-up-{i}", i)
    assert len(book._failures) == 100
    assert book.resting("made-up-9999", 10_000)
    assert not book.resting("made-up-0", 10_000)  # dropped: it may be asked once more
