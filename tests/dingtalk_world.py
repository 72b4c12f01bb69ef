"""A running duban wired to both strict emulators: WeCom for some units, DingTalk (Stream mode) for others.

The 图书馆 unit works on DingTalk: principal 郑馆长 (zheng) and handler 冯老师 (feng) have only DingTalk
ids. 孙老师 of 科研院 has both and prefers DingTalk. Everyone else is on WeCom as in conftest.ORG.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from conftest import API_TOKEN, ORG, FakeClock
from emulators.dingtalk import DingTalkEmulator
from emulators.wecom import WeComEmulator
from wecom_world import AES_KEY, AGENT_ID, CORP_ID, SECRET, TOKEN, WeComWorld

from bot.app import Runtime, build_app, build_runtime
from bot.settings import Settings

DT_ID, DT_SECRET, DT_ROBOT, DT_AGENT, DT_TEMPLATE = "ding-app-key", "ding-app-secret", "ding-app-key", 4001, "duban-card.schema"

DING_PEOPLE = [
    {"unit": "图书馆", "name": "郑馆长", "roles": ["principal"], "dingtalk_id": "zheng", "preferred_channel": "dingtalk"},
    {"unit": "图书馆", "name": "冯老师", "roles": ["handler"], "dingtalk_id": "feng", "preferred_channel": "dingtalk"},
]

_ids = itertools.count(1)


class DingWorld(WeComWorld):
    def __init__(self, ding: DingTalkEmulator, *args: Any) -> None:
        super().__init__(*args)
        self.ding = ding

    async def ding_say(self, user: str, text: str) -> str:
        """Send a robot message over Stream; wait until the frame is ACKed and handled."""
        before = len(self.ding.robot_texts(user))
        mid = await self.ding.push_robot_text(user, text, msg_id=f"m{next(_ids)}")
        await self.ding.wait_for_ack(mid)
        await self.until(lambda: len(self.ding.robot_texts(user)) > before, f"a reply to {user}")
        return self.ding.robot_texts(user)[-1]

    async def until(self, cond: Callable[[], object], what: str, timeout: float = 5.0) -> None:
        """Drain the outbox until `cond` holds (the handlers run in tasks after the ACK)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            await self.drain()
            if cond():
                return
            if loop.time() > end:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.02)

    async def settle(self) -> None:
        """Wait for Stream frames being handled (each runs in a task after its ACK) and for handler work
        that outlived the budget."""
        stream = self.runtime.stream
        while (stream is not None and stream._tasks) or self.runtime.inbound._tasks:
            if stream is not None and stream._tasks:
                await asyncio.wait(set(stream._tasks))
            await super().settle()

    def ding_card(self, user: str) -> Any:
        cards = self.ding.cards_for(user)
        assert cards, f"{user} has no DingTalk card; robot texts: {self.ding.robot_texts(user)}"
        return cards[-1]

    async def card_recorded(self, card_id: str) -> None:
        """Wait until the sender has recorded a card it delivered. The sender records it right after the
        platform accepts it; only a test presses within that moment (a press before it would find no
        record of which decision the card is for)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + 5.0
        while True:
            async with self.runtime.svc.uow.reader() as uow:
                if await uow.cards.get(card_id) is not None:
                    return
            if loop.time() > end:
                raise AssertionError(f"card {card_id} was delivered but never recorded")
            await asyncio.sleep(0.01)

    async def ding_press(self, user: str, action: str) -> str:
        card = self.ding_card(user)
        await self.card_recorded(card.out_track_id)
        mid = await self.ding.push_card_callback(card.out_track_id, user, {"action": action, "code": card.params["code"]})
        await self.ding.wait_for_ack(mid)
        return mid


def ding_settings(db_url: str, wecom_base: str, ding_base: str, **extra: object) -> Settings:
    values: dict[str, object] = {
        "DUBAN_DATABASE_URL": db_url, "DUBAN_API_TOKEN": API_TOKEN,
        "WECOM_CORP_ID": CORP_ID, "WECOM_AGENT_ID": AGENT_ID, "WECOM_SECRET": SECRET, "WECOM_TOKEN": TOKEN,
        "WECOM_ENCODING_AES_KEY": AES_KEY, "WECOM_API_BASE": wecom_base,
        "DINGTALK_CLIENT_ID": DT_ID, "DINGTALK_CLIENT_SECRET": DT_SECRET, "DINGTALK_ROBOT_CODE": DT_ROBOT,
        "DINGTALK_AGENT_ID": DT_AGENT, "DINGTALK_CARD_TEMPLATE_ID": DT_TEMPLATE,
        "DINGTALK_API_BASE": ding_base, "DINGTALK_OAPI_BASE": ding_base, "DUBAN_SCHEDULER": False,
    }
    values.update(extra)  # a test may override any of the above (e.g. DINGTALK_MODE, an empty template id)
    return Settings(_env_file=None, **values)


@contextlib.asynccontextmanager
async def open_ding_world(db_url: str, clock: FakeClock, **settings: object) -> AsyncIterator[DingWorld]:
    """Both emulators and a running duban wired to them, with the org (ORG + 图书馆 on DingTalk) loaded.
    `settings` override ding_settings (DINGTALK_MODE="http" runs without the Stream client)."""
    wecom = WeComEmulator(CORP_ID, SECRET, AGENT_ID, users=[row[3] for row in ORG if row[3]])
    ding = DingTalkEmulator(DT_ID, DT_SECRET, DT_ROBOT, DT_AGENT, users=["zheng", "feng", "sun_dd"],
                            card_template_id=DT_TEMPLATE, redeliver_after=0.5,
                            clock=lambda: clock().timestamp())
    await wecom.start()
    await ding.start()
    runtime: Runtime = await build_runtime(ding_settings(db_url, wecom.base_url, ding.api_base, **settings), clock)
    stream = runtime.settings.dingtalk_mode == "stream"
    assert (runtime.stream is not None) == stream
    runtime.start_background()
    server = TestServer(build_app(runtime), host="127.0.0.1")
    await server.start_server()
    http = aiohttp.ClientSession()
    w = DingWorld(ding, wecom, runtime, server, http, clock)
    try:
        people = [
            {"unit": u, "name": n, "roles": sorted(r.value for r in roles), "wecom_id": wid, "dingtalk_id": did,
             "units_in_charge": list(charge), **({"preferred_channel": "dingtalk"} if did else {})}
            for u, n, roles, wid, did, charge in ORG
        ] + DING_PEOPLE
        status, body = await w.api("POST", "/api/v1/org", json={"people": people})
        assert status == 200, body
        if stream:
            await ding.wait_connected()
        yield w
    finally:
        await http.close()
        await server.close()
        await runtime.close()
        await ding.stop()
        await wecom.stop()


@pytest.fixture
async def ding_world(db_url: str, clock: FakeClock) -> AsyncIterator[DingWorld]:
    async with open_ding_world(db_url, clock) as w:
        yield w


def today(w: WeComWorld) -> dt.date:
    return w.clock().date()
