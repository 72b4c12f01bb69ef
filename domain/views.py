"""Read models: what lists, timelines and statistics show, without loading whole items."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from domain.items import ItemKind, Status


@dataclasses.dataclass(frozen=True)
class ItemSummary:
    """What lists need (待办, statistics, reminders) without loading every child row."""

    id: int
    code: str
    kind: ItemKind
    title: str
    status: Status
    deadline: dt.date
    lead_unit_id: int
    leader_id: int | None
    created_at: dt.datetime
    closed_at: dt.datetime | None
    last_published_at: dt.datetime | None
    urge_count: int
    return_count: int



@dataclasses.dataclass(frozen=True)
class TimelineEntry:
    at: dt.datetime
    kind: str
    actor_id: int | None
    channel: str
    payload: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Prompt:
    """The bot asked this person for a 退回 reason; their next message answers it until `expires_at`."""

    person_id: int
    item_code: str
    decision: str | None
    card_id: str | None
    expires_at: dt.datetime
    ref: str = ""


@dataclasses.dataclass(frozen=True)
class SpotCheck:
    """抽查 (第十一条): a unit drawn in a month, and what its principal answered about the ledger."""

    id: int
    month: str
    unit_id: int
    ledger_entries: int
    asked_at: dt.datetime
    answered_by: int | None
    answered_at: dt.datetime | None
    answer: str | None
