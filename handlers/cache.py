"""A small read cache for the chat hot path (who is this user, do they owe us a 退回 reason, what is
on their 待办 list), so a burst of callbacks does not cost a database round trip each.

Exact within one process: every commit this process makes bumps `generation`, which empties it.
On PostgreSQL the other replicas hear of each commit through storage.notify (LISTEN/NOTIFY) and
empty theirs too; `ttl` only bounds staleness while that connection is down.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any

MISSING = object()


class ReadCache:
    def __init__(self, ttl: float = 30.0, max_entries: int = 20_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self.generation = 0
        self._data: dict[Hashable, tuple[Any, int, float]] = {}

    def bump(self) -> None:
        self.generation += 1
        self._data.clear()

    def get(self, key: Hashable) -> Any:
        entry = self._data.get(key)
        if entry is None:
            return MISSING
        value, gen, at = entry
        if gen != self.generation or self.clock() - at > self.ttl:
            del self._data[key]
            return MISSING
        return value

    def put(self, key: Hashable, value: Any, generation: int) -> None:
        """`generation` is the one seen before the read began: a write that landed meanwhile wins."""
        if generation != self.generation:
            return
        if len(self._data) >= self.max_entries:
            self._data.clear()
        self._data[key] = (value, generation, self.clock())
