"""What the commands and the demo do, as functions over the store, key files and chains.

No printing here: each function returns values for ``cli.main`` to render.
Errors are ``ConodeError`` subclasses.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli.datadir import CommandError, DataDir
from conode import encoding
from conode.chain import ActionKind, Record, Violation
from conode.chain.records import MAX_ENTRY_TYPE_LENGTH, author_record
from conode.crypto import Signer
from conode.errors import KeyFileError
from conode.exportfile import ChainFile, ChainFileHeader, verify_blobs, write_chain_file
from conode.hashes import AgentKey, resolve
from conode.keyfile import (
    KeyInfo,
    PassphraseSource,
    check_agent_name,
    key_path,
    list_keys,
    load_key,
    save_key,
)
from conode.store import Imported, Store

__all__ = [
    "AgentRef",
    "Verdict",
    "commit_entry",
    "create_agent",
    "export_chain",
    "genesis_entry",
    "import_chain_file",
    "load_signer",
    "local_agents",
    "now_us",
    "parse_entry_json",
    "resolve_agent",
    "verify_file",
    "verify_stored",
]

ProgressFn = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class AgentRef:
    """An agent named on the command line: its key, and its local name if we hold its key."""

    agent: AgentKey
    name: str | None

    def label(self) -> str:
        """``name (agt_xxxx…)`` or just the short key."""
        return f"{self.name} ({self.agent.short()}…)" if self.name else f"{self.agent.short()}…"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The result of re-checking a chain: how many records it has, and the first violation."""

    agent: AgentKey
    records: int
    violation: Violation | None

    @property
    def valid(self) -> bool:
        """True when no rule is broken."""
        return self.violation is None


def now_us() -> int:
    """The wall clock in integer microseconds since the Unix epoch."""
    return time.time_ns() // 1000


def genesis_entry(name: str) -> encoding.Value:
    """The entry of an agent's genesis record (the one place that builds it).

    ``network`` and ``membrane_proof`` stay null until the credit rules give
    them meaning (the charter hash, and the co-op's membership credential).
    """
    return {"network": None, "membrane_proof": None, "identity": {"name": name}}


def local_agents(data: DataDir) -> list[tuple[Path, KeyInfo]]:
    """The agents whose key files are in the data dir, by name."""
    return list_keys(data.keys_dir)


def resolve_agent(data: DataDir, text: str | None) -> AgentRef:
    """An agent from a local name, a printable key (``agt_…``), or None for "the only local one"."""
    agents = local_agents(data)
    if text is None:
        if not agents:
            raise CommandError("no local agents: create one with `conode agent new NAME`")
        if len(agents) > 1:
            names = ", ".join(info.name for _path, info in agents)
            raise CommandError(f"there are several local agents ({names}): name one")
        info = agents[0][1]
        return AgentRef(info.agent, info.name)
    if text.lower().startswith("agt_"):
        agent = resolve(AgentKey, text, lambda lo, hi: _local_between(agents, lo, hi))
        local = [info.name for _path, info in agents if info.agent == agent]
        return AgentRef(agent, local[0] if local else None)
    for _path, info in agents:
        if info.name == text:
            return AgentRef(info.agent, info.name)
    check_agent_name(text)
    known = ", ".join(info.name for _path, info in agents) or "none"
    raise CommandError(f"no local agent named {text!r} (local agents: {known})")


def _local_between(agents: list[tuple[Path, KeyInfo]], lo: bytes, hi: bytes) -> list[bytes]:
    """The local agents' raw keys in [lo, hi] (a key prefix's range), for ``resolve``."""
    return sorted(info.agent.raw for _path, info in agents if lo <= info.agent.raw <= hi)


def create_agent(
    data: DataDir, store: Store, name: str, passphrase: bytes | None, *, timestamp: int
) -> tuple[KeyInfo, Record]:
    """A new agent: its key file (``passphrase=None``: unencrypted), then its genesis record.

    If the genesis record cannot be stored, the brand-new key file is removed
    again: nothing was signed with it that anyone holds.
    """
    path = key_path(data.keys_dir, name)
    if path.exists():
        raise CommandError(f"agent {name!r} already exists ({path})")
    signer = Signer.generate()
    info = save_key(path, signer, name, passphrase)
    try:
        record = author_record(
            signer, None, kind=ActionKind.GENESIS, timestamp=timestamp, entry=genesis_entry(name)
        )
        store.append([record])
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    return info, record


def load_signer(data: DataDir, ref: AgentRef, source: PassphraseSource) -> Signer:
    """The secret key of a local agent (asks ``source`` for the passphrase if it is encrypted)."""
    if ref.name is None:
        raise CommandError(f"agent {ref.agent.short()}… is not a local agent (no key file)")
    signer = load_key(key_path(data.keys_dir, ref.name), source)
    if AgentKey(signer.public_key) != ref.agent:
        raise KeyFileError(f"the key file of {ref.name} holds another agent's key")
    return signer


def commit_entry(
    store: Store,
    signer: Signer,
    *,
    entry_type: str,
    entry: encoding.Value,
    timestamp: int,
    kind: ActionKind = ActionKind.CREATE,
    commit: Callable[[Record], None] | None = None,
) -> Record:
    """Sign and durably append one entry-carrying action after the agent's current head.

    The timestamp is raised to the head's if the clock went backwards, since
    a chain's timestamps never decrease. ``commit`` appends it instead of
    ``store.append`` (a networked chain: ``conode.offline.commit_offline``,
    which judges it by the network's rules first).
    """
    if not 0 < len(entry_type) <= MAX_ENTRY_TYPE_LENGTH:
        raise CommandError(f"an entry type is 1 to {MAX_ENTRY_TYPE_LENGTH} characters")
    agent = AgentKey(signer.public_key)
    head = store.head(agent)
    if head is None:
        raise CommandError(f"agent {agent.short()}… has no chain in this store")
    try:
        encoding.encode(entry)
    except (TypeError, ValueError) as exc:
        raise CommandError(f"the entry cannot be stored: {exc}") from exc
    record = author_record(
        signer,
        head,
        kind=kind,
        timestamp=max(timestamp, head.timestamp),
        entry=entry,
        entry_type=entry_type,
    )
    if commit is None:
        store.append([record])
    else:
        commit(record)
    return record


def parse_entry_json(text: str) -> dict[str, Any]:
    """A JSON object as an entry value: integers, strings, booleans, null, arrays, objects."""

    def refuse_float(literal: str) -> Any:
        raise CommandError(
            f"--data: {literal} is not an integer (conode stores no floats: use minor units)"
        )

    try:
        value = json.loads(text, parse_float=refuse_float, parse_constant=refuse_float)
    except json.JSONDecodeError as exc:
        raise CommandError(f"--data is not valid JSON: {exc}") from exc
    if type(value) is not dict:
        raise CommandError("--data must be a JSON object")
    try:
        encoding.encode(value)
    except (TypeError, ValueError) as exc:
        raise CommandError(f"--data cannot be stored: {exc}") from exc
    return value


def verify_stored(store: Store, agent: AgentKey, progress: ProgressFn | None = None) -> Verdict:
    """Re-check ``agent``'s stored chain with every chain rule (and the store's own checks).

    With ``progress``, the chain rules run first over the record bytes with a
    progress callback, then ``Store.verify`` adds its index and head checks.
    """
    count = store.count(agent)
    if count == 0:
        raise CommandError(f"this store holds no chain for {agent.short()}…")
    if progress is not None:
        violation = verify_blobs(store.record_blobs(agent), progress)
        if violation is not None:
            return Verdict(agent, count, violation)
    return Verdict(agent, count, store.verify(agent))


def verify_file(path: Path, progress: ProgressFn | None = None) -> Verdict:
    """Re-check the chain in an export file with every chain rule, as it streams."""
    with ChainFile(path) as chain_file:
        header = chain_file.header
        violation = verify_blobs(chain_file, progress)
    return Verdict(header.author, header.count, violation)


def export_chain(store: Store, agent: AgentKey, out: Path) -> tuple[int, int]:
    """Write ``agent``'s stored chain to an export file; (records, bytes) written."""
    count = store.count(agent)
    if count == 0:
        raise CommandError(f"this store holds no chain for {agent.short()}…")
    size = write_chain_file(out, ChainFileHeader(agent, count), store.record_blobs(agent))
    return count, size


def import_chain_file(
    store: Store, path: Path, progress: ProgressFn | None = None
) -> tuple[ChainFileHeader, Imported]:
    """Verify and store the chain in an export file; nothing is stored if any rule is broken.

    The store checks every record as it streams in and refuses the whole
    file at the first violation (``ChainError``); importing again adds nothing.
    """
    with ChainFile(path) as chain_file:
        header = chain_file.header
        # a framing problem found mid-stream raises EncodingError: the import rolls back
        imported = store.import_chain(_reporting(chain_file, progress))
    return header, imported


def _reporting(blobs: Iterable[bytes], progress: ProgressFn | None) -> Iterator[bytes]:
    for number, blob in enumerate(blobs, start=1):
        if progress is not None:
            progress(number)
        yield blob
