"""The foundation app's functions, exposed by the node as ``conode call foundation FN``.

Comments and reports are this app's entries, committed through ``api.commit``;
proposals, votes and ratifications are built-in ``gov/*`` records, reached
through ``api.governance`` (the ``conode foundation`` commands use the
``gov.*`` API methods for those, so governance works on a node that does not
run this app). Parameters may be typed values or their printable text.
"""

from __future__ import annotations

from typing import Any

from conode.apps.foundation.entries import COMMENT, REPORT, app
from conode.apps.sdk import AppAPI
from conode.errors import AppError
from conode.hashes import ActionHash, AgentKey

__all__ = ["balance", "comment", "proposals", "report", "show"]


def _action(value: ActionHash | str) -> ActionHash:
    return value if isinstance(value, ActionHash) else ActionHash.parse(value)


def _agent(value: AgentKey | str) -> AgentKey:
    return value if isinstance(value, AgentKey) else AgentKey.parse(value)


@app.function
def proposals(api: AppAPI) -> list[Any]:
    """Every proposal held, newest first, with its tally, status, comments and reports."""
    return list(api.governance.proposals())


@app.function
def show(api: AppAPI, proposal: ActionHash | str) -> Any:
    """One proposal, with its votes, comments and reports."""
    wanted = str(_action(proposal))
    for view in api.governance.proposals():
        if view["id"] == wanted:
            return view
    raise AppError(f"no proposal {wanted} is held here")


@app.function
def balance(api: AppAPI) -> Any:
    """The Foundation's balance, and what it has disbursed and still owes."""
    return api.governance.foundation()


@app.function
async def comment(api: AppAPI, agent: AgentKey | str, proposal: ActionHash | str, text: str) -> str:
    """Comment on a proposal (co-ops and members); returns the comment's action hash."""
    entry = app.entry(COMMENT, proposal=_action(proposal), text=text)
    return str(await api.commit(_agent(agent), COMMENT, entry))


@app.function
async def report(
    api: AppAPI,
    agent: AgentKey | str,
    payment: ActionHash | str,
    text: str,
    used: int | None = None,
) -> str:
    """Report on a Foundation payment the agent (a co-op) received; returns the report's hash."""
    entry = app.entry(REPORT, payment=_action(payment), text=text, used=used)
    return str(await api.commit(_agent(agent), REPORT, entry))
