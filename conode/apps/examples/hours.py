"""A time-bank hours log: members record the hours they worked for someone, and sum them.

The worked example of ``docs/apps.md``: one entry type, one rule, two functions.
"""

from __future__ import annotations

from collections.abc import Iterable

from conode.apps.sdk import App, AppAPI, Context, EntryType, Hash, Int, Role, Text
from conode.chain import Record
from conode.hashes import ActionHash, AgentKey
from conode.validation.credit import Party
from conode.validation.verdict import VALID, Invalid, Verdict

__all__ = ["LOG", "app", "hours_per_member"]

LOG = "hours/log"


def validate_log(ctx: Context) -> Verdict:
    """Only members log hours, worked for another member or a co-op of the network."""
    member = ctx.require_role(Role.MEMBER)
    if not member:  # Invalid (not a member, revoked) or Missing (fetch the genesis, ask again)
        return member
    for_whom: AgentKey = ctx.entry["for_whom"]
    if for_whom == ctx.author:
        return Invalid("for-whom", "hours are logged for someone else")
    party = ctx.party(for_whom)
    if isinstance(party, Invalid):
        return Invalid("for-whom", f"for_whom: {party.reason}")
    if not isinstance(party, Party):
        return party  # Missing
    return VALID


app = App(
    "hours",
    "0.1.0",
    entry_types=[
        EntryType(
            "log",
            {
                "hours": Int(1, 24),
                "for_whom": Hash(AgentKey),
                "description": Text(500, min_len=1),
            },
            validate_log,
            doc="Hours a member worked for another member or a co-op.",
        )
    ],
    doc="A time-bank hours log.",
)


def hours_per_member(records: Iterable[Record]) -> dict[AgentKey, int]:
    """The hours each member logged, from any records (other apps' are ignored)."""
    totals: dict[AgentKey, int] = {}
    seen: set[ActionHash] = set()
    for record in records:
        log = app.read(record)
        if log is None or log.hash in seen:
            continue
        seen.add(log.hash)
        totals[log.author] = totals.get(log.author, 0) + log.entry["hours"]
    return totals


@app.function
def totals(api: AppAPI) -> dict[str, int]:
    """``conode call hours totals``: hours per member, by agent key."""
    return {str(agent): hours for agent, hours in sorted(hours_per_member(api.records()).items())}


@app.function
async def log(
    api: AppAPI, agent: AgentKey, hours: int, for_whom: AgentKey, description: str
) -> str:
    """``conode call hours log``: log hours for a hosted member; returns the record's hash."""
    entry = app.entry("log", hours=hours, for_whom=for_whom, description=description)
    return str(await api.commit(agent, LOG, entry))
