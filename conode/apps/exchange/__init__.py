"""The exchange app: co-ops' offers and everyone's wants, searched by words, category and distance.

Co-ops offer goods and services (price per unit, quantity per month,
locality, expiry with renewal); co-ops and members post wants, the Wanted
section that records unmet needs; a new offer that matches an open want is a
notice for the wanter. ``entries`` holds the types, rules and the category
configuration, ``market`` the pure views (listings, search, matches,
notices), ``functions`` what ``conode call exchange`` and ``conode offer|want``
run. ``grants`` holds the rules of credit granted for offers (and the
Foundation's share of it), ``granting`` the grant functions.
"""

from conode.apps.exchange import functions as _functions  # registers the functions on ``app``
from conode.apps.exchange import granting as _granting  # and the grant functions
from conode.apps.exchange.entries import (
    APP_ID,
    CATEGORY_LINK,
    GRANT,
    LISTINGS,
    OFFER,
    SHARE,
    UPDATE,
    WANT,
    ExchangeConfig,
    app,
    category_anchor,
    in_subtree,
    read_config,
)
from conode.apps.exchange.grant_figures import Sales
from conode.apps.exchange.grant_sales import tally_sales
from conode.apps.exchange.grant_views import Grant, GrantLine, grant_lines
from conode.apps.exchange.market import (
    Found,
    Listing,
    Notice,
    distance_km,
    listings,
    matches,
    notices,
    search,
    terms,
)
from conode.validation.calendar import period_label, period_of, period_start

__all__ = [
    "APP_ID",
    "CATEGORY_LINK",
    "GRANT",
    "LISTINGS",
    "OFFER",
    "SHARE",
    "UPDATE",
    "WANT",
    "ExchangeConfig",
    "Found",
    "Grant",
    "GrantLine",
    "Listing",
    "Notice",
    "Sales",
    "app",
    "category_anchor",
    "distance_km",
    "grant_lines",
    "in_subtree",
    "listings",
    "matches",
    "notices",
    "period_label",
    "period_of",
    "period_start",
    "read_config",
    "search",
    "tally_sales",
    "terms",
]

del _functions, _granting
