"""Never author what the network refuses: `chain add`, `chain import` and `chain verify` on a
networked data dir judge by the network's rules (the node's own engine), not only the chain rules.

The data dirs are a devnet's, prepared offline (``cli.devnet.prepare``): no node runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cli import ops
from cli.devnet import DevnetPlan, prepare
from conode.keyfile import key_path, load_key

MEMBER = "coop0-m0"


def conode(data: Path, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "cli", "--data-dir", str(data), *args],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120, check=False,
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == expect, (args, result.returncode, result.stdout, result.stderr)
    return result


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> DevnetPlan:
    return prepare(tmp_path_factory.mktemp("guard"), 2, "guard")


def _records(data: Path, agent: str) -> int:
    return int(json.loads(conode(data, "chain", "show", agent, "--json").stdout)["records"])


def test_chain_add_of_an_entry_no_app_knows_is_refused_by_rule_and_commits_nothing(
    plan: DevnetPlan,
) -> None:
    data = plan.dirs[0].root
    before = _records(data, MEMBER)
    refused = conode(data, "chain", "add", MEMBER, "--type", "note", "--data", '{"text":"hi"}',
                     expect=1)  # fmt: skip
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith("conode: error: refused, nothing committed: unknown-app:"), line
    assert "warrant" in line and "conode call" in line
    assert _records(data, MEMBER) == before


def test_chain_verify_judges_a_networked_chain_by_the_network_rules(
    tmp_path: Path, plan: DevnetPlan
) -> None:
    """A chain holding a record no peer accepts (as `chain add` wrote it before) keeps every chain
    rule, and `chain verify` used to call it valid; it names the rule now. Its export is refused
    by `chain import` on another node, naming the record and the rule."""
    data = plan.dirs[1].root
    member = "coop1-m0"
    assert "every rule of the network holds" in conode(data, "chain", "verify", member).stdout
    signer = load_key(key_path(plan.dirs[1].keys_dir, member))
    with plan.dirs[1].open_store() as store:  # bypassing the guard, as the old `chain add` did
        bad = ops.commit_entry(store, signer, entry_type="note", entry={"text": "hi"},
                               timestamp=ops.now_us())  # fmt: skip
    verdict = json.loads(conode(data, "chain", "verify", member, "--json", expect=1).stdout)
    assert verdict["violation"]["rule"] == "unknown-app"
    assert verdict["violation"]["seq"] == bad.action.seq
    exported = tmp_path / "m.chain"
    conode(data, "chain", "export", member, "--out", str(exported))
    other = plan.dirs[0].root
    refused = conode(other, "chain", "import", str(exported), expect=1)
    assert f"(seq {bad.action.seq}): unknown-app" in refused.stderr, refused.stderr
    key = str(plan.agents[member].key)
    held = json.loads(conode(other, "chain", "show", key, "--json").stdout)["records"]
    assert held == bad.action.seq  # the records before it, each judged valid, and not it
