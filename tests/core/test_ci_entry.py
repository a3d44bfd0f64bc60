"""CI runs the README's own test command, and the README starts with its two commands.

The README promises two commands that work on a fresh machine; CI (``.ci/run``) must run the
second one itself, not a command of its own that could drift from it. (That the command
installs what it needs on a fresh clone is what every CI run shows: ``.ci/run`` starts
without a ``.venv``.)
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    """The commands of the README's first code block (its two commands)."""
    block = re.search(r"```sh\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert block is not None, "the README has no ```sh block"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def ci_commands() -> list[str]:
    """The commands ``.ci/run`` runs: its lines that are not comments, options or a cd."""
    lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    return [
        line for line in lines
        if line and not line.startswith(("#", "set ", "cd "))
    ]  # fmt: skip


def test_the_readme_starts_with_its_two_commands_run_then_test() -> None:
    lines = [line for line in (REPO / "README.md").read_text().splitlines() if line.strip()]
    assert lines[0].startswith("# ") and lines[1] == "```sh"  # the title, then the commands
    assert readme_commands() == ["python3 dev.py run", "python3 dev.py test"]


def test_ci_runs_the_readmes_test_command_and_nothing_else() -> None:
    assert ci_commands() == [readme_commands()[1]]
