"""The apps a node's data dir knows: pinned by the rules, installed, approved; bundles kept.

At start (``AppCatalog.plan``) the apps pinned by the rules in force (the
charter's, then every ratified ``app`` proposal, read at the node's
governance head), the apps installed here (entry points, *not imported*)
with the hash of their local bundle, and the operator's approvals go
through ``conode.apps.hosting.plan_apps``: only an app whose pinned hash the
operator approved and whose local code hashes to it is imported and run;
every other is listed with the reason. The engine gets ``NodeApps``, which
judges the running apps' records with their code, holds a pinned app's
records unjudged when it does not run here, and refuses an app no rule
pins. The operator's commands (``conode app show|approve|withdraw``) work on
the catalog alone, with no node running.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from conode.apps.hosting import AppStatus, NodeApps, plan_apps
from conode.apps.loader import InstalledApp
from conode.apps.sdk import App, unpack_bundle
from conode.errors import AppError
from conode.hashes import ActionHash, BundleHash, resolve
from conode.node.settings import wall_clock_us
from conode.store import NodeStore
from conode.validation.charter import AppPin, Charter
from conode.validation.engine import Engine
from conode.validation.governance import Rules, rules_from_charter

__all__ = ["AppCatalog", "AppPlan"]

log = logging.getLogger("conode.apps")

@dataclass(frozen=True, slots=True)
class AppPlan:
    """What a node runs, decided at its start: every app's status, the running apps, the engine's view."""

    statuses: tuple[AppStatus, ...]
    running: Mapping[str, App]
    validators: NodeApps


class AppCatalog:
    """The apps a node's data dir knows: pinned by the rules, installed, approved, bundles kept.

    Works on the store alone (``conode app`` uses it when no node runs);
    ``AppHost`` uses it for the running node.
    """

    def __init__(
        self,
        store: NodeStore,
        charter: Charter,
        installed: Mapping[str, InstalledApp],
        *,
        clock: Callable[[], int] = wall_clock_us,
    ) -> None:
        self.store = store
        self.charter = charter
        self.installed = dict(installed)
        self.clock = clock
        self._local: dict[str, BundleHash | None] | None = None
        self._rules_engine = Engine(charter)  # built-in rules only: the governance log is enough

    # -- what is pinned, installed, approved ----------------------------------------------------

    def rules(self) -> Rules:
        """The rules in force now under the governance head the store keeps (the charter's if unknown)."""
        raw = self.store.get_meta("rules_head")
        head = None if raw is None else ActionHash.from_bytes(raw)
        rules = self._rules_engine.rules_at(head, self.clock(), self.store)
        return rules if isinstance(rules, Rules) else rules_from_charter(self.charter)

    def pins(self) -> tuple[AppPin, ...]:
        """The apps the rules in force pin."""
        return self.rules().params.apps

    def local_hashes(self) -> dict[str, BundleHash | None]:
        """Each installed app's local bundle hash (None if its files cannot be bundled); read once."""
        if self._local is None:
            self._local = {}
            for app_id, installed in self.installed.items():
                try:
                    self._local[app_id] = installed.bundle_hash()
                except AppError as exc:
                    log.error("app %s: %s", app_id, exc)
                    self._local[app_id] = None
        return self._local

    def statuses(self) -> list[AppStatus]:
        """Every pinned or installed app, with whether a node started now would run it."""
        return plan_apps(self.pins(), self.local_hashes(), self.store.approved_bundles())

    def plan(self) -> AppPlan:
        """Decide what a starting node runs: import only the apps ``may_run`` allows.

        Keeps the bundle of every installed app whose code is what the rules
        pin, so that the node serves it to peers.
        """
        statuses = []
        running: dict[str, App] = {}
        for status in self.statuses():
            if status.pin is not None and status.local_hash == status.pin.code_hash:
                self._keep_local_bundle(status.app_id, status.pin.code_hash)
            if status.running:
                try:
                    app = self.installed[status.app_id].load()
                except AppError as exc:
                    status = _not_running(status, f"cannot load: {exc}")
                else:
                    if status.pin is not None and app.version != status.pin.version:
                        log.warning(
                            "app %s: the code says version %s, the pin %s",
                            app.app_id,
                            app.version,
                            status.pin.version,
                        )
                    running[status.app_id] = app
            statuses.append(status)
        for status in statuses:
            if status.running:
                log.info("app %s %s runs", status.app_id, status.pin.version if status.pin else "")
            else:
                log.warning("app %s does not run: %s", status.app_id, status.reason)
        return AppPlan(tuple(statuses), running, NodeApps(running))

    def _keep_local_bundle(self, app_id: str, pinned: BundleHash) -> None:
        if self.store.bundle(pinned) is not None:
            return
        try:
            data = self.installed[app_id].bundle()
            self.store.keep_bundle(pinned, data)
        except (AppError, ValueError) as exc:
            log.error("app %s: cannot keep its bundle to serve: %s", app_id, exc)

    # -- the operator's commands ----------------------------------------------------------------------

    def resolve(self, text: str) -> BundleHash:
        """A bundle hash the operator typed: whole, or a unique prefix (``conode.hashes.resolve``)
        of a bundle this node knows (kept, installed, pinned by the rules or approved)."""
        known = {*self.store.bundles(), *self.store.approved_bundles()}
        known |= {pin.code_hash for pin in self.pins()}
        known |= {h for h in self.local_hashes().values() if h is not None}

        def between(lo: bytes, hi: bytes) -> list[bytes]:
            return sorted(h.raw for h in known if lo <= h.raw <= hi)

        return resolve(BundleHash, text, between)

    def bundle_of(self, bundle: BundleHash) -> tuple[bytes, str] | None:
        """A bundle's bytes and where they are from (``kept``: fetched or served; ``installed``)."""
        kept = self.store.bundle(bundle)
        if kept is not None:
            return kept, "kept"
        for app_id, local in self.local_hashes().items():
            if local == bundle:
                return self.installed[app_id].bundle(), "installed"
        return None

    def show(self, bundle: BundleHash) -> dict[str, Any]:
        """A bundle's files and their text, for the operator to read before approving it."""
        found = self.bundle_of(bundle)
        if found is None:
            raise AppError(
                f"bundle {bundle} is neither installed nor fetched here "
                "(fetch it: `conode app fetch HASH`, with the node running)"
            )
        data, source = found
        files = unpack_bundle(data)
        return {
            **self.describe(bundle),
            "source": source,
            "bytes": len(data),
            "files": [
                {"path": path, "bytes": len(body), "text": body.decode("utf-8", "replace")}
                for path, body in files.items()
            ],
        }

    def describe(self, bundle: BundleHash) -> dict[str, Any]:
        """What a bundle hash is to this node: pinned as which app, approved?, installed?"""
        pin = next((p for p in self.pins() if p.code_hash == bundle), None)
        installed = [a for a, h in self.local_hashes().items() if h == bundle]
        return {
            "hash": str(bundle),
            "id": pin.id if pin is not None else (installed[0] if installed else None),
            "version": None if pin is None else pin.version,
            "pinned": pin is not None,
            "installed": bool(installed),
            "approved": bundle in self.store.approved_bundles(),
        }

    def approve(self, bundle: BundleHash) -> dict[str, Any]:
        """Record the operator's approval of a bundle the rules pin, or that is installed here."""
        described = self.describe(bundle)
        if not described["pinned"] and not described["installed"]:
            raise AppError(
                f"no app the rules pin, and no installed app, has bundle {bundle}: "
                "check the hash (`conode app list`)"
            )
        self.store.approve_bundle(
            bundle, described["id"] or "?", described["version"] or "?", self.clock()
        )
        return {**described, "approved": True}

    def withdraw(self, bundle: BundleHash) -> dict[str, Any]:
        """Forget an approval; the app stops running at the node's next start."""
        if bundle not in self.store.approved_bundles():
            raise AppError(f"bundle {bundle} is not approved here")
        self.store.withdraw_bundle(bundle)
        return {**self.describe(bundle), "approved": False}

    def missing_bundles(self) -> list[AppPin]:
        """Pinned apps whose code is neither installed (at the pin) nor kept here."""
        local = self.local_hashes()
        return [
            pin
            for pin in self.pins()
            if local.get(pin.id) != pin.code_hash and self.store.bundle(pin.code_hash) is None
        ]


def _not_running(status: AppStatus, reason: str) -> AppStatus:
    return dataclasses.replace(status, running=False, reason=reason)
