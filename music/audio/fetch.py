"""Reading remote media in the bot process: every remote byte the cog plays or probes.

``HttpMediaReader`` is a blocking, file-like reader (``read1``/``read``) of one http(s) URL for a
reader thread: the in-process demuxers read it, and so does ffmpeg, through its stdin
(music.audio.pipe_input; ffmpeg opens no URL itself). It goes through the network guard (plain
http as an absolute-URI request to the guard, https tunnelled with CONNECT, both with the
guard's secret), follows a few redirects (each one through the guard, so each address is
checked), and resumes a dropped connection where it stopped with a ``Range`` request: the
reader above it never sees the drop.

Error texts never contain a URL path or query (stream URLs carry tokens and the bot's address);
a refusal by the guard keeps its ``Refused by network policy`` text so
``music.netguard.policy_refusal`` can turn it into the user's sentence.

Discord-free: importable and testable without a bot.
"""

from __future__ import annotations

import http.client
import logging
import re
import socket
import ssl
import threading
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import urljoin, urlsplit

from ..i18n import _
from ..netguard import proxy_authorization

log = logging.getLogger("red.music.audio.fetch")

#: Redirects followed per connection (yt-dlp's stream URLs redirect once or twice at most).
MAX_REDIRECTS = 5
#: Seconds to wait for a connection or for data before counting the connection as dropped.
#: Longer than any stall a site recovers from by itself; a stalled read meanwhile only means
#: the prebuffer drains and silence is counted.
IO_TIMEOUT = 20.0
#: Waits between reconnection attempts, as ffmpeg's -reconnect_delay_max 5 does (0, 1, 2, 4 s).
RECONNECT_DELAYS = (0.0, 1.0, 2.0, 4.0)
#: Bytes asked per read: about 4 s of 128 kbps audio at most, usually what one TCP read has.
READ_SIZE = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(\d+|\*)")
# One TLS context for every stream: building one loads the CA store (~1 MB and ~10 ms each).
_TLS_CONTEXT: ssl.SSLContext | None = None
_TLS_LOCK = threading.Lock()


class _IcyTolerantResponse(http.client.HTTPResponse):
    """An HTTPResponse that also takes SHOUTcast v1's `ICY 200 OK` status line (internet radio,
    often on port 8000), which http.client would refuse as a bad status line; ffmpeg, which
    read such streams before the cog did, accepts it too."""

    def begin(self) -> None:
        peeked = self.fp.peek(4)[:4] if hasattr(self.fp, "peek") else b""
        if peeked == b"ICY ":
            self.fp = cast(Any, _IcyStatusLine(self.fp))  # a file that reads like the original
        super().begin()


class _IcyStatusLine:
    """Wraps a response's file so its first line reads `HTTP/1.0` instead of `ICY`."""

    def __init__(self, fp) -> None:  # type: ignore[no-untyped-def]
        self._fp = fp
        self._first = True

    def readline(self, limit: int = -1) -> bytes:
        line = self._fp.readline(limit)
        if self._first:
            self._first = False
            if line.startswith(b"ICY "):
                line = b"HTTP/1.0 " + line[4:]
        return line

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._fp, name)


class MediaFetchError(Exception):
    """The media could not be fetched (or stopped being fetchable), in a sentence without the
    URL's path or query."""


def _tls_context() -> ssl.SSLContext:
    global _TLS_CONTEXT
    with _TLS_LOCK:
        if _TLS_CONTEXT is None:
            _TLS_CONTEXT = ssl.create_default_context()
        return _TLS_CONTEXT


def clean_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Header pairs without CR, LF or a colon in names and without CR/LF in values, for this
    reader (which sends every remote request, ffmpeg opens none): a site's header must
    not smuggle in another header. Names left empty are dropped."""
    cleaned: dict[str, str] = {}
    for key, value in (headers or {}).items():
        name = re.sub(r"[\r\n:]", "", str(key)).strip()
        if name:
            cleaned[name] = re.sub(r"[\r\n]", "", str(value)).strip()
    return cleaned


def _site(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}"


class HttpMediaReader:
    """A blocking reader of one http(s) media URL; use it from one reader thread.

    ``read1``/``read`` return the next bytes (b"" at the end); a dropped connection is resumed at
    the same byte with ``Range`` (or, from a server without ranges, by skipping what was already
    read), up to ``len(RECONNECT_DELAYS)`` attempts in a row. Raises :class:`MediaFetchError`
    when the media cannot be fetched. :meth:`close` may be called from any thread: it wakes a
    read blocked on the network.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        proxy: str | None = None,
        timeout: float = IO_TIMEOUT,
        reconnect_delays: tuple[float, ...] = RECONNECT_DELAYS,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            raise MediaFetchError(_("Only http and https links can be streamed."))
        self.url = url
        self.headers = clean_headers(headers)
        self.headers.setdefault("Accept-Encoding", "identity")  # bytes as stored: no gzip
        self.proxy = proxy
        self.timeout = timeout
        self.reconnect_delays = reconnect_delays
        self._tls = tls_context  # None: the shared default context (system CAs)
        #: bytes handed out so far (where a resumed connection starts)
        self.position = 0
        #: the media's size in bytes, when the server said
        self.length: int | None = None
        #: connections made after the first one (drops resumed)
        self.reconnects = 0
        #: the URL the media came from after redirects (relative links in it are resolved
        #: against this one); the given URL until connected
        self.final_url = url
        #: the media type the server named, lower case without parameters ("" if none)
        self.content_type = ""
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._conn: http.client.HTTPConnection | None = None
        self._response: http.client.HTTPResponse | None = None
        self._connected_once = False

    # -- file-like --------------------------------------------------------------------------------

    def read1(self, size: int = READ_SIZE) -> bytes:
        if size is None or size < 0:
            size = READ_SIZE
        failures = 0
        while not self._closed.is_set():
            try:
                if self._response is None:
                    self._open()
                    continue
                data = self._response.read1(size)
            except MediaFetchError:
                raise
            except (OSError, http.client.HTTPException) as exc:
                if self._closed.is_set():
                    break
                if not self._connected_once:
                    # the first connection failed: the site is down or refuses us, and waiting
                    # would only delay the user's error (ffmpeg does not retry this either)
                    self._drop_connection()
                    raise MediaFetchError(_("Could not connect to {url}: {exc}").format(url=_site(self.url), exc=exc)) from None
                failures = self._after_drop(failures, exc)
                continue
            except Exception:
                if self._closed.is_set():
                    # close() in another thread tore the connection down in the middle of
                    # http.client's read (it raises AttributeError then): the end, not a fault
                    break
                raise
            if data:
                self.position += len(data)
                return data
            if self.length is None or self.position >= self.length:
                return b""  # the whole media (or a live stream's end)
            failures = self._after_drop(failures, None)  # ended before Content-Length: dropped
        return b""

    read = read1

    def connect(self) -> None:
        """Connect now (the first read would): a failure to fetch raises here."""
        if self._response is not None or self._closed.is_set():
            return
        try:
            self._open()
        except MediaFetchError:
            raise
        except (OSError, http.client.HTTPException) as exc:
            self._drop_connection()
            if self._closed.is_set():
                return
            raise MediaFetchError(_("Could not connect to {url}: {exc}").format(url=_site(self.url), exc=exc)) from None

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move to byte ``offset`` (SEEK_SET only). The connection, if any, is dropped (the
        reader stays open) and the next read opens one with ``Range: bytes=offset-``, as a
        resume does (a server without ranges is read up to the offset; at or past the end the
        reads return b""). Seeking to the current position keeps the connection. A seek is not
        a failure: before the first connection, that ranged request is still the first one."""
        if whence != 0:
            raise ValueError("HttpMediaReader.seek supports only SEEK_SET (whence=0)")
        offset = offset.__index__()
        if offset < 0:
            raise ValueError(f"negative seek position {offset}")
        if offset != self.position:
            self._drop_connection()
            self.position = offset
        return offset

    def close(self) -> None:
        """End the connection (any thread). A blocked read returns b"" soon after."""
        self._closed.set()
        with self._lock:
            conn, self._conn = self._conn, None
            self._response = None
        if conn is not None:
            sock = conn.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # wakes a recv() blocked in another thread
                except OSError:
                    pass
            conn.close()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def __enter__(self) -> HttpMediaReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- connections ------------------------------------------------------------------------------

    def _after_drop(self, failures: int, exc: BaseException | None) -> int:
        """Wait before the next attempt after a drop; raise once the attempts are used up."""
        self._drop_connection()
        if failures >= len(self.reconnect_delays):
            cause = f": {exc}" if exc is not None and str(exc) else ""
            raise MediaFetchError(
                _("The connection to {url} was lost and reconnecting failed{cause}").format(url=_site(self.url), cause=cause)
            )
        log.debug("Connection to %s dropped at byte %d (%s); resuming", _site(self.url),
                  self.position, exc or "early end")
        self._closed.wait(self.reconnect_delays[failures])
        self.reconnects += 1
        return failures + 1

    def _drop_connection(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            self._response = None
        if conn is not None:
            conn.close()

    def _open(self) -> None:
        """Connect (following redirects) and position the response at ``self.position``."""
        url = self.url
        for _hop in range(MAX_REDIRECTS + 1):
            conn, response = self._request(url)
            status = response.status
            if status in _REDIRECTS:
                location = response.getheader("Location")
                conn.close()
                if not location:
                    raise MediaFetchError(_("{url} answered a redirect without a location.").format(url=_site(url)))
                url = urljoin(url, location)
                if urlsplit(url).scheme.lower() not in ("http", "https"):
                    raise MediaFetchError(_("{url} redirected to something that is not a web link.").format(url=_site(self.url)))
                continue
            if status == 416 and self.position > 0:
                # asked to resume at or past the end: nothing more to read
                conn.close()
                self.length = self.position
                self._install(None, None)
                return
            if status not in (200, 206):
                conn.close()
                raise MediaFetchError(_("HTTP error {status} {reason} from {url}").format(status=status, reason=response.reason, url=_site(url)))
            self._note_length(response, status)
            self.final_url = url
            self.content_type = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
            if status == 200 and self.position > 0:
                self._skip_to_position(response)  # no range support: read past what we had
            self._install(conn, response)
            return
        raise MediaFetchError(_("{url} redirected too many times.").format(url=_site(self.url)))

    def _request(self, url: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        parts = urlsplit(url)
        https = parts.scheme.lower() == "https"
        host = parts.hostname
        if not host:
            raise MediaFetchError(_("That link has no host name."))
        port = parts.port or (443 if https else 80)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        conn: http.client.HTTPConnection
        headers = dict(self.headers)
        if self.proxy:
            proxy = urlsplit(self.proxy)
            proxy_host, proxy_port = proxy.hostname or "127.0.0.1", proxy.port or 80
            # the guard's secret, on the CONNECT or on the forwarded request (the guard takes it
            # off before anything reaches the site)
            authorization = proxy_authorization(self.proxy)
            proxy_headers = {"Proxy-Authorization": authorization} if authorization else {}
            if https:
                conn = http.client.HTTPSConnection(proxy_host, proxy_port, timeout=self.timeout,
                                                   context=self._tls or _tls_context())
                conn.set_tunnel(host, port, headers=proxy_headers)
            else:
                conn = http.client.HTTPConnection(proxy_host, proxy_port, timeout=self.timeout)
                target = f"http://{parts.netloc.rsplit('@', 1)[-1]}{target}"  # absolute URI
                headers.update(proxy_headers)
        elif https:
            conn = http.client.HTTPSConnection(host, port, timeout=self.timeout,
                                               context=self._tls or _tls_context())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        conn.response_class = _IcyTolerantResponse
        if self.position > 0:
            headers["Range"] = f"bytes={self.position}-"
        with self._lock:
            if self._closed.is_set():
                raise MediaFetchError(_("The stream was closed."))
            self._conn = conn  # so close() can wake a connect or a read in another thread
        try:
            conn.request("GET", target, headers=headers)
            return conn, conn.getresponse()
        except OSError as exc:
            conn.close()
            text = str(exc)
            if "Tunnel connection failed" in text:
                # the guard refused the CONNECT: final, and policy_refusal() reads this text
                raise MediaFetchError(_("HTTP error {status}").format(status=text.split(':', 1)[-1].strip())) from None
            raise

    def _note_length(self, response: http.client.HTTPResponse, status: int) -> None:
        if status == 206:
            match = _CONTENT_RANGE.fullmatch((response.getheader("Content-Range") or "").strip())
            if match is None or int(match[1]) != self.position:
                raise MediaFetchError(_("{url} resumed the stream at the wrong place.").format(url=_site(self.url)))
            if match[2] != "*":
                self.length = int(match[2])
            return
        length = response.getheader("Content-Length")
        if length and length.strip().isdigit():
            self.length = int(length)

    def _skip_to_position(self, response: http.client.HTTPResponse) -> None:
        left = self.position
        while left > 0 and not self._closed.is_set():
            data = response.read1(min(left, READ_SIZE))
            if not data:
                raise OSError(_("the connection ended while skipping to the resume point"))
            left -= len(data)

    def _install(self, conn: http.client.HTTPConnection | None,
                 response: http.client.HTTPResponse | None) -> None:
        with self._lock:
            if self._closed.is_set():
                if conn is not None:
                    conn.close()
                return
            self._conn, self._response = conn, response
            self._connected_once = True
            if response is None:
                self._response = _EmptyResponse()  # type: ignore[assignment]


class _EmptyResponse:
    """The response after a 416 at the end: reads nothing."""

    def read1(self, size: int = -1) -> bytes:
        return b""
