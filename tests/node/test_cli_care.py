"""The small things a careful user hits, through the real ``conode`` command (issue 13, item 10).

Apps listed before any charter exists, and pinned and configured by the
charter TOML; CSV cells a spreadsheet would run.
"""

from __future__ import annotations

import json
from pathlib import Path

from test_cli_network import charter_toml, error_line, run

from cli.devnet import builtin_app_pins
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
