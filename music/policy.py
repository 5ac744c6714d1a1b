"""What the bot may fetch and open: the network policy for user URLs and the containment rule
for the owner's local music folder. Every refusal carries a sentence for the user."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import re
import socket
from collections.abc import Iterable
from pathlib import Path, PurePosixPath, PureWindowsPath
from urllib.parse import urlsplit

from music.engine.timefmt import quote_user_text

from .i18n import _

log = logging.getLogger("red.music.policy")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = frozenset({"http", "https"})
MEDIA_SUFFIXES = frozenset(
    {".mp3", ".ogg", ".opus", ".webm", ".m4a", ".mp4", ".flac", ".wav", ".aac", ".mka", ".mkv"}
)

# Ranges that are never a public media host. Python's is_private/is_global flags cover most of
# these, but their exact membership has changed between patch releases, so the list is explicit.
DEFAULT_DENIED: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, includes cloud metadata
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, includes broadcast
        "::/128",
        "::1/128",
        "::/96",  # deprecated IPv4-compatible addresses
        "100::/64",  # discard-only
        "2001:db8::/32",
        "fc00::/7",  # unique local, includes fd00:ec2::254
        "fe80::/10",
        "fec0::/10",  # deprecated site-local
        "ff00::/8",
    )
)
# Cloud instance metadata: only an allow entry naming exactly this address opens it, so that an
# owner allowing a whole link-local or ULA range doesn't expose the host's credentials.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class PolicyError(Exception):
    """A refusal; `sentence` (also str(self)) is what to tell the user."""

    def __init__(self, sentence: str) -> None:
        super().__init__(sentence)
        self.sentence = sentence


def refusal_sentence(host: str, verdict: str) -> str:
    """What to tell the user when `host` is refused: verdict "owner" (an owner deny entry),
    "local" (private/local/special address) or "lookup" (the name doesn't resolve)."""
    shown_host = quote_user_text(host)
    if verdict == "lookup":
        return _("I couldn't find the site `{shown_host}`.").format(shown_host=shown_host)
    if verdict == "owner":
        return _("I won't fetch `{shown_host}`: the bot owner has blocked the address it points to.").format(shown_host=shown_host)
    return _("I won't fetch `{shown_host}`: it points to a private or local network address.").format(shown_host=shown_host)


def validate_cidr(text: str) -> str:
    """Normalise an address or CIDR typed by the owner (`10.0.0.0/8`, `::1`); ValueError else."""
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise ValueError(
            _("`{text}` isn't an IP address or network: use a form like "
            "192.168.1.0/24, 10.0.0.5 or 2001:db8::/32.").format(text=quote_user_text(text))
        ) from None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo client, NAT64)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


class NetworkPolicy:
    """Which addresses user links may point to.

    Order of rules: an owner deny entry always wins; then an owner allow entry; then the
    default deny list (local, private, reserved, metadata); everything else is allowed."""

    def __init__(self, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> None:
        self.allow: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in allow
        )
        self.deny: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in deny
        )

    @staticmethod
    def _in(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
        return any(address.version == n.version and address in n for n in networks)

    def _verdict(self, address: IPAddress) -> str | None:
        """None if allowed, else "owner" or "local" (why it's refused)."""
        if address.version == 6 and address.scope_id:  # type: ignore[union-attr]
            address = ipaddress.IPv6Address(address.compressed.split("%")[0])
        embedded = _embedded_ipv4(address)
        candidates = [address] if embedded is None else [address, embedded]
        if any(self._in(a, self.deny) for a in candidates):
            return "owner"
        if any(a in METADATA_ADDRESSES for a in candidates):
            exact = any(
                n.num_addresses == 1 and self._in(a, [n]) for a in candidates for n in self.allow
            )
            return None if exact else "local"
        if any(self._in(a, self.allow) for a in candidates):
            return None
        # An embedded IPv4 address decides for the IPv6 wrapper (::ffff:127.0.0.1 is loopback).
        subject = embedded if embedded is not None else address
        if self._in(subject, DEFAULT_DENIED):
            return "local"
        if subject.is_multicast or subject.is_unspecified or subject.is_reserved:
            return "local"
        if subject.is_loopback or subject.is_link_local or subject.is_private:
            return "local"
        return None

    def verdict(self, address: IPAddress) -> str | None:
        """None if a connection to `address` is allowed, else why not: "owner" (an owner deny
        entry) or "local" (a private, local or special address). Used by the network guard on
        the address it is about to connect to."""
        return self._verdict(address)

    def is_address_allowed(self, ip: str | IPAddress) -> bool:
        """Whether a link may point at this address."""
        try:
            address = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
        except ValueError:
            return False
        return self._verdict(address) is None

    def check_url(self, url: str) -> None:
        """Refuse (PolicyError) anything but an http(s) URL whose host resolves only to
        allowed addresses. Blocking (DNS): use acheck_url from async code."""
        shown = quote_user_text(url)
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError:
            raise PolicyError(_("I couldn't read `{shown}` as a link.").format(shown=shown)) from None
        scheme = parts.scheme.lower()
        if scheme not in ALLOWED_SCHEMES:
            what = (
                _("`{scheme}:` links").format(scheme=quote_user_text(scheme, 20)) if scheme else _("links without http(s)://")
            )
            raise PolicyError(_("I only play http and https links; {what} are refused.").format(what=what))
        host = parts.hostname
        if not host:
            raise PolicyError(_("The link `{shown}` has no host name.").format(shown=shown))
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            addresses = self._lookup(host, port or (443 if scheme == "https" else 80))
        for address in addresses:
            verdict = self._verdict(address)
            if verdict is not None:
                raise PolicyError(refusal_sentence(host, verdict))

    @staticmethod
    def _lookup(host: str, port: int) -> list[IPAddress]:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError, OSError):
            raise PolicyError(refusal_sentence(host, "lookup")) from None
        addresses: list[IPAddress] = []
        for info in infos:
            raw = str(info[4][0]).split("%")[0]
            try:
                addresses.append(ipaddress.ip_address(raw))
            except ValueError:
                continue
        if not addresses:
            raise PolicyError(refusal_sentence(host, "lookup"))
        return addresses

    async def acheck_url(self, url: str) -> None:
        """check_url in a thread, so DNS never blocks the event loop."""
        await asyncio.to_thread(self.check_url, url)

    def __repr__(self) -> str:
        return f"NetworkPolicy(allow={[str(n) for n in self.allow]}, deny={[str(n) for n in self.deny]})"


# The yt-dlp extractor families allowed unless the owner changes the list: the common music
# sites (YouTube incl. YouTube Music, SoundCloud, Bandcamp, Audiomack, Mixcloud) and the video
# sites people share music from (Vimeo, Twitch VODs/streams). Each is a well-maintained
# extractor for a site that serves media to anonymous users. "generic" here means direct media
# only (a link whose response is an audio/video file): yt-dlp's generic extractor also digs
# embeds out of any web page, which is a much larger surface ("generic:all" opens it).
DEFAULT_EXTRACTORS: tuple[str, ...] = (
    "youtube",
    "soundcloud",
    "bandcamp",
    "audiomack",
    "mixcloud",
    "vimeo",
    "twitch",
    "generic",
)
GENERIC_ALL = "generic:all"
_EXTRACTOR_NAME = re.compile(r"^[a-z0-9_.-]{1,64}(:all)?$")


def normalise_extractor(text: str) -> str:
    """An extractor family as the owner typed it (`SoundCloud`, `youtube:tab`) -> `soundcloud`,
    `youtube`; `generic:all` stays itself. ValueError with a sentence for anything else."""
    name = text.strip().lower()
    if name != GENERIC_ALL:
        name = name.split(":", 1)[0]
    if not _EXTRACTOR_NAME.match(name):
        raise ValueError(
            _("`{text}` isn't an extractor name: use a yt-dlp extractor family "
            "such as youtube, soundcloud or bandcamp, or generic:all.").format(text=quote_user_text(text))
        )
    return name


class ExtractorPolicy:
    """Which yt-dlp extractor families may handle a user's link (`None` = the defaults).

    "generic" allows yt-dlp's generic extractor for direct media only; "generic:all" allows it
    on any web page (embeds found in the page's HTML)."""

    def __init__(self, allowed: Iterable[str] | None = None) -> None:
        names = DEFAULT_EXTRACTORS if allowed is None else allowed
        self.allowed: frozenset[str] = frozenset(normalise_extractor(n) for n in names)

    @property
    def generic_pages(self) -> bool:
        """Whether the generic extractor may read web pages, not only direct media."""
        return GENERIC_ALL in self.allowed

    def allows(self, family: str) -> bool:
        family = family.lower()
        if family == "generic":
            return "generic" in self.allowed or self.generic_pages
        return family in self.allowed

    def check(self, family: str) -> None:
        """PolicyError naming the site and the owner's command when `family` isn't allowed."""
        if self.allows(family):
            return
        shown = quote_user_text(family, 40)
        if family.lower() == "generic":
            raise PolicyError(
                _("I can't play that link: it isn't from a site I support, and the bot owner has "
                "turned off links to other sites (the owner can allow direct media links with "
                "`musicset extractors allow generic`).")
            )
        raise PolicyError(
            _("I can't play links from `{shown}`: the bot owner hasn't allowed that site (the "
            "owner can allow it with `musicset extractors allow {shown}`).").format(shown=shown)
        )

    def check_generic_result(self, info: dict, url: str) -> None:
        """After the generic extractor ran on `url`: unless web pages are allowed, only direct
        media may be played - a media file (yt-dlp marks it `direct`) or a streaming manifest
        (HLS/DASH) served at `url` itself - not something found inside a page."""
        if self.generic_pages or info.get("direct"):
            return
        formats = info.get("formats") or []
        if (
            info.get("_type", "video") == "video"
            and formats
            and all(isinstance(f, dict) and f.get("manifest_url") == url for f in formats)
        ):
            return
        raise PolicyError(
            _("I can't play that link: it's a web page, not a direct link to an audio or video "
            "file, and the site has no dedicated support (the bot owner can allow web pages "
            "with `musicset extractors allow generic:all`).")
        )

    def __repr__(self) -> str:
        return f"ExtractorPolicy({sorted(self.allowed)})"


def resolve_local_path(folder: Path, user_text: str) -> Path:
    """The real path of a media file named (relative) by a user inside `folder`.

    Containment is checked on fully resolved paths (symlinks followed) with is_relative_to,
    so neither `..`, symlinks pointing out, nor sibling folders sharing a name prefix get out.
    Glob characters are ordinary characters here."""
    shown = quote_user_text(user_text)
    text = user_text.strip()
    if not text:
        raise PolicyError(_("Name a file in the local folder."))
    if "\x00" in text:
        raise PolicyError(_("`{shown}` isn't a valid file name.").format(shown=shown))
    if (
        PurePosixPath(text).is_absolute()
        or PureWindowsPath(text).is_absolute()
        or PureWindowsPath(text).drive
        or text.startswith(("/", "\\"))
    ):
        raise PolicyError(_("`{shown}` is an absolute path: name a file inside the local folder.").format(shown=shown))
    try:
        base = Path(folder).resolve(strict=True)
    except (OSError, RuntimeError):
        raise PolicyError(
            _("The local music folder doesn't exist; the bot owner must set it.")
        ) from None
    try:
        real = (base / text).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, symlink loop, name too long...
        raise PolicyError(_("I can't find `{shown}` in the local folder.").format(shown=shown)) from None
    if not real.is_relative_to(base):
        raise PolicyError(_("`{shown}` is outside the local folder.").format(shown=shown))
    if not real.is_file():
        raise PolicyError(_("`{shown}` isn't a file.").format(shown=shown))
    if real.suffix.lower() not in MEDIA_SUFFIXES:
        kinds = ", ".join(sorted(s.lstrip(".") for s in MEDIA_SUFFIXES))
        raise PolicyError(_("`{shown}` isn't an audio or video file I play ({kinds}).").format(shown=shown, kinds=kinds))
    if not os.access(real, os.R_OK):
        raise PolicyError(_("I'm not allowed to read `{shown}`.").format(shown=shown))
    return real
