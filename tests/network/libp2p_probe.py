"""A bare py-libp2p peer that asks a conode node what it says about itself, and prints it as JSON.

Run on a host of its own (``netns.Host.run``)::

    python libp2p_probe.py ADDR [--kad PROTOCOL --find PEER_ID]

It dials ADDR (a multiaddr ending in /p2p/<peer id>) with Noise and Yamux,
reads the node's identify (``listen_addrs``, ``protocols``, the address the
node observed it at), and with ``--kad``, sends one Kademlia FIND_NODE for
PEER_ID on PROTOCOL (the network's kad protocol) and lists the peers and
addresses of the answer. It is a stranger: it serves nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import multiaddr
import trio
import varint
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair as ed25519_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.identity.identify.identify import ID as IDENTIFY
from libp2p.identity.identify.pb.identify_pb2 import Identify
from libp2p.kad_dht.pb.kademlia_pb2 import Message
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.utils.varint import read_length_prefixed_protobuf, read_varint_prefixed_bytes_limited

TIMEOUT = 20.0


def _addr(raw: bytes) -> str:
    return str(multiaddr.Multiaddr(raw))


async def probe(addr: str, kad: str | None, find: str | None) -> dict[str, Any]:
    key_pair = ed25519_key_pair()
    noise = NoiseTransport(key_pair, noise_privkey=x25519_key_pair().private_key)
    host = new_host(key_pair=key_pair, sec_opt={NOISE_PROTOCOL_ID: noise})
    out: dict[str, Any] = {}
    async with host.run([multiaddr.Multiaddr("/ip4/0.0.0.0/tcp/0")]):
        try:
            with trio.fail_after(TIMEOUT):
                info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
                await host.connect(info)
                stream = await host.new_stream(info.peer_id, [IDENTIFY])
                identify = Identify()
                identify.ParseFromString(
                    await read_length_prefixed_protobuf(stream, use_varint_format=True)
                )
                out["listen_addrs"] = [_addr(a) for a in identify.listen_addrs]
                out["protocols"] = list(identify.protocols)
                out["observed"] = _addr(identify.observed_addr) if identify.observed_addr else None
                if kad is not None and find is not None:
                    stream = await host.new_stream(info.peer_id, [TProtocol(kad)])
                    request = Message(type=Message.MessageType.FIND_NODE)
                    request.key = ID.from_base58(find).to_bytes()
                    data = request.SerializeToString()
                    await stream.write(varint.encode(len(data)) + data)
                    answer = Message()
                    answer.ParseFromString(
                        await read_varint_prefixed_bytes_limited(stream, 1 << 22)
                    )
                    out["closer"] = {
                        str(ID(peer.id)): [_addr(a) for a in peer.addrs]
                        for peer in answer.closerPeers
                    }
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await host.get_network().close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("addr")
    parser.add_argument("--kad")
    parser.add_argument("--find")
    args = parser.parse_args()
    print(json.dumps(trio.run(probe, args.addr, args.kad, args.find)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
