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
from typing import TYPE_CHECKING, Final

import trio

from conode.api import ApiServer
from conode.apps.loader import InstalledApp, installed_apps
from conode.crypto import Signer
from conode.dht.firewall import Firewall
from conode.memguard import MemoryGuard, hand_back_memory, rss_mb
from conode.node import HostedAgent, Node, NodeSettings, wall_clock_us
from conode.node.apps import AppCatalog, AppHost
from conode.store import NodeStore
from conode.unlock import KeyUnlocker
from conode.validation.charter import Charter

if TYPE_CHECKING:
    from conode.web.server import WebConfig

__all__ = ["DaemonConfig", "serve"]

log = logging.getLogger("conode.daemon")
_CATCH_UP_NAG_S: Final = 30
_SETTLE_S: Final = 2.0
"""Seconds after the node is up before its start-up's freed memory is handed back."""


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
    announce: Sequence[str] = ()
    """Addresses to advertise instead of the interfaces' (a public address, a port forward)."""
    settings: NodeSettings | None = None
    ready_file: Path | None = None
    unlocker: KeyUnlocker | None = None
    """Opens key files for ``recover``, off the event loop (None: ``recover`` is refused)."""
    mdns: bool = False
    apps: Mapping[str, InstalledApp] | None = None
    """The installed apps (None: those of the ``conode.apps`` entry points)."""
    clock_offset_us: int = 0
    """Test networks only: how far ahead of the machine's clock the node's runs."""
    memory_mb: int = 0
    """The node's memory budget (``conode.memguard``); 0: none."""
    restored_marker: Path | None = None
    """Set when the data dir was restored from a backup (this file exists): the node hosts
    nobody, fetches the chains of ``agents`` from its peers, removes the file and stops;
    started again, it hosts them. A stale chain signed on would fork."""
    web: WebConfig | None = None
    """The members' web page (None: not served)."""


async def serve(config: DaemonConfig) -> None:
    """Run the node until SIGINT or SIGTERM (or cancellation), then shut down cleanly."""
    from conode.dht.libp2p_transport import Libp2pTransport  # libp2p is slow to import: only here

    store = NodeStore.open(config.store_path)
    try:
        store.check_integrity()  # a damaged file is reported in one line, never served
        transport = Firewall(
            inner := Libp2pTransport(
                config.node_seed,
                listen=config.listen,
                bootstrap=config.bootstrap,
                mdns=config.mdns,
                # Kademlia on this network's protocol id: the short id Node.network_short uses
                network=config.charter.network_id.raw[:8].hex(),
                announce=config.announce,
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
            agents=() if config.restored_marker else config.agents,
            settings=config.settings or NodeSettings(replication=config.charter.params.replication),
            apps=plan.validators,
            clock=_clock(config.clock_offset_us),
        )
        apps = AppHost(node, catalog, plan)
        apps.judge_held()
        unlocker = config.unlocker
        api = ApiServer(
            node,
            config.socket_path,
            None if unlocker is None else unlocker.loader(),
            firewall=transport,
            apps=apps,
        )
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(node.run)
                await nursery.start(api.run)
                nursery.start_soon(apps.run)
                if config.memory_mb:
                    await nursery.start(MemoryGuard(config.memory_mb, inner.limiter).run)
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
                nursery.start_soon(_settle_memory)
                if config.restored_marker is not None:
                    nursery.start_soon(
                        _catch_up, node, config.agents, config.restored_marker, nursery.cancel_scope
                    )
                async for signum in signals:
                    log.info("%s: shutting down", signal.Signals(signum).name)
                    nursery.cancel_scope.cancel()
                    break
    finally:
        store.close()
        log.info("stopped")


async def _settle_memory() -> None:
    """Once start-up is over, hand back what it freed (imports, the integrity check)."""
    await trio.sleep(_SETTLE_S)
    before = rss_mb()
    if hand_back_memory():
        log.info("start-up memory handed back: RSS %.1f -> %.1f MB", before, rss_mb())


async def _catch_up(
    node: Node, agents: Sequence[HostedAgent], marker: Path, done: trio.CancelScope
) -> None:
    """Bring the restored agents' chains up to date from the peers, then end this run."""
    log.info(
        "restored from a backup: fetching the chains of %d agents from peers before hosting them",
        len(agents),
    )
    waited = 0
    while not node.peers.conode_peers():  # greeted peers of this network: the only ones asked
        if waited % _CATCH_UP_NAG_S == 0:
            log.warning("restored from a backup: waiting for a peer to catch up from")
        await trio.sleep(1)
        waited += 1
    for agent in agents:
        fetched = await node.fetch_chain(agent.key)
        log.info("caught up %s: %d records fetched", agent.name, fetched)
    marker.unlink(missing_ok=True)
    log.info("caught up: starting again to host the agents")
    done.cancel()


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
