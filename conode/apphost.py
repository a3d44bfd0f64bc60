"""Apps on a node: which run, their functions through the node's ``AppAPI``, their bundles by hash.

How it works:

- **At start** (``AppCatalog.plan``): the apps pinned by the rules in force
  (the charter's, then every ratified ``app`` proposal, read at the node's
  governance head), the apps installed here (entry points, *not imported*)
  with the hash of their local bundle, and the operator's approvals go
  through ``conode.apps.hosting.plan_apps``: only an app whose pinned hash
  the operator approved and whose local code hashes to it is imported and
  run; every other is listed with the reason. The engine gets
  ``NodeApps``, which judges the running apps' records with their code,
  holds a pinned app's records unjudged when it does not run here, and
  refuses an app no rule pins. Records of an app that has just started
  running here are judged once (``Node.judge_held``).
- **Functions** (``AppHost.call``): ``conode call APP FN k=v`` arrives as
  ``app.call``; the host binds the parameters to the function's signature
  (text converted where the annotation is ``int``, ``bool`` or a typed
  hash; an ``agent`` parameter gets the hosted agent named by ``--as``, or
  the only one), runs it with a ``NodeAppAPI`` and returns JSON values.
- **Commits** (``NodeAppAPI.commit``/``link``): the entry gets the node's
  governance head as ``rules``, the record is authored on the hosted
  agent's chain and goes through ``Node.commit`` (every rule, stored,
  published); a refusal is ``ValidationError`` naming the rule. App commits
  are serialised, so two functions never author at the same seq.
- **Bundles**: the node keeps the bundles of the pinned code it has (to
  serve them on the ``bundle`` protocol) and fetches pinned bundles it
  lacks from its peers, keeping only bytes that hash to the pin. The
  operator reads one with ``conode app show`` and approves its hash with
  ``conode app approve``; the app runs from the node's next start.
- **Governance** (``NodeAppAPI.governance``, ``conode.governing``): the
  built-in ``gov/*`` records and the Foundation, lent to app functions; the
  host runs the governance duties beside its bundle fetching.
- **App duties** (``APP_DUTIES``): functions of running apps the node calls
  by itself every ``DUTY_INTERVAL``, without parameters and idempotent (the
  exchange's monthly grant re-estimation and the steward's collection of
  the Foundation's shares).
- **Search** (``NodeAppAPI.search``): the searchable text of the running
  apps' records is indexed (``conode.store.search.TextIndex``) as they are
  searched for: each type's index remembers the last stored row it saw.
- **Link indexes** (``NodeAppAPI.fetch_links``): an app refreshes what the
  node holds at some link bases from the DHT (``Node.fetch_links``: each of
  their authorities asked once for all its bases, within the wait the app
  gives; a base fetched in the last ``NodeSettings.links_fresh_us`` is not
  asked again).
- **Watchers** (``App.watch``, ``AppHost.watch``): ingest wakes the host's
  watch task (``Node.on_stored``, a note taken under the ingest lock); the
  task reads, for each watched type, the records stored after that type's
  cursor (kept in store meta, like the text index's) and calls the watchers
  one record at a time, outside every lock, then moves the cursor. So a
  record is watched whether it was made here, published here or pulled in
  gossip, and records stored while the node was down are watched at start.
  The cursor moves after each batch: after a crash a few records may be
  watched again (watchers are idempotent); a watcher that raises is logged.
- **State** (``NodeAppAPI.state``): each app's own key-value state in the
  store file (``conode.store.appstate``).
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import types
import typing
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import trio

from conode import encoding
from conode.apps.hosting import AppStatus, NodeApps, plan_apps
from conode.apps.loader import InstalledApp
from conode.apps.sdk import App, Watcher, unpack_bundle
from conode.chain import ActionKind, Record
from conode.dht.transport import TaskStatus
from conode.errors import AppError, ConodeError, EncodingError, ValidationError
from conode.governing import Governance
from conode.hashes import ActionHash, AgentKey, BundleHash, TypedHash
from conode.node import Node, wall_clock_us
from conode.store import NodeStore
from conode.store.appstate import AppState
from conode.store.search import TextIndex
from conode.validation.activity import Activity
from conode.validation.charter import AppPin, Charter
from conode.validation.engine import Engine
from conode.validation.governance import Rules, rules_from_charter

__all__ = [
    "APP_DUTIES",
    "DUTY_INTERVAL",
    "AppCatalog",
    "AppHost",
    "AppPlan",
    "NodeAppAPI",
    "NodeGovernanceAPI",
]

log = logging.getLogger("conode.apps")

FETCH_INTERVAL: Final = 10.0
"""Seconds between attempts to fetch the pinned bundles the node lacks."""
APP_DUTIES: Final = {"exchange": ("grants-reestimate", "share-collect")}
"""App functions a node runs by itself, without parameters, every ``DUTY_INTERVAL`` (each is
idempotent): the exchange re-estimates its co-ops' grants monthly, the steward collects the
Foundation's shares."""
DUTY_INTERVAL: Final = 30.0
_RUNNING_META: Final = "apps_running"
_INDEX_META: Final = "text_index/"
_INDEX_BATCH: Final = 500
MAX_LINK_WAIT: Final = 30.0
"""The longest an app's ``fetch_links`` may wait for the DHT, whatever it asks for."""
_WATCH_META: Final = "app_watch/"
_WATCH_BATCH: Final = 200
AgentResolver = Callable[[str | None, bool], AgentKey]
"""``resolve(text, hosted)``: an agent from a name or printable key (None: the only hosted one)."""


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
        self.apps: dict[str, App] = dict(plan.running)
        self.duty_interval = duty_interval
        self._index: TextIndex | None = None
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
                    result = app.functions[name](NodeAppAPI(self, app))
                    if inspect.isawaitable(result):
                        result = await result
                except Exception:  # a task boundary: log it, keep the node alive
                    log.exception("app %s duty %s failed", app_id, name)
                    continue
                log.debug("app %s duty %s: %s", app_id, name, _jsonable(result))

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
        store = self.node.store
        key = _WATCH_META + entry_type
        raw = store.get_meta(key)
        last = 0 if raw is None else int.from_bytes(raw, "big")
        watched = 0
        while True:
            rows = store.records_after(last, [entry_type], _WATCH_BATCH)
            for row_id, record in rows:
                for watcher in watchers:
                    await self._call_watcher(app, watcher, record)
                last = row_id
                await trio.lowlevel.checkpoint()  # a long catch-up of plain watchers lets the node run
            if rows:
                store.set_meta(key, last.to_bytes(8, "big"))
                watched += len(rows)
            if len(rows) < _WATCH_BATCH:
                return watched

    async def _call_watcher(self, app: App, watcher: Watcher, record: Record) -> None:
        try:
            result = watcher(NodeAppAPI(self, app), record)
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
        return NodeAppAPI(self, self._running(app_id))

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
        kwargs = _bind(f"{app_id} {name}", fn, params, agent, resolve)
        try:
            result = fn(NodeAppAPI(self, app), **kwargs)
            if inspect.isawaitable(result):
                result = await result
        except (ConodeError, ValueError, KeyError, TypeError):  # a refusal, or parameters that do not fit
            raise
        except Exception as exc:  # a bug in the app: one line to the caller, the trace in the log
            log.exception("app %s function %s failed", app_id, name)
            raise AppError(f"{app_id} {name} failed: {exc!r}") from exc
        return _jsonable(result)

    # -- committing and searching for the apps ------------------------------------------------------

    async def commit(
        self,
        agent: AgentKey,
        kind: ActionKind,
        entry_type: str,
        entry: Mapping[str, Any],
        app: App | None = None,
    ) -> ActionHash:
        """Author, judge, store and publish one record on a hosted agent's chain; its hash.

        ``app``: fills in the fields its SDK owns (``App.prepare``) from the chain as it stands.
        """
        node = self.node
        hosted = node.agents.get(agent)
        if hosted is None:
            raise ValidationError("not-hosted", f"{agent.short()} is not hosted on this node")
        value = dict(entry)
        rules_head = node.rules_head()
        earliest = 0
        if rules_head is not None:
            if value.get("rules") is None:
                value["rules"] = rules_head.to_bytes()
            ratified = node.store.get(rules_head)
            # never dated before the rules it names: those pin the app from their time on
            earliest = 0 if ratified is None else ratified.action.timestamp
        def make(_timestamp: int, activity: Activity) -> Any:
            if app is None:
                return value
            return app.prepare(
                entry_type, value, last_credit=activity.last_credit, balance=activity.balance
            )

        record = await node.create_entry(agent, entry_type, make, kind=kind, not_before=earliest)
        return record.hash

    async def fetch_links(
        self, link_type: str, bases: Sequence[TypedHash], wait: float
    ) -> list[Record]:
        """Links of ``link_type`` at ``bases`` from the DHT (``Node.fetch_links``: one request per
        authority for all its bases), for at most ``wait`` seconds; those newly held.

        A base fetched within ``NodeSettings.links_fresh_us`` is not asked again (the node's
        record), so a search repeated soon after costs no request."""
        new: list[Record] = []  # filled as links come: what came before a timeout is kept
        with trio.move_on_after(max(0.0, min(wait, MAX_LINK_WAIT))):
            await self.node.fetch_links(bases, link_type, new)
        return new

    def search(self, app: App, text: str, entry_types: Sequence[str], limit: int) -> list[Record]:
        """Held records of ``app``'s searchable types matching every word of ``text``, best first."""
        types = [app.type_name(t) for t in entry_types] or list(app.searchable_types)
        index = self._text_index()
        for entry_type in types:
            self._index_new(app, entry_type, index)
        store = self.node.store
        found = (store.get(h) for h in index.search(text, types, limit))
        return [r for r in found if r is not None]

    def _text_index(self) -> TextIndex:
        if self._index is None:
            self._index = self.node.store.text_index()
        return self._index

    def _index_new(self, app: App, entry_type: str, index: TextIndex) -> None:
        """Index the records of ``entry_type`` stored since this type's index last looked."""
        store = self.node.store
        key = _INDEX_META + entry_type
        raw = store.get_meta(key)
        last = 0 if raw is None else int.from_bytes(raw, "big")
        while True:
            rows = store.records_after(last, [entry_type], _INDEX_BATCH)
            for row_id, record in rows:
                text = app.search_text(record)
                if text:
                    index.add(record.hash, entry_type, text)
                last = row_id
            if rows:
                store.set_meta(key, last.to_bytes(8, "big"))
            if len(rows) < _INDEX_BATCH:
                return


class NodeAppAPI:
    """The ``AppAPI`` a node lends one app's functions: its hosted agents, its store, its clock."""

    def __init__(self, host: AppHost, app: App) -> None:
        self._host = host
        self._node = host.node
        self.app = app

    @property
    def app_id(self) -> str:
        return self.app.app_id

    def agents(self) -> Sequence[AgentKey]:
        return list(self._node.agents)

    def _own(self, type_name: str, *, link: bool) -> str:
        try:
            full = self.app.type_name(type_name)
        except KeyError as exc:
            raise AppError(f"{type_name} is not a type of {self.app_id}") from exc
        is_link = full in self.app.link_types
        if is_link != link:
            raise AppError(
                f"{full} is a {'link' if is_link else 'entry'} type: "
                f"use {'link' if is_link else 'commit'}"
            )
        return full

    async def commit(
        self, agent: AgentKey, entry_type: str, entry: Mapping[str, Any]
    ) -> ActionHash:
        full = self._own(entry_type, link=False)
        return await self._host.commit(agent, ActionKind.CREATE, full, entry, self.app)

    async def link(
        self, agent: AgentKey, link_type: str, base: TypedHash, target: TypedHash, tag: Any
    ) -> ActionHash:
        full = self._own(link_type, link=True)
        entry = {"base": base.to_bytes(), "target": target.to_bytes(), "tag": tag}
        return await self._host.commit(agent, ActionKind.LINK, full, entry)

    async def fetch_links(
        self, link_type: str, *bases: TypedHash, wait: float = 3.0
    ) -> Sequence[Record]:
        full = self._own(link_type, link=True)
        return await self._host.fetch_links(full, bases, wait)

    def records(
        self, *entry_types: str, authors: Collection[AgentKey] | None = None
    ) -> Sequence[Record]:
        types = [self._type(t) for t in entry_types] or [
            *self.app.entry_types,
            *self.app.link_types,
        ]
        store = self._node.store
        return [record for t in types for record in store.records_of_type(t, authors)]

    def _type(self, name: str) -> str:
        try:
            return self.app.type_name(name)
        except KeyError as exc:
            raise AppError(f"{name} is not a type of {self.app_id}") from exc

    def get(self, action: ActionHash) -> Record | None:
        return self._node.store.get(action)

    def now(self) -> int:
        return self._node.clock()

    def rules(self) -> Rules:
        """The rules in force now, under the node's governance head."""
        return self._node.rules_now()

    def activity(self, agent: AgentKey) -> Activity:
        """Where ``agent``'s chain stands on this node: head, last credit action, balance."""
        return self._node.store.activity(agent)

    def search(self, text: str, *entry_types: str, limit: int = 50) -> Sequence[Record]:
        types = [self._type(t) for t in entry_types]
        return self._host.search(self.app, text, types, limit)

    @property
    def governance(self) -> NodeGovernanceAPI:
        return NodeGovernanceAPI(self._host.governance)

    @property
    def state(self) -> AppState:
        """This app's own key-value state in the node's store file."""
        return self._node.store.app_state(self.app_id)


class NodeGovernanceAPI:
    """The ``GovernanceAPI`` a node lends app functions: its ``Governance``, as JSON values."""

    def __init__(self, governance: Governance) -> None:
        self._governance = governance

    def proposals(self) -> Sequence[Mapping[str, Any]]:
        return [view.to_value() for view in self._governance.proposals()]

    def foundation(self) -> Mapping[str, Any]:
        return self._governance.foundation()

    async def propose(
        self, coop: AgentKey, kind: str, title: str, body: Mapping[str, Any]
    ) -> ActionHash:
        return (await self._governance.propose(coop, kind, title, body)).hash

    async def vote(self, coop: AgentKey, proposal: ActionHash, choice: str) -> ActionHash:
        return (await self._governance.vote(coop, proposal, choice)).hash

    async def ratify(self, coop: AgentKey, proposal: ActionHash) -> ActionHash:
        return (await self._governance.ratify(coop, proposal)).hash


# -- parameters in, JSON out ------------------------------------------------------------------------


def _bind(
    what: str,
    fn: Callable[..., Any],
    params: Mapping[str, Any],
    agent: str | None,
    resolve: AgentResolver,
) -> dict[str, Any]:
    """The keyword arguments for ``fn`` (after its ``api``); ``ValueError`` naming what does not fit."""
    signature = inspect.signature(fn)
    accepted = list(signature.parameters.values())[1:]
    names = [p.name for p in accepted]
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # annotations that do not resolve: take the text as it comes
        hints = {}
    usage = ", ".join(
        p.name if p.default is inspect.Parameter.empty else f"{p.name}?" for p in accepted
    )
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise ValueError(f"{what} takes no parameter {', '.join(unknown)} (it takes: {usage})")
    kwargs = {
        name: _convert(name, value, hints.get(name), resolve)
        for name, value in params.items()
        if name != "agent"
    }
    if "agent" in names:
        if agent is not None and "agent" in params:
            raise ValueError(f"{what}: name the agent once (--as or agent=)")
        given = agent if agent is not None else params.get("agent")
        kwargs["agent"] = resolve(given, True) if given is None or isinstance(given, str) else given
    elif agent is not None:
        raise ValueError(f"{what} does not act as an agent (no --as)")
    try:
        signature.bind(None, **kwargs)
    except TypeError as exc:
        raise ValueError(f"{what}: {exc} (it takes: {usage})") from exc
    return kwargs


def _convert(name: str, value: Any, hint: Any, resolve: AgentResolver) -> Any:
    """Text typed on a command line as the annotated type, where that is one plain type."""
    if not isinstance(value, str):
        return value
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(inner) != 1:
            return value  # AgentKey | str and the like: the function reads the text itself
        hint = inner[0]
    if hint is bool:
        lowered = value.lower()
        if lowered in ("true", "yes", "1"):
            return True
        if lowered in ("false", "no", "0"):
            return False
        raise ValueError(f"{name}: {value!r} is not true or false")
    if hint is int:
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{name}: {value!r} is not a whole number") from None
    if hint is AgentKey:
        return resolve(value, False)
    if isinstance(hint, type) and issubclass(hint, TypedHash):
        try:
            return hint.parse(value)
        except EncodingError as exc:
            raise ValueError(f"{name}: {exc}") from exc
    return value


def _jsonable(value: Any) -> Any:
    """A function's result as JSON values: hashes as their printable text, tuples as lists."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, TypedHash):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {str(_jsonable(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return str(value)

