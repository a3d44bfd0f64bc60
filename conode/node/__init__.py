"""The node layer: a node's services, each a room of one job, and the ``Node`` that builds them.

``from conode.node import Node, NodeSettings, HostedAgent, PaymentResult, wall_clock_us``
is the public face; ``conode.node.node`` says which service does what, and
``docs/architecture.md`` draws the rooms and the arrows between them.
"""

from conode.node.node import Node
from conode.node.session_driver import CRASH_ENV
from conode.node.settings import HostedAgent, NodeSettings, PaymentResult, wall_clock_us

__all__ = ["CRASH_ENV", "HostedAgent", "Node", "NodeSettings", "PaymentResult", "wall_clock_us"]
