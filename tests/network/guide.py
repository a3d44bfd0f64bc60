"""The user guide's walkthrough, run command by command through ``conode`` with real processes.

Each machine of the walkthrough (a co-op's node, a member's own node) is a
``Machine``: a data dir, where its ``conode run`` listens and how it is
started. ``loopback_machines`` puts them all on 127.0.0.1 (a port each);
``host_machines`` puts each on a network host of its own (``netns.hosts``:
``conode run`` on the wildcard, peers dialling its host's address). The
same ``Walkthrough`` runs on either: every command is the one
``docs/user-guide.md`` shows, in the order it shows them, and everything a
test asserts is read back through ``conode ... --json``.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from procs import COMMAND, clean_env, conode, conode_json, free_port, wait_for

from cli.datadir import DataDir
from cli.devnet import NodeProcess, wait_ready

__all__ = ["VOTE_S", "Machine", "Walkthrough", "host_machines", "loopback_machines"]

VOTE_S = 22
"""The walkthrough charter's voting period, in seconds (about: 0.00025 days, 21.6 s): the proposer's node
ratifies a quarter of it after the deadline."""
_VOTING_PERIOD_DAYS = "0.00025"  # 21.6 s
_VOTE_WAIT_S = 4 * VOTE_S + 60  # deadline, settle, publishing and gossip, on a loaded machine

Starter = Callable[[list[str], Path], "subprocess.Popen[bytes]"]


@dataclass
class Machine:
    """One machine of the walkthrough: its data dir, its node's listen address and dialable host."""

    name: str
    data: Path
    listen: str
    host: str
    start: Starter
    process: subprocess.Popen[bytes] | None = None
    peer_id: str = ""
    port: int = 0

    def conode(self, *args: str, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
        """``conode --data-dir DATA args`` (exit code checked unless ``expect`` is None)."""
        return conode(self.data, *args, expect=expect, timeout=180.0)

    def json(self, *args: str) -> Any:
        return conode_json(self.data, *args)

    @property
    def address(self) -> str:
        """The address its peers dial (``/ip4/HOST/tcp/PORT/p2p/PEER``), as `network show` shares."""
        return f"/ip4/{self.host}/tcp/{self.port}/p2p/{self.peer_id}"

    def run(self) -> None:
        """``conode run`` (in the background), waiting until its API answers."""
        assert self.process is None or self.process.poll() is not None, f"{self.name} runs"
        command = [*COMMAND, "--data-dir", str(self.data), "run"]
        self.process = self.start(command, self.data / "node.log")
        wait_ready(NodeProcess(0, DataDir(self.data), self.process, self.data / "node.log"), 180.0)

    def stop(self) -> None:
        """Ctrl-C's equivalent, SIGTERM: the node must exit 0."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(60)
        assert code == 0, (self.name, code, self.log())

    def log(self) -> str:
        try:
            return (self.data / "node.log").read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"


def _local_start(command: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=clean_env(),
        )  # fmt: skip


def loopback_machines(base: Path, names: list[str]) -> list[Machine]:
    """Machines on this host's loopback, each node on a port of its own."""
    machines = []
    for name in names:
        port = free_port()
        machines.append(
            Machine(
                name,
                base / f"{name}-n",  # short: DIR/conode.sock stays under 100 bytes under xdist
                f"/ip4/127.0.0.1/tcp/{port}",
                "127.0.0.1",
                _local_start,
                port=port,
            )
        )
    return machines


def host_machines(base: Path, names: list[str], lan: list[Any]) -> list[Machine]:
    """Machines on hosts of their own (``netns.hosts``): each node listens on the wildcard at the
    one port every host has, as `conode init` leaves it, and is dialled at its host's address."""
    from netns import PORT

    machines = []
    for name, host in zip(names, lan, strict=True):

        def start(command: list[str], log_path: Path, host: Any = host) -> subprocess.Popen[bytes]:
            with open(log_path, "ab") as log:
                process: subprocess.Popen[bytes] = host.popen(
                    command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    env=clean_env(),
                )  # fmt: skip
                return process

        machines.append(
            Machine(
                name,
                base / f"{name}-n",  # short: DIR/conode.sock stays under 100 bytes under xdist
                f"/ip4/0.0.0.0/tcp/{PORT}",
                host.address,
                start,
                port=PORT,
            )
        )
    return machines


@dataclass
class Walkthrough:
    """The user guide's walkthrough, step by step; ``m`` holds the machines by name."""

    base: Path
    m: dict[str, Machine]
    keys: dict[str, str] = field(default_factory=dict)

    def machines(self) -> Iterator[Machine]:
        return iter(self.m.values())

    def steps_1_to_9(self) -> tuple[Path, str]:
        """The walkthrough up to the disbursement paid: the charter file and the disbursement's id."""
        self.make_keys()
        charter = self.write_charter()
        self.found(charter)
        self.members_join(charter)
        self.run_all(["riverside", "hillside", "ben"])
        self.pay_ben()
        self.admit(charter)
        sold = self.retry_pay(self.m["greenside"], "Ben Okafor", "3.00", "greenside", "lettuce")
        assert sold["committed"], sold  # the admitted co-op trades
        return charter, self.disburse()  # and proposes and votes; the steward pays it

    # 1. Each co-op makes its key; riverside also makes the Foundation's key (it hosts it).
    def make_keys(self) -> None:
        for coop in ("riverside", "hillside"):
            machine = self.m[coop]
            machine.conode("init", "--listen", machine.listen)
            self.keys[coop] = machine.conode("agent", "new", coop, "--no-passphrase").stdout.strip()
        riverside = self.m["riverside"]
        self.keys["foundation"] = riverside.conode(
            "agent", "new", "foundation", "--no-passphrase"
        ).stdout.strip()

    # 2. They agree on a charter; one writes it, the other checks its network id.
    def write_charter(self) -> Path:
        toml = self.base / "charter.toml"
        toml.write_text(charter_toml(self.keys))
        charter = self.base / "charter.cbor"
        network = (
            self.m["riverside"]
            .conode("charter", "new", "--from", str(toml), "--out", str(charter))
            .stdout.strip()
        )
        verified = self.m["hillside"].conode("charter", "verify", str(charter)).stdout
        assert network in verified, verified
        return charter

    # 3. Each node takes the charter; each co-op commits its genesis; riverside hosts the Foundation.
    def found(self, charter: Path) -> None:
        riverside = self.m["riverside"]
        riverside.conode("init", "--charter", str(charter))
        riverside.conode("coop", "genesis", "riverside")
        riverside.conode("foundation", "host", "foundation")
        shown = riverside.json("network", "show")
        riverside.peer_id = shown["peer_id"]
        for name in ("hillside",):
            machine = self.m[name]
            machine.conode("init", "--charter", str(charter), "--bootstrap", riverside.address)
            machine.conode("coop", "genesis", name)

    # 4. Members join: ana on riverside's node; ben on his own node, by credential.
    def members_join(self, charter: Path) -> None:
        riverside, hillside, ben = self.m["riverside"], self.m["hillside"], self.m["ben"]
        riverside.conode(
            "member", "add", "ana", "--coop", "riverside", "--display-name", "Ana Lima",
            "--no-passphrase",
        )  # fmt: skip
        ben.conode(
            "init", "--charter", str(charter), "--bootstrap", riverside.address,
            "--listen", ben.listen,
        )  # fmt: skip
        self.keys["ben"] = ben.conode("agent", "new", "ben", "--no-passphrase").stdout.strip()
        credential = self.base / "ben.credential"
        hillside.conode(
            "member", "credential", self.keys["ben"], "--name", "Ben Okafor",
            "--coop", "hillside", "--out", str(credential),
        )  # fmt: skip
        ben.conode("agent", "join", "ben", "--credential", str(credential))

    # 5. Run the nodes.
    def run_all(self, names: list[str]) -> None:
        for name in names:
            self.m[name].run()

    # 6. Pay.
    def pay_ben(self) -> None:
        riverside, ben = self.m["riverside"], self.m["ben"]
        paid = self.retry_pay(riverside, "Ben Okafor", "12.50", "ana", "bread")
        assert paid["committed"], paid
        balance = wait_for(
            lambda: _balance(ben, "ben") == 1250 or None, "ben's balance of 12.50", 60
        )
        assert balance

    # -- joining by admission ----------------------------------------------------------------
    def admit(self, charter: Path) -> str:
        """A third co-op, greenside: its node and key; riverside proposes its admission, the
        founders vote, riverside's node ratifies; greenside's node catches up, and greenside
        commits its genesis with the admission as its proof. The proposal's id."""
        riverside, hillside, green = self.m["riverside"], self.m["hillside"], self.m["greenside"]
        green.conode(
            "init", "--charter", str(charter), "--bootstrap", riverside.address,
            "--listen", green.listen,
        )  # fmt: skip
        key = self.keys["greenside"] = green.conode(
            "agent", "new", "greenside", "--no-passphrase"
        ).stdout.strip()
        refused = green.conode("coop", "genesis", "greenside", expect=1)
        assert "admission" in refused.stderr, refused.stderr
        green.run()
        proposal = riverside.json(
            "foundation", "propose", "--admit", key, "Greenside Growers Ltd", "R-9"
        )["id"]
        wait_for(lambda: _holds(hillside, proposal), "hillside to hold the admission", 60)
        riverside.conode("foundation", "vote", proposal, "yes")
        hillside.conode("foundation", "vote", _short(proposal), "yes")  # as tables print it
        wait_for(
            lambda: _status(green, proposal) == "ratified" or None,
            "greenside's node to hold the ratified admission", _VOTE_WAIT_S, every=1.0,
        )  # fmt: skip
        green.stop()
        green.conode("coop", "genesis", "greenside")
        green.run()
        return str(proposal)

    # -- the Foundation pays what the co-ops ratified ----------------------------------------
    def disburse(self) -> str:
        """Riverside funds the Foundation; greenside (admitted) proposes a disbursement to itself,
        all three co-ops vote, and riverside's node, the steward, pays it. The proposal's id."""
        riverside = self.m["riverside"]
        funded = self.retry_pay(riverside, self.keys["foundation"], "5.00", "riverside", "fund")
        assert funded["committed"], funded
        return self.disburse_again(["riverside", "hillside", "greenside"], "2.00", "seed trays")

    def _propose_from_greenside(self, green: Machine, amount: str, purpose: str) -> str:
        # greenside's genesis must reach the others before its proposal can be judged there
        deadline = time.monotonic() + 90
        while True:
            result = green.conode(
                "foundation", "propose", "--disburse", "greenside", amount,
                "--purpose", purpose, "--json", expect=None,
            )  # fmt: skip
            if result.returncode == 0:
                return str(json.loads(result.stdout)["id"])
            assert time.monotonic() < deadline, result.stderr
            time.sleep(1.0)

    def retry_pay(self, machine: Machine, to: str, amount: str, payer: str, memo: str) -> Any:
        """``conode pay`` again (same idempotency key) while the payee is not yet found."""
        key = f"guide-{payer}-{memo}"
        deadline = time.monotonic() + 90
        while True:
            result = machine.conode(
                "pay", to, amount, "--from", payer, "--memo", memo,
                "--idempotency-key", key, "--json", expect=None,
            )  # fmt: skip
            answer = json.loads(result.stdout) if result.stdout.strip() else {}
            if answer.get("committed") or time.monotonic() > deadline:
                return answer
            time.sleep(1.0)

    # -- a lost machine: its key file recovered on another node -----------------------------
    def recover_elsewhere(self, charter: Path, lost: str, new: str, agent: str) -> None:
        """Machine ``lost`` is gone but ``agent``'s key file survives: machine ``new`` makes a node,
        `conode recover --key` hosts the agent there (its chain fetched from the peers), and it pays."""
        old, fresh, riverside = self.m[lost], self.m[new], self.m["riverside"]
        before = _balance(old, agent)  # what the lost machine held last
        old.stop()
        key = self.base / f"{agent}.key"
        shutil.copy(old.data / "keys" / f"{agent}.key", key)
        fresh.conode(
            "init", "--charter", str(charter), "--bootstrap", riverside.address,
            "--listen", fresh.listen,
        )  # fmt: skip
        fresh.run()
        recovered = fresh.json("recover", "--key", str(key))
        assert recovered["agent"] == self.keys[agent], recovered
        wait_for(
            lambda: _balance(fresh, agent) == before or None,
            f"{new} to hold {agent}'s whole chain", 90,
        )  # fmt: skip
        paid = self.retry_pay(fresh, "Ana Lima", "2.00", agent, "thanks")
        assert paid["committed"], paid

    # -- the Foundation moves to another node ------------------------------------------------
    def move_foundation(self, old: str, new: str) -> None:
        """The operator guide's move: the old steward's node stops, and a running node recovers the
        Foundation's key file (`conode recover --key`); that node is the steward from then on."""
        steward, host = self.m[old], self.m[new]
        key = self.base / "foundation.key"
        shutil.copy(steward.data / "keys" / "foundation.key", key)
        steward.stop()
        recovered = host.json("recover", "--key", str(key))
        assert recovered["agent"] == self.keys["foundation"], recovered

    def disburse_again(self, voters: list[str], amount: str, purpose: str) -> str:
        """Greenside proposes a disbursement to itself, ``voters`` vote yes; its id once a steward
        paid it (as greenside's node sees it)."""
        green = self.m["greenside"]
        proposal = self._propose_from_greenside(green, amount, purpose)
        for name in voters:
            machine = self.m[name]
            wait_for(lambda m=machine: _holds(m, proposal), f"{name} to hold it", 60)
            machine.conode("foundation", "vote", proposal, "yes")
        wait_for(
            lambda: _shown(green, proposal).get("executed"),
            "a steward to pay the disbursement", _VOTE_WAIT_S, every=1.0,
        )  # fmt: skip
        return proposal

    # -- backup, and restore on a new disk ----------------------------------------------------
    def backup_and_restore(self, name: str, payer: str, payee: str) -> None:
        """`conode backup` while the node runs; the node stops for good; `conode restore` makes a
        new data dir from the file, whose node catches up from its peers and pays again."""
        machine = self.m[name]
        backup = self.base / f"{name}.backup.tar.gz"
        machine.conode("backup", str(backup))
        machine.stop()
        restored = Machine(
            name, self.base / f"{name}-r", machine.listen, machine.host, machine.start,
            peer_id=machine.peer_id, port=machine.port,
        )  # fmt: skip
        restored.conode("restore", str(backup))
        restored.run()
        self.m[name] = restored
        paid = self.retry_pay(restored, payee, "1.00", payer, "after the restore")
        assert paid["committed"], paid

    # -- the offline audit of every chain ---------------------------------------------------
    def audit_all(self, charter: Path, owners: dict[str, str]) -> dict[str, Any]:
        """Every chain exported by its own node, audited together offline: the report."""
        files = []
        for agent, machine in owners.items():
            out = self.base / f"{agent}.chain"
            self.m[machine].conode("chain", "export", agent, "--out", str(out))
            files.append(str(out))
        result = conode(
            self.base, "audit", *files, "--charter", str(charter), "--json", expect=None
        )
        report: dict[str, Any] = json.loads(result.stdout)
        return report

    def stop_all(self) -> None:
        for machine in self.machines():
            if machine.process is not None and machine.process.poll() is None:
                machine.process.send_signal(signal.SIGTERM)
        for machine in self.machines():
            if machine.process is not None:
                try:
                    machine.process.wait(30)
                except subprocess.TimeoutExpired:
                    machine.process.kill()
                    machine.process.wait()


def _short(printable: str) -> str:
    """A hash or key as `conode` tables print it: its kind, 8 characters and an ellipsis."""
    return printable[:12] + "…"


def _balance(machine: Machine, agent: str) -> int:
    answer = machine.json("balance", agent)
    return int(answer["balance"])


def _holds(machine: Machine, proposal: str) -> bool:
    return machine.conode("foundation", "show", proposal, expect=None).returncode == 0


def _shown(machine: Machine, proposal: str) -> dict[str, Any]:
    """``foundation show ID --json`` (empty while the node does not hold the proposal)."""
    result = machine.conode("foundation", "show", proposal, "--json", expect=None)
    return dict(json.loads(result.stdout)) if result.returncode == 0 else {}


def _status(machine: Machine, proposal: str) -> str | None:
    return _shown(machine, proposal).get("status")


def charter_toml(keys: dict[str, str]) -> str:
    """The walkthrough's charter (docs/charter.example.toml, with a 21.6-second voting period)."""
    return textwrap.dedent(
        f"""\
        name = "Riverside Mutual Credit Network"
        currency = "RVX"
        scale = 2
        foundation_share = 10
        quorum = 50
        threshold = "50.01"
        voting_period_days = {_VOTING_PERIOD_DAYS}
        replication = 3
        foundation = "{keys["foundation"]}"

        [limits.coop]
        credit_limit = 100000
        balance_cap = 10000000
        [limits.member]
        credit_limit = 50000
        balance_cap = 1000000

        [[founding]]
        agent = "{keys["riverside"]}"
        legal_name = "Riverside Bakery Co-operative Ltd"
        registration = "IP031234"

        [[founding]]
        agent = "{keys["hillside"]}"
        legal_name = "Hillside Growers Co-operative Ltd"
        registration = "IP045678"
        """
    )
