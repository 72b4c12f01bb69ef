"""Repositories: domain objects in, domain objects out. SQL stays here.

Items are mapped by hand rather than by the ORM so each read and write is a known, small number of
statements, and so the optimistic lock is one `UPDATE … WHERE version = :seen`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import ConcurrentUpdate
from domain.items import (
    OPEN_STATUSES,
    Branch,
    BranchStatus,
    Extension,
    ExtensionStatus,
    Item,
    ItemEvent,
    ItemKind,
    ProgressEntry,
    ProgressStatus,
    Status,
)
from domain.ledger import LedgerEntry
from domain.views import ItemSummary, Prompt, TimelineEntry
from domain.roles import Channel, Person, Role, Unit
from storage.models import (
    BranchRow,
    CalendarOverrideRow,
    CardRow,
    CodeCounterRow,
    EventRow,
    ExtensionRow,
    ItemRow,
    LeaderUnitRow,
    LedgerRow,
    OutboxRow,
    PersonRow,
    ProgressRow,
    PromptRow,
    ReminderRow,
    UnitRow,
)


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    """INSERT … ON CONFLICT is spelled the same way on both databases, but lives in each dialect."""
    name = session.bind.dialect.name if session.bind is not None else "sqlite"
    return (postgresql.insert if name == "postgresql" else sqlite.insert)(table)


# ---- units and people -----------------------------------------------------------------------------


class UnitRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def by_name(self, name: str) -> Unit | None:
        row = (await self.s.execute(select(UnitRow).where(UnitRow.name == name))).scalar_one_or_none()
        return Unit(row.id, row.name) if row else None

    async def get(self, unit_id: int) -> Unit | None:
        row = await self.s.get(UnitRow, unit_id)
        return Unit(row.id, row.name) if row else None

    async def ensure(self, name: str) -> Unit:
        existing = await self.by_name(name)
        if existing:
            return existing
        row = UnitRow(name=name)
        self.s.add(row)
        await self.s.flush()
        return Unit(row.id, row.name)

    async def all(self) -> list[Unit]:
        rows = (await self.s.execute(select(UnitRow).order_by(UnitRow.id))).scalars()
        return [Unit(r.id, r.name) for r in rows]

    async def names(self, ids: Iterable[int]) -> dict[int, str]:
        ids = list(set(ids))
        if not ids:
            return {}
        rows = await self.s.execute(select(UnitRow.id, UnitRow.name).where(UnitRow.id.in_(ids)))
        return {i: n for i, n in rows.all()}


def _person(row: PersonRow, in_charge: Iterable[int]) -> Person:
    return Person(
        id=row.id,
        name=row.name,
        unit_id=row.unit_id,
        roles=frozenset(Role(r) for r in row.roles.split(",") if r),
        wecom_id=row.wecom_id,
        dingtalk_id=row.dingtalk_id,
        units_in_charge=frozenset(in_charge),
        preferred_channel=Channel(row.preferred_channel),
    )


class PersonRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def _load(self, rows: Sequence[PersonRow]) -> list[Person]:
        if not rows:
            return []
        leaders = [r.id for r in rows if Role.LEADER.value in r.roles.split(",")]
        charge: dict[int, list[int]] = {}
        if leaders:
            res = await self.s.execute(
                select(LeaderUnitRow.person_id, LeaderUnitRow.unit_id).where(LeaderUnitRow.person_id.in_(leaders))
            )
            for pid, uid in res.all():
                charge.setdefault(pid, []).append(uid)
        return [_person(r, charge.get(r.id, ())) for r in rows]

    async def _where(self, *conds: Any) -> list[Person]:
        rows = (await self.s.execute(select(PersonRow).where(*conds).order_by(PersonRow.id))).scalars().all()
        return await self._load(rows)

    async def get(self, person_id: int) -> Person | None:
        found = await self._where(PersonRow.id == person_id)
        return found[0] if found else None

    async def many(self, ids: Iterable[int]) -> dict[int, Person]:
        ids = list(set(ids))
        if not ids:
            return {}
        return {p.id: p for p in await self._where(PersonRow.id.in_(ids))}

    async def by_platform(self, channel: Channel, platform_id: str) -> Person | None:
        col = PersonRow.wecom_id if channel is Channel.WECOM else PersonRow.dingtalk_id
        found = await self._where(col == platform_id)
        return found[0] if found else None

    async def by_name(self, name: str, unit_id: int | None = None) -> list[Person]:
        conds = [PersonRow.name == name]
        if unit_id is not None:
            conds.append(PersonRow.unit_id == unit_id)
        return await self._where(*conds)

    async def with_role(self, role: Role, unit_id: int | None = None) -> list[Person]:
        # roles is a short comma-joined list; a LIKE on it is exact enough because role words never nest.
        conds = [PersonRow.roles.like(f"%{role.value}%")]
        if unit_id is not None:
            conds.append(PersonRow.unit_id == unit_id)
        return await self._where(*conds)

    async def leaders_in_charge_of(self, unit_id: int) -> list[Person]:
        sub = select(LeaderUnitRow.person_id).where(LeaderUnitRow.unit_id == unit_id)
        return await self._where(PersonRow.id.in_(sub))

    async def all(self) -> list[Person]:
        return await self._where()

    async def upsert(
        self,
        *,
        name: str,
        unit_id: int,
        roles: frozenset[Role],
        wecom_id: str | None,
        dingtalk_id: str | None,
        units_in_charge: Iterable[int] = (),
        preferred_channel: Channel = Channel.WECOM,
    ) -> Person:
        """Org imports are repeatable: a person is matched by platform id, then by (unit, name)."""
        row = None
        for col, value in ((PersonRow.wecom_id, wecom_id), (PersonRow.dingtalk_id, dingtalk_id)):
            if value and row is None:
                row = (await self.s.execute(select(PersonRow).where(col == value))).scalar_one_or_none()
        if row is None:
            row = (
                await self.s.execute(select(PersonRow).where(PersonRow.unit_id == unit_id, PersonRow.name == name))
            ).scalar_one_or_none()
        if row is None:
            row = PersonRow()
            self.s.add(row)
        row.name, row.unit_id = name, unit_id
        row.roles = ",".join(sorted(r.value for r in roles))
        row.wecom_id, row.dingtalk_id = wecom_id or None, dingtalk_id or None
        row.preferred_channel = preferred_channel.value
        await self.s.flush()
        await self.s.execute(delete(LeaderUnitRow).where(LeaderUnitRow.person_id == row.id))
        charge = sorted(set(units_in_charge))
        for uid in charge:
            self.s.add(LeaderUnitRow(person_id=row.id, unit_id=uid))
        await self.s.flush()
        return _person(row, charge)


# ---- items --------------------------------------------------------------------------------------------

_ITEM_FIELDS = (
    "code",
    "kind",
    "title",
    "content",
    "source_title",
    "source_number",
    "category",
    "lead_unit_id",
    "deadline",
    "leader_id",
    "status",
    "created_at",
    "created_by",
    "closure_result",
    "closed_at",
    "last_return_reason",
    "cancel_reason",
    "urge_count",
    "return_count",
    "last_published_at",
)


def _item_values(item: Item) -> dict[str, Any]:
    v = {f: getattr(item, f) for f in _ITEM_FIELDS}
    v["kind"], v["status"] = item.kind.value, item.status.value
    return v


def _branch_values(b: Branch) -> dict[str, Any]:
    return {"handler_id": b.handler_id, "status": b.status.value, "signed_at": b.signed_at}


def _progress_values(p: ProgressEntry) -> dict[str, Any]:
    return {
        "unit_id": p.unit_id,
        "author_id": p.author_id,
        "text": p.text,
        "created_at": p.created_at,
        "status": p.status.value,
        "reviewer_id": p.reviewer_id,
        "reviewed_at": p.reviewed_at,
        "return_reason": p.return_reason,
    }


def _extension_values(e: Extension) -> dict[str, Any]:
    return {
        "requested_by": e.requested_by,
        "requested_at": e.requested_at,
        "old_deadline": e.old_deadline,
        "new_deadline": e.new_deadline,
        "reason": e.reason,
        "status": e.status.value,
        "decided_by": e.decided_by,
        "decided_at": e.decided_at,
        "refuse_reason": e.refuse_reason,
    }


_SUMMARY_COLS = (
    ItemRow.id,
    ItemRow.code,
    ItemRow.kind,
    ItemRow.title,
    ItemRow.status,
    ItemRow.deadline,
    ItemRow.lead_unit_id,
    ItemRow.leader_id,
    ItemRow.created_at,
    ItemRow.closed_at,
    ItemRow.last_published_at,
    ItemRow.urge_count,
    ItemRow.return_count,
)


def _summary(r: Any) -> ItemSummary:
    return ItemSummary(
        r.id,
        r.code,
        ItemKind(r.kind),
        r.title,
        Status(r.status),
        r.deadline,
        r.lead_unit_id,
        r.leader_id,
        r.created_at,
        r.closed_at,
        r.last_published_at,
        r.urge_count,
        r.return_count,
    )


class ItemRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session
        # child snapshots as loaded, so save() writes only what changed
        self._seen: dict[int, dict[str, Any]] = {}

    async def next_code_seq(self, year: int) -> int:
        """Atomic per-year counter: concurrent creations never share a code."""
        stmt = dialect_insert(self.s, CodeCounterRow).values(year=year, last=1)
        stmt = stmt.on_conflict_do_update(
            index_elements=[CodeCounterRow.year], set_={"last": CodeCounterRow.last + 1}
        ).returning(CodeCounterRow.last)
        return int((await self.s.execute(stmt)).scalar_one())

    async def add(self, item: Item) -> None:
        row = ItemRow(**_item_values(item), version=0)
        self.s.add(row)
        await self.s.flush()
        item.id, item.version = row.id, 0
        for pos, b in enumerate(item.branches):
            br = BranchRow(item_id=row.id, unit_id=b.unit_id, position=pos, is_lead=b.is_lead, **_branch_values(b))
            self.s.add(br)
        await self.s.flush()
        await self._reload_children(item)

    async def _reload_children(self, item: Item) -> None:
        assert item.id is not None
        loaded = await self._children(item.id)
        item.branches, item.progress, item.extensions = loaded
        self._remember(item)

    def _remember(self, item: Item) -> None:
        assert item.id is not None
        self._seen[item.id] = {
            "b": {b.id: _branch_values(b) for b in item.branches},
            "p": {p.id: _progress_values(p) for p in item.progress},
            "e": {e.id: _extension_values(e) for e in item.extensions},
        }

    async def _children(self, item_id: int) -> tuple[list[Branch], list[ProgressEntry], list[Extension]]:
        brs = (
            await self.s.execute(select(BranchRow).where(BranchRow.item_id == item_id).order_by(BranchRow.position))
        ).scalars()
        branches = [
            Branch(
                unit_id=b.unit_id,
                is_lead=b.is_lead,
                handler_id=b.handler_id,
                status=BranchStatus(b.status),
                signed_at=b.signed_at,
                id=b.id,
            )
            for b in brs
        ]
        prs = (
            await self.s.execute(select(ProgressRow).where(ProgressRow.item_id == item_id).order_by(ProgressRow.id))
        ).scalars()
        progress = [
            ProgressEntry(
                unit_id=p.unit_id,
                author_id=p.author_id,
                text=p.text,
                created_at=p.created_at,
                status=ProgressStatus(p.status),
                reviewer_id=p.reviewer_id,
                reviewed_at=p.reviewed_at,
                return_reason=p.return_reason,
                id=p.id,
            )
            for p in prs
        ]
        exs = (
            await self.s.execute(select(ExtensionRow).where(ExtensionRow.item_id == item_id).order_by(ExtensionRow.id))
        ).scalars()
        extensions = [
            Extension(
                requested_by=e.requested_by,
                requested_at=e.requested_at,
                old_deadline=e.old_deadline,
                new_deadline=e.new_deadline,
                reason=e.reason,
                status=ExtensionStatus(e.status),
                decided_by=e.decided_by,
                decided_at=e.decided_at,
                refuse_reason=e.refuse_reason,
                id=e.id,
            )
            for e in exs
        ]
        return branches, progress, extensions

    async def get(self, code: str) -> Item | None:
        row = (await self.s.execute(select(ItemRow).where(ItemRow.code == code))).scalar_one_or_none()
        if row is None:
            return None
        branches, progress, extensions = await self._children(row.id)
        values = {f: getattr(row, f) for f in _ITEM_FIELDS}
        values["kind"], values["status"] = ItemKind(row.kind), Status(row.status)
        item = Item(
            **values, branches=branches, progress=progress, extensions=extensions, version=row.version, id=row.id
        )
        self._remember(item)
        return item

    async def save(self, item: Item) -> None:
        """Write the item back if nobody else did in between; otherwise raise ConcurrentUpdate."""
        assert item.id is not None, "save() is for items that were added or loaded"
        res = await self.s.execute(
            update(ItemRow)
            .where(ItemRow.id == item.id, ItemRow.version == item.version)
            .values(**_item_values(item), version=item.version + 1)
        )
        if res.rowcount != 1:
            raise ConcurrentUpdate()
        item.version += 1
        seen = self._seen.get(item.id, {"b": {}, "p": {}, "e": {}})
        for b in item.branches:
            if b.id is not None and seen["b"].get(b.id) != _branch_values(b):
                await self.s.execute(update(BranchRow).where(BranchRow.id == b.id).values(**_branch_values(b)))
        for p in item.progress:
            if p.id is None:
                row = ProgressRow(item_id=item.id, **_progress_values(p))
                self.s.add(row)
                await self.s.flush()
                p.id = row.id
            elif seen["p"].get(p.id) != _progress_values(p):
                await self.s.execute(update(ProgressRow).where(ProgressRow.id == p.id).values(**_progress_values(p)))
        for e in item.extensions:
            if e.id is None:
                erow = ExtensionRow(item_id=item.id, **_extension_values(e))
                self.s.add(erow)
                await self.s.flush()
                e.id = erow.id
            elif seen["e"].get(e.id) != _extension_values(e):
                await self.s.execute(
                    update(ExtensionRow).where(ExtensionRow.id == e.id).values(**_extension_values(e))
                )
        self._remember(item)

    async def list(
        self,
        *,
        statuses: Iterable[Status] | None = None,
        unit_id: int | None = None,
        kind: ItemKind | None = None,
        limit: int = 200,
        offset: int = 0,
    ) -> list[ItemSummary]:
        q = select(*_SUMMARY_COLS)
        if statuses is not None:
            q = q.where(ItemRow.status.in_([s.value for s in statuses]))
        if kind is not None:
            q = q.where(ItemRow.kind == kind.value)
        if unit_id is not None:
            q = q.where(ItemRow.id.in_(select(BranchRow.item_id).where(BranchRow.unit_id == unit_id)))
        q = q.order_by(ItemRow.deadline, ItemRow.id).limit(limit).offset(offset)
        return [_summary(r) for r in (await self.s.execute(q)).all()]

    async def open_for_person(self, person: Person) -> list[tuple[ItemSummary, str]]:
        """Items waiting on this person, each with why: 'handle' (their branch) or a review they owe.

        One query: the person's own branches, their unit's items when they are its principal, and the
        items whose review stage is theirs as office or leader.
        """
        conds = [BranchRow.handler_id == person.id]
        if Role.PRINCIPAL in person.roles:
            conds.append(BranchRow.unit_id == person.unit_id)
        branch_items = select(BranchRow.item_id).where(or_(*conds))
        item_conds = [ItemRow.id.in_(branch_items)]
        if Role.OFFICE in person.roles:
            item_conds.append(ItemRow.status == Status.OFFICE_REVIEW.value)
        if Role.LEADER in person.roles:
            mine = or_(
                ItemRow.leader_id == person.id,
                and_(ItemRow.leader_id.is_(None), ItemRow.lead_unit_id.in_(list(person.units_in_charge) or [-1])),
            )
            item_conds.append(and_(mine, ItemRow.status.in_([Status.LEADER_REVIEW.value, Status.DRAFT.value])))
        q = (
            select(*_SUMMARY_COLS)
            .where(or_(*item_conds), ItemRow.status.in_([s.value for s in OPEN_STATUSES | {Status.DRAFT}]))
            .order_by(ItemRow.deadline, ItemRow.id)
            .limit(200)
        )
        return [(_summary(r), "") for r in (await self.s.execute(q)).all()]

    async def count_by_unit(self) -> list[dict[str, Any]]:
        """Raw per-lead-unit rows for statistics: status, deadline, closed_at, urge and return counts."""
        reminded = (
            select(ReminderRow.item_id)
            .where(ReminderRow.item_id == ItemRow.id, ReminderRow.rule.in_(["overdue", "escalate"]))
            .exists()
        )
        q = select(
            ItemRow.lead_unit_id,
            ItemRow.status,
            ItemRow.deadline,
            ItemRow.closed_at,
            (ItemRow.urge_count + case((reminded, 1), else_=0)).label("urge_count"),
            ItemRow.return_count,
        ).where(ItemRow.status != Status.DRAFT.value)
        return [dict(r._mapping) for r in (await self.s.execute(q)).all()]


# ---- events, outbox, ledger, calendar -----------------------------------------------------------------


class EventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def record(self, item_id: int | None, events: Iterable[ItemEvent], channel: str) -> None:
        rows = [
            {"item_id": item_id, "actor_id": e.actor_id, "at": e.at, "channel": channel, "kind": e.kind, "payload": e.payload}
            for e in events
        ]
        if rows:
            await self.s.execute(EventRow.__table__.insert(), rows)

    async def timeline(self, item_id: int) -> list[TimelineEntry]:
        """The item's events, with the automatic reminders the sweep sent merged in by time."""
        q = select(EventRow).where(EventRow.item_id == item_id).order_by(EventRow.id)
        out = [TimelineEntry(r.at, r.kind, r.actor_id, r.channel, r.payload) for r in (await self.s.execute(q)).scalars()]
        rq = select(ReminderRow).where(ReminderRow.item_id == item_id).order_by(ReminderRow.id)
        reminders = [
            TimelineEntry(r.created_at, "reminded", None, "scheduler", {"rule": r.rule, "level": r.level, "day": r.day.isoformat()})
            for r in (await self.s.execute(rq)).scalars()
        ]
        return sorted(out + reminders, key=lambda e: e.at) if reminders else out

    async def count(self, kind: str | None = None) -> int:
        q = select(func.count()).select_from(EventRow)
        if kind is not None:
            q = q.where(EventRow.kind == kind)
        return int((await self.s.execute(q)).scalar_one())


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def add(self, rows: Iterable[tuple[str, int | None, dict[str, Any]]], now: dt.datetime) -> int:
        """Queue (dedup_key, recipient_id, payload) rows; a key already queued is skipped, never repeated.
        One cached statement as an executemany: a notice to every principal or a sweep's digests compile
        once instead of once per batch."""
        table = OutboxRow.__table__
        stmt = dialect_insert(self.s, table).on_conflict_do_nothing(index_elements=["dedup_key"]).returning(table.c.id)
        rows = list(rows)
        total = 0
        for start in range(0, len(rows), 2000):
            values = [
                {"dedup_key": key[:200], "recipient_id": rid, "payload": payload, "status": "pending", "attempts": 0,
                 "available_at": now, "created_at": now}
                for key, rid, payload in rows[start : start + 2000]
            ]
            total += len((await self.s.execute(stmt, values)).all())
        return total


def _ledger(r: LedgerRow) -> LedgerEntry:
    return LedgerEntry(
        unit_id=r.unit_id,
        doc_title=r.doc_title,
        doc_number=r.doc_number,
        responsible=r.responsible,
        deadline=r.deadline,
        summary=r.summary,
        created_at=r.created_at,
        updated_at=r.updated_at,
        id=r.id,
    )


class LedgerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def add(self, entry: LedgerEntry) -> None:
        row = LedgerRow(**{f.name: getattr(entry, f.name) for f in dataclasses.fields(entry) if f.name != "id"})
        self.s.add(row)
        await self.s.flush()
        entry.id = row.id

    async def for_unit(self, unit_id: int) -> list[LedgerEntry]:
        q = select(LedgerRow).where(LedgerRow.unit_id == unit_id).order_by(LedgerRow.id)
        return [_ledger(r) for r in (await self.s.execute(q)).scalars()]


class CalendarRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def overrides(self) -> dict[dt.date, bool]:
        rows = await self.s.execute(select(CalendarOverrideRow.day, CalendarOverrideRow.working))
        return {d: w for d, w in rows.all()}

    async def set(self, day: dt.date, working: bool, note: str = "") -> None:
        stmt = dialect_insert(self.s, CalendarOverrideRow).values(day=day, working=working, note=note)
        stmt = stmt.on_conflict_do_update(index_elements=["day"], set_={"working": working, "note": note})
        await self.s.execute(stmt)


class PromptRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def put(self, prompt: Prompt) -> None:
        values = dataclasses.asdict(prompt)
        stmt = dialect_insert(self.s, PromptRow).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["person_id"], set_={k: v for k, v in values.items() if k != "person_id"}
        )
        await self.s.execute(stmt)

    async def exists(self, person_id: int) -> bool:
        q = select(PromptRow.person_id).where(PromptRow.person_id == person_id)
        return (await self.s.execute(q)).first() is not None

    async def take(self, person_id: int) -> Prompt | None:
        """Remove and return the person's open question, if any (expired ones too: the caller says so)."""
        stmt = delete(PromptRow).where(PromptRow.person_id == person_id).returning(
            PromptRow.person_id, PromptRow.item_code, PromptRow.decision, PromptRow.card_id, PromptRow.expires_at,
            PromptRow.ref,
        )
        row = (await self.s.execute(stmt)).first()
        return Prompt(*row) if row else None


@dataclasses.dataclass(frozen=True)
class Card:
    card_id: str
    channel: str
    recipient_id: int
    item_code: str
    kind: str
    response_code: str | None
    response_code_at: dt.datetime | None
    state: str
    ref: str = ""


def _card(r: CardRow) -> Card:
    return Card(
        r.card_id, r.channel, r.recipient_id, r.item_code, r.kind, r.response_code, r.response_code_at, r.state, r.ref
    )


class CardRepository:
    """Cards we sent (WeCom task_id / DingTalk outTrackId), whose decision they offer, and the single-use
    code that updates each one later."""

    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def record(self, card: Card, now: dt.datetime) -> None:
        stmt = dialect_insert(self.s, CardRow).values(**dataclasses.asdict(card), created_at=now)
        await self.s.execute(stmt.on_conflict_do_nothing(index_elements=["card_id"]))

    async def get(self, card_id: str) -> Card | None:
        row = await self.s.get(CardRow, card_id)
        return _card(row) if row else None

    async def keep_response_code(self, card_id: str, code: str, now: dt.datetime) -> None:
        await self.s.execute(update(CardRow).where(CardRow.card_id == card_id).values(response_code=code, response_code_at=now))

    async def close(self, card_id: str, outcome: str) -> None:
        await self.s.execute(
            update(CardRow).where(CardRow.card_id == card_id).values(state="done", outcome=outcome[:100], response_code=None)
        )

    async def close_all(self, item_code: str, kind: str, outcome: str) -> list[Card]:
        """Mark every open card for this decision done; return them as they were (with unused codes)."""
        rows = (
            await self.s.execute(
                select(CardRow).where(CardRow.item_code == item_code, CardRow.kind == kind, CardRow.state == "open")
            )
        ).scalars().all()
        out = [_card(r) for r in rows]
        await self.s.execute(
            update(CardRow)
            .where(CardRow.card_id.in_([c.card_id for c in out]))
            .values(state="done", outcome=outcome[:100], response_code=None)
        )
        return out
