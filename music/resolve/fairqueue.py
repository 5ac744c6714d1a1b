"""The pending jobs of one priority, in the order fairness asks for (music.resolve.jobs)."""

from __future__ import annotations

import collections
from typing import Any

from music.resolve.job import Job


class FairQueue:
    """Pending jobs of one priority: guilds in turn, members in turn within a guild, FIFO per
    member. Popping moves the guild and the member to the back of their rotations."""

    def __init__(self) -> None:
        self._guilds: collections.OrderedDict[
            int, collections.OrderedDict[int, collections.deque[Job[Any]]]
        ] = collections.OrderedDict()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def push(self, job: Job[Any], *, front: bool = False) -> None:
        members = self._guilds.setdefault(job.guild_id, collections.OrderedDict())
        jobs = members.setdefault(job.requester_id, collections.deque())
        if front:
            jobs.appendleft(job)
        else:
            jobs.append(job)
        self._count += 1

    def pop(self) -> Job[Any] | None:
        if not self._guilds:
            return None
        guild_id, members = next(iter(self._guilds.items()))
        member_id, jobs = next(iter(members.items()))
        job = jobs.popleft()
        if jobs:
            members.move_to_end(member_id)
        else:
            del members[member_id]
        if members:
            self._guilds.move_to_end(guild_id)
        else:
            del self._guilds[guild_id]
        self._count -= 1
        return job

    def remove(self, job: Job[Any]) -> bool:
        members = self._guilds.get(job.guild_id)
        if members is None:
            return False
        jobs = members.get(job.requester_id)
        if jobs is None or job not in jobs:
            return False
        jobs.remove(job)
        if not jobs:
            del members[job.requester_id]
        if not members:
            del self._guilds[job.guild_id]
        self._count -= 1
        return True
