"""The soak's split of the bot's memory (benchmarks/soak_worker.py native_heap): the C heap in
use follows what is held, and what is freed goes to "free" (kept in malloc's arenas) or back
to the system, so the report can tell a holder's growth from the allocator's."""

from __future__ import annotations

import pytest

from benchmarks.soak_worker import MALLINFO2, native_heap

MB = 2**20


@pytest.mark.skipif(MALLINFO2 is None, reason="glibc 2.33+ only")
def test_the_c_heap_in_use_follows_what_is_held():
    before = native_heap()["malloc_in_use"]
    held = [bytearray(64 * 1024) for _ in range(160)]  # 10 MB of malloc'd buffers
    during = native_heap()["malloc_in_use"]
    del held
    after = native_heap()["malloc_in_use"]
    assert before is not None and during is not None and after is not None
    assert during - before >= 9 * MB
    assert during - after >= 9 * MB
