"""DingTalk behind the neutral Adapter interface (dingtalk.md §3, §4).

Conversation goes through the robot's one-to-one messages (≤20 users a call; flow-controlled users
come back in a list and are retried); reminders and notices go as work notifications, which DingTalk
drops silently when the same content reaches the same person twice in a day, so their wording carries
the date. Decisions go as interactive cards from the template in DINGTALK_CARD_TEMPLATE_ID; without
one, the same text with the matching commands is sent instead.
"""

from __future__ import annotations

import json

from bot.adapters.base import Delivery, Outcome
from bot.adapters.dingtalk.client import DingTalkClient, DingTalkError
from bot.messages import OutMessage
from domain.roles import Channel

RETRY_AFTER = 30.0


def _failure(err: DingTalkError) -> Outcome:
    if err.transient:
        return Outcome(Delivery.RETRY, error=str(err), retry_after=RETRY_AFTER)
    return Outcome(Delivery.DEAD, error=str(err))


def card_params(msg: OutMessage, *, status: str = "pending", outcome: str = "") -> dict[str, str]:
    """Every cardParamMap value must be a string (dingtalk.md §4.2)."""
    actions = [b.action for b in msg.buttons]
    return {
        "code": msg.item_code or "",
        "title": msg.title or "督办事项",
        "body": msg.text.split("\n", 1)[0],
        "fields": json.dumps([{"k": k, "v": v} for k, v in msg.fields], ensure_ascii=False),
        "mode": "sign" if actions == ["sign"] else "review",
        "status": status,
        "outcome": outcome,
        "lastMessage": msg.title or "督办事项",
    }


class DingTalkAdapter:
    channel = Channel.DINGTALK
    batch_limit = 20

    def __init__(self, client: DingTalkClient, card_template_id: str) -> None:
        self.client = client
        self.card_template_id = card_template_id

    async def send_text(self, user_ids: list[str], msg: OutMessage) -> Outcome:
        try:
            if msg.notice:
                kind = "markdown" if msg.markdown else "text"
                body = {"title": msg.title or "督办提醒", "text": msg.text} if msg.markdown else {"content": msg.text}
                await self.client.work_notice(user_ids, {"msgtype": kind, kind: body})
                return Outcome.sent()
            if msg.markdown:
                data = await self.client.robot_send(user_ids, "sampleMarkdown", {"title": msg.title or "督办", "text": msg.text})
            else:
                data = await self.client.robot_send(user_ids, "sampleText", {"content": msg.text})
        except DingTalkError as err:
            return _failure(err)
        return Outcome.sent(
            invalid_users=frozenset(u.lower() for u in data.get("invalidStaffIdList") or []),
            throttled_users=frozenset(u.lower() for u in data.get("flowControlledStaffIdList") or []),
        )

    async def send_card(self, user_id: str, msg: OutMessage, card_id: str, retrying: bool) -> Outcome:
        if not self.card_template_id:
            out = await self.send_text([user_id], msg)
            return Outcome(out.status, out.error, out.retry_after, out.invalid_users, None, out.throttled_users, as_card=False)
        body = {
            "cardTemplateId": self.card_template_id,
            "outTrackId": card_id,
            "cardData": {"cardParamMap": card_params(msg)},
            "callbackType": "STREAM",
            "userIdType": 1,
            "openSpaceId": f"dtv1.card//IM_ROBOT.{user_id}",
            "imRobotOpenSpaceModel": {"supportForward": False, "lastMessageI18n": {"ZH_CN": msg.title or "督办事项"}},
            "imRobotOpenDeliverModel": {"spaceType": "IM_ROBOT", "robotCode": self.client.robot_code},
        }
        try:
            data = await self.client.card_create(body)
        except DingTalkError as err:
            if retrying and "uplicat" in err.code:
                return Outcome.sent()  # an earlier attempt created it after all: outTrackId is ours per row
            return _failure(err)
        results = (data.get("result") or {}).get("deliverResults") or []
        failed = [r for r in results if not r.get("success")]
        if not results or failed:
            reason = failed[0].get("errorMsg", "not delivered") if failed else "no deliverResults"
            return Outcome(Delivery.DEAD, error=f"card not delivered: {reason}", invalid_users=frozenset({user_id.lower()}))
        return Outcome.sent()

    async def update_card(self, user_id: str, card_id: str, response_code: str | None, outcome: str) -> Outcome:
        try:
            await self.client.card_update(card_id, {"status": "done", "outcome": outcome})
        except DingTalkError as err:
            return _failure(err)
        return Outcome.sent()

    async def send_file(self, user_ids: list[str], kind: str, filename: str, data: bytes) -> Outcome:
        return Outcome(Delivery.DEAD, error="file attachments are sent on WeCom only")

    async def close(self) -> None:
        return None
