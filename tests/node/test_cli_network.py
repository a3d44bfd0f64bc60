"""The network set-up commands of ``conode`` (charter, init, geneses, members) and the offline audit.

Everything here runs without a node: the commands that need a running node
are exercised by ``tests/network/test_devnet.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cli.money import format_amount, parse_amount
from cli.network import peer_id_of
from conode.chain import ActionKind, author_record
from conode.crypto import Signer
from conode.errors import ValidationError
from conode.exportfile import ChainFileHeader, write_chain_file
from conode.hashes import AgentKey
from conode.offline import commit_offline
from conode.store import NodeStore
from conode.testing.ledger import Ledger
from conode.validation.charter import Charter, FoundingCoop, Limits, Parameters
from conode.validation.entries import Credential, Genesis, Role

_SCRIPT = Path(sys.executable).with_name("conode")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "cli"]


def run(
    data: Path | None, *args: str, expect: int | None = 0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``conode [--data-dir data] args``; check the exit code and that no traceback leaked."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONODE_")}
    prefix = [] if data is None else ["--data-dir", str(data)]
    result = subprocess.run(
        [*COMMAND, *prefix, *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if expect is not None:
        assert result.returncode == expect, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a failed command (warnings and notes aside)."""
    lines = [line for line in result.stderr.strip().splitlines() if "error" in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("conode: error: "), lines[0]
    return lines[0]


def charter_toml(founders: list[str], **overrides: object) -> str:
    """A charter TOML naming ``founders`` (local names or agt_ keys)."""
    values = {
        "name": '"Test Network"',
        "currency": '"TST"',
        "scale": "2",
        "created_at": "2025-03-01T00:00:00Z",
        "foundation_share": "10",
        "quorum": "50",
        "threshold": "50.01",
        "voting_period_days": "14",
        "replication": "3",
    }
    values |= {k: str(v) for k, v in overrides.items()}
    head = "\n".join(f"{k} = {v}" for k, v in values.items())
    limits = textwrap.dedent(
        """
        [limits.coop]
        credit_limit = 100000
        balance_cap = 10000000
        [limits.member]
        credit_limit = 500
        balance_cap = 100000
        """
    )
    founding = "".join(
        f'\n[[founding]]\nagent = "{agent}"\nlegal_name = "{agent} Ltd"\nregistration = "R-{i}"\n'
        for i, agent in enumerate(founders)
    )
    return head + "\n" + limits + founding


@pytest.fixture
def founders(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Two co-op nodes (``a`` with co-op riverside, ``b`` with hillside) and their charter."""
    a, b = tmp_path / "a", tmp_path / "b"
    run(a, "init")
    run(a, "agent", "new", "riverside", "--no-passphrase")
    run(b, "init")
    hillside = run(b, "agent", "new", "hillside", "--no-passphrase").stdout.strip()
    toml = tmp_path / "charter.toml"
    toml.write_text(charter_toml(["riverside", hillside]))
    out = tmp_path / "charter.cbor"
    run(a, "charter", "new", "--from", str(toml), "--out", str(out))
    return a, b, out


# -- charter ----------------------------------------------------------------------------------------


def test_charter_new_show_verify_round_trip(founders: tuple[Path, Path, Path]) -> None:
    a, _b, out = founders
    network = run(a, "charter", "verify", str(out), "--json")
    verified = json.loads(network.stdout)
    assert verified["valid"] is True and verified["network"].startswith("chr_")
    shown = json.loads(run(None, "charter", "show", str(out), "--json").stdout)
    assert shown["network"] == verified["network"]
    assert shown["name"] == "Test Network" and shown["currency"] == "TST"
    assert shown["foundation_share_bp"] == 1000
    assert shown["quorum_bp"] == 5000 and shown["threshold_bp"] == 5001
    assert shown["voting_period_us"] == 14 * 86_400 * 10**6
    assert shown["limits"]["member"] == {"credit_limit": 500, "balance_cap": 100000}
    assert shown["created"] == "2025-03-01T00:00:00.000000Z"
    riverside = json.loads(run(a, "agent", "list", "--json").stdout)[0]["agent"]
    assert shown["founding"][0] == {
        "agent": riverside,
        "legal_name": "riverside Ltd",
        "registration": "R-0",
    }
    # the file is exactly the charter's canonical bytes
    assert str(Charter.from_bytes(out.read_bytes()).network_id) == verified["network"]
    text = run(None, "charter", "show", str(out)).stdout
    assert "5.00 TST" in text and "50.01 %" in text


def test_charter_new_prints_the_network_id(tmp_path: Path) -> None:
    key = str(AgentKey(Signer.generate().public_key))
    toml = tmp_path / "c.toml"
    toml.write_text(charter_toml([key]))
    result = run(None, "charter", "new", "--from", str(toml), cwd=tmp_path)
    assert result.stdout.strip().startswith("chr_")
    assert (tmp_path / "charter.cbor").is_file()
    again = run(None, "charter", "new", "--from", str(toml), cwd=tmp_path)
    assert again.stdout == result.stdout  # same TOML, same charter: no error


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"foundation_share": "60"}, "foundation_share"),
        ({"threshold": "50.001"}, "two decimals"),
        ({"colour": '"red"'}, "unknown key 'colour'"),
        ({"created_at": "2025-03-01T00:00:00"}, "UTC offset"),
        # numbers written as text take only the digits 0-9 (int() reads these)
        ({"scale": '"\u0662"'}, "scale must be a whole number written with the digits 0-9"),
        ({"replication": '"\uff13"'}, "replication must be a whole number written with"),
        ({"quorum": '"5_0"'}, "quorum must be a number of zero or more written with"),
        ({"voting_period_days": '"\u0661\u0664"'}, "voting_period_days must be a number"),
        ({"scale": '"\u00b2"'}, "scale must be a whole number"),
    ],
)
def test_a_bad_charter_toml_is_one_line(
    tmp_path: Path, overrides: dict[str, str], reason: str
) -> None:
    key = str(AgentKey(Signer.generate().public_key))
    toml = tmp_path / "c.toml"
    toml.write_text(charter_toml([key], **overrides))
    result = run(
        None, "charter", "new", "--from", str(toml), "--out", str(tmp_path / "x"), expect=1
    )
    assert reason in error_line(result)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("currency", "C" * 19, "currency must be text of 1 to 12 characters"),
        ("name", "n" * 201, "name must be text of 1 to 200 characters"),
    ],
)
def test_charter_new_refuses_what_charter_verify_refuses(
    tmp_path: Path, field: str, value: str, reason: str
) -> None:
    founder = AgentKey(Signer.generate().public_key)
    toml = tmp_path / "c.toml"
    toml.write_text(charter_toml([str(founder)], **{field: f'"{value}"'}))
    out = tmp_path / "charter.cbor"
    line = error_line(run(None, "charter", "new", "--from", str(toml), "--out", str(out), expect=1))
    assert line == f"conode: error: the charter is not a valid conode charter: {reason}"
    assert not out.exists()
    # the bytes such a charter would have: verify refuses them with the very same words
    made = Charter(
        name="Test Network", currency="TST", scale=2,
        founding=(FoundingCoop(founder, "f Ltd", "R-0"),),
        params=Parameters(Limits(1, 1), Limits(1, 1), 1000, 5000, 5001, 86_400_000_000, 3),
        created_at=0,
    )  # fmt: skip
    out.write_bytes(dataclasses.replace(made, **{field: value}).to_bytes())
    refused = error_line(run(None, "charter", "verify", str(out), expect=1))
    assert refused == f"conode: error: {out} is not a valid conode charter: {reason}"


def test_a_bad_charter_file_fails_verify_in_one_line(founders: tuple[Path, Path, Path]) -> None:
    _a, _b, out = founders
    bad = out.with_name("bad.cbor")
    bad.write_bytes(out.read_bytes()[:-3])
    assert "not a valid conode charter" in error_line(
        run(None, "charter", "verify", str(bad), expect=1)
    )
    flipped = bytearray(out.read_bytes())
    flipped[10] ^= 0xFF
    bad.write_bytes(bytes(flipped))
    assert error_line(run(None, "charter", "verify", str(bad), expect=1))
    assert (
        json.loads(run(None, "charter", "verify", str(bad), "--json", expect=1).stdout)["valid"]
        is False
    )


def test_charter_new_without_a_toml_off_a_terminal(tmp_path: Path) -> None:
    assert "--from" in error_line(run(None, "charter", "new", expect=1, cwd=tmp_path))


# -- init, network ------------------------------------------------------------------------------------


def test_init_with_a_charter(founders: tuple[Path, Path, Path], tmp_path: Path) -> None:
    a, _b, out = founders
    bootstrap = f"/ip4/192.0.2.7/tcp/7447/p2p/{peer_id_of(bytes(32))}"
    result = run(
        a, "init", "--charter", str(out), "--listen", "/ip4/127.0.0.1/tcp/7999",
        "--bootstrap", bootstrap, "--json",
    )  # fmt: skip
    init = json.loads(result.stdout)
    assert init["network"] == str(Charter.from_bytes(out.read_bytes()).network_id)
    assert (a / "charter.cbor").read_bytes() == out.read_bytes()
    node_key = a / "node.key"
    assert stat.S_IMODE(node_key.stat().st_mode) == 0o600 and len(node_key.read_bytes()) == 32
    seed = node_key.read_bytes()
    shown = json.loads(run(a, "network", "show", "--json").stdout)
    assert shown["listen"] == "/ip4/127.0.0.1/tcp/7999"
    assert shown["bootstrap"] == [bootstrap]
    assert shown["peer_id"] == peer_id_of(seed) == init["peer_id"]
    assert shown["address"] == f"/ip4/127.0.0.1/tcp/7999/p2p/{peer_id_of(seed)}"
    run(a, "init", "--charter", str(out))  # the same charter again: fine
    assert node_key.read_bytes() == seed  # never overwritten
    other = tmp_path / "other.toml"
    other.write_text(charter_toml([str(AgentKey(Signer.generate().public_key))]))
    run(None, "charter", "new", "--from", str(other), "--out", str(tmp_path / "other.cbor"))
    refused = run(a, "init", "--charter", str(tmp_path / "other.cbor"), expect=1)
    assert "already belongs to network" in error_line(refused)
    assert "/p2p/" in error_line(run(a, "init", "--bootstrap", "/ip4/1.2.3.4/tcp/1", expect=1))


def test_init_announce_is_what_network_show_shares_and_undialable_ones_are_refused(
    tmp_path: Path,
) -> None:
    data = tmp_path / "node"
    run(data, "init")  # the default: listen on every interface, announce nothing
    shown = json.loads(run(data, "network", "show", "--json").stdout)
    assert shown["listen"] == "/ip4/0.0.0.0/tcp/7447"
    assert shown["announce"] == [] and shown["address"] is None  # no wildcard is ever shared
    assert "announce   none (the interfaces' addresses)" in run(data, "network", "show").stdout
    public = "/ip4/203.0.113.5/tcp/4101"
    run(data, "init", "--announce", public, "/dns4/coop.example.org/tcp/4101")
    shown = json.loads(run(data, "network", "show", "--json").stdout)
    assert shown["announce"] == [public, "/dns4/coop.example.org/tcp/4101"]
    assert shown["address"] == f"{public}/p2p/{shown['peer_id']}"
    assert 'announce = ["/ip4/203.0.113.5/tcp/4101", ' in (data / "config.toml").read_text()
    for bad in ("/ip4/0.0.0.0/tcp/4101", "/ip4/203.0.113.5/tcp/0", "/ip6/::/tcp/4101"):
        refused = run(data, "init", "--announce", bad, expect=1)
        assert "cannot announce" in error_line(refused), bad
    (data / "config.toml").write_text(
        (data / "config.toml").read_text().replace(public, "/ip4/0.0.0.0/tcp/4101")
    )
    broken = run(data, "network", "show", expect=1)
    assert "announce:" in error_line(broken) and "0.0.0.0" in error_line(broken)


def test_peer_id_matches_libp2p() -> None:
    # libp2p.peer.id.ID.from_pubkey(ed25519 key of seed 00 01 .. 1f)
    assert peer_id_of(bytes(range(32))) == "12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB"


# -- geneses and members -----------------------------------------------------------------------------


@pytest.fixture
def coop_node(founders: tuple[Path, Path, Path]) -> tuple[Path, Path, Path]:
    a, b, out = founders
    run(a, "init", "--charter", str(out))
    run(b, "init", "--charter", str(out))
    return a, b, out


def test_coop_genesis(coop_node: tuple[Path, Path, Path]) -> None:
    a, _b, _out = coop_node
    committed = json.loads(run(a, "coop", "genesis", "riverside", "--json").stdout)
    shown = json.loads(run(a, "chain", "show", "riverside", "--json").stdout)
    genesis = shown["actions"][0]["entry"]
    assert shown["actions"][0]["hash"] == committed["genesis"]
    assert genesis["role"] == "coop"
    assert genesis["identity"] == {"name": "riverside Ltd", "registration": "R-0"}
    assert "already has a chain" in error_line(run(a, "coop", "genesis", "riverside", expect=1))
    run(a, "agent", "new", "stranger", "--no-passphrase")
    assert "neither a founding co-op" in error_line(run(a, "coop", "genesis", "stranger", expect=1))


def test_coop_genesis_needs_a_charter(tmp_path: Path) -> None:
    run(tmp_path / "d", "init")
    run(tmp_path / "d", "agent", "new", "x", "--no-passphrase")
    assert "no charter" in error_line(run(tmp_path / "d", "coop", "genesis", "x", expect=1))


def test_member_add(coop_node: tuple[Path, Path, Path]) -> None:
    a, _b, _out = coop_node
    assert "genesis first" in error_line(
        run(a, "member", "add", "ana", "--coop", "riverside", "--no-passphrase", expect=1)
    )
    assert not (a / "keys" / "ana.key").exists()
    run(a, "coop", "genesis", "riverside")
    added = json.loads(
        run(
            a, "member", "add", "ana", "--coop", "riverside", "--display-name", "Ana Lima",
            "--no-passphrase", "--json",
        ).stdout
    )  # fmt: skip
    assert (a / "keys" / "ana.key").is_file()
    genesis = json.loads(run(a, "chain", "show", "ana", "--json").stdout)["actions"][0]
    assert genesis["hash"] == added["genesis"]
    entry = genesis["entry"]
    assert entry["role"] == "member" and entry["identity"] == {"name": "Ana Lima"}
    assert entry["membrane_proof"]["name"] == "Ana Lima"
    names = {
        agent["name"]: agent["records"]
        for agent in json.loads(run(a, "agent", "list", "--json").stdout)
    }
    assert names == {"ana": 1, "riverside": 1}


def test_member_credential_and_agent_join(
    coop_node: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    a, b, _out = coop_node
    run(b, "coop", "genesis", "hillside")
    ben = run(a, "agent", "new", "ben", "--no-passphrase").stdout.strip()  # ben's own node is `a`
    credential = tmp_path / "ben.credential"
    run(
        b,
        "member",
        "credential",
        ben,
        "--name",
        "Ben Okafor",
        "--coop",
        "hillside",
        "--out",
        str(credential),
    )
    document = json.loads(credential.read_text())
    assert document["format"] == "conode-credential" and document["member"] == ben
    joined = json.loads(
        run(a, "agent", "join", "ben", "--credential", str(credential), "--json").stdout
    )
    assert joined["agent"] == ben
    entry = json.loads(run(a, "chain", "show", "ben", "--json").stdout)["actions"][0]["entry"]
    assert entry["identity"] == {"name": "Ben Okafor"} and entry["role"] == "member"
    # a credential for someone else, or a forged one, is refused
    run(a, "agent", "new", "cat", "--no-passphrase")
    assert "not cat" in error_line(
        run(a, "agent", "join", "cat", "--credential", str(credential), expect=1)
    )
    document["name"] = "Someone Else"
    forged = tmp_path / "forged.credential"
    forged.write_text(json.dumps(document))
    assert "does not verify" in error_line(
        run(a, "agent", "join", "cat", "--credential", str(forged), expect=1)
    )


def test_commit_offline_refuses_what_the_rules_refuse(tmp_path: Path) -> None:
    ledger = Ledger(coops=1, members=0)
    charter = ledger.charter
    coop = ledger["coop0"]
    member = Signer.generate()
    with NodeStore.open(tmp_path / "s.db") as store:
        commit_offline(store, charter, coop.chain)
        # not a co-op of the charter: a credential it signs is worthless
        stranger = Signer.generate()
        credential = Credential.issue(stranger, AgentKey(member.public_key), "m", 1)
        genesis = Genesis(charter.network_id, Role.MEMBER, "m", credential=credential)
        record = author_record(
            member, None, kind=ActionKind.GENESIS, timestamp=coop.chain[0].action.timestamp,
            entry=genesis.to_value(),
        )  # fmt: skip
        with pytest.raises(ValidationError) as caught:
            commit_offline(store, charter, [record])
        assert caught.value.rule == "provenance"
        assert store.head(AgentKey(member.public_key)) is None
        assert store.count(coop.key) == 1


def test_commit_offline_queues_what_it_commits_for_publishing(tmp_path: Path) -> None:
    """A genesis committed while the node is stopped (``coop genesis``, ``agent join``, the
    devnet) reaches its authorities when the node runs: on a sharded network nothing else
    sends it there (no gossip of every chain), so before, in 30 ``conode run`` processes,
    48 of 90 chains were held by their host alone, and payments from them never committed on
    the payee's side (tests/network/test_shard_processes.py)."""
    ledger = Ledger(coops=1, members=1)
    records = [*ledger["coop0"].chain, *ledger["coop0-m0"].chain]
    with NodeStore.open(tmp_path / "s.db") as store:
        commit_offline(store, ledger.charter, records)
        assert sorted(store.publishing()) == sorted(r.hash for r in records)


# -- the offline audit of export files -------------------------------------------------------------------


@pytest.fixture
def exports(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A small network's chains (a pure ``Ledger``) as export files, and its charter file."""
    ledger = Ledger(coops=2, members=2)
    for payer, payee, amount in [
        ("coop0-m0", "coop1-m0", 60),
        ("coop1-m1", "coop0-m1", 25),
        ("coop0-m1", "coop1-m1", 90),
        ("coop1-m0", "coop0-m0", 10),
    ]:
        assert ledger.pay(payer, payee, amount)
    return _export(ledger, tmp_path)


def _export(ledger: Ledger, directory: Path) -> tuple[Path, list[Path]]:
    """The ledger's charter and its chains as export files in ``directory``."""
    charter = directory / "charter.cbor"
    charter.write_bytes(ledger.charter.to_bytes())
    files = []
    for chain in ledger.chains():
        path = directory / f"{ledger.name_of(chain[0].action.author)}.chain"
        write_chain_file(
            path, ChainFileHeader(chain[0].action.author, len(chain)), [r.to_bytes() for r in chain]
        )
        files.append(path)
    return charter, files


def test_audit_judges_pinned_apps_with_the_pinned_code_and_lists_trade_rings(
    tmp_path: Path,
) -> None:
    """Three co-ops buy each other's offers in a circle: the exchange's records are judged by the
    installed exchange (its bundle hashes to the pin), and the ring is listed, not a violation."""
    from conode.apps.exchange import OFFER, app
    from conode.apps.loader import installed_apps
    from conode.testing.ledger import DAY
    from conode.validation.charter import AppPin, Limits

    exchange = installed_apps()["exchange"]
    pin = AppPin("exchange", app.version, exchange.bundle_hash())
    wide = Limits(100_000, 100_000)
    ledger = Ledger(3, 1, coop_limits=wide, apps={"exchange": app}, pins=(pin,))
    offers = {}
    for coop in ("coop0", "coop1", "coop2"):
        entry = app.entry(
            OFFER, title="jam", description="", category="food", price=100, unit="jar",
            quantity=10, expires=ledger.clock + 30 * DAY, rules=None,
        )  # fmt: skip
        offers[coop], verdict = ledger.create(coop, OFFER, entry)
        assert verdict, verdict
    for buyer, seller in (("coop0", "coop1"), ("coop1", "coop2"), ("coop2", "coop0")):
        assert ledger.pay(buyer, seller, 250, offer=offers[seller].hash)
    charter, files = _export(ledger, tmp_path)
    args = ("audit", *map(str, files), "--charter", str(charter))
    report = json.loads(run(None, *args, "--json").stdout)
    assert report["valid"] is True and report["violations"] == []
    assert report["apps_judged"] == ["exchange"] and report["apps_unjudged"] == []
    (ring,) = report["rings"]
    assert sorted(c["name"] for c in ring["coops"]) == ["coop0 Ltd", "coop1 Ltd", "coop2 Ltd"]
    assert ring["amounts"] == [250, 250, 250] and report["rings_complete"] is True
    text = run(None, *args).stdout
    assert "apps judged with the pinned code: exchange" in text and "result: VALID" in text
    assert "trade rings" in text and "-2.50 CXT->" in text

    # a member's offer (offers are the co-ops'): the core rules pass it, the exchange's refuse it
    member = ledger["coop0-m0"]
    by_member = author_record(
        member.signer, member.activity.head, kind=ActionKind.CREATE, timestamp=ledger.now(),
        entry=entry, entry_type=OFFER,
    )  # fmt: skip
    assert not ledger.commit("coop0-m0", by_member)  # refused by the engine with the app
    chain = [*next(c for c in ledger.chains() if c[0].action.author == member.key), by_member]
    write_chain_file(
        tmp_path / "coop0-m0.chain",
        ChainFileHeader(member.key, len(chain)),
        [r.to_bytes() for r in chain],
    )
    report = json.loads(run(None, *args, "--json", expect=1).stdout)
    assert [(v["name"], v["rule"]) for v in report["violations"]] == [("coop0-m0", "role")]


def test_audit_lists_the_grant_lines_owing_their_reestimate(tmp_path: Path) -> None:
    """A co-op granted credit this month owes its line's re-estimate from the first of the next:
    the offline audit lists it as of the newest record in the files (a finding: the chains are
    valid), and stops listing it once the re-estimate is in the chain."""
    from conode.apps.exchange import GRANT, OFFER, app
    from conode.apps.loader import installed_apps
    from conode.testing.ledger import DAY
    from conode.validation.calendar import period_of, period_start
    from conode.validation.charter import AppPin, Limits

    pin = AppPin("exchange", app.version, installed_apps()["exchange"].bundle_hash())
    ledger = Ledger(
        2, 1, coop_limits=Limits(100_000, 100_000), apps={"exchange": app}, pins=(pin,),
        app_config={"exchange": {"issues_credit": True, "grant_cap": 50_000}},
    )  # fmt: skip
    entry = app.entry(
        OFFER, title="jam", description="", category="food", price=100, unit="jar",
        quantity=10, expires=ledger.clock + 60 * DAY, rules=None,
    )  # fmt: skip
    offer, verdict = ledger.create("coop0", OFFER, entry)
    assert verdict, verdict
    period = period_of(ledger.clock)

    def grant(**values: object) -> None:
        activity = ledger["coop0"].activity
        entry = app.prepare(
            GRANT, {"added": [offer.hash], "dropped": [], "offered": 1_000, "high": 1_000, "estimate": 1_000,
                    "granted": 1_000, "share": 0, "sales": None, "advance": None, **values},
            last_credit=activity.last_credit, balance=activity.balance,
        )  # fmt: skip
        assert ledger.create("coop0", GRANT, entry)[1]

    grant(basis="new", period=period, prev_grant=None, credit=1_000, due=period_start(period + 1))
    ledger.advance(period_start(period + 1) + DAY - ledger.clock)
    assert ledger.pay("coop1-m0", "coop0", 90, offer=offer.hash)  # the newest record: next month
    charter, files = _export(ledger, tmp_path)
    args = ("audit", *map(str, files), "--charter", str(charter))
    report = json.loads(run(None, *args, "--json").stdout)
    assert report["valid"] is True
    (owed,) = report["overdue"]
    due = f"{1970 + (period + 1) // 12:04d}-{(period + 1) % 12 + 1:02d}-01"
    assert (owed["name"], owed["entry_type"], owed["due"]) == ("coop0 Ltd", GRANT, due)
    text = run(None, *args).stdout
    assert "coop0 Ltd" in text and f"grant line owes its re-estimate, due {due}" in text

    prev = next(r for r in reversed(ledger["coop0"].chain) if r.action.entry_type == GRANT)
    zero = {"count": 0, "total": 0, "excluded": 0, "new": 0}
    grant(
        basis="reestimate", period=period + 1, prev_grant=prev.hash, added=[], sales=zero,
        advance=1_000,
        credit=0, due=period_start(period + 2),
    )  # fmt: skip
    for path in files:
        path.unlink()
    charter, files = _export(ledger, tmp_path)
    report = json.loads(
        run(None, "audit", *map(str, files), "--charter", str(charter), "--json").stdout
    )
    assert report["valid"] is True and report["overdue"] == []


def test_audit_of_valid_exports(exports: tuple[Path, list[Path]]) -> None:
    charter, files = exports
    result = run(None, "audit", *map(str, files), "--charter", str(charter))
    assert "zero sum: yes" in result.stdout and "result: VALID" in result.stdout
    assert "coop0-m0" in result.stdout and "-0.50 CXT" in result.stdout  # names and major units
    report = json.loads(
        run(None, "audit", *map(str, files), "--charter", str(charter), "--json").stdout
    )
    assert report["valid"] is True and report["zero_sum"] is True and report["violations"] == []
    assert report["chains"] == len(files) and report["total"] == 0
    assert {b["name"]: b["balance"] for b in report["balances"]}["coop0-m0"] == -50


def test_audit_catches_a_tampered_export(exports: tuple[Path, list[Path]]) -> None:
    charter, files = exports
    tampered = next(f for f in files if f.name == "coop0-m0.chain")
    data = bytearray(tampered.read_bytes())
    data[-1] ^= 0x01  # inside the last record's entry: covered by its entry hash
    tampered.write_bytes(bytes(data))
    result = run(None, "audit", *map(str, files), "--charter", str(charter), expect=1)
    assert "result: INVALID" in result.stdout
    report = json.loads(
        run(None, "audit", *map(str, files), "--charter", str(charter), "--json", expect=1).stdout
    )
    assert report["valid"] is False
    bad = [v for v in report["violations"] if v["name"] == "coop0-m0"]
    assert bad and bad[0]["rule"] in result.stdout and bad[0]["seq"] == 2


def test_audit_uses_the_data_dirs_charter(exports: tuple[Path, list[Path]], tmp_path: Path) -> None:
    charter, files = exports
    data = tmp_path / "d"
    run(data, "init", "--charter", str(charter))
    assert "result: VALID" in run(data, "audit", *map(str, files)).stdout
    assert "--charter" in error_line(run(tmp_path / "none", "audit", *map(str, files), expect=1))


def test_audit_of_agents_needs_a_running_node(coop_node: tuple[Path, Path, Path]) -> None:
    a, _b, _out = coop_node
    line = error_line(run(a, "audit", "riverside", expect=1))
    assert f"no node is running for {a} (start it with `conode run`)" in line


# -- amounts ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "scale", "minor"),
    [("12.50", 2, 1250), ("12.5", 2, 1250), ("12", 2, 1200), ("0.01", 2, 1), ("7", 0, 7),
     ("7.0", 0, 7), ("1.2345", 4, 12345), ("1000.00", 2, 100000), ("0.10", 1, 1), (" 3 ", 2, 300),
     (".5", 2, 50), ("5.", 2, 500)],
)  # fmt: skip
def test_amounts_convert_exactly(text: str, scale: int, minor: int) -> None:
    assert parse_amount(text, scale) == minor


@pytest.mark.parametrize(
    ("text", "reason"),
    [("12.505", "too many decimals"), ("-1", "not an amount"), ("1e3", "not an amount"),
     ("0", "more than zero"), ("0.00", "more than zero"), ("", "not an amount"),
     ("nan", "not an amount"), ("1,50", "not an amount"), ("inf", "not an amount"),
     # only the digits 0-9: Python's own int() and Decimal() read all of these
     ("\u0663", "not an amount"), ("\uff11", "not an amount"), ("1_000", "not an amount"),
     ("\u0661\u0662.\u0665\u0660", "not an amount"), ("\u0e55", "not an amount"),
     ("\u00b2", "not an amount"), ("+1", "not an amount"), ("1 000", "not an amount")],
)  # fmt: skip
def test_bad_amounts_are_refused(text: str, reason: str) -> None:
    from cli.datadir import CommandError

    with pytest.raises(CommandError, match=reason):
        parse_amount(text, 2)


def test_amounts_print_in_major_units() -> None:
    assert format_amount(-1250, 2, "CXT") == "-12.50 CXT"
    assert format_amount(5, 2) == "0.05"
    assert format_amount(7, 0) == "7"


@pytest.mark.parametrize("amount", ["\u0663", "\uff11", "1_000"])
def test_pay_and_bill_refuse_amounts_in_other_digits_before_asking_the_node(
    coop_node: tuple[Path, Path, Path], amount: str
) -> None:
    a, _b, _out = coop_node
    for command in ("pay", "bill"):
        line = error_line(run(a, command, "hillside", amount, "--from", "riverside", expect=1))
        assert line == (
            f"conode: error: {amount!r} is not an amount "
            "(write it like 12.50: the digits 0-9, one '.')"
        )


@pytest.mark.parametrize(
    "args",
    [("bill", "hillside", "1", "--expires", "\u0663"), ("devnet", "--nodes", "\uff13"),
     ("devnet", "--payments", "1_0"), ("offer", "search", "--limit", "\u0665"),
     ("offer", "search", "--near", "1,1", "--within", "\u0665")],
)  # fmt: skip
def test_whole_numbers_on_the_command_line_take_only_the_digits_0_to_9(
    coop_node: tuple[Path, Path, Path], args: tuple[str, ...]
) -> None:
    a, _b, _out = coop_node
    result = run(a, *args, expect=2)
    assert "written with the digits 0-9" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_pay_refuses_too_many_decimals_before_asking_the_node(
    coop_node: tuple[Path, Path, Path],
) -> None:
    a, _b, _out = coop_node
    line = error_line(run(a, "pay", "hillside", "1.234", "--from", "riverside", expect=1))
    assert "too many decimals" in line and "TST" in line


def test_charter_new_asks_on_a_terminal(tmp_path: Path) -> None:
    import pty
    import time

    key = str(AgentKey(Signer.generate().public_key))
    # name, currency, then the defaults, then one founding co-op and an empty line to finish
    answers = ["Asked Net", "ASK", *[""] * 10, key, "Asked Co-op Ltd", "R-1", ""]
    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONODE_")}
    process = subprocess.Popen(
        [*COMMAND, "charter", "new", "--out", str(tmp_path / "asked.cbor")],
        stdin=secondary,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(secondary)
    try:
        for answer in answers:
            os.write(primary, (answer + "\n").encode())
            time.sleep(0.02)
        out, err = process.communicate(timeout=60)
    finally:
        os.close(primary)
    assert process.returncode == 0, err
    assert b"Network name" in err and out.decode().strip().startswith("chr_")
    charter = Charter.from_bytes((tmp_path / "asked.cbor").read_bytes())
    assert charter.name == "Asked Net" and charter.params.threshold_bp == 5001
    assert str(charter.founding[0].agent) == key


def test_the_link_freshness_window_is_read_from_the_config_and_reaches_the_node_settings(
    exports: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    from cli.datadir import CommandError, DataDir
    from cli.runner import _settings
    from conode.node import NodeSettings

    charter, _files = exports
    data = tmp_path / "node"
    run(data, "init", "--charter", str(charter))
    config_path = DataDir(data).config_path
    written = config_path.read_text()
    default = DataDir(data).config()
    assert default.links_fresh_ms == 0
    assert _settings(default, 3).links_fresh_us == NodeSettings(replication=3).links_fresh_us

    config_path.write_text(written + "links_fresh_ms = 5000\n")
    config = DataDir(data).config()
    assert config.links_fresh_ms == 5000 and _settings(config, 3).links_fresh_us == 5_000_000
    DataDir(data).write_config(config)  # rewritten (as `conode init` and others do): kept
    assert DataDir(data).config().links_fresh_ms == 5000

    config_path.write_text(written + 'links_fresh_ms = "soon"\n')
    with pytest.raises(CommandError, match="links_fresh_ms must be a whole number of ms"):
        DataDir(data).config()


def test_a_full_arc_node_is_set_by_the_config_or_by_run_full_arc_and_reaches_the_node_settings(
    exports: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    from cli.datadir import CommandError, DataDir
    from cli.runner import _settings

    charter, _files = exports
    data = tmp_path / "node"
    run(data, "init", "--charter", str(charter))
    config_path = DataDir(data).config_path
    written = config_path.read_text()
    default = DataDir(data).config()
    assert not default.full_arc and not _settings(default, 3).full_arc
    assert _settings(default, 3, full_arc=True).full_arc  # `conode run --full-arc`

    config_path.write_text(written + "full_arc = true\n")
    config = DataDir(data).config()
    assert config.full_arc and _settings(config, 3).full_arc
    DataDir(data).write_config(config)  # rewritten: kept
    assert DataDir(data).config().full_arc

    config_path.write_text(written + 'full_arc = "yes"\n')
    with pytest.raises(CommandError, match="full_arc must be true or false"):
        DataDir(data).config()


def test_the_memory_budget_is_read_from_the_config_kept_on_rewrite_and_checked(
    exports: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    from cli.datadir import CommandError, DataDir

    charter, _files = exports
    data = tmp_path / "node"
    run(data, "init", "--charter", str(charter))
    config_path = DataDir(data).config_path
    written = config_path.read_text()
    assert DataDir(data).config().memory_mb == 0  # no budget unless one is set
    config_path.write_text(written + "memory_mb = 256\n")
    config = DataDir(data).config()
    assert config.memory_mb == 256
    DataDir(data).write_config(config)
    assert DataDir(data).config().memory_mb == 256
    config_path.write_text(written + "memory_mb = -1\n")
    with pytest.raises(CommandError, match="memory_mb must be a whole number of MB"):
        DataDir(data).config()
