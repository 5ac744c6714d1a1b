"""Track: persistence round trip and entry identity."""

from __future__ import annotations

import dataclasses

import pytest

from music.engine.track import Track


def make_track(**overrides: object) -> Track:
    fields: dict[str, object] = dict(
        query="https://example.com/watch?v=1",
        title="Song",
        duration=187.5,
        requester_id=42,
        uploader="Band",
        webpage_url="https://example.com/watch?v=1",
        stream_url="https://cdn.example.com/a.webm?expire=2000000000",
        stream_expires=2_000_000_000.0,
        http_headers={"User-Agent": "x"},
        acodec="opus",
        container="webm",
        extractor="Youtube",
    )
    fields.update(overrides)
    return Track(**fields)  # type: ignore[arg-type]


def test_to_dict_from_dict_round_trip_keeps_every_field() -> None:
    track = make_track()
    again = Track.from_dict(track.to_dict())
    assert again == track
    assert again.id == track.id


def test_from_dict_ignores_unknown_keys_and_fills_defaults() -> None:
    data = {"id": "abc", "query": "q", "title": "t", "from_a_future_version": 1}
    track = Track.from_dict(data)
    assert track.id == "abc"
    assert track.kind == "remote"
    assert track.http_headers == {}
    assert track.stream_url is None


def test_to_dict_does_not_share_headers_with_the_track() -> None:
    track = make_track()
    data = track.to_dict()
    data["http_headers"]["Cookie"] = "leak"
    assert "Cookie" not in track.http_headers


def test_with_new_id_is_a_distinct_entry_with_the_same_song() -> None:
    track = make_track()
    copy = track.with_new_id()
    assert copy.id != track.id
    assert dataclasses.replace(copy, id=track.id) == track
    copy.http_headers["X"] = "1"
    assert "X" not in track.http_headers


def test_ids_are_unique_per_entry() -> None:
    assert len({Track(query="q", title="t").id for _ in range(100)}) == 100


def test_fields_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        Track("q", "t")  # type: ignore[misc]


def test_is_expired_uses_margin_and_missing_stream() -> None:
    track = make_track(stream_expires=1000.0)
    assert not track.is_expired(now=900.0, margin=60)
    assert track.is_expired(now=950.0, margin=60)
    assert make_track(stream_url=None).is_expired(now=0)
    assert not make_track(stream_expires=None).is_expired(now=1e12)
    local = make_track(kind="local", stream_url="/music/a.mp3", stream_expires=None)
    assert not local.is_expired(now=1e12)
