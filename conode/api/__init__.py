"""The local API: JSON-RPC 2.0 over a Unix domain socket, for the CLI and local tools.

``server`` (the socket, JSON-RPC and error mapping) over the method groups
(``network``, ``money``, ``apps``, ``governance``), over ``params`` (reading
a request's parameters) and ``connections`` (the connection limits). Every
method reaches the node through the ``Node`` façade's public methods only
(``tests/core/test_api_seam.py`` checks).
"""

from conode.api.connections import ApiLimits
from conode.api.network import KeyLoader
from conode.api.server import ApiServer

__all__ = ["ApiLimits", "ApiServer", "KeyLoader"]
