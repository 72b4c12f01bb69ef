"""Cross-replica cache invalidation on PostgreSQL: every write commit NOTIFYs, every replica LISTENs.

Each process caches the chat hot path (who is this user, what is on their 待办 list). Its own writes
empty its cache at once; this bus tells the other replicas within milliseconds. If the listening
connection drops, the cache's TTL still bounds staleness until it is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg
from sqlalchemy.engine import make_url

log = logging.getLogger("duban.notify")

CHANNEL = "duban_cache"


class CacheBus:
    def __init__(self, url: str, on_change: Callable[[], None]) -> None:
        self.dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.on_change = on_change
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending = False

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                self._conn = await asyncpg.connect(self.dsn, timeout=10)
                await self._conn.add_listener(CHANNEL, lambda *_: self.on_change())
                self.on_change()  # anything may have changed while we were not listening
                log.info("cache bus listening")
                while not stop.is_set() and not self._conn.is_closed():
                    if self._pending:
                        self._pending = False
                        await self._conn.execute(f"NOTIFY {CHANNEL}")
                    try:
                        await asyncio.wait_for(stop.wait(), 0.05)
                    except asyncio.TimeoutError:
                        pass
            except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
                log.warning("cache bus down; retrying", extra={"error": str(exc)})
                try:
                    await asyncio.wait_for(stop.wait(), 2.0)
                except asyncio.TimeoutError:
                    pass
            finally:
                if self._conn is not None and not self._conn.is_closed():
                    await self._conn.close()
                self._conn = None

    def publish(self) -> None:
        """Tell the other replicas; coalesced, so a burst of commits costs one NOTIFY per 50 ms."""
        self._pending = True
