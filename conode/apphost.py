"""Apps on a node, now ``conode.node.apps``: this name stays for the local API and the CLI until
their split (pass 2 of issue 11)."""

from conode.node.apps import (
    APP_DUTIES,
    DUTY_INTERVAL,
    AppCatalog,
    AppHost,
    AppPlan,
    NodeAppAPI,
    NodeGovernanceAPI,
)

__all__ = [
    "APP_DUTIES",
    "DUTY_INTERVAL",
    "AppCatalog",
    "AppHost",
    "AppPlan",
    "NodeAppAPI",
    "NodeGovernanceAPI",
]
