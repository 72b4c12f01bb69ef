"""The procedure through DingTalk (Stream mode, robot messages, interactive cards) against the strict emulator.

Every test runs on SQLite and on PostgreSQL. People speak as DingTalk would: robot messages and card
presses come as Stream frames (or, in HTTP mode, as signed POSTs to /callback/dingtalk); what each person
received is read from the emulator's records (robot messages, work notifications, cards), the state of an
item from the JSON API. 图书馆 (郑馆长 zheng, 冯老师 feng) works on DingTalk; everyone else on WeCom;
孙老师 has both ids and prefers DingTalk.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import FakeClock, local
from dingtalk_world import DingWorld, ding_world, open_ding_world  # noqa: F401  (fixture)
from emulators.dingtalk import TOPIC_CARD, CardInstance


async def status_of(w: DingWorld, code: str) -> str:
    _, data = await w.api("GET", f"/api/v1/items/{code}")
    return str(data["status"])


def texts_with(w: DingWorld, user: str, snippet: str) -> list[str]:
    return [t for t in w.ding.robot_texts(user) if snippet in t]


async def wait_text(w: DingWorld, user: str, snippet: str, count: int = 1) -> str:
    """Wait until `user` has received `count` robot messages containing `snippet`; the last one."""
    await w.until(lambda: len(texts_with(w, user, snippet)) >= count, f"{snippet!r} to {user}")
    return texts_with(w, user, snippet)[-1]


async def new_card(w: DingWorld, user: str, before: int) -> CardInstance:
    """Wait for the DingTalk card after the `before` cards `user` already had."""
    await w.until(lambda: len(w.ding.cards_for(user)) > before, f"a new card for {user}")
    return w.ding.cards_for(user)[-1]


async def card_done(w: DingWorld, card: CardInstance) -> str:
    """Wait until the card shows an outcome (status done); that outcome."""
    await w.until(lambda: card.params.get("status") == "done", f"card {card.out_track_id} to show an outcome")
    return str(card.params["outcome"])


async def press_card(w: DingWorld, card: CardInstance, action: str) -> str:
    """Press a button on this very card (ding_press presses the user's newest one)."""
    await w.card_recorded(card.out_track_id)
    mid = await w.ding.push_card_callback(card.out_track_id, card.user, {"action": action, "code": card.params["code"]})
    await w.ding.wait_for_ack(mid)
    return mid


def all_strings(card: CardInstance) -> bool:
    return all(isinstance(k, str) and isinstance(v, str) for snap in card.history for k, v in snap["params"].items())


async def create(w: DingWorld, **body: Any) -> str:
    payload = {"kind": "special", "title": "推进图书馆古籍数字化", "lead_unit": "图书馆", "deadline": "2026-04-30", **body}
    status, data = await w.api("POST", "/api/v1/items", json=payload)
    assert status == 201, data
    return str(data["code"])


async def waiting_rows(w: DingWorld, n: int) -> list[dict[str, Any]]:
    """Wait until exactly `n` outbox rows wait for a retry (pending after at least one attempt)."""
    rows: list[dict[str, Any]] = []

    async def fetch() -> None:
        nonlocal rows
        status, data = await w.api("GET", "/api/v1/outbox?status=pending")
        assert status == 200, data
        rows = [r for r in data["rows"] if r["attempts"] > 0]

    loop = asyncio.get_running_loop()
    end = loop.time() + 5.0
    await fetch()
    while len(rows) != n:
        assert loop.time() < end, f"expected {n} rows waiting for a retry, got {rows}"
        await asyncio.sleep(0.02)
        await fetch()
    return rows


# =====================================================================================================
# 0. An incoming item: principal and handler on DingTalk, the leader on WeCom


async def test_incoming_item_whose_principal_and_handler_are_on_dingtalk(ding_world: DingWorld) -> None:
    w = ding_world
    status, data = await w.api("POST", "/api/v1/items", json={
        "kind": "incoming", "title": "落实图书馆安全检查通知", "source_title": "关于开展安全检查的通知",
        "lead_unit": "图书馆", "deadline": "2026-04-30", "leader": "李校长"})
    assert status == 201, data
    code = data["code"]
    await w.until(lambda: any("请指派专人" in t for t in w.ding.robot_texts("zheng")), "the principal's notice")

    reply = await w.ding_say("zheng", f"指派 {code} 冯老师")
    assert "已指派冯老师" in reply
    await w.until(lambda: w.ding.cards_for("feng"), "the sign card")
    card = w.ding_card("feng")
    assert card.params["code"] == code and card.params["mode"] == "sign"
    await w.ding_press("feng", "sign")
    await w.until(lambda: w.ding_card("feng").params.get("status") == "done", "the card to show it was signed")
    assert await status_of(w, code) == "in_progress"
    assert "已签收" in w.ding_card("feng").params["outcome"]

    await w.ding_say("feng", f"办结 {code} 已完成全馆安全检查")
    await w.until(lambda: w.ding.cards_for("zheng"), "the closure card")
    await w.ding_press("zheng", "approve")
    await w.until(lambda: w.emu.cards_for("li"), "the leader's WeCom card")
    assert await status_of(w, code) == "leader_review"
    await w.press_last("li", "同意")
    await w.until(lambda: any("已办结" in t for t in w.ding.robot_texts("feng")), "closure news to the handler")
    assert await status_of(w, code) == "closed"


# =====================================================================================================
# 1. The full life of a special item whose principal and handler are on DingTalk


async def test_special_item_full_life_on_dingtalk_with_return_and_extension(ding_world: DingWorld) -> None:
    w = ding_world
    code = await create(w, leader="李校长")
    assert "请指派专人" in await wait_text(w, "zheng", "请指派专人")

    # 指派 by robot text; 签收 on the card
    assert "已指派冯老师" in await w.ding_say("zheng", f"指派 {code} 冯老师")
    sign_card = await new_card(w, "feng", 0)
    assert sign_card.params["code"] == code and sign_card.params["mode"] == "sign"
    await w.ding_press("feng", "sign")
    assert await card_done(w, sign_card) == "已签收（冯老师）"
    assert await status_of(w, code) == "in_progress"
    await wait_text(w, "feng", f"已签收 {code}")

    # 进展 by text; the principal agrees on the card → published, the handler told
    assert "进展已提交" in await w.ding_say("feng", f"进展 {code} 完成首批古籍扫描")
    progress_card = await new_card(w, "zheng", 0)
    assert progress_card.params["mode"] == "review" and progress_card.params["title"] == "进展待审核"
    await w.ding_press("zheng", "approve")
    assert await card_done(w, progress_card) == "已同意（郑馆长）"
    await wait_text(w, "feng", "进展已审核发布")
    item = await w.item(code)
    assert [p["status"] for p in item["progress"]] == ["published"]

    # 延期: the principal agrees on the DingTalk card, then the office on WeCom
    assert "延至 2026-05-31" in await w.ding_say("feng", f"延期 {code} 2026-05-31 需等待设备到货")
    ext_card = await new_card(w, "zheng", 1)
    assert ext_card.params["title"] == "延期申请"
    await w.ding_press("zheng", "approve")
    assert await card_done(w, ext_card) == "已同意（郑馆长）"
    await w.until(lambda: w.emu.cards_for("zhou"), "the office's WeCom extension card")
    assert (await w.item(code))["deadline"] == "2026-04-30"  # not before the office agrees
    await w.press_last("zhou", "同意")
    assert "新的办结时限为 2026-05-31" in await wait_text(w, "feng", "新的办结时限为 2026-05-31")
    await wait_text(w, "zheng", "新的办结时限为 2026-05-31")
    item = await w.item(code)
    assert item["deadline"] == "2026-05-31" and item["extensions"][-1]["status"] == "approved"

    # 办结, 退回 on the card: the reason is asked for by robot message and the next message is the reason
    assert "办结已提交" in await w.ding_say("feng", f"办结 {code} 首批古籍已全部上线")
    closure_card = await new_card(w, "zheng", 2)
    assert closure_card.params["title"] == "办结待审核"
    asked = len(texts_with(w, "zheng", "请直接回复退回"))
    await w.ding_press("zheng", "return")
    assert f"请直接回复退回 {code} 的理由" in await wait_text(w, "zheng", "请直接回复退回", asked + 1)
    assert await status_of(w, code) == "unit_review"
    assert closure_card.params["status"] == "pending"  # nothing decided yet
    reply = await w.ding_say("zheng", "请补充上线清单和验收记录")
    assert f"已退回 {code}" in reply and "办理中" in reply
    assert await card_done(w, closure_card) == "已退回（郑馆长）"
    assert "办结被退回：请补充上线清单和验收记录" in await wait_text(w, "feng", "办结被退回")
    item = await w.item(code)
    assert item["status"] == "in_progress" and item["return_count"] == 1

    # 办结 again; principal (DingTalk card) → office (WeCom card) → leader (WeCom card) → closed
    assert "办结已提交" in await w.ding_say("feng", f"办结 {code} 已补充上线清单和验收记录")
    closure_card = await new_card(w, "zheng", 3)
    await w.ding_press("zheng", "approve")
    assert await card_done(w, closure_card) == "已同意（郑馆长）"
    await w.until(lambda: len(w.emu.cards_for("zhou")) == 2, "the office's WeCom closure card")
    assert await status_of(w, code) == "office_review"
    await w.press_last("zhou", "同意")
    await w.until(lambda: w.emu.cards_for("li"), "the leader's WeCom closure card")
    assert await status_of(w, code) == "leader_review"
    await w.press_last("li", "同意")
    await wait_text(w, "feng", "已办结")
    assert await status_of(w, code) == "closed"

    # 归档 by the handler on DingTalk
    assert f"{code} 已归档" in await w.ding_say("feng", f"归档 {code}")
    assert await status_of(w, code) == "archived"
    assert await w.event_kinds(code) == [
        "created", "designated", "signed", "progress_reported", "progress_published",
        "extension_requested", "extension_agreed_by_principal", "extension_approved",
        "closure_submitted", "closure_returned", "closure_submitted",
        "closure_approved", "closure_approved", "closure_approved", "archived",
    ]
    # every card the DingTalk people received: values all strings, each decided exactly once
    cards = w.ding.cards_for("feng") + w.ding.cards_for("zheng")
    assert len(cards) == 5 and all(all_strings(c) for c in cards)
    assert all(c.params["status"] == "done" for c in cards)
    assert not w.ding.bad_acks and not w.ding.work_dropped and not w.ding.robot_flow_controlled


# =====================================================================================================
# 2. Lead unit on WeCom, co-unit on DingTalk


async def test_co_unit_on_dingtalk_reports_progress_but_cannot_submit_closure(ding_world: DingWorld) -> None:
    w = ding_world
    code = await create(w, title="建设智慧教室", lead_unit="教务处", co_units=["图书馆"], handler="张老师", leader="李校长")
    assert "配合办理" in await wait_text(w, "zheng", "请指派专人")

    # the co-unit's principal designates by DingTalk text; the handler signs on the DingTalk card
    assert "已指派冯老师" in await w.ding_say("zheng", f"指派 {code} 冯老师")
    sign_card = await new_card(w, "feng", 0)
    assert sign_card.params["code"] == code and sign_card.params["mode"] == "sign"
    await w.ding_press("feng", "sign")
    assert await card_done(w, sign_card) == "已签收（冯老师）"

    # the co-unit handler reports progress by text; its own principal publishes it from the card
    assert "进展已提交" in await w.ding_say("feng", f"进展 {code} 已完成图书馆区域网络改造")
    card = await new_card(w, "zheng", 0)
    assert card.params["title"] == "进展待审核" and "已完成图书馆区域网络改造" in card.params["body"]
    assert not [c for c in w.emu.cards_for("chen")]  # the lead's principal does not review the co-unit's progress
    await w.ding_press("zheng", "approve")
    assert await card_done(w, card) == "已同意（郑馆长）"
    await wait_text(w, "feng", "进展已审核发布")
    item = await w.item(code)
    assert [(p["text"], p["status"]) for p in item["progress"]] == [("已完成图书馆区域网络改造", "published")]

    # the co-unit's 办结 is refused: only the lead unit submits closure (第十条)
    refusals = await w.refusals()
    reply = await w.ding_say("feng", f"办结 {code} 图书馆部分已完成")
    assert "只有牵头单位的办理人可以提交办结" in reply
    assert await w.refusals() == refusals + 1

    # the lead finishes on WeCom
    assert "已签收" in (await w.say("zhang", f"签收 {code}") or "")
    assert "办结已提交" in (await w.say("zhang", f"办结 {code} 智慧教室已投入使用") or "")
    await w.drain()
    assert await status_of(w, code) == "unit_review"
    await w.press_last("chen", "同意")
    await w.until(lambda: w.emu.cards_for("zhou"), "the office's closure card")
    await w.press_last("zhou", "同意")
    await w.until(lambda: w.emu.cards_for("li"), "the leader's closure card")
    await w.press_last("li", "同意")
    await w.drain()
    assert await status_of(w, code) == "closed"

    # after the close the co-unit still cannot submit or archive
    reply = await w.ding_say("feng", f"办结 {code} 图书馆部分已完成")
    assert "只有牵头单位的办理人" in reply
    assert await status_of(w, code) == "closed"
    assert w.ding.cards_for("zheng") == [card]  # the co-unit principal reviews no closure
    assert not w.ding.bad_acks


# =====================================================================================================
# 3. A redelivered frame (same messageId) is ACKed again and handled once


async def in_progress_on_dingtalk(w: DingWorld) -> str:
    """An item of 图书馆 designated to 冯老师 at creation and signed on the card; card handled."""
    code = await create(w, handler="冯老师")
    card = await new_card(w, "feng", 0)
    await w.ding_press("feng", "sign")
    await card_done(w, card)
    await w.settle()
    await w.drain()
    assert await status_of(w, code) == "in_progress"
    return code


async def test_redelivered_robot_message_is_acked_each_time_and_handled_once(ding_world: DingWorld) -> None:
    w = ding_world
    code = await in_progress_on_dingtalk(w)
    replies = len(w.ding.robot_texts("feng"))
    counts = await w.counts()

    mid = await w.ding.push_robot_text("feng", f"进展 {code} 完成馆藏清点", msg_id="dup-progress-1")
    await w.ding.redeliver(mid)  # at once: before the first delivery is handled
    await w.ding.wait_for_ack(mid)
    await w.ding.wait_until(lambda: len(w.ding.ack_frames[mid]) == 2, what="the second ACK")
    await wait_text(w, "feng", "进展已提交")
    await w.ding.redeliver(mid)  # and again after it was handled and answered
    await w.ding.wait_until(lambda: len(w.ding.ack_frames[mid]) == 3, what="the third ACK")
    await w.settle()
    await w.drain()

    assert w.ding.deliveries[mid] == 3
    assert [a["headers"]["messageId"] for a in w.ding.ack_frames[mid]] == [mid] * 3
    assert all(a["code"] == 200 for a in w.ding.ack_frames[mid])
    item = await w.item(code)
    assert [p["text"] for p in item["progress"]] == ["完成馆藏清点"]
    assert [e["kind"] for e in item["timeline"]].count("progress_reported") == 1
    assert len(w.ding.robot_texts("feng")) == replies + 1  # one reply
    assert len(w.ding.cards_for("zheng")) == 1  # one review card
    assert (await w.counts())["inbox"] == counts["inbox"] + 1
    assert not w.ding.given_up and not w.ding.bad_acks and not w.ding.nacks


async def test_redelivered_card_press_is_handled_once(ding_world: DingWorld) -> None:
    w = ding_world
    code = await create(w, handler="冯老师")
    card = await new_card(w, "feng", 0)
    mid = await w.ding_press("feng", "sign")
    await w.ding.redeliver(mid)
    await w.ding.wait_until(lambda: len(w.ding.ack_frames[mid]) == 2, what="the second ACK")
    await card_done(w, card)
    await w.ding.redeliver(mid)
    await w.ding.wait_until(lambda: len(w.ding.ack_frames[mid]) == 3, what="the third ACK")
    await w.settle()
    await w.drain()

    assert w.ding.deliveries[mid] == 3
    assert (await w.event_kinds(code)).count("signed") == 1
    assert len(texts_with(w, "feng", f"已签收 {code}")) == 1
    assert [u["source"] for u in w.ding.card_updates if u["outTrackId"] == card.out_track_id] == ["api"]
    assert await w.refusals() == 0  # the duplicate never reached the handlers


# =====================================================================================================
# 4. The socket goes away in the middle of a flow: a new ticket, nothing lost, nothing doubled


def tickets_used(w: DingWorld) -> list[str]:
    """The ticket of every websocket upgrade our client asked for, in order."""
    return [q.get("ticket", "") for path, q in w.ding.requests if path == "/connect"]


async def test_dropped_socket_and_disconnect_frame_reconnect_with_new_tickets(ding_world: DingWorld) -> None:
    w = ding_world
    ding = w.ding
    code = await create(w, handler="冯老师")
    sign_card = await new_card(w, "feng", 0)
    assert (ding.connections_opened, ding.websockets_accepted) == (1, 1)
    first = ding.current_connection_id

    # abrupt TCP close; a press made while we are away waits for the next connection
    await ding.drop_connection()
    assert not ding.connected
    await w.card_recorded(sign_card.out_track_id)
    mid = await ding.push_card_callback(sign_card.out_track_id, "feng", {"action": "sign", "code": code})
    assert ding.deliveries[mid] == 0
    second = await ding.wait_connected(count=2)
    assert second != first
    await ding.wait_for_ack(mid)
    assert await card_done(w, sign_card) == "已签收（冯老师）"
    assert ding.deliveries[mid] == 1 and ding.sent_frames[-1]["headers"]["connectionId"] == second

    # the flow goes on over the new socket
    assert "进展已提交" in await w.ding_say("feng", f"进展 {code} 完成馆藏清点")

    # the gateway asks us to move: we reconnect at once with a new ticket, and a message sent
    # while the old socket drains arrives on the new one
    await ding.push_disconnect()
    mid2 = await ding.push_robot_text("feng", f"进展 {code} 完成数据校验")
    third = await ding.wait_connected(count=3)
    assert third not in (first, second)
    await ding.wait_for_ack(mid2)
    await wait_text(w, "feng", "进展已提交", 2)
    assert ding.sent_frames[-1]["headers"]["messageId"] == mid2
    assert ding.sent_frames[-1]["headers"]["connectionId"] == third

    # and the principal publishes both, each from its own card
    await w.until(lambda: len(ding.cards_for("zheng")) == 2, "two progress cards")
    for card in ding.cards_for("zheng"):
        await press_card(w, card, "approve")
        assert await card_done(w, card) == "已同意（郑馆长）"
    await w.settle()
    await w.drain()

    item = await w.item(code)
    assert [(p["text"], p["status"]) for p in item["progress"]] == [
        ("完成馆藏清点", "published"), ("完成数据校验", "published")]
    kinds = [e["kind"] for e in item["timeline"]]
    assert kinds.count("signed") == 1 and kinds.count("progress_reported") == 2
    assert len(texts_with(w, "feng", "进展已提交")) == 2 and len(texts_with(w, "feng", f"已签收 {code}")) == 1
    # each connection had its own ticket, fetched fresh and used once
    tickets = tickets_used(w)
    assert ding.connections_opened == ding.websockets_accepted == 3
    assert len(tickets) == 3 and len(set(tickets)) == 3
    assert all(n == 1 for n in ding.deliveries.values() if n)  # nothing pushed twice, nothing given up
    assert not ding.given_up and not ding.bad_acks
    assert w.runtime.stream is not None and w.runtime.stream.connections == 3


# =====================================================================================================
# 5. Watchdog: a silent socket is replaced by a new one


async def test_silent_socket_is_replaced_by_the_watchdog(ding_world: DingWorld) -> None:
    w = ding_world
    ding = w.ding
    stream = w.runtime.stream
    assert stream is not None
    stream.watchdog = 0.3
    await ding.push_ping()  # the client re-arms its wait with the new watchdog after this frame
    await ding.wait_connected(count=2, timeout=3.0)
    stream.watchdog = 120.0
    await ding.push_ping()  # re-arm the new connection with the long watchdog
    assert ding.connections_opened == ding.websockets_accepted >= 2
    tickets = tickets_used(w)
    assert len(set(tickets)) == len(tickets)
    assert not ding.bad_acks  # pings were echoed

    # the new connection works
    code = await create(w, handler="冯老师")
    card = await new_card(w, "feng", 0)
    await w.ding_press("feng", "sign")
    assert await card_done(w, card) == "已签收（冯老师）"
    assert "进展已提交" in await w.ding_say("feng", f"进展 {code} 完成馆藏清点")


# =====================================================================================================
# 6. HTTP mode: POST /callback/dingtalk with the robot signature


@pytest.fixture
async def ding_http_world(db_url: str, clock: FakeClock) -> AsyncIterator[DingWorld]:
    async with open_ding_world(db_url, clock, DINGTALK_MODE="http") as w:
        yield w


async def post_callback(w: DingWorld, body: bytes | str, headers: dict[str, str]) -> tuple[int, Any]:
    url = str(w.server.make_url("/callback/dingtalk"))
    data = body.encode() if isinstance(body, str) else body
    async with w.http.post(url, data=data, headers={"Content-Type": "application/json", **headers}) as resp:
        raw = await resp.read()
        return resp.status, json.loads(raw) if raw else None


async def test_http_mode_signed_callback_is_handled_and_answered_by_robot_message(ding_http_world: DingWorld) -> None:
    w = ding_http_world
    ding = w.ding
    assert w.runtime.stream is None and ding.connections_opened == 0  # no socket in HTTP mode
    code = await create(w)
    await wait_text(w, "zheng", "请指派专人")

    payload = ding.robot_text_payload("zheng", f"指派 {code} 冯老师", msg_id="http-msg-1")
    status, answer = await post_callback(w, json.dumps(payload, ensure_ascii=False), ding.http_callback_headers())
    assert (status, answer) == (200, {})
    assert "已指派冯老师" in await wait_text(w, "zheng", "已指派冯老师")
    # card clicks come back only over Stream: in HTTP mode the sign request arrives as text with its command
    assert f"签收 {code}" in await wait_text(w, "feng", f"签收 {code}")
    assert not ding.cards_for("feng")
    assert await status_of(w, code) == "designated"
    assert not ding.session_replies  # the answer went as a robot message, not to the sessionWebhook

    # the same message posted again (DingTalk retry) has no second effect
    counts = await w.counts()
    status, _ = await post_callback(w, json.dumps(payload, ensure_ascii=False), ding.http_callback_headers())
    assert status == 200
    await w.settle()
    await w.drain()
    assert len(texts_with(w, "zheng", "已指派冯老师")) == 1 and len(texts_with(w, "feng", f"签收 {code}")) == 1
    assert await w.counts() == counts

    # the handler signs by text, also through the HTTP callback
    payload = ding.robot_text_payload("feng", f"签收 {code}", msg_id="http-msg-2")
    status, _ = await post_callback(w, json.dumps(payload, ensure_ascii=False), ding.http_callback_headers())
    assert status == 200
    await wait_text(w, "feng", f"已签收 {code}")
    assert await status_of(w, code) == "in_progress"


async def test_http_mode_refuses_bad_callbacks_and_records_nothing(ding_http_world: DingWorld) -> None:
    w = ding_http_world
    ding = w.ding
    await w.drain()
    counts = await w.counts()
    texts = {u: list(ding.robot_texts(u)) for u in ("zheng", "feng")}
    good = json.dumps(ding.robot_text_payload("zheng", "待办", msg_id="http-bad-1"), ensure_ascii=False)
    now_ms = int(w.clock().timestamp() * 1000)

    forged = {**ding.http_callback_headers(), "sign": base64.b64encode(b"x" * 32).decode()}
    assert (await post_callback(w, good, forged))[0] == 403
    old = ding.http_callback_headers(timestamp_ms=now_ms - 3600 * 1000 - 1000)
    assert (await post_callback(w, good, old))[0] == 403
    future = ding.http_callback_headers(timestamp_ms=now_ms + 3600 * 1000 + 1000)
    assert (await post_callback(w, good, future))[0] == 403
    assert (await post_callback(w, good, {}))[0] == 403
    only_ts = {"timestamp": ding.http_callback_headers()["timestamp"]}
    assert (await post_callback(w, good, only_ts))[0] == 403
    status, answer = await post_callback(w, '{"msgtype": "text", "text": ', ding.http_callback_headers())
    assert status == 400 and answer["error"] == "malformed"
    assert (await post_callback(w, "[1, 2]", ding.http_callback_headers()))[0] == 400
    big = json.dumps({**json.loads(good), "pad": "x" * (64 * 1024)})
    status, answer = await post_callback(w, big, ding.http_callback_headers())
    assert status == 413 and answer["error"] == "too_large"

    await w.settle()
    await w.drain()
    assert await w.counts() == counts
    assert {u: list(ding.robot_texts(u)) for u in ("zheng", "feng")} == texts

    # the same body with a correct signature is then accepted (the refusals did not burn its msgId)
    assert (await post_callback(w, good, ding.http_callback_headers()))[0] == 200
    assert "郑馆长，您目前没有待办的督办事项" in await wait_text(w, "zheng", "待办")


# =====================================================================================================
# 7. A person with both ids: reached once on the preferred channel, answered where they wrote


async def test_person_with_both_ids_is_reached_once_and_answered_where_they_wrote(ding_world: DingWorld) -> None:
    w = ding_world
    ding = w.ding
    code = await create(w, title="整理科研成果台账", lead_unit="科研院", handler="孙老师")
    sign_card = await new_card(w, "sun_dd", 0)  # preferred DingTalk: the card goes there ...
    assert sign_card.params["code"] == code and sign_card.params["mode"] == "sign"
    await w.drain()
    assert w.emu.delivered.get("sun", []) == []  # ... and only there
    assert ding.robot_texts("sun_dd") == []

    # 签收 from WeCom, with the work outliving the inline budget: the reply goes back on WeCom
    w.runtime.inbound.budget = 0.0
    assert await w.say("sun", f"签收 {code}") is None
    w.runtime.inbound.budget = 3.0
    await w.until(lambda: w.texts("sun"), "the late reply on WeCom")
    assert [t for t in w.texts("sun") if f"已签收 {code}" in t] == w.texts("sun")
    assert ding.robot_texts("sun_dd") == []
    assert await status_of(w, code) == "in_progress"

    # an inline WeCom reply stays on WeCom too
    reply = await w.say("sun", f"查看 {code}")
    assert reply is not None and code in reply and "办理中" in reply
    assert ding.robot_texts("sun_dd") == []

    # 进展 from DingTalk: the reply comes by robot message, nothing on WeCom
    assert "进展已提交" in await w.ding_say("sun_dd", f"进展 {code} 完成成果清点")
    await w.until(lambda: w.emu.cards_for("zhao"), "the principal's WeCom progress card")
    await w.press_last("zhao", "同意")
    await wait_text(w, "sun_dd", "进展已审核发布")
    await w.settle()
    await w.drain()
    assert len(texts_with(w, "sun_dd", "进展已审核发布")) == 1
    assert len(w.texts("sun")) == 1 and not w.emu.cards_for("sun")  # still only the one WeCom reply

    # the DingTalk sign card is stale now: a press there is refused there, and the card says so
    await w.ding_press("sun_dd", "sign")
    assert f"您已签收事项 {code}" in await wait_text(w, "sun_dd", "您已签收")
    assert await card_done(w, sign_card) == "已失效"
    assert (await w.event_kinds(code)).count("signed") == 1
    assert len(w.texts("sun")) == 1


# =====================================================================================================
# 8. Notices and reminders go as DingTalk work notifications, and none is silently dropped


async def test_notice_and_reminder_digest_arrive_as_work_notifications(ding_world: DingWorld) -> None:
    w = ding_world
    ding = w.ding
    text = "请各单位于本周五前报送古籍保护工作材料"
    reply = await w.say("zhou", f"通报 {text}")
    assert reply is not None and "通报已发送给 4 位单位主要负责人" in reply
    await w.until(lambda: ding.work_texts("zheng"), "the notice to zheng")
    assert text in ding.work_texts("zheng")[0]
    assert ding.robot_texts("zheng") == []  # a notice, not a chat message
    assert any(text in t for t in w.texts("chen"))  # WeCom principals get it on WeCom

    # the same notice again later the same day: its wording carries the time, so DingTalk delivers it
    w.clock.advance(hours=5)
    await w.say("zhou", f"通报 {text}")
    await w.until(lambda: len(ding.work_texts("zheng")) == 2, "the second notice")
    assert all(text in t for t in ding.work_texts("zheng"))
    assert ding.work_texts("zheng")[0] != ding.work_texts("zheng")[1]
    assert not ding.work_dropped, ding.work_dropped

    # a reminder sweep: the handler's digest is a work notification too
    code = await create(w, handler="冯老师", deadline="2026-03-09")
    await w.drain()
    w.clock.set(local(2026, 3, 4, 10, 0))
    result = await w.runtime.jobs.sweep(w.clock())  # type: ignore[union-attr]
    assert result.messages >= 1
    await w.until(lambda: ding.work_texts("feng"), "the digest to feng")
    digest = ding.work_texts("feng")[0]
    assert digest.startswith("【督办提醒 3月4日】冯老师您好") and code in digest
    # the next working day's digest reads differently, so DingTalk does not drop it
    w.clock.set(local(2026, 3, 9, 10, 0))
    await w.runtime.jobs.sweep(w.clock())  # type: ignore[union-attr]
    await w.until(lambda: len(ding.work_texts("feng")) == 2, "the second digest to feng")
    assert ding.work_texts("feng")[1].startswith("【督办提醒 3月9日】")
    assert not ding.work_dropped, ding.work_dropped
    assert all(m["msg"]["msgtype"] in ("text", "markdown") for m in ding.work_notices["feng"])



# =====================================================================================================
# 9. Flow control: a throttled robot message is retried by the outbox and delivered once


async def test_flow_controlled_robot_message_is_retried_and_delivered_once(ding_world: DingWorld) -> None:
    w = ding_world
    ding = w.ding
    code = await in_progress_on_dingtalk(w)
    before = len(ding.robot_texts("feng"))
    ding.flow_control("feng", 1)

    mid = await ding.push_robot_text("feng", f"进展 {code} 完成馆藏清点")
    await ding.wait_for_ack(mid)
    await w.until(lambda: ding.robot_flow_controlled["feng"], "the throttled attempt")
    await waiting_rows(w, 1)  # the sender has recorded the retry
    await w.drain()
    assert len(ding.robot_texts("feng")) == before  # not delivered, and not retried before it is due
    assert ding.robot_flow_controlled["feng"][0]["msgParam"]["content"].startswith(f"{code} 进展已提交")

    w.clock.advance(seconds=61)  # past the row's available_at
    await w.drain()
    assert len(ding.robot_texts("feng")) == before + 1
    assert "进展已提交" in ding.robot_texts("feng")[-1]
    w.clock.advance(minutes=30)
    await w.drain()
    assert len(ding.robot_texts("feng")) == before + 1  # once
    assert len(ding.robot_flow_controlled["feng"]) == 1
    status, dead = await w.api("GET", "/api/v1/outbox?status=dead")
    assert status == 200 and dead["rows"] == [], dead
    assert dead["counts"].get("pending", 0) == 0 and dead["counts"].get("leased", 0) == 0, dead


# =====================================================================================================
# 10. No card template: the same text with the matching commands, and the commands work


@pytest.fixture
async def ding_world_without_cards(db_url: str, clock: FakeClock) -> AsyncIterator[DingWorld]:
    async with open_ding_world(db_url, clock, DINGTALK_CARD_TEMPLATE_ID="") as w:
        yield w


async def test_without_a_card_template_requests_come_as_text_with_commands(ding_world_without_cards: DingWorld) -> None:
    w = ding_world_without_cards
    ding = w.ding
    code = await create(w, handler="冯老师")
    request = await wait_text(w, "feng", "【请签收】")
    assert f"请回复“签收 {code}”" in request and "办结时限 2026-04-30" in request
    assert not ding.cards and not any(p == "/v1.0/card/instances/createAndDeliver" for p, _ in ding.requests)

    assert f"已签收 {code}" in await w.ding_say("feng", f"签收 {code}")
    assert await status_of(w, code) == "in_progress"

    # a review reaches the principal as text too, and is decided by text
    await w.ding_say("feng", f"进展 {code} 完成馆藏清点")
    review = await wait_text(w, "zheng", "【进展待审核】")
    assert f"同意 {code}" in review and f"退回 {code} 理由" in review
    assert f"已同意。{code} 当前状态：办理中" in await w.ding_say("zheng", f"同意 {code}")
    await wait_text(w, "feng", "进展已审核发布")
    assert [p["status"] for p in (await w.item(code))["progress"]] == ["published"]
    assert not ding.cards and not ding.card_updates


# =====================================================================================================
# 11. Card data: string values carrying the item code; a press by someone the card was not given to


async def test_card_values_are_strings_and_carry_the_code(ding_world: DingWorld) -> None:
    w = ding_world
    ding = w.ding
    code = await create(w, handler="冯老师", co_units=["科研院"], leader="李校长")
    card = await new_card(w, "feng", 0)
    created = next(b for p, b in ding.requests if p == "/v1.0/card/instances/createAndDeliver")
    params = created["cardData"]["cardParamMap"]
    assert all(isinstance(v, str) for v in params.values()), params
    assert params["code"] == code and params["mode"] == "sign" and params["status"] == "pending"
    assert params["title"] == "请签收督办事项" and code in params["body"]
    assert json.loads(params["fields"]) == [
        {"k": "类别", "v": "专项督办"}, {"k": "牵头单位", "v": "图书馆"}, {"k": "配合单位", "v": "科研院"},
        {"k": "办结时限", "v": "2026-04-30"}]
    assert created["callbackType"] == "STREAM" and created["outTrackId"] == card.out_track_id
    assert created["openSpaceId"] == "dtv1.card//IM_ROBOT.feng"

    await w.ding_press("feng", "sign")
    await card_done(w, card)
    update = [b for p, b in ding.requests if p == "/v1.0/card/instances"][-1]
    assert all(isinstance(v, str) for v in update["cardData"]["cardParamMap"].values())
    assert card.params["code"] == code  # the update merged by key: the code is still there
    assert all_strings(card)
    assert not ding.bad_acks  # the ACK of the press carried no invalid card data


async def test_press_by_someone_the_card_was_not_given_to_is_refused(ding_world: DingWorld) -> None:
    w = ding_world
    ding = w.ding
    code = await in_progress_on_dingtalk(w)
    await w.ding_say("feng", f"进展 {code} 完成馆藏清点")
    card = await new_card(w, "zheng", 0)

    # DingTalk itself would never send it: the emulator refuses to click zheng's card as feng ...
    with pytest.raises(AssertionError, match="was not delivered to 'feng'"):
        await ding.push_card_callback(card.out_track_id, "feng", {"action": "approve", "code": code})

    await w.card_recorded(card.out_track_id)
    # ... so craft the frame with its lower-level helpers (a forged or misrouted callback)
    refusals, replies = await w.refusals(), len(ding.robot_texts("feng"))
    data = {"outTrackId": card.out_track_id, "userId": "feng", "userIdType": 1, "corpId": ding.corp_id,
            "spaceType": "IM_ROBOT", "spaceId": "feng", "type": "actionCallback", "extension": "{}",
            "content": json.dumps({"cardPrivateData": {"actionIds": ["approve"],
                                                       "params": {"action": "approve", "code": code}}})}
    frame = ding._make_frame("CALLBACK", TOPIC_CARD, data, "card", True, out_track_id=card.out_track_id, user="feng")
    mid = await ding._push(frame)
    await ding.wait_for_ack(mid)
    await w.until(lambda: len(ding.robot_texts("feng")) > replies, "the refusal to feng")
    await w.settle()
    await w.drain()

    assert ding.robot_texts("feng")[-1] == "您不是该事项承办单位的主要负责人，无权进行此操作。"
    assert await w.refusals() == refusals + 1
    assert [p["status"] for p in (await w.item(code))["progress"]] == ["pending"]
    assert card.params["status"] == "pending"  # the owner's card still waits for the owner
    assert not [u for u in ding.card_updates if u["outTrackId"] == card.out_track_id]

    # and the owner can still decide
    await w.ding_press("zheng", "approve")
    assert await card_done(w, card) == "已同意（郑馆长）"
    assert [p["status"] for p in (await w.item(code))["progress"]] == ["published"]


# =====================================================================================================
# 12. A decision several people hold cards for: the cards on DingTalk show who decided, too


async def test_shared_decision_updates_the_sibling_card_on_the_other_platform(ding_world: DingWorld) -> None:
    w = ding_world
    ding = w.ding
    ding.add_user("ma_dd")
    status, body = await w.api("POST", "/api/v1/org", json={"people": [
        {"unit": "学校办公室", "name": "马督办", "roles": ["office"], "dingtalk_id": "ma_dd",
         "preferred_channel": "dingtalk"}]})
    assert status == 200, body
    code = await in_progress_on_dingtalk(w)

    # a closure at office review: 周督办 holds a WeCom card, 马督办 a DingTalk card; 周督办 decides
    await w.ding_say("feng", f"办结 {code} 首批古籍已全部上线")
    await w.ding_press("zheng", "approve")
    ding_card = await new_card(w, "ma_dd", 0)
    await w.until(lambda: w.emu.cards_for("zhou"), "the WeCom office card")
    assert ding_card.params["title"] == "办结待审核"
    await w.press_last("zhou", "同意")
    assert await card_done(w, ding_card) == "已同意（周督办）"
    assert await status_of(w, code) == "leader_review"

    # an extension at office review: this time 马督办 decides on DingTalk and the WeCom card follows
    code2 = await create(w, title="古籍修复", handler="冯老师")
    sign = await new_card(w, "feng", 1)
    await w.ding_press("feng", "sign")
    await card_done(w, sign)
    await w.ding_say("feng", f"延期 {code2} 2026-05-31 需等待设备到货")
    await new_card(w, "zheng", 1)
    await w.ding_press("zheng", "approve")
    ma_card = await new_card(w, "ma_dd", 1)
    await w.until(lambda: len(w.emu.cards_for("zhou")) == 2, "the WeCom extension card")
    zhou_card = w.last_card("zhou")
    await w.ding_press("ma_dd", "approve")
    assert await card_done(w, ma_card) == "已同意（马督办）"
    await w.until(lambda: w.card_outcome("zhou", zhou_card) is not None, "the WeCom sibling card")
    assert w.card_outcome("zhou", zhou_card) == "已同意（马督办）"
    assert (await w.item(code2))["deadline"] == "2026-05-31"


# =====================================================================================================
# 13. Expired tokens are refreshed once; a failing DingTalk API is retried by the outbox


async def test_expired_token_is_refreshed_once_and_server_errors_are_retried(ding_world: DingWorld) -> None:
    w = ding_world
    ding = w.ding
    code = await in_progress_on_dingtalk(w)
    fetches = ding.token_calls

    ding.expire_tokens()
    assert "进展已提交" in await w.ding_say("feng", f"进展 {code} 完成馆藏清点")  # v1.0: 401 → refresh → retry
    assert ding.token_calls == fetches + 1
    ding.expire_tokens()
    await w.say("zhou", "通报 请各单位报送古籍保护材料")  # oapi: errcode 40014 → refresh → retry
    await w.until(lambda: ding.work_texts("zheng"), "the notice")
    assert ding.token_calls == fetches + 2

    # a 5xx on the card API: the card is retried later and delivered once
    ding.fail_next("/v1.0/card/instances/createAndDeliver", status=503)
    before = len(ding.cards_for("zheng"))
    await w.ding_say("feng", f"办结 {code} 首批古籍已全部上线")
    rows = await waiting_rows(w, 1)
    assert "ServiceUnavailable" in (rows[0]["last_error"] or "")
    assert len(ding.cards_for("zheng")) == before
    w.clock.advance(seconds=31)
    await w.drain()
    assert len(ding.cards_for("zheng")) == before + 1
    await w.ding_press("zheng", "approve")
    assert await card_done(w, ding.cards_for("zheng")[-1]) == "已同意（郑馆长）"
    assert await status_of(w, code) == "office_review"
    assert ding.token_calls == fetches + 2
