"""Sessions, CSRF tokens and the login rate limit of the web page (in memory: a restart logs out).

- A **session** is 32 random bytes in a cookie (HttpOnly, SameSite=Strict,
  Secure and ``__Host-`` when the page is served over TLS or behind a TLS
  proxy); the server keeps the login, a CSRF token and the language. It
  ends after ``IDLE_US`` without a request, ``MAX_AGE_US`` after login, on
  logout, or when its login is removed from the users file.
- Every form carries the session's **CSRF token**; a POST without it, or
  whose ``Origin`` (or ``Sec-Fetch-Site``) says it came from another site,
  is refused before anything is read. The login form, which has no session
  yet, carries a token that must equal a cookie set with the form.
- **Login attempts**: at most ``MAX_FAILURES`` failed attempts per login name
  and per client address within ``WINDOW_US``; past that the form answers
  429 until the oldest failure leaves the window, without checking a password.
"""

from __future__ import annotations

import hmac
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "IDLE_US",
    "MAX_AGE_US",
    "MAX_FAILURES",
    "WINDOW_US",
    "LoginLimiter",
    "Session",
    "Sessions",
    "same_token",
]

IDLE_US: Final = 2 * 3600 * 1_000_000
MAX_AGE_US: Final = 12 * 3600 * 1_000_000
MAX_FAILURES: Final = 5
WINDOW_US: Final = 5 * 60 * 1_000_000
MAX_SESSIONS: Final = 10_000


def same_token(a: str | None, b: str | None) -> bool:
    """Two tokens are equal (in constant time); a missing one never matches."""
    return a is not None and b is not None and hmac.compare_digest(a.encode(), b.encode())


@dataclass(slots=True)
class Session:
    """A logged-in browser: its login, its CSRF token, its language (None: the browser's)."""

    login: str
    csrf: str
    started: int
    seen: int
    lang: str | None = None
    flash: list[tuple[str, str]] = field(default_factory=list)
    """Messages to show once on the next page: (ok or error, text)."""


class Sessions:
    """The live sessions, by cookie value."""

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}

    def start(self, login: str, now: int) -> tuple[str, Session]:
        """A new session for ``login``: (cookie value, session)."""
        if len(self._by_id) >= MAX_SESSIONS:
            self.expire(now)
            if len(self._by_id) >= MAX_SESSIONS:  # still full: the oldest gives way
                oldest = min(self._by_id, key=lambda k: self._by_id[k].seen)
                del self._by_id[oldest]
        sid = secrets.token_urlsafe(32)
        session = Session(login, secrets.token_urlsafe(24), now, now)
        self._by_id[sid] = session
        return sid, session

    def get(self, sid: str | None, now: int) -> Session | None:
        """The live session of a cookie value (touched), or None."""
        if sid is None:
            return None
        session = self._by_id.get(sid)
        if session is None:
            return None
        if now - session.seen > IDLE_US or now - session.started > MAX_AGE_US:
            del self._by_id[sid]
            return None
        session.seen = now
        return session

    def end(self, sid: str | None) -> None:
        if sid is not None:
            self._by_id.pop(sid, None)

    def end_login(self, login: str) -> None:
        """End every session of a login (removed from the users file)."""
        for sid in [k for k, s in self._by_id.items() if s.login == login]:
            del self._by_id[sid]

    def expire(self, now: int) -> None:
        for sid in [
            k
            for k, s in self._by_id.items()
            if now - s.seen > IDLE_US or now - s.started > MAX_AGE_US
        ]:
            del self._by_id[sid]


class LoginLimiter:
    """Failed logins per key (a login name, a client address) within a sliding window."""

    def __init__(self, max_failures: int = MAX_FAILURES, window_us: int = WINDOW_US) -> None:
        self.max_failures = max_failures
        self.window_us = window_us
        self._failures: dict[str, deque[int]] = {}

    def _recent(self, key: str, now: int) -> deque[int]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and now - times[0] >= self.window_us:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def wait_us(self, keys: tuple[str, ...], now: int) -> int:
        """0 if an attempt may be made now, else how long until one may (µs)."""
        wait = 0
        for key in keys:
            times = self._recent(key, now)
            if len(times) >= self.max_failures:
                wait = max(wait, times[0] + self.window_us - now)
        return wait

    def failed(self, keys: tuple[str, ...], now: int) -> None:
        for key in keys:
            self._failures.setdefault(key, deque()).append(now)
        if len(self._failures) > 100_000:  # a flood of names: forget what is out of the window
            for key in list(self._failures):
                self._recent(key, now)

    def succeeded(self, login_key: str) -> None:
        self._failures.pop(login_key, None)
