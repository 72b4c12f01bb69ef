"""Neutral message types shared by handlers and adapters: no platform format crosses this line.

An `OutMessage` is what the bot wants a person to see; each adapter renders it (WeCom template card,
DingTalk interactive card, or plain text). `text` always carries the full message with the matching
commands, so where a card cannot be sent the text alone still lets the person act.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

ACTIONS = ("sign", "approve", "return")


@dataclass(frozen=True)
class Button:
    label: str
    action: str  # one of ACTIONS

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown card action {self.action!r}")


@dataclass(frozen=True)
class OutMessage:
    text: str
    title: str = ""
    fields: tuple[tuple[str, str], ...] = ()
    buttons: tuple[Button, ...] = ()
    item_code: str | None = None
    card_kind: str | None = None  # which decision the buttons act on (domain.notifications.CardKind)
    markdown: bool = False
    notice: bool = False  # a reminder or notice rather than a conversational reply (DingTalk: work notification)
    ref: str = ""  # the decision instance the buttons act on (Item.decision_ref)

    @property
    def is_card(self) -> bool:
        return bool(self.buttons) and self.item_code is not None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fields"] = [list(f) for f in self.fields]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OutMessage:
        return cls(
            text=d["text"],
            title=d.get("title", ""),
            fields=tuple((str(k), str(v)) for k, v in d.get("fields", [])),
            buttons=tuple(Button(b["label"], b["action"]) for b in d.get("buttons", [])),
            item_code=d.get("item_code"),
            card_kind=d.get("card_kind"),
            markdown=bool(d.get("markdown", False)),
            notice=bool(d.get("notice", False)),
            ref=str(d.get("ref", "")),
        )


@dataclass(frozen=True)
class CardPress:
    """A button press, typed like aiogram's CallbackData so a press is understood without guessing."""

    action: str
    code: str
    card_id: str = ""
    card_kind: str = ""  # the decision the card was issued for, from our card record
    card_ref: str = ""  # which instance of that decision (Item.decision_ref), from our card record

    def pack(self) -> str:
        return f"{self.action}:{self.code}"

    @classmethod
    def unpack(cls, key: str, card_id: str = "") -> CardPress:
        action, _, code = key.partition(":")
        if action not in ACTIONS or not code:
            raise ValueError(f"not a duban card key: {key!r}")
        return cls(action, code, card_id)


@dataclass(frozen=True)
class Incoming:
    """One inbound chat event from either platform, after verification and parsing."""

    channel: str  # "wecom" | "dingtalk"
    user_id: str  # the platform's user id
    event_key: str  # dedup key in the inbox
    text: str | None = None
    press: CardPress | None = None
    response_code: str | None = None  # WeCom: single-use code to update the pressed card
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """What the handlers answer the sender, plus an optional update of the pressed card."""

    text: str
    card_update: str | None = None  # short outcome shown on the card, e.g. "已同意（张三）"
    card_id: str | None = None  # the card that outcome belongs on
