"""The network, below the node: how peers are reached and what travels between them.

- ``transport``: the one ``Transport`` interface (requests and responses of
  bytes over named protocols, per-peer limits); ``libp2p_transport`` (Noise +
  Yamux, Kademlia routing, gossipsub), ``memnet`` (in memory, with faults and
  partitions) and ``firewall`` (blocks peers over any transport) provide it.
- ``wire`` (msgpack envelopes) and ``messages`` (every request and reply of
  the conode protocols as a typed, checked dataclass), pure.
- ``routing`` (which peers are the authorities of a basis), and the pure
  halves of ``publishing`` (targets, plan), ``gossip`` (which chains to
  pull, the heads digest) and ``links`` (digests, pages, reply checks).

The services that use them (publishing, gossip, links, serving, peers) are
the node's: ``conode.node``.
"""
