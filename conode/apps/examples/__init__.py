"""Example apps built with the SDK (``docs/apps.md`` walks through ``hours``); not registered."""
