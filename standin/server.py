"""`Standin`: a local Discord that a real, unmodified Red bot connects to.

One aiohttp server on 127.0.0.1 serves the REST API (under /api/v10) and the main gateway
(/gateway, plain ws://); the voice side (`standin.voice.VoiceServer`) runs its own TLS websocket
and UDP socket. Tests drive the world through the methods below (members speak, join voice,
react) and read what the bot did (every message with its edits and reactions, every request).

Everything runs on the asyncio loop that called `start()`; no method blocks it.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from .gateway import CLOSE_UNKNOWN_ERROR, Gateway, GatewaySession
from .interactions import AppCommands, InteractionsMixin
from .rest import API_PREFIX, RequestRecord, RestApi, RestFault
from .state import (
    ADMINISTRATOR,
    DEFAULT_EVERYONE_PERMISSIONS,
    DM_CHANNEL,
    TEXT_CHANNEL,
    VOICE_CHANNEL,
    Channel,
    Guild,
    Interaction,
    Member,
    Message,
    Role,
    Snowflakes,
    User,
    VoiceState,
    emoji_payload,
    iso_now,
)

log = logging.getLogger("standin")

T = TypeVar("T")


@dataclass
class DefaultWorld:
    """The predefined test world of `Standin.default_world()`."""

    guild: Guild
    general: Channel  # text
    music: Channel  # voice
    lounge: Channel  # a second voice channel, for moves
    admin_role: Role  # administrator permission
    dj_role: Role  # no extra permissions; cogs give it meaning by name
    owner: Member  # the application owner: Red's bot owner
    admin: Member
    dj: Member
    member: Member
    otherbot: Member
    bot: Member  # the Red bot itself


class Standin(InteractionsMixin):
    """A Discord stand-in. `await start()`, point Red at `api_url` (see standin.run_red),
    `await stop()`.

    `voice=True` creates and starts a `standin.voice.VoiceServer` as `self.voice`;
    `voice_factory` replaces it (tests of this module pass a fake)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        voice: bool = True,
        voice_factory: Callable[[str], Any] | None = None,
        bot_name: str = "RedStandin",
        owner_name: str = "owner",
        heartbeat_interval_ms: int = 41250,
    ) -> None:
        self.host = host
        self.port = 0
        self.ids = Snowflakes()
        self.bot_user = User(self.ids.next(), bot_name, bot=True)
        self.application_id = self.bot_user.id
        self.owner = User(self.ids.next(), owner_name)
        # Shaped like a real token (base64 id . timestamp . hmac) so Red's length checks pass.
        self.token = ".".join([
            base64.urlsafe_b64encode(str(self.bot_user.id).encode()).decode().rstrip("="),
            secrets.token_urlsafe(5),
            secrets.token_urlsafe(28),
        ])
        self.users: dict[int, User] = {u.id: u for u in (self.bot_user, self.owner)}
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, Message] = {}
        self.attachment_data: dict[int, bytes] = {}
        self.interactions: dict[int, Interaction] = {}
        self.app_commands = AppCommands(self)  # what the bot synced (see standin.interactions)
        self.typing_log: list[tuple[float, int]] = []  # (monotonic time, channel id)
        self.gateway = Gateway(self, heartbeat_interval_ms=heartbeat_interval_ms)
        self.gateway.on_voice_state = self._on_bot_voice_state
        self.rest = RestApi(self)
        self._voice_wanted = voice
        self._voice_factory = voice_factory
        self.voice: Any = None
        self._runner: web.AppRunner | None = None
        self._waiters: set[asyncio.Future[None]] = set()
        self._world: DefaultWorld | None = None
        # A person cannot click or react within milliseconds of a message appearing, and bots
        # rely on that: discord.py registers a View (Red a reaction predicate) only after the
        # send's REST answer arrives. click()/react() on a bot message wait until it is at
        # least this old (seconds since created or last edited).
        self.human_delay = 0.3

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> Standin:
        app = web.Application(middlewares=[self.rest.middleware], client_max_size=64 * 1024 * 1024)
        app.add_routes(self.rest.routes())
        app.router.add_get("/gateway", self.gateway.handle)
        # shutdown_timeout: don't wait a minute for a bot's open websocket at stop()
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        if self._voice_factory is not None or self._voice_wanted:
            factory = self._voice_factory
            if factory is None:
                from .voice import VoiceServer

                factory = VoiceServer
            self.voice = factory(self.host)
            await self.voice.start()
        log.info("stand-in on %s (gateway %s)", self.api_url, self.gateway_url)
        return self

    async def stop(self) -> None:
        await self.gateway.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.voice is not None:
            await self.voice.stop()
        for fut in self._waiters:
            if not fut.done():
                fut.cancel()

    async def __aenter__(self) -> Standin:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """What discord.http.Route.BASE must be (env STANDIN_API for standin.run_red)."""
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.host}:{self.port}/gateway"

    @property
    def ca_file(self) -> str | None:
        """The PEM the bot must trust for the voice websocket (env STANDIN_CA)."""
        return getattr(self.voice, "ca_file", None)

    def red_env(self) -> dict[str, str]:
        """Environment variables that make `python -m standin.run_red` use this stand-in."""
        env = {"STANDIN_API": self.api_url}
        if self.ca_file:
            env["STANDIN_CA"] = self.ca_file
        return env

    # -- building the world -----------------------------------------------------------------

    def add_user(self, name: str, *, bot: bool = False) -> User:
        user = User(self.ids.next(), name, bot=bot)
        self.users[user.id] = user
        return user

    def add_guild(self, name: str, *, bot_permissions: int = ADMINISTRATOR) -> Guild:
        """A guild owned by the application owner, with the bot in it (its managed role gets
        `bot_permissions`)."""
        guild = Guild(id=self.ids.next(), name=name, owner_id=self.owner.id)
        guild.roles.append(Role(guild.id, guild.id, "@everyone", DEFAULT_EVERYONE_PERMISSIONS, 0))
        bot_role = Role(self.ids.next(), guild.id, self.bot_user.name, bot_permissions, 1, managed=True)
        guild.roles.append(bot_role)
        guild.members[self.owner.id] = Member(self.owner, guild.id)
        guild.members[self.bot_user.id] = Member(self.bot_user, guild.id, roles=[bot_role])
        self.guilds[guild.id] = guild
        self._dispatch("GUILD_CREATE", guild.create_payload())
        return guild

    def bot_role(self, guild: Guild) -> Role:
        return next(r for r in guild.roles if r.managed and r.name == self.bot_user.name)

    def add_text_channel(self, guild: Guild, name: str) -> Channel:
        return self._add_channel(guild, name, TEXT_CHANNEL)

    def add_voice_channel(self, guild: Guild, name: str, *, user_limit: int = 0) -> Channel:
        return self._add_channel(guild, name, VOICE_CHANNEL, user_limit=user_limit)

    def _add_channel(self, guild: Guild, name: str, type_: int, **extra: Any) -> Channel:
        channel = Channel(self.ids.next(), name, type_, guild_id=guild.id,
                          position=sum(1 for c in guild.channels if c.type == type_), **extra)
        guild.channels.append(channel)
        self.channels[channel.id] = channel
        self._dispatch("CHANNEL_CREATE", channel.payload())
        return channel

    def add_role(self, guild: Guild, name: str, permissions: int = 0) -> Role:
        role = Role(self.ids.next(), guild.id, name, permissions, len(guild.roles))
        guild.roles.append(role)
        self._dispatch("GUILD_ROLE_CREATE", {"guild_id": str(guild.id), "role": role.payload()})
        return role

    def set_role_permissions(self, role: Role, permissions: int) -> None:
        role.permissions = permissions
        self._dispatch("GUILD_ROLE_UPDATE", {"guild_id": str(role.guild_id), "role": role.payload()})

    def add_member(self, guild: Guild, user: str | User, *, roles: Iterable[Role] = (),
                   bot: bool = False) -> Member:
        """Add a new user by name (or an existing `User`) to the guild."""
        if isinstance(user, str):
            user = self.add_user(user, bot=bot)
        member = Member(user, guild.id, roles=list(roles))
        guild.members[user.id] = member
        self._dispatch("GUILD_MEMBER_ADD", {**member.payload(), "guild_id": str(guild.id)})
        return member

    def set_member_roles(self, member: Member, roles: Iterable[Role]) -> None:
        member.roles = list(roles)
        self._dispatch("GUILD_MEMBER_UPDATE", {**member.payload(), "guild_id": str(member.guild_id)})

    def remove_member(self, member: Member) -> None:
        guild = self.guilds[member.guild_id]
        if member.id in guild.voice_states:
            self._set_voice_state(member, None)
        guild.members.pop(member.id, None)
        self._dispatch("GUILD_MEMBER_REMOVE", {"guild_id": str(guild.id), "user": member.user.payload()})

    def set_channel_overwrite(self, channel: Channel, target: Role | Member, *,
                              allow: int = 0, deny: int = 0) -> None:
        """Per-channel permission overwrite for a role or a member (allow/deny bit sets)."""
        target_type = 0 if isinstance(target, Role) else 1
        channel.overwrites = [o for o in channel.overwrites if o["id"] != str(target.id)]
        channel.overwrites.append({"id": str(target.id), "type": target_type,
                                   "allow": str(allow), "deny": str(deny)})
        self._dispatch("CHANNEL_UPDATE", channel.payload())

    def default_world(self) -> DefaultWorld:
        """Create (once) the standard test guild: #general, voice "Music" and "Lounge",
        members owner (application owner), admin (Admin role: administrator), dj (DJ role),
        member (no role), otherbot (a bot)."""
        if self._world is not None:
            return self._world
        guild = self.add_guild("Stand-in Server")
        general = self.add_text_channel(guild, "general")
        music = self.add_voice_channel(guild, "Music")
        lounge = self.add_voice_channel(guild, "Lounge")
        admin_role = self.add_role(guild, "Admin", ADMINISTRATOR)
        dj_role = self.add_role(guild, "DJ", 0)
        self._world = DefaultWorld(
            guild=guild, general=general, music=music, lounge=lounge,
            admin_role=admin_role, dj_role=dj_role,
            owner=guild.members[self.owner.id],
            admin=self.add_member(guild, "admin", roles=[admin_role]),
            dj=self.add_member(guild, "dj", roles=[dj_role]),
            member=self.add_member(guild, "member"),
            otherbot=self.add_member(guild, "otherbot", bot=True),
            bot=guild.members[self.bot_user.id],
        )
        return self._world

    # -- members act ------------------------------------------------------------------------

    async def say(self, member: Member | User, channel: Channel, content: str, *,
                  reply_to: Message | None = None,
                  files: list[tuple[str, bytes, str]] | None = None) -> Message:
        """`member` posts `content` in `channel` (MESSAGE_CREATE to the bot), with `files`
        (name, data, content type) attached: the bot downloads them from /attachments/."""
        user = member.user if isinstance(member, Member) else member
        message = Message(
            id=self.ids.next(), channel_id=channel.id, guild_id=channel.guild_id, author=user,
            content=content, reference_id=reply_to.id if reply_to else None,
            attachments=self._attachments(channel, files or []),
        )
        self._store_message(channel, message)
        self._dispatch("MESSAGE_CREATE", self._message_payload(message))
        await asyncio.sleep(0)
        return message

    async def react(self, member: Member, message: Message, emoji: str) -> None:
        """`member` adds `emoji` (unicode, or "name:id") to `message` (MESSAGE_REACTION_ADD)."""
        await self._human_pause(message)
        self._add_reaction(message, member.id, emoji)
        await asyncio.sleep(0)

    async def _human_pause(self, message: Message) -> None:
        wait = message.changed_at + self.human_delay - time.monotonic()
        if wait > 0 and message.author.id == self.bot_user.id:
            await asyncio.sleep(wait)

    async def unreact(self, member: Member, message: Message, emoji: str) -> None:
        self._remove_reaction(message, member.id, emoji)
        await asyncio.sleep(0)

    async def click(self, member: Member, message: Message, custom_id: str | None = None, *,
                    label: str | None = None, emoji: str | None = None,
                    values: list[str] | None = None) -> Interaction:
        """`member` clicks a component of the bot's `message` (INTERACTION_CREATE, type 3).
        Pick it by `custom_id`, or by its button `label` or `emoji` name; `values` for a select
        menu. Returns the Interaction; see `wait_for_interaction_response`."""
        component = _find_component(message.components, custom_id, label, emoji)
        await self._human_pause(message)
        data: dict[str, Any] = {"custom_id": component["custom_id"],
                                "component_type": int(component.get("type", 2))}
        if values is not None:
            data["values"] = list(values)
        return await self._open_interaction(
            member, self.channels[message.channel_id], 3, data, message=message,
            custom_id=data["custom_id"], component_type=data["component_type"], values=list(values or []),
        )

    async def _open_interaction(self, member: Member, channel: Channel, kind: int, data: dict[str, Any], *,
                                message: Message | None = None, **fields: Any) -> Interaction:
        """Record an Interaction of `kind` (with the Interaction `fields` its kind has) and send
        INTERACTION_CREATE for it, as Discord shapes it for a member in a guild channel."""
        interaction = Interaction(
            id=self.ids.next(), token="aW50ZXJhY3Rpb24" + secrets.token_urlsafe(48), member=member,
            channel_id=channel.id, message=message, kind=kind,
            lifetime=self.interaction_lifetime, response_window=self.interaction_response_window, **fields,
        )
        self.interactions[interaction.id] = interaction
        guild = self.guilds[member.guild_id]
        payload: dict[str, Any] = {
            "id": str(interaction.id),
            "application_id": str(self.application_id),
            "type": kind,
            "data": data,
            "guild_id": str(guild.id),
            "channel_id": str(channel.id),
            "channel": channel.payload(),
            "member": {**member.payload(), "permissions": str(guild.permissions_of(member))},
            "token": interaction.token,
            "version": 1,
            "app_permissions": str(guild.permissions_of(guild.members[self.bot_user.id])),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "attachment_size_limit": 26214400,
        }
        if message is not None:
            payload["message"] = self._message_payload(message)
        self._dispatch("INTERACTION_CREATE", payload)
        await asyncio.sleep(0)
        return interaction

    async def wait_for_interaction_response(self, interaction: Interaction, *,
                                            timeout: float = 10.0) -> dict[str, Any]:
        """The bot's first callback to `interaction`: {"type", "data"}."""
        return await self.wait_until(lambda: interaction.responses[0] if interaction.responses else None,
                                     timeout, f"a response to interaction {interaction.custom_id!r}")

    async def join_voice(self, member: Member, channel: Channel, *, self_deaf: bool = False,
                         self_mute: bool = False) -> None:
        """`member` joins (or moves to) voice `channel` (VOICE_STATE_UPDATE to the bot)."""
        if member.id == self.bot_user.id:
            raise ValueError("the bot joins voice itself (op 4); use a member")
        self._set_voice_state(member, channel, self_deaf=self_deaf, self_mute=self_mute)
        # a member joining the bot's call changes its DAVE group (a new epoch), as on Discord
        member_joined = getattr(self.voice, "dave_member_joined", None)
        if member_joined is not None:
            await member_joined(member.guild_id, member.id, channel.id)
        await asyncio.sleep(0)

    async def leave_voice(self, member: Member) -> None:
        """`member` leaves voice; used with the bot's member it disconnects the bot, like
        a moderator's "Disconnect" (the bot's voice session is closed)."""
        self._set_voice_state(member, None)
        await asyncio.sleep(0)

    def voice_channel_of(self, member: Member) -> Channel | None:
        state = self.guilds[member.guild_id].voice_states.get(member.id)
        return None if state is None or state.channel_id is None else self.channels[state.channel_id]

    def bot_voice_channel(self, guild: Guild) -> Channel | None:
        return self.voice_channel_of(guild.members[self.bot_user.id])

    # -- what the bot did -------------------------------------------------------------------

    def bot_messages(self, channel: Channel | None = None) -> list[Message]:
        """Every message the bot created (deleted ones too, `deleted` set), oldest first."""
        return sorted(
            (m for m in self.messages.values() if m.author.id == self.bot_user.id
             and (channel is None or m.channel_id == channel.id)),
            key=lambda m: m.id,
        )

    def channel_messages(self, channel: Channel) -> list[Message]:
        return sorted((m for m in self.messages.values() if m.channel_id == channel.id),
                      key=lambda m: m.id)

    @property
    def requests(self) -> list[RequestRecord]:
        return self.rest.requests

    @property
    def unknown_routes(self) -> list[str]:
        """"METHOD /path" of every request no route answered (404 with Discord's shape)."""
        return self.rest.unknown_routes

    def marker(self) -> int:
        """A snowflake newer than every existing message: pass as `after=` to wait for
        messages that come later."""
        return self.ids.next()

    async def wait_until(self, check: Callable[[], T], timeout: float = 10.0,
                         what: str = "condition") -> T:
        """Re-evaluate `check` after every change in the stand-in until it returns a truthy
        value, which is returned; TimeoutError(what) after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = check()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"stand-in: timed out after {timeout}s waiting for {what}")
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.add(fut)
            try:
                await asyncio.wait_for(fut, remaining)
            except TimeoutError:
                pass
            finally:
                self._waiters.discard(fut)

    async def wait_for_message(
        self,
        channel: Channel | None = None,
        predicate: Callable[[Message], bool] | None = None,
        *,
        after: int | Message | None = None,
        timeout: float = 10.0,
        author: User | Member | None = None,
    ) -> Message:
        """The first message by the bot (or `author`) in `channel` (any channel if None) newer
        than `after` (a message or snowflake; default: now) that satisfies `predicate`."""
        after_id = self.marker() if after is None else (after.id if isinstance(after, Message) else after)
        author_id = self.bot_user.id if author is None else author.id

        def find() -> Message | None:
            for m in sorted(self.messages.values(), key=lambda m: m.id):
                if (m.id > after_id and m.author.id == author_id
                        and (channel is None or m.channel_id == channel.id)
                        and (predicate is None or predicate(m))):
                    return m
            return None

        where = f"#{channel.name}" if channel else "any channel"
        return await self.wait_until(find, timeout, f"a bot message in {where}")

    async def wait_for_edit(self, message: Message, predicate: Callable[[Message], bool] | None = None,
                            *, timeout: float = 10.0) -> Message:
        """Wait until `message` is edited (again) and satisfies `predicate`."""
        seen = len(message.edits)
        return await self.wait_until(
            lambda: message if len(message.edits) > seen and (predicate is None or predicate(message)) else None,
            timeout, f"an edit of message {message.id}")

    async def wait_for_reaction(self, message: Message, emoji: str, *, by: User | Member | None = None,
                                timeout: float = 10.0) -> Message:
        """Wait until `emoji` is on `message`, added by `by` (default: the bot)."""
        user_id = self.bot_user.id if by is None else by.id
        return await self.wait_until(
            lambda: message if user_id in message.reactions.get(emoji, []) else None,
            timeout, f"reaction {emoji} on message {message.id}")

    async def wait_for_bot_voice(self, guild: Guild, channel: Channel | None, *,
                                 timeout: float = 10.0) -> None:
        """Wait until the bot's voice state in `guild` is `channel` (None: disconnected)."""
        want = None if channel is None else channel.id

        def in_wanted_channel() -> bool:
            current = self.bot_voice_channel(guild)
            return (None if current is None else current.id) == want

        await self.wait_until(in_wanted_channel, timeout, f"the bot in voice channel {want}")

    async def wait_for_session(self, *, timeout: float = 30.0) -> GatewaySession:
        """Wait until a bot has identified and is connected."""
        return await self.wait_until(
            lambda: next((s for s in self.gateway.live_sessions() if s.connection is not None), None),
            timeout, "a bot to IDENTIFY")

    # -- faults -----------------------------------------------------------------------------

    async def drop_gateway(self, code: int = CLOSE_UNKNOWN_ERROR) -> int:
        """Close the bot's main gateway websocket(s) with a resumable close code; the bot
        reconnects and RESUMEs. Returns how many connections were closed."""
        for conn in self.gateway.connections:
            conn.server_closed = True  # type: ignore[attr-defined]
        return await self.gateway.drop(code)

    async def wait_for_resume(self, count: int = 1, *, timeout: float = 30.0) -> None:
        """Wait until the bot has RESUMEd `count` times in total (see gateway.resume_count)."""
        await self.wait_until(lambda: self.gateway.resume_count >= count, timeout,
                              f"{count} gateway RESUME(s)")

    def send_reconnect(self) -> None:
        """op 7 RECONNECT: the bot should close and RESUME."""
        self.gateway.send_reconnect()

    def invalidate_session(self, *, resumable: bool = False) -> None:
        """op 9 INVALID_SESSION: with resumable=False the bot must IDENTIFY again."""
        self.gateway.invalidate_sessions(resumable)

    def delay_rest(self, seconds: float, match: str = "*", *, times: int | None = None) -> RestFault:
        """Answer REST requests matching `match` ("METHOD /path" fnmatch pattern, path without
        /api/v10, e.g. "POST /channels/*/messages") `seconds` late. Remove with `.remove()` or
        use as a context manager."""
        return self.rest.add_fault(RestFault("delay", match, seconds=seconds, times=times))

    def rate_limit(self, match: str, *, retry_after: float = 1.0, times: int | None = 1,
                   is_global: bool = False) -> RestFault:
        """Answer the next `times` requests matching `match` with 429, Discord's rate-limit
        headers and body {"message", "retry_after", "global"}."""
        return self.rest.add_fault(RestFault("ratelimit", match, seconds=retry_after, times=times,
                                             is_global=is_global))

    def fail_rest(self, match: str, *, status: int = 500, times: int | None = 1) -> RestFault:
        """Answer the next `times` matching requests with `status` (discord.py retries 5xx)."""
        return self.rest.add_fault(RestFault("error", match, status=status, times=times))

    def clear_faults(self) -> None:
        self.rest.faults.clear()

    # -- internals used by rest.py and gateway.py -------------------------------------------

    def _changed(self) -> None:
        """Wake every wait_until() so it re-checks its condition."""
        for fut in list(self._waiters):
            if not fut.done():
                fut.set_result(None)

    def _dispatch(self, event: str, data: Any) -> None:
        self.gateway.dispatch(event, data)
        self._changed()

    def _bot_guilds(self) -> list[Guild]:
        return [g for g in self.guilds.values() if self.bot_user.id in g.members]

    def _bot_user_payload(self) -> dict[str, Any]:
        return {**self.bot_user.payload(), "verified": True, "mfa_enabled": False, "flags": 0,
                "locale": "en-US", "email": None, "bio": ""}

    def _application_payload(self) -> dict[str, Any]:
        return {
            "id": str(self.application_id),
            "name": self.bot_user.name,
            "icon": None,
            "description": "A Red bot talking to the Discord stand-in",
            "summary": "",
            "type": None,
            "rpc_origins": [],
            "bot_public": True,
            "bot_require_code_grant": False,
            "bot": self.bot_user.payload(),
            "owner": self.owner.payload(),
            "team": None,
            "verify_key": secrets.token_hex(32),
            "flags": 0,
            "redirect_uris": [],
            "interactions_endpoint_url": None,
        }

    def _member_of(self, message: Message) -> Member | None:
        if message.guild_id is None:
            return None
        return self.guilds[message.guild_id].members.get(message.author.id)

    def _message_payload(self, message: Message) -> dict[str, Any]:
        return message.payload(self._member_of(message), self.bot_user.id)

    def _store_message(self, channel: Channel, message: Message) -> None:
        self.messages[message.id] = message
        channel.last_message_id = message.id

    def _attachments(self, channel: Channel, files: list[tuple[str, bytes, str]]) -> list[dict[str, Any]]:
        out = []
        for filename, data, content_type in files:
            aid = self.ids.next()
            self.attachment_data[aid] = data
            url = f"{self.base_url}/attachments/{channel.id}/{aid}/{filename}"
            out.append({"id": str(aid), "filename": filename, "size": len(data), "url": url,
                        "proxy_url": url, "content_type": content_type})
        return out

    def _create_bot_message(self, channel: Channel, *, content: str, embeds: list[dict[str, Any]],
                            components: list[dict[str, Any]], files: list[tuple[str, bytes, str]],
                            reference_id: int | None, flags: int,
                            interaction_id: int | None = None) -> Message:
        message = Message(
            id=self.ids.next(), channel_id=channel.id, guild_id=channel.guild_id, author=self.bot_user,
            content=content, embeds=embeds, components=components,
            attachments=self._attachments(channel, files), reference_id=reference_id, flags=flags,
            interaction_id=interaction_id,
        )
        self._store_message(channel, message)
        if not message.ephemeral:  # only the clicking user sees ephemeral answers: no dispatch
            self._dispatch("MESSAGE_CREATE", self._message_payload(message))
        else:
            self._changed()
        return message

    def _edit_bot_message(self, message: Message, body: dict[str, Any],
                          files: list[tuple[str, bytes, str]]) -> None:
        message.edits.append({"content": message.content, "embeds": message.embeds,
                              "components": message.components, "edited_at": message.edited_timestamp})
        if "content" in body:
            message.content = body["content"] or ""
        if "embeds" in body:
            message.embeds = body["embeds"] or []
        if "components" in body:
            message.components = body["components"] or []
        if "flags" in body and body["flags"] is not None:
            message.flags = int(body["flags"])
        if "attachments" in body:
            keep = {str(a.get("id")) for a in body["attachments"] or []}
            message.attachments = [a for a in message.attachments if a["id"] in keep]
        channel = self.channels[message.channel_id]
        message.attachments += self._attachments(channel, files)
        message.edited_timestamp = iso_now()
        message.changed_at = time.monotonic()
        self._dispatch("MESSAGE_UPDATE", self._message_payload(message))

    def _delete_message(self, message: Message) -> None:
        message.deleted = True
        data = {"id": str(message.id), "channel_id": str(message.channel_id)}
        if message.guild_id is not None:
            data["guild_id"] = str(message.guild_id)
        self._dispatch("MESSAGE_DELETE", data)

    def _reaction_event(self, message: Message, user_id: int, emoji: str) -> dict[str, Any]:
        data: dict[str, Any] = {
            "user_id": str(user_id), "channel_id": str(message.channel_id),
            "message_id": str(message.id), "emoji": emoji_payload(emoji),
            "burst": False, "type": 0,
        }
        if message.guild_id is not None:
            data["guild_id"] = str(message.guild_id)
        return data

    def _add_reaction(self, message: Message, user_id: int, emoji: str) -> None:
        users = message.reactions.setdefault(emoji, [])
        if user_id in users:
            return
        users.append(user_id)
        data = self._reaction_event(message, user_id, emoji)
        data["message_author_id"] = str(message.author.id)
        if message.guild_id is not None:
            member = self.guilds[message.guild_id].members.get(user_id)
            if member is not None:
                data["member"] = member.payload()
        self._dispatch("MESSAGE_REACTION_ADD", data)

    def _remove_reaction(self, message: Message, user_id: int, emoji: str) -> None:
        users = message.reactions.get(emoji, [])
        if user_id not in users:
            return
        users.remove(user_id)
        if not users:
            del message.reactions[emoji]
        self._dispatch("MESSAGE_REACTION_REMOVE", self._reaction_event(message, user_id, emoji))

    def dm_channel(self, user: User) -> Channel:
        """The DM channel between the bot and `user` (created on first use)."""
        for channel in self.channels.values():
            if channel.type == DM_CHANNEL and channel.recipients and channel.recipients[0].id == user.id:
                return channel
        channel = Channel(self.ids.next(), "", DM_CHANNEL, recipients=[user])
        self.channels[channel.id] = channel
        return channel

    def _set_voice_state(self, member: Member, channel: Channel | None, *, self_deaf: bool = False,
                         self_mute: bool = False, session_id: str | None = None) -> None:
        guild = self.guilds[member.guild_id]
        if channel is not None and (channel.guild_id != guild.id or not channel.is_voice):
            raise ValueError(f"{channel.name!r} is not a voice channel of {guild.name!r}")
        previous = guild.voice_states.get(member.id)
        state = VoiceState(
            user_id=member.id, guild_id=guild.id, channel_id=None if channel is None else channel.id,
            session_id=session_id or (previous.session_id if previous else secrets.token_hex(16)),
            self_mute=self_mute, self_deaf=self_deaf,
        )
        if channel is None:
            guild.voice_states.pop(member.id, None)
            if member.id == self.bot_user.id and self.voice is not None:
                self.voice.close_session(guild.id)
        else:
            guild.voice_states[member.id] = state
        self._dispatch("VOICE_STATE_UPDATE", state.payload(member))

    def _on_bot_voice_state(self, session: GatewaySession, data: dict[str, Any]) -> None:
        """op 4 from the bot: update its voice state; on a join (or a re-join of the same
        channel, which is how discord.py reconnects) also send VOICE_SERVER_UPDATE with a
        token from the voice server. A move to another channel keeps the voice server."""
        guild = self.guilds.get(int(data.get("guild_id") or 0))
        if guild is None or self.bot_user.id not in guild.members:
            log.warning("op 4 for unknown guild %r", data.get("guild_id"))
            return
        bot_member = guild.members[self.bot_user.id]
        channel_id = data.get("channel_id")
        if channel_id is None:
            self._set_voice_state(bot_member, None)
            return
        channel = self.channels.get(int(channel_id))
        if channel is None or channel.guild_id != guild.id or not channel.is_voice:
            log.warning("op 4 for unknown voice channel %r", channel_id)
            return
        previous = guild.voice_states.get(self.bot_user.id)
        self._set_voice_state(bot_member, channel, self_deaf=bool(data.get("self_deaf")),
                              self_mute=bool(data.get("self_mute")), session_id=session.session_id)
        moved = previous is not None and previous.channel_id not in (None, channel.id)
        if moved:
            return
        if self.voice is None:
            log.warning("op 4: no voice server; VOICE_SERVER_UPDATE not sent")
            return
        token = self.voice.open_session(guild.id, self.bot_user.id, session.session_id, channel.id)
        self._dispatch("VOICE_SERVER_UPDATE", {"token": token, "guild_id": str(guild.id),
                                               "endpoint": self.voice.endpoint})


    # -- what members saw of the bot's answers to components ----------------------------------

    def seen_by(self, message: Message) -> Member | None:
        """The one member who sees `message` when it is an ephemeral answer to their click
        (Discord shows it to nobody else); None for a message everyone sees."""
        if not message.ephemeral or message.interaction_id is None:
            return None
        interaction = self.interactions.get(message.interaction_id)
        return interaction.member if interaction is not None else None

    def private_answers(self, member: Member, *, after: int | Message | None = None) -> list[Message]:
        """The ephemeral answers only `member` saw, oldest first (newer than `after`)."""
        after_id = 0 if after is None else (after.id if isinstance(after, Message) else after)
        return [m for m in self.bot_messages() if m.id > after_id and m.ephemeral
                and (seer := self.seen_by(m)) is not None and seer.id == member.id]

    async def wait_for_answer(self, interaction: Interaction,
                              predicate: Callable[[Message], bool] | None = None, *,
                              timeout: float = 10.0) -> Message:
        """The message that answers `interaction`: the one a type 4 callback created, the
        component's message a type 7 callback edited, the message a deferral (type 5) became
        (its first followup or @original edit), or else the first followup; with `predicate`,
        once it satisfies it (a later edit, say)."""

        def answer() -> Message | None:
            kind = interaction.responses[0]["type"] if interaction.responses else None
            if interaction.original is not None and kind in (4, 5, 7):
                message = interaction.original
            elif interaction.followups:
                message = interaction.followups[0]
            else:
                return None
            return message if predicate is None or predicate(message) else None

        what = interaction.custom_id or f"/{interaction.command_name}"
        return await self.wait_until(answer, timeout, f"an answer to interaction {what!r}")


def _find_component(rows: list[dict[str, Any]], custom_id: str | None, label: str | None,
                    emoji: str | None) -> dict[str, Any]:
    """The first component (inside action rows) that matches; ValueError listing what exists."""
    found: list[dict[str, Any]] = []
    for row in rows:
        found.extend(row.get("components", []) if row.get("type") == 1 else [row])
    for comp in found:
        if ((custom_id is not None and comp.get("custom_id") == custom_id)
                or (label is not None and comp.get("label") == label)
                or (emoji is not None and (comp.get("emoji") or {}).get("name") == emoji)):
            if comp.get("disabled"):
                raise ValueError(f"component {comp.get('custom_id')!r} is disabled")
            return comp
    listing = [(c.get("custom_id"), c.get("label"), (c.get("emoji") or {}).get("name")) for c in found]
    raise ValueError(f"no component matches custom_id={custom_id!r} label={label!r} emoji={emoji!r};"
                     f" the message has (custom_id, label, emoji): {listing}")


def _opt_str(value: int | None) -> str | None:
    return None if value is None else str(value)
