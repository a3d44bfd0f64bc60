"""The lookout app: horizon scanning as Signal -> Sign -> Significance, by sector.

Co-ops and their members report **signals** (what was seen), name the
**sign** they point to (the wider change), and say what its **significance**
is for a sector or a co-op, with suggested responses; they discuss items
(comments), sense-check whether an item should move on (polls), and link a
significance to what they do about it (an exchange want or a proposal).
``entries`` holds the types and rules, ``board`` the pure views, ``functions``
what ``conode call lookout`` runs.
"""

from conode.apps.lookout import functions as _functions  # registers the functions on ``app``
from conode.apps.lookout.board import Board, Comment, Item, Response, Tally, board, feed
from conode.apps.lookout.entries import (
    APP_ID,
    COMMENT,
    ITEMS,
    POLL,
    RESPOND,
    SECTOR_LINK,
    SIGN,
    SIGNAL,
    SIGNIFICANCE,
    app,
    sector_anchor,
)

__all__ = [
    "APP_ID",
    "COMMENT",
    "ITEMS",
    "POLL",
    "RESPOND",
    "SECTOR_LINK",
    "SIGN",
    "SIGNAL",
    "SIGNIFICANCE",
    "Board",
    "Comment",
    "Item",
    "Response",
    "Tally",
    "app",
    "board",
    "feed",
    "sector_anchor",
]

del _functions
