"""``members_vote`` in a charter written by people: ``conode charter new`` reads it from TOML,
``conode charter show`` shows it; left out, the charter is what it always was."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conode.crypto import Signer
from conode.hashes import AgentKey
from conode.validation.charter import Charter

_SCRIPT = Path(sys.executable).with_name("conode")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "cli"]
FOUNDER = str(AgentKey(Signer(bytes(range(32))).public_key))


def conode(*args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    """Run ``conode args`` (no data dir); check the exit code and that no traceback leaked."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONODE_")}
    result = subprocess.run(
        [*COMMAND, *args], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == expect, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def write_charter(directory: Path, extra: str = "") -> Path:
    """A charter TOML (with ``extra`` top-level lines) turned into a charter file by the CLI."""
    toml = directory / "charter.toml"
    toml.write_text(
        textwrap.dedent(
            f"""
            name = "Vote Net"
            currency = "VTN"
            created_at = 2025-03-01T00:00:00Z
            {extra}
            [limits.coop]
            credit_limit = 100000
            balance_cap = 10000000
            [limits.member]
            credit_limit = 500
            balance_cap = 100000
            [[founding]]
            agent = "{FOUNDER}"
            legal_name = "Founder Ltd"
            registration = "R-1"
            """
        )
    )
    out = directory / "charter.cbor"
    conode("charter", "new", "--from", str(toml), "--out", str(out))
    return out


def test_members_vote_from_toml_is_in_the_charter_and_shown(tmp_path: Path) -> None:
    (tmp_path / "on").mkdir()
    (tmp_path / "off").mkdir()
    on = write_charter(tmp_path / "on", "members_vote = true")
    off = write_charter(tmp_path / "off")
    assert Charter.from_bytes(on.read_bytes()).params.members_vote is True
    assert Charter.from_bytes(off.read_bytes()).params.members_vote is False
    shown_on = json.loads(conode("charter", "show", str(on), "--json").stdout)
    shown_off = json.loads(conode("charter", "show", str(off), "--json").stdout)
    assert shown_on["members_vote"] is True and shown_off["members_vote"] is False
    assert shown_on["network"] != shown_off["network"]
    assert "co-ops and their members" in conode("charter", "show", str(on)).stdout
    assert "co-ops only" in conode("charter", "show", str(off)).stdout


def test_members_vote_that_is_not_a_boolean_is_refused_in_one_line(tmp_path: Path) -> None:
    toml = tmp_path / "charter.toml"
    (tmp_path / "ok").mkdir()
    write_charter(tmp_path / "ok")  # the same TOML without the bad line is fine
    toml.write_text((tmp_path / "ok" / "charter.toml").read_text().replace(
        'currency = "VTN"', 'currency = "VTN"\nmembers_vote = "yes"'
    ))  # fmt: skip
    result = conode("charter", "new", "--from", str(toml), "--out", str(tmp_path / "x"), expect=1)
    errors = [line for line in result.stderr.splitlines() if line.startswith("conode: error: ")]
    assert len(errors) == 1 and "members_vote must be true or false" in errors[0]
    assert not (tmp_path / "x").exists()
