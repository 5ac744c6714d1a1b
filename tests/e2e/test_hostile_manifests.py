"""`play` of a manifest that names an address the policy denies: the member gets a sentence, the
music goes on, and the denied address sees no connection (issue 13, point 1).

The owner allows only 127.0.0.1/32, where the test media server listens; a listener on
127.0.0.2 (denied: loopback) counts every TCP connection and UDP datagram. The manifests are
files on the allowed media server: HLS playlists whose segment or variant names
`httpproxy://`, `tcp://` or plain `http://` on the denied address (ffmpeg's own HLS demuxer
used to connect to the first two directly, around the network guard), and an ffconcat script
named `.mp3` (a direct-media link: the early probe reads it while yt-dlp works). Music that does
play comes from the owner's local folder, so every refusal is checked against a playing queue.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.e2e.conftest import MusicBot, queue_lines
from tests.support.denied import ALLOWED_NETWORKS, DeniedListener

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


@pytest.fixture(scope="module")
def allowed_networks() -> tuple[str, ...]:
    return ALLOWED_NETWORKS  # the media server's address; 127.0.0.2 stays denied


@pytest.fixture(scope="module")
def listener():
    denied = DeniedListener()
    yield denied
    denied.close()


@pytest.fixture(scope="module")
def local_folder(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("local-music").resolve()
    shutil.copy(media_dir / "long.mp3", folder / "long.mp3")
    return folder


def hls(line: str) -> str:
    return f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n{line}\n#EXT-X-ENDLIST\n"


def master(variant: str) -> str:
    """A master playlist (what a radio serves; the default extractor list takes it as a
    manifest at the link itself) whose one variant is ``variant``."""
    return f'#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=64000,CODECS="mp4a.40.2"\n{variant}\n'


@pytest.fixture(scope="module")
def manifests(media_dir: Path, listener: DeniedListener) -> dict[str, str]:
    """file name on the media server -> the sentence the member is told."""
    address = listener.address()
    files = {
        # the variant is a media playlist on the allowed server; its segment is the attack
        "evil-httpproxy.m3u8": (
            master("evil-httpproxy-media.m3u8"),
            "The stream's playlist names a `httpproxy:` link; I only fetch http and https links."),
        # yt-dlp reads a master playlist itself: its variant becomes the stream URL, refused by
        # the resolver's scheme check before anything is played
        "evil-tcp-variant.m3u8": (
            f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=64000\ntcp://{address}/x.m3u8\n",
            "I only play http and https links; `tcp:` links are refused."),
        "evil-http.m3u8": (
            master("evil-http-media.m3u8"),
            "I won't fetch `127.0.0.2`: it points to a private or local network address."),
        "evil-concat.mp3": (
            f"ffconcat version 1.0\nfile 'tcp://{address}/x'\nfile 'httpproxy://{address}/y'\n",
            "That isn't an audio or video file I can play: it looks like a playlist or a list "
            "of other files, which I don't open."),
    }
    for name, (text, _) in files.items():
        (media_dir / name).write_text(text)
    (media_dir / "evil-httpproxy-media.m3u8").write_text(hls(f"httpproxy://{address}/x.ts"))
    (media_dir / "evil-http-media.m3u8").write_text(hls(f"http://{address}/x.ts"))
    return {name: sentence for name, (_, sentence) in files.items()}


def manifests_text(media_dir: Path, name: str) -> str:
    return (media_dir / name).read_text()


async def test_manifests_naming_a_denied_address_are_refused_and_reach_nothing(
    music_bot: MusicBot, media_server, media_dir: Path, local_folder: Path,
    manifests: dict[str, str], listener: DeniedListener,
) -> None:
    w = music_bot.world
    ears = music_bot.ears
    assert (await music_bot.ask(w.owner, f"!musicset localfolder {local_folder}")).content == "Local folder set."
    await music_bot.standin.join_voice(w.member, w.music)
    assert (await music_bot.ask(w.member, "!local long.mp3")).content.startswith("Playing **long**")
    await ears.wait_for_tone(330, packets=10)

    told: dict[str, str] = {}
    for name, sentence in manifests.items():
        title = name.rsplit(".", 1)[0]
        if not ears.sound_after(0) or (await music_bot.ask(w.member, "!queue")).text == "The queue is empty.":
            assert (await music_bot.ask(w.member, "!local long.mp3")).content.startswith("Playing")
        fetched_before = len(media_server.requests)
        reply = await music_bot.ask(w.member, f"!play {media_server.url(name)}", timeout=30)
        if reply.content.startswith("Queued"):
            assert f"**{title}**" in reply.content, reply.content
            # skip the local track: the manifest is opened now
            notice = await music_bot.ask(
                w.member, "!skip", timeout=30,
                expect=lambda m, t=title: m.content.startswith(f"I couldn't play **{t}**"))
            told[name] = notice.content
        else:  # refused while looking it up (yt-dlp read the playlist itself)
            told[name] = reply.content
        # safe() escapes the error's markdown (Discord shows the backticks as typed)
        assert sentence in told[name].replace("\\`", "`"), (name, told[name])
        assert f"/media/{name}" in media_server.requests[fetched_before:]  # the cog read it
        if "media.m3u8" in manifests_text(media_dir, name):
            # and the variant: the playlist that names the denied address
            assert f"/media/{name[:-5]}-media.m3u8" in media_server.requests[fetched_before:]
        assert listener.connections == 0, (name, listener.seen)
    print("\n" + "\n".join(f"{name}: {text}" for name, text in told.items()))

    # the music goes on: the local track plays again and the queue holds no manifest
    if (await music_bot.ask(w.member, "!queue")).text == "The queue is empty.":
        assert (await music_bot.ask(w.member, "!local long.mp3")).content.startswith("Playing")
    await ears.wait_for_tone(330, after=ears.sound_after(0)[-1].arrival, packets=10, timeout=15)
    queue = await music_bot.ask(w.member, "!queue")
    assert not any("evil" in line for line in queue_lines(queue)) and "evil" not in queue.text
    assert listener.connections == 0, listener.seen
