"""The time-bank example of docs/apps.md: it runs, its rule holds, and the guide shows this code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from conode.apps.examples.hours import LOG, app, hours_per_member
from conode.hashes import AgentKey
from conode.testing import Ledger
from conode.validation.verdict import VALID, Invalid, Missing, Verdict

ROOT = Path(__file__).resolve().parents[2]


def log(
    ledger: Ledger, name: str, hours: int, for_whom: AgentKey, what: str = "gardening"
) -> Verdict:
    entry = app.entry("log", hours=hours, for_whom=for_whom, description=what)
    return ledger.create(name, LOG, entry)[1]


def test_members_log_hours_and_the_totals_add_up() -> None:
    ledger = Ledger(apps={"hours": app})
    m0, m1, coop1 = ledger["coop0-m0"].key, ledger["coop0-m1"].key, ledger["coop1"].key
    assert log(ledger, "coop0-m0", 3, m1) == VALID
    assert log(ledger, "coop0-m0", 2, coop1, "bookkeeping") == VALID
    assert log(ledger, "coop1-m0", 4, m0) == VALID
    records = [r for chain in ledger.chains() for r in chain]
    assert hours_per_member(records) == {m0: 5, ledger["coop1-m0"].key: 4}
    assert hours_per_member(records + records) == hours_per_member(records)  # duplicates count once
    assert ledger.audit().ok


def test_only_members_log_hours_and_only_for_someone_else_in_the_network() -> None:
    ledger = Ledger(apps={"hours": app})
    verdict = log(ledger, "coop0", 3, ledger["coop0-m0"].key)
    assert isinstance(verdict, Invalid) and verdict.rule == "role"
    verdict = log(ledger, "coop0-m0", 3, ledger["coop0-m0"].key)
    assert isinstance(verdict, Invalid) and verdict.rule == "for-whom"
    stranger = AgentKey(bytes(32))
    assert log(ledger, "coop0-m0", 3, stranger) == Missing((stranger,))
    verdict = ledger.create(
        "coop0-m0", LOG, {"hours": 25, "for_whom": stranger.to_bytes(), "description": "x"}
    )[1]
    assert isinstance(verdict, Invalid) and verdict.rule == "schema" and "hours" in verdict.reason


async def test_the_functions_log_and_total_through_the_node_api(api_for: Any) -> None:
    ledger = Ledger(apps={"hours": app})
    api = api_for(ledger, app)
    await app.functions["log"](
        api,
        agent=ledger["coop0-m0"].key,
        hours=6,
        for_whom=ledger["coop1"].key,
        description="harvest",
    )
    assert app.functions["totals"](api) == {str(ledger["coop0-m0"].key): 6}


def test_the_guide_shows_this_code() -> None:
    """Every code block of docs/apps.md that opens with ``# <path>`` is that file or a verbatim part of it."""
    guide = (ROOT / "docs" / "apps.md").read_text()
    blocks = re.findall(r"```python\n# ([\w/.]+)\n(.*?)```", guide, flags=re.S)
    assert {path for path, _ in blocks} >= {
        "conode/apps/examples/hours.py",
        "tests/apps/test_hours_example.py",
    }
    for path, code in blocks:
        source = (ROOT / path).read_text()
        if path == "conode/apps/examples/hours.py":
            assert code == source, "docs/apps.md shows an out-of-date hours.py"
        else:
            assert code in source, f"docs/apps.md shows code that is not in {path}"
