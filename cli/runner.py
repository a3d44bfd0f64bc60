"""``conode run``: read the data dir, unlock the keys, and run the node until a signal.

The daemon itself is ``conode.daemon.serve``; this module only gathers what
it needs (config, charter, node key, every key file in ``keys/``, each with
its own passphrase), sets up logging, and turns whatever escapes into one
``ConodeError`` line. A data dir restored from a backup is run twice: once
to catch its chains up from the peers, hosting nobody, then as usual.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Final

from cli.client import node_running
from cli.datadir import CommandError, Config, DataDir
from conode.errors import ConodeError
from conode.keyfile import list_keys, load_key
from conode.passphrase import PassphraseSource

__all__ = ["LOG_LEVELS", "RunPlan", "plan_run", "run_node", "web_settings"]

LOG_LEVELS: Final = ("debug", "info", "warning")
_LOG_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

if TYPE_CHECKING:
    from conode.node import NodeSettings
    from conode.web.server import WebConfig

log = logging.getLogger("conode.cli")


class RunPlan:
    """What ``serve`` will be given, read and checked before anything starts."""

    def __init__(
        self,
        data: DataDir,
        listen: str,
        bootstrap: Sequence[str],
        hosted: list[tuple[str, bytes]],
        skipped: list[str],
        passphrases: PassphraseSource | None = None,
    ) -> None:
        self.data = data
        self.listen = listen
        self.bootstrap = list(bootstrap)
        self.hosted = hosted  # (name, seed) of each agent this node will host
        self.skipped = skipped  # names of local agents with no chain yet
        self.passphrases = passphrases or PassphraseSource()  # also for `conode recover`
        self.full_arc = False  # hold everything (``conode run --full-arc``), whatever the config
        self.mdns = False  # find peers on the LAN (``conode run --mdns``)
        self.memory_mb = 0  # the memory budget, MB (``conode run --memory-mb``; 0: the config's)
        self.web = True  # serve the members' web page (``--no-web``: not)
        self.behind_proxy = False  # it is reached through a TLS reverse proxy (``--behind-proxy``)


def plan_run(
    data: DataDir,
    *,
    listen: str | None,
    bootstrap: Sequence[str] | None,
    passphrases: PassphraseSource,
) -> RunPlan:
    """Read and check everything ``conode run`` needs; unlock every local agent's key.

    Each key takes its own passphrase from ``passphrases`` (``conode.passphrase``).
    """
    config = data.config()
    data.charter()
    data.node_seed()
    if node_running(data):
        raise CommandError(f"a node is already running for {data.root}")
    data.check_keys_dir()
    hosted: list[tuple[str, bytes]] = []
    skipped: list[str] = []
    with data.open_node_store() as store:
        for path, info in list_keys(data.keys_dir):
            if store.head(info.agent) is None:
                skipped.append(info.name)
                continue
            signer = load_key(path, passphrases)
            hosted.append((info.name, signer.seed))
    return RunPlan(
        data,
        listen or config.listen,
        list(bootstrap) if bootstrap else list(config.bootstrap),
        hosted,
        skipped,
        passphrases,
    )


def run_node(plan: RunPlan, log_level: str) -> None:
    """Run the node of ``plan`` until SIGINT/SIGTERM; ``ConodeError`` if it cannot run."""
    logging.basicConfig(level=log_level.upper(), format=_LOG_FORMAT, stream=sys.stderr)
    for name in plan.skipped:
        log.warning(
            "agent %s has no chain yet and is not hosted "
            "(commit its genesis: `conode coop genesis`, `conode agent join`)",
            name,
        )
    import trio  # only `conode run` and `devnet` need trio and the daemon

    from conode.crypto import Signer
    from conode.daemon import DaemonConfig, serve
    from conode.node import HostedAgent
    from conode.unlock import KeyUnlocker

    data = plan.data
    config = data.config()
    daemon_config = DaemonConfig(
        store_path=data.store_path,
        socket_path=data.socket_path,
        charter=data.charter(),
        node_seed=data.node_seed(),
        agents=[HostedAgent(name, Signer(seed)) for name, seed in plan.hosted],
        listen=plan.listen,
        bootstrap=tuple(plan.bootstrap),
        announce=config.announce,
        mdns=plan.mdns,
        settings=_settings(config, data.charter().params.replication, plan.full_arc),
        ready_file=data.ready_path,
        unlocker=KeyUnlocker(plan.passphrases),
        clock_offset_us=config.clock_offset_ms * 1_000,
        memory_mb=plan.memory_mb or config.memory_mb,
        web=web_settings(plan),
    )
    with contextlib.suppress(FileNotFoundError):
        data.ready_path.unlink()  # a stale one from a node that did not stop cleanly
    try:
        if data.restored_path.exists():
            trio.run(serve, replace(daemon_config, restored_marker=data.restored_path))
            if data.restored_path.exists():
                return  # stopped by a signal before it caught up
        trio.run(serve, daemon_config)
    except BaseExceptionGroup as group:
        error = _one_error(group)
        if not isinstance(error, ConodeError | KeyboardInterrupt):
            log.debug("the node stopped", exc_info=group)
        raise error from group
    except OSError as exc:
        raise CommandError(f"the node stopped: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            data.ready_path.unlink()


def web_settings(plan: RunPlan) -> WebConfig | None:
    """The web page's settings from the config and flags (None: ``--no-web``); ``ConodeError`` for
    a page exposed beyond loopback without TLS or ``--behind-proxy``."""
    if not plan.web:
        return None
    from conode.web.server import WebConfig, check_exposure

    config = plan.data.config()
    root = plan.data.root
    web = WebConfig(
        data_dir=root,
        listen=config.web_listen,
        tls_cert=root / config.web_tls_cert if config.web_tls_cert else None,
        tls_key=root / config.web_tls_key if config.web_tls_key else None,
        behind_proxy=plan.behind_proxy,
    )
    check_exposure(web)
    return web


def _settings(config: Config, replication: int, full_arc: bool = False) -> NodeSettings:
    from conode.node import NodeSettings

    defaults = NodeSettings(replication=replication)
    return NodeSettings(
        replication=replication,
        request_timeout=defaults.request_timeout,
        gossip_interval=config.gossip_interval_ms / 1000 or defaults.gossip_interval,
        publish_interval=config.publish_interval_ms / 1000 or defaults.publish_interval,
        hello_interval=config.hello_interval_ms / 1000 or defaults.hello_interval,
        links_fresh_us=config.links_fresh_ms * 1000 or defaults.links_fresh_us,
        session_timeout_us=defaults.session_timeout_us,
        retry_interval_us=defaults.retry_interval_us,
        full_arc=full_arc or config.full_arc,
        reconcile_interval=config.reconcile_interval_ms / 1000 or defaults.reconcile_interval,
    )


def _one_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to show for a group of errors out of the daemon's nurseries."""
    leaves = _leaves(group)
    for leaf in leaves:
        if isinstance(leaf, KeyboardInterrupt):
            return leaf
    for leaf in leaves:
        if isinstance(leaf, ConodeError):
            return leaf
    for leaf in leaves:
        if isinstance(leaf, OSError):
            return CommandError(f"the node stopped: {leaf.strerror or leaf}")
    first = leaves[0] if leaves else group
    return CommandError(f"the node stopped: {type(first).__name__}: {first}")


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]
