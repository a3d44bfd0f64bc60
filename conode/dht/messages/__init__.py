"""The requests and replies of conode's peer protocols, each a small frozen dataclass.

Every message knows its wire form (a ``conode.dht.wire`` msgpack map, the
exact bytes that travelled before these types existed) and is checked when
it is decoded, at the seam: a malformed one is a ``RemoteProtocolError``
there, and nothing untyped reaches the node's services. A request names its
protocol (``protocol``) and decodes its own reply (``read_reply``), so
``PeerClient.ask(peer, request)`` returns the reply's type.

What a field means is the protocol's (``docs/protocol.md``); what may be
sent at most is here: ``MAX_CHAIN_BATCH`` records a reply, cut off past
``MAX_CHAIN_BYTES``, ``MAX_LINK_BASES`` bases a links request.

One module per protocol group (``common``, ``records``, ``hello``, ``ring``,
``publishing``, ``gossip``, ``countersign``, ``bundles``, ``links``, ``reconcile``);
every name is exported here.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from conode.dht.messages.bundles import BundleReply, BundleRequest
from conode.dht.messages.common import (
    LINKS_DIGEST_SIZE,
    MAX_CHAIN_BATCH,
    MAX_CHAIN_BYTES,
    MAX_LINK_BASES,
    Heads,
    Request,
    decode_record,
)
from conode.dht.messages.countersign import CountersignReply, CountersignRequest
from conode.dht.messages.gossip import Empty, HeadsReply, HeadsRequest, WarrantRequest
from conode.dht.messages.hello import (
    CLAIMS_DIGEST_SIZE,
    Claim,
    Hello,
    HostReply,
    HostRequest,
    claims_digest,
)
from conode.dht.messages.links import (
    BaseAsk,
    LinksPageRequest,
    LinksReply,
    LinksRequest,
    decode_links_request,
)
from conode.dht.messages.publishing import (
    PublishReply,
    PublishRequest,
    Receipt,
    WitnessReply,
    WitnessRequest,
    receipt_bytes,
)
from conode.dht.messages.reconcile import SESSION_ID_SIZE, ReconcileReply, ReconcileRequest
from conode.dht.messages.records import (
    ChainRequest,
    ChainsRequest,
    FetchRequest,
    Records,
    RecordsPage,
)
from conode.dht.messages.ring import MAX_PLACES, PlacesReply, PlacesRequest

__all__ = [
    "CLAIMS_DIGEST_SIZE",
    "LINKS_DIGEST_SIZE",
    "MAX_CHAIN_BATCH",
    "MAX_CHAIN_BYTES",
    "MAX_LINK_BASES",
    "MAX_PLACES",
    "SESSION_ID_SIZE",
    "BaseAsk",
    "BundleReply",
    "BundleRequest",
    "ChainRequest",
    "ChainsRequest",
    "Claim",
    "CountersignReply",
    "CountersignRequest",
    "Empty",
    "FetchRequest",
    "Heads",
    "HeadsReply",
    "HeadsRequest",
    "Hello",
    "HostReply",
    "HostRequest",
    "LinksPageRequest",
    "LinksReply",
    "LinksRequest",
    "PlacesReply",
    "PlacesRequest",
    "PublishReply",
    "PublishRequest",
    "Receipt",
    "ReconcileReply",
    "ReconcileRequest",
    "Records",
    "RecordsPage",
    "Request",
    "WarrantRequest",
    "WitnessReply",
    "WitnessRequest",
    "claims_digest",
    "decode_links_request",
    "decode_record",
    "receipt_bytes",
]
