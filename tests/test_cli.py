"""The `duban` console script, run as the office runs it: a subprocess with DUBAN_DATABASE_URL set.

Every test but the fresh-database one runs on SQLite and PostgreSQL (`db_url`). The subprocess uses the
real clock, so deadlines in the sheets are written relative to today. Subprocesses take about a second
each; the tests are kept few and focused.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import os
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl
from sqlalchemy import func, select

from bot.app import Runtime
from domain.items import ItemKind
from domain.roles import SYSTEM_OFFICE, Role
from domain.stats import COLUMNS
from handlers.service import NewItem
from storage.models import Base, ItemRow, OutboxRow, PersonRow

DUBAN = Path(sys.executable).with_name("duban")
ORG_HEADER = ["单位", "姓名", "角色", "企业微信ID", "钉钉ID", "分管单位"]
LEDGER_HEADER = ["工作要点", "任务", "牵头单位", "配合单位", "分管校领导", "完成时限", "类别"]


@dataclass
class Run:
    code: int
    out: str
    err: str


def _env(db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DUBAN_", "WECOM_", "DINGTALK_"))}
    env["DUBAN_DATABASE_URL"] = db_url
    env["DUBAN_LOG_LEVEL"] = "WARNING"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def duban_sync(db_url: str, *args: str, cwd: Path, module: bool = False) -> Run:
    cmd = [sys.executable, "-m", "bot", *args] if module else [str(DUBAN), *args]
    p = subprocess.run(cmd, cwd=cwd, env=_env(db_url), capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert "Traceback" not in p.stderr, p.stderr
    return Run(p.returncode, p.stdout, p.stderr)


async def duban(db_url: str, *args: str, cwd: Path) -> Run:
    # in a thread, so the test's own event loop (and its database pools) stay responsive meanwhile
    return await asyncio.to_thread(duban_sync, db_url, *args, cwd=cwd)


def write_csv(path: Path, rows: list[list[Any]]) -> Path:
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows(rows)
    path.write_bytes(buf.getvalue().encode("utf-8-sig"))  # what Excel writes for "CSV UTF-8"
    return path


def write_xlsx(path: Path, rows: list[list[Any]]) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    for row in rows:
        ws.append(row)
    wb.save(path)
    return path


async def count(runtime: Runtime, model: Any) -> int:
    async with runtime.svc.uow.reader() as uow:
        return int((await uow.session.execute(select(func.count()).select_from(model))).scalar_one())


def _calendar_notice(row: Any) -> bool:
    """Run with the real clock, each CLI process may tell the office once that next year's holiday
    calendar is missing (DESIGN §2); that row is not what these tests are about."""
    return isinstance(getattr(row, "dedup_key", None), str) and row.dedup_key.startswith("calendar-fallback:")


async def dump(runtime: Runtime) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    async with runtime.svc.uow.reader() as uow:
        for table in Base.metadata.sorted_tables:
            rows = (await uow.session.execute(select(table))).all()
            out[table.name] = sorted(repr(tuple(r)) for r in rows if not _calendar_notice(r))
    return out


async def outbox_rows(runtime: Runtime) -> list[OutboxRow]:
    async with runtime.svc.uow.reader() as uow:
        rows = (await uow.session.execute(select(OutboxRow).order_by(OutboxRow.id))).scalars().all()
    return [r for r in rows if not _calendar_notice(r)]


def later(days: int) -> str:
    return (dt.date.today() + dt.timedelta(days=days)).isoformat()


# ---- db upgrade ----------------------------------------------------------------------------------------


def test_db_upgrade_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"
    url = f"sqlite+aiosqlite:///{db}"
    run = duban_sync(url, "db", "upgrade", cwd=tmp_path)
    assert run.code == 0, run.err
    assert "数据库已升级" in run.out
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {t.name for t in Base.metadata.sorted_tables} <= tables
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
    # upgrading again is harmless; `python -m bot` is the same program
    again = duban_sync(url, "db", "upgrade", cwd=tmp_path, module=True)
    assert again.code == 0, again.err
    # the database is usable at once: an import with a missing file is refused in Chinese, exit code 2
    missing = duban_sync(url, "org", "import", str(tmp_path / "nope.csv"), cwd=tmp_path)
    assert missing.code == 2
    assert "找不到文件" in missing.err


def test_usage_errors_exit_nonzero(tmp_path: Path) -> None:
    run = duban_sync(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", "items", cwd=tmp_path)
    assert run.code == 2 and "usage" in run.err


# ---- org import ----------------------------------------------------------------------------------------


ORG_ROWS = [
    ["学校办公室", "周督办", "学校办公室", "zhou", "", ""],
    ["校领导", "李校长", "校领导", "li", "", "教务处、科研院"],
    ["教务处", "陈处长", "主要负责人", "chen", "", ""],
    ["教务处", "张老师", "办理人", "zhang", "zhang_dd", ""],
    ["科研院", "赵院长", "principal, handler", "zhao", "", ""],
]


async def test_org_import_csv(runtime: Runtime, db_url: str, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "org.csv", [ORG_HEADER, *ORG_ROWS])
    run = await duban(db_url, "org", "import", str(path), cwd=tmp_path)
    assert run.code == 0, run.err
    assert "已导入 5 人" in run.out
    async with runtime.svc.uow.reader() as uow:
        people = {p.name: p for p in await uow.people.all()}
        units = {u.name: u.id for u in await uow.units.all()}
    assert set(people) == {"周督办", "李校长", "陈处长", "张老师", "赵院长"}
    assert set(units) == {"学校办公室", "校领导", "教务处", "科研院"}
    assert people["李校长"].units_in_charge == {units["教务处"], units["科研院"]}
    assert people["赵院长"].roles == {Role.PRINCIPAL, Role.HANDLER}
    assert people["张老师"].dingtalk_id == "zhang_dd" and people["张老师"].unit_id == units["教务处"]


async def test_org_import_xlsx_with_row_errors_imports_nobody(runtime: Runtime, db_url: str, tmp_path: Path) -> None:
    rows = [
        ORG_HEADER,
        ORG_ROWS[0],
        ["教务处", "陈处长", "科长", "chen", "", ""],  # line 3: unknown role
        ["教务处", "张老师", "办理人", "", "", ""],  # line 4: no platform id
        ["教务处", "刘老师", "办理人", "liu", "", "科研院"],  # line 5: only leaders have units in charge
    ]
    path = write_xlsx(tmp_path / "org.xlsx", rows)
    before = await dump(runtime)
    run = await duban(db_url, "org", "import", str(path), cwd=tmp_path)
    assert run.code == 1, (run.out, run.err)
    assert "导入未执行" in run.err
    for line, words in ((3, "科长"), (4, "至少"), (5, "校领导")):
        assert re.search(rf"第 {line} 行：[^\n]*{words}", run.err), run.err
    assert "第 2 行" not in run.err
    assert await dump(runtime) == before
    assert await count(runtime, PersonRow) == 0

    # fixed sheet: everybody is imported
    rows[2][2], rows[3][3] = "主要负责人", "zhang"
    rows[4][5] = ""
    write_xlsx(path, rows)
    run = await duban(db_url, "org", "import", str(path), cwd=tmp_path)
    assert run.code == 0, run.err
    assert "已导入 4 人" in run.out
    async with runtime.svc.uow.reader() as uow:
        assert sorted(p.name for p in await uow.people.all()) == sorted(["周督办", "陈处长", "张老师", "刘老师"])


# ---- items import (the periodic task ledger) -------------------------------------------------------------


def ledger_rows(*rows: list[Any]) -> list[list[Any]]:
    return [LEDGER_HEADER, *rows]


GOOD_TASKS = [
    ["推进一流本科教育", "修订本科人才培养方案", "教务处", "科研院", "李校长", None, "教学"],
    ["加强科研平台建设", "组织重点实验室申报", "科研院", "", "李校长", None, "科研"],
]


def good_ledger(tmp_path: Path) -> Path:
    rows = [list(r) for r in GOOD_TASKS]
    rows[0][5], rows[1][5] = later(120), dt.date.today() + dt.timedelta(days=200)  # text and a date cell
    return write_xlsx(tmp_path / "台账.xlsx", ledger_rows(*rows))


async def test_items_import_preview_then_commit(
    runtime: Runtime, org: dict[str, int], db_url: str, tmp_path: Path
) -> None:
    path = good_ledger(tmp_path)
    run = await duban(db_url, "items", "import", str(path), cwd=tmp_path)
    assert run.code == 0, run.err
    assert "任务台账预览：可导入 2 项" in run.out
    assert "修订本科人才培养方案 | 教务处" in run.out
    assert "预览通过，共 2 行" in run.out and "--commit" in run.out
    assert await count(runtime, ItemRow) == 0
    assert await outbox_rows(runtime) == []

    run = await duban(db_url, "items", "import", str(path), "--commit", cwd=tmp_path)
    assert run.code == 0, run.err
    year = dt.date.today().year
    assert "已创建 2 项定期督办草稿" in run.out
    assert f"{year}-0001" in run.out and f"{year}-0002" in run.out
    async with runtime.svc.uow.reader() as uow:
        first = await uow.items.get(f"{year}-0001")
        second = await uow.items.get(f"{year}-0002")
        units = {u.name: u.id for u in await uow.units.all()}
    rows = await outbox_rows(runtime)
    assert first is not None and second is not None
    assert (first.kind, first.status.value, first.title, first.content) == (
        ItemKind.PERIODIC, "draft", "修订本科人才培养方案", "推进一流本科教育"
    )
    assert first.leader_id == org["李校长"] and first.category == "教学"
    assert [(b.unit_id, b.is_lead) for b in first.branches] == [(units["教务处"], True), (units["科研院"], False)]
    assert second.deadline == dt.date.today() + dt.timedelta(days=200)
    drafts = [r for r in rows if r.recipient_id == org["李校长"] and r.payload.get("card_kind") == "draft"]
    assert sorted(r.payload["item_code"] for r in drafts) == [f"{year}-0001", f"{year}-0002"]
    assert all([b["action"] for b in r.payload["buttons"]] == ["approve", "return"] for r in drafts)
    assert not [r for r in rows if r.recipient_id in (org["陈处长"], org["赵院长"])]  # units wait for the leader


async def test_items_import_rejects_unknown_units_and_leaders(
    runtime: Runtime, org: dict[str, int], db_url: str, tmp_path: Path
) -> None:
    rows = ledger_rows(
        ["要点一", "任务甲", "火星研究院", "", "李校长", later(60), ""],  # line 2
        ["要点二", "任务乙", "教务处", "月球办公室", "李校长", later(60), ""],  # line 3
        ["要点三", "任务丙", "教务处", "", "不存在的校长", later(60), ""],  # line 4
        ["要点四", "任务丁", "教务处", "", "陈处长", later(60), ""],  # line 5: not a leader
        ["要点五", "任务戊", "科研院", "", "李校长", later(60), ""],  # line 6: fine
    )
    path = write_xlsx(tmp_path / "台账.xlsx", rows)
    before = await dump(runtime)
    run = await duban(db_url, "items", "import", str(path), "--commit", cwd=tmp_path)
    assert run.code == 1, (run.out, run.err)
    assert "未导入" in run.err
    for line, name in ((2, "火星研究院"), (3, "月球办公室"), (4, "不存在的校长"), (5, "陈处长")):
        assert re.search(rf"第 {line} 行：[^\n]*{name}", run.err), run.err
    assert "第 6 行" not in run.err
    assert await dump(runtime) == before  # not even the good row, and no code number spent

    # a sheet with a row the parser refuses shows the preview with the problem and imports nothing
    bad = write_xlsx(
        tmp_path / "坏台账.xlsx",
        ledger_rows(["要点", "任务", "教务处", "", "李校长", "2026-02-30", ""], GOOD_TASKS[1][:5] + [later(30), ""]),
    )
    run = await duban(db_url, "items", "import", str(bad), "--commit", cwd=tmp_path)
    assert run.code == 1
    assert re.search(r"第 2 行：[^\n]*2026-02-30", run.out), run.out
    assert "任务台账有误" in run.err
    assert await dump(runtime) == before


# ---- stats ---------------------------------------------------------------------------------------------


async def test_stats_table_and_workbook(runtime: Runtime, org: dict[str, int], db_url: str, tmp_path: Path) -> None:
    run = await duban(db_url, "stats", cwd=tmp_path)
    assert run.code == 0, run.err
    assert "暂无督办统计数据" in run.out

    svc = runtime.svc
    for lead, co in (("教务处", []), ("教务处", ["科研院"]), ("科研院", [])):
        await svc.create_item(
            SYSTEM_OFFICE,
            NewItem(kind=ItemKind.SPECIAL, title=f"{lead}事项", lead_unit=lead, co_units=co, deadline=dt.date(2026, 4, 30)),
            "test",
        )
    out = tmp_path / "统计.xlsx"
    run = await duban(db_url, "stats", "--xlsx", str(out), cwd=tmp_path)
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert lines[0].startswith("督办统计（单位｜总数")
    table = {ln.split("｜")[0]: ln.split("｜") for ln in lines[1:] if "｜" in ln}
    assert table["教务处"][1:3] == ["2", "2"] and table["科研院"][1:3] == ["1", "1"]
    assert f"已写入 {out}" in run.out

    wb = openpyxl.load_workbook(out)
    ws = wb.active
    values = [list(r) for r in ws.iter_rows(values_only=True)]
    header_at = next(i for i, r in enumerate(values) if r and r[0] == "单位")
    assert values[header_at] == list(COLUMNS.values())
    assert values[header_at][:2] == ["单位", "督办总数"]
    body = {r[0]: r for r in values[header_at + 1 :]}
    assert body["教务处"][1:3] == [2, 2]
    assert body["科研院"][1:3] == [1, 1]
    assert body["合计"][1:3] == [3, 3]
    assert "统计" in (values[0][0] or "")
