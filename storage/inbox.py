"""The inbox: platform event ids we have seen, so a platform's retry is recognised and changes nothing.

Callbacks arrive many at a time, and a commit per callback would cap the whole path at the database's
commit rate. `InboxWriter` groups the keys that arrive while one commit is under way into the next
single `INSERT … ON CONFLICT DO NOTHING RETURNING`, and tells each caller whether its key was new.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable

from sqlalchemy import delete

from storage.db import Database
from storage.models import InboxRow
from storage.repositories import dialect_insert

log = logging.getLogger("duban.inbox")

MAX_BATCH = 500


class InboxWriter:
    def __init__(self, db: Database, clock: Callable[[], dt.datetime]) -> None:
        self.db = db
        self.clock = clock
        self._pending: list[tuple[str, str, asyncio.Future[bool]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="inbox-writer")

    async def close(self) -> None:
        self._closed = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def first_time(self, platform: str, key: str) -> bool:
        """True if this (platform, key) was never recorded before; it is recorded now either way."""
        if self._closed:
            raise RuntimeError("inbox writer is closed")
        self.start()
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((platform, key[:400], fut))
        self._wakeup.set()
        return await fut

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                try:
                    fresh = await self._insert(batch)
                except Exception as exc:  # the callers answer the platform with an error, so it retries
                    log.exception("inbox write failed", extra={"batch": len(batch)})
                    for *_, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for platform, key, fut in batch:
                    if not fut.done():
                        fut.set_result((platform, key) in fresh)
                        fresh.discard((platform, key))  # the same key twice in one batch: only the first is new
            if self._closed and not self._pending:
                return

    async def _insert(self, batch: list[tuple[str, str, asyncio.Future[bool]]]) -> set[tuple[str, str]]:
        now = self.clock()
        values = [{"platform": p, "event_key": k, "received_at": now} for p, k, _ in batch]
        async with self.db.sessions() as s, s.begin():
            stmt = (
                dialect_insert(s, InboxRow)
                .values(values)
                .on_conflict_do_nothing(index_elements=["platform", "event_key"])
                .returning(InboxRow.platform, InboxRow.event_key)
            )
            return {(p, k) for p, k in (await s.execute(stmt)).all()}


async def forget_before(db: Database, when: dt.datetime) -> int:
    """Platforms retry within minutes; keys older than a few days only cost space."""
    async with db.sessions() as s, s.begin():
        res = await s.execute(delete(InboxRow).where(InboxRow.received_at < when))
        return int(res.rowcount or 0)
