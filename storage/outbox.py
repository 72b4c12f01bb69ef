"""The outbox's sending side: lease-based claims (procrastinate-style), so a row is worked on by one
sender at a time, and a sender that dies mid-send gives its rows back when the lease runs out.

PostgreSQL claims with `FOR UPDATE SKIP LOCKED` so replicas never wait on each other; SQLite has one
writer at a time anyway and claims in a single `UPDATE … RETURNING`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select, update

from storage.db import Database
from storage.models import OutboxRow

LEASE = dt.timedelta(seconds=60)


@dataclass(frozen=True)
class Claimed:
    id: int
    dedup_key: str
    recipient_id: int | None
    payload: dict[str, Any]
    attempts: int
    created_at: dt.datetime


def _due(now: dt.datetime) -> Any:
    return or_(
        and_(OutboxRow.status == "pending", OutboxRow.available_at <= now),
        and_(OutboxRow.status == "leased", OutboxRow.lease_until < now),  # a sender died holding it
    )


async def claim(
    db: Database, owner: str, now: dt.datetime, limit: int = 100, *, lease: dt.timedelta = LEASE
) -> list[Claimed]:
    cols = (
        OutboxRow.id,
        OutboxRow.dedup_key,
        OutboxRow.recipient_id,
        OutboxRow.payload,
        OutboxRow.attempts,
        OutboxRow.created_at,
    )
    async with db.sessions() as s, s.begin():
        pick = select(OutboxRow.id).where(_due(now)).order_by(OutboxRow.id).limit(limit)
        if db.dialect == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        stmt = (
            update(OutboxRow)
            .where(OutboxRow.id.in_(pick.scalar_subquery()))
            .values(status="leased", lease_owner=owner, lease_until=now + lease)
            .returning(*cols)
        )
        rows = (await s.execute(stmt)).all()
    return sorted((Claimed(*r) for r in rows), key=lambda c: c.id)


async def finish(
    db: Database,
    owner: str,
    now: dt.datetime,
    sent: list[int],
    retry: list[tuple[int, dt.datetime, str]],
    dead: list[tuple[int, str]],
) -> None:
    """Record outcomes for rows this owner still holds; a row whose lease was lost is left alone."""
    mine = OutboxRow.lease_owner == owner
    async with db.sessions() as s, s.begin():
        if sent:
            await s.execute(
                update(OutboxRow)
                .where(OutboxRow.id.in_(sent), mine)
                .values(status="sent", sent_at=now, lease_owner=None, lease_until=None, attempts=OutboxRow.attempts + 1)
            )
        for row_id, when, err in retry:
            await s.execute(
                update(OutboxRow)
                .where(OutboxRow.id == row_id, mine)
                .values(
                    status="pending",
                    available_at=when,
                    lease_owner=None,
                    lease_until=None,
                    attempts=OutboxRow.attempts + 1,
                    last_error=err[:1000],
                )
            )
        for row_id, err in dead:
            await s.execute(
                update(OutboxRow)
                .where(OutboxRow.id == row_id, mine)
                .values(status="dead", lease_owner=None, lease_until=None, attempts=OutboxRow.attempts + 1, last_error=err[:1000])
            )


async def release(db: Database, owner: str, ids: list[int], when: dt.datetime) -> None:
    """Give rows back untouched (pacing): they were not attempted, so attempts do not grow."""
    if not ids:
        return
    async with db.sessions() as s, s.begin():
        await s.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_(ids), OutboxRow.lease_owner == owner)
            .values(status="pending", available_at=when, lease_owner=None, lease_until=None)
        )


async def recent_sends(db: Database, recipient_ids: list[int], since: dt.datetime) -> dict[int, int]:
    """Messages sent to each recipient since `since`, across every replica (WeCom drops >30/min silently)."""
    if not recipient_ids:
        return {}
    async with db.read_sessions() as s:
        q = (
            select(OutboxRow.recipient_id, func.count())
            .where(OutboxRow.recipient_id.in_(recipient_ids), OutboxRow.status == "sent", OutboxRow.sent_at >= since)
            .group_by(OutboxRow.recipient_id)
        )
        return {rid: n for rid, n in (await s.execute(q)).all()}


@dataclass(frozen=True)
class OutboxView:
    id: int
    dedup_key: str
    recipient_id: int | None
    status: str
    attempts: int
    last_error: str | None
    created_at: dt.datetime
    text: str


async def listing(db: Database, status: str | None = "dead", limit: int = 100) -> list[OutboxView]:
    async with db.read_sessions() as s:
        q = select(OutboxRow).order_by(OutboxRow.id.desc()).limit(limit)
        if status:
            q = q.where(OutboxRow.status == status)
        return [
            OutboxView(r.id, r.dedup_key, r.recipient_id, r.status, r.attempts, r.last_error, r.created_at,
                       str(r.payload.get("text", "")))
            for r in (await s.execute(q)).scalars()
        ]


async def counts(db: Database) -> dict[str, int]:
    async with db.read_sessions() as s:
        rows = await s.execute(select(OutboxRow.status, func.count()).group_by(OutboxRow.status))
        return {st: n for st, n in rows.all()}


async def requeue_dead(db: Database, ids: list[int], now: dt.datetime) -> int:
    """The office may send dead letters again once the cause (a wrong user id, say) is fixed."""
    async with db.sessions() as s, s.begin():
        res = await s.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_(ids), OutboxRow.status == "dead")
            .values(status="pending", available_at=now, attempts=0, last_error=None)
        )
        return int(res.rowcount or 0)
