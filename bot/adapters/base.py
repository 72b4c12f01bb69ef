"""The one adapter interface, because there are two platforms. The sender speaks only this."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

from bot.messages import OutMessage
from domain.roles import Channel


class Delivery(enum.Enum):
    SENT = "sent"
    RETRY = "retry"  # transient: the outbox tries again after `retry_after`
    DEAD = "dead"  # permanent: kept as a dead letter for the office


@dataclass(frozen=True)
class Outcome:
    status: Delivery
    error: str = ""
    retry_after: float = 0.0
    invalid_users: frozenset[str] = field(default_factory=frozenset)  # recipients the platform refused
    response_code: str | None = None  # WeCom: the code that updates this card once, later
    throttled_users: frozenset[str] = field(default_factory=frozenset)  # flow-controlled: try these again later
    as_card: bool = True  # False when no card could be sent and the text with commands went instead

    @classmethod
    def sent(cls, **kw: object) -> Outcome:
        return cls(Delivery.SENT, **kw)  # type: ignore[arg-type]


class Adapter(Protocol):
    channel: Channel
    batch_limit: int  # recipients per call for the same text

    async def send_text(self, user_ids: list[str], msg: OutMessage) -> Outcome: ...

    async def send_card(self, user_id: str, msg: OutMessage, card_id: str, retrying: bool) -> Outcome: ...

    async def update_card(self, user_id: str, card_id: str, response_code: str | None, outcome: str) -> Outcome: ...

    async def send_file(self, user_ids: list[str], kind: str, filename: str, data: bytes) -> Outcome: ...

    async def close(self) -> None: ...
