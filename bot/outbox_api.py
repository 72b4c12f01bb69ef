"""`GET /api/v1/outbox` and `POST /api/v1/outbox/requeue`: the office sees dead letters and sends them again."""

from __future__ import annotations

from aiohttp import web

from collections.abc import Callable

from bot.api import SVC, Fields, _body, ok
from domain.errors import ValidationError
from storage import outbox as ob
from storage.db import Database

DB = web.AppKey("database", Database)
POKE = web.AppKey("sender_poke", Callable[[], None])
STATUSES = {"pending", "leased", "sent", "dead"}


async def list_outbox(request: web.Request) -> web.Response:
    status = request.query.get("status", "dead")
    if status not in STATUSES:
        raise ValidationError("参数 status 应为 pending、leased、sent 或 dead。")
    db = request.app[DB]
    rows = await ob.listing(db, status)
    return ok(
        {
            "counts": await ob.counts(db),
            "rows": [
                {
                    "id": r.id,
                    "dedup_key": r.dedup_key,
                    "recipient_id": r.recipient_id,
                    "status": r.status,
                    "attempts": r.attempts,
                    "last_error": r.last_error,
                    "created_at": r.created_at.isoformat(),
                    "text": r.text[:200],
                }
                for r in rows
            ],
        }
    )


async def requeue(request: web.Request) -> web.Response:
    f = Fields(await _body(request), {"ids"})
    ids = f.d.get("ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, int) for i in ids):
        raise ValidationError("ids 应为非空整数数组。")
    n = await ob.requeue_dead(request.app[DB], ids, request.app[SVC].now())
    request.app[POKE]()
    return ok({"requeued": n})


def setup(app: web.Application, db: Database, poke: Callable[[], None]) -> None:
    app[DB] = db
    app[POKE] = poke
    app.router.add_get("/api/v1/outbox", list_outbox)
    app.router.add_post("/api/v1/outbox/requeue", requeue)
