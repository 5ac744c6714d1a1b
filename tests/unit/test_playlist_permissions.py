"""Who may make and change saved playlists in each scope (control/permissions.py). The server
scope's rows are in test_control.py's matrix; these are the member and global scopes, and the
owner. No voice channel is needed for any of it."""

from __future__ import annotations

import pytest

from music.control import Actor, Intent, judge
from music.playlists.model import Where

AUTHOR = 7
OWNER = Actor(user_id=1, privileged=True, moderator=True, admin=True, owner=True, listening=False)
ADMIN = Actor(user_id=6, privileged=True, moderator=True, admin=True, listening=False)
DJ = Actor(user_id=4, privileged=True)
MEMBER = Actor(user_id=AUTHOR, listening=False)
OTHER = Actor(user_id=3)
MAKE = (Intent.PLAYLIST_CREATE, Intent.PLAYLIST_SAVE, Intent.PLAYLIST_UPLOAD, Intent.PLAYLIST_COPY)
CHANGE = (Intent.PLAYLIST_APPEND, Intent.PLAYLIST_REMOVE, Intent.PLAYLIST_RENAME, Intent.PLAYLIST_DEDUPE,
          Intent.PLAYLIST_DELETE)


def allowed(intent: Intent, actor: Actor, where: Where, *, dj_mode: bool = True) -> bool:
    return judge(intent, actor, dj_mode=dj_mode, requester_id=AUTHOR, where=where).allowed


@pytest.mark.parametrize("intent", MAKE + CHANGE, ids=lambda i: i.value)
def test_a_members_own_scope_is_theirs_and_the_owners(intent: Intent) -> None:
    mine = Where.user(AUTHOR)
    assert allowed(intent, MEMBER, mine) and allowed(intent, OWNER, mine)
    for actor in (OTHER, DJ, ADMIN):
        assert not allowed(intent, actor, mine)
    assert "another member's" in judge(intent, ADMIN, dj_mode=True, where=mine).sentence


@pytest.mark.parametrize("intent", MAKE + CHANGE, ids=lambda i: i.value)
def test_global_playlists_are_the_owners_alone(intent: Intent) -> None:
    everywhere = Where.global_()
    assert allowed(intent, OWNER, everywhere)
    for actor in (MEMBER, OTHER, DJ, ADMIN):
        assert not allowed(intent, actor, everywhere, dj_mode=False)
    assert judge(intent, ADMIN, dj_mode=False, where=everywhere).sentence == "Only the bot owner can change global playlists."


def test_server_playlists_need_no_voice_channel_and_say_why_when_refused() -> None:
    server = Where.server(99)
    away_author = Actor(user_id=AUTHOR, listening=False)
    assert allowed(Intent.PLAYLIST_APPEND, away_author, server)
    verdict = judge(Intent.PLAYLIST_DELETE, OTHER, dj_mode=False, requester_id=AUTHOR, where=server)
    assert not verdict.allowed and verdict.sentence == "Only its author, DJs, mods and admins can change that playlist."
    verdict = judge(Intent.PLAYLIST_CREATE, OTHER, dj_mode=True, where=server)
    assert not verdict.allowed and "`--scope user` makes your own" in verdict.sentence


def test_the_owner_only_rows() -> None:
    assert judge(Intent.IMPORT_AUDIO, OWNER, dj_mode=False).allowed
    assert judge(Intent.IMPORT_AUDIO, ADMIN, dj_mode=False).sentence == "Only the bot owner can do that."
    assert judge(Intent.IMPORT_AUDIO, Actor.system_for(5), dj_mode=False).allowed
