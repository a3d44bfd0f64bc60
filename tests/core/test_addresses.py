"""What a node advertises (``conode.dht.addresses``): dialable addresses, never a wildcard."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from conode.dht.addresses import advertised, announce_error, is_dialable, is_wildcard

# the last one is global (the documentation ranges, 192.0.2.0/24 and co, count as private)
INTERFACES = ["127.0.0.1", "::1", "192.0.2.2", "fd00::2", "fe80::fc:ff:fe00:1%eth0", "81.2.69.160"]


def test_a_v4_wildcard_becomes_the_v4_interface_addresses_global_first() -> None:
    assert advertised(["/ip4/0.0.0.0/tcp/7447"], INTERFACES) == [
        "/ip4/81.2.69.160/tcp/7447",
        "/ip4/192.0.2.2/tcp/7447",
    ]


def test_a_v6_wildcard_becomes_the_v6_addresses_without_link_local_or_loopback() -> None:
    assert advertised(["/ip6/::/tcp/7447"], INTERFACES) == ["/ip6/fd00::2/tcp/7447"]


def test_loopback_only_when_the_node_has_no_other_address() -> None:
    assert advertised(["/ip4/0.0.0.0/tcp/1"], ["127.0.0.1", "::1"]) == ["/ip4/127.0.0.1/tcp/1"]
    assert advertised(["/ip4/0.0.0.0/tcp/1"], []) == []


def test_a_specific_listen_address_is_advertised_as_it_is() -> None:
    assert advertised(["/ip4/127.0.0.1/tcp/5"], INTERFACES) == ["/ip4/127.0.0.1/tcp/5"]
    assert advertised(["/ip4/192.0.2.2/tcp/5"], INTERFACES) == ["/ip4/192.0.2.2/tcp/5"]


def test_announce_replaces_everything_else() -> None:
    announce = ["/ip4/198.51.100.7/tcp/4101", "/dns4/coop.example.org/tcp/4101"]
    observed = ["/ip4/198.51.100.8/tcp/7447"]
    assert (
        advertised(["/ip4/0.0.0.0/tcp/7447"], INTERFACES, announce=announce, observed=observed)
        == announce
    )


def test_observed_addresses_count_only_on_a_port_the_node_listens_on() -> None:
    observed = [
        "/ip4/81.2.69.161/tcp/7447",  # a 1:1 NAT or a port forward to the same port
        "/ip4/198.51.100.8/tcp/50123",  # an outbound connection's ephemeral port
        "/ip4/0.0.0.0/tcp/7447",
        "/ip6/fe80::1/tcp/7447",
    ]
    assert advertised(["/ip4/0.0.0.0/tcp/7447"], ["192.0.2.2"], observed=observed) == [
        "/ip4/81.2.69.161/tcp/7447",  # global, so first
        "/ip4/192.0.2.2/tcp/7447",
    ]


def test_port_zero_and_unreadable_addresses_are_never_advertised() -> None:
    assert advertised(["/ip4/0.0.0.0/tcp/0", "/memory/x"], INTERFACES) == []


def test_wildcards_and_undialable_addresses_are_named() -> None:
    assert is_wildcard("/ip4/0.0.0.0/tcp/1") and is_wildcard("/ip6/::/tcp/1/p2p/x")
    assert not is_wildcard("/ip4/192.0.2.2/tcp/1")
    for bad in (
        "/ip4/0.0.0.0/tcp/1",
        "/ip6/::/tcp/1",
        "/ip4/192.0.2.2/tcp/0",
        "/ip4/224.0.0.1/tcp/1",
    ):
        assert not is_dialable(bad), bad
    assert is_dialable("/ip4/192.0.2.2/tcp/1") and is_dialable("/dns4/x.example/tcp/1")


def test_announce_takes_an_address_and_a_port_peers_can_dial() -> None:
    for good in ("/ip4/203.0.113.5/tcp/4101", "/ip6/2001:db8::5/tcp/4101", "/dns6/a.b/tcp/1"):
        assert announce_error(good) is None, good
    for bad in (
        "/ip4/0.0.0.0/tcp/4101",
        "/ip4/203.0.113.5/tcp/0",
        "/ip4/203.0.113.5/udp/4101",
        "/ip4/203.0.113.5/tcp/4101/p2p/12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB",
        "/dns4//tcp/1",
        "/ip4/999.1.1.1/tcp/1",
        "/ip4/::1/tcp/1",
        "203.0.113.5:4101",
    ):
        assert announce_error(bad) is not None, bad


@given(
    st.lists(st.ip_addresses(), max_size=12),
    st.sampled_from(["/ip4/0.0.0.0", "/ip6/::"]),
    st.integers(min_value=1, max_value=65_535),
)
def test_a_wildcard_never_advertises_a_wildcard_and_every_address_has_the_port(
    interfaces: list[object], wildcard: str, port: int
) -> None:
    chosen = advertised([f"{wildcard}/tcp/{port}"], [str(ip) for ip in interfaces])
    assert len(chosen) == len(set(chosen))
    assert all(is_dialable(addr) and addr.endswith(f"/tcp/{port}") for addr in chosen)
    assert all(addr.startswith(wildcard[:4]) for addr in chosen)  # the listener's family only
