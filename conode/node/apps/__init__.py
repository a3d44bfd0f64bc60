"""Apps on a node: the catalog (which run), the host (functions, watchers, duties, bundles), the
``AppAPI`` the node lends them, and parameter binding."""

from conode.node.apps.appapi import MAX_LINK_WAIT, AppActions, NodeAppAPI, NodeGovernanceAPI
from conode.node.apps.catalog import AppCatalog, AppPlan
from conode.node.apps.host import APP_DUTIES, DUTY_INTERVAL, FETCH_INTERVAL, AppHost

__all__ = [
    "APP_DUTIES",
    "DUTY_INTERVAL",
    "FETCH_INTERVAL",
    "MAX_LINK_WAIT",
    "AppActions",
    "AppCatalog",
    "AppHost",
    "AppPlan",
    "NodeAppAPI",
    "NodeGovernanceAPI",
]
