"""The outbox sender: the one path by which anything reaches a person.

It claims due rows with a lease, reaches each recipient once on their preferred platform, paces sends
below WeCom's silent-drop limit (30 a minute per member, counted across replicas from the outbox
itself), batches identical texts, and records each outcome: sent, retry with backoff, or dead letter.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import random
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from bot.adapters.base import Adapter, Delivery, Outcome
from bot.messages import OutMessage
from domain.roles import Channel, Person
from storage import outbox as ob
from storage.db import Database
from storage.repositories import Card
from storage.uow import UnitOfWorkFactory

log = logging.getLogger("duban.sender")

PER_MINUTE = 25  # WeCom drops silently above 30 a minute per member; keep headroom
MAX_ATTEMPTS = 8


def backoff(attempts: int) -> float:
    return min(3600.0, 5.0 * 2**attempts) * (0.8 + 0.4 * random.random())


class Sender:
    def __init__(
        self,
        db: Database,
        adapters: dict[Channel, Adapter],
        clock: Callable[[], dt.datetime],
        *,
        owner: str | None = None,
        per_minute: int = PER_MINUTE,
        lease: dt.timedelta = ob.LEASE,
    ) -> None:
        self.lease = lease
        self.db = db
        self.uow = UnitOfWorkFactory(db)
        self.adapters = adapters
        self.clock = clock
        self.owner = owner or f"sender-{uuid.uuid4().hex[:10]}"
        self.per_minute = per_minute
        self._poke = asyncio.Event()

    def poke(self) -> None:
        """New rows were committed in this process: send them now rather than at the next poll."""
        self._poke.set()

    async def run(self, stop: asyncio.Event, idle: float = 1.0) -> None:
        while not stop.is_set():
            try:
                busy = await self.run_once()
            except Exception:
                log.exception("sender pass failed")
                busy = 0
            if busy:
                continue
            self._poke.clear()
            waits = {asyncio.ensure_future(self._poke.wait()), asyncio.ensure_future(stop.wait())}
            _, pending = await asyncio.wait(waits, timeout=idle, return_when=asyncio.FIRST_COMPLETED)
            for t in pending:
                t.cancel()

    async def drain(self, max_passes: int = 100) -> int:
        """Send everything due now (tests, `duban remind`): pass until a pass finds nothing."""
        total = 0
        for _ in range(max_passes):
            n = await self.run_once()
            total += n
            if n == 0:
                break
        return total

    async def run_once(self, limit: int = 200) -> int:
        now = self.clock()
        rows = await ob.claim(self.db, self.owner, now, limit, lease=self.lease)
        if not rows:
            return 0
        async with self.uow.reader() as uow:
            people = await uow.people.many(r.recipient_id for r in rows if r.recipient_id)
        sent: list[int] = []
        retry: list[tuple[int, dt.datetime, str]] = []
        dead: list[tuple[int, str]] = []
        release: list[int] = []

        def fail(row: ob.Claimed, out: Outcome) -> None:
            if out.status is Delivery.RETRY and row.attempts + 1 < MAX_ATTEMPTS:
                delay = out.retry_after or backoff(row.attempts)
                retry.append((row.id, now + dt.timedelta(seconds=delay), out.error))
            else:
                dead.append((row.id, out.error or "gave up after retries"))

        recent = await ob.recent_sends(self.db, list(people), now - dt.timedelta(minutes=1))
        texts: dict[tuple[Channel, str], list[tuple[ob.Claimed, str]]] = defaultdict(list)
        files: dict[tuple[Channel, str, str], list[tuple[ob.Claimed, str]]] = defaultdict(list)
        for row in rows:
            person = people.get(row.recipient_id or -1)
            target = _target(person, self.adapters, row.payload.get("via"))
            if target is None:
                dead.append((row.id, "recipient has no platform id on a channel that is on"))
                continue
            channel, uid = target
            adapter = self.adapters[channel]
            if recent.get(row.recipient_id or -1, 0) >= self.per_minute:
                release.append(row.id)  # paced: try again after the minute has moved on
                continue
            recent[row.recipient_id or -1] = recent.get(row.recipient_id or -1, 0) + 1
            payload = row.payload
            if payload.get("type") == "card_update":
                out = await adapter.update_card(uid, payload["card_id"], payload.get("response_code"), payload["outcome"])
                (sent.append(row.id) if out.status is Delivery.SENT else fail(row, out))
                continue
            if payload.get("type") == "file":
                files[(channel, payload["filename"], payload["data_b64"])].append((row, uid))
                continue
            msg = OutMessage.from_dict(payload)
            if msg.is_card:
                card_id = f"db{row.id}t{int(row.created_at.timestamp())}"
                out = await adapter.send_card(uid, msg, card_id, retrying=row.attempts > 0)
                if out.status is Delivery.SENT and not out.as_card:
                    sent.append(row.id)  # no card template: the text with commands went instead
                elif out.status is Delivery.SENT:
                    async with self.uow("sender") as uow:
                        await uow.cards.record(
                            Card(card_id, channel.value, row.recipient_id or 0, msg.item_code or "", msg.card_kind or "",
                                 out.response_code, now if out.response_code else None, "open", msg.ref),
                            now,
                        )
                        await uow.commit()
                    sent.append(row.id)
                else:
                    fail(row, out)
                continue
            texts[(channel, json.dumps(payload, sort_keys=True, ensure_ascii=False))].append((row, uid))

        def settle(chunk: list[tuple[ob.Claimed, str]], out: Outcome) -> None:
            for row, uid in chunk:
                if out.status is Delivery.SENT and uid.lower() in out.throttled_users:
                    fail(row, Outcome(Delivery.RETRY, error="flow-controlled by the platform", retry_after=60.0))
                elif out.status is Delivery.SENT and uid.lower() not in out.invalid_users:
                    sent.append(row.id)
                elif out.status is Delivery.SENT:
                    dead.append((row.id, "platform says the user is invalid"))
                else:
                    fail(row, out)

        for (channel, _), group in texts.items():
            adapter = self.adapters[channel]
            msg = OutMessage.from_dict(group[0][0].payload)
            for start in range(0, len(group), adapter.batch_limit):
                chunk = group[start : start + adapter.batch_limit]
                settle(chunk, await adapter.send_text([uid for _, uid in chunk], msg))
        for (channel, filename, data), group in files.items():
            adapter = self.adapters[channel]
            kind = str(group[0][0].payload.get("kind", "file"))
            for start in range(0, len(group), adapter.batch_limit):
                chunk = group[start : start + adapter.batch_limit]
                settle(chunk, await adapter.send_file([uid for _, uid in chunk], kind, filename, base64.b64decode(data)))
        await ob.finish(self.db, self.owner, self.clock(), sent, retry, dead)
        await ob.release(self.db, self.owner, release, now + dt.timedelta(seconds=60))
        if dead:
            log.warning("outbox dead letters", extra={"count": len(dead), "first_error": dead[0][1]})
        log.debug("outbox pass", extra={"sent": len(sent), "retry": len(retry), "dead": len(dead), "paced": len(release)})
        return len(rows) - len(release)


def _target(person: Person | None, on: dict[Channel, Adapter], via: str | None = None) -> tuple[Channel, str] | None:
    """Once, on the person's preferred channel (a reply: on the channel they wrote from); the other one
    only if that one is unbound or off."""
    if person is None:
        return None
    bound = {Channel.WECOM: person.wecom_id, Channel.DINGTALK: person.dingtalk_id}
    first = Channel(via) if via in (Channel.WECOM.value, Channel.DINGTALK.value) else person.preferred_channel
    order = [first] + [c for c in bound if c is not first]
    for channel in order:
        uid = bound[channel]
        if uid and channel in on:
            return channel, uid
    return None


def card_update_payload(card_id: str, response_code: str | None, outcome: str, channel: str) -> dict[str, Any]:
    """`via`: a card is updated where it was sent, whatever the person's preferred channel is now."""
    return {"type": "card_update", "card_id": card_id, "response_code": response_code, "outcome": outcome,
            "via": channel}
