"""The running node's apps: their functions, watchers and duties; pinned bundles fetched.

How it works:

- **Functions** (``AppHost.call``): ``conode call APP FN k=v`` arrives as
  ``app.call``; the host binds the parameters to the function's signature
  (``conode.node.apps.binding``), runs it with a ``NodeAppAPI``
  (``conode.node.apps.appapi``) and returns JSON values. Records of an app
  that has just started running here are judged once (``judge_held``).
- **Bundles**: the node keeps the bundles of the pinned code it has (to
  serve them on the ``bundle`` protocol) and fetches pinned bundles it
  lacks from its peers, keeping only bytes that hash to the pin. The
  operator reads one with ``conode app show`` and approves its hash with
  ``conode app approve``; the app runs from the node's next start.
- **Governance**: the host runs the governance duties
  (``conode.node.governance``) beside its bundle fetching.
- **App duties** (``APP_DUTIES``): functions of running apps the node calls
  by itself every ``DUTY_INTERVAL``, without parameters and idempotent (the
  exchange's monthly grant re-estimation and the steward's collection of
  the Foundation's shares).
- **Watchers** (``App.watch``, ``AppHost.watch``): ingest wakes the host's
  watch task (``Node.on_stored``, a note taken under the ingest lock); the
  task reads, for each watched type, the records stored after that type's
  cursor (kept in store meta, like the text index's) and calls the watchers
  one record at a time, outside every lock, then moves the cursor. So a
  record is watched whether it was made here, published here or pulled in
  gossip, and records stored while the node was down are watched at start.
  The cursor moves after each batch: after a crash a few records may be
  watched again (watchers are idempotent); a watcher that raises is logged.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final

import trio

from conode import encoding
from conode.apps.sdk import App, Watcher, unpack_bundle
from conode.chain import Record
from conode.dht.transport import TaskStatus
from conode.errors import AppError, ConodeError
from conode.hashes import BundleHash
from conode.node.apps.appapi import AppActions, NodeAppAPI
from conode.node.apps.binding import AgentResolver, bind_params, jsonable
from conode.node.apps.catalog import AppCatalog, AppPlan
from conode.node.apps.cursor import unseen_batches
from conode.node.governance import Governance
from conode.node.node import Node

__all__ = ["APP_DUTIES", "DUTY_INTERVAL", "FETCH_INTERVAL", "AppHost"]

log = logging.getLogger("conode.apps")

FETCH_INTERVAL: Final = 10.0
"""Seconds between attempts to fetch the pinned bundles the node lacks."""
APP_DUTIES: Final = {"exchange": ("grants-reestimate", "share-collect")}
"""App functions a node runs by itself, without parameters, every ``DUTY_INTERVAL`` (each is
idempotent): the exchange re-estimates its co-ops' grants monthly, the steward collects the
Foundation's shares."""
DUTY_INTERVAL: Final = 30.0
_RUNNING_META: Final = "apps_running"
_WATCH_META: Final = "app_watch/"
_WATCH_BATCH: Final = 200


class AppHost:
    """The running node's apps: their functions, the ``AppAPI`` they get, bundles, search."""

    def __init__(
        self,
        node: Node,
        catalog: AppCatalog,
        plan: AppPlan,
        governance: Governance | None = None,
        *,
        duty_interval: float = DUTY_INTERVAL,
    ) -> None:
        self.node = node
        self.catalog = catalog
        self.plan = plan
        self.governance = governance or Governance(node)
        self.actions = AppActions(node, self.governance)
        """What the node does for its apps (commit, links, search): each app's ``NodeAppAPI``."""
        self.apps: dict[str, App] = dict(plan.running)
        self.duty_interval = duty_interval
        self._watched = {t for app in self.apps.values() for t in app.watchers}
        self._stored = trio.Event()
        node.on_stored.append(self._on_stored)

    # -- running -----------------------------------------------------------------------------------

    def judge_held(self) -> int:
        """Judge the held records of apps that did not run here at the last start; how many were invalid.

        Their records may have been held unjudged meanwhile; an invalid one
        warrants its author now, as it would have on arrival.
        """
        store = self.node.store
        raw = store.get_meta(_RUNNING_META)
        before = set() if raw is None else set(encoding.decode(raw))
        invalid = 0
        for app_id, app in self.apps.items():
            if app_id in before:
                continue
            for entry_type in (*app.entry_types, *app.link_types):
                for record, verdict in self.node.judge_held(store.records_of_type(entry_type)):
                    log.warning("held %s %s is invalid: %s", entry_type, record.hash.short(), verdict)
                    invalid += 1
        store.set_meta(_RUNNING_META, encoding.encode(sorted(self.apps)))
        return invalid

    async def run(self, *, task_status: TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Fetch the pinned bundles the node lacks from its peers (newly pinned ones too);
        run the governance duties (``Governance.run``: ratify, and pay as the steward) and the
        running apps' duties (``APP_DUTIES``)."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.governance.run)
            await nursery.start(self.watch)
            nursery.start_soon(self._app_duties)
            task_status.started()
            await self._fetch_bundles()

    async def _app_duties(self) -> None:
        await self.node.started.wait()
        while True:
            await self.run_duties()
            await trio.sleep(self.duty_interval)

    async def run_duties(self) -> None:
        """One round of the running apps' duties; a failure is logged and the round goes on."""
        for app_id, names in APP_DUTIES.items():
            app = self.apps.get(app_id)
            if app is None:
                continue
            for name in names:
                try:
                    result = app.functions[name](NodeAppAPI(self.actions, app))
                    if inspect.isawaitable(result):
                        result = await result
                except Exception:  # a task boundary: log it, keep the node alive
                    log.exception("app %s duty %s failed", app_id, name)
                    continue
                log.debug("app %s duty %s: %s", app_id, name, jsonable(result))

    # -- watchers -----------------------------------------------------------------------------------

    def _on_stored(self, record: Record) -> None:
        # under the ingest lock: only wake the watch task
        if record.action.entry_type in self._watched:
            self._stored.set()

    async def watch(self, *, task_status: TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Call the running apps' watchers with each record of their types as it is stored.

        First every record stored since each type's cursor (all of them the
        first time), then whatever ingest stores, until cancelled.
        """
        task_status.started()
        while True:
            self._stored = trio.Event()  # before reading: a record stored meanwhile wakes us again
            await self.watch_new()
            await self._stored.wait()

    async def watch_new(self) -> int:
        """One pass: every running app's watchers over the records stored after their cursors; how many."""
        watched = 0
        for app in self.apps.values():
            for entry_type, watchers in app.watchers.items():
                watched += await self._watch_type(app, entry_type, watchers)
        return watched

    async def _watch_type(self, app: App, entry_type: str, watchers: Sequence[Watcher]) -> int:
        watched = 0
        for rows in unseen_batches(self.node.store, _WATCH_META + entry_type, entry_type, _WATCH_BATCH):
            for _row_id, record in rows:
                for watcher in watchers:
                    await self._call_watcher(app, watcher, record)
                await trio.lowlevel.checkpoint()  # a long catch-up of plain watchers lets the node run
            watched += len(rows)
        return watched

    async def _call_watcher(self, app: App, watcher: Watcher, record: Record) -> None:
        try:
            result = watcher(NodeAppAPI(self.actions, app), record)
            if inspect.isawaitable(result):
                await result
        except Exception:  # a task boundary: a failing watcher never stops the others or ingest
            log.exception(
                "app %s: watching %s %s failed",
                app.app_id,
                record.action.entry_type,
                record.hash.short(),
            )

    async def _fetch_bundles(self) -> None:
        await self.node.started.wait()
        while True:
            for pin in self.catalog.missing_bundles():
                try:
                    await self.node.fetch_bundle(pin.code_hash)
                    log.info(
                        "fetched the bundle of %s %s (%s): read it with `conode app show`",
                        pin.id,
                        pin.version,
                        pin.code_hash.short(),
                    )
                except ConodeError as exc:  # a task boundary: log it, try again later
                    log.info("fetching the bundle of %s: %s", pin.id, exc)
            await trio.sleep(FETCH_INTERVAL)

    def statuses(self) -> list[dict[str, Any]]:
        """Each app as this node runs it now, and what its next start would change."""
        now = {s.app_id: s for s in self.catalog.statuses()}
        out = []
        for status in self.plan.statuses:
            row = status.to_json()
            row["running"] = status.app_id in self.apps
            later = now.get(status.app_id)
            if row["running"] and later is not None and not later.running:
                row["reason"] = f"{status.app_id}: runs until the next start, then not: {later.reason}"
            elif not row["running"] and later is not None:
                row["reason"] = (
                    f"{status.app_id}: approved: runs from the next start of the node"
                    if later.running
                    else later.reason
                )
            row["approved"] = later.approved if later is not None else row["approved"]
            out.append(row)
        known = {s.app_id for s in self.plan.statuses}
        out += [s.to_json() for s in now.values() if s.app_id not in known]
        return out

    async def fetch(self, bundle: BundleHash) -> dict[str, Any]:
        """Fetch a bundle from the peers (kept only if its bytes hash to ``bundle``); what it is."""
        data = self.node.store.bundle(bundle)
        fetched = data is None
        if data is None:
            data = await self.node.fetch_bundle(bundle)
        files = unpack_bundle(data)
        return {
            **self.catalog.describe(bundle),
            "fetched": fetched,
            "bytes": len(data),
            "files": sorted(files),
        }

    # -- functions ------------------------------------------------------------------------------------

    def api(self, app_id: str) -> NodeAppAPI:
        """The ``AppAPI`` the node lends a running app's functions."""
        return NodeAppAPI(self.actions, self._running(app_id))

    def _running(self, app_id: str) -> App:
        app = self.apps.get(app_id)
        if app is not None:
            return app
        status = next((s for s in self.plan.statuses if s.app_id == app_id), None)
        if status is None:
            known = ", ".join(s.app_id for s in self.plan.statuses) or "none"
            raise AppError(f"no app {app_id!r} is pinned or installed here (apps: {known})")
        raise AppError(f"app {app_id} does not run on this node: {status.reason}")

    async def call(
        self,
        app_id: str,
        name: str,
        params: Mapping[str, Any],
        *,
        agent: str | None,
        resolve: AgentResolver,
    ) -> Any:
        """Run function ``name`` of a running app; its result as JSON values.

        ``AppError`` for an app that does not run here or an unknown function,
        ``ValueError`` for parameters that do not fit the function,
        ``ValidationError`` when a rule refuses what it commits.
        """
        app = self._running(app_id)
        fn = app.functions.get(name)
        if fn is None:
            have = ", ".join(sorted(app.functions)) or "none"
            raise AppError(f"{app_id} has no function {name!r} (it has: {have})")
        kwargs = bind_params(f"{app_id} {name}", fn, params, agent, resolve)
        try:
            result = fn(NodeAppAPI(self.actions, app), **kwargs)
            if inspect.isawaitable(result):
                result = await result
        except (ConodeError, ValueError, KeyError, TypeError):  # a refusal, or parameters that do not fit
            raise
        except Exception as exc:  # a bug in the app: one line to the caller, the trace in the log
            log.exception("app %s function %s failed", app_id, name)
            raise AppError(f"{app_id} {name} failed: {exc!r}") from exc
        return jsonable(result)
