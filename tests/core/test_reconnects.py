"""The per-peer reconnect limit (pure): a burst, a rate back, what the refused peer is told."""

from __future__ import annotations

import pytest

from conode.dht.reconnects import REFUSAL_MAX, ReconnectLimiter, printable_refusal


def test_a_burst_then_one_connection_per_token_won_back() -> None:
    limiter = ReconnectLimiter(per_s=2.0, burst=3)
    assert [limiter.admit("p", 0.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.wait_s("p", 0.0) == pytest.approx(0.5)
    assert not limiter.admit("p", 0.4)  # a refused connection costs nothing, earns nothing
    assert limiter.admit("p", 0.5)
    assert not limiter.admit("p", 0.5)


def test_peers_are_limited_apart_and_a_quiet_peer_is_full_again() -> None:
    limiter = ReconnectLimiter(per_s=1.0, burst=2)
    assert limiter.admit("a", 0.0) and limiter.admit("a", 0.0) and not limiter.admit("a", 0.0)
    assert limiter.admit("b", 0.0)
    assert limiter.wait_s("a", 100.0) == 0.0
    assert limiter.admit("a", 100.0) and limiter.admit("a", 100.0) and not limiter.admit("a", 100.0)


def test_the_refusal_says_the_limit_and_when_to_come_back() -> None:
    limiter = ReconnectLimiter(per_s=10.0, burst=50)
    for _ in range(50):
        limiter.admit("p", 0.0)
    assert limiter.refusal("p", 0.0) == (
        "connecting too often (over 10 connections a second, 50 at once): try again in 0.1 s"
    )


def test_at_most_so_many_peers_are_remembered() -> None:
    limiter = ReconnectLimiter(per_s=1.0, burst=1)
    for n in range(5_000):
        limiter.admit(f"peer{n}", 0.0)
    assert len(limiter._buckets) <= 1_025
    assert not limiter.admit("peer4999", 0.0)  # the newest, with an empty bucket, is kept


def test_limits_are_positive() -> None:
    with pytest.raises(ValueError):
        ReconnectLimiter(per_s=0.0)
    with pytest.raises(ValueError):
        ReconnectLimiter(burst=0)


def test_a_peers_refusal_text_is_one_bounded_printable_line() -> None:
    assert printable_refusal(b"too often\n\x1b[31mred\x00") == "too often??[31mred?"
    assert printable_refusal("é".encode() * 500) == "?" * (REFUSAL_MAX // 2)  # ASCII only
    assert printable_refusal(b"\xff\xfe") == "??"
