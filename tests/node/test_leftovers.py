"""Numbers and files people type: whole numbers are ASCII digits; a bad config.toml or credential
file is one line, never a traceback (issue 11 pass 2's leftovers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_cli_network import charter_toml, error_line, run

from conode.api import ApiServer
from conode.errors import ValidationError
from conode.hashes import AgentKey
from conode.node.apps.binding import bind_params
from conode.node.governance import Governance
from conode.testing import TestNetwork, derive_signer
from conode.validation.governance import ProposalKind


def _fn(api: Any, n: int) -> int:
    return n


def _no_agent(text: str | None, hosted: bool) -> AgentKey:
    raise AssertionError("no agent is named")


@pytest.mark.parametrize("text", ["١٢", "1_000", "+5", "five", ""])
def test_an_app_functions_whole_number_parameter_takes_ascii_digits_only(text: str) -> None:
    with pytest.raises(ValueError, match="is not a whole number"):
        bind_params("lookout.f", _fn, {"n": text}, None, _no_agent)


def test_an_app_functions_whole_number_parameter_reads_digits_and_a_minus() -> None:
    assert bind_params("lookout.f", _fn, {"n": " 12 "}, None, _no_agent) == {"n": 12}
    assert bind_params("lookout.f", _fn, {"n": "-7"}, None, _no_agent) == {"n": -7}


async def test_a_bills_expiry_in_other_digits_is_a_bad_parameter(tmp_path: Path) -> None:
    async with TestNetwork.start(tmp_path, nodes=2, members=1) as net:
        bill = ApiServer(net.nodes[0], tmp_path / "unused.sock").methods["bill"]
        payer = str(AgentKey(derive_signer("testnet", "coop1-m0").public_key))
        params = {"from": "coop0-m0", "to": payer, "amount": 5}
        with pytest.raises(ValueError, match="expires_in_s must be a whole number"):
            await bill({**params, "expires_in_s": "٣٦٠٠"})
        assert (await bill({**params, "expires_in_s": "3600"}))["id"].startswith("act_")


def test_a_config_toml_not_utf8_or_nested_too_deep_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "node"
    run(data, "init")
    config = data / "config.toml"
    good = config.read_bytes()
    config.write_bytes(good + '# Café\n'.encode("latin-1"))
    line = error_line(run(data, "status", expect=1))
    assert line.startswith(f"conode: error: {config} is not UTF-8 text (byte 0xe9 on line ")
    config.write_bytes(good + b"deep = " + b"[" * 1000 + b"]" * 1000 + b"\n")
    line = error_line(run(data, "status", expect=1))
    assert line == f"conode: error: {config} is not valid TOML: its values are nested too deep"


def test_a_credential_file_nested_too_deep_is_one_line(tmp_path: Path) -> None:
    toml = tmp_path / "charter.toml"
    toml.write_text(charter_toml([str(AgentKey(bytes(range(32))))]))
    charter = tmp_path / "charter.cbor"
    run(None, "charter", "new", "--from", str(toml), "--out", str(charter))
    data = tmp_path / "node"
    run(data, "init", "--charter", str(charter))
    run(data, "agent", "new", "ana", "--no-passphrase")
    bad = tmp_path / "deep.json"
    bad.write_text("[" * 100_000 + "]" * 100_000)
    line = error_line(run(data, "agent", "join", "ana", "--credential", str(bad), expect=1))
    assert f"{bad} is not a credential file" in line


async def test_a_governance_deadline_error_shows_a_date(tmp_path: Path) -> None:
    async with TestNetwork.start(tmp_path, nodes=1, members=1) as net:
        gov = Governance(net.nodes[0])
        coop = net.agents["coop0"]
        body = {"param": "member_limits", "value": {"credit": 2_000, "cap": 100_000}}
        proposal = await gov.propose(coop, ProposalKind.AMEND, "members may owe 2000", body)
        with pytest.raises(ValidationError, match=r"open until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$"):
            await gov.ratify(coop, proposal.hash)
