"""The REST side: the routes a Red bot uses, Discord's error shapes, and REST faults.

Answers carry `Content-Type: application/json` exactly (discord.py's json_or_text compares the
header literally; aiohttp's json_response would add "; charset=utf-8" and discord.py would then
hand Red a string). Every answer carries `Via`, because discord.py treats a 429 without it as a
Cloudflare ban and gives up instead of waiting.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import math
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .state import Channel, Message, emoji_payload

if TYPE_CHECKING:
    from .server import Standin

log = logging.getLogger("standin.rest")

API_PREFIX = "/api/v10"


class DiscordError(Exception):
    """Raised by handlers; becomes Discord's error body {"message", "code"}."""

    def __init__(self, status: int, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    all_headers = {"Content-Type": "application/json", "Via": "1.1 google"}
    all_headers.update(headers or {})
    return web.Response(body=json.dumps(data).encode(), status=status, headers=all_headers)


def no_content() -> web.Response:
    return web.Response(status=204, headers={"Via": "1.1 google"})


@dataclass
class RequestRecord:
    method: str
    path: str  # without the /api/v10 prefix, e.g. "/channels/123/messages"
    status: int = 0
    started: float = field(default_factory=time.monotonic)
    duration: float = 0.0

    @property
    def route(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class RestFault:
    """A fault on REST requests whose "METHOD /path" matches `match` (fnmatch pattern, e.g.
    "POST /channels/*/messages"). Usable as a context manager; `remove()` ends it early."""

    kind: str  # "delay" | "ratelimit" | "error"
    match: str
    seconds: float = 0.0  # delay, or retry_after for 429
    times: int | None = None  # how many requests it applies to (None = until removed)
    status: int = 500
    is_global: bool = False
    hits: int = 0
    _owner: list[RestFault] | None = None

    def matches(self, route: str) -> bool:
        return fnmatch.fnmatchcase(route, self.match) and (self.times is None or self.hits < self.times)

    def remove(self) -> None:
        if self._owner is not None and self in self._owner:
            self._owner.remove(self)

    def __enter__(self) -> RestFault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class RestApi:
    def __init__(self, standin: Standin) -> None:
        self.s = standin
        self.requests: list[RequestRecord] = []
        self.unknown_routes: list[str] = []
        self.faults: list[RestFault] = []

    # -- plumbing ---------------------------------------------------------------------------

    def add_fault(self, fault: RestFault) -> RestFault:
        fault._owner = self.faults
        self.faults.append(fault)
        return fault

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX + "/"):
            return await handler(request)
        record = RequestRecord(request.method, request.path[len(API_PREFIX):])
        self.requests.append(record)
        try:
            response = await self._handle(request, handler, record)
        except asyncio.CancelledError:
            record.status = -1
            raise
        record.status = response.status
        record.duration = time.monotonic() - record.started
        self.s._changed()
        return response

    async def _handle(self, request: web.Request, handler: Any, record: RequestRecord) -> web.StreamResponse:
        route = record.route
        for fault in list(self.faults):
            if fault.kind == "delay" and fault.matches(route):
                fault.hits += 1
                await asyncio.sleep(fault.seconds)
        for fault in list(self.faults):
            if fault.kind == "ratelimit" and fault.matches(route):
                fault.hits += 1
                return self._rate_limited(fault)
            if fault.kind == "error" and fault.matches(route):
                fault.hits += 1
                return json_response({"message": f"{fault.status}: injected error", "code": 0},
                                     status=fault.status)
        # Interaction callbacks and webhooks authenticate with the interaction token in the
        # path; discord.py sends no Authorization header there.
        token_in_path = record.path.startswith(("/interactions/", "/webhooks/"))
        if not token_in_path and request.headers.get("Authorization") != f"Bot {self.s.token}":
            return json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        try:
            return await handler(request)
        except web.HTTPNotFound:
            self.unknown_routes.append(route)
            log.warning("stand-in: unknown route %s", route)
            return json_response({"message": "404: Not Found", "code": 0}, status=404)
        except web.HTTPMethodNotAllowed:
            self.unknown_routes.append(route)
            log.warning("stand-in: unknown method for route %s", route)
            return json_response({"message": "405: Method Not Allowed", "code": 0}, status=405)
        except DiscordError as exc:
            return json_response({"message": exc.message, "code": exc.code}, status=exc.status)

    @staticmethod
    def _rate_limited(fault: RestFault) -> web.Response:
        retry = fault.seconds
        headers = {
            "Retry-After": str(max(1, math.ceil(retry))),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + retry:.3f}",
            "X-RateLimit-Reset-After": f"{retry:.3f}",
            "X-RateLimit-Bucket": "standin" + str(abs(hash(fault.match)) % 10**8),
            "X-RateLimit-Scope": "global" if fault.is_global else "user",
        }
        if fault.is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {"message": "You are being rate limited.", "retry_after": retry, "global": fault.is_global}
        return json_response(body, status=429, headers=headers)

    def routes(self) -> list[web.RouteDef]:
        p = API_PREFIX
        return [
            web.get(p + "/gateway/bot", self.get_gateway_bot),
            web.get(p + "/gateway", self.get_gateway),
            web.get(p + "/users/@me", self.get_me),
            web.patch(p + "/users/@me", self.patch_me),
            web.post(p + "/users/@me/channels", self.create_dm),
            web.get(p + "/users/{user_id}", self.get_user),
            web.get(p + "/oauth2/applications/@me", self.get_application),
            web.get(p + "/applications/@me", self.get_application),
            web.get(p + "/applications/{app_id}/commands", self.list_commands),
            web.put(p + "/applications/{app_id}/commands", self.put_commands),
            web.get(p + "/applications/{app_id}/guilds/{guild_id}/commands", self.list_commands),
            web.put(p + "/applications/{app_id}/guilds/{guild_id}/commands", self.put_commands),
            web.get(p + "/channels/{channel_id}", self.get_channel),
            web.get(p + "/channels/{channel_id}/messages", self.list_messages),
            web.post(p + "/channels/{channel_id}/messages", self.create_message),
            web.post(p + "/channels/{channel_id}/messages/bulk-delete", self.bulk_delete),
            web.get(p + "/channels/{channel_id}/messages/{message_id}", self.get_message),
            web.patch(p + "/channels/{channel_id}/messages/{message_id}", self.edit_message),
            web.delete(p + "/channels/{channel_id}/messages/{message_id}", self.delete_message),
            web.post(p + "/channels/{channel_id}/typing", self.typing),
            web.put(p + "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me",
                    self.add_own_reaction),
            web.delete(p + "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user}",
                       self.remove_reaction),
            web.get(p + "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}",
                    self.list_reactions),
            web.delete(p + "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}",
                       self.clear_emoji_reactions),
            web.delete(p + "/channels/{channel_id}/messages/{message_id}/reactions",
                       self.clear_reactions),
            web.get(p + "/guilds/{guild_id}", self.get_guild),
            web.get(p + "/guilds/{guild_id}/channels", self.get_guild_channels),
            web.get(p + "/guilds/{guild_id}/roles", self.get_guild_roles),
            web.get(p + "/guilds/{guild_id}/members", self.list_members),
            web.get(p + "/guilds/{guild_id}/members/{user_id}", self.get_member),
            web.patch(p + "/guilds/{guild_id}/members/{user_id}", self.edit_member),
            web.post(p + "/interactions/{interaction_id}/{token}/callback", self.interaction_callback),
            web.get(p + "/webhooks/{app_id}/{token}/messages/{message_id}", self.webhook_get),
            web.patch(p + "/webhooks/{app_id}/{token}/messages/{message_id}", self.webhook_edit),
            web.delete(p + "/webhooks/{app_id}/{token}/messages/{message_id}", self.webhook_delete),
            web.post(p + "/webhooks/{app_id}/{token}", self.webhook_followup),
            # attachment downloads live outside the API, like Discord's CDN
            web.get("/attachments/{channel_id}/{attachment_id}/{filename}", self.get_attachment),
        ]

    # -- lookups ----------------------------------------------------------------------------

    def _channel(self, request: web.Request) -> Channel:
        channel = self.s.channels.get(_int(request.match_info["channel_id"]))
        if channel is None:
            raise DiscordError(404, "Unknown Channel", 10003)
        return channel

    def _message(self, request: web.Request) -> Message:
        channel = self._channel(request)
        message = self.s.messages.get(_int(request.match_info["message_id"]))
        if message is None or message.deleted or message.channel_id != channel.id:
            raise DiscordError(404, "Unknown Message", 10008)
        return message

    def _guild(self, request: web.Request):
        guild = self.s.guilds.get(_int(request.match_info["guild_id"]))
        if guild is None or self.s.bot_user.id not in guild.members:
            raise DiscordError(404, "Unknown Guild", 10004)
        return guild

    # -- handlers ---------------------------------------------------------------------------

    async def get_gateway_bot(self, request: web.Request) -> web.Response:
        return json_response({
            "url": self.s.gateway_url,
            "shards": 1,
            "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 86400000,
                                    "max_concurrency": 1},
        })

    async def get_gateway(self, request: web.Request) -> web.Response:
        return json_response({"url": self.s.gateway_url})

    async def get_me(self, request: web.Request) -> web.Response:
        return json_response(self.s._bot_user_payload())

    async def patch_me(self, request: web.Request) -> web.Response:
        body = await request.json()
        if "username" in body:
            self.s.bot_user.name = body["username"]
        return json_response(self.s._bot_user_payload())

    async def get_user(self, request: web.Request) -> web.Response:
        user = self.s.users.get(_int(request.match_info["user_id"]))
        if user is None:
            raise DiscordError(404, "Unknown User", 10013)
        return json_response(user.payload())

    async def create_dm(self, request: web.Request) -> web.Response:
        body = await request.json()
        user = self.s.users.get(_int(body.get("recipient_id")))
        if user is None:
            raise DiscordError(400, "Invalid Form Body", 50035)
        return json_response(self.s.dm_channel(user).payload())

    async def get_application(self, request: web.Request) -> web.Response:
        return json_response(self.s._application_payload())

    def _command_scope(self, request: web.Request) -> int | None:
        if str(self.s.application_id) != request.match_info["app_id"]:
            raise DiscordError(403, "Missing Access", 50001)
        return self._guild(request).id if "guild_id" in request.match_info else None

    async def list_commands(self, request: web.Request) -> web.Response:
        return json_response(self.s.app_commands.listed(self._command_scope(request)))

    async def put_commands(self, request: web.Request) -> web.Response:
        scope = self._command_scope(request)
        commands = await request.json()
        if len(commands) > 100:
            raise DiscordError(400, "Invalid Form Body\nMust be 100 or fewer in length.", 50035)
        return json_response(self.s.app_commands.replace(scope, commands))

    async def get_channel(self, request: web.Request) -> web.Response:
        return json_response(self._channel(request).payload())

    async def list_messages(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        limit = min(int(request.query.get("limit", 50)), 100)
        before = _int(request.query.get("before")) if "before" in request.query else None
        after = _int(request.query.get("after")) if "after" in request.query else None
        msgs = [m for m in self.s.messages.values() if m.channel_id == channel.id and not m.deleted]
        if before is not None:
            msgs = [m for m in msgs if m.id < before]
        if after is not None:
            msgs = sorted((m for m in msgs if m.id > after), key=lambda m: m.id)[:limit]
        msgs = sorted(msgs, key=lambda m: m.id, reverse=True)[:limit]
        return json_response([self.s._message_payload(m) for m in msgs])

    async def get_message(self, request: web.Request) -> web.Response:
        return json_response(self.s._message_payload(self._message(request)))

    async def _read_message_body(self, request: web.Request) -> tuple[dict[str, Any], list[tuple[str, bytes, str]]]:
        """JSON body, or multipart with payload_json + files[n] (how discord.py sends files)."""
        if request.content_type.startswith("multipart/"):
            body: dict[str, Any] = {}
            files: list[tuple[str, bytes, str]] = []
            reader = await request.multipart()
            async for part in reader:
                if part.name == "payload_json":
                    body = json.loads(await part.text())
                else:
                    data = await part.read(decode=False)
                    files.append((part.filename or part.name or "file", bytes(data),
                                  part.headers.get("Content-Type", "application/octet-stream")))
            return body, files
        return await request.json(), []

    async def create_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        body, files = await self._read_message_body(request)
        content = body.get("content") or ""
        embeds = body.get("embeds") or []
        if not content and not embeds and not files and not body.get("components") and not body.get("sticker_ids"):
            raise DiscordError(400, "Cannot send an empty message", 50006)
        if len(content) > 2000:
            raise DiscordError(400, "Invalid Form Body\nIn content: Must be 2000 or fewer in length.", 50035)
        if len(embeds) > 10:
            raise DiscordError(400, "Invalid Form Body\nIn embeds: Must be 10 or fewer in length.", 50035)
        reference = body.get("message_reference") or {}
        message = self.s._create_bot_message(
            channel,
            content=content,
            embeds=embeds,
            components=body.get("components") or [],
            files=files,
            reference_id=_int(reference["message_id"]) if reference.get("message_id") else None,
            flags=int(body.get("flags") or 0),
        )
        return json_response(self.s._message_payload(message))

    async def edit_message(self, request: web.Request) -> web.Response:
        message = self._message(request)
        if message.author.id != self.s.bot_user.id:
            raise DiscordError(403, "Cannot edit a message authored by another user", 50005)
        body, files = await self._read_message_body(request)
        self.s._edit_bot_message(message, body, files)
        return json_response(self.s._message_payload(message))

    async def delete_message(self, request: web.Request) -> web.Response:
        self.s._delete_message(self._message(request))
        return no_content()

    async def bulk_delete(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        body = await request.json()
        for mid in body.get("messages", []):
            message = self.s.messages.get(_int(mid))
            if message is not None and message.channel_id == channel.id and not message.deleted:
                self.s._delete_message(message)
        return no_content()

    async def typing(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        self.s.typing_log.append((time.monotonic(), channel.id))
        return no_content()

    async def add_own_reaction(self, request: web.Request) -> web.Response:
        message = self._message(request)
        emoji = _emoji(request)
        self.s._add_reaction(message, self.s.bot_user.id, emoji)
        return no_content()

    async def remove_reaction(self, request: web.Request) -> web.Response:
        message = self._message(request)
        user = request.match_info["user"]
        user_id = self.s.bot_user.id if user == "@me" else _int(user)
        self.s._remove_reaction(message, user_id, _emoji(request))
        return no_content()

    async def list_reactions(self, request: web.Request) -> web.Response:
        message = self._message(request)
        users = message.reactions.get(_emoji(request), [])
        return json_response([self.s.users[uid].payload() for uid in users if uid in self.s.users])

    async def clear_emoji_reactions(self, request: web.Request) -> web.Response:
        message = self._message(request)
        emoji = _emoji(request)
        if message.reactions.pop(emoji, None) is not None:
            self.s._dispatch("MESSAGE_REACTION_REMOVE_EMOJI", {
                "channel_id": str(message.channel_id), "message_id": str(message.id),
                "guild_id": _opt(message.guild_id), "emoji": emoji_payload(emoji)})
        return no_content()

    async def clear_reactions(self, request: web.Request) -> web.Response:
        message = self._message(request)
        message.reactions.clear()
        self.s._dispatch("MESSAGE_REACTION_REMOVE_ALL", {
            "channel_id": str(message.channel_id), "message_id": str(message.id),
            "guild_id": _opt(message.guild_id)})
        return no_content()

    async def get_guild(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        data = guild.payload()
        if request.query.get("with_counts") == "true":
            data.update(approximate_member_count=len(guild.members),
                        approximate_presence_count=len(guild.members))
        return json_response(data)

    async def get_guild_channels(self, request: web.Request) -> web.Response:
        return json_response([c.payload() for c in self._guild(request).channels])

    async def get_guild_roles(self, request: web.Request) -> web.Response:
        return json_response([r.payload() for r in self._guild(request).roles])

    async def list_members(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        limit = min(int(request.query.get("limit", 1)), 1000)
        after = _int(request.query.get("after", "0"))
        members = sorted((m for m in guild.members.values() if m.id > after), key=lambda m: m.id)
        return json_response([m.payload() for m in members[:limit]])

    async def get_member(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        member = guild.members.get(_int(request.match_info["user_id"]))
        if member is None:
            raise DiscordError(404, "Unknown Member", 10007)
        return json_response(member.payload())

    async def edit_member(self, request: web.Request) -> web.Response:
        """Only what a music bot does to others: move or disconnect them (channel_id)."""
        guild = self._guild(request)
        member = guild.members.get(_int(request.match_info["user_id"]))
        if member is None:
            raise DiscordError(404, "Unknown Member", 10007)
        body = await request.json()
        if "channel_id" in body:
            if member.id not in guild.voice_states or guild.voice_states[member.id].channel_id is None:
                raise DiscordError(400, "Target user is not connected to voice.", 40032)
            target = None if body["channel_id"] is None else self.s.channels.get(_int(body["channel_id"]))
            self.s._set_voice_state(member, target)
        if "nick" in body:
            member.nick = body["nick"]
            self.s._dispatch("GUILD_MEMBER_UPDATE", {**member.payload(), "guild_id": str(guild.id)})
        return json_response(member.payload())

    # -- interactions (Standin.click, .slash, .autocomplete, .message_command) ------------------

    def _interaction(self, request: web.Request, *, by_token_only: bool = False):
        """The interaction of the token in the path. Discord forgets a token after 15 minutes:
        the callback then answers Unknown interaction, the webhook routes Unknown Webhook."""
        token = request.match_info["token"]
        for interaction in self.s.interactions.values():
            if interaction.token == token and (
                    by_token_only or str(interaction.id) == request.match_info.get("interaction_id")):
                if interaction.expired:
                    break
                return interaction
        if by_token_only:
            raise DiscordError(404, "Unknown Webhook", 10015)
        raise DiscordError(404, "Unknown interaction", 10062)

    async def interaction_callback(self, request: web.Request) -> web.Response:
        interaction = self._interaction(request)
        body, files = await self._read_message_body(request)
        if interaction.acknowledged:
            raise DiscordError(400, "Interaction has already been acknowledged.", 40060)
        if time.monotonic() - interaction.created_at > interaction.response_window:
            # Discord's 3-second rule: a late first answer finds the interaction gone
            interaction.late_callbacks += 1
            raise DiscordError(404, "Unknown interaction", 10062)
        kind = int(body.get("type", 0))
        data = body.get("data") or {}
        _check_callback_type(interaction.kind, kind, data)
        interaction.responses.append({"type": kind, "data": data})
        interaction.first_response_at = time.monotonic()
        channel = self.s.channels[interaction.channel_id]
        resource: dict[str, Any] | None = None
        if kind == 8:  # APPLICATION_COMMAND_AUTOCOMPLETE_RESULT
            interaction.choices = list(data.get("choices") or [])
        elif kind == 4:  # CHANNEL_MESSAGE_WITH_SOURCE
            interaction.original = self.s._create_bot_message(
                channel, content=data.get("content") or "", embeds=data.get("embeds") or [],
                components=data.get("components") or [], files=files, reference_id=None,
                flags=int(data.get("flags") or 0), interaction_id=interaction.id)
        elif kind == 7:  # UPDATE_MESSAGE: edit the message the component is on
            self.s._edit_bot_message(interaction.message, data, files)
            interaction.original = interaction.message
        elif kind == 6:  # DEFERRED_UPDATE_MESSAGE: @original is the component's message
            interaction.original = interaction.message
        if kind in (4, 7) and interaction.original is not None:
            resource = {"type": kind, "message": self.s._message_payload(interaction.original)}
        self.s._changed()
        answer: dict[str, Any] = {"interaction": {
            "id": str(interaction.id), "type": interaction.kind,
            "response_message_id": _opt(interaction.original.id if interaction.original else None),
            "response_message_loading": kind == 5,
            "response_message_ephemeral": bool(int(data.get("flags") or 0) & 64),
        }}
        if resource is not None:
            answer["resource"] = resource
        if "with_response" not in request.query:
            return no_content()
        return json_response(answer)

    def _webhook_message(self, request: web.Request) -> tuple[Any, Message | None]:
        interaction = self._interaction(request, by_token_only=True)
        mid = request.match_info["message_id"]
        if mid == "@original":
            return interaction, interaction.original
        message = self.s.messages.get(_int(mid))
        return interaction, message

    async def webhook_get(self, request: web.Request) -> web.Response:
        _, message = self._webhook_message(request)
        if message is None or message.deleted:
            raise DiscordError(404, "Unknown Message", 10008)
        return json_response(self.s._message_payload(message))

    async def webhook_edit(self, request: web.Request) -> web.Response:
        interaction, message = self._webhook_message(request)
        body, files = await self._read_message_body(request)
        if message is None and request.match_info["message_id"] == "@original" and interaction.acknowledged:
            # the answer to a deferred (type 5) response: the message appears now
            message = self._write_deferred_answer(interaction, body, files)
            return json_response(self.s._message_payload(message))
        if message is None or message.deleted:
            raise DiscordError(404, "Unknown Message", 10008)
        self.s._edit_bot_message(message, body, files)
        return json_response(self.s._message_payload(message))

    async def webhook_delete(self, request: web.Request) -> web.Response:
        _, message = self._webhook_message(request)
        if message is None or message.deleted:
            raise DiscordError(404, "Unknown Message", 10008)
        self.s._delete_message(message)
        return no_content()

    def _write_deferred_answer(self, interaction: Any, body: dict[str, Any],
                               files: list[tuple[str, bytes, str]]) -> Message:
        """The "thinking..." of a type 5 answer becomes this message; ephemeral when the
        deferral said so (Discord keeps the deferral's flag)."""
        deferral_flags = int((interaction.responses[0]["data"] or {}).get("flags") or 0)
        channel = self.s.channels[interaction.channel_id]
        message: Message = self.s._create_bot_message(
            channel, content=body.get("content") or "", embeds=body.get("embeds") or [],
            components=body.get("components") or [], files=files, reference_id=None,
            flags=int(body.get("flags") or 0) | (deferral_flags & 64), interaction_id=interaction.id)
        interaction.original = message
        return message

    async def webhook_followup(self, request: web.Request) -> web.Response:
        interaction = self._interaction(request, by_token_only=True)
        body, files = await self._read_message_body(request)
        if not interaction.acknowledged:
            raise DiscordError(404, "Unknown Webhook", 10015)
        if interaction.deferred:  # Discord: the first followup after a deferral is the answer
            return json_response(self.s._message_payload(self._write_deferred_answer(interaction, body, files)))
        channel = self.s.channels[interaction.channel_id]
        message = self.s._create_bot_message(
            channel, content=body.get("content") or "", embeds=body.get("embeds") or [],
            components=body.get("components") or [], files=files, reference_id=None,
            flags=int(body.get("flags") or 0), interaction_id=interaction.id)
        interaction.followups.append(message)
        return json_response(self.s._message_payload(message))

    async def get_attachment(self, request: web.Request) -> web.Response:
        data = self.s.attachment_data.get(_int(request.match_info["attachment_id"]))
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data)


# which callback types each interaction type accepts (Discord answers 400 to the others)
_CALLBACKS_FOR = {2: (4, 5, 9), 3: (4, 5, 6, 7, 9), 4: (8,)}


def _check_callback_type(interaction_kind: int, kind: int, data: dict[str, Any]) -> None:
    allowed = _CALLBACKS_FOR.get(interaction_kind, ())
    if kind not in allowed:
        raise DiscordError(400, f"Invalid Form Body\nIn type: Value must be one of {allowed}.", 50035)
    if kind == 8:
        choices = data.get("choices") or []
        if len(choices) > 25 or any(not 1 <= len(str(c.get("name", ""))) <= 100 for c in choices):
            raise DiscordError(400, "Invalid Form Body\nIn data.choices: at most 25 choices, names of"
                                    " 1 to 100 characters.", 50035)


def _emoji(request: web.Request) -> str:
    # aiohttp already decodes match_info; unquote again only if a %-escape survived
    raw = request.match_info["emoji"]
    return urllib.parse.unquote(raw) if "%" in raw else raw


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DiscordError(400, "Invalid Form Body", 50035) from None


def _opt(value: int | None) -> str | None:
    return None if value is None else str(value)

