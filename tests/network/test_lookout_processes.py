"""``conode lookout`` with real ``conode run`` processes on 127.0.0.1.

Three nodes on a network prepared as ``conode devnet`` prepares it: the
charter pins the built-in apps and every operator approved them. One network
carries the whole scenario: a signal on node 0, a sign citing it from node 1
(named by the start of its hash, as the board prints it), a significance from
node 2 for a sector and a co-op, linked to an exchange want; comments and
sense-check polls by members on every node. Once the nodes converge, each
shows the same board. Bad input is one line, exit 1, and changes nothing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from procs import Net, conode, conode_json, start_all, wait_for

from cli.devnet import approve_apps, builtin_app_pins, prepare
from conode.hashes import ActionHash

pytestmark = pytest.mark.slow


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``conode: error:`` line of a failed command."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.startswith("conode: error: ")]
    assert len(lines) == 1 and lines == result.stderr.splitlines(), result.stderr
    return lines[0]


def board(net: Net, index: int) -> dict[str, Any]:
    found: dict[str, Any] = conode_json(net.dir(index), "lookout", "board")
    return found


def holds(net: Net, index: int, item: str) -> bool:
    """Node ``index``'s board shows ``item``."""
    return any(i["hash"] == item for stage in board(net, index).values() for i in stage)


def posted(net: Net, index: int, *args: str) -> str:
    """Run a posting ``conode lookout`` command on node ``index``; the new record's hash."""
    answer = conode_json(net.dir(index), "lookout", *args)
    assert answer["type"].startswith("lookout/") and answer["hash"].startswith("act_")
    hash_: str = answer["hash"]
    return hash_


def printed_item(text: str, title: str) -> str:
    """The ITEM column (the hash's start, with ``…``) of the board row titled ``title``."""
    (row,) = [line for line in text.splitlines() if f"  {title}  " in line]
    return row.split()[0]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Any:
    plan = prepare(tmp_path_factory.mktemp("lookout"), 3, "lookout-cli", members=1,
                   apps=builtin_app_pins())  # fmt: skip
    approve_apps(plan)
    running = Net(plan, start_all(plan))
    try:
        running.settle()
        yield running
    finally:
        running.stop()


def test_the_devnet_pins_and_approves_the_built_in_apps_so_they_run(net: Net) -> None:
    pinned = {pin.id for pin in net.plan.charter.params.apps}
    assert {"lookout", "exchange"} <= pinned
    for index in range(3):
        apps = {a["id"]: a for a in net.status(index)["apps"]}
        assert all(apps[app_id]["running"] for app_id in pinned), apps


def test_signal_sign_significance_across_nodes_converge_to_one_board(net: Net) -> None:
    key = net.key
    seen = posted(
        net, 0, "signal", "Seed prices up 40%", "--source", "Growers' bulletin",
        "--sector", "food", "--sector", "farming", "--as", "coop0-m0",
    )  # fmt: skip
    wait_for(lambda: holds(net, 1, seen), "node 1 to hold the signal", 60)
    table = conode(net.dir(1), "lookout", "board").stdout
    short = printed_item(table, "Seed prices up 40%")
    assert short.endswith("…") and seen.startswith(short[:-1])
    change = posted(
        net, 1, "sign", "Input costs rising", "--cites", short,
        "--text", "Seed, feed and fuel all up", "--as", "coop1",
    )  # fmt: skip

    want = conode_json(
        net.dir(2), "want", "add", "Bulk seed", "--category", "food/seed", "--price", "2",
        "--unit", "kg", "--quantity", "100", "--as", "coop2",
    )["hash"]  # fmt: skip
    wait_for(lambda: holds(net, 2, change), "node 2 to hold the sign", 60)
    meaning = posted(
        net, 2, "significance", "Margins squeezed", "--cites", change, "--for", "food",
        "--for", key("coop2"), "--suggest", "Buy seed together", "--as", "coop2-m0",
    )  # fmt: skip
    response = posted(
        net, 2, "respond", meaning, want, "--kind", "want", "--note", "we buy for all",
        "--as", "coop2",
    )  # fmt: skip
    assert response not in (meaning, want)

    # members on every node discuss and sense-check the significance (and the signal)
    wait_for(lambda: holds(net, 0, meaning), "node 0 to hold the significance", 60)
    wait_for(lambda: holds(net, 1, meaning), "node 1 to hold the significance", 60)
    posted(net, 0, "comment", meaning, "Our market sees the same", "--as", "coop0-m0")
    posted(net, 1, "comment", seen[:12], "Confirmed by our growers", "--as", "coop1-m0")
    posted(net, 0, "poll", meaning, "advance", "--as", "coop0-m0")
    posted(net, 1, "poll", meaning, "hold", "--as", "coop1-m0")
    posted(net, 2, "poll", meaning, "advance", "--as", "coop2-m0")
    again = conode(net.dir(0), "lookout", "poll", meaning, "hold", "--as", "coop0-m0", expect=1)
    assert "duplicate" in one_error(again)

    def same_full_board() -> dict[str, dict[str, Any]] | None:
        boards = [board(net, i) for i in range(3)]
        if boards[1:] != boards[:-1]:
            return None
        items = {i["hash"]: i for stage in boards[0].values() for i in stage}
        done = meaning in items and items[meaning]["polls"] == {"advance": 2, "hold": 1}
        if not done or items[meaning]["comments"] != 1 or items[seen]["comments"] != 1:
            return None
        return items

    shared = wait_for(same_full_board, "every node to show the same whole board", 90)
    signal, sign, significance = shared[seen], shared[change], shared[meaning]
    assert (signal["stage"], sign["stage"], significance["stage"]) == (
        "signal", "sign", "significance",
    )  # fmt: skip
    assert (signal["hash"], signal["author"], signal["sectors"]) == (
        seen, key("coop0-m0"), ["food", "farming"],
    )  # fmt: skip
    assert (sign["cites"], sign["cited_by"], sign["author"]) == ([seen], [meaning], key("coop1"))
    assert sign["sectors"] == ["farming", "food"]  # a sign's sectors are its signals'
    assert significance["cites"] == [change] and significance["coop"] == key("coop2")
    assert significance["suggested"] == ["Buy seed together"]
    assert significance["responses"] == [
        {"kind": "want", "response": want, "author": key("coop2"), "author_name": "coop2 Ltd"}
    ]
    assert (signal["author_name"], sign["author_name"], significance["author_name"]) == (
        "coop0-m0", "coop1 Ltd", "coop2-m0",
    )  # fmt: skip
    assert significance["coop_name"] == "coop2 Ltd"  # devnet co-ops' legal names

    # the readable forms: the board table, a sector's feed, a thread with its discussion
    text = conode(net.dir(1), "lookout", "board").stdout
    row = next(line for line in text.splitlines() if "Margins squeezed" in line)
    assert "advance 2-1" in row and row.split()[1] == "significance"
    assert "  coop2-m0  " in row  # the BY column names the author
    feed = conode_json(net.dir(2), "lookout", "feed", "food")
    assert [(i["stage"], i["hash"]) for i in feed] == [
        ("significance", meaning), ("sign", change), ("signal", seen),
    ]  # fmt: skip
    assert conode_json(net.dir(2), "lookout", "board", "--sector", "energy") == {
        "signals": [], "signs": [], "significances": [],
    }  # fmt: skip
    meaning_author = key("coop2-m0")
    thread = conode(net.dir(0), "lookout", "thread", meaning[:14]).stdout
    assert "Our market sees the same" in thread and f"response: want {want}" in thread
    assert "sense-check: 2 advance, 1 hold" in thread
    assert f"by coop2-m0 ({meaning_author[:16]}…) at" in thread
    assert f"(by coop2 Ltd ({key('coop2')[:16]}…))" in thread  # the response's author
    assert f"comment by coop0-m0 ({key('coop0-m0')[:16]}…) at" in thread
    (discussed,) = [
        i for i in conode_json(net.dir(2), "lookout", "thread", seen) if i["hash"] == seen
    ]
    assert [c["text"] for c in discussed["discussion"]] == ["Confirmed by our growers"]
    assert discussed["discussion"][0]["author"] == key("coop1-m0")
    assert discussed["discussion"][0]["author_name"] == "coop1-m0"


def test_bad_input_is_one_line_and_changes_nothing(net: Net, tmp_path: Path) -> None:
    seen = posted(net, 0, "signal", "Flooding downstream", "--source", "gauge 14",
                  "--sector", "water", "--as", "coop0-m0")  # fmt: skip
    change = posted(net, 0, "sign", "Wetter winters", "--cites", seen, "--as", "coop0-m0")
    before = board(net, 0)
    unknown = str(ActionHash.of(b"no such record"))
    cases = [
        (("sign", "x", "--cites", change), "citation: signals[0] is lookout/sign, not lookout/signal"),
        (("significance", "x", "--cites", seen, "--for", "water"), "citation: signs[0] is lookout/signal"),
        (("significance", "x", "--cites", change), "say who it matters to"),
        (("respond", seen, change), "reference: significance is lookout/signal"),
        (("comment", unknown, "hello"), f"no lookout item {unknown} on this node's board"),
        (("poll", "act_zz", "advance"), "no lookout item act_zz"),
        (("signal", "x", "--source", "y", "--sector", "Food!"), "sectors[0]: must be text"),
    ]  # fmt: skip
    for args, expected in cases:
        line = one_error(conode(net.dir(0), "lookout", *args, "--as", "coop0-m0", expect=1))
        assert expected in line, (args, line)
    assert "no lookout item" in one_error(
        conode(net.dir(0), "lookout", "thread", unknown, expect=1)
    )
    assert "invalid choice" in conode(net.dir(0), "lookout", "poll", seen, "maybe", expect=2).stderr
    assert "conode init" in one_error(conode(tmp_path / "none", "lookout", "board", expect=1))
    assert board(net, 0) == before
