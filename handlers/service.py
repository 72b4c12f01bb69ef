"""The use cases every entry point shares (chat, cards, API, CLI, scheduler).

Each one is a single transaction: load, let the domain decide, save with the optimistic lock, append
the events, and queue the resulting messages in the outbox — so a change and the messages it causes
either both happen or neither does. A refusal changes nothing and is written to the audit trail.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from domain.calendar import WorkCalendar
from domain.codes import format_code
from domain.errors import ConcurrentUpdate, DomainError, NotFound, PermissionDenied, ValidationError
from domain.items import Item, ItemEvent, ItemKind
from domain.notifications import Recipient, To, notices_for
from domain.ledger import LedgerEntry
from domain.permissions import may_view, require_office
from domain.roles import Channel, Person, Role
from domain.stats import UnitStats
from domain.stats import compute as compute_stats
from domain.views import ItemSummary, Prompt
from bot.messages import OutMessage
from handlers.cache import MISSING, ReadCache
from handlers.ports import UnitOfWork, UnitOfWorkFactory
from handlers.render import Names, render_notice

log = logging.getLogger("duban.service")

Clock = Callable[[], dt.datetime]


@dataclass
class NewItem:
    """An item as the office or the OA system submits it; units and people by name."""

    kind: ItemKind
    title: str
    lead_unit: str
    deadline: dt.date
    content: str = ""
    source_title: str = ""
    source_number: str = ""
    co_units: list[str] = field(default_factory=list)
    leader: str | None = None
    handler: str | None = None
    confidential: bool = False
    category: str = ""


Operation = Callable[[Item, Person, dt.datetime, UnitOfWork], Awaitable[None]]


class Supervision:
    def __init__(
        self, uow: UnitOfWorkFactory, clock: Clock, calendar: WorkCalendar, tz: ZoneInfo = ZoneInfo("Asia/Shanghai")
    ) -> None:
        self.uow = uow
        self._clock = clock
        self.calendar = calendar
        self.tz = tz
        self.after_commit: Callable[[], None] = lambda: None  # wakes the outbox sender in this process
        self.cache = ReadCache()

    def committed(self) -> None:
        """Every write of this process ends here: the read cache forgets, the sender wakes."""
        self.cache.bump()
        self.after_commit()

    def now(self) -> dt.datetime:
        """The office's local time: deadlines are Asia/Shanghai dates."""
        return self._clock().astimezone(self.tz)

    # ---- lookups ------------------------------------------------------------------------------------

    async def _unit_id(self, uow: UnitOfWork, name: str) -> int:
        unit = await uow.units.by_name(name.strip())
        if unit is None:
            raise ValidationError(f"未找到单位“{name}”，请先导入组织机构。")
        return unit.id

    async def _one_person(self, uow: UnitOfWork, name: str, unit_id: int | None = None, role: Role | None = None) -> Person:
        found = await uow.people.by_name(name.strip(), unit_id)
        if role is not None:
            found = [p for p in found if p.has(role)]
        if not found:
            where = "本单位" if unit_id is not None else "系统中"
            raise ValidationError(f"{where}未找到“{name}”{'（' + role.label + '）' if role else ''}。")
        if len(found) > 1:
            raise ValidationError(f"“{name}”有重名，请联系学校办公室处理。")
        return found[0]

    # ---- creation -----------------------------------------------------------------------------------

    async def create_item(self, actor: Person, req: NewItem, channel: str) -> Item:
        if req.confidential:
            # Checked before any lookup so nothing about a confidential item touches the database.
            Item.create(
                code="-", kind=req.kind, title=req.title, lead_unit_id=0, deadline=req.deadline,
                actor=actor, now=self.now(), confidential=True,
            )
        now = self.now()
        async with self.uow(channel) as uow:
            lead = await self._unit_id(uow, req.lead_unit)
            co = [await self._unit_id(uow, u) for u in req.co_units]
            leader_id = None
            if req.leader:
                leader_id = (await self._one_person(uow, req.leader, role=Role.LEADER)).id
            handler = await self._one_person(uow, req.handler, lead) if req.handler else None
            item = Item.create(
                code="-", kind=req.kind, title=req.title, lead_unit_id=lead, deadline=req.deadline, actor=actor,
                now=now, content=req.content, source_title=req.source_title, source_number=req.source_number,
                co_unit_ids=co, leader_id=leader_id, handler=handler, category=req.category,
            )
            # numbered only once it is valid, so a refused item never uses up a code
            item.code = format_code(now.year, await uow.items.next_code_seq(now.year))
            events = await uow.save(item)
            await self.queue_notices(uow, item, events, actor, now)
            await uow.commit()
        self.committed()
        log.info("item created", extra={"code": item.code, "kind": item.kind.value, "channel": channel})
        return item

    # ---- transitions --------------------------------------------------------------------------------

    async def act(self, actor: Person, code: str, op: Operation, channel: str, *, what: str) -> Item:
        """Run one transition; on a concurrent change, retry once against the fresh item, where the domain
        then refuses a decision that was already taken (so two approvals can never both win)."""
        for attempt in (1, 2):
            try:
                now = self.now()
                async with self.uow(channel) as uow:
                    item = await uow.items.get(code)
                    if item is None:
                        raise NotFound(f"未找到督办事项 {code}。")
                    await op(item, actor, now, uow)
                    events = await uow.save(item)
                    await self.queue_notices(uow, item, events, actor, now)
                    await uow.commit()
                self.committed()
                log.info("item changed", extra={"code": code, "op": what, "actor": actor.id, "channel": channel})
                return item
            except ConcurrentUpdate:
                if attempt == 2:
                    raise
            except DomainError as err:
                await self.record_refusal(actor, code, what, err, channel)
                raise
        raise AssertionError("unreachable")

    async def record_refusal(self, actor: Person, code: str | None, what: str, err: DomainError, channel: str) -> None:
        """Refused actions go to the audit trail too (DESIGN §1), in their own transaction."""
        try:
            async with self.uow(channel) as uow:
                item = await uow.items.get(code) if code else None
                ev = ItemEvent("refused", actor.id or None, self.now(), {"action": what, "code": err.code, "reason": err.message})
                await uow.events.record(item.id if item else None, [ev], channel)
                await uow.commit()
        except Exception:  # the refusal itself must reach the person even if the audit write fails
            log.exception("could not record refusal", extra={"code": code, "op": what})
        log.info("action refused", extra={"code": code, "op": what, "actor": actor.id, "reason": err.code})

    # ---- notices → outbox -------------------------------------------------------------------------

    async def _recipients(self, uow: UnitOfWork, item: Item, r: Recipient) -> list[int]:
        if r.to is To.PERSON:
            return [r.id] if r.id else []
        if r.to is To.UNIT_PRINCIPALS:
            assert r.id is not None
            return [p.id for p in await uow.people.with_role(Role.PRINCIPAL, r.id)]
        if r.to is To.OFFICE:
            return [p.id for p in await uow.people.with_role(Role.OFFICE)]
        if item.leader_id is not None:
            return [item.leader_id]
        return [p.id for p in await uow.people.leaders_in_charge_of(item.lead_unit_id)]

    async def queue_notices(self, uow: UnitOfWork, item: Item, events: list[ItemEvent], actor: Person, now: dt.datetime) -> None:
        notices = [(i, n) for i, ev in enumerate(events) for n in notices_for(item, ev)]
        if not notices:
            return
        names = await self.names_for(uow, item)
        rows: list[tuple[str, int | None, dict[str, Any]]] = []
        for i, n in notices:
            msg = render_notice(n, item, names)
            for pid in await self._recipients(uow, item, n.recipient):
                if pid == actor.id:
                    continue  # the actor gets the inline reply instead
                rows.append((f"n:{item.code}:v{item.version}:{i}:{n.kind}:{pid}", pid, msg.to_dict()))
        await uow.outbox.add(rows, now)

    async def names_for(self, uow: UnitOfWork, item: Item) -> Names:
        unit_names = await uow.units.names(b.unit_id for b in item.branches)
        pids = {b.handler_id for b in item.branches if b.handler_id} | {p.author_id for p in item.progress}
        if item.leader_id:
            pids.add(item.leader_id)
        people = await uow.people.many(pids)
        return Names(unit_names, {pid: p.name for pid, p in people.items()})

    # ---- reads --------------------------------------------------------------------------------------

    async def visible_item(self, actor: Person, code: str) -> tuple[Item, Names, list[Any]]:
        async with self.uow.reader() as uow:
            item = await uow.items.get(code)
            if item is None:
                raise NotFound(f"未找到督办事项 {code}。")
            if not may_view(item, actor):
                raise PermissionDenied(f"您无权查看督办事项 {code}。")
            names = await self.names_for(uow, item)
            timeline = await uow.events.timeline(item.id or 0)
            actor_ids = {t.actor_id for t in timeline if t.actor_id}
            more = await uow.people.many(actor_ids - set(names.people))
            names.people.update({pid: p.name for pid, p in more.items()})
            return item, names, timeline

    # ---- people, prompts, notices, statistics -------------------------------------------------------

    async def person_for(self, channel: Channel, platform_id: str) -> Person | None:
        key = ("person", channel, platform_id)
        found = self.cache.get(key)
        if found is MISSING:
            gen = self.cache.generation
            async with self.uow.reader() as uow:
                found = await uow.people.by_platform(channel, platform_id)
            self.cache.put(key, found, gen)
        return found  # type: ignore[no-any-return]

    async def ask(self, prompt: Prompt) -> None:
        async with self.uow("chat") as uow:
            await uow.prompts.put(prompt)
            await uow.commit()
        self.committed()

    async def take_prompt(self, person: Person) -> Prompt | None:
        """Most messages answer no question: a (cached) read decides before any write is spent."""
        key = ("prompt", person.id)
        waiting = self.cache.get(key)
        if waiting is MISSING:
            gen = self.cache.generation
            async with self.uow.reader() as uow:
                waiting = await uow.prompts.exists(person.id)
            self.cache.put(key, waiting, gen)
        if not waiting:
            return None
        async with self.uow("chat") as uow:
            prompt = await uow.prompts.take(person.id)
            await uow.commit()
        self.committed()
        return prompt

    async def todo(self, person: Person) -> list[ItemSummary]:
        key = ("todo", person.id)
        items = self.cache.get(key)
        if items is MISSING:
            gen = self.cache.generation
            async with self.uow.reader() as uow:
                items = [s for s, _ in await uow.items.open_for_person(person)]
            self.cache.put(key, items, gen)
        return items  # type: ignore[no-any-return]

    async def broadcast(self, actor: Person, text: str, channel: str, unit_names: Iterable[str] = ()) -> int:
        """通报 (第十一条): to the principals of the named units, or of every unit; one outbox row each."""
        require_office(actor, "发布通报")
        body = text.strip()
        if not body:
            raise ValidationError("通报内容不能为空。")
        if len(body) > 1500:
            raise ValidationError("通报内容过长（不超过 1500 字）。")
        now = self.now()
        async with self.uow(channel) as uow:
            unit_ids = [await self._unit_id(uow, n) for n in unit_names]
            principals: list[Person] = []
            if unit_ids:
                for uid in unit_ids:
                    principals += await uow.people.with_role(Role.PRINCIPAL, uid)
            else:
                principals = await uow.people.with_role(Role.PRINCIPAL)
            # unique per notice: a timestamp alone collides for two notices in the same instant, and the
            # outbox would then drop the second one as a duplicate of the first
            notice_id = f"{now:%Y%m%d%H%M%S}-{uuid.uuid4().hex[:12]}"
            ev = ItemEvent("notice", actor.id or None, now, {"text": body, "units": list(unit_names), "id": notice_id})
            await uow.events.record(None, [ev], channel)
            msg = OutMessage(text=f"【通报 {now:%m-%d %H:%M}】{body}", title="学校办公室通报", notice=True)
            await uow.outbox.add(
                [(f"notice:{notice_id}:{p.id}", p.id, msg.to_dict()) for p in principals if p.id != actor.id], now
            )
            await uow.commit()
        self.committed()
        return len(principals)

    async def statistics(self) -> list[UnitStats]:
        async with self.uow.reader() as uow:
            rows = await uow.items.count_by_unit()
            units = {u.id: u.name for u in await uow.units.all()}
        return compute_stats(rows, units, self.now().date(), self.tz)

    async def add_ledger_entry(self, actor: Person, entry: LedgerEntry, channel: str) -> LedgerEntry:
        """A unit records an incoming document it handles itself (第六条 2); its principal or handler, or the office."""
        if not (actor.is_office or actor.unit_id == entry.unit_id):
            raise PermissionDenied("只能登记本单位的来文落实台账。")
        async with self.uow(channel) as uow:
            await uow.ledger.add(entry)
            ev = ItemEvent("ledger_entry_added", actor.id or None, self.now(), {"unit_id": entry.unit_id, "doc": entry.doc_title})
            await uow.events.record(None, [ev], channel)
            await uow.commit()
        self.committed()
        return entry
