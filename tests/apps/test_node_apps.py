"""Apps on real nodes: approval, which apps run, bundles by hash, ``app.*`` over the API socket.

Each node here is a real ``Node`` with its own SQLite store on an in-memory
network, planned and hosted exactly as ``conode run`` does it
(``AppCatalog.plan`` -> ``Node(apps=plan.validators)`` -> ``AppHost``), with
its API served on a real Unix socket. The subjects are the lookout app and
the hours example, installed through entry points the test names.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import trio

from conode.api import ApiServer
from conode.apphost import AppCatalog, AppHost, AppPlan
from conode.apps.examples import hours
from conode.apps.hosting import NodeApps
from conode.apps.loader import InstalledApp, installed_apps
from conode.apps.lookout import SIGNAL
from conode.apps.sdk import App, EntryType, Text, unpack_bundle, verify_bundle
from conode.chain import ActionKind, Record, author_record
from conode.dht import wire
from conode.dht.memnet import MemoryNetwork
from conode.dht.transport import PeerId, protocol_id
from conode.errors import AppError, NetworkError
from conode.hashes import ActionHash, BundleHash
from conode.node import HostedAgent, Node
from conode.store import NodeStore
from conode.testing.network import FAST, TestNetwork, derive_signer, make_charter
from conode.validation.charter import AppPin, Charter
from conode.validation.verdict import Invalid, Valid

SEED = "apps"
LOOKOUT_POINT = importlib.metadata.EntryPoint("lookout", "conode.apps.lookout:app", "conode.apps")
HOURS_POINT = importlib.metadata.EntryPoint("hours", "conode.apps.examples.hours:app", "conode.apps")
BOTH = installed_apps([LOOKOUT_POINT, HOURS_POINT])
LOOKOUT_HASH = BOTH["lookout"].bundle_hash()
HOURS_HASH = BOTH["hours"].bundle_hash()
PINS = (AppPin("lookout", "0.1.0", LOOKOUT_HASH), AppPin("hours", "0.1.0", HOURS_HASH))


def pinned_charter(nodes: int) -> Charter:
    coops = [(f"coop{i}", derive_signer(SEED, f"coop{i}")) for i in range(nodes)]
    charter = make_charter(coops, replication=FAST.replication)
    return replace(charter, params=replace(charter.params, apps=PINS))


@dataclass
class AppNode:
    node: Node
    host: AppHost
    socket: Path

    async def rpc(self, method: str, **params: Any) -> dict[str, Any]:
        """One JSON-RPC request over the node's real API socket; the whole response."""
        stream = await trio.open_unix_socket(str(self.socket))
        async with stream:
            request = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
            await stream.send_all(json.dumps(request).encode() + b"\n")
            data = b""
            while b"\n" not in data:
                chunk = await stream.receive_some(1 << 16)
                assert chunk, "the node closed the connection mid-answer"
                data += chunk
        response: dict[str, Any] = json.loads(data)
        return response

    async def result(self, method: str, **params: Any) -> Any:
        response = await self.rpc(method, **params)
        assert "error" not in response, response
        return response["result"]

    async def error(self, method: str, **params: Any) -> dict[str, Any]:
        response = await self.rpc(method, **params)
        assert "error" in response, response
        error: dict[str, Any] = response["error"]
        return error


def open_store(path: Path, approved: set[BundleHash]) -> NodeStore:
    store = NodeStore.open(path)
    for bundle in approved:
        store.approve_bundle(bundle, "test", "0.1.0")
    return store


def hosted_agents(i: int, members: int) -> list[HostedAgent]:
    coop = f"coop{i}"
    return [HostedAgent(coop, derive_signer(SEED, coop))] + [
        HostedAgent(f"{coop}-m{j}", derive_signer(SEED, f"{coop}-m{j}")) for j in range(members)
    ]


def planned_node(
    store: NodeStore,
    charter: Charter,
    installed: Mapping[str, InstalledApp],
    agents: list[HostedAgent],
    transport: Any,
    i: int,
) -> tuple[Node, AppHost]:
    """A node planned and hosted as ``conode.daemon.serve`` does it."""
    catalog = AppCatalog(store, charter, installed)
    plan = catalog.plan()
    node = Node(
        store=store,
        charter=charter,
        transport=transport,
        node_signer=derive_signer(SEED, f"node{i}"),
        agents=agents,
        settings=FAST,
        apps=plan.validators,
    )
    host = AppHost(node, catalog, plan)
    host.judge_held()
    return node, host


@contextlib.asynccontextmanager
async def app_net(
    tmp_path: Path,
    approved: list[set[BundleHash]],
    installed: list[Mapping[str, InstalledApp]],
    *,
    members: int = 2,
    fetch_loop: bool = True,
) -> AsyncIterator[tuple[TestNetwork, list[AppNode]]]:
    """One node per entry of ``approved``, with those approvals and ``installed`` apps, meshed."""
    charter = pinned_charter(len(approved))
    net = TestNetwork(MemoryNetwork(seed=7), charter, [])
    sockets = Path(tempfile.mkdtemp(prefix="cn-", dir="/tmp"))  # short: a socket path is <108 B
    nodes: list[AppNode] = []
    try:
        async with trio.open_nursery() as nursery:
            for i, (ok, apps) in enumerate(zip(approved, installed, strict=True)):
                agents = hosted_agents(i, members)
                store = open_store(tmp_path / f"node{i}.db", ok)
                node, host = planned_node(
                    store, charter, apps, agents, net.memnet.transport(f"node{i}"), i
                )
                net.nodes.append(node)
                for agent in agents:
                    net.agents[agent.name] = agent.key
                    net.home[agent.name] = node
                api = ApiServer(node, sockets / f"n{i}.sock", apps=host)
                await net.start_node(nursery, node)
                await nursery.start(api.run)
                if fetch_loop:
                    nursery.start_soon(host.run)
                await net.genesis(node, agents[0], agents[1:])
                nodes.append(AppNode(node, host, sockets / f"n{i}.sock"))
            for node in net.nodes[1:]:
                await node.connect(net.nodes[0].transport.listen_addrs()[0])
            await eventually(
                lambda: all(n.store.head(a) for n in net.nodes for a in net.agents.values())
            )
            yield net, nodes
            nursery.cancel_scope.cancel()
    finally:
        for node in net.nodes:
            node.store.close()
        shutil.rmtree(sockets, ignore_errors=True)


async def eventually(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Wait until ``check()`` is truthy; its value (``TooSlowError`` after ``timeout``)."""
    with trio.fail_after(timeout):
        while not (value := check()):
            await trio.sleep(0.05)
    return value


# -- approval ----------------------------------------------------------------------------------------


def test_approvals_and_withdrawals_survive_reopening_the_store(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    with NodeStore.open(path) as store:
        store.approve_bundle(LOOKOUT_HASH, "lookout", "0.1.0", 5)
        store.approve_bundle(HOURS_HASH, "hours", "0.1.0", 6)
    with NodeStore.open(path) as store:
        assert store.approved_bundles() == {LOOKOUT_HASH, HOURS_HASH}
        assert store.approvals()[0] == (LOOKOUT_HASH, "lookout", "0.1.0", 5)
        store.withdraw_bundle(HOURS_HASH)
    with NodeStore.open(path) as store:
        assert store.approved_bundles() == {LOOKOUT_HASH}
        statuses = {s.app_id: s for s in AppCatalog(store, pinned_charter(1), BOTH).statuses()}
    assert statuses["lookout"].running and statuses["lookout"].approved
    assert not statuses["hours"].running
    assert "has not approved" in statuses["hours"].reason


def test_a_kept_bundle_must_hash_to_its_name(tmp_path: Path) -> None:
    data = BOTH["lookout"].bundle()
    with NodeStore.open(tmp_path / "node.db") as store:
        with pytest.raises(ValueError, match="not bundle"):
            store.keep_bundle(HOURS_HASH, data)
        assert store.bundle(HOURS_HASH) is None
        store.keep_bundle(LOOKOUT_HASH, data)
        assert store.bundle(LOOKOUT_HASH) == data


def test_the_plan_imports_only_approved_code_at_the_pinned_hash(tmp_path: Path) -> None:
    charter = pinned_charter(1)
    with open_store(tmp_path / "node.db", {LOOKOUT_HASH}) as store:
        # hours is installed, but its code is not what the pin names: never run, even approved
        store.approve_bundle(HOURS_HASH, "hours", "0.1.0")
        other = InstalledApp("hours", HOURS_POINT, BOTH["lookout"].directory)
        plan = AppCatalog(store, charter, {"lookout": BOTH["lookout"], "hours": other}).plan()
    assert set(plan.running) == {"lookout"}
    hours_status = next(s for s in plan.statuses if s.app_id == "hours")
    assert f"the charter pins {HOURS_HASH}" in hours_status.reason
    assert plan.validators.runs("lookout") and not plan.validators.runs("hours")


async def test_an_unapproved_app_does_not_run_and_its_functions_say_why(tmp_path: Path) -> None:
    async with app_net(tmp_path, [{HOURS_HASH}], [BOTH]) as (_net, [one]):
        listed = {row["id"]: row for row in await one.result("app.list")}
        assert listed["lookout"]["installed"] and not listed["lookout"]["approved"]
        assert listed["lookout"]["running"] is False
        assert listed["hours"]["running"] is True
        error = await one.error("app.call", app="lookout", fn="board")
        assert error["code"] == 1 and error["data"]["kind"] == "AppError"
        assert "does not run on this node" in error["message"]
        assert f"has not approved bundle {LOOKOUT_HASH}" in error["message"]
        status = await one.result("status")
        assert {"id": "hours", "version": "0.1.0", "running": True, "reason": ""} in status["apps"]
        # approving through the API is kept, and the app runs only from the next start
        approved = await one.result("app.approve", hash=str(LOOKOUT_HASH))
        assert approved["approved"] and approved["id"] == "lookout"
        listed = {row["id"]: row for row in await one.result("app.list")}
        assert listed["lookout"]["running"] is False
        assert "runs from the next start" in listed["lookout"]["reason"]
        assert LOOKOUT_HASH in one.node.store.approved_bundles()


async def test_a_bundle_is_named_by_a_unique_prefix_of_its_hash_as_every_hash_is(
    tmp_path: Path,
) -> None:
    async with app_net(tmp_path, [{HOURS_HASH}], [BOTH]) as (_net, [one]):
        whole = str(LOOKOUT_HASH)
        shown = await one.result("app.show", hash=whole[:12] + "…")  # as tables print it
        assert shown["hash"] == whole and shown["id"] == "lookout"
        approved = await one.result("app.approve", hash=whole[:12])
        assert approved["hash"] == whole and approved["approved"]
        assert LOOKOUT_HASH in one.node.store.approved_bundles()
        short = await one.error("app.approve", hash=whole[:8])
        assert short["code"] == -32602 and "too short" in short["message"]
        unknown = await one.error("app.show", hash="app_" + "a" * 10)
        assert unknown["code"] == -32602 and "hash:" in unknown["message"]


async def test_call_errors_are_one_clear_line(tmp_path: Path) -> None:
    async with app_net(tmp_path, [{LOOKOUT_HASH}], [BOTH]) as (_net, [one]):
        unknown = await one.error("app.call", app="nope", fn="board")
        assert "no app 'nope'" in unknown["message"]
        no_fn = await one.error("app.call", app="lookout", fn="nope")
        assert "lookout has no function 'nope'" in no_fn["message"] and "board" in no_fn["message"]
        bad = await one.error(
            "app.call", app="lookout", fn="signal", agent="coop0-m0", params={"x": "1"}
        )
        assert bad["code"] == -32602 and "takes no parameter x" in bad["message"]
        missing = await one.error(
            "app.call", app="lookout", fn="signal", agent="coop0-m0", params={"title": "t"}
        )
        assert missing["code"] == -32602 and "source" in missing["message"]
        # the rules refuse a poll on something that is not a lookout item: the rule is named
        genesis = one.node.store.get_genesis(next(iter(one.node.agents)))
        assert genesis is not None
        refused = await one.error(
            "app.call",
            app="lookout",
            fn="poll",
            agent="coop0-m0",
            params={"item": str(genesis.hash), "choice": "advance"},
        )
        assert refused["data"]["kind"] == "ValidationError" and "reference" in refused["message"]
        several = await one.error(
            "app.call", app="lookout", fn="signal", params={"title": "t", "source": "s"}
        )
        assert "several agents" in several["message"]
        not_hosted = await one.error(
            "app.call",
            app="lookout",
            fn="signal",
            agent=str(derive_signer(SEED, "nobody").public_key.hex()),
            params={"title": "t", "source": "s"},
        )
        assert not_hosted["data"]["kind"] == "ValidationError"


# -- functions across nodes ------------------------------------------------------------------------------


async def test_a_signal_called_on_one_node_is_held_by_another(tmp_path: Path) -> None:
    both = {LOOKOUT_HASH}
    async with app_net(tmp_path, [both, both], [BOTH, BOTH]) as (net, [one, two]):
        posted = await one.result(
            "app.call",
            app="lookout",
            fn="signal",
            agent="coop0-m0",
            params={"title": "Heat pumps", "source": "news", "sectors": "energy,housing"},
        )
        record = await eventually(lambda: two.node.store.get(_action(posted)))
        assert record.action.entry_type == SIGNAL
        assert record.action.author == net.agents["coop0-m0"]
        feed = await two.result("app.call", app="lookout", fn="feed", params={"sector": "energy"})
        assert [item["title"] for item in feed] == ["Heat pumps"]
        # the node filled in its governance head (none yet: the charter's rules) and judged it
        assert one.node.store.warrants() == two.node.store.warrants() == []


async def test_the_hours_example_logs_and_totals_through_the_api(tmp_path: Path) -> None:
    async with app_net(tmp_path, [{HOURS_HASH}, set()], [BOTH, BOTH]) as (net, [one, _two]):
        coop1 = net.agents["coop1"]
        await eventually(lambda: one.node.store.head(coop1))
        logged = await one.result(
            "app.call",
            app="hours",
            fn="log",
            agent="coop0-m0",
            # text, as `conode call` sends it: the annotations say int and AgentKey
            params={"hours": "6", "for_whom": str(coop1), "description": "harvest"},
        )
        assert logged.startswith("act_")
        totals = await one.result("app.call", app="hours", fn="totals")
        assert totals == {str(net.agents["coop0-m0"]): 6}
        bad = await one.error(
            "app.call",
            app="hours",
            fn="log",
            agent="coop0-m0",
            params={"hours": "six", "for_whom": str(coop1), "description": "x"},
        )
        assert bad["code"] == -32602 and "hours: 'six' is not a whole number" in bad["message"]
        # the rule, not the schema, refuses hours for oneself: named in the error
        refused = await one.error(
            "app.call",
            app="hours",
            fn="log",
            agent="coop0-m0",
            params={"hours": "2", "for_whom": str(net.agents["coop0-m0"]), "description": "x"},
        )
        assert refused["data"]["kind"] == "ValidationError" and "for-whom" in refused["message"]
        assert hours.hours_per_member(one.host.api("hours").records()) == {
            net.agents["coop0-m0"]: 6
        }


# -- records of apps a node does not run ---------------------------------------------------------------


def _bad_signal(net: TestNetwork, name: str, head: Any, at: int) -> Record:
    """A lookout signal that breaks the lookout's schema (a title that is a number)."""
    return author_record(
        derive_signer(SEED, name),
        head,
        kind=ActionKind.CREATE,
        timestamp=at,
        entry={"title": 5, "text": "", "source": "x", "sectors": []},
        entry_type=SIGNAL,
    )


async def test_records_of_a_pinned_app_a_node_does_not_run_are_held_not_warranted(
    tmp_path: Path,
) -> None:
    # node 0 runs the lookout; node 1 has not approved it (its operator has not read the code)
    async with app_net(tmp_path, [{LOOKOUT_HASH}, set()], [BOTH, BOTH]) as (net, [one, two]):
        posted = await one.result(
            "app.call",
            app="lookout",
            fn="signal",
            agent="coop0-m0",
            params={"title": "Drought", "source": "met office", "sectors": "food"},
        )
        held = await eventually(lambda: two.node.store.get(_action(posted)))
        assert held.action.entry_type == SIGNAL
        # a record that breaks the lookout's rules reaches node 1, which cannot judge it:
        # held unjudged, never called invalid, its author not warranted
        author = net.agents["coop0-m1"]
        head = two.node.store.head(author)
        bad = _bad_signal(net, "coop0-m1", head, one.node.clock())
        verdict = await two.node.ingest(bad, PeerId(one.node.transport.peer_id))
        assert isinstance(verdict, Valid)
        assert two.node.store.get(bad.hash) is not None
        assert not two.node.store.warranted(author)
        assert not two.node.store.warranted(net.agents["coop0-m0"])
        # the authors' chains go on here: a payment after the app records is judged as usual
        result = await net.pay("coop0-m0", "coop1-m0", 7)
        assert result.committed, result.reason
        await eventually(lambda: two.node.store.activity(net.agents["coop0-m0"]).balance == -7)
        # an app that no rule pins is still refused, and its author warranted
        stranger = net.agents["coop1-m1"]
        rogue = author_record(
            derive_signer(SEED, "coop1-m1"),
            two.node.store.head(stranger),
            kind=ActionKind.CREATE,
            timestamp=two.node.clock(),
            entry={"text": "spam"},
            entry_type="nope/thing",
        )
        verdict = await one.node.ingest(rogue, PeerId(two.node.transport.peer_id))
        assert isinstance(verdict, Invalid) and verdict.rule == "unknown-app"
        assert one.node.store.warranted(stranger)
        store_path = Path(two.node.store.path)
        bad_hash = bad.hash
    # node 1's operator approves the lookout and restarts: the held records are judged now
    with open_store(store_path, {LOOKOUT_HASH}) as store:
        _node, host = planned_node(
            store, net.charter, BOTH, hosted_agents(1, 2), MemoryNetwork().transport("again"), 1
        )
        assert host.apps.keys() == {"lookout"}
        assert store.warranted(author)  # the invalid one: warranted at this start
        assert not store.warranted(net.agents["coop0-m0"])  # the honest ones: valid
        assert store.get(bad_hash) is not None
        # and only once: the next start does not judge them again
        assert host.judge_held() == 0


# -- bundles by hash ------------------------------------------------------------------------------------


async def test_a_pinned_bundle_is_served_by_one_node_and_fetched_by_another(tmp_path: Path) -> None:
    # node 0 has the lookout installed at the pin; node 1 has no app installed at all
    async with app_net(tmp_path, [{LOOKOUT_HASH}, set()], [BOTH, {}]) as (_net, [one, two]):
        listed = {row["id"]: row for row in await two.result("app.list")}
        assert not listed["lookout"]["installed"] and not listed["lookout"]["running"]
        # node 1 fetches the pinned bundles it lacks by itself, and checks them against the pin
        data = await eventually(lambda: two.node.store.bundle(LOOKOUT_HASH))
        assert data == one.node.store.bundle(LOOKOUT_HASH) == BOTH["lookout"].bundle()
        assert verify_bundle(data, LOOKOUT_HASH)
        shown = await two.result("app.show", hash=str(LOOKOUT_HASH))
        assert shown["source"] == "kept" and shown["id"] == "lookout" and shown["pinned"]
        paths = [f["path"] for f in shown["files"]]
        assert "lookout/__init__.py" in paths and "lookout/entries.py" in paths
        entries = next(f for f in shown["files"] if f["path"] == "lookout/entries.py")
        assert "def validate_signal" in entries["text"] or "SIGNAL" in entries["text"]
        again = await two.result("app.fetch", hash=str(LOOKOUT_HASH))
        assert again["fetched"] is False and "lookout/board.py" in again["files"]
        # approving it does not run it: the code is still not installed here
        approved = await two.result("app.approve", hash=str(LOOKOUT_HASH))
        assert approved["approved"] and not approved["installed"]
        listed = {row["id"]: row for row in await two.result("app.list")}
        assert listed["lookout"]["approved"] and not listed["lookout"]["running"]
        assert "no local code" in listed["lookout"]["reason"]
        assert "install it" in listed["lookout"]["reason"]


async def test_bytes_that_do_not_hash_to_the_bundle_are_refused(tmp_path: Path) -> None:
    async with app_net(
        tmp_path, [{LOOKOUT_HASH}, set()], [BOTH, {}], fetch_loop=False
    ) as (_net, [one, two]):
        real = one.node.store.bundle(LOOKOUT_HASH)
        assert real is not None
        forged = unpack_bundle(real)
        forged["lookout/__init__.py"] += b"\nimport os; os.system('echo pwned')\n"

        async def liar(_peer: PeerId, _payload: bytes) -> bytes:
            from conode.apps.sdk import pack_bundle

            return wire.dumps({"data": pack_bundle(forged)})

        one.node.transport.set_handler(protocol_id(one.node.network_short, wire.BUNDLE), liar)
        with pytest.raises(NetworkError, match="1 sent bytes that do not hash to it: refused"):
            await two.node.fetch_bundle(LOOKOUT_HASH)
        assert two.node.store.bundle(LOOKOUT_HASH) is None
        error = await two.error("app.fetch", hash=str(LOOKOUT_HASH))
        assert error["data"]["kind"] == "NetworkError" and "refused" in error["message"]
        shown = await two.error("app.show", hash=str(LOOKOUT_HASH))
        assert "neither installed nor fetched" in shown["message"]


def _action(text: str) -> ActionHash:
    return ActionHash.parse(text)


def test_node_apps_answer_for_every_app_id() -> None:
    apps = NodeApps({"lookout": BOTH["lookout"].load()})
    assert list(apps) == ["lookout"] and len(apps) == 1
    assert apps.get("anything-else") is not None  # held unjudged or unknown, never "no app"
    assert apps.runs("lookout") and not apps.runs("hours")



# -- search ---------------------------------------------------------------------------------------------

NOTES = App(
    "notes",
    "0.1.0",
    entry_types=[EntryType("note", {"text": Text(200, min_len=1)}, searchable=("text",))],
)


async def test_search_finds_held_records_of_the_app_by_their_words(tmp_path: Path) -> None:
    charter = pinned_charter(1)
    pin = AppPin("notes", "0.1.0", BundleHash.of(b"the notes app"))
    charter = replace(charter, params=replace(charter.params, apps=(pin,)))
    net = TestNetwork(MemoryNetwork(seed=3), charter, [])
    agents = hosted_agents(0, 1)
    store = NodeStore.open(tmp_path / "node0.db")
    catalog = AppCatalog(store, charter, {})
    running = {"notes": NOTES}
    plan = AppPlan((), running, NodeApps(running))
    node = Node(
        store=store,
        charter=charter,
        transport=net.memnet.transport("node0"),
        node_signer=derive_signer(SEED, "node0"),
        agents=agents,
        settings=FAST,
        apps=plan.validators,
    )
    try:
        async with trio.open_nursery() as nursery:
            await net.start_node(nursery, node)
            await net.genesis(node, agents[0], agents[1:])
            api = AppHost(node, catalog, plan).api("notes")
            member = agents[1].key
            bread = await api.commit(member, "note", NOTES.entry("note", text="Sourdough bread"))
            await api.commit(member, "note", NOTES.entry("note", text="Bicycle repairs"))
            assert [r.hash for r in api.search("sourdough")] == [bread]
            assert [r.hash for r in api.search("SOUR")] == [bread]  # case folded, word prefixes
            assert api.search("") == [] and api.search("bread bicycle") == []
            # records stored after a search are indexed by the next one
            starter = await api.commit(member, "note", NOTES.entry("note", text="Sourdough starter"))
            assert {r.hash for r in api.search("sourdough")} == {bread, starter}
            with pytest.raises(AppError, match="not a type of notes"):
                api.search("sourdough", "lookout/signal")
            # a new host over the same store (a restart) indexes nothing twice
            again = AppHost(node, catalog, plan).api("notes")
            assert {r.hash for r in again.search("sourdough")} == {bread, starter}
            assert len(node.store.text_index()) == 3
            nursery.cancel_scope.cancel()
    finally:
        store.close()
