"""The network: transports (libp2p, in-memory), DHT ops, publishing, gossip, peer protocols."""
