"""``conode devnet``: a real network on 127.0.0.1 — N ``conode run`` processes, payments, convergence, audit.

How it works:

1. **Prepare** N data dirs with the Python API (no prompts): a fresh
   charter naming one co-op per node, each co-op with two members hosted on
   its node (unencrypted key files: this is a test network), the node key,
   a config with fast timings, and every genesis committed offline. The
   charter names a Foundation key, hosted on node 0 (the steward). The
   charter pins the built-in apps (lookout, exchange, …) at their
   installed code, and each node's operator approves them, so they run.
2. **Start** node 0, read its address from its ready file, then start the
   others with ``--bootstrap`` that address; wait until every node is
   connected to every other, knows which agents each hosts, is placed on the
   ring, and every genesis is held by its chain's holders (``shares``: its
   host, its R authorities and any full-arc node; every node while there are
   R or fewer).
3. **Pay**: K payments between members of different co-ops, through the
   payer's node API. Most come from each co-op's first member (a "buyer")
   and go to other co-ops' second members ("sellers"), 50 to 400 minor
   units against a member credit limit of 500, so some are refused for
   exceeding it, as they must be.
4. **Converge**: ask every node to ``sync`` in rounds until every chain's
   holders hold it at the head its host holds, and every node holds the same
   warrants (or the timeout passes). On a sharded network of more than R
   nodes no node holds every chain, so the nodes' ``heads_digest`` differ.
5. **Audit** every chain through the API of a node that does not host it,
   and check that the audited balances sum to zero and agree with what
   each agent's own node says.
6. **Stop** every node (SIGTERM, then SIGKILL after a grace period) — always,
   even on Ctrl-C — and report.

One module a job: ``plan`` (options, constants, step 1), ``shares`` (which
nodes must hold each chain), ``processes`` (steps 2 and 6), ``workload``
(3), ``checks`` (4 and 5), ``report`` (the result and its summary) and
``command`` (the run, in order). ``prepare``,
``start_nodes``, ``wait_until_held`` and ``stop_nodes`` are also used by
the tests that drive a devnet through the CLI.
"""

from cli.devnet.command import run_devnet
from cli.devnet.plan import (
    DEVNET_GRANT_CAP,
    LISTEN,
    DevnetOptions,
    DevnetPlan,
    Member,
    approve_apps,
    builtin_app_pins,
    prepare,
)
from cli.devnet.processes import (
    NodeProcess,
    node_command,
    start_node,
    start_nodes,
    stop_nodes,
    wait_ready,
    wait_until_held,
)
from cli.devnet.report import DevnetResult

__all__ = [
    "DEVNET_GRANT_CAP",
    "LISTEN",
    "DevnetOptions",
    "DevnetPlan",
    "DevnetResult",
    "Member",
    "NodeProcess",
    "approve_apps",
    "builtin_app_pins",
    "node_command",
    "prepare",
    "run_devnet",
    "start_node",
    "start_nodes",
    "stop_nodes",
    "wait_ready",
    "wait_until_held",
]
