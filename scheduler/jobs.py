"""APScheduler 3 in the aiohttp loop: short idempotent ticks with fixed ids on every replica.

Deadlines live as rows, never as one job per item; each tick asks the database what is due, and the
database (unique keys, an advisory lock) decides who does the work. `coalesce` folds missed runs into
one, and the misfire grace lets a paused or suspended process still run its tick when it wakes.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from domain.reminders import Ladder
from handlers.service import Supervision
from scheduler.reports import monthly_spot_check, weekly_summary
from scheduler.sweep import SweepResult, sweep
from storage.db import Database
from storage.inbox import forget_before

log = logging.getLogger("duban.scheduler")

MISFIRE_GRACE = 6 * 3600


class Jobs:
    def __init__(
        self,
        db: Database,
        svc: Supervision,
        ladder: Ladder,
        *,
        report_at: dt.time,
        spot_check_units: int,
        sweep_seconds: int,
        poke: Callable[[], None],
    ) -> None:
        self.db = db
        self.svc = svc
        self.ladder = ladder
        self.report_at = report_at
        self.spot_check_units = spot_check_units
        self.sweep_seconds = sweep_seconds
        self.poke = poke
        self.scheduler: AsyncIOScheduler | None = None

    def start(self) -> None:
        """Must run inside the event loop (AsyncIOScheduler binds to the running loop)."""
        s = AsyncIOScheduler(timezone=self.svc.tz)
        common = {"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE, "replace_existing": True}
        s.add_job(self.sweep, IntervalTrigger(seconds=self.sweep_seconds), id="reminder-sweep", next_run_time=dt.datetime.now(self.svc.tz), **common)
        s.add_job(self.reports, IntervalTrigger(minutes=15), id="reports", **common)
        s.add_job(self.housekeeping, IntervalTrigger(hours=6), id="housekeeping", **common)
        s.start()
        self.scheduler = s

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None

    async def sweep(self, at: dt.datetime | None = None) -> SweepResult:
        try:
            real = self.svc.now()
            result = await sweep(self.db, self.svc.calendar, self.svc.tz, at or real, self.ladder, queued_at=real)
        except Exception:
            log.exception("sweep failed")
            raise
        if result.messages:
            self.poke()
        return result

    async def reports(self) -> None:
        now = self.svc.now()
        try:
            if await weekly_summary(self.svc, now, self.report_at):
                self.poke()
            if await monthly_spot_check(self.svc, now, self.report_at, self.spot_check_units):
                self.poke()
        except Exception:
            log.exception("report job failed")

    async def housekeeping(self) -> None:
        removed = await forget_before(self.db, self.svc.now() - dt.timedelta(days=7))
        log.info("inbox keys forgotten", extra={"count": removed})
