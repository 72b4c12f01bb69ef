"""Per-unit statistics the office compiles regularly (第十一条): counted by the lead unit of each item."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from domain.items import OPEN_STATUSES, Status


@dataclass
class UnitStats:
    unit: str
    total: int = 0
    in_progress: int = 0
    closed_on_time: int = 0
    closed_late: int = 0
    overdue_now: int = 0
    urged: int = 0
    returned: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


COLUMNS = {
    "unit": "单位",
    "total": "督办总数",
    "in_progress": "办理中",
    "closed_on_time": "按期办结",
    "closed_late": "逾期办结",
    "overdue_now": "当前逾期",
    "urged": "被催办",
    "returned": "被退回",
}


def compute(rows: Iterable[Mapping[str, Any]], unit_names: Mapping[int, str], today: dt.date, tz: dt.tzinfo) -> list[UnitStats]:
    """`rows` carry lead_unit_id, status, deadline, closed_at, urge_count, return_count; drafts and
    cancelled items are not counted as the unit's workload."""
    by_unit: dict[int, UnitStats] = {uid: UnitStats(name) for uid, name in unit_names.items()}
    for r in rows:
        status = Status(r["status"])
        if status in (Status.DRAFT, Status.CANCELLED):
            continue
        s = by_unit.setdefault(r["lead_unit_id"], UnitStats(unit_names.get(r["lead_unit_id"], "?")))
        s.total += 1
        if status in OPEN_STATUSES:
            s.in_progress += 1
            if today > r["deadline"]:
                s.overdue_now += 1
        elif r["closed_at"] is not None:
            closed_day = r["closed_at"].astimezone(tz).date()
            if closed_day <= r["deadline"]:
                s.closed_on_time += 1
            else:
                s.closed_late += 1
        if r["urge_count"]:
            s.urged += 1
        if r["return_count"]:
            s.returned += 1
    return sorted((s for s in by_unit.values() if s.total), key=lambda s: (-s.overdue_now, -s.total, s.unit))
