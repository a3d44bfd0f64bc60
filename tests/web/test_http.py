"""The web page's HTTP server on a real socket: keep-alive, limits, bad requests, TLS, and the URL file."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import trio
from conftest import SiteNet

from conode.web.http import MAX_BODY
from conode.web.server import URL_FILE, WebConfig, WebServer


async def exchange(stream: trio.abc.Stream, data: bytes, until: bytes = b"\r\n\r\n") -> bytes:
    await stream.send_all(data)
    got = b""
    with trio.fail_after(10):
        while until not in got:
            chunk = await stream.receive_some(65536)
            if not chunk:
                break
            got += chunk
    return got


async def read_all(stream: trio.abc.Stream) -> bytes:
    got = b""
    with trio.fail_after(10):
        while chunk := await stream.receive_some(65536):
            got += chunk
    return got


async def test_pages_are_served_on_one_kept_connection_and_the_url_file_is_written(
    site_net: SiteNet, tmp_path: Path
) -> None:
    server = WebServer(site_net.adapter, WebConfig(tmp_path, "127.0.0.1:0"))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        assert (tmp_path / URL_FILE).read_text().strip() == server.url
        port = int(server.url.rsplit(":", 1)[1].strip("/"))
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        request = b"GET /login HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"
        first = await exchange(stream, request, b"</html>")
        second = await exchange(stream, request, b"</html>")  # the same connection
        assert first.startswith(b"HTTP/1.1 200 ") and second.startswith(b"HTTP/1.1 200 ")
        assert b"content-security-policy:" in first.lower()
        static = await exchange(stream, b"GET /static/../site.py HTTP/1.1\r\nhost: x\r\n\r\n")
        assert static.startswith(b"HTTP/1.1 404 ")
        await stream.aclose()
        nursery.cancel_scope.cancel()
    assert not (tmp_path / URL_FILE).exists()


async def test_a_large_body_or_a_malformed_request_is_refused(
    site_net: SiteNet, tmp_path: Path
) -> None:
    server = WebServer(site_net.adapter, WebConfig(tmp_path, "127.0.0.1:0"))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        port = int(server.url.rsplit(":", 1)[1].strip("/"))
        big = await trio.open_tcp_stream("127.0.0.1", port)
        await big.send_all(
            b"POST /login HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % (MAX_BODY + 1)
        )
        assert (await read_all(big)).startswith(b"HTTP/1.1 413 ")
        bad = await trio.open_tcp_stream("127.0.0.1", port)
        await bad.send_all(b"NOT HTTP AT ALL\r\n\r\n")
        assert (await read_all(bad)).startswith(b"HTTP/1.1 400 ")
        # the server still serves
        ok = await trio.open_tcp_stream("127.0.0.1", port)
        answer = await exchange(ok, b"GET /login HTTP/1.1\r\nhost: x\r\n\r\n", b"</html>")
        assert answer.startswith(b"HTTP/1.1 200 ")
        nursery.cancel_scope.cancel()


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_the_page_is_served_over_tls_with_secure_cookies(
    site_net: SiteNet, tmp_path: Path
) -> None:
    cert, key = _self_signed(tmp_path)
    server = WebServer(
        site_net.adapter, WebConfig(tmp_path, "0.0.0.0:0", tls_cert=cert, tls_key=key)
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        assert server.url.startswith("https://")
        port = int(server.url.rsplit(":", 1)[1].strip("/"))
        context = ssl.create_default_context(cafile=str(cert))
        tcp = await trio.open_tcp_stream("127.0.0.1", port)
        stream = trio.SSLStream(tcp, context, server_hostname="localhost", https_compatible=True)
        answer = await exchange(
            stream, b"GET /login HTTP/1.1\r\nhost: localhost\r\n\r\n", b"</html>"
        )
        assert answer.startswith(b"HTTP/1.1 200 ")
        cookie = next(
            line for line in answer.split(b"\r\n") if line.lower().startswith(b"set-cookie")
        )
        assert b"Secure" in cookie and b"HttpOnly" in cookie and b"SameSite=Strict" in cookie
        nursery.cancel_scope.cancel()
