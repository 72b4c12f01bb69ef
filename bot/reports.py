"""Statistics as an Excel workbook, for the office to forward or print (第十一条)."""

from __future__ import annotations

import datetime as dt
import io

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill

from domain.stats import COLUMNS, UnitStats


def stats_workbook(rows: list[UnitStats], now: dt.datetime) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = "督办统计"
    ws.append([f"督办事项统计（截至 {now:%Y-%m-%d %H:%M}）"])
    ws["A1"].font = Font(bold=True, size=13)
    keys = list(COLUMNS)
    ws.append([COLUMNS[k] for k in keys])
    for cell in ws[2]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDEBF7")
        cell.alignment = Alignment(horizontal="center")
    for r in rows:
        d = r.as_dict()
        ws.append([d[k] for k in keys])
    if rows:
        ws.append(["合计"] + [sum(getattr(r, k) for r in rows) for k in keys[1:]])
        for cell in ws[ws.max_row]:
            cell.font = Font(bold=True)
    ws.column_dimensions["A"].width = 24
    for col in "BCDEFGH":
        ws.column_dimensions[col].width = 11
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
