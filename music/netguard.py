"""NetworkGuard: a policy-enforcing HTTP forward proxy on 127.0.0.1 that yt-dlp and the cog's
own reader (music.audio.fetch, which also feeds ffmpeg: ffmpeg opens no URL, see
music.audio.pipe_input) connect through for every remote request.

Checking a URL's host name before handing the URL to a client is not enough: it resolves the
name again itself (a DNS-rebinding name answers a public address to the check and 127.0.0.1 to
the real connection), follows redirects and opens HLS segments on other hosts without asking.
Through the guard, every connection they make is a request to it: it resolves
the name ONCE, checks every resolved address with the network policy in force, and connects to
the checked address itself, so the address checked is the address connected to.

- `CONNECT host:port` (https): answers 200 and relays bytes both
  ways; TLS runs end to end between the client and the site (certificates still name the host).
- Absolute-URI requests (`GET http://host/path HTTP/1.1`, plain http): forwarded once with
  `Connection: close`; the connection ends with the response.
- Refused: `403 Refused by network policy: <verdict> <host>` plus an `X-Music-Policy` header;
  `policy_refusal()` turns such an error text back into the user's sentence.
- Only the cog may use it: every request must carry `Proxy-Authorization: Basic` with the
  per-run secret in `url` (`http://music:<secret>@127.0.0.1:port`, a new random secret each
  time the guard is made); anything else (another local process) gets `407` and nothing is
  relayed. 127.0.0.1 is reachable by every process on the machine, so without this the guard
  would be an open proxy to every address the policy allows. The secret is compared in constant
  time, never logged (`address` is the URL without it) and never forwarded to a site.

Relaying is plain asyncio streams with 64 KiB reads: no per-byte Python work (one stream is
~16 KB/s, so a read is ~one network packet's worth of work per few ms at most).

Discord-free: importable and testable without a bot.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import hmac
import ipaddress
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from music.policy import IPAddress, NetworkPolicy, PolicyError, refusal_sentence

log = logging.getLogger("red.music.netguard")

#: Bytes per read when relaying; large reads keep the per-stream Python work tiny.
RELAY_CHUNK = 64 * 1024
#: A request head bigger than this is refused (no legitimate media request comes close).
MAX_HEAD = 32 * 1024
HEAD_TIMEOUT = 15.0
CONNECT_TIMEOUT = 10.0
#: The marker in the status line of a refusal; clients show it in their error messages.
REFUSAL_MARKER = "Refused by network policy"
#: The user name in the guard's URL (the password is the per-run secret).
PROXY_USER = "music"
#: Seconds between two warnings about clients without the secret (one process could flood).
UNAUTHORIZED_LOG_INTERVAL = 60.0
_REFUSAL = re.compile(REFUSAL_MARKER + r": (owner|local|lookup) ([A-Za-z0-9.:_\[\]-]{1,253})")
# A host as it may appear in a request target: a DNS name or an IP literal (IPv6 in brackets).
_HOST = re.compile(r"^(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63})*\.?|\[[0-9A-Fa-f:.]+\])$")
# Hop-by-hop headers (RFC 9110 7.6.1) and the proxy's own: never forwarded to the site.
_HOP_HEADERS = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authorization",
        b"proxy-authenticate",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

Resolve = Callable[[str, int], Awaitable[list[IPAddress]]]


class _Refused(Exception):
    def __init__(
        self, status: int, reason: str, verdict: str | None = None, *, extra: str = ""
    ) -> None:
        super().__init__(reason)
        self.status, self.reason, self.verdict = status, reason, verdict
        #: more header lines for the answer (each ending in CRLF)
        self.extra = extra


def _unauthorized() -> _Refused:
    return _Refused(
        407, "Proxy Authentication Required", extra='Proxy-Authenticate: Basic realm="music"\r\n'
    )


def proxy_authorization(proxy_url: str) -> str | None:
    """The `Proxy-Authorization` value for the credentials in `proxy_url` (None without any):
    what a client of the guard sends with every request and every CONNECT."""
    parts = urlsplit(proxy_url)
    if parts.username is None:
        return None
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def redact(text: str, proxy_url: str | None) -> str:
    """`text` without the secret of `proxy_url` (an error text that quotes the proxy URL)."""
    if not proxy_url:
        return text
    password = urlsplit(proxy_url).password  # as written in the URL (percent-encoded)
    if password:
        for form in {password, unquote(password), quote(unquote(password), safe="")}:
            text = text.replace(form, "***")
    return text


def policy_refusal(message: str) -> PolicyError | None:
    """The PolicyError (user sentence) for an error text that carries the guard's refusal
    (`HTTP Error 403: Refused by network policy: local example.com`, `Tunnel connection
    failed: 403 ...`), else None."""
    match = _REFUSAL.search(message)
    if match is None:
        return None
    return PolicyError(refusal_sentence(match[2].strip("[]"), match[1]))


#: Environment variables ffmpeg (or a library in it) would read to use a proxy, or to skip one.
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy", "no_proxy")


def ffmpeg_env() -> dict[str, str]:
    """The environment for an ffmpeg child: ours without proxy settings (any case). ffmpeg
    opens no network URL (it reads the cog's pipe, music.audio.pipe_input) and must not learn
    the guard's secret either."""
    return {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARIABLES}


async def system_resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (getaddrinfo runs in a thread via the loop)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for info in infos:
        with contextlib.suppress(ValueError):
            address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            if address not in addresses:
                addresses.append(address)
    return addresses


@dataclass
class GuardStats:
    """Counters for `music status` and tests."""

    tunnels: int = 0  # CONNECT requests relayed
    forwarded: int = 0  # plain http requests relayed
    refused: int = 0  # refused by the network policy (or a bad request)
    unauthorized: int = 0  # requests without the guard's secret (another local process)
    active: int = 0  # connections being relayed now
    bytes_relayed: int = 0


class NetworkGuard:
    """The proxy. `await start()` binds 127.0.0.1 on an ephemeral port; `url` (with the per-run
    secret as credentials) is what yt-dlp's `proxy` option and the in-process reader
    (music.audio.fetch) take; `await close()` stops it and cuts every relayed connection.
    The policy is read at every connection (owner changes apply at once)."""

    def __init__(
        self,
        policy_getter: Callable[[], NetworkPolicy],
        *,
        resolve: Resolve | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self._policy_getter = policy_getter
        self._resolve = resolve or system_resolve
        self.connect_timeout = connect_timeout
        # A new secret per guard, i.e. per cog load: nothing outside this process knows it.
        self._secret = secrets.token_urlsafe(24)
        self._credentials = f"{PROXY_USER}:{self._secret}".encode()
        self._last_unauthorized_log = float("-inf")
        self.stats = GuardStats()
        #: (monotonic time, host, verdict) of recent refusals, newest last.
        self.refusals: collections.deque[tuple[float, str, str]] = collections.deque(maxlen=50)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        #: the URL clients use, with the secret: `http://music:<secret>@127.0.0.1:port`
        self.url: str | None = None
        #: the same without the secret, for logs and status
        self.address: str | None = None

    async def start(self) -> str:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._handle, "127.0.0.1", 0, limit=MAX_HEAD
            )
            port = self._server.sockets[0].getsockname()[1]
            self.address = f"http://127.0.0.1:{port}"
            self.url = f"http://{PROXY_USER}:{self._secret}@127.0.0.1:{port}"
            log.debug("Network guard listening on %s", self.address)
        assert self.url is not None
        return self.url

    async def close(self) -> None:
        server, self._server = self._server, None
        self.url = self.address = None
        if server is None:
            return
        server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 5)

    # ---- one client connection ----------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        upstream: asyncio.StreamWriter | None = None
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError):
                return
            try:
                self._authorize(head)
                method, host, port, outgoing = self._parse(head)
                up_reader, upstream = await self._connect(host, port)
            except _Refused as refusal:
                await self._refuse(writer, refusal)
                return
            if method == b"CONNECT":
                self.stats.tunnels += 1
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                self.stats.forwarded += 1
                upstream.write(outgoing)
            self.stats.active += 1
            try:
                await self._relay(reader, writer, up_reader, upstream)
            finally:
                self.stats.active -= 1
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            for w in (writer, upstream):
                if w is not None:
                    w.close()

    def _authorize(self, head: bytes) -> None:
        """Raise the 407 refusal unless the head carries the secret (compared in constant
        time: a local process must not learn it byte by byte from response times)."""
        given = b""
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"proxy-authorization":
                scheme, _, token = value.strip().partition(b" ")
                if scheme.lower() == b"basic":
                    try:
                        given = base64.b64decode(token.strip(), validate=True)
                    except (binascii.Error, ValueError):
                        given = b""
                break
        if hmac.compare_digest(given, self._credentials):
            return
        self.stats.unauthorized += 1
        now = time.monotonic()
        if now - self._last_unauthorized_log >= UNAUTHORIZED_LOG_INTERVAL:
            self._last_unauthorized_log = now
            log.warning(
                "Refused a request to the network guard without its secret (%d so far): "
                "another program on this machine tried to use it as a proxy",
                self.stats.unauthorized,
            )
        raise _unauthorized()

    def _parse(self, head: bytes) -> tuple[bytes, str, int, bytes]:
        """(method, host, port, the head to send upstream) from a proxy request head."""
        lines = head.split(b"\r\n")
        try:
            method, target, version = lines[0].split(b" ")
            text_target = target.decode("ascii")
        except (ValueError, UnicodeDecodeError):
            raise _Refused(400, "Bad request") from None
        if not version.startswith(b"HTTP/1."):
            raise _Refused(400, "Bad request")
        if method == b"CONNECT":
            host, _, port_text = text_target.rpartition(":")
            path = b""
        else:
            match = re.match(r"^http://([^/?#]+)(.*)$", text_target, re.IGNORECASE)
            if match is None:  # only absolute http:// targets; https goes through CONNECT
                raise _Refused(400, "Only absolute http:// requests and CONNECT are proxied")
            authority, rest = match[1], match[2] or "/"
            if "@" in authority:
                raise _Refused(400, "Credentials in the proxied URL are not supported")
            if authority.endswith("]") or ":" not in authority:
                host, port_text = authority, "80"
            else:
                host, _, port_text = authority.rpartition(":")
            path = rest.encode("ascii")
        if not _HOST.match(host) or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise _Refused(400, "Bad host or port")
        host = host.rstrip(".")
        outgoing = b""
        if method != b"CONNECT":
            kept = [
                line
                for line in lines[1:]
                if line and line.split(b":", 1)[0].strip().lower() not in _HOP_HEADERS
            ]
            outgoing = b"\r\n".join(
                [method + b" " + path + b" HTTP/1.1", *kept, b"Connection: close", b"", b""]
            )
        return method, host, int(port_text), outgoing

    async def _connect(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Resolve `host` once, check every address, connect to a checked one."""
        bare = host.strip("[]")
        try:
            addresses: list[IPAddress] = [ipaddress.ip_address(bare)]
        except ValueError:
            try:
                addresses = await self._resolve(bare, port)
            except (OSError, UnicodeError):
                addresses = []
            if not addresses:
                raise _Refused(502, f"{REFUSAL_MARKER}: lookup {bare}", "lookup") from None
        policy = self._policy_getter()
        for address in addresses:
            verdict = policy.verdict(address)
            if verdict is not None:
                self.refusals.append((time.monotonic(), bare, verdict))
                log.warning(
                    "Refused a connection to %s (%s, port %s): %s address",
                    bare, address, port, "owner-blocked" if verdict == "owner" else "private or local",
                )
                raise _Refused(403, f"{REFUSAL_MARKER}: {verdict} {bare}", verdict)
        error: BaseException | None = None
        for address in addresses:
            try:
                return await asyncio.wait_for(
                    asyncio.open_connection(str(address), port, limit=RELAY_CHUNK),
                    self.connect_timeout,
                )
            except (OSError, asyncio.TimeoutError) as exc:
                error = exc
        log.debug("Could not reach %s:%s: %s", bare, port, error)
        raise _Refused(502, "Could not connect to the site")

    async def _refuse(self, writer: asyncio.StreamWriter, refusal: _Refused) -> None:
        if refusal.status != 407:  # counted in unauthorized
            self.stats.refused += 1
        extra = f"X-Music-Policy: {refusal.verdict}\r\n" if refusal.verdict else ""
        extra += refusal.extra
        writer.write(
            (
                f"HTTP/1.1 {refusal.status} {refusal.reason}\r\n{extra}"
                "Content-Length: 0\r\nConnection: close\r\n\r\n"
            ).encode("ascii", "replace")
        )
        with contextlib.suppress(ConnectionError, OSError):
            await writer.drain()

    async def _relay(
        self,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        """Bytes both ways until either side ends; then both connections close. Our clients
        (ffmpeg, urllib, TLS) never half-close, so a client's end of stream means it has gone
        (a probe that read only the header), and the site must see it go, as it would
        without the guard; the site's end means the response is complete."""
        downstream = asyncio.create_task(self._pipe(up_reader, client_writer))
        upstream = asyncio.create_task(self._pipe(client_reader, up_writer))
        try:
            await asyncio.wait({downstream, upstream}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (downstream, upstream):
                task.cancel()
            await asyncio.gather(downstream, upstream, return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(RELAY_CHUNK):
                writer.write(data)
                self.stats.bytes_relayed += len(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            pass
