"""HttpMediaReader.seek: a seek drops the connection and the next read asks for the new offset
with Range, through the same code as a resume (206, or 200 skipped to the offset, or 416 at the
end); seeking where the reader already is keeps the connection."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from music.audio.fetch import HttpMediaReader, MediaFetchError
from tests.support.media import MediaServer, start_ranged_response

SIZE = 300_000
CUT_AFTER = 10_000


class RangeServer:
    """A MediaServer on a folder with one file of random bytes. It records (path, Range) of each
    request; `/plain/<name>` ignores Range (always 200 and the whole file), `/cut/<name>` sends
    CUT_AFTER bytes then drops the connection for its first two requests (Range honoured)."""

    def __init__(self, root: Path) -> None:
        self.content = random.Random(7).randbytes(SIZE)
        (root / "blob.bin").write_bytes(self.content)
        self.server = MediaServer(root)
        self.requests: list[tuple[str, str | None]] = []
        self._cut_count = 0

        @web.middleware
        async def record(request: web.Request, handler):
            self.requests.append((request.path, request.headers.get("Range")))
            return await handler(request)

        self.server.app.middlewares.append(record)
        self.server.app.router.add_get("/plain/{name}", self.plain)
        self.server.app.router.add_get("/cut/{name}", self.cut)

    def url(self, name: str = "blob.bin", mode: str = "media") -> str:
        return f"{self.server.base_url}/{mode}/{name}"

    async def plain(self, request: web.Request) -> web.Response:
        return web.Response(body=self.content, content_type="application/octet-stream")

    async def cut(self, request: web.Request) -> web.StreamResponse:
        response, body = await start_ranged_response(request, self.content)
        self._cut_count += 1
        if self._cut_count <= 2:
            await response.write(body[:CUT_AFTER])
            assert request.transport is not None
            request.transport.close()
            return response
        await response.write(body)
        await response.write_eof()
        return response


@pytest.fixture
def ranges(tmp_path: Path) -> Iterator[RangeServer]:
    routes = RangeServer(tmp_path)
    routes.server.start()
    yield routes
    routes.server.stop()


def read_at_least(reader: HttpMediaReader, count: int) -> bytes:
    got = b""
    while len(got) < count:
        chunk = reader.read1(count - len(got))
        assert chunk, "the stream ended early"
        got += chunk
    return got


def read_rest(reader: HttpMediaReader) -> bytes:
    parts = []
    while chunk := reader.read1():
        parts.append(chunk)
    return b"".join(parts)


def test_is_seekable_and_tells_its_position(ranges: RangeServer) -> None:
    with HttpMediaReader(ranges.url()) as reader:
        assert reader.seekable() is True
        assert reader.tell() == 0
        got = read_at_least(reader, 1000)
        assert reader.tell() == len(got) == reader.position
        assert reader.seek(5) == 5 and reader.tell() == 5
        with pytest.raises(ValueError):
            reader.seek(0, 1)
        with pytest.raises(ValueError):
            reader.seek(0, 2)
        with pytest.raises(ValueError):
            reader.seek(-1)
        assert reader.tell() == 5  # a refused seek changes nothing
        assert reader.read1(10) == ranges.content[5:15]


def test_a_seek_before_the_first_read_makes_the_first_request_ranged(ranges: RangeServer) -> None:
    with HttpMediaReader(ranges.url()) as reader:
        reader.seek(123_457)
        assert ranges.requests == []  # seeking alone connects nowhere
        assert read_rest(reader) == ranges.content[123_457:]
        assert reader.length == SIZE
        assert reader.reconnects == 0
    assert ranges.requests == [("/media/blob.bin", "bytes=123457-")]


def test_a_seek_mid_read_gives_the_bytes_at_the_new_offset(ranges: RangeServer) -> None:
    with HttpMediaReader(ranges.url()) as reader:
        head = read_at_least(reader, 5000)
        assert head == ranges.content[: len(head)]
        reader.seek(200_000)
        assert read_at_least(reader, 4000) == ranges.content[200_000:204_000]
        reader.seek(10)  # backwards too
        assert read_rest(reader) == ranges.content[10:]
        assert reader.reconnects == 0  # a seek is not a drop
    assert ranges.requests == [("/media/blob.bin", None), ("/media/blob.bin", "bytes=200000-"),
                               ("/media/blob.bin", "bytes=10-")]


def test_seeking_to_the_current_position_keeps_the_connection(ranges: RangeServer) -> None:
    with HttpMediaReader(ranges.url()) as reader:
        head = read_at_least(reader, 3000)
        assert reader.seek(len(head)) == len(head)
        assert reader.seek(reader.tell()) == len(head)
        rest = read_rest(reader)
    assert head + rest == ranges.content
    assert ranges.requests == [("/media/blob.bin", None)]


def test_seeking_to_zero_after_reading_asks_without_range(ranges: RangeServer) -> None:
    with HttpMediaReader(ranges.url()) as reader:
        read_at_least(reader, 3000)
        reader.seek(0)
        assert read_rest(reader) == ranges.content
    assert ranges.requests == [("/media/blob.bin", None)] * 2


def test_seeking_at_or_past_the_end_reads_nothing_and_back_again(ranges: RangeServer) -> None:
    with HttpMediaReader(ranges.url()) as reader:
        reader.seek(SIZE)
        assert reader.read1() == b""  # 416: nothing more, no error
        reader.seek(SIZE + 1000)
        assert reader.read1() == b""
        reader.seek(SIZE - 7)
        assert read_rest(reader) == ranges.content[-7:]
        assert reader.reconnects == 0
    assert [r for _, r in ranges.requests] == [f"bytes={SIZE}-", f"bytes={SIZE + 1000}-",
                                               f"bytes={SIZE - 7}-"]


def test_a_server_that_ignores_range_still_gives_the_right_bytes(ranges: RangeServer) -> None:
    with HttpMediaReader(ranges.url(mode="plain")) as reader:
        reader.seek(250_000)  # before the first read: 200 from the start, skipped
        assert read_at_least(reader, 1000) == ranges.content[250_000:251_000]
        reader.seek(1234)  # mid-read, backwards
        assert read_at_least(reader, 1000) == ranges.content[1234:2234]
        reader.seek(299_990)
        assert read_rest(reader) == ranges.content[299_990:]
    assert [r for _, r in ranges.requests] == ["bytes=250000-", "bytes=1234-", "bytes=299990-"]


def test_a_drop_after_a_seek_resumes_at_the_right_byte(ranges: RangeServer) -> None:
    """The first two connections are cut after CUT_AFTER bytes: the one before the seek (its
    cut never matters) and the one after it, which is resumed where the seek put the reader."""
    with HttpMediaReader(ranges.url(mode="cut"), reconnect_delays=(0.0, 0.0)) as reader:
        assert read_at_least(reader, 2000) == ranges.content[:2000]
        reader.seek(100_000)
        assert read_rest(reader) == ranges.content[100_000:]
        assert reader.reconnects == 1
    assert [r for _, r in ranges.requests] == [None, "bytes=100000-",
                                               f"bytes={100_000 + CUT_AFTER}-"]


def test_a_failed_first_connection_after_a_seek_is_still_an_error_at_once() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    reader = HttpMediaReader(f"http://127.0.0.1:{port}/x.webm", reconnect_delays=(5.0, 5.0))
    reader.seek(1000)
    started = time.monotonic()
    with pytest.raises(MediaFetchError, match="Could not connect"):
        reader.read1()
    assert time.monotonic() - started < 2  # no waiting between retries
    assert reader.reconnects == 0
    reader.close()


def test_a_seek_on_a_closed_reader_is_harmless(ranges: RangeServer) -> None:
    reader = HttpMediaReader(ranges.url())
    read_at_least(reader, 100)
    reader.close()
    assert reader.seek(50) == 50
    assert reader.read1() == b""
    assert len(ranges.requests) == 1
