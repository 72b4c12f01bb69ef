"""Composition root: settings → database → service → routes, channels, sender and scheduler."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from bot import api, outbox_api
from bot.adapters.base import Adapter
from bot.adapters.dingtalk.adapter import DingTalkAdapter
from bot.adapters.dingtalk.client import DingTalkClient
from bot.adapters.dingtalk.receiver import DingTalkReceiver
from bot.adapters.dingtalk.stream import StreamClient
from bot.adapters.wecom.adapter import WeComAdapter
from bot.adapters.wecom.client import WeComClient
from bot.adapters.wecom.crypto import CallbackCrypto
from bot.adapters.wecom.receiver import WeComReceiver
from bot.inbound import Inbound
from bot.messages import OutMessage
from bot.sender import Sender
from bot.settings import Settings
from domain.calendar import WorkCalendar
from domain.roles import Channel, Role
from handlers.chat import ChatHandlers
from handlers.service import Supervision
from scheduler.jobs import Jobs
from storage.db import Database, open_database
from storage.notify import CacheBus
from storage.uow import UnitOfWorkFactory

log = logging.getLogger("duban.app")

Clock = Callable[[], dt.datetime]


def system_clock() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class Runtime:
    """Everything one process holds for its lifetime; tests build it with their own clock."""

    settings: Settings
    db: Database
    svc: Supervision
    chat: ChatHandlers
    sender: Sender
    inbound: Inbound
    http: aiohttp.ClientSession | None = None
    adapters: dict[Channel, Adapter] = field(default_factory=dict)
    wecom: WeComReceiver | None = None
    wecom_client: WeComClient | None = None
    jobs: Jobs | None = None
    dingtalk: DingTalkReceiver | None = None
    dingtalk_client: DingTalkClient | None = None
    stream: StreamClient | None = None
    bus: CacheBus | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def start_background(self) -> None:
        """The sender loop and the scheduler run beside the server."""
        self.tasks.append(asyncio.create_task(self.sender.run(self.stop), name="outbox-sender"))
        if self.bus is not None:
            self.tasks.append(asyncio.create_task(self.bus.run(self.stop), name="cache-bus"))
        if self.stream is not None:
            self.tasks.append(asyncio.create_task(self.stream.run(self.stop), name="dingtalk-stream"))
        if self.jobs is not None and self.settings.scheduler:
            self.jobs.start()

    async def close(self) -> None:
        if self.jobs is not None:
            self.jobs.stop()
        self.stop.set()
        for t in self.tasks:
            try:
                await asyncio.wait_for(t, timeout=10)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                t.cancel()
        await self.inbound.close()
        for adapter in self.adapters.values():
            await adapter.close()
        if self.http is not None:
            await self.http.close()
        await self.db.dispose()


RUNTIME = web.AppKey("runtime", Runtime)


async def build_runtime(settings: Settings, clock: Clock = system_clock) -> Runtime:
    db = open_database(settings.database_url)
    uow = UnitOfWorkFactory(db)
    async with uow.reader() as r:
        overrides = await r.calendar.overrides()

    def on_fallback(year: int) -> None:
        log.warning("holiday calendar does not cover year; using Monday-Friday", extra={"year": year})

    calendar = WorkCalendar(overrides, on_fallback=on_fallback)
    svc = Supervision(uow, clock, calendar, settings.tz)
    chat = ChatHandlers(svc, spot_check_units=settings.spot_check_units)
    adapters: dict[Channel, Adapter] = {}
    http: aiohttp.ClientSession | None = None
    wecom_client = None
    if settings.wecom_enabled:
        http = aiohttp.ClientSession()
        wecom_client = WeComClient(
            http,
            base=settings.wecom_api_base,
            corp_id=settings.wecom_corp_id,
            secret=settings.wecom_secret,
            agent_id=settings.wecom_agent_id,
        )
        adapters[Channel.WECOM] = WeComAdapter(wecom_client)
    dingtalk_client = None
    if settings.dingtalk_enabled:
        http = http or aiohttp.ClientSession()
        dingtalk_client = DingTalkClient(
            http,
            api_base=settings.dingtalk_api_base,
            oapi_base=settings.dingtalk_oapi_base,
            client_id=settings.dingtalk_client_id,
            client_secret=settings.dingtalk_client_secret,
            robot_code=settings.dingtalk_robot_code,
            agent_id=settings.dingtalk_agent_id,
        )
        # cards call back over Stream only; in HTTP mode the text with commands goes instead
        template = settings.dingtalk_card_template_id if settings.dingtalk_mode == "stream" else ""
        adapters[Channel.DINGTALK] = DingTalkAdapter(dingtalk_client, template)
    sender = Sender(db, adapters, clock, lease=dt.timedelta(seconds=settings.outbox_lease_seconds))
    svc.after_commit = sender.poke
    inbound = Inbound(chat, db, clock, sender.poke)
    jobs = Jobs(
        db,
        svc,
        settings.ladder,
        report_at=settings.report_at,
        spot_check_units=settings.spot_check_units,
        sweep_seconds=settings.sweep_seconds,
        poke=sender.poke,
    )
    runtime = Runtime(
        settings, db, svc, chat, sender, inbound, http, adapters, wecom_client=wecom_client, jobs=jobs,
        dingtalk_client=dingtalk_client,
    )
    if db.dialect == "postgresql":
        bus = CacheBus(settings.database_url, svc.cache.bump)
        runtime.bus = bus

        def committed() -> None:
            sender.poke()
            bus.publish()

        svc.after_commit = committed
    if settings.wecom_enabled:
        crypto = CallbackCrypto(settings.wecom_token, settings.wecom_encoding_aes_key, settings.wecom_corp_id)
        runtime.wecom = WeComReceiver(crypto, settings.wecom_agent_id, inbound.dispatch)
    if settings.dingtalk_enabled:
        # the signature's one-hour window is judged by the runtime's clock, like every other "now"
        runtime.dingtalk = DingTalkReceiver(
            settings.dingtalk_client_secret, inbound.dispatch_later, clock=lambda: clock().timestamp()
        )
        assert runtime.dingtalk_client is not None and runtime.http is not None
        if settings.dingtalk_mode == "stream":
            runtime.stream = StreamClient(runtime.http, runtime.dingtalk_client, runtime.dingtalk.on_frame)
    await tell_office_about_calendar(svc)
    return runtime


async def tell_office_about_calendar(svc: Supervision) -> None:
    """A year the holiday package does not cover falls back to Monday–Friday; the office hears it once
    (the outbox dedup key is per year, so restarts and replicas do not repeat it)."""
    today = svc.now().date()
    missing = [y for y in (today.year, today.year + 1) if not svc.calendar.covers(y)]
    if not missing:
        return
    async with svc.uow("system") as uow:
        office = await uow.people.with_role(Role.OFFICE)
        rows = []
        for year in missing:
            msg = OutMessage(
                text=f"提示：节假日日历尚未包含 {year} 年，系统暂按周一至周五计算工作日。"
                f"请在国务院公布 {year} 年放假安排后录入调休和节假日。",
                title="工作日历提示",
                notice=True,
            )
            rows += [(f"calendar-fallback:{year}:{p.id}", p.id, msg.to_dict()) for p in office]
        await uow.outbox.add(rows, svc.now())
        await uow.commit()


def build_app(runtime: Runtime) -> web.Application:
    settings = runtime.settings
    app = web.Application(
        client_max_size=settings.max_body_bytes, middlewares=[api.errors_middleware, api.auth_middleware]
    )
    app[RUNTIME] = runtime
    app[api.SVC] = runtime.svc
    app[api.TOKEN] = settings.api_token
    api.setup_routes(app)
    outbox_api.setup(app, runtime.db, runtime.sender.poke)
    if runtime.wecom is not None:
        runtime.wecom.routes(app)
    if runtime.dingtalk is not None and settings.dingtalk_mode == "http":
        runtime.dingtalk.routes(app)
    return app


async def serve_app(settings: Settings, clock: Clock = system_clock) -> web.Application:
    """The app `duban serve` runs: the runtime and its background loops live as long as the server."""
    runtime = await build_runtime(settings, clock)
    app = build_app(runtime)
    settings.log_channels()

    async def lifetime(_: web.Application) -> AsyncIterator[None]:
        runtime.start_background()
        # Everything built so far (modules, SQLAlchemy metadata, caches) lives as long as the process:
        # moving it out of the collector's generations keeps collections short under load (tail latency).
        gc.freeze()
        yield
        await runtime.close()

    app.cleanup_ctx.append(lifetime)
    return app
