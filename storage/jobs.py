"""Once-per-period job claims and the spot-check (抽查) records."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.views import SpotCheck
from storage.models import JobRunRow, LedgerRow, SpotCheckRow
from storage.repositories import dialect_insert


async def claim_run(s: AsyncSession, key: str, now: dt.datetime) -> bool:
    """True for exactly one caller per key, on any number of replicas."""
    stmt = dialect_insert(s, JobRunRow).values(key=key, created_at=now).on_conflict_do_nothing(index_elements=["key"])
    return bool((await s.execute(stmt.returning(JobRunRow.key))).first())


async def has_run(s: AsyncSession, key: str) -> bool:
    """Whether a once-per-period job already ran (a cheap read before preparing it again)."""
    return (await s.execute(select(JobRunRow.key).where(JobRunRow.key == key))).first() is not None


def _check(r: SpotCheckRow) -> SpotCheck:
    return SpotCheck(r.id, r.month, r.unit_id, r.ledger_entries, r.asked_at, r.answered_by, r.answered_at, r.answer)


async def ledger_counts(s: AsyncSession) -> dict[int, int]:
    rows = await s.execute(select(LedgerRow.unit_id, func.count()).group_by(LedgerRow.unit_id))
    return {u: n for u, n in rows.all()}


async def add_checks(s: AsyncSession, month: str, units: dict[int, int], now: dt.datetime) -> None:
    for unit_id, entries in units.items():
        s.add(SpotCheckRow(month=month, unit_id=unit_id, ledger_entries=entries, asked_at=now))
    await s.flush()


async def checks_for(s: AsyncSession, month: str) -> list[SpotCheck]:
    q = select(SpotCheckRow).where(SpotCheckRow.month == month).order_by(SpotCheckRow.id)
    return [_check(r) for r in (await s.execute(q)).scalars()]


async def answer(s: AsyncSession, month: str, unit_id: int, person_id: int, text: str, now: dt.datetime) -> bool:
    res = await s.execute(
        update(SpotCheckRow)
        .where(SpotCheckRow.month == month, SpotCheckRow.unit_id == unit_id)
        .values(answered_by=person_id, answered_at=now, answer=text[:500])
    )
    return bool(res.rowcount)


class JobRepository:
    """Once-per-period claims and spot checks, bound to one unit of work's session."""

    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def claim_run(self, key: str, now: dt.datetime) -> bool:
        return await claim_run(self.s, key, now)

    async def has_run(self, key: str) -> bool:
        return await has_run(self.s, key)

    async def ledger_counts(self) -> dict[int, int]:
        return await ledger_counts(self.s)

    async def add_checks(self, month: str, units: dict[int, int], now: dt.datetime) -> None:
        await add_checks(self.s, month, units, now)

    async def checks_for(self, month: str) -> list[SpotCheck]:
        return await checks_for(self.s, month)

    async def answer(self, month: str, unit_id: int, person_id: int, text: str, now: dt.datetime) -> bool:
        return await answer(self.s, month, unit_id, person_id, text, now)
