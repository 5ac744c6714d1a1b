"""Network policy for user links and containment in the local music folder."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from music.policy import NetworkPolicy, PolicyError, resolve_local_path, validate_cidr

DENIED_BY_DEFAULT = [
    "127.0.0.1",
    "127.1.2.3",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "0.1.2.3",
    "224.0.0.1",
    "239.255.255.250",
    "255.255.255.255",
    "240.0.0.1",
    "::1",
    "::",
    "fc00::1",
    "fd12:3456::1",
    "fd00:ec2::254",
    "fe80::1",
    "fe80::1%1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "2002:7f00:0001::",  # 6to4 wrapping 127.0.0.1
    "64:ff9b::a00:1",  # NAT64 wrapping 10.0.0.1
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("ip", DENIED_BY_DEFAULT)
def test_default_policy_denies_local_and_special_addresses(ip: str) -> None:
    assert not NetworkPolicy().is_address_allowed(ip)


@pytest.mark.parametrize("ip", PUBLIC)
def test_default_policy_allows_public_addresses(ip: str) -> None:
    assert NetworkPolicy().is_address_allowed(ip)


def test_owner_allow_overrides_default_deny() -> None:
    policy = NetworkPolicy(allow=["192.168.1.0/24"])
    assert policy.is_address_allowed("192.168.1.20")
    assert policy.is_address_allowed("::ffff:192.168.1.20")
    assert not policy.is_address_allowed("192.168.2.20")


def test_owner_deny_blocks_public_addresses_and_beats_allow() -> None:
    policy = NetworkPolicy(allow=["203.0.113.0/24", "8.8.0.0/16"], deny=["8.8.8.0/24"])
    assert not policy.is_address_allowed("8.8.8.8")
    assert not policy.is_address_allowed("::ffff:8.8.8.8")
    assert policy.is_address_allowed("8.8.4.4")


def test_metadata_needs_an_exact_allow_entry() -> None:
    assert not NetworkPolicy(allow=["169.254.0.0/16"]).is_address_allowed("169.254.169.254")
    assert NetworkPolicy(allow=["169.254.0.0/16"]).is_address_allowed("169.254.1.1")
    assert NetworkPolicy(allow=["169.254.169.254/32"]).is_address_allowed("169.254.169.254")


def test_garbage_address_is_not_allowed() -> None:
    assert not NetworkPolicy().is_address_allowed("not-an-ip")


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "data:audio/mp3;base64,AAAA",
        "concat:a.mp3|b.mp3",
        "subfile,,start,0,end,0,,:/etc/passwd",
        "ftp://example.com/a.mp3",
        "javascript:alert(1)",
        "example.com/a.mp3",
    ],
)
def test_check_url_refuses_non_http_schemes(url: str) -> None:
    with pytest.raises(PolicyError, match="only play http and https links"):
        NetworkPolicy().check_url(url)


def test_check_url_needs_a_host() -> None:
    with pytest.raises(PolicyError, match="has no host"):
        NetworkPolicy().check_url("http:///path")


def test_check_url_refuses_bad_port() -> None:
    with pytest.raises(PolicyError, match="couldn't read"):
        NetworkPolicy().check_url("http://example.com:99999/")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/a.webm",
        "https://[::1]/x",
        "http://[::ffff:7f00:1]/",
        "http://169.254.169.254/latest/meta-data/",
        "HTTP://10.0.0.1/",
    ],
)
def test_check_url_refuses_ip_literals_in_denied_ranges(url: str) -> None:
    with pytest.raises(PolicyError, match="private or local network address"):
        NetworkPolicy().check_url(url)


def fake_dns(monkeypatch: pytest.MonkeyPatch, table: dict[str, list[str]]) -> list[str]:
    """Answer getaddrinfo from `table`; returns the list of looked-up hosts."""
    looked_up: list[str] = []

    def getaddrinfo(host: str, port: object, *args: object, **kwargs: object) -> list[tuple]:
        looked_up.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, 80))
            for ip in table[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return looked_up


def test_check_url_checks_every_resolved_address(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(
        monkeypatch,
        {
            "mixed.example": ["93.184.216.34", "10.0.0.5"],
            "ok.example": ["93.184.216.34", "2606:4700::1"],
        },
    )
    policy = NetworkPolicy()
    with pytest.raises(PolicyError) as info:
        policy.check_url("https://mixed.example/song.mp3")
    assert info.value.sentence == (
        "I won't fetch `mixed.example`: it points to a private or local network address."
    )
    policy.check_url("https://ok.example/song.mp3")


def test_check_url_reports_owner_blocks_and_unknown_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"blocked.example": ["93.184.216.34"]})
    with pytest.raises(PolicyError, match="bot owner has blocked"):
        NetworkPolicy(deny=["93.184.216.0/24"]).check_url("http://blocked.example/")
    with pytest.raises(PolicyError, match="couldn't find the site `nowhere.example`"):
        NetworkPolicy().check_url("http://nowhere.example/")


def test_check_url_sentence_limits_hostile_host_text(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {})
    with pytest.raises(PolicyError) as info:
        NetworkPolicy().check_url("http://" + "a" * 200 + ".example/")
    assert len(info.value.sentence) < 120


async def test_acheck_url_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    threads: list[str] = []
    real = NetworkPolicy.check_url

    def spy(self: NetworkPolicy, url: str) -> None:
        threads.append(threading.current_thread().name)
        real(self, url)

    monkeypatch.setattr(NetworkPolicy, "check_url", spy)
    with pytest.raises(PolicyError):
        await NetworkPolicy().acheck_url("http://127.0.0.1/")
    assert threads and threads[0] != threading.main_thread().name


def test_validate_cidr_normalises_and_rejects_with_sentence() -> None:
    assert validate_cidr(" 10.1.2.3/8 ") == "10.0.0.0/8"
    assert validate_cidr("::1") == "::1/128"
    assert validate_cidr("192.168.1.5") == "192.168.1.5/32"
    with pytest.raises(ValueError, match="isn't an IP address or network"):
        validate_cidr("10.0.0.0/33")
    with pytest.raises(ValueError, match="`evil'`"):
        validate_cidr("evil`")


# ---- local folder --------------------------------------------------------------------


@pytest.fixture
def music_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "music"
    (folder / "albums" / "one").mkdir(parents=True)
    (folder / "song.mp3").write_bytes(b"x")
    (folder / "albums" / "one" / "01 track.ogg").write_bytes(b"x")
    (folder / "[weird]*?.opus").write_bytes(b"x")
    (folder / "notes.txt").write_text("x")
    # A sibling whose name starts with the folder's name: a string-prefix check would let it in.
    evil = tmp_path / "music-evil"
    evil.mkdir()
    (evil / "secret.mp3").write_bytes(b"x")
    (tmp_path / "outside.mp3").write_bytes(b"x")
    return folder


def test_resolves_files_inside_the_folder(music_folder: Path) -> None:
    assert resolve_local_path(music_folder, "song.mp3") == (music_folder / "song.mp3").resolve()
    assert resolve_local_path(music_folder, "albums/one/01 track.ogg").name == "01 track.ogg"
    assert resolve_local_path(music_folder, "albums/../song.mp3").name == "song.mp3"


def test_glob_characters_are_literal(music_folder: Path) -> None:
    assert resolve_local_path(music_folder, "[weird]*?.opus").name == "[weird]*?.opus"
    with pytest.raises(PolicyError, match="can't find"):
        resolve_local_path(music_folder, "*.mp3")


@pytest.mark.parametrize(
    "text",
    [
        "../outside.mp3",
        "../music-evil/secret.mp3",
        "albums/../../outside.mp3",
        "../../../../etc/passwd",
    ],
)
def test_traversal_out_of_the_folder_is_refused(music_folder: Path, text: str) -> None:
    with pytest.raises(PolicyError, match="outside the local folder|can't find"):
        resolve_local_path(music_folder, text)


def test_sibling_with_same_prefix_is_outside(music_folder: Path) -> None:
    with pytest.raises(PolicyError, match="outside the local folder"):
        resolve_local_path(music_folder, "../music-evil/secret.mp3")


@pytest.mark.parametrize(
    "text", ["/etc/passwd", str(Path("/tmp/x.mp3")), "\\\\server\\share\\a.mp3", "C:\\music\\a.mp3"]
)
def test_absolute_paths_are_refused(music_folder: Path, text: str) -> None:
    with pytest.raises(PolicyError, match="absolute path"):
        resolve_local_path(music_folder, text)


def test_absolute_path_inside_the_folder_is_still_refused(music_folder: Path) -> None:
    with pytest.raises(PolicyError, match="absolute path"):
        resolve_local_path(music_folder, str(music_folder / "song.mp3"))


def test_symlink_leaving_the_folder_is_refused(music_folder: Path, tmp_path: Path) -> None:
    (music_folder / "link.mp3").symlink_to(tmp_path / "outside.mp3")
    (music_folder / "linkdir").symlink_to(tmp_path / "music-evil", target_is_directory=True)
    with pytest.raises(PolicyError, match="outside the local folder"):
        resolve_local_path(music_folder, "link.mp3")
    with pytest.raises(PolicyError, match="outside the local folder"):
        resolve_local_path(music_folder, "linkdir/secret.mp3")


def test_symlink_staying_inside_is_allowed(music_folder: Path) -> None:
    (music_folder / "alias.mp3").symlink_to(music_folder / "song.mp3")
    assert resolve_local_path(music_folder, "alias.mp3") == (music_folder / "song.mp3").resolve()


def test_folder_reached_through_a_symlink_works(music_folder: Path, tmp_path: Path) -> None:
    link = tmp_path / "music-link"
    link.symlink_to(music_folder, target_is_directory=True)
    assert resolve_local_path(link, "song.mp3") == (music_folder / "song.mp3").resolve()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Name a file"),
        ("song\x00.mp3", "isn't a valid file name"),
        ("missing.mp3", "can't find"),
        ("albums", "isn't a file"),
        ("notes.txt", "isn't an audio or video file"),
    ],
)
def test_refusals_have_sentences(music_folder: Path, text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        resolve_local_path(music_folder, text)


def test_missing_folder_is_reported(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="folder doesn't exist"):
        resolve_local_path(tmp_path / "nope", "song.mp3")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_unreadable_file_is_refused(music_folder: Path) -> None:
    path = music_folder / "song.mp3"
    path.chmod(0)
    try:
        with pytest.raises(PolicyError, match="not allowed to read"):
            resolve_local_path(music_folder, "song.mp3")
    finally:
        path.chmod(0o644)
