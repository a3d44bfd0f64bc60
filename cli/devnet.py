"""``conode devnet``: a real network on 127.0.0.1 — N ``conode run`` processes, payments, convergence, audit.

How it works:

1. **Prepare** N data dirs with the Python API (no prompts): a fresh
   charter naming one co-op per node, each co-op with two members hosted on
   its node (unencrypted key files: this is a test network), the node key,
   a config with fast timings, and every genesis committed offline. The
   charter names a Foundation key, hosted on node 0 (the steward). The
   charter pins the built-in apps (lookout, exchange, …) at their
   installed code, and each node's operator approves them, so they run.
2. **Start** node 0, read its address from its ready file, then start the
   others with ``--bootstrap`` that address; wait until every node is
   connected to every other, knows which agents each hosts, and holds every
   genesis.
3. **Pay**: K payments between members of different co-ops, through the
   payer's node API. Most come from each co-op's first member (a "buyer")
   and go to other co-ops' second members ("sellers"), 50 to 400 minor
   units against a member credit limit of 500, so some are refused for
   exceeding it, as they must be.
4. **Converge**: ask every node to ``sync`` in rounds until all report the
   same ``heads_digest`` (or the timeout passes).
5. **Audit** every chain through the API of a node that does not host it,
   and check that the audited balances sum to zero and agree with what
   each agent's own node says.
6. **Stop** every node (SIGTERM, then SIGKILL after a grace period) — always,
   even on Ctrl-C — and report.

``prepare``, ``start_nodes``, ``wait_until_meshed`` and ``stop_nodes`` are
also used by the tests that drive a devnet through the CLI.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final, TextIO

from cli.client import ApiClient, ApiError
from cli.datadir import CommandError, DataDir
from cli.money import format_amount
from cli.ops import now_us
from cli.render import table
from cli.scenario import MONTH_LEAD_S, VOTING_PERIOD_S, clock_offset_ms, report_lines, run_full
from conode.apps.loader import installed_apps
from conode.chain import ActionKind, Record, author_record
from conode.crypto import Signer
from conode.errors import ConodeError
from conode.hashes import AgentKey
from conode.keyfile import key_path, save_key
from conode.offline import commit_offline
from conode.validation.charter import AppPin, Charter, FoundingCoop, Limits, Parameters
from conode.validation.entries import Credential, Genesis, Role

__all__ = [
    "DevnetOptions",
    "DevnetPlan",
    "DevnetResult",
    "NodeProcess",
    "approve_apps",
    "builtin_app_pins",
    "prepare",
    "run_devnet",
    "start_nodes",
    "stop_nodes",
    "wait_until_meshed",
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


@dataclass(slots=True)
class NodeProcess:
    """One running ``conode run`` process."""

    index: int
    data: DataDir
    process: subprocess.Popen[bytes]
    log_path: Path
    addrs: list[str] = field(default_factory=list)
    exit_code: int | None = None

    @property
    def client(self) -> ApiClient:
        """A client of this node's API."""
        return ApiClient(self.data, timeout=60.0)


@dataclass(slots=True)
class DevnetResult:
    """What a devnet run showed; ``ok`` is its claim."""

    nodes: int = 0
    agents: int = 0
    payments: int = 0
    committed: int = 0
    refused: int = 0
    failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    converged: bool = False
    convergence_s: float | None = None
    audited: int = 0
    violations: list[dict[str, Any]] = field(default_factory=list)
    balance_total: int | None = None
    issued: int = 0
    """What apps (the exchange's grants) issued: the issuance account is its negative."""
    balances: list[dict[str, Any]] = field(default_factory=list)
    """Each agent's final balance as audited: name, key, hosting node, balance (minor units)."""
    balances_agree: bool = False
    open_sessions: int = 0
    locked_chains: int = 0
    clean_stop: bool | None = None
    elapsed_s: float = 0.0
    seed: str = ""
    data_dir: str | None = None
    currency: str = "DEV"
    scale: int = 2
    scenario: dict[str, Any] | None = None
    """The full scenario's figures (``--scenario full``), joined to the JSON summary."""
    scenario_ok: bool = True

    @property
    def zero_sum(self) -> bool:
        """Every chain was audited, and its balances and the issuance account sum to zero."""
        return (
            self.balance_total is not None
            and self.balance_total - self.issued == 0
            and self.audited == self.agents
        )

    @property
    def ok(self) -> bool:
        """Converged, zero sum, no violation, and every node agrees with the audits."""
        return (
            self.converged
            and self.zero_sum
            and not self.violations
            and self.balances_agree
            and self.scenario_ok
        )

    def percentile(self, q: float) -> float | None:
        """The ``q`` quantile of committed payments' latency in ms (nearest rank), or None."""
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
        return round(ordered[index], 1)

    def as_json(self) -> dict[str, Any]:
        """The summary as one JSON object (the last line of ``--json``)."""
        return {
            "nodes": self.nodes,
            "agents": self.agents,
            "payments": self.payments,
            "payments_committed": self.committed,
            "payments_refused": self.refused,
            "payments_failed": self.failed,
            "refusal_reasons": self.reasons,
            "p50_payment_ms": self.percentile(0.5),
            "p95_payment_ms": self.percentile(0.95),
            "converged": self.converged,
            "convergence_s": self.convergence_s,
            "audited_chains": self.audited,
            "audit_violations": len(self.violations),
            "violations": self.violations,
            "balance_total": self.balance_total,
            "balances": self.balances,
            "issuance_account": -self.issued,
            "zero_sum": self.zero_sum,
            "balances_agree": self.balances_agree,
            "open_sessions": self.open_sessions,
            "locked_chains": self.locked_chains,
            "clean_stop": self.clean_stop,
            "ok": self.ok,
            "elapsed_s": self.elapsed_s,
            "seed": self.seed,
            "data_dir": self.data_dir,
            **(self.scenario or {}),
        }


class _Stopped(Exception):
    """SIGTERM arrived: unwind and clean up, as for Ctrl-C."""


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
    charter = Charter(
        name=f"devnet {seed}",
        currency="DEV",
        scale=2,
        founding=tuple(
            FoundingCoop(AgentKey(s.public_key), f"{name} Ltd", f"DEV-{i}")
            for i, (name, s) in enumerate(coops)
        ),
        params=Parameters(
            coop_limits=COOP_LIMITS,
            member_limits=MEMBER_LIMITS,
            foundation_share_bp=1_000,
            quorum_bp=5_000,
            threshold_bp=5_001,
            voting_period_us=voting_period_us,
            replication=3,
            apps=apps,
            app_config=(
                {"exchange": {"issues_credit": True, "grant_cap": DEVNET_GRANT_CAP}}
                if any(pin.id == "exchange" for pin in apps)
                else {}
            ),
        ),
        created_at=created_at,
        foundation=None if fund is None else AgentKey(fund.public_key),
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


# -- 2. start ----------------------------------------------------------------------------------------


def node_command(data: DataDir, *extra: str) -> list[str]:
    """The ``conode`` command line for a data dir, run with this very interpreter."""
    return [sys.executable, "-m", "cli", "--data-dir", str(data.root), *extra]


def start_node(
    plan: DevnetPlan, index: int, bootstrap: list[str], log_level: str = "info"
) -> NodeProcess:
    """Start ``conode run`` for node ``index`` (its output goes to ``DIR/node.log``)."""
    data = plan.dirs[index]
    log_path = data.root / "node.log"
    command = node_command(data, "run", "--log-level", log_level, "--listen", LISTEN)
    if bootstrap:
        command += ["--bootstrap", *bootstrap]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONODE_")}
    env["PYTHONUNBUFFERED"] = "1"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    return NodeProcess(index, data, process, log_path)


def _die_with_parent() -> None:
    """In the child, on Linux: be sent SIGTERM if the devnet process dies (even by SIGKILL)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


def wait_ready(node: NodeProcess, timeout: float = START_TIMEOUT) -> list[str]:
    """Wait for the node's ready file and API; its listen addresses."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = node.process.poll()
        if code is not None:
            raise CommandError(
                f"node {node.index} exited with code {code} while starting: {_last_line(node.log_path)}"
            )
        # the ready file says "up"; the addresses come from the API (never a half-written file)
        if node.data.ready_path.is_file() and node.data.socket_path.exists():
            with contextlib.suppress(ConodeError):
                addrs = [str(a) for a in node.client.call("status")["listen"]]
                if addrs:
                    node.addrs = addrs
                    return addrs
        time.sleep(POLL)
    raise CommandError(
        f"node {node.index} did not start within {timeout:g} s (see {node.log_path})"
    )


def start_nodes(plan: DevnetPlan, log_level: str = "info", say: Any = None) -> list[NodeProcess]:
    """Node 0 first, then every other with node 0 as its bootstrap peer; all ready."""
    started: list[NodeProcess] = []
    try:
        first = start_node(plan, 0, [], log_level)
        started.append(first)
        addrs = wait_ready(first)
        if say is not None:
            say(f"node 0 is up at {addrs[0]}")
        for index in range(1, len(plan.dirs)):
            started.append(start_node(plan, index, [addrs[0]], log_level))
        for node in started[1:]:
            wait_ready(node)
            if say is not None:
                say(f"node {node.index} is up at {node.addrs[0]}")
    except BaseException:
        stop_nodes(started)
        raise
    return started


def wait_until_meshed(
    plan: DevnetPlan, nodes: list[NodeProcess], timeout: float = START_TIMEOUT
) -> float:
    """Wait until each node is connected to all others, knows their agents, holds every genesis."""
    started = time.monotonic()
    deadline = started + timeout
    total = len(plan.agents)
    last = ""
    while True:
        missing = []
        for node in nodes:
            try:
                peers = node.client.call("peers")
                status = node.client.call("status")
            except ConodeError as exc:
                missing.append(f"node {node.index}: {exc}")
                continue
            known = sum(len(p.get("agents") or []) for p in peers)
            own = len(plan.hosted_by(node.index))
            if len(peers) < len(nodes) - 1 or known < total - own:
                missing.append(
                    f"node {node.index} sees {len(peers)} peers and {known} of their agents"
                )
            elif status.get("chains", 0) < total:
                missing.append(f"node {node.index} holds {status.get('chains')} of {total} chains")
                with contextlib.suppress(ConodeError):
                    node.client.call("sync")
        if not missing:
            return time.monotonic() - started
        last = "; ".join(missing)
        if time.monotonic() > deadline:
            raise CommandError(f"the nodes did not find each other within {timeout:g} s: {last}")
        time.sleep(POLL * 2)


def stop_nodes(nodes: list[NodeProcess], grace: float = STOP_GRACE) -> bool:
    """SIGTERM every node, wait, SIGKILL what is left; True if all exited 0 and left no socket."""
    for node in nodes:
        if node.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                node.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    clean = True
    for node in nodes:
        try:
            node.exit_code = node.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                node.process.kill()
            node.exit_code = node.process.wait()
        if node.exit_code != 0 or node.data.socket_path.exists():
            clean = False
    return clean


def _last_line(path: Path) -> str:
    """The last non-empty line of a log file (why a node stopped)."""
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return lines[-1].strip() if lines else "(empty log)"


# -- 3.-5. pay, converge, audit ----------------------------------------------------------------------------


def make_payments(
    plan: DevnetPlan,
    nodes: list[NodeProcess],
    count: int,
    rng: random.Random,
    result: DevnetResult,
    say: Any,
) -> None:
    """K payments through the payers' nodes; counts and latencies into ``result``."""
    coops = len(plan.dirs)
    reasons: Counter[str] = Counter()
    for number in range(1, count + 1):
        payer_coop = rng.randrange(coops)
        payee_coop = rng.choice([c for c in range(coops) if c != payer_coop])
        if rng.random() < BUYER_SHARE:
            payer, payee = f"coop{payer_coop}-m0", f"coop{payee_coop}-m1"
        else:
            payer = f"coop{payer_coop}-m{rng.randrange(MEMBERS_PER_COOP)}"
            payee = f"coop{payee_coop}-m{rng.randrange(MEMBERS_PER_COOP)}"
        amount = rng.randint(*AMOUNTS)
        shown = format_amount(amount, plan.charter.scale, plan.charter.currency)
        node = nodes[plan.agents[payer].node]
        started = time.perf_counter()
        try:
            answer = node.client.call(
                "pay",
                {
                    "from": payer,
                    "to": str(plan.agents[payee].key),
                    "amount": amount,
                    "memo": f"devnet payment {number}",
                },
            )
        except ApiError as exc:
            result.failed += 1
            reasons[f"error: {exc}"[:80]] += 1
            say(f"payment {number}/{count}: {payer} -> {payee} {shown}: FAILED: {exc}")
            continue
        elapsed = (time.perf_counter() - started) * 1000
        if answer.get("committed"):
            result.committed += 1
            result.latencies_ms.append(elapsed)
            outcome = f"committed in {elapsed:.0f} ms"
        else:
            result.refused += 1
            reason = str(answer.get("reason") or "no reason")
            reasons[_rule_of(reason)] += 1
            outcome = f"refused: {reason}"
        say(f"payment {number}/{count}: {payer} -> {payee} {shown}: {outcome}")
    result.payments = count
    result.reasons = dict(reasons)


def _rule_of(reason: str) -> str:
    head, sep, _rest = reason.partition(":")
    if sep and head and all(c.isalnum() or c == "-" for c in head):
        return head
    return reason[:60]


def converge(nodes: list[NodeProcess], timeout: float) -> tuple[bool, float]:
    """Sync every node in rounds until all heads digests are equal; (converged, seconds)."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        digests = set()
        for node in nodes:
            try:
                digests.add(node.client.call("sync")["heads_digest"])
            except ConodeError:
                digests.add(f"unreachable {node.index}")
        if len(digests) == 1:
            return True, time.monotonic() - started
        if time.monotonic() > deadline:
            return False, time.monotonic() - started
        time.sleep(POLL)


def audit_all(plan: DevnetPlan, nodes: list[NodeProcess], result: DevnetResult) -> None:
    """Audit each chain on a node that does not host it; zero sum, and agreement with each home node."""
    balances: dict[str, int] = {}
    for member in plan.agents.values():
        auditor = nodes[(member.node + 1) % len(nodes)]
        try:
            report = auditor.client.call("audit", {"agent": str(member.key)})
        except ConodeError as exc:
            result.violations.append(
                {"agent": member.name, "seq": None, "rule": "audit", "reason": str(exc)}
            )
            continue
        result.audited += 1
        for v in report.get("violations", []):
            result.violations.append(
                {
                    "agent": member.name,
                    "seq": v.get("seq"),
                    "rule": v.get("rule"),
                    "reason": v.get("reason"),
                    "auditor": auditor.index,
                }
            )
        result.issued += int(report.get("issued", 0))
        balance = (report.get("balances") or {}).get(str(member.key))
        if balance is None:
            result.violations.append(
                {"agent": member.name, "seq": None, "rule": "audit", "reason": "no chain held"}
            )
        else:
            balances[str(member.key)] = balance
            result.balances.append(
                {"name": member.name, "key": str(member.key), "node": member.node, "balance": balance}
            )
    result.balance_total = sum(balances.values())
    own: dict[str, int] = {}
    for node in nodes:
        with contextlib.suppress(ConodeError):
            for agent in node.client.call("agents"):
                own[agent["key"]] = agent["balance"]
            # a payment session still open now is one that did not finish: say so
            status = node.client.call("status")
            result.open_sessions += int(status.get("sessions", 0))
            result.locked_chains += int(status.get("locked_chains", 0))
    result.balances_agree = bool(balances) and all(
        own.get(key) == balance for key, balance in balances.items()
    )


# -- the command ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the nodes are always stopped."""

    def raise_stopped(_signum: int, _frame: FrameType | None) -> None:
        raise _Stopped

    previous = signal.signal(signal.SIGTERM, raise_stopped)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _workdir(directory: Path | None) -> tuple[Path, bool]:
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="conode-devnet-")), False
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise CommandError(f"--dir {directory}: the directory must be new or empty")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"cannot create {directory}: {exc.strerror or exc}") from exc
    return directory, True


def run_devnet(options: DevnetOptions, out: TextIO, progress: TextIO) -> DevnetResult:
    """Run the whole devnet (see the module docstring); the summary goes to ``out``."""
    started = time.perf_counter()
    seed = options.seed or secrets.token_hex(4)

    def say(line: str) -> None:
        print(f"devnet: {line}", file=progress, flush=True)

    base, kept = _workdir(options.directory)
    nodes: list[NodeProcess] = []
    result = DevnetResult(nodes=options.nodes, seed=seed, data_dir=str(base) if kept else None)
    try:
        with _terminate_as_interrupt():
            say(f"preparing {options.nodes} data dirs in {base} (seed {seed})")
            full = options.scenario == "full"
            lead_at = time.time() + MONTH_LEAD_S
            offset_ms = clock_offset_ms(time.time()) if full else 0
            plan = prepare(
                base,
                options.nodes,
                seed,
                apps=builtin_app_pins(),
                foundation=True,
                voting_period_us=VOTING_PERIOD_S * 1_000_000 if full else VOTING_PERIOD_US,
                clock_offset_ms=offset_ms,
            )
            approve_apps(plan)  # so that `conode lookout ...` and `conode offer ...` work on it
            result.agents = len(plan.agents)
            result.currency, result.scale = plan.charter.currency, plan.charter.scale
            say(f"network {plan.charter.network_id}: {result.agents} agents; starting the nodes")
            nodes = start_nodes(plan, options.log_level, say)
            meshed = wait_until_meshed(plan, nodes, min(options.timeout, START_TIMEOUT))
            say(f"every node sees every other and every agent ({meshed:.1f} s)")
            make_payments(plan, nodes, options.payments, random.Random(seed), result, say)
            if full:

                def next_month(offset_ms: int) -> None:
                    """Stop every node, move its clock on, start them again (``nodes`` in place)."""
                    stop_nodes(nodes)
                    for data in plan.dirs:
                        data.write_config(
                            dataclasses.replace(data.config(), clock_offset_ms=offset_ms)
                        )
                    nodes[:] = start_nodes(plan, options.log_level, say)
                    wait_until_meshed(plan, nodes, min(options.timeout, START_TIMEOUT))

                scenario = run_full(
                    plan,
                    nodes,
                    say,
                    month_turns_at=lead_at,
                    offset_ms=offset_ms,
                    next_month=next_month,
                )
                result.scenario = scenario.as_json()
                result.scenario_ok = not scenario.problems
            say("waiting for the nodes to converge")
            result.converged, waited = converge(nodes, options.timeout)
            result.convergence_s = round(waited, 2)
            say(
                f"converged in {waited:.1f} s"
                if result.converged
                else f"NOT converged after {waited:.0f} s"
            )
            say("auditing every chain on a node that does not host it")
            audit_all(plan, nodes, result)
            _summary(result, plan, out, time.perf_counter() - started)
            if options.keep_running:
                _keep_running(plan, nodes, out, say)
            say("stopping the nodes")
            result.clean_stop = stop_nodes(nodes)
            nodes = []
    except (KeyboardInterrupt, _Stopped):
        say("interrupted: stopping the nodes")
        if nodes:
            stop_nodes(nodes)
            nodes = []
        if not kept:
            shutil.rmtree(base, ignore_errors=True)
            kept = True  # nothing left to keep
        raise KeyboardInterrupt from None
    finally:
        if nodes:
            stop_nodes(nodes)
        if not kept:
            if result.ok and result.clean_stop:
                shutil.rmtree(base, ignore_errors=True)
            else:  # a failed run keeps its data dirs: the node logs say why
                result.data_dir = str(base)
                say(f"the data dirs and node logs are kept in {base}")
    result.elapsed_s = round(time.perf_counter() - started, 2)
    if not result.clean_stop:
        say("a node did not stop cleanly (see its node.log)")
    return result


def _keep_running(plan: DevnetPlan, nodes: list[NodeProcess], out: TextIO, say: Any) -> None:
    print("", file=out)
    print("the nodes keep running; reach them with:", file=out)
    for node in nodes:
        agents = ", ".join(m.name for m in plan.hosted_by(node.index))
        print(
            f"  conode --data-dir {node.data.root} status    # node {node.index}: {agents}",
            file=out,
        )
    apps = ", ".join(pin.id for pin in plan.charter.params.apps)
    if apps:
        print(f"every node runs the apps {apps}: try `conode lookout board`", file=out)
    print(f"join through node 0: --bootstrap {nodes[0].addrs[0]}", file=out)
    print("press Ctrl-C to stop them", file=out, flush=True)
    try:
        while any(node.process.poll() is None for node in nodes):
            time.sleep(0.5)
        say("every node has exited")
    except (KeyboardInterrupt, _Stopped):
        say("stopping")


def _summary(result: DevnetResult, plan: DevnetPlan, out: TextIO, elapsed: float) -> None:
    def money(minor: int) -> str:
        return format_amount(minor, result.scale, result.currency)

    reasons = ", ".join(f"{rule}: {n}" for rule, n in sorted(result.reasons.items())) or "none"
    p50, p95 = result.percentile(0.5), result.percentile(0.95)
    coops = len(plan.dirs)
    fund = ", the Foundation on node 0" if plan.charter.foundation is not None else ""
    lines = [
        f"conode devnet: {result.nodes} nodes on 127.0.0.1, {result.agents} agents "
        f"({coops} co-ops, {len(plan.members())} members{fund}), "
        f"network {plan.charter.network_id}",
        f"payments:  {result.payments} made: {result.committed} committed, {result.refused} refused "
        f"({reasons}), {result.failed} failed",
        f"latency:   p50 {p50 if p50 is not None else '-'} ms, p95 {p95 if p95 is not None else '-'} ms"
        " (committed payments, through the API)",
        (
            f"converged: yes, in {result.convergence_s} s (every node holds the same chain heads)"
            if result.converged
            else f"converged: NO (after {result.convergence_s} s)"
        ),
        f"audit:     {result.audited} of {result.agents} chains audited by a node that does not "
        f"host them: {len(result.violations)} violations",
        f"zero sum:  {'yes' if result.zero_sum else 'NO'} (the audited balances total "
        f"{'-' if result.balance_total is None else money(result.balance_total)}"
        + (f", the issuance account {money(-result.issued)}" if result.issued else "")
        + f"); {'they agree' if result.balances_agree else 'they DO NOT agree'} "
        "with each agent's own node",
    ]
    if result.open_sessions or result.locked_chains:
        lines.append(
            f"sessions:  {result.open_sessions} payment sessions still open and "
            f"{result.locked_chains} chains held by one after convergence"
        )
    for v in result.violations[:10]:
        lines.append(f"  violation: {v['agent']} seq {v['seq']}: {v['rule']}: {v['reason']}")
    if result.scenario is not None:
        lines += report_lines(result.scenario, money)
        problems = result.scenario.get("scenario_problems") or []
        lines += [f"  PROBLEM: {problem}" for problem in problems]
    lines.append("balances:  each agent's, as audited by a node that does not host it")
    lines += [
        "  " + line
        for line in table(
            ("NAME", "NODE", "BALANCE"),
            [(b["name"], b["node"], money(b["balance"])) for b in result.balances],
        ).splitlines()
    ]
    lines.append(f"result:    {'OK' if result.ok else 'FAILED'} ({elapsed:.1f} s)")
    print("\n".join(lines), file=out, flush=True)
