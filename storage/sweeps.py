"""SQL for the reminder sweep: a few set-based statements, however many items are open."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import and_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.items import OPEN_STATUSES, ItemKind, Status
from domain.roles import Role
from storage.models import BranchRow, ItemRow, LeaderUnitRow, PersonRow, ProgressRow, ReminderRow
from storage.repositories import OutboxRepository, dialect_insert

SWEEP_LOCK = 0x64756261  # "duba": one sweep at a time across PostgreSQL replicas
CHUNK = 5000  # rows per executemany; the driver batches these further (insertmanyvalues)


class OpenItem(NamedTuple):
    """One open item and its lead branch: a named tuple, as 100,000 of them build far faster than frozen dataclasses."""

    id: int
    code: str
    title: str
    kind: ItemKind
    status: Status
    deadline: dt.date
    created_at: dt.datetime
    last_published_at: dt.datetime | None
    lead_unit_id: int
    leader_id: int | None
    handler_id: int | None
    signed_at: dt.datetime | None


async def lock_sweep(s: AsyncSession) -> bool:
    """PostgreSQL: a transaction-scoped advisory lock, so replicas never sweep at once (each would
    otherwise split one person's digest in two). SQLite: BEGIN IMMEDIATE already serialises writers."""
    if s.bind.dialect.name != "postgresql":
        await s.execute(text("SELECT 1"))  # takes the write lock now (BEGIN IMMEDIATE)
        return True
    return bool((await s.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": SWEEP_LOCK})).scalar())


async def open_items(s: AsyncSession) -> list[OpenItem]:
    q = (
        select(
            ItemRow.id, ItemRow.code, ItemRow.title, ItemRow.kind, ItemRow.status, ItemRow.deadline,
            ItemRow.created_at, ItemRow.last_published_at, ItemRow.lead_unit_id, ItemRow.leader_id,
            BranchRow.handler_id, BranchRow.signed_at,
        )
        .join(BranchRow, and_(BranchRow.item_id == ItemRow.id, BranchRow.is_lead.is_(True)))
        .where(ItemRow.status.in_([st.value for st in OPEN_STATUSES]))
    )
    conn = await s.connection()  # Core execution: plain rows, without the ORM's per-row loading
    rows = (await conn.execute(q)).all()
    kinds = {k.value: k for k in ItemKind}
    statuses = {st.value: st for st in Status}
    return [
        OpenItem(r[0], r[1], r[2], kinds[r[3]], statuses[r[4]], r[5], r[6], r[7], r[8], r[9], r[10], r[11])
        for r in rows
    ]


async def reported_since(s: AsyncSession, since: dt.datetime) -> set[int]:
    """Periodic items with progress reported (pending or published) since the period began."""
    q = (
        select(ProgressRow.item_id)
        .join(ItemRow, ItemRow.id == ProgressRow.item_id)
        .where(ItemRow.kind == ItemKind.PERIODIC.value, ProgressRow.created_at >= since)
        .distinct()
    )
    return {r[0] for r in (await s.execute(q)).all()}


async def claim_keys(s: AsyncSession, rows: list[dict[str, Any]]) -> set[str]:
    """Insert reminder keys; return those that were new. A key already there was sent before.

    One cached single-row statement run as an executemany: SQLAlchemy's "insertmanyvalues" sends it
    as multi-row INSERT … RETURNING batches. (`.values(list)` built and compiled a new statement with
    a bind parameter per value for every chunk instead: ~35 s for 75,000 keys.)"""
    table = ReminderRow.__table__
    stmt = dialect_insert(s, table).on_conflict_do_nothing(index_elements=["key"]).returning(table.c.key)
    fresh: set[str] = set()
    for start in range(0, len(rows), CHUNK):
        fresh.update(k for (k,) in (await s.execute(stmt, rows[start : start + CHUNK])).all())
    return fresh


@dataclass
class Audiences:
    principals: dict[int, list[int]]  # unit → principal ids
    leaders: dict[int, list[int]]  # unit → leaders in charge
    office: list[int]
    names: dict[int, str]


async def audiences(s: AsyncSession) -> Audiences:
    principals: dict[int, list[int]] = defaultdict(list)
    office: list[int] = []
    names: dict[int, str] = {}
    rows = await s.execute(select(PersonRow.id, PersonRow.unit_id, PersonRow.roles, PersonRow.name))
    for pid, unit_id, roles, name in rows.all():
        names[pid] = name
        rs = roles.split(",")
        if Role.PRINCIPAL.value in rs:
            principals[unit_id].append(pid)
        if Role.OFFICE.value in rs:
            office.append(pid)
    leaders: dict[int, list[int]] = defaultdict(list)
    for pid, uid in (await s.execute(select(LeaderUnitRow.person_id, LeaderUnitRow.unit_id))).all():
        leaders[uid].append(pid)
    return Audiences(dict(principals), dict(leaders), office, names)


async def queue_outbox(s: AsyncSession, rows: list[tuple[str, int | None, dict[str, Any]]], now: dt.datetime) -> int:
    return await OutboxRepository(s).add(rows, now)
