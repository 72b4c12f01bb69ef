"""A running duban (real aiohttp server on 127.0.0.1) wired to the strict WeCom emulator, for e2e tests.

Tests speak as WeCom would: encrypted callbacks into /callback/wecom, clicks on cards the emulator
actually delivered, and they read what each person received from the emulator's delivery records.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from bot.app import Runtime, build_app, build_runtime
from bot.settings import Settings
from conftest import API_TOKEN, ORG, FakeClock
from emulators.wecom import WeComCallbackClient, WeComEmulator
from storage.models import EventRow, InboxRow, OutboxRow

CORP_ID = "wx5823bf96d3bd56c7"
TOKEN = "QDG6eK"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
SECRET = "emulator-secret"
AGENT_ID = 1000002

_ids = itertools.count(1)


class WeComWorld:
    def __init__(self, emu: WeComEmulator, runtime: Runtime, server: TestServer, http: aiohttp.ClientSession, clock: FakeClock) -> None:
        self.emu = emu
        self.runtime = runtime
        self.server = server
        self.http = http
        self.clock = clock
        self.wecom = WeComCallbackClient(TOKEN, AES_KEY, CORP_ID, AGENT_ID)
        self._seen: dict[str, int] = {}

    @property
    def url(self) -> str:
        return str(self.server.make_url("/callback/wecom"))

    async def post_plain(self, plain_xml: str, **kw: Any) -> aiohttp.ClientResponse:
        params, body = self.wecom.encrypt_post(plain_xml, **kw)
        async with self.http.post(self.url, params=params, data=body) as resp:
            await resp.read()
            return resp

    async def say(self, user: str, text: str, msg_id: int | None = None) -> str | None:
        """Send a chat message as `user`; return the bot's inline reply (decrypted), or None if empty."""
        params, body = self.wecom.encrypt_post(self.wecom.text_xml(user, text, msg_id or next(_ids) + 10**9))
        async with self.http.post(self.url, params=params, data=body) as resp:
            assert resp.status == 200, await resp.text()
            raw = await resp.read()
        plain = self.wecom.decrypt_reply(raw)
        if plain is None:
            return None
        m = re.search(r"<Content><!\[CDATA\[(.*)\]\]></Content>", plain, re.S)
        assert m, plain
        return m.group(1)

    async def press(self, user: str, task_id: str, key: str) -> int:
        event = self.emu.click(user, task_id, key)
        params, body = self.wecom.encrypt_post(self.wecom.event_xml(event))
        async with self.http.post(self.url, params=params, data=body) as resp:
            assert (await resp.read()) == b""
            return resp.status

    async def post_raw(self, params: dict[str, str], body: bytes | str) -> tuple[int, bytes]:
        """POST exactly these bytes to the callback URL; (status, raw answer)."""
        async with self.http.post(self.url, params=params, data=body) as resp:
            return resp.status, await resp.read()

    async def settle(self) -> None:
        """Wait for handler work that outlived the inline budget (it queues its reply when done)."""
        inbound = self.runtime.inbound
        while inbound._tasks:
            await asyncio.wait(set(inbound._tasks))

    async def drain(self) -> int:
        await self.settle()
        return await self.runtime.sender.drain()

    # ---- what people received -------------------------------------------------------------------
    def news(self) -> dict[str, list[str]]:
        """What each member received since the previous call: texts as sent, cards as "card:<title>"."""
        out: dict[str, list[str]] = {}
        for user, records in self.emu.delivered.items():
            fresh = records[self._seen.get(user, 0):]
            self._seen[user] = len(records)
            if fresh:
                out[user] = [
                    f"card:{r['card']['main_title']['title']}" if r["msgtype"] == "template_card" else str(r["content"])
                    for r in fresh
                ]
        return out

    def expect_news(self, expected: dict[str, list[str]]) -> dict[str, list[str]]:
        """Exactly these members received exactly this many messages since the last check, each one
        containing the expected snippet (in order). Anyone else receiving anything fails the check."""
        got = self.news()
        assert sorted(got) == sorted(expected), f"recipients differ: got {got}, expected {expected}"
        for user, snippets in expected.items():
            assert len(got[user]) == len(snippets), f"{user}: got {got[user]}, expected {snippets}"
            for text, snippet in zip(got[user], snippets):
                assert snippet in text, f"{user}: {snippet!r} not in {text!r}"
        return got

    def card_outcome(self, user: str, card: dict[str, Any]) -> str | None:
        """The disabled-button text a member now sees on that card (None: still clickable)."""
        state = self.emu.card_state(user, card["task_id"])
        assert state is not None, f"{user} has no card {card['task_id']}"
        return state["replace_name"]

    # ---- database snapshots ----------------------------------------------------------------------
    async def counts(self) -> dict[str, int]:
        """Rows in the inbox, the audit trail and the outbox (raw counts, both databases)."""
        async with self.runtime.svc.uow.reader() as uow:
            s = uow.session
            return {
                name: int((await s.execute(select(func.count()).select_from(model))).scalar_one())
                for name, model in (("inbox", InboxRow), ("events", EventRow), ("outbox", OutboxRow))
            }

    async def refusals(self) -> int:
        """Refused actions in the audit trail, with or without an item."""
        async with self.runtime.svc.uow.reader() as uow:
            return await uow.events.count("refused")

    def sends(self) -> list[dict[str, Any]]:
        """Bodies of every message/send request the emulator received (accepted or not)."""
        return [body for path, body in self.emu.requests if path == "/cgi-bin/message/send"]

    async def event_kinds(self, code: str) -> list[str]:
        _, data = await self.api("GET", f"/api/v1/items/{code}")
        return [e["kind"] for e in data["timeline"]]

    async def item(self, code: str) -> dict[str, Any]:
        status, data = await self.api("GET", f"/api/v1/items/{code}")
        assert status == 200, data
        return dict(data)

    async def add_people(self, *people: dict[str, Any]) -> None:
        """Register more people through the API and in the WeCom directory."""
        status, data = await self.api("POST", "/api/v1/org", json={"people": list(people)})
        assert status == 200, data
        for p in people:
            if p.get("wecom_id"):
                self.emu.add_user(p["wecom_id"])

    def last_card(self, user: str) -> dict[str, Any]:
        cards = self.emu.cards_for(user)
        assert cards, f"{user} received no card; texts: {self.emu.texts_for(user)}"
        return cards[-1]

    def button_key(self, card: dict[str, Any], label: str) -> str:
        for b in card["button_list"]:
            if b["text"] == label:
                return str(b["key"])
        raise AssertionError(f"no button {label!r} on card {card['main_title']}")

    async def press_last(self, user: str, label: str) -> None:
        card = self.last_card(user)
        status = await self.press(user, card["task_id"], self.button_key(card, label))
        assert status == 200

    def texts(self, user: str) -> list[str]:
        return self.emu.texts_for(user)

    async def api(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.http.request(
            method, str(self.server.make_url(path)), headers={"Authorization": f"Bearer {API_TOKEN}"}, **kw
        ) as resp:
            return resp.status, await resp.json()


def wecom_settings(db_url: str, base_url: str) -> Settings:
    return Settings(
        DUBAN_DATABASE_URL=db_url,
        DUBAN_API_TOKEN=API_TOKEN,
        WECOM_CORP_ID=CORP_ID,
        WECOM_AGENT_ID=AGENT_ID,
        WECOM_SECRET=SECRET,
        WECOM_TOKEN=TOKEN,
        WECOM_ENCODING_AES_KEY=AES_KEY,
        WECOM_API_BASE=base_url,
        _env_file=None,
    )


@pytest.fixture
async def world(db_url: str, clock: FakeClock) -> AsyncIterator[WeComWorld]:
    users = [row[3] for row in ORG if row[3]]
    # the emulator reads the test's FakeClock, so its per-minute pacing and duplicate check see the same
    # time as the sender (the sender paces by that clock)
    emu = WeComEmulator(CORP_ID, SECRET, AGENT_ID, clock=lambda: clock.now.timestamp(), users=users)
    await emu.start()
    runtime = await build_runtime(wecom_settings(db_url, emu.base_url), clock)
    server = TestServer(build_app(runtime), host="127.0.0.1")
    await server.start_server()
    http = aiohttp.ClientSession()
    w = WeComWorld(emu, runtime, server, http, clock)
    status, _ = await w.api("POST", "/api/v1/org", json={"people": [
        {"unit": u, "name": n, "roles": sorted(r.value for r in roles), "wecom_id": wid, "dingtalk_id": did,
         "units_in_charge": list(charge)}
        for u, n, roles, wid, did, charge in ORG
    ]})
    assert status == 200
    try:
        yield w
    finally:
        await http.close()
        await server.close()
        await runtime.close()
        await emu.stop()
