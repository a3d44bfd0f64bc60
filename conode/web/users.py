"""Web logins: who may use the page, as which agents, and one-time login links; one file, no store.

The file is ``DIR/web-users.json`` (mode 0600, replaced atomically, every
change made under an exclusive ``flock`` of ``DIR/web-users.lock`` so the
``conode web`` commands and the running node never lose each other's
changes)::

    {"version": 1,
     "users": {"ana": {"password": "$argon2id$…", "agents": ["agt_…"], "operator": false}},
     "links": {"<sha256 of the token, hex>": {"login": "ana", "expires": <µs>}}}

Passwords are hashed with argon2id (libsodium through PyNaCl, its
"interactive" cost: 64 MiB and 2 passes), so a stolen file costs an
attacker 64 MiB of memory per guess. A login link's token is 32 random
bytes; only its SHA-256 is kept, and it is removed when used or expired.
The node reads the file again whenever its modification time changes, so
``conode web user add`` takes effect on a running node at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import nacl.exceptions
import nacl.pwhash

from conode.errors import ConodeError, EncodingError
from conode.hashes import AgentKey

__all__ = [
    "LINK_TTL_US",
    "USERS_FILE",
    "UserFile",
    "WebUser",
    "WebUserError",
    "hash_password",
]

USERS_FILE: Final = "web-users.json"
_LOCK_FILE: Final = "web-users.lock"
LINK_TTL_US: Final = 15 * 60 * 1_000_000
"""A one-time login link works for 15 minutes."""
MIN_PASSWORD: Final = 8
_LOGIN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_VERSION: Final = 1


class WebUserError(ConodeError):
    """A web login cannot be added, changed or read (a bad name, a short password, a bad file)."""


@dataclass(frozen=True, slots=True)
class WebUser:
    """A web login: the agents it may act as, and whether it may see the node's pages."""

    login: str
    password: str | None
    agents: tuple[AgentKey, ...]
    operator: bool


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (libsodium's interactive cost)."""
    if len(password) < MIN_PASSWORD:
        raise WebUserError(f"a web password has at least {MIN_PASSWORD} characters")
    return nacl.pwhash.argon2id.str(password.encode()).decode("ascii")


def check_password(stored: str | None, password: str) -> bool:
    """``password`` matches the hash (memory-hard: run it off the event loop)."""
    target = _dummy_hash() if stored is None else stored.encode("ascii")
    try:
        ok = bool(nacl.pwhash.argon2id.verify(target, password.encode()))
    except (nacl.exceptions.InvalidkeyError, nacl.exceptions.CryptoError, ValueError):
        ok = False
    return ok and stored is not None


@functools.cache
def _dummy_hash() -> bytes:
    """Verified against when the login is unknown: a wrong login costs as long as a wrong password."""
    return bytes(nacl.pwhash.argon2id.str(secrets.token_bytes(16)))


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UserFile:
    """``DIR/web-users.json``: read (cached by modification time) and changed under a lock."""

    def __init__(self, root: Path) -> None:
        self.path = root / USERS_FILE
        self._lock_path = root / _LOCK_FILE
        self._cache: tuple[int, dict[str, Any]] | None = None

    # -- reading -------------------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        try:
            stamp = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return {"version": _VERSION, "users": {}, "links": {}}
        if self._cache is not None and self._cache[0] == stamp:
            return self._cache[1]
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise WebUserError(f"cannot read {self.path}: {exc}") from exc
        if not isinstance(data, dict) or data.get("version") != _VERSION:
            raise WebUserError(f"{self.path}: not a conode web users file (version {_VERSION})")
        data.setdefault("users", {})
        data.setdefault("links", {})
        self._cache = (stamp, data)
        return data

    def users(self) -> list[WebUser]:
        """Every login, by name."""
        return [self._user(login, row) for login, row in sorted(self._read()["users"].items())]

    def get(self, login: str) -> WebUser | None:
        """The login named ``login``, if there is one."""
        row = self._read()["users"].get(login)
        return None if row is None else self._user(login, row)

    @staticmethod
    def _user(login: str, row: Mapping[str, Any]) -> WebUser:
        try:
            agents = tuple(AgentKey.parse(text) for text in row.get("agents", []))
        except EncodingError as exc:
            raise WebUserError(f"web login {login}: {exc}") from exc
        return WebUser(login, row.get("password"), agents, bool(row.get("operator")))

    def verify(self, login: str, password: str) -> WebUser | None:
        """The login if ``password`` is its password (blocking: memory-hard)."""
        user = self.get(login)
        ok = check_password(None if user is None else user.password, password)
        return user if ok and user is not None else None

    # -- changing ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _changing(self) -> Iterator[dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._cache = None
            data = json.loads(json.dumps(self._read()))  # a copy to change
            yield data
            self._write(data)
        finally:
            os.close(fd)  # releases the lock

    def _write(self, data: dict[str, Any]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as file:
                json.dump(data, file, indent=1, sort_keys=True)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._cache = None

    def add(
        self,
        login: str,
        *,
        agents: tuple[AgentKey, ...] = (),
        password: str | None = None,
        operator: bool = False,
    ) -> WebUser:
        """Create ``login`` or give it more agents (and a new password, or operator rights)."""
        if not _LOGIN.fullmatch(login):
            raise WebUserError(
                f"{login!r} is not a login name (letters, digits, . _ -; at most 64)"
            )
        hashed = None if password is None else hash_password(password)
        with self._changing() as data:
            row = data["users"].setdefault(login, {"agents": [], "operator": False})
            for agent in agents:
                if str(agent) not in row["agents"]:
                    row["agents"].append(str(agent))
            if hashed is not None:
                row["password"] = hashed
            row["operator"] = bool(row.get("operator")) or operator
        user = self.get(login)
        assert user is not None
        return user

    def remove(self, login: str) -> None:
        """Remove a login (its sessions end at their next request) and its links."""
        with self._changing() as data:
            if data["users"].pop(login, None) is None:
                raise WebUserError(f"no web login {login!r}")
            data["links"] = {k: v for k, v in data["links"].items() if v.get("login") != login}

    def new_link(self, login: str, now_us: int) -> str:
        """A one-time login token for ``login``, valid ``LINK_TTL_US``."""
        token = secrets.token_urlsafe(32)
        with self._changing() as data:
            if login not in data["users"]:
                raise WebUserError(f"no web login {login!r}")
            data["links"] = {k: v for k, v in data["links"].items() if v["expires"] > now_us}
            data["links"][_token_digest(token)] = {"login": login, "expires": now_us + LINK_TTL_US}
        return token

    def use_link(self, token: str, now_us: int) -> WebUser | None:
        """The login a token opens, once: the token is removed whatever it was."""
        digest = _token_digest(token)
        if digest not in self._read()["links"]:
            return None  # no write for a token that is not there (guessing costs no fsync)
        with self._changing() as data:
            link = data["links"].pop(digest, None)
        if link is None or link["expires"] <= now_us:
            return None
        return self.get(link["login"])
