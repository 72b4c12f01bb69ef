"""WeCom behind the neutral Adapter interface: what the sender calls, with outcomes it understands."""

from __future__ import annotations

from bot.adapters.base import Delivery, Outcome
from bot.adapters.wecom.client import WeComClient, WeComError
from bot.adapters.wecom.render import card_body, clip, text_body
from bot.messages import OutMessage
from domain.roles import Channel

TASK_ID_EXISTS = 42014
ALL_INVALID = 81013
RETRY_AFTER = {45009: 60.0, 45033: 5.0, -1: 5.0, -2: 5.0}


def _failure(err: WeComError) -> Outcome:
    if err.transient:
        return Outcome(Delivery.RETRY, error=str(err), retry_after=RETRY_AFTER.get(err.errcode, 10.0))
    return Outcome(Delivery.DEAD, error=str(err))


def _invalid(data: dict[str, object]) -> frozenset[str]:
    raw = data.get("invaliduser") or ""
    items = raw if isinstance(raw, list) else str(raw).split("|")
    return frozenset(u.lower() for u in items if u)


class WeComAdapter:
    channel = Channel.WECOM
    batch_limit = 1000

    def __init__(self, client: WeComClient) -> None:
        self.client = client

    async def send_text(self, user_ids: list[str], msg: OutMessage) -> Outcome:
        try:
            data = await self.client.send(user_ids, text_body(msg))
        except WeComError as err:
            if err.errcode == ALL_INVALID:
                return Outcome(Delivery.DEAD, error=str(err), invalid_users=frozenset(u.lower() for u in user_ids))
            return _failure(err)
        return Outcome.sent(invalid_users=_invalid(data))

    async def send_card(self, user_id: str, msg: OutMessage, card_id: str, retrying: bool) -> Outcome:
        try:
            data = await self.client.send([user_id], card_body(msg, card_id))
        except WeComError as err:
            if err.errcode == TASK_ID_EXISTS and retrying:
                # our task ids are unique per outbox row, so on a retry this means the earlier attempt
                # reached WeCom after all: the card is there, only its response_code is unknown
                return Outcome.sent()
            if err.errcode == ALL_INVALID:
                return Outcome(Delivery.DEAD, error=str(err), invalid_users=frozenset({user_id.lower()}))
            return _failure(err)
        invalid = _invalid(data)
        if user_id.lower() in invalid:
            return Outcome(Delivery.DEAD, error="invalid user", invalid_users=invalid)
        code = data.get("response_code")
        return Outcome.sent(response_code=str(code) if code else None)

    async def update_card(self, user_id: str, card_id: str, response_code: str | None, outcome: str) -> Outcome:
        if not response_code:
            return Outcome(Delivery.DEAD, error="no response_code left to update this card")
        try:
            await self.client.update_card([user_id], response_code, replace_name=clip(outcome, 16))
        except WeComError as err:
            return _failure(err)
        return Outcome.sent()

    async def send_file(self, user_ids: list[str], kind: str, filename: str, data: bytes) -> Outcome:
        """Upload through the media API (kind "file" or "image"), then send the media to everyone at once."""
        content_type = "image/png" if kind == "image" else "application/octet-stream"
        try:
            media_id = await self.client.upload(kind, filename, data, content_type)
            result = await self.client.send(user_ids, {"msgtype": kind, kind: {"media_id": media_id}})
        except WeComError as err:
            if err.errcode == ALL_INVALID:
                return Outcome(Delivery.DEAD, error=str(err), invalid_users=frozenset(u.lower() for u in user_ids))
            return _failure(err)
        return Outcome.sent(invalid_users=_invalid(result))

    async def close(self) -> None:
        return None
