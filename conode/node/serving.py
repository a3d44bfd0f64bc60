"""Serving: the read-only protocols a node answers from its store, and app bundles by hash.

``fetch`` (records by hash), ``chain`` (one chain from a seq), ``chains``
(several, in one reply cut off at the limits) and ``bundle`` (an app bundle
this node keeps). Nothing here changes the store but a fetched bundle, which
is kept only if its bytes hash to what was asked.
"""

from __future__ import annotations

import logging

from conode.apps.sdk import verify_bundle
from conode.dht.messages import (
    MAX_CHAIN_BATCH,
    MAX_CHAIN_BYTES,
    BundleReply,
    BundleRequest,
    ChainRequest,
    ChainsRequest,
    FetchRequest,
    Records,
    RecordsPage,
)
from conode.dht.transport import Handler, PeerId
from conode.errors import NetworkError
from conode.hashes import BundleHash
from conode.node.peer_client import PeerClient, serve, tolerate
from conode.store import NodeStore
from conode.store.node import MAX_BUNDLE

__all__ = ["Serving"]

log = logging.getLogger("conode.node")


class Serving:
    """The read-only protocols over ``store``, and bundles fetched from peers."""

    def __init__(self, store: NodeStore, client: PeerClient) -> None:
        self.store = store
        self.client = client

    def handlers(self) -> dict[str, Handler]:
        """The protocols it answers: ``fetch``, ``chain``, ``chains``, ``bundle``."""
        return {
            FetchRequest.protocol: serve(FetchRequest.decode, self.on_fetch),
            ChainRequest.protocol: serve(ChainRequest.decode, self.on_chain),
            ChainsRequest.protocol: serve(ChainsRequest.decode, self.on_chains),
            BundleRequest.protocol: serve(BundleRequest.decode, self.on_bundle),
        }

    async def on_fetch(self, peer: PeerId, request: FetchRequest) -> Records:
        """The records held of those asked for."""
        found = (self.store.get(h) for h in request.hashes)
        return Records(tuple(r.to_bytes() for r in found if r is not None))

    async def on_chain(self, peer: PeerId, request: ChainRequest) -> Records:
        """One chain's records from a seq on, cut off at the limits."""
        blobs = []
        size = 0
        for blob in self.store.record_blobs(request.author, request.start):
            blobs.append(blob)
            size += len(blob)
            if len(blobs) >= min(request.limit, MAX_CHAIN_BATCH) or size > MAX_CHAIN_BYTES:
                break
        return Records(tuple(blobs))

    async def on_chains(self, peer: PeerId, request: ChainsRequest) -> RecordsPage:
        """Records of several chains, each from a seq on, in one reply (cut off at the limits)."""
        limit = min(request.limit, MAX_CHAIN_BATCH)
        blobs: list[bytes] = []
        size = 0
        for author, start in request.chains:
            for blob in self.store.record_blobs(author, start):
                if len(blobs) >= limit or size > MAX_CHAIN_BYTES:
                    return RecordsPage(tuple(blobs), True)
                blobs.append(blob)
                size += len(blob)
        return RecordsPage(tuple(blobs), False)

    async def on_bundle(self, peer: PeerId, request: BundleRequest) -> BundleReply:
        """An app bundle by hash, if this node keeps it (the asker checks the bytes' hash)."""
        return BundleReply(self.store.bundle(request.bundle))

    async def fetch_bundle(self, bundle: BundleHash) -> bytes:
        """An app bundle's bytes from the first peer whose bytes hash to ``bundle``; kept here.

        Bytes that do not hash to it are refused (and the next peer asked):
        a peer can withhold code, never substitute it. ``NetworkError`` if no
        peer served it.
        """
        refused = []
        for peer in self.client.peers():
            data = None
            with tolerate("asking %s for bundle %s", peer, bundle.short()):
                data = (await self.client.ask(peer, BundleRequest(bundle))).data
            if data is None:
                continue
            if len(data) > MAX_BUNDLE or not verify_bundle(data, bundle):
                log.warning("%s sent bytes that are not bundle %s: refused", peer, bundle.short())
                refused.append(peer)
                continue
            self.store.keep_bundle(bundle, data)
            return data
        wrong = f" ({len(refused)} sent bytes that do not hash to it: refused)" if refused else ""
        raise NetworkError(f"no connected peer served bundle {bundle}{wrong}")
