"""Inbound path shared by both platforms: inbox → handlers within a budget → inline reply or outbox.

A platform retry stops at the inbox. The handlers get `budget` seconds (well inside WeCom's 5 s);
if they finish in time the reply goes back inline, otherwise the request is answered empty and the
reply follows through the outbox when the work is done. Card presses are always answered through the
outbox, together with the update that shows the outcome on the pressed card and on its siblings.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from bot.messages import Incoming, OutMessage, Reply
from bot.sender import card_update_payload
from domain.roles import Channel
from handlers.chat import ChatHandlers
from storage.db import Database
from storage.inbox import InboxWriter
from storage.uow import SqlUnitOfWork, UnitOfWorkFactory

log = logging.getLogger("duban.inbound")

SHARED_DECISIONS = {"closure", "extension", "draft"}  # several people hold a card for the same decision
BUSY = "系统繁忙，请稍后再试。"
STALE = "已失效"
CODE_VALIDITY = dt.timedelta(hours=71)  # WeCom: a response_code updates a card once, within 72 h


class Inbound:
    def __init__(
        self,
        chat: ChatHandlers,
        db: Database,
        clock: Callable[[], dt.datetime],
        poke: Callable[[], None],
        *,
        budget: float = 3.0,
    ) -> None:
        self.chat = chat
        self.db = db
        self.uow = UnitOfWorkFactory(db)
        self.clock = clock
        self.poke = poke
        self.budget = budget
        self.inbox = InboxWriter(db, clock)
        self._tasks: set[asyncio.Task[Any]] = set()

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        await self.inbox.close()

    async def dispatch_later(self, inc: Incoming) -> None:
        """For platforms that take no inline reply (DingTalk): every reply goes through the outbox."""
        reply = await self.dispatch(inc)
        if reply is not None:
            await self._follow_up(inc, reply, reply_inline=False)

    async def dispatch(self, inc: Incoming) -> Reply | None:
        """The reply to give inline, or None: a duplicate, a press, or work that outlived the budget."""
        if not await self.inbox.first_time(inc.channel, inc.event_key):
            log.info("duplicate delivery ignored", extra={"channel": inc.channel, "key": inc.event_key})
            return None
        if inc.press is not None:
            card = None
            if inc.press.card_id:
                async with self.uow.reader() as r:
                    card = await r.cards.get(inc.press.card_id)
            if card is not None:
                inc = dataclasses.replace(inc, press=dataclasses.replace(inc.press, card_kind=card.kind, card_ref=card.ref))
        task = asyncio.create_task(self._handle(inc))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            reply = await asyncio.wait_for(asyncio.shield(task), self.budget)
        except asyncio.TimeoutError:
            log.warning("handler outlived the budget; replying through the outbox", extra={"key": inc.event_key})
            task.add_done_callback(lambda t: self._later(inc, t))
            return None
        if inc.press is not None or reply.card_update:
            await self._follow_up(inc, reply)
            return None if inc.press is not None else Reply(reply.text)
        return reply

    async def _handle(self, inc: Incoming) -> Reply:
        try:
            return await self.chat.handle(inc)
        except Exception:
            log.exception("handler failed", extra={"channel": inc.channel, "key": inc.event_key})
            return Reply(BUSY)

    def _later(self, inc: Incoming, task: asyncio.Task[Reply]) -> None:
        if task.cancelled():
            return
        follow = asyncio.create_task(self._follow_up(inc, task.result(), reply_inline=False))
        self._tasks.add(follow)
        follow.add_done_callback(self._tasks.discard)

    async def _follow_up(self, inc: Incoming, reply: Reply, *, reply_inline: bool = True) -> None:
        """Queue, in one transaction: the reply (for presses and late work) and any card updates."""
        now = self.clock()
        async with self.uow("chat") as uow:
            person = await uow.people.by_platform(Channel(inc.channel), inc.user_id)
            if person is None:
                return
            rows: list[tuple[str, int | None, dict[str, Any]]] = []
            if inc.press is not None or not reply_inline:
                payload = {**OutMessage(text=reply.text).to_dict(), "via": inc.channel}  # answer where they wrote
                rows.append((f"reply:{inc.channel}:{inc.event_key}", person.id, payload))
            rows += await self._card_updates(uow, inc, reply, person.id)
            await uow.outbox.add(rows, now)
            await uow.commit()
        self.poke()

    async def _card_updates(
        self, uow: SqlUnitOfWork, inc: Incoming, reply: Reply, person_id: int
    ) -> list[tuple[str, int | None, dict[str, Any]]]:
        press = inc.press
        card_id = reply.card_id or (press.card_id if press else None)
        card = await uow.cards.get(card_id) if card_id else None
        if card is None:
            return []
        if card.recipient_id != person_id:
            # a press naming someone else's card (forged or misrouted): refused by the handlers, and it
            # must not close or mark the owner's card, which still waits for the owner's decision
            log.warning("press on a card of another person ignored", extra={"card": card.card_id, "by": person_id})
            return []
        if press is not None and press.action == "return" and not reply.card_update:
            # waiting for the reason: keep the click's single-use code to update the card afterwards
            if inc.response_code:
                await uow.cards.keep_response_code(card.card_id, inc.response_code, self.clock())
            return []
        code = inc.response_code if press is not None else card.response_code
        outcome = reply.card_update or STALE
        rows = [(f"cu:{card.card_id}:{code or 'none'}", card.recipient_id, card_update_payload(card.card_id, code, outcome, card.channel))]
        if reply.card_update and card.kind in SHARED_DECISIONS:
            fresh_after = self.clock() - CODE_VALIDITY
            for other in await uow.cards.close_all(card.item_code, card.kind, outcome):
                # a DingTalk card is updated by its outTrackId at any time; a WeCom card needs an unused,
                # unexpired single-use code
                usable = other.channel == Channel.DINGTALK.value or (
                    other.response_code and other.response_code_at and other.response_code_at > fresh_after
                )
                if other.card_id != card.card_id and usable:
                    rows.append((f"cu:{other.card_id}:{other.response_code or 'none'}", other.recipient_id,
                                 card_update_payload(other.card_id, other.response_code, outcome, other.channel)))
        else:
            await uow.cards.close(card.card_id, outcome)
        return rows
