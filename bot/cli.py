"""`duban` — the console script (also `python -m bot`)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import sys
from pathlib import Path

from aiohttp import web
from pydantic import ValidationError as PydanticValidationError

from bot import logs
from bot.importing import parse_org_file, parse_task_ledger
from bot.settings import Settings
from domain.errors import DomainError, ValidationError
from domain.roles import SYSTEM_OFFICE
from handlers.org import ImportRefused, PersonSpec, TaskSpec, import_org, import_tasks
from handlers.views import stats_text
from storage import outbox as ob
from storage.migrate import upgrade_sync

log = logging.getLogger("duban.cli")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="duban", description="督办 — supervision procedure in WeCom and DingTalk")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("serve", help="HTTP server, scheduler and sender in one process")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_cmd", required=True)
    db_sub.add_parser("upgrade", help="apply migrations")

    org = sub.add_parser("org", help="units and people")
    org_sub = org.add_subparsers(dest="org_cmd", required=True)
    oi = org_sub.add_parser("import", help="load units and people from CSV or XLSX")
    oi.add_argument("file", type=Path)

    items = sub.add_parser("items", help="supervised items")
    items_sub = items.add_subparsers(dest="items_cmd", required=True)
    ii = items_sub.add_parser("import", help="the periodic task ledger (任务台账); preview unless --commit")
    ii.add_argument("file", type=Path)
    ii.add_argument("--commit", action="store_true", help="create the rows as drafts awaiting the leader")

    rm = sub.add_parser("remind", help="run one reminder sweep now and send what is due")
    rm.add_argument("--at", help="as of this ISO time (default: now), e.g. 2026-12-07T09:00+08:00")

    ob = sub.add_parser("outbox", help="dead letters and other outbound messages")
    ob.add_argument("--status", default="dead", choices=["pending", "leased", "sent", "dead"])
    ob.add_argument("--requeue", type=int, nargs="*", metavar="ID", help="send these dead letters again")

    st = sub.add_parser("stats", help="per-unit statistics")
    st.add_argument("--xlsx", type=Path, help="also write a workbook")
    return p


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except PydanticValidationError as err:
        problems = "；".join(f"{e['loc'][0] if e['loc'] else ''}: {e['msg']}" for e in err.errors())
        print(f"配置有误，未启动：{problems}", file=sys.stderr)
        sys.exit(2)
    logs.setup(settings.log_level)
    try:
        code = _dispatch(args, settings)
    except DomainError as err:
        print(err.message, file=sys.stderr)
        code = 2
    sys.exit(code)


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.cmd == "serve":
        if settings.database_url.startswith("sqlite"):
            upgrade_sync(settings.database_url)  # DESIGN §4: serve migrates the embedded database itself
        from bot.app import serve_app

        web.run_app(serve_app(settings), host=args.host, port=args.port, print=None, access_log=None)
        return 0
    if args.cmd == "db":
        upgrade_sync(settings.database_url)
        print("数据库已升级到最新版本。")
        return 0
    return asyncio.run(_async_dispatch(args, settings))


async def _async_dispatch(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import build_runtime

    runtime = await build_runtime(settings)
    try:
        svc = runtime.svc
        if args.cmd == "org":
            async with svc.uow.reader() as uow:
                known = [u.name for u in await uow.units.all()]
            parsed = parse_org_file(args.file, known_units=known)
            if not parsed.ok:
                print("导入未执行，以下行有误：\n" + parsed.report(), file=sys.stderr)
                return 1
            specs = [
                PersonSpec(r.unit, r.name, r.roles, r.wecom_id, r.dingtalk_id, r.units_in_charge, r.preferred_channel, r.line)
                for r in parsed.rows
            ]
            try:
                count = await import_org(svc, SYSTEM_OFFICE, specs, "cli")
            except ImportRefused as err:
                print(err.message, file=sys.stderr)
                return 1
            print(f"已导入 {count} 人。")
            return 0
        if args.cmd == "items":
            ledger = parse_task_ledger(args.file, svc.now().date())
            print(ledger.preview())
            if not ledger.ok:
                print("任务台账有误，未导入。", file=sys.stderr)
                return 1
            specs_t = [
                TaskSpec(r.task, r.key_point, r.lead_unit, r.co_units, r.leader, r.deadline, r.category, r.line)
                for r in ledger.rows
            ]
            result = await import_tasks(svc, SYSTEM_OFFICE, specs_t, "cli", commit=args.commit)
            if not result.ok:
                print("以下行与组织机构不符，未导入：\n" + result.report(), file=sys.stderr)
                return 1
            if args.commit:
                print(f"已创建 {len(result.created)} 项定期督办草稿，待分管校领导审核：{'、'.join(result.created)}")
            else:
                print(f"预览通过，共 {len(specs_t)} 行。加 --commit 创建为草稿。")
            return 0
        if args.cmd == "remind":
            at = _parse_at(args.at, settings) if args.at else svc.now()
            assert runtime.jobs is not None
            result = await runtime.jobs.sweep(at)
            if result.held:
                print(f"本次未发送：{HELD.get(result.held, result.held)}。")
                return 0
            before = await ob.counts(runtime.db)
            await runtime.sender.drain()
            after = await ob.counts(runtime.db)
            sent = after.get("sent", 0) - before.get("sent", 0)
            dead = after.get("dead", 0) - before.get("dead", 0)
            print(f"检查 {result.items} 项，新触发提醒 {result.fresh} 条，生成 {result.messages} 条汇总消息；"
                  f"已发送 {sent} 条，发送失败 {dead} 条" + ("（详见 duban outbox）。" if dead else "。"))
            return 0
        if args.cmd == "outbox":
            if args.requeue:
                n = await ob.requeue_dead(runtime.db, args.requeue, svc.now())
                print(f"已重新排队 {n} 条。")
                return 0
            rows = await ob.listing(runtime.db, args.status)
            counts = await ob.counts(runtime.db)
            print("，".join(f"{k} {v}" for k, v in sorted(counts.items())) or "发件箱为空。")
            for r in rows:
                print(f"#{r.id} 收件人 {r.recipient_id} 尝试 {r.attempts} 次｜{r.last_error or ''}｜{r.text[:40]}")
            return 0
        if args.cmd == "stats":
            rows = await svc.statistics()
            print(stats_text(rows))
            if args.xlsx:
                from bot.reports import stats_workbook

                args.xlsx.write_bytes(stats_workbook(rows, svc.now()))
                print(f"已写入 {args.xlsx}")
            return 0
    finally:
        await runtime.close()
    return 2


HELD = {"non-working day": "今天不是工作日", "quiet hours": "处于免打扰时段", "another replica is sweeping": "另一实例正在执行"}


def _parse_at(text: str, settings: Settings) -> dt.datetime:
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"时间“{text}”格式不对，应形如 2026-12-07T09:00。") from None
    return at if at.tzinfo else at.replace(tzinfo=settings.tz)


if __name__ == "__main__":
    main()
