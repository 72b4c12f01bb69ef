"""The procedure through DingTalk (Stream mode, robot messages, interactive cards) against the strict emulator."""

from __future__ import annotations

from dingtalk_world import DingWorld, ding_world  # noqa: F401  (fixture)


async def status_of(w: DingWorld, code: str) -> str:
    _, data = await w.api("GET", f"/api/v1/items/{code}")
    return str(data["status"])


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
