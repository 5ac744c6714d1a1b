"""The stand-in's world: users, guilds, channels, roles, members, voice states and messages,
and the Discord JSON payloads built from them.

Only what a Red bot reads is modelled. Payload shapes follow Discord's API v10 as discord.py 2.7
parses them (discord/types/*.py); ids are real snowflakes so `created_at` is sensible.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import discord

DISCORD_EPOCH_MS = 1420070400000

ADMINISTRATOR = discord.Permissions(administrator=True).value
# What a fresh Discord server grants @everyone (close enough for permission checks in tests).
DEFAULT_EVERYONE_PERMISSIONS = discord.Permissions(
    create_instant_invite=True,
    add_reactions=True,
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    embed_links=True,
    attach_files=True,
    read_message_history=True,
    use_external_emojis=True,
    connect=True,
    speak=True,
    stream=True,
    use_voice_activation=True,
    change_nickname=True,
    use_application_commands=True,
).value

TEXT_CHANNEL = 0
DM_CHANNEL = 1
VOICE_CHANNEL = 2


class Snowflakes:
    """Monotonic snowflake ids (timestamp << 22 | counter), safe to call from any thread."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            candidate = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
            self._last = max(self._last + 1, candidate)
            return self._last


def iso_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


@dataclass(eq=False)
class User:
    id: int
    name: str
    bot: bool = False

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.name,
            "discriminator": "0",
            "global_name": None if self.bot else self.name,
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
        }


@dataclass(eq=False)
class Role:
    id: int
    guild_id: int
    name: str
    permissions: int
    position: int
    managed: bool = False
    color: int = 0

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "color": self.color,
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": False,
            "flags": 0,
        }


@dataclass(eq=False)
class Channel:
    id: int
    name: str
    type: int
    guild_id: int | None = None
    position: int = 0
    # Discord's overwrite objects: {"id", "type" (0 role, 1 member), "allow", "deny"}
    overwrites: list[dict[str, Any]] = field(default_factory=list)
    recipients: list[User] = field(default_factory=list)  # DM channels only
    user_limit: int = 0
    last_message_id: int | None = None

    @property
    def is_voice(self) -> bool:
        return self.type == VOICE_CHANNEL

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"

    def payload(self) -> dict[str, Any]:
        if self.type == DM_CHANNEL:
            return {
                "id": str(self.id),
                "type": DM_CHANNEL,
                "last_message_id": _opt_str(self.last_message_id),
                "recipients": [u.payload() for u in self.recipients],
            }
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": list(self.overwrites),
            "nsfw": False,
            "parent_id": None,
            "flags": 0,
        }
        if self.type == VOICE_CHANNEL:
            data.update(bitrate=64000, user_limit=self.user_limit, rtc_region=None,
                        last_message_id=_opt_str(self.last_message_id), rate_limit_per_user=0)
        else:
            data.update(topic=None, last_message_id=_opt_str(self.last_message_id),
                        rate_limit_per_user=0)
        return data


@dataclass(eq=False)
class Member:
    user: User
    guild_id: int
    roles: list[Role] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = field(default_factory=iso_now)

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def name(self) -> str:
        return self.user.name

    @property
    def mention(self) -> str:
        return f"<@{self.user.id}>"

    def payload(self, *, with_user: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "nick": self.nick,
            "avatar": None,
            "roles": [str(r.id) for r in self.roles],
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self.user.payload()
        return data


@dataclass(eq=False)
class VoiceState:
    user_id: int
    guild_id: int
    channel_id: int | None
    session_id: str
    self_mute: bool = False
    self_deaf: bool = False

    def payload(self, member: Member | None, *, with_guild: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "channel_id": _opt_str(self.channel_id),
            "user_id": str(self.user_id),
            "session_id": self.session_id,
            "deaf": False,
            "mute": False,
            "self_deaf": self.self_deaf,
            "self_mute": self.self_mute,
            "self_video": False,
            "self_stream": False,
            "suppress": False,
            "request_to_speak_timestamp": None,
        }
        if with_guild:
            data["guild_id"] = str(self.guild_id)
        if member is not None:
            data["member"] = member.payload()
        return data


@dataclass(eq=False)
class Guild:
    id: int
    name: str
    owner_id: int
    roles: list[Role] = field(default_factory=list)
    channels: list[Channel] = field(default_factory=list)
    members: dict[int, Member] = field(default_factory=dict)
    voice_states: dict[int, VoiceState] = field(default_factory=dict)

    @property
    def everyone(self) -> Role:
        return self.roles[0]

    def channel(self, name_or_id: str | int) -> Channel:
        for ch in self.channels:
            if ch.id == name_or_id or ch.name == name_or_id:
                return ch
        raise KeyError(f"no channel {name_or_id!r} in guild {self.name!r}")

    def role(self, name_or_id: str | int) -> Role:
        for role in self.roles:
            if role.id == name_or_id or role.name == name_or_id:
                return role
        raise KeyError(f"no role {name_or_id!r} in guild {self.name!r}")

    def member(self, name_or_id: str | int) -> Member:
        if isinstance(name_or_id, int) and name_or_id in self.members:
            return self.members[name_or_id]
        for member in self.members.values():
            if member.name == name_or_id:
                return member
        raise KeyError(f"no member {name_or_id!r} in guild {self.name!r}")

    def permissions_of(self, member: Member) -> int:
        """Guild-level permissions (roles only, no channel overwrites); administrator = all."""
        perms = self.everyone.permissions
        for role in member.roles:
            perms |= role.permissions
        if perms & ADMINISTRATOR or member.id == self.owner_id:
            return discord.Permissions.all().value
        return perms

    def voice_members(self, channel: Channel) -> list[Member]:
        return [self.members[uid] for uid, vs in self.voice_states.items()
                if vs.channel_id == channel.id and uid in self.members]

    def payload(self) -> dict[str, Any]:
        """The guild object of GET /guilds/{id} (no members, channels or voice states)."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "region": None,
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "application_id": None,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "features": [],
            "roles": [r.payload() for r in self.roles],
            "emojis": [],
            "stickers": [],
        }

    def create_payload(self) -> dict[str, Any]:
        """The GUILD_CREATE dispatch. `member_count` equals the members sent, so discord.py
        considers the guild chunked and never sends op 8."""
        data = self.payload()
        data.update(
            joined_at=iso_now(),
            large=False,
            unavailable=False,
            member_count=len(self.members),
            members=[m.payload() for m in self.members.values()],
            channels=[c.payload() for c in self.channels],
            threads=[],
            presences=[],
            stage_instances=[],
            guild_scheduled_events=[],
            soundboard_sounds=[],
            voice_states=[
                vs.payload(None, with_guild=False)
                for vs in self.voice_states.values() if vs.channel_id is not None
            ],
        )
        return data


@dataclass(eq=False)
class Message:
    """A message as the stand-in stores it. `edits` keeps every earlier (content, embeds)."""

    id: int
    channel_id: int
    guild_id: int | None
    author: User
    content: str
    embeds: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    timestamp: str = field(default_factory=iso_now)
    edited_timestamp: str | None = None
    edits: list[dict[str, Any]] = field(default_factory=list)
    deleted: bool = False
    # emoji (unicode, or "name:id" for custom) -> user ids, in the order they reacted
    reactions: dict[str, list[int]] = field(default_factory=dict)
    reference_id: int | None = None
    flags: int = 0
    interaction_id: int | None = None  # set on answers to a component interaction
    changed_at: float = field(default_factory=time.monotonic)  # created or last edited

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & 64)

    @property
    def embed_texts(self) -> list[str]:
        """Title, description, field names/values and footer of every embed (for asserts)."""
        out = []
        for e in self.embeds:
            parts = [e.get("title") or "", e.get("description") or ""]
            for f in e.get("fields") or []:
                parts += [f.get("name") or "", f.get("value") or ""]
            parts.append((e.get("footer") or {}).get("text") or "")
            parts.append((e.get("author") or {}).get("name") or "")
            out.append("\n".join(p for p in parts if p))
        return out

    @property
    def text(self) -> str:
        """Content plus all embed text: what a user would read."""
        return "\n".join([self.content, *self.embed_texts]).strip()

    def payload(self, member: Member | None = None, bot_user_id: int | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "author": self.author.payload(),
            "content": self.content,
            "timestamp": self.timestamp,
            "edited_timestamp": self.edited_timestamp,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": list(self.attachments),
            "embeds": list(self.embeds),
            "components": list(self.components),
            "pinned": False,
            "type": 19 if self.reference_id else 0,
            "flags": self.flags,
        }
        if self.reference_id:
            data["message_reference"] = {
                "message_id": str(self.reference_id),
                "channel_id": str(self.channel_id),
                "guild_id": _opt_str(self.guild_id),
            }
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
            if member is not None:
                data["member"] = member.payload(with_user=False)
        if self.reactions:
            data["reactions"] = [
                {
                    "emoji": emoji_payload(emoji),
                    "count": len(users),
                    "count_details": {"burst": 0, "normal": len(users)},
                    "me": bot_user_id in users,
                    "me_burst": False,
                    "burst_colors": [],
                }
                for emoji, users in self.reactions.items() if users
            ]
        return data


def emoji_payload(emoji: str) -> dict[str, Any]:
    """Unicode emoji -> {"id": None, "name": ...}; custom "name:id" -> {"id", "name"}."""
    name, sep, eid = emoji.rpartition(":")
    if sep and eid.isdigit():
        return {"id": eid, "name": name.split(":")[-1] or None, "animated": False}
    return {"id": None, "name": emoji}


def _opt_str(value: int | None) -> str | None:
    return None if value is None else str(value)


_counter = itertools.count(1)


def next_serial() -> int:
    """A small increasing number (used for readable default names)."""
    return next(_counter)


@dataclass(eq=False)
class Interaction:
    """An interaction and how the bot answered it: a component click (`kind` 3: a member
    clicked a button / picked a select option), an application command (`kind` 2: a slash
    command, or a context menu with `target`) or an autocomplete request (`kind` 4).
    `responses` holds every callback as {"type", "data"}, `original` the message the answer
    created or updated, `followups` the follow-up messages, `choices` an autocomplete answer.

    Like Discord, the token lives `lifetime` seconds (15 minutes) and the first callback must
    come within `response_window` seconds (3), else 404 Unknown interaction."""

    id: int
    token: str
    member: Member
    channel_id: int
    message: Message | None = None  # the component's message
    custom_id: str = ""
    component_type: int = 2  # button
    values: list[str] = field(default_factory=list)  # select menus
    responses: list[dict[str, Any]] = field(default_factory=list)
    original: Message | None = None
    followups: list[Message] = field(default_factory=list)
    kind: int = 3
    command_name: str = ""
    target: Message | None = None  # a message context menu's message
    choices: list[dict[str, Any]] | None = None  # the autocomplete answer (type 8)
    created_at: float = field(default_factory=time.monotonic)
    lifetime: float = 15 * 60.0
    response_window: float = 3.0
    first_response_at: float | None = None  # monotonic time of the first callback
    late_callbacks: int = 0  # first callbacks refused for coming after `response_window`

    @property
    def acknowledged(self) -> bool:
        return bool(self.responses)

    @property
    def expired(self) -> bool:
        return time.monotonic() - self.created_at > self.lifetime

    @property
    def deferred(self) -> bool:
        """The first answer was "thinking..." (type 5), its message not yet written."""
        return bool(self.responses) and self.responses[0]["type"] == 5 and self.original is None

    def expire(self) -> None:
        """Make the token expire now (as 15 minutes later would)."""
        self.lifetime = -1.0
