"""``conode run``: one node process — store, hosted agents, libp2p, the local API — until a signal.

A shell: it opens things, wires them to a ``Node``, and closes them in the
right order on SIGINT/SIGTERM (API socket first, then the node and its
connections, then the store), so a stopped node leaves no socket behind and
every acknowledged write on disk.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from conode.api import ApiServer, KeyLoader
from conode.apphost import AppCatalog, AppHost
from conode.apps.loader import InstalledApp, installed_apps
from conode.crypto import Signer
from conode.dht.firewall import Firewall
from conode.node import HostedAgent, Node, NodeSettings, wall_clock_us
from conode.store import NodeStore
from conode.validation.charter import Charter

if TYPE_CHECKING:
    from conode.web.server import WebConfig

__all__ = ["DaemonConfig", "serve"]

log = logging.getLogger("conode.daemon")


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """Everything ``serve`` needs, already read from the data dir."""

    store_path: Path
    socket_path: Path
    charter: Charter
    node_seed: bytes
    agents: Sequence[HostedAgent]
    listen: str = "/ip4/127.0.0.1/tcp/0"
    bootstrap: Sequence[str] = ()
    settings: NodeSettings | None = None
    ready_file: Path | None = None
    key_loader: KeyLoader | None = None
    mdns: bool = False
    apps: Mapping[str, InstalledApp] | None = None
    """The installed apps (None: those of the ``conode.apps`` entry points)."""
    clock_offset_us: int = 0
    """Test networks only: how far ahead of the machine's clock the node's runs."""
    web: WebConfig | None = None
    """The members' web page (None: not served)."""


async def serve(config: DaemonConfig) -> None:
    """Run the node until SIGINT or SIGTERM (or cancellation), then shut down cleanly."""
    from conode.dht.libp2p_transport import Libp2pTransport  # libp2p is slow to import: only here

    store = NodeStore.open(config.store_path)
    try:
        transport = Firewall(
            Libp2pTransport(
                config.node_seed, listen=config.listen, bootstrap=config.bootstrap, mdns=config.mdns
            )
        )
        broken: list[str] = []
        installed = installed_apps(broken=broken) if config.apps is None else config.apps
        for error in broken:
            log.error("%s", error)
        catalog = AppCatalog(store, config.charter, installed)
        plan = catalog.plan()  # imports only the apps the operator approved, at the pinned hash
        node = Node(
            store=store,
            charter=config.charter,
            transport=transport,
            node_signer=Signer(config.node_seed),
            agents=config.agents,
            settings=config.settings or NodeSettings(replication=config.charter.params.replication),
            apps=plan.validators,
            clock=_clock(config.clock_offset_us),
        )
        apps = AppHost(node, catalog, plan)
        apps.judge_held()
        api = ApiServer(
            node, config.socket_path, config.key_loader, firewall=transport, apps=apps
        )
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(node.run)
                await nursery.start(api.run)
                nursery.start_soon(apps.run)
                if config.web is not None:
                    nursery.start_soon(_serve_web, config.web, node, apps, transport)
                log.info(
                    "node %s up: %s; %d agents; API at %s",
                    transport.peer_id,
                    " ".join(transport.listen_addrs()),
                    len(node.agents),
                    config.socket_path,
                )
                if config.ready_file is not None:
                    config.ready_file.write_text("\n".join(transport.listen_addrs()) + "\n")
                async for signum in signals:
                    log.info("%s: shutting down", signal.Signals(signum).name)
                    nursery.cancel_scope.cancel()
                    break
    finally:
        store.close()
        log.info("stopped")


async def _serve_web(web: WebConfig, node: Node, apps: AppHost, firewall: Firewall) -> None:
    """The members' web page beside the node; if it cannot listen, the node runs on without it."""
    from conode.web.adapter import NodeAdapter  # the page's code is loaded only when it is served
    from conode.web.server import WebServer

    try:
        await WebServer(NodeAdapter(node, apps, firewall=firewall), web).run()
    except OSError as exc:
        log.error("the web page is not served: cannot listen on %s: %s", web.listen, exc.strerror)
    except Exception:  # a task boundary: the page's failure never stops the node
        log.exception("the web page stopped")


def _clock(offset_us: int) -> Callable[[], int]:
    """The node's clock: the machine's, or (test networks) that far ahead of it."""
    if not offset_us:
        return wall_clock_us
    return lambda: wall_clock_us() + offset_us
