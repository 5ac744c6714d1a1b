"""The network guard's proxy protocol on raw sockets: CONNECT tunnels, refusals, bad requests,
one lookup per connection (the rebinding defence), and the refusal text -> user sentence."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from music.netguard import NetworkGuard, policy_refusal, proxy_authorization, redact
from music.policy import NetworkPolicy


@pytest_asyncio.fixture
async def echo() -> AsyncIterator[tuple[int, list[int]]]:
    """A TCP echo server on 127.0.0.1: (port, a list that grows by one per connection)."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], connections
    server.close()
    await server.wait_closed()


class Resolver:
    """An injected resolve function: answers from a sequence, counting lookups."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def __call__(self, host: str, port: int) -> list[ipaddress.IPv4Address]:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        return [ipaddress.ip_address(answer)]


def with_secret(guard: NetworkGuard, head: bytes) -> bytes:
    """`head` with the guard's Proxy-Authorization after the request line, as its clients send."""
    request_line, _, rest = head.partition(b"\r\n")
    authorization = proxy_authorization(guard.url)  # type: ignore[arg-type]
    return request_line + f"\r\nProxy-Authorization: {authorization}".encode() + b"\r\n" + rest


async def ask(
    guard: NetworkGuard, head: bytes, *, authorized: bool = True
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    port = int(guard.url.rsplit(":", 1)[1])  # type: ignore[union-attr]
    if authorized:
        head = with_secret(guard, head)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    await writer.drain()
    status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    return reader, writer, status


async def test_connect_tunnels_bytes_both_ways_to_the_checked_address(echo) -> None:
    port, connections = echo
    resolve = Resolver("127.0.0.1")
    guard = NetworkGuard(lambda: NetworkPolicy(allow=["127.0.0.0/8"]), resolve=resolve)
    await guard.start()
    try:
        reader, writer, status = await ask(guard, f"CONNECT echo.test:{port} HTTP/1.1\r\n\r\n".encode())
        assert status.startswith(b"HTTP/1.1 200")
        payload = bytes(range(256)) * 1024  # 256 KiB: several relay reads
        writer.write(payload)
        await writer.drain()
        got = await asyncio.wait_for(reader.readexactly(len(payload)), 10)
        assert got == payload
        writer.close()
        assert resolve.calls == 1 and len(connections) == 1
        assert guard.stats.tunnels == 1 and guard.stats.bytes_relayed >= 2 * len(payload)
    finally:
        await guard.close()


async def test_a_denied_address_gets_403_with_the_reason_and_no_connection(echo) -> None:
    port, connections = echo
    guard = NetworkGuard(lambda: NetworkPolicy(), resolve=Resolver("127.0.0.1"))
    await guard.start()
    try:
        _, writer, status = await ask(guard, f"CONNECT echo.test:{port} HTTP/1.1\r\n\r\n".encode())
        writer.close()
        assert status.startswith(b"HTTP/1.1 403 Refused by network policy: local echo.test\r\n")
        assert b"X-Music-Policy: local" in status
        _, writer, status = await ask(
            guard, f"GET http://127.0.0.1:{port}/x HTTP/1.1\r\nHost: a\r\n\r\n".encode()
        )
        writer.close()
        assert status.startswith(b"HTTP/1.1 403 ")
        assert connections == [] and guard.stats.refused == 2
    finally:
        await guard.close()


async def test_owner_deny_beats_everything_and_says_so(echo) -> None:
    port, connections = echo
    policy = NetworkPolicy(allow=["127.0.0.0/8"], deny=["127.0.0.1/32"])
    guard = NetworkGuard(lambda: policy, resolve=Resolver("127.0.0.1"))
    await guard.start()
    try:
        _, writer, status = await ask(guard, f"CONNECT echo.test:{port} HTTP/1.1\r\n\r\n".encode())
        writer.close()
        assert b"X-Music-Policy: owner" in status and connections == []
    finally:
        await guard.close()


async def test_plain_http_is_forwarded_once_in_origin_form_without_proxy_headers(echo) -> None:
    """The echo server returns the request the site would see."""
    port, _ = echo
    guard = NetworkGuard(lambda: NetworkPolicy(allow=["127.0.0.0/8"]), resolve=Resolver("127.0.0.1"))
    await guard.start()
    try:
        head = (
            f"GET http://site.test:{port}/a/b.webm?x=1 HTTP/1.1\r\nHost: site.test:{port}\r\n"
            "Proxy-Authorization: Basic c2VjcmV0\r\nConnection: keep-alive\r\nRange: bytes=0-\r\n\r\n"
        ).encode()
        _, writer, seen = await ask(guard, head)
        writer.close()
        # neither the guard's secret nor the client's other proxy header reaches the site
        assert seen == (
            f"GET /a/b.webm?x=1 HTTP/1.1\r\nHost: site.test:{port}\r\nRange: bytes=0-\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
    finally:
        await guard.close()


@pytest.mark.parametrize(
    "head",
    [
        b"GET https://site.test/ HTTP/1.1\r\n\r\n",  # https must use CONNECT
        b"GET /relative HTTP/1.1\r\n\r\n",
        b"CONNECT site.test HTTP/1.1\r\n\r\n",  # no port
        b"CONNECT bad host:80 HTTP/1.1\r\n\r\n",
        b"CONNECT site.test:99999 HTTP/1.1\r\n\r\n",
        b"GET http://user:pw@site.test/ HTTP/1.1\r\n\r\n",
    ],
)
async def test_malformed_requests_get_400_without_a_lookup(head: bytes) -> None:
    resolve = Resolver("127.0.0.1")
    guard = NetworkGuard(lambda: NetworkPolicy(allow=["127.0.0.0/8"]), resolve=resolve)
    await guard.start()
    try:
        _, writer, status = await ask(guard, head)
        writer.close()
        assert status.startswith(b"HTTP/1.1 400 ") and resolve.calls == 0
    finally:
        await guard.close()


async def test_each_connection_looks_the_name_up_once_and_uses_that_answer(echo) -> None:
    """Rebinding: the second lookup would answer a denied address; there is no second lookup
    within one connection, and the next connection is checked on its own answer."""
    port, connections = echo
    resolve = Resolver("127.0.0.1", "10.0.0.1")
    guard = NetworkGuard(lambda: NetworkPolicy(allow=["127.0.0.0/8"]), resolve=resolve)
    await guard.start()
    try:
        _, writer, status = await ask(guard, f"CONNECT r.test:{port} HTTP/1.1\r\n\r\n".encode())
        writer.close()
        assert status.startswith(b"HTTP/1.1 200") and resolve.calls == 1
        _, writer, status = await ask(guard, f"CONNECT r.test:{port} HTTP/1.1\r\n\r\n".encode())
        writer.close()
        assert status.startswith(b"HTTP/1.1 403") and resolve.calls == 2
    finally:
        await guard.close()


def test_refusal_texts_become_the_policy_sentences() -> None:
    assert policy_refusal(
        "ERROR: Unable to download webpage: HTTP Error 403: Refused by network policy: local a.test"
    ).sentence == "I won't fetch `a.test`: it points to a private or local network address."
    assert policy_refusal(
        "Tunnel connection failed: 403 Refused by network policy: owner b.test"
    ).sentence == "I won't fetch `b.test`: the bot owner has blocked the address it points to."
    assert "couldn't find the site `c.test`" in policy_refusal(
        "HTTP Error 502: Refused by network policy: lookup c.test"
    ).sentence
    assert policy_refusal("HTTP Error 403: Forbidden") is None


async def test_close_cuts_relayed_connections(echo) -> None:
    port, _ = echo
    guard = NetworkGuard(lambda: NetworkPolicy(allow=["127.0.0.0/8"]), resolve=Resolver("127.0.0.1"))
    await guard.start()
    reader, writer, _ = await ask(guard, f"CONNECT e.test:{port} HTTP/1.1\r\n\r\n".encode())
    assert guard.stats.active == 1
    await guard.close()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    assert guard.url is None


# ---- only the cog may use the guard (a per-run secret) ----------------------------------------


def _basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


@pytest.mark.parametrize(
    "authorization",
    [
        None,  # a raw client that knows nothing
        "wrong-password",  # the right user, a guessed password
        "secret-with-a-changed-last-character",
        "Bearer",  # another scheme carrying the right token
        "not base64 at all",
        "Basic",  # the scheme and nothing else
    ],
)
async def test_a_client_without_the_secret_gets_407_and_nothing_is_relayed(
    echo, authorization: str | None
) -> None:
    port, connections = echo
    resolve = Resolver("127.0.0.1")
    guard = NetworkGuard(lambda: NetworkPolicy(allow=["127.0.0.0/8"]), resolve=resolve)
    await guard.start()
    secret = guard.url.split("@")[0].rsplit(":", 1)[1]  # type: ignore[union-attr]
    value = {
        None: None,
        "wrong-password": _basic("music:wrong-password"),
        "secret-with-a-changed-last-character": _basic(
            "music:" + secret[:-1] + ("A" if secret[-1] != "A" else "B")
        ),
        "Bearer": "Bearer " + base64.b64encode(f"music:{secret}".encode()).decode(),
        "not base64 at all": "Basic !!!not-base64!!!",
        "Basic": "Basic",
    }[authorization]
    extra = f"Proxy-Authorization: {value}\r\n" if value is not None else ""
    try:
        for head in (
            f"CONNECT echo.test:{port} HTTP/1.1\r\n{extra}\r\n",
            f"GET http://echo.test:{port}/x HTTP/1.1\r\nHost: a\r\n{extra}\r\n",
        ):
            reader, writer, status = await ask(guard, head.encode(), authorized=False)
            assert status.startswith(b"HTTP/1.1 407 Proxy Authentication Required\r\n"), status
            assert b'Proxy-Authenticate: Basic realm="music"' in status
            assert await asyncio.wait_for(reader.read(), 5) == b""  # and the guard hangs up
            writer.close()
        assert connections == [] and resolve.calls == 0
        assert guard.stats.unauthorized == 2 and guard.stats.refused == 0
        assert guard.stats.tunnels == guard.stats.forwarded == 0
    finally:
        await guard.close()


async def test_the_secret_is_new_for_each_guard_and_never_logged(echo, caplog) -> None:
    port, _ = echo
    caplog.set_level(logging.DEBUG, logger="red.music.netguard")
    guards = [NetworkGuard(lambda: NetworkPolicy(), resolve=Resolver("127.0.0.1")) for _ in range(2)]
    for guard in guards:
        await guard.start()
    try:
        urls = [guard.url for guard in guards]
        secrets = [url.split("@")[0].rsplit(":", 1)[1] for url in urls]  # type: ignore[union-attr]
        assert secrets[0] != secrets[1] and min(len(s) for s in secrets) >= 32
        assert urls[0].startswith("http://music:") and guards[0].address == (
            "http://127.0.0.1:" + urls[0].rsplit(":", 1)[1]  # type: ignore[union-attr]
        )
        # the other guard's secret is no good here
        head = f"CONNECT echo.test:{port} HTTP/1.1\r\nProxy-Authorization: {proxy_authorization(urls[1])}\r\n\r\n"
        _, writer, status = await ask(guards[0], head.encode(), authorized=False)
        writer.close()
        assert status.startswith(b"HTTP/1.1 407")
        _, writer, status = await ask(guards[0], f"CONNECT echo.test:{port} HTTP/1.1\r\n\r\n".encode())
        writer.close()
        assert status.startswith(b"HTTP/1.1 403")  # the secret passes; the policy refuses
        logged = "\n".join(record.getMessage() for record in caplog.records)
        assert "another program on this machine" in logged
        assert not any(secret in logged for secret in secrets)
    finally:
        for guard in guards:
            await guard.close()


def test_redact_takes_the_secret_out_of_an_error_text() -> None:
    url = "http://music:s3cr%2Bt@127.0.0.1:5000"
    text = "Unable to connect to proxy http://music:s3cr%2Bt@127.0.0.1:5000 (s3cr+t)"
    assert redact(text, url) == "Unable to connect to proxy http://music:***@127.0.0.1:5000 (***)"
    assert proxy_authorization(url) == _basic("music:s3cr+t")
    assert proxy_authorization("http://127.0.0.1:5000") is None
