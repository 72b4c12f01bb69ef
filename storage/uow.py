"""Unit of work: one transaction, its repositories, and the events and outbox rows written with it."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.items import Item, ItemEvent
from storage.db import Database
from storage.jobs import JobRepository
from storage.repositories import (
    CalendarRepository,
    CardRepository,
    EventRepository,
    ItemRepository,
    LedgerRepository,
    OutboxRepository,
    PersonRepository,
    PromptRepository,
    UnitRepository,
)


class SqlUnitOfWork:
    """`async with uow:` opens a transaction; leaving without `commit()` rolls it back.

    `channel` (api, wecom, dingtalk, cli, scheduler) goes on every event written through this unit, so the
    audit trail says how each change arrived.
    """

    def __init__(self, factory: async_sessionmaker[AsyncSession], channel: str = "system") -> None:
        self._factory = factory
        self.channel = channel
        self.committed = False

    async def __aenter__(self) -> SqlUnitOfWork:
        self.session = self._factory()
        s = self.session
        self.units = UnitRepository(s)
        self.people = PersonRepository(s)
        self.items = ItemRepository(s)
        self.events = EventRepository(s)
        self.outbox = OutboxRepository(s)
        self.ledger = LedgerRepository(s)
        self.calendar = CalendarRepository(s)
        self.prompts = PromptRepository(s)
        self.cards = CardRepository(s)
        self.jobs = JobRepository(s)
        self.committed = False
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # close() hands the connection back to the pool, which rolls back anything uncommitted: one
        # round trip, where an explicit rollback() first would cost a second one on every read.
        await self.session.close()

    async def save(self, item: Item) -> list[ItemEvent]:
        """Persist an item and append its new events to the audit trail in this transaction.
        Returns those events (and forgets them on the item) so the caller can derive notices once."""
        if item.id is None:
            await self.items.add(item)
        else:
            await self.items.save(item)
        events = list(item.new_events)
        item.new_events.clear()
        await self.events.record(item.id, events, self.channel)
        return events

    async def commit(self) -> None:
        await self.session.commit()
        self.committed = True

    async def rollback(self) -> None:
        await self.session.rollback()


class UnitOfWorkFactory:
    """Hands out units of work bound to one database: writes to the IMMEDIATE engine, reads to the other."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def __call__(self, channel: str = "system") -> SqlUnitOfWork:
        return SqlUnitOfWork(self.db.sessions, channel)

    def reader(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.db.read_sessions, "read")
