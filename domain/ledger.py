"""《来文落实情况办理台账》: incoming documents a unit handles without school supervision (第六条 2, 3).

The office spot-checks these ledgers (第十一条), so each entry needs the five columns the rule names.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from domain.errors import ConfidentialRefused, ValidationError


@dataclass
class LedgerEntry:
    unit_id: int
    doc_title: str  # 来文名称
    doc_number: str  # 文号
    responsible: str  # 责任人
    deadline: dt.date  # 办结时限
    summary: str  # 办理情况摘要
    created_at: dt.datetime
    updated_at: dt.datetime
    id: int | None = None

    @classmethod
    def create(
        cls,
        *,
        unit_id: int,
        doc_title: str,
        doc_number: str,
        responsible: str,
        deadline: dt.date,
        summary: str,
        now: dt.datetime,
        confidential: bool = False,
    ) -> LedgerEntry:
        if confidential:
            raise ConfidentialRefused()
        fields = {"来文名称": doc_title, "文号": doc_number, "责任人": responsible}
        for label, value in fields.items():
            if not (value or "").strip():
                raise ValidationError(f"台账的{label}不能为空。")
        return cls(
            unit_id=unit_id,
            doc_title=doc_title.strip()[:200],
            doc_number=doc_number.strip()[:100],
            responsible=responsible.strip()[:50],
            deadline=deadline,
            summary=(summary or "").strip()[:2000],
            created_at=now,
            updated_at=now,
        )
