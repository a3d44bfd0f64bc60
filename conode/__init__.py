"""conode: a peer-to-peer mutual-credit node for co-operatives."""

__version__ = "0.1.0"
