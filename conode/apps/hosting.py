"""Which apps a node runs, and what its engine judges every app's records with (pure).

How it works:

- ``plan_apps`` takes the pins of the rules in force, the apps installed
  here with the hashes of their local bundles, and the operator's approvals,
  and says of each pinned (or installed) app whether the node runs it, and if
  not, why (``sdk.may_run``: approved, and the local code hashes to the pin).
- ``NodeApps`` is the ``apps`` mapping a node hands its ``Engine``. It
  answers for **every** app id, so no record is judged by a missing app:

  ======================================  ==========================================
  the rules the record names...           verdict
  ======================================  ==========================================
  do not pin its app                      ``Invalid("unknown-app")``
  pin it, and this node runs it           the app's own (schema, then its rule)
  pin it, and this node does not run it   ``VALID``: **held unjudged**
  ======================================  ==========================================

  A record held unjudged is stored, served and passed on like any other, so
  its author's chain goes on here (a payment after it is judged as usual),
  but this node never calls it invalid, so it never warrants its author for
  code it did not approve. The rules it names are still checked by the
  engine (they must be a ratification log this node can fetch), and so is
  the pin: an app no rule pins is refused by every node alike.

Pure: no I/O, no clock, no randomness.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conode.apps.sdk import may_run
from conode.chain import Record
from conode.hashes import BundleHash
from conode.validation.charter import AppPin
from conode.validation.governance import Rules
from conode.validation.verdict import VALID, Invalid, Verdict

if TYPE_CHECKING:
    from conode.validation.engine import AppValidator, Engine, ValidationContext

__all__ = ["UNKNOWN_APP", "AppStatus", "NodeApps", "plan_apps"]

UNKNOWN_APP = "unknown-app"
"""The rule that refuses a record of an app the rules it names do not pin."""


@dataclass(frozen=True, slots=True)
class AppStatus:
    """One app as a node sees it: pinned by the rules?, installed?, approved?, running? and why not.

    Invariant: ``running`` is true only if ``pin`` is set.
    """

    app_id: str
    pin: AppPin | None
    """What the rules in force pin (None: installed here, pinned by no rule)."""
    installed: bool
    """Its code is installed here (as a package with a ``conode.apps`` entry point)."""
    local_hash: BundleHash | None
    """The hash of the installed code's bundle (None: not installed, or unreadable)."""
    approved: bool
    """The operator approved the pinned hash (or, unpinned, the local one)."""
    running: bool
    reason: str = ""
    """Why the node does not run it, or what changes at its next start (empty: nothing to say)."""

    def to_json(self) -> dict[str, Any]:
        """The status as JSON values (hashes as text)."""
        return {
            "id": self.app_id,
            "version": None if self.pin is None else self.pin.version,
            "hash": None if self.pin is None else str(self.pin.code_hash),
            "installed": self.installed,
            "local_hash": None if self.local_hash is None else str(self.local_hash),
            "approved": self.approved,
            "running": self.running,
            "reason": self.reason,
        }


def plan_apps(
    pins: Sequence[AppPin],
    local_hashes: Mapping[str, BundleHash | None],
    approved: Collection[BundleHash],
) -> list[AppStatus]:
    """Each pinned app, then each installed app no rule pins, with whether the node may run it.

    ``local_hashes``: the id of each app installed here -> the hash of its
    local bundle (None if it could not be read).
    """
    statuses = []
    for pin in sorted(pins, key=lambda p: p.id):
        local = local_hashes.get(pin.id)
        allowed = may_run(pin, approved, local)
        statuses.append(
            AppStatus(
                pin.id,
                pin,
                pin.id in local_hashes,
                local,
                pin.code_hash in approved,
                allowed is True,
                "" if allowed is True else allowed,
            )
        )
    pinned = {pin.id for pin in pins}
    for app_id in sorted(set(local_hashes) - pinned):
        local = local_hashes[app_id]
        statuses.append(
            AppStatus(
                app_id,
                None,
                True,
                local,
                local is not None and local in approved,
                False,
                f"{app_id}: installed, but no rule of the network pins it",
            )
        )
    return statuses


class _Slot:
    """The engine's validator for one app id on a node (see the module docstring's table)."""

    __slots__ = ("app", "app_id")

    def __init__(self, app_id: str, app: AppValidator | None) -> None:
        self.app_id = app_id
        self.app = app

    def validate(
        self, record: Record, entry: Any, rules: Rules, engine: Engine, ctx: ValidationContext
    ) -> Verdict:
        if not any(pin.id == self.app_id for pin in rules.params.apps):
            return Invalid(
                UNKNOWN_APP,
                f"the rules this record names pin no app {self.app_id!r} "
                f"(entry type {record.action.entry_type!r})",
            )
        if self.app is None:
            return VALID  # held unjudged: this node does not run the app's code
        return self.app.validate(record, entry, rules, engine, ctx)


class NodeApps(Mapping[str, "AppValidator"]):
    """The engine's apps on a node: a validator for **every** app id (``get`` never misses).

    Iterating gives the apps the node runs; looking up any other id gives the
    validator that holds a pinned app's records unjudged and refuses an
    unpinned app's.
    """

    __slots__ = ("_running",)

    def __init__(self, running: Mapping[str, AppValidator]) -> None:
        self._running = {app_id: _Slot(app_id, app) for app_id, app in running.items()}

    def __getitem__(self, app_id: str) -> AppValidator:
        # not cached: ids come from records, and anyone may make up as many as they like
        return self._running.get(app_id) or _Slot(app_id, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._running)

    def __len__(self) -> int:
        return len(self._running)

    def runs(self, app_id: str) -> bool:
        """True if the node runs this app's code."""
        return app_id in self._running
