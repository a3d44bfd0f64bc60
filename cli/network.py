"""Joining a network, offline: co-op and member geneses, membership credentials, the node's identity.

No printing here (``cli.main`` renders). Every genesis goes through
``conode.offline.commit_offline``, so it is judged by the same rules a
running node applies. These functions write to the store directly: the
commands that call them refuse to run while the data dir's node is running.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cli.datadir import CommandError, DataDir
from cli.ops import AgentRef, load_signer, now_us, resolve_agent
from conode import boundedjson
from conode.atomicfile import write_atomically
from conode.chain import ActionKind, Record, author_record
from conode.crypto import SIGNATURE_SIZE, Signer
from conode.errors import EncodingError, ValidationError
from conode.hashes import ActionHash, AgentKey, CharterHash
from conode.keyfile import KeyInfo, PassphraseSource, key_path, save_key
from conode.node.rules_head import RulesHead
from conode.offline import commit_offline
from conode.store import NodeStore
from conode.validation.charter import Charter
from conode.validation.engine import Engine
from conode.validation.entries import Credential, Genesis, Role
from conode.validation.governance import Rules

__all__ = [
    "CREDENTIAL_FORMAT",
    "CredentialFile",
    "add_member",
    "coop_genesis",
    "foundation_genesis",
    "issue_credential",
    "join_with_credential",
    "member_ref",
    "peer_id_of",
    "read_credential",
    "write_credential",
]

CREDENTIAL_FORMAT: Final = "conode-credential"
_CREDENTIAL_VERSION: Final = 1
_MAX_CREDENTIAL_FILE: Final = 16 * 1024
_B58: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


@dataclass(frozen=True, slots=True)
class CredentialFile:
    """A membership credential as handed to a member who runs its own node."""

    network: CharterHash
    credential: Credential

    def to_json(self) -> dict[str, Any]:
        """The file's JSON document."""
        c = self.credential
        return {
            "format": CREDENTIAL_FORMAT,
            "version": _CREDENTIAL_VERSION,
            "network": str(self.network),
            "coop": str(c.coop),
            "member": str(c.member),
            "name": c.name,
            "issued_at": c.issued_at,
            "signature": base64.b64encode(c.signature).decode("ascii"),
        }


def coop_genesis(
    data: DataDir, store: NodeStore, charter: Charter, ref: AgentRef, source: PassphraseSource
) -> Record:
    """Commit the genesis of a local co-op: a founding co-op of the charter, or one admitted by a
    ratified admission vote this store holds (its genesis pins that governance head: the
    admission is its membrane proof, and every peer checks it against the log)."""
    if store.head(ref.agent) is not None:
        raise CommandError(f"{ref.label()} already has a chain in this store")
    founding = charter.founding_coop(ref.agent)
    now = now_us()
    if founding is not None:
        genesis = Genesis(charter.network_id, Role.COOP, founding.legal_name, founding.registration)
        timestamp = max(now, charter.created_at)
    else:
        head, rules = _rules_now(store, charter, now)
        info = rules.coops.get(ref.agent)
        if info is None or head is None or ref.agent in rules.revoked:
            raise CommandError(
                f"{ref.label()} is neither a founding co-op of {charter.name} nor admitted by a "
                "ratified admission vote this node holds: once `conode foundation propose --admit` "
                "is ratified, run this node (`conode run`) until it has caught up with its peers "
                "(`conode foundation show ID` says ratified), stop it and try again"
            )
        genesis = Genesis(
            charter.network_id, Role.COOP, info.legal_name, info.registration, rules=head
        )
        timestamp = max(now, info.since)
    signer = load_signer(data, ref, source)
    record = author_record(
        signer, None, kind=ActionKind.GENESIS, timestamp=timestamp, entry=genesis.to_value()
    )
    commit_offline(store, charter, [record])
    return record


def foundation_genesis(
    data: DataDir, store: NodeStore, charter: Charter, ref: AgentRef, source: PassphraseSource
) -> Record:
    """Commit the Foundation's genesis: ``ref`` must hold the key the rules in force name.

    The node that holds it from then on is the Foundation's steward (it pays ratified
    disbursements). A Foundation already started elsewhere is moved with ``conode recover``.
    """
    if store.head(ref.agent) is not None:
        raise CommandError(f"{ref.label()} already has a chain in this store")
    now = now_us()
    head, rules = _rules_now(store, charter, now)
    if rules.foundation is None:
        raise CommandError(f"the rules of {charter.name} name no Foundation key")
    if rules.foundation != ref.agent:
        raise CommandError(
            f"{ref.label()} is not the Foundation's key ({rules.foundation}): "
            "the charter (or a ratified amendment) names it"
        )
    signer = load_signer(data, ref, source)
    genesis = Genesis(charter.network_id, Role.FOUNDATION, "The Foundation", rules=head)
    record = author_record(
        signer,
        None,
        kind=ActionKind.GENESIS,
        timestamp=max(now, charter.created_at),
        entry=genesis.to_value(),
    )
    commit_offline(store, charter, [record])
    return record


def _rules_now(store: NodeStore, charter: Charter, now: int) -> tuple[ActionHash | None, Rules]:
    """The governance head this store follows and the rules in force under it now."""
    head = RulesHead(store, Engine(charter), lambda: now)
    try:
        return head.current(), head.rules_now()
    except ValidationError as exc:
        raise CommandError(
            f"this store does not hold the governance log it follows ({exc}): run the node until "
            "it has caught up with its peers"
        ) from exc


def issue_credential(
    data: DataDir,
    store: NodeStore,
    charter: Charter,
    coop: AgentRef,
    member: AgentKey,
    name: str,
    source: PassphraseSource,
) -> Credential:
    """The co-op's signed membership credential for ``member`` (named ``name``)."""
    if not name.strip():
        raise CommandError("a member's name must not be empty")
    genesis = store.get_genesis(coop.agent)
    if genesis is None:
        raise CommandError(
            f"{coop.label()} has no chain here: commit its genesis first (`conode coop genesis`)"
        )
    try:
        role = Genesis.from_value(genesis.entry_value()).role
    except (EncodingError, ValueError) as exc:
        raise CommandError(f"the genesis of {coop.label()} is unreadable: {exc}") from exc
    if role != Role.COOP:
        raise CommandError(f"{coop.label()} is not a co-op (its genesis says {role})")
    signer = load_signer(data, coop, source)
    return Credential.issue(signer, member, name.strip(), max(now_us(), charter.created_at))


def add_member(
    data: DataDir,
    store: NodeStore,
    charter: Charter,
    name: str,
    coop: AgentRef,
    *,
    display_name: str | None,
    coop_source: PassphraseSource,
    passphrase: bytes | None,
) -> tuple[KeyInfo, Record]:
    """A new member hosted here: its key file, a credential from ``coop``, and its genesis.

    If the genesis is refused, the brand-new key file is removed again.
    """
    path = key_path(data.keys_dir, name)
    if path.exists():
        raise CommandError(f"agent {name!r} already exists ({path})")
    signer = Signer.generate()
    member = AgentKey(signer.public_key)
    credential = issue_credential(
        data, store, charter, coop, member, display_name or name, coop_source
    )
    info = save_key(path, signer, name, passphrase)
    try:
        record = _member_genesis(store, charter, signer, credential)
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    return info, record


def join_with_credential(
    data: DataDir,
    store: NodeStore,
    charter: Charter,
    ref: AgentRef,
    credential_file: CredentialFile,
    source: PassphraseSource,
) -> Record:
    """Commit the genesis of a local agent with the membership credential its co-op gave it."""
    credential = credential_file.credential
    if credential_file.network != charter.network_id:
        raise CommandError(
            f"the credential is for network {credential_file.network}, "
            f"this data dir is in {charter.network_id}"
        )
    if credential.member != ref.agent:
        raise CommandError(f"the credential is for {credential.member.short()}…, not {ref.label()}")
    if store.head(ref.agent) is not None:
        raise CommandError(f"{ref.label()} already has a chain in this store")
    signer = load_signer(data, ref, source)
    return _member_genesis(store, charter, signer, credential)


def _member_genesis(
    store: NodeStore, charter: Charter, signer: Signer, credential: Credential
) -> Record:
    genesis = Genesis(charter.network_id, Role.MEMBER, credential.name, credential=credential)
    record = author_record(
        signer,
        None,
        kind=ActionKind.GENESIS,
        timestamp=max(now_us(), credential.issued_at),
        entry=genesis.to_value(),
    )
    commit_offline(store, charter, [record])
    return record


def write_credential(path: Path, credential_file: CredentialFile) -> None:
    """Write a credential file (JSON; it holds nothing secret), refusing to replace another file."""
    text = json.dumps(credential_file.to_json(), indent=2) + "\n"
    try:
        write_atomically(path, text.encode("utf-8"), replace=False)
    except FileExistsError as exc:
        raise CommandError(f"{path} already exists") from exc
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from exc


def read_credential(path: Path) -> CredentialFile:
    """A credential file whose co-op signature verifies; ``CommandError`` otherwise."""
    try:
        with open(path, "rb") as file:
            raw = file.read(_MAX_CREDENTIAL_FILE + 1)
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        document = boundedjson.loads(raw)
    except ValueError as exc:  # JsonTooDeep and JsonTooLarge are ValueErrors too
        raise CommandError(f"{path} is not a credential file (not JSON)") from exc
    if not isinstance(document, dict) or document.get("format") != CREDENTIAL_FORMAT:
        raise CommandError(f"{path} is not a conode credential file")
    if document.get("version") != _CREDENTIAL_VERSION:
        raise CommandError(f"{path}: unsupported credential version {document.get('version')!r}")
    try:
        signature = base64.b64decode(str(document["signature"]), validate=True)
        issued_at = document["issued_at"]
        name = document["name"]
        if type(issued_at) is not int or not isinstance(name, str) or not name:
            raise ValueError("issued_at must be an integer and name a string")
        if len(signature) != SIGNATURE_SIZE:
            raise ValueError("the signature is the wrong size")
        credential = Credential(
            AgentKey.parse(str(document["coop"])),
            AgentKey.parse(str(document["member"])),
            name,
            issued_at,
            signature,
        )
        network = CharterHash.parse(str(document["network"]))
    except (KeyError, ValueError, binascii.Error, EncodingError) as exc:
        raise CommandError(f"{path} is damaged: {exc}") from exc
    if not credential.signature_ok():
        raise CommandError(f"{path}: the co-op's signature on the credential does not verify")
    return CredentialFile(network, credential)


def peer_id_of(seed: bytes) -> str:
    """The libp2p peer id of a node seed (``12D3KooW…``): identity multihash of its Ed25519 key."""
    public = Signer(seed).public_key
    protobuf = b"\x08\x01\x12\x20" + public  # PublicKey{Type: Ed25519, Data: 32 bytes}
    return _base58(b"\x00" + bytes([len(protobuf)]) + protobuf)


def _base58(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    text = ""
    while number:
        number, digit = divmod(number, 58)
        text = _B58[digit] + text
    zeros = len(data) - len(data.lstrip(b"\x00"))
    return "1" * zeros + text


def member_ref(data: DataDir, text: str) -> AgentRef:
    """A local agent named on the command line (by name or key)."""
    ref = resolve_agent(data, text)
    if ref.name is None:
        raise CommandError(f"{ref.label()} is not a local agent (no key file in {data.keys_dir})")
    return ref
