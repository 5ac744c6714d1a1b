"""Application commands on the stand-in: what the bot synced, and members invoking them.

`AppCommands` keeps what the bot PUT (global and per guild) so GET returns it, as Discord does.
`InteractionsMixin` (mixed into `Standin`) lets a test run a synced slash command, ask for
autocomplete choices, or use a message context menu: each dispatches INTERACTION_CREATE shaped
as discord.py reads it (options typed by the synced schema, `resolved` members, users, channels,
roles and messages). A member can only use what the bot synced, so an unsynced name raises.

Discord's timing rules live on `state.Interaction` (the rest.py callback and webhook routes
enforce them): the first callback within `interaction_response_window` seconds (3), the token
valid for `interaction_lifetime` seconds (15 minutes); both are settable for tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .state import Channel, Interaction, Member, Message, Role, User

if TYPE_CHECKING:
    from .server import Standin

CHAT_INPUT, USER_COMMAND, MESSAGE_COMMAND = 1, 2, 3  # application command types
SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2  # option types that nest
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER = 3, 4, 5, 6, 7, 8, 9, 10
APPLICATION_COMMAND, AUTOCOMPLETE = 2, 4  # interaction types


class AppCommands:
    """The application commands the bot synced: global, and per guild. A re-sync keeps the id
    of a command whose (name, type) it already had, as Discord does."""

    def __init__(self, standin: Standin) -> None:
        self._s = standin
        self.global_commands: list[dict[str, Any]] = []
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}
        self.syncs = 0  # how many PUTs (Discord rate-limits them hard: tests can check)

    def listed(self, guild_id: int | None) -> list[dict[str, Any]]:
        return list(self.global_commands if guild_id is None else self.guild_commands.get(guild_id, []))

    def replace(self, guild_id: int | None, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A bulk overwrite (PUT): the new list replaces the old one."""
        old = {(c["name"], int(c.get("type", CHAT_INPUT))): c for c in self.listed(guild_id)}
        stored = []
        for cmd in commands:
            kind = int(cmd.get("type", CHAT_INPUT))
            previous = old.get((cmd["name"], kind))
            stored.append({
                "description": "", "options": [], "dm_permission": True, "nsfw": False,
                **cmd, "type": kind,
                "id": previous["id"] if previous else str(self._s.ids.next()),
                "application_id": str(self._s.application_id),
                "version": str(self._s.ids.next()),
                "default_member_permissions": cmd.get("default_member_permissions"),
                **({"guild_id": str(guild_id)} if guild_id is not None else {}),
            })
        if guild_id is None:
            self.global_commands = stored
        else:
            self.guild_commands[guild_id] = stored
        self.syncs += 1
        return stored

    def find(self, name: str, kind: int, guild_id: int | None) -> dict[str, Any]:
        """What a member of `guild_id` sees under `name` (guild commands first)."""
        for cmd in [*self.listed(guild_id), *self.listed(None)] if guild_id else self.listed(None):
            if cmd["name"] == name and cmd["type"] == kind:
                return cmd
        synced = [c["name"] for c in [*self.listed(guild_id), *self.listed(None)]]
        raise ValueError(f"no synced command {name!r} of type {kind}; synced: {synced}")


class InteractionsMixin:
    """Standin methods: members use the bot's application commands."""

    # how Discord times interactions; tests may shorten the lifetime to see expiry
    interaction_lifetime: float = 15 * 60.0
    interaction_response_window: float = 3.0

    async def slash(self: Standin, member: Member, channel: Channel, command: str,
                    options: dict[str, Any] | None = None) -> Interaction:
        """`member` runs the slash command `command` in `channel`: "play", or "queue show" /
        "playlist start" for subcommands. `options` by name; a Member, User, Channel or Role
        value is sent as its id with its `resolved` entry. See `wait_for_interaction_response`."""
        data = self._command_data(member, command, options or {}, focused=None)
        return await self._interact(member, channel, APPLICATION_COMMAND, data, command)

    async def autocomplete(self: Standin, member: Member, channel: Channel, command: str,
                           option: str, typed: str, options: dict[str, Any] | None = None) -> Interaction:
        """`member` types `typed` into `option` of `command`; the bot answers with choices
        (callback type 8), see `wait_for_choices`."""
        data = self._command_data(member, command, {**(options or {}), option: typed}, focused=option)
        return await self._interact(member, channel, AUTOCOMPLETE, data, command)

    async def message_command(self: Standin, member: Member, message: Message,
                              name: str) -> Interaction:
        """`member` picks the message context menu entry `name` on `message`."""
        channel = self.channels[message.channel_id]
        cmd = self.app_commands.find(name, MESSAGE_COMMAND, channel.guild_id)
        data = {"id": cmd["id"], "name": name, "type": MESSAGE_COMMAND, "target_id": str(message.id),
                "resolved": {"messages": {str(message.id): self._message_payload(message)}}}
        if channel.guild_id is not None:
            data["guild_id"] = str(channel.guild_id)
        interaction = await self._interact(member, channel, APPLICATION_COMMAND, data, name)
        interaction.target = message
        return interaction

    async def wait_for_choices(self: Standin, interaction: Interaction, *,
                               timeout: float = 10.0) -> list[dict[str, Any]]:
        """The bot's autocomplete answer: [{"name", "value"}, ...] (may be empty)."""
        answered = await self.wait_until(lambda: interaction.choices is not None and (interaction.choices,),
                                         timeout, f"autocomplete choices for /{interaction.command_name}")
        return answered[0]

    # -- building the payload ---------------------------------------------------------------

    def _command_data(self: Standin, member: Member, command: str, options: dict[str, Any],
                      focused: str | None) -> dict[str, Any]:
        root, *path = command.split()
        guild_id = member.guild_id
        cmd = self.app_commands.find(root, CHAT_INPUT, guild_id)
        resolved: dict[str, dict[str, Any]] = {}
        schema = cmd.get("options") or []
        nest: list[dict[str, Any]] = []
        top = nest
        for name in path:  # walk into the subcommand (group)
            spec = next((o for o in schema if o["name"] == name and o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)), None)
            if spec is None:
                raise ValueError(f"/{root} has no subcommand {name!r}")
            inner: list[dict[str, Any]] = []
            nest.append({"type": spec["type"], "name": name, "options": inner})
            nest, schema = inner, spec.get("options") or []
        for name, value in options.items():
            spec = next((o for o in schema if o["name"] == name), None)
            if spec is None:
                raise ValueError(f"/{command} has no option {name!r}; it has {[o['name'] for o in schema]}")
            option: dict[str, Any] = {"type": spec["type"], "name": name,
                                      "value": self._option_value(spec["type"], value, resolved, guild_id)}
            if name == focused:
                option["focused"] = True
                option["value"] = str(value)  # Discord sends what was typed so far, as text
            nest.append(option)
        data: dict[str, Any] = {"id": cmd["id"], "name": root, "type": CHAT_INPUT, "options": top}
        if resolved:
            data["resolved"] = resolved
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
        return data

    def _option_value(self: Standin, kind: int, value: Any, resolved: dict[str, dict[str, Any]],
                      guild_id: int | None) -> Any:
        if isinstance(value, (Member, User)):
            user = value.user if isinstance(value, Member) else value
            resolved.setdefault("users", {})[str(user.id)] = user.payload()
            member = value if isinstance(value, Member) else (
                self.guilds[guild_id].members.get(user.id) if guild_id else None)
            if member is not None:
                guild = self.guilds[member.guild_id]
                member_data = {k: v for k, v in member.payload().items() if k != "user"}
                resolved.setdefault("members", {})[str(user.id)] = {
                    **member_data, "permissions": str(guild.permissions_of(member))}
            return str(user.id)
        if isinstance(value, Channel):
            resolved.setdefault("channels", {})[str(value.id)] = {
                "id": str(value.id), "name": value.name, "type": value.type, "permissions": "0",
                "guild_id": str(value.guild_id)}
            return str(value.id)
        if isinstance(value, Role):
            resolved.setdefault("roles", {})[str(value.id)] = value.payload()
            return str(value.id)
        if kind == INTEGER:
            return int(value)
        if kind == NUMBER:
            return float(value)
        if kind == BOOLEAN:
            return bool(value)
        return value

    async def _interact(self: Standin, member: Member, channel: Channel, kind: int,
                        data: dict[str, Any], name: str) -> Interaction:
        return await self._open_interaction(member, channel, kind, data, command_name=name)
