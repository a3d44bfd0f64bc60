"""Warrants on a node: issue, keep, spread.

A warrant this node issues (a fork, an offence, stale rules: see ingest) or
receives and checks (see gossip) is kept once, and a new one is passed on
to every connected peer. Which refusals earn a warrant is the rules'
(``conode.validation.warrants.earns_warrant``); this is the shell.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from conode.chain import Record
from conode.crypto import Signer
from conode.dht.messages import WarrantRequest
from conode.hashes import AgentKey, OpHash
from conode.node.peer_client import PeerClient, tolerate
from conode.store import NodeStore
from conode.validation.warrants import Warrant

__all__ = ["Warrants"]

log = logging.getLogger("conode.node")


class Warrants:
    """This node's warrants: the ones it issues with its node key, and the ones it keeps."""

    def __init__(
        self, store: NodeStore, signer: Signer, client: PeerClient, clock: Callable[[], int]
    ) -> None:
        self.store = store
        self.signer = signer
        self.client = client
        self.clock = clock

    def issue(self, kind: str, offender: AgentKey, evidence: Sequence[Record]) -> bool:
        """Sign, keep and spread a warrant of this node against ``offender``; False if held."""
        return self.keep(Warrant.issue(self.signer, kind, offender, tuple(evidence), self.clock()))

    def keep(self, warrant: Warrant) -> bool:
        """Keep a checked warrant and pass it on if it is new here; whether it was new."""
        data = warrant.to_bytes()
        digest = OpHash.of(data).raw
        new = self.store.add_warrant(digest, warrant.offender, data, self.clock())
        if new:
            log.warning("warrant (%s) against %s", warrant.kind, warrant.offender.short())
            self.client.spawn(self.spread, data)
        return new

    async def spread(self, data: bytes) -> None:
        """Pass a warrant's bytes to every conode peer."""
        for peer in self.client.peers():
            with tolerate("could not pass a warrant to %s", peer):
                await self.client.ask(peer, WarrantRequest(data))
