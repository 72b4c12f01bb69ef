"""The whole procedure through WeCom: API → cards → clicks → replies, against the strict emulator."""

from __future__ import annotations

import pytest

from wecom_world import WeComWorld, world  # noqa: F401  (fixture)


async def create(w: WeComWorld, kind: str = "special", **extra: object) -> str:
    body = {"kind": kind, "title": "推进一流本科课程建设", "lead_unit": "教务处", "deadline": "2026-04-30", **extra}
    if kind == "incoming":
        body.setdefault("source_title", "教育部关于一流课程建设的通知")
    status, data = await w.api("POST", "/api/v1/items", json=body)
    assert status == 201, data
    return str(data["code"])


async def status_of(w: WeComWorld, code: str) -> str:
    _, data = await w.api("GET", f"/api/v1/items/{code}")
    return str(data["status"])


async def test_special_item_full_life_by_cards(world: WeComWorld) -> None:
    w = world
    code = await create(w, "special")
    await w.drain()
    assert any("请指派专人" in t for t in w.texts("chen")), w.texts("chen")

    assert "已指派张老师" in (await w.say("chen", f"指派 {code} 张老师") or "")
    await w.drain()
    await w.press_last("zhang", "签收")
    await w.drain()
    assert await status_of(w, code) == "in_progress"
    assert w.emu.card_state("zhang", w.last_card("zhang")["task_id"])["replace_name"].startswith("已签收")
    assert any("已签收" in t for t in w.texts("zhang"))

    assert "进展已提交" in (await w.say("zhang", f"进展 {code} 完成课程摸底") or "")
    await w.drain()
    await w.press_last("chen", "同意")
    await w.drain()
    _, data = await w.api("GET", f"/api/v1/items/{code}")
    assert data["progress"][0]["status"] == "published"

    await w.say("zhang", f"办结 {code} 课程建设方案已印发")
    await w.drain()
    await w.press_last("chen", "同意")
    await w.drain()
    assert await status_of(w, code) == "office_review"
    await w.press_last("zhou", "同意")
    await w.drain()
    assert await status_of(w, code) == "leader_review"
    await w.press_last("li", "同意")
    await w.drain()
    assert await status_of(w, code) == "closed"
    assert any("已办结" in t for t in w.texts("zhang"))
    assert "已归档" in (await w.say("zhang", f"归档 {code}") or "")
    assert await status_of(w, code) == "archived"
