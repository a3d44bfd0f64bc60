"""The devnet's plan: its options, constants and data dirs (step 1, prepare: a charter, keys,
configs, geneses committed offline, the built-in apps pinned and approved)."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cli.datadir import DataDir
from cli.ops import now_us
from conode.apps.loader import installed_apps
from conode.chain import ActionKind, Record, author_record
from conode.crypto import Signer
from conode.hashes import AgentKey
from conode.keyfile import key_path, save_key
from conode.offline import commit_offline
from conode.testing.network import make_charter
from conode.validation.charter import AppPin, Charter, Limits
from conode.validation.entries import Credential, Genesis, Role

__all__ = [
    "AMOUNTS",
    "BUYER_SHARE",
    "COOP_LIMITS",
    "DEVNET_GRANT_CAP",
    "GOSSIP_MS",
    "HELLO_MS",
    "LISTEN",
    "MEMBERS_PER_COOP",
    "MEMBER_LIMITS",
    "POLL",
    "PUBLISH_MS",
    "START_TIMEOUT",
    "STOP_GRACE",
    "VOTING_PERIOD_US",
    "DevnetOptions",
    "DevnetPlan",
    "Member",
    "approve_apps",
    "builtin_app_pins",
    "prepare",
]

MEMBERS_PER_COOP: Final = 2
COOP_LIMITS: Final = Limits(credit=10_000, cap=1_000_000)
MEMBER_LIMITS: Final = Limits(credit=500, cap=100_000)
AMOUNTS: Final = (50, 400)
"""Payment amounts in minor units: up to 80 % of a member's credit limit, so a few in a row are refused."""
DEVNET_GRANT_CAP: Final = 100_000
"""Grants are on in a devnet that runs the exchange: an offer earns its co-op up to 1 000.00 DEV."""
BUYER_SHARE: Final = 0.6
LISTEN: Final = "/ip4/127.0.0.1/tcp/0"
GOSSIP_MS: Final = 500
PUBLISH_MS: Final = 300
HELLO_MS: Final = 1000
START_TIMEOUT: Final = 60.0
STOP_GRACE: Final = 20.0
POLL: Final = 0.2
_DAY_US: Final = 86_400 * 10**6
VOTING_PERIOD_US: Final = 7 * _DAY_US


@dataclass(frozen=True, slots=True)
class DevnetOptions:
    """The command line of ``conode devnet``."""

    nodes: int = 3
    payments: int = 30
    seed: str | None = None
    directory: Path | None = None
    keep_running: bool = False
    timeout: float = 120.0
    log_level: str = "info"
    scenario: str = "payments"
    """``payments`` (the default), or ``full``: every app too (``cli.scenario``)."""


@dataclass(frozen=True, slots=True)
class Member:
    """One agent of the devnet: its name, key, and the index of the node that hosts it."""

    name: str
    key: AgentKey
    node: int
    role: str


@dataclass(slots=True)
class DevnetPlan:
    """The prepared data dirs and who lives where."""

    base: Path
    charter: Charter
    seed: str
    dirs: list[DataDir]
    agents: dict[str, Member] = field(default_factory=dict)

    def hosted_by(self, node: int) -> list[Member]:
        """The agents node ``node`` hosts."""
        return [m for m in self.agents.values() if m.node == node]

    def members(self) -> list[Member]:
        """Every member (not co-op) agent."""
        return [m for m in self.agents.values() if m.role == Role.MEMBER]


# -- 1. prepare -----------------------------------------------------------------------------------


def _signer(seed: str, name: str) -> Signer:
    return Signer(hashlib.blake2b(f"conode-devnet/{seed}/{name}".encode(), digest_size=32).digest())


def prepare(
    base: Path,
    nodes: int,
    seed: str,
    members: int = MEMBERS_PER_COOP,
    apps: tuple[AppPin, ...] = (),
    *,
    foundation: bool = False,
    voting_period_us: int = VOTING_PERIOD_US,
    clock_offset_ms: int = 0,
) -> DevnetPlan:
    """N data dirs under ``base``: charter (pinning ``apps``), keys, node key, config and every genesis.

    ``foundation``: the charter names a Foundation key, and node 0 hosts it (the steward).
    """
    coops = [(f"coop{i}", _signer(seed, f"coop{i}")) for i in range(nodes)]
    fund = _signer(seed, "foundation") if foundation else None
    created_at = now_us() + clock_offset_ms * 1_000
    charter = make_charter(
        coops,
        created_at=created_at,
        coop_limits=COOP_LIMITS,
        member_limits=MEMBER_LIMITS,
        replication=3,
        name=f"devnet {seed}",
        foundation=None if fund is None else AgentKey(fund.public_key),
        apps=apps,
        currency="DEV",
        registration="DEV-{i}",
        voting_period_us=voting_period_us,
        app_config=(
            {"exchange": {"issues_credit": True, "grant_cap": DEVNET_GRANT_CAP}}
            if any(pin.id == "exchange" for pin in apps)
            else {}
        ),
    )
    plan = DevnetPlan(base, charter, seed, [])
    for i, (coop_name, coop_signer) in enumerate(coops):
        data = DataDir(base / f"node{i}")
        data.init(node_seed=_signer(seed, f"node{i}").seed)
        config = data.config()
        data.write_config(
            dataclasses.replace(
                config,
                listen=LISTEN,
                gossip_interval_ms=GOSSIP_MS,
                publish_interval_ms=PUBLISH_MS,
                hello_interval_ms=HELLO_MS,
                clock_offset_ms=clock_offset_ms,
                web_listen="127.0.0.1:0",  # many nodes on one machine: each page on a free port
            )
        )
        data.install_charter(charter.to_bytes())
        plan.dirs.append(data)
        founding = charter.founding[i]
        signers = [(coop_name, coop_signer, Role.COOP)]
        signers += [
            (f"{coop_name}-m{j}", _signer(seed, f"{coop_name}-m{j}"), Role.MEMBER)
            for j in range(members)
        ]
        if fund is not None and i == 0:
            signers.append(("foundation", fund, Role.FOUNDATION))
        records: list[Record] = []
        for name, signer, role in signers:
            save_key(key_path(data.keys_dir, name), signer, name, None)
            plan.agents[name] = Member(name, AgentKey(signer.public_key), i, role)
            if role == Role.COOP:
                genesis = Genesis(
                    charter.network_id, Role.COOP, founding.legal_name, founding.registration
                )
            elif role == Role.FOUNDATION:
                genesis = Genesis(charter.network_id, Role.FOUNDATION, "The Foundation")
            else:
                credential = Credential.issue(
                    coop_signer, AgentKey(signer.public_key), name, created_at
                )
                genesis = Genesis(charter.network_id, Role.MEMBER, name, credential=credential)
            records.append(
                author_record(
                    signer,
                    None,
                    kind=ActionKind.GENESIS,
                    timestamp=max(now_us(), created_at),
                    entry=genesis.to_value(),
                )
            )
        with data.open_node_store() as store:
            commit_offline(store, charter, records)
    return plan


def builtin_app_pins() -> tuple[AppPin, ...]:
    """The apps that come with conode (entry points in ``conode.apps``), pinned at their installed code."""
    pins = []
    for app_id, installed in installed_apps().items():
        if installed.point.module.startswith("conode.apps."):
            version = installed.load().version  # our own code: importing it runs nothing foreign
            pins.append(AppPin(app_id, version, installed.bundle_hash()))
    return tuple(pins)


def approve_apps(plan: DevnetPlan) -> None:
    """Each node's operator approves every app the devnet's charter pins, before the first start."""
    for data in plan.dirs:
        with data.open_node_store() as store:
            for pin in plan.charter.params.apps:
                store.approve_bundle(pin.code_hash, pin.id, pin.version, now_us())
