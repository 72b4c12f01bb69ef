"""Benchmark: one reminder sweep over 100,000 open items, on SQLite and on PostgreSQL.

Run: `.venv/bin/python bench/sweep.py [--items 100000] [--units 200] [--people 20000] [--db sqlite|postgresql|both]`.

For each database it builds a fresh one (a temp SQLite file; a scratch PostgreSQL database at
127.0.0.1:5432 that is dropped afterwards), migrates it with the Alembic history, and bulk-loads it with
core `insert()` executemany in chunks (the service would take hours for this): `--units` 承办 units plus
学校办公室 and 校领导, `--people` people (1–2 principals and handlers per unit, a few office staff, 10
leaders each in charge of ~20 units), and `--items` open items (assigned / designated / in progress,
mixed kinds) with one lead branch each (some with a co-branch), deadlines from 30 days ago to 60 days
ahead, published progress for some, periodic items among them.

Then it runs `scheduler.sweep.sweep` once as of a working Monday morning and prints the wall time and
the memory it took, checks that each recipient got exactly one digest, runs a second sweep right after
(it must queue nothing), and finally repeats the first sweep under tracemalloc (after deleting the keys
and digests it wrote) for the peak of Python allocations — tracing slows Python down, so the timed run
is untraced. With `--db both` each database runs in a child process of its own, so ru_maxrss (a
high-water mark for the whole process) is not inherited from the other database's run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from sqlalchemy import delete, func, insert, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from domain.calendar import WorkCalendar  # noqa: E402
from domain.codes import format_code  # noqa: E402
from scheduler.sweep import SweepResult, sweep  # noqa: E402
from storage.db import Database, open_database  # noqa: E402
from storage.migrate import upgrade_sync  # noqa: E402
from storage.models import (  # noqa: E402
    BranchRow,
    ItemRow,
    LeaderUnitRow,
    OutboxRow,
    PersonRow,
    ProgressRow,
    ReminderRow,
    UnitRow,
)

TZ = ZoneInfo("Asia/Shanghai")
UTC = dt.timezone.utc
PG_URL = os.environ.get("DUBAN_BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
# A working Monday morning after the 25th, so the periodic rung (第八条) is due as well as the deadline ones.
AT = dt.datetime(2026, 11, 30, 9, 30, tzinfo=TZ)
TARGET_SECONDS = 5.0
TARGET_MB = 300.0
CHUNK = 10_000
SEED = 20261130

SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈")
GIVEN_A = list("建国志明海晓文春丽永德俊慧思")
GIVEN_B = list("华强军平静敏涛伟芳杰磊燕霞鹏辉琳")
UNIT_WORDS = ["学院", "系", "研究院", "中心", "处", "部"]
UNIT_STEMS = ["机械工程", "材料科学", "电子信息", "计算机", "数学", "物理", "化学", "生命科学", "经济管理", "外国语",
              "马克思主义", "法学", "建筑", "土木工程", "环境", "能源动力", "医学", "药学", "艺术", "体育",
              "教务", "科研", "学生工作", "人事", "财务", "国际交流", "后勤保障", "资产管理", "图书", "档案"]
TOPICS = ["一流本科课程建设", "实验室安全专项检查整改", "学科评估材料报送", "教职工代表大会提案办理", "校园网络安全等级保护",
          "研究生培养方案修订", "巡视整改任务落实", "毕业生就业质量提升", "重点实验室年度考核", "校园基础设施维修改造",
          "教师发展中心建设", "招生宣传工作部署", "科研经费管理自查", "国际合作项目推进", "后勤服务满意度提升",
          "安全生产大检查", "新生入学教育安排", "师德师风建设", "校友会换届筹备", "节能减排目标落实"]
SOURCES = ["校党委常委会会议纪要", "校长办公会会议纪要", "教育部通知", "省教育厅文件", "校领导批示", "专题会议纪要"]


# ---- the data -----------------------------------------------------------------------------------------------


def utc(local_day: dt.date, minutes: int) -> dt.datetime:
    """An aware UTC datetime for a local (Asia/Shanghai) day and minute of the day."""
    return dt.datetime.combine(local_day, dt.time(), TZ).astimezone(UTC) + dt.timedelta(minutes=minutes)


def office_minutes(rng: random.Random) -> int:
    return rng.randint(8 * 60 + 30, 17 * 60 + 30)


class Org:
    """Ids of the loaded organisation, which the item generator draws from."""

    def __init__(self) -> None:
        self.handlers: dict[int, list[int]] = {}  # unit → handler ids
        self.principals: dict[int, list[int]] = {}
        self.leader_of: dict[int, int] = {}  # unit → the leader in charge
        self.units: list[int] = []
        self.office: list[int] = []


def org_rows(n_units: int, n_people: int, rng: random.Random) -> tuple[Org, list[dict], list[dict], list[dict]]:
    org = Org()
    units = [{"id": 1, "name": "学校办公室"}, {"id": 2, "name": "校领导"}]
    for i in range(n_units):
        stem = UNIT_STEMS[i % len(UNIT_STEMS)]
        units.append({"id": 3 + i, "name": f"{stem}{UNIT_WORDS[i % len(UNIT_WORDS)]}{i // len(UNIT_STEMS) + 1:02d}"})
    org.units = [u["id"] for u in units[2:]]
    people: list[dict] = []

    def person(unit_id: int, roles: str) -> int:
        pid = len(people) + 1
        # (surname, given) from the id: 48 × 16 × 14 distinct names, so no two in a unit collide
        name = SURNAMES[pid % len(SURNAMES)] + GIVEN_A[(pid // len(SURNAMES)) % len(GIVEN_A)]
        name += GIVEN_B[(pid // (len(SURNAMES) * len(GIVEN_A))) % len(GIVEN_B)]
        people.append({"id": pid, "name": name, "unit_id": unit_id, "roles": roles, "wecom_id": f"u{pid:06d}",
                       "dingtalk_id": None, "preferred_channel": "wecom"})
        return pid

    org.office = [person(1, "office") for _ in range(5)]
    n_leaders = 10
    leaders = [person(2, "leader") for _ in range(n_leaders)]
    leader_units: list[dict] = []
    per_leader = max(1, -(-n_units // n_leaders))
    for k, lid in enumerate(leaders):
        for uid in org.units[k * per_leader : (k + 1) * per_leader]:
            leader_units.append({"person_id": lid, "unit_id": uid})
            org.leader_of[uid] = lid
    # a couple of units with a second leader in charge (分管 shared)
    for uid in rng.sample(org.units, min(10, len(org.units))):
        other = rng.choice([lid for lid in leaders if lid != org.leader_of[uid]])
        leader_units.append({"person_id": other, "unit_id": uid})
    rest = n_people - len(people)
    for j, uid in enumerate(org.units):
        size = rest // n_units + (1 if j < rest % n_units else 0)
        n_principals = 1 if rng.random() < 0.6 else 2
        org.principals[uid] = [person(uid, "principal") for _ in range(n_principals)]
        org.handlers[uid] = [person(uid, "handler") for _ in range(max(1, size - n_principals))]
    return org, units, people, leader_units


def item_chunks(org: Org, n_items: int, rng: random.Random) -> Iterator[tuple[list[dict], list[dict], list[dict]]]:
    """(items, branches, progress) rows, CHUNK items at a time, so the load never holds them all."""
    today = AT.date()
    now = AT.astimezone(UTC)
    seq: dict[int, int] = {}
    branch_id = progress_id = 0
    items: list[dict] = []
    branches: list[dict] = []
    progress: list[dict] = []
    for iid in range(1, n_items + 1):
        unit = rng.choice(org.units)
        deadline = today + dt.timedelta(days=rng.randint(-30, 60))
        created_day = min(deadline - dt.timedelta(days=rng.randint(14, 90)), today - dt.timedelta(days=1))
        created_at = utc(created_day, office_minutes(rng))
        seq[created_day.year] = seq.get(created_day.year, 0) + 1
        r = rng.random()
        status = "assigned" if r < 0.08 else "designated" if r < 0.33 else "in_progress"
        kind = rng.choices(["incoming", "special", "periodic"], weights=[55, 30, 15])[0]
        handler = None if status == "assigned" else rng.choice(org.handlers[unit])
        signed_at = None
        last_published_at = None
        if status == "in_progress":
            signed_at = min(created_at + dt.timedelta(minutes=rng.randint(30, 3 * 24 * 60)), now - dt.timedelta(hours=1))
            if rng.random() < 0.45:  # some with recent published progress
                back = rng.randint(0, 20)
                day = max(today - dt.timedelta(days=back), signed_at.astimezone(TZ).date())
                published = max(utc(day, office_minutes(rng)), signed_at + dt.timedelta(hours=1))
                last_published_at = min(published, now - dt.timedelta(minutes=10))
                progress_id += 1
                written = last_published_at - dt.timedelta(hours=rng.randint(1, 20))
                progress.append({
                    "id": progress_id, "item_id": iid, "unit_id": unit, "author_id": handler,
                    "text": f"已召开专题会议研究部署，完成阶段性任务{rng.randint(1, 9)}项，下一步将按计划推进。",
                    "created_at": max(written, signed_at), "status": "published",
                    "reviewer_id": org.principals[unit][0], "reviewed_at": last_published_at, "return_reason": None,
                })
            if kind == "periodic" and rng.random() < 0.2:  # reported this period, not yet approved
                progress_id += 1
                progress.append({
                    "id": progress_id, "item_id": iid, "unit_id": unit, "author_id": handler,
                    "text": "本月进展：按月度计划完成各项工作。", "created_at": now - dt.timedelta(days=rng.randint(0, 25)),
                    "status": "pending", "reviewer_id": None, "reviewed_at": None, "return_reason": None,
                })
        topic = rng.choice(TOPICS)
        items.append({
            "id": iid, "code": format_code(created_day.year, seq[created_day.year]), "kind": kind,
            "title": f"关于{topic}工作的督办事项（第{rng.randint(1, 12)}批）" if rng.random() < 0.5 else f"{topic}",
            "content": f"请{topic}相关工作按时落实到位，并及时报送办理进展。", "source_title": rng.choice(SOURCES),
            "source_number": f"校办〔{created_day.year}〕{rng.randint(1, 300)}号", "category": kind,
            "lead_unit_id": unit, "deadline": deadline,
            "leader_id": org.leader_of[unit] if rng.random() < 0.5 else None, "status": status,
            "created_at": created_at, "created_by": rng.choice(org.office), "closure_result": None, "closed_at": None,
            "last_return_reason": None, "cancel_reason": None, "urge_count": rng.choice([0, 0, 0, 1, 2]),
            "return_count": 0, "last_published_at": last_published_at, "version": rng.randint(1, 8),
        })
        branch_id += 1
        branches.append({
            "id": branch_id, "item_id": iid, "unit_id": unit, "position": 0, "is_lead": True, "handler_id": handler,
            "status": {"assigned": "assigned", "designated": "designated"}.get(status, "signed"), "signed_at": signed_at,
        })
        if rng.random() < 0.15:  # a co-branch (协办单位), which the sweep's query must skip
            co = rng.choice(org.units)
            if co != unit:
                branch_id += 1
                branches.append({"id": branch_id, "item_id": iid, "unit_id": co, "position": 1, "is_lead": False,
                                 "handler_id": None, "status": "assigned", "signed_at": None})
        if len(items) >= CHUNK:
            yield items, branches, progress
            items, branches, progress = [], [], []
    if items:
        yield items, branches, progress


async def load(db: Database, n_items: int, n_units: int, n_people: int) -> dict[str, int]:
    rng = random.Random(SEED)
    org, units, people, leader_units = org_rows(n_units, n_people, rng)
    counts = {"units": len(units), "people": len(people), "leader_units": len(leader_units), "items": 0,
              "branches": 0, "progress": 0}
    async with db.engine.begin() as conn:
        await conn.execute(insert(UnitRow), units)
        await conn.execute(insert(PersonRow), people)
        await conn.execute(insert(LeaderUnitRow), leader_units)
    del units, people, leader_units
    for items, branches, progress in item_chunks(org, n_items, rng):
        async with db.engine.begin() as conn:
            await conn.execute(insert(ItemRow), items)
            await conn.execute(insert(BranchRow), branches)
            if progress:
                await conn.execute(insert(ProgressRow), progress)
        counts["items"] += len(items)
        counts["branches"] += len(branches)
        counts["progress"] += len(progress)
    async with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            for t in (UnitRow, PersonRow, ItemRow, BranchRow, ProgressRow):
                name = t.__tablename__
                await conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                                        f"(SELECT coalesce(max(id), 1) FROM {name}))"))
    # a steady state, as a live install has it: vacuumed (hint bits set, so the sweep's first read does not
    # rewrite every page, and autovacuum has nothing to start mid-sweep), analysed, checkpointed
    if db.dialect == "postgresql":
        async with db.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
            await conn.execute(text("CHECKPOINT"))
    else:
        async with db.read_engine.connect() as conn:  # autocommit: no BEGIN
            await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    return counts


# ---- the measurements ---------------------------------------------------------------------------------------


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


async def outbox_counts(db: Database) -> tuple[int, int]:
    async with db.read_sessions() as s:
        row = (await s.execute(select(func.count(), func.count(func.distinct(OutboxRow.recipient_id))))).one()
    return int(row[0]), int(row[1])


async def run_bench(db: Database, args: argparse.Namespace) -> dict[str, Any]:
    cal = WorkCalendar()
    t0 = time.perf_counter()
    counts = await load(db, args.items, args.units, args.people)
    print(f"  loaded {counts} in {time.perf_counter() - t0:.1f} s", flush=True)
    cal.is_workday(AT.date())  # the calendar package's import is not the sweep's cost
    gc.collect()
    rss_before = maxrss_mb()

    t0, c0 = time.perf_counter(), time.process_time()
    first: SweepResult = await sweep(db, cal, TZ, AT)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss_after = maxrss_mb()
    assert not first.held, first.held
    queued, distinct = await outbox_counts(db)
    print(f"  sweep 1: {seconds:.2f} s wall, {cpu:.2f} s CPU in this process (with the aiosqlite thread; not the "
          f"PostgreSQL server's)", flush=True)
    print(f"  sweep 1: {first.items} items checked, {first.rungs} rungs due ({first.fresh} new), "
          f"{first.messages} messages, {len(first.recipients)} distinct recipients; "
          f"outbox {queued} rows / {distinct} recipients", flush=True)
    assert first.items == args.items, (first.items, args.items)
    assert first.messages == len(first.recipients) == queued == distinct, "a person got more than one digest"

    t0 = time.perf_counter()
    second = await sweep(db, cal, TZ, AT + dt.timedelta(minutes=5))
    seconds2 = time.perf_counter() - t0
    queued2, _ = await outbox_counts(db)
    print(f"  sweep 2 (right after): {second.rungs} rungs due, {second.fresh} new, {second.messages} messages "
          f"in {seconds2:.2f} s", flush=True)
    assert second.messages == 0 and second.fresh == 0 and queued2 == queued, "something was sent twice"

    # the same first sweep again under tracemalloc, for the peak of Python allocations
    async with db.sessions() as s, s.begin():
        await s.execute(delete(OutboxRow))
        await s.execute(delete(ReminderRow))
    gc.collect()
    tracemalloc.start()
    t0 = time.perf_counter()
    traced = await sweep(db, cal, TZ, AT)
    traced_seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert (traced.rungs, traced.messages) == (first.rungs, first.messages)
    print(f"  sweep 1 again under tracemalloc: {traced_seconds:.2f} s (tracing slows it), Python peak "
          f"{peak / 2**20:.0f} MB", flush=True)
    print(f"  ru_maxrss: {rss_before:.0f} MB before the sweep (interpreter, libraries, the chunked load), {rss_after:.0f} MB "
          f"after: +{rss_after - rss_before:.0f} MB", flush=True)
    return {
        "db": db.dialect, "items": first.items, "rungs": first.rungs, "messages": first.messages,
        "recipients": len(first.recipients), "seconds": seconds, "cpu": cpu, "seconds2": seconds2,
        "py_peak_mb": peak / 2**20, "rss_mb": rss_after, "rss_delta_mb": rss_after - rss_before,
    }


# ---- databases ----------------------------------------------------------------------------------------------


def pg_admin(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def pg_exec(sql: str) -> None:
    conn = await asyncpg.connect(pg_admin(PG_URL), timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def one_database(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    name = f"duban_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    tmp = Path(tempfile.mkdtemp(prefix="duban-bench-sweep-"))
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    else:
        asyncio.run(pg_exec(f'CREATE DATABASE "{name}"'))
        url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade_sync(url)

        async def go() -> dict[str, Any]:
            db = open_database(url)
            try:
                return await run_bench(db, args)
            finally:
                await db.dispose()

        return asyncio.run(go())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if kind == "postgresql":
            asyncio.run(pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def line(r: dict[str, Any]) -> str:
    ok = r["seconds"] < TARGET_SECONDS and r["rss_mb"] < TARGET_MB
    return (f"{r['db']:11s} {r['items']:6d} items  {r['rungs']:6d} rungs  {r['messages']:5d} messages "
            f"(={r['recipients']} recipients)  {r['seconds']:5.2f} s (CPU {r['cpu']:.2f} s)  peak {r['rss_mb']:.0f} MB "
            f"(Python {r['py_peak_mb']:.0f} MB, rss +{r['rss_delta_mb']:.0f} MB)  "
            f"repeat {r['seconds2']:.2f} s, 0 messages  {'ok' if ok else 'MISSED'}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--units", type=int, default=200)
    ap.add_argument("--people", type=int, default=20_000)
    ap.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # child mode: last line is the result
    args = ap.parse_args()
    print(f"sweep as of {AT.isoformat()} ({AT:%A}); {args.items} items, {args.units} units, {args.people} people")
    results: list[dict[str, Any]] = []
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    if len(kinds) == 1:
        print(f"== {kinds[0]}", flush=True)
        results.append(one_database(kinds[0], args))
        if args.json:
            print("RESULT " + json.dumps(results[0]), flush=True)
            return 0
    else:
        for kind in kinds:  # a fresh process each, so ru_maxrss is this database's alone
            cmd = [sys.executable, __file__, "--db", kind, "--json", "--items", str(args.items),
                   "--units", str(args.units), "--people", str(args.people)]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
            assert proc.stdout is not None
            for out in proc.stdout:
                if out.startswith("RESULT "):
                    results.append(json.loads(out[7:]))
                elif not out.startswith("sweep as of"):
                    print(out, end="", flush=True)
            if proc.wait() != 0:
                print(f"{kind}: failed (exit {proc.returncode})")
                return 1
    print()
    for r in results:
        print(line(r))
    print(f"targets: under {TARGET_SECONDS:.0f} s and under {TARGET_MB:.0f} MB peak (process ru_maxrss) each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
