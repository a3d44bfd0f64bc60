"""The app SDK: declarative entry types, pure validators, callable functions, bundles.

How it works:

- An ``App`` declares its **entry types** (``EntryType``) and **link types**
  (``LinkType``), each with a schema of ``Field`` values. The engine hands the
  app every record whose entry type starts with ``<app id>/``; the app reads
  the entry against its schema first (a structural failure is
  ``Invalid("schema", ...)`` naming the field), then runs the type's own
  validator with a ``Context`` that lends only deterministic reads: the
  record, the checked entry, the rules in force, ``must_get`` (a dependency,
  checked by the engine), ``party`` (who an agent is at the record's time) and
  the author's role. A validator returns a ``Verdict`` and never raises for a
  "no".
- Every entry and link may carry ``rules``: the governance log head it was
  made under (the engine reads it to find the rules in force, as for the
  built-in types). The SDK adds it to every schema; an app may not declare it.
- **Functions** (``@app.function``) are what the node exposes as
  ``conode call APP FN``; they receive an ``AppAPI`` (implemented by the node).
  An entry type may name ``searchable`` text fields: the node indexes them
  (``App.search_text``) and ``AppAPI.search`` finds records by words.
- **Watchers** (``@app.watch("offer")``) are what the node calls, by itself,
  with each record of that type it has judged valid and stored, whoever
  made it and however it arrived; with ``AppAPI.state`` (the app's own
  key-value state on the node) an app reacts to records without being asked.
- **Bundles**: an app's code travels as a deterministic tar archive of its
  package's ``.py``/``.toml``/``.md`` files; the charter pins its
  ``BundleHash``, and ``may_run`` says whether a node may run it.

Pure: no I/O, no clock, no randomness (``conode.apps.loader`` is the shell that
reads package directories and entry points). Apps import only this module,
``conode.validation`` values and the standard library.
"""

from __future__ import annotations

from conode.apps.sdk.api import AppAPI, AppFunction, AppState, GovernanceAPI, Watcher
from conode.apps.sdk.app import RESERVED_APP_IDS, App, Read
from conode.apps.sdk.bundle import (
    BUNDLE_SUFFIXES,
    MAX_BUNDLE_FILES,
    ApprovalStore,
    bundle_hash,
    may_run,
    pack_bundle,
    unpack_bundle,
    verify_bundle,
)
from conode.apps.sdk.context import Context, Fetched
from conode.apps.sdk.fields import Bool, Bytes, Field, Hash, Int, ListOf, Map, OneOf, Optional, Text
from conode.apps.sdk.types import RULES_FIELD, EntryType, LinkType, Validator, anchor
from conode.validation.entries import Role  # apps declare roles with the SDK's names

__all__ = [
    "BUNDLE_SUFFIXES",
    "MAX_BUNDLE_FILES",
    "RESERVED_APP_IDS",
    "RULES_FIELD",
    "App",
    "AppAPI",
    "AppFunction",
    "AppState",
    "ApprovalStore",
    "Bool",
    "Bytes",
    "Context",
    "EntryType",
    "Fetched",
    "Field",
    "GovernanceAPI",
    "Hash",
    "Int",
    "LinkType",
    "ListOf",
    "Map",
    "OneOf",
    "Optional",
    "Read",
    "Role",
    "Text",
    "Validator",
    "Watcher",
    "anchor",
    "bundle_hash",
    "may_run",
    "pack_bundle",
    "unpack_bundle",
    "verify_bundle",
]
