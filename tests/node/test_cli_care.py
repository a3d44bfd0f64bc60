"""The small things a careful user hits, through the real ``conode`` command (issue 13, item 10).

Apps listed before any charter exists, and pinned and configured by the
charter TOML; CSV cells a spreadsheet would run; Ctrl-C while a command
loads, and a charter TOML that is not UTF-8.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest
from test_cli_network import COMMAND, charter_toml, error_line, run

from cli.devnet import builtin_app_pins, prepare
from cli.render import spreadsheet_text
from conode.crypto import Signer
from conode.hashes import AgentKey

FOUNDER = str(AgentKey(Signer(bytes(range(32))).public_key))


def _pins_toml() -> str:
    """``[[apps]]`` tables for the apps that come with conode, at their installed code."""
    return "".join(
        f'\n[[apps]]\nid = "{pin.id}"\nversion = "{pin.version}"\ncode_hash = "{pin.code_hash}"\n'
        for pin in builtin_app_pins()
    )


# -- app list and the charter's apps -----------------------------------------------------------------


def test_app_list_shows_each_installed_apps_id_version_and_hash_without_a_charter(
    tmp_path: Path,
) -> None:
    expected = {(p.id, p.version, str(p.code_hash)) for p in builtin_app_pins()}
    for data in (tmp_path / "never-initialised", tmp_path / "no-charter"):
        if data.name == "no-charter":
            run(data, "init")
        rows = json.loads(run(data, "app", "list", "--json").stdout)
        listed = {(r["id"], r["installed_version"], r["local_hash"]) for r in rows}
        assert expected <= listed
        assert all(r["pinned"] is False and r["running"] is None for r in rows)
        text = run(data, "app", "list").stdout
        for app_id, version, code_hash in expected:
            line = next(x for x in text.splitlines() if x.startswith(f"{app_id} "))
            assert line.split()[:4] == [app_id, version, code_hash, "no"]
        assert "pin it in the charter TOML's [[apps]]" in text
    assert not (tmp_path / "never-initialised").exists()  # listing creates nothing


def test_the_charter_toml_pins_apps_and_sets_their_configuration(tmp_path: Path) -> None:
    toml = tmp_path / "charter.toml"
    toml.write_text(
        charter_toml([FOUNDER])
        + _pins_toml()
        + "\n[app_config.exchange]\nissues_credit = true\ngrant_cap = 100000\n"
        + 'categories = ["food/bakery", "services/repair"]\n'
    )
    out = tmp_path / "charter.cbor"
    run(None, "charter", "new", "--from", str(toml), "--out", str(out))
    shown = json.loads(run(None, "charter", "show", str(out), "--json").stdout)
    assert {(a["id"], a["version"], a["code_hash"]) for a in shown["apps"]} == {
        (p.id, p.version, str(p.code_hash)) for p in builtin_app_pins()
    }
    assert shown["app_config"] == {
        "exchange": {
            "issues_credit": True,
            "grant_cap": 100000,
            "categories": ["food/bakery", "services/repair"],
        }
    }
    text = run(None, "charter", "show", str(out)).stdout
    (line,) = [x for x in text.splitlines() if x.startswith("app config     exchange: {")]
    assert '"categories": ["food/bakery", "services/repair"]' in line
    assert '"issues_credit": true' in line and '"grant_cap": 100000' in line
    # a node of this network lists the apps as pinned, at the hashes it has installed
    data = tmp_path / "node"
    run(data, "init", "--charter", str(out))
    rows = {r["id"]: r for r in json.loads(run(data, "app", "list", "--json").stdout)}
    for pin in builtin_app_pins():
        assert rows[pin.id]["pinned"] is True
        assert rows[pin.id]["hash"] == rows[pin.id]["local_hash"] == str(pin.code_hash)


def test_app_config_of_an_app_no_pin_names_or_holding_a_float_is_one_line(tmp_path: Path) -> None:
    toml = tmp_path / "charter.toml"
    out = tmp_path / "charter.cbor"
    for extra, reason in (
        ("\n[app_config.exchnge]\nissues_credit = true\n", "no [[apps]] entry pins an app 'exchnge'"),
        ("\n[app_config.exchange]\ngrant_cap = 1000.5\n", "grant_cap = 1000.5: conode stores no floats"),
        ("\n[app_config.exchange]\nfrom = 2025-01-01\n", "app_config.exchange.from: a date cannot"),
    ):
        toml.write_text(charter_toml([FOUNDER]) + _pins_toml() + extra)
        line = error_line(run(None, "charter", "new", "--from", str(toml), "--out", str(out), expect=1))
        assert reason in line
        assert not out.exists()


# -- CSV ---------------------------------------------------------------------------------------------


def test_a_text_cell_a_spreadsheet_would_run_gets_a_quote_and_nothing_else_changes() -> None:
    for start in ("=", "+", "-", "@", "\t", "\r"):
        assert spreadsheet_text(f"{start}SUM(A1)") == f"'{start}SUM(A1)"
    for plain in ("", "bread", "12.50", "agt_x", " =1", "'=1", "a=b", "\n=1"):
        assert spreadsheet_text(plain) == plain


# -- Ctrl-C while a command starts; files that are not UTF-8 ----------------------------------------------

# Loaded by the interpreter at start-up from PYTHONPATH: it sends the process a SIGINT (a Ctrl-C)
# at the moment the module $SIGINT_AT_IMPORT is first looked for, so the interrupt lands inside the
# command's start-up every time, not only when a sleep happens to line up.
_SITECUSTOMIZE = textwrap.dedent(
    """
    import os, signal, sys

    class _CtrlC:
        fired = False

        @classmethod
        def find_spec(cls, name, path=None, target=None):
            if name == os.environ["SIGINT_AT_IMPORT"] and not cls.fired:
                cls.fired = True
                os.kill(os.getpid(), signal.SIGINT)
            return None

    if os.environ.get("SIGINT_AT_IMPORT"):
        sys.meta_path.insert(0, _CtrlC)
    """
)


def _ctrl_c_answered() -> None:
    # SIGINT at its default in the child, as under a terminal: a test run started in the
    # background by a shell without job control inherits it ignored (tests/network/procs.py)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupted_at(tmp_path: Path, module: str, *args: str) -> subprocess.CompletedProcess[str]:
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONODE_")}
    env |= {"PYTHONPATH": str(hook), "SIGINT_AT_IMPORT": module}
    return subprocess.run(
        [*COMMAND, *args], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=60, check=False, preexec_fn=_ctrl_c_answered,
    )  # fmt: skip


@pytest.mark.parametrize("module", ["conode.store", "cli.apicmds", "conode.apps.loader"])
def test_ctrl_c_while_the_commands_modules_load_exits_130_in_one_line(
    tmp_path: Path, module: str
) -> None:
    result = _interrupted_at(tmp_path, module, "--data-dir", str(tmp_path / "d"), "status")
    assert result.returncode == 130, result.stderr
    assert result.stderr.strip() == "conode: interrupted"


@pytest.mark.parametrize("module", ["trio", "conode.daemon", "libp2p"])
def test_ctrl_c_while_conode_run_starts_exits_130_in_one_line(tmp_path: Path, module: str) -> None:
    data = prepare(tmp_path / "net", 2, "ctrl-c").dirs[0].root
    result = _interrupted_at(tmp_path, module, "--data-dir", str(data), "run")
    assert result.returncode == 130, result.stderr
    assert result.stderr.strip() == "conode: interrupted"


def test_a_charter_toml_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    toml = tmp_path / "charter.toml"
    toml.write_bytes(charter_toml([FOUNDER]).replace("Test Network", "Caf\xe9").encode("latin-1"))
    out = tmp_path / "charter.cbor"
    line = error_line(run(None, "charter", "new", "--from", str(toml), "--out", str(out), expect=1))
    assert line == (
        f"conode: error: {toml} is not UTF-8 text (byte 0xe9 on line 1): "
        "TOML files are UTF-8; save it as UTF-8"
    )
    assert not out.exists()
    # a charter file is canonical CBOR: text of any encoding given as one is one line too
    for command in ("show", "verify"):
        line = error_line(run(None, "charter", command, str(toml), expect=1))
        assert line.startswith(f"conode: error: {toml} is not a valid conode charter: ")
    line = error_line(run(tmp_path / "node", "init", "--charter", str(toml), expect=1))
    assert line.startswith(f"conode: error: {toml} is not a valid conode charter: ")


def test_key_export_and_credential_files_of_other_bytes_are_one_line(tmp_path: Path) -> None:
    """The other files people hand to conode: Latin-1 text or random bytes are one line each."""
    toml = tmp_path / "charter.toml"
    toml.write_text(charter_toml([FOUNDER]))
    charter = tmp_path / "charter.cbor"
    run(None, "charter", "new", "--from", str(toml), "--out", str(charter))
    data = tmp_path / "node"
    run(data, "init", "--charter", str(charter))
    run(data, "agent", "new", "ana", "--no-passphrase")
    for content in ('{"name": "Caf\xe9"}'.encode("latin-1"), bytes(range(256))):
        bad = tmp_path / "bad"
        bad.write_bytes(content)
        for args, says in (
            (("recover", "--key", str(bad)), f"{bad} is not a key file"),
            (("chain", "import", str(bad)), f"{bad}: not a chain export file"),
            (("chain", "verify", "--file", str(bad)), f"{bad}: not a chain export file"),
            (("audit", str(bad)), f"{bad}: not a chain export file"),
            (("agent", "join", "ana", "--credential", str(bad)), f"{bad} is not a credential file"),
        ):
            assert says in error_line(run(data, *args, expect=1)), args
