"""The foundation app: discussion of proposals, and funded co-ops' reports back to the Foundation.

The Foundation is the co-ops' common fund: an agent with its own chain whose
keys a steward node holds, but which pays only what the co-ops ratified
(``conode.validation.foundation``, a built-in rule). This app adds comments
on proposals (co-ops and members) and the accountability record of what a
funded co-op did with a payment (``entries``), pure views of proposals with
their live tally, comments and reports (``views``), and what
``conode call foundation`` runs (``functions``).
"""

from conode.apps.foundation import functions as _functions  # registers the functions on ``app``
from conode.apps.foundation.entries import APP_ID, COMMENT, REPORT, VERSION, app
from conode.apps.foundation.views import (
    Comment,
    ProposalView,
    Report,
    VoteView,
    proposals,
    summary,
)

__all__ = [
    "APP_ID",
    "COMMENT",
    "REPORT",
    "VERSION",
    "Comment",
    "ProposalView",
    "Report",
    "VoteView",
    "app",
    "proposals",
    "summary",
]

del _functions
