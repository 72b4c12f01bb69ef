"""Exactly once across processes: several `duban serve` replicas on one PostgreSQL database (one on
SQLite) sweep concurrently against the WeCom emulator; the replica caught in the middle of a send is
killed with SIGKILL and restarted, and every due reminder still reaches each person exactly once."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bot.app import build_runtime, tell_office_about_calendar
from bot.settings import Settings
from conftest import API_TOKEN, TZ, FakeClock, _truncate_pg
from domain.items import ItemKind
from domain.roles import SYSTEM_OFFICE, Role
from emulators.wecom import WeComEmulator
from handlers.org import PersonSpec, import_org
from handlers.service import NewItem
from wecom_world import AES_KEY, AGENT_ID, CORP_ID, SECRET, TOKEN

pytestmark = pytest.mark.slow

HANDLERS = 40


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _seed(db_url: str) -> set[str]:
    """An org and overdue items whose rungs are due today (real time): returns the WeCom ids due."""
    today = dt.datetime.now(TZ).date()
    past = FakeClock(dt.datetime.combine(today - dt.timedelta(days=40), dt.time(9), TZ))
    rt = await build_runtime(Settings(DUBAN_DATABASE_URL=db_url, _env_file=None), past)
    try:
        people = [PersonSpec("学校办公室", "周督办", frozenset({Role.OFFICE}), "zhou")]
        people.append(PersonSpec("校领导", "李校长", frozenset({Role.LEADER}), "li", units_in_charge=("教务处",)))
        people.append(PersonSpec("教务处", "陈处长", frozenset({Role.PRINCIPAL}), "chen"))
        people += [PersonSpec("教务处", f"办理人{i}", frozenset({Role.HANDLER}), f"h{i}") for i in range(HANDLERS)]
        await import_org(rt.svc, SYSTEM_OFFICE, people, "test")
        async with rt.svc.uow("test") as uow:  # whatever day CI runs on, today counts as a working day
            await uow.calendar.set(today, True, "test")
            await uow.commit()
        rt.svc.calendar.set_override(today, True)
        cal = rt.svc.calendar
        # per handler: one item a working day overdue (催办: handler and principal), one due in two working
        # days (handler), one well past the deadline (escalation: leader and office)
        deadlines = (cal.add_workdays(today, -1), cal.add_workdays(today, 2), today - dt.timedelta(days=20))
        for i in range(HANDLERS):
            for j, deadline in enumerate(deadlines):
                await rt.svc.create_item(
                    SYSTEM_OFFICE,
                    NewItem(kind=ItemKind.SPECIAL, title=f"事项{i}-{j}", lead_unit="教务处", deadline=deadline,
                            handler=f"办理人{i}"),
                    "test",
                )
        await tell_office_about_calendar(rt.svc)  # queued once per year; with no channel here it goes dead,
        await rt.sender.drain()  # so the replicas' first sends are the reminders themselves
    finally:
        await rt.close()
    return {"zhou", "li", "chen"} | {f"h{i}" for i in range(HANDLERS)}


def _start(db_url: str, emu: WeComEmulator, tmp: Path, name: str) -> subprocess.Popen[bytes]:
    now = dt.datetime.now(TZ)
    quiet_start = (now + dt.timedelta(hours=3)).strftime("%H:%M")
    quiet_end = (now + dt.timedelta(hours=4)).strftime("%H:%M")
    env = {
        **os.environ,
        "DUBAN_DATABASE_URL": db_url,
        "DUBAN_API_TOKEN": API_TOKEN,
        "DUBAN_SWEEP_SECONDS": "1",
        "DUBAN_OUTBOX_LEASE_SECONDS": "3",
        "DUBAN_QUIET_HOURS": f"{quiet_start}-{quiet_end}",
        "WECOM_CORP_ID": CORP_ID,
        "WECOM_AGENT_ID": str(AGENT_ID),
        "WECOM_SECRET": SECRET,
        "WECOM_TOKEN": TOKEN,
        "WECOM_ENCODING_AES_KEY": AES_KEY,
        "WECOM_API_BASE": emu.base_url,
    }
    log = open(tmp / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
    return subprocess.Popen([sys.executable, "-m", "bot", "serve", "--port", str(_port())], env=env, cwd=tmp,
                            stdout=log, stderr=log)


def _digests(emu: WeComEmulator, user: str) -> list[str]:
    return [t for t in emu.texts_for(user) if t.startswith("【督办提醒")]


async def _until(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def _run(db_url: str, replicas: int, tmp: Path) -> None:
    due = await _seed(db_url)
    emu = WeComEmulator(CORP_ID, SECRET, AGENT_ID, users=due)
    await emu.start()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        emu.delay_next("message/send", 4.0)  # the first send hangs: that is where we kill
        for i in range(replicas):
            procs[f"r{i}"] = _start(db_url, emu, tmp, f"r{i}")

        def hanging() -> str | None:
            sends = [ua for path, ua in emu.agents if path == "/cgi-bin/message/send"]
            return sends[0] if sends else None

        await _until(lambda: hanging() is not None, 60, "a replica to start sending")
        pid = int(re.search(r"pid/(\d+)", hanging() or "").group(1))  # type: ignore[union-attr]
        first = next(body for path, body in emu.requests if path == "/cgi-bin/message/send")
        assert first["text"]["content"].startswith("【督办提醒"), f"the send caught in flight should be a reminder: {first}"
        victim = next(name for name, p in procs.items() if p.pid == pid)
        os.kill(pid, signal.SIGKILL)
        procs[victim].wait(10)
        procs[victim] = _start(db_url, emu, tmp, victim + "-restarted")

        await _until(lambda: all(len(_digests(emu, u)) >= 1 for u in due), 90, "every digest delivered")
        await asyncio.sleep(5)  # past a lease and several sweeps: anything doubled would show by now
        counts = {u: len(_digests(emu, u)) for u in due}
        assert counts == {u: 1 for u in due}, {u: n for u, n in counts.items() if n != 1}
        assert not any(emu.dropped.values()), "the emulator dropped messages for pacing"
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        await emu.stop()


@pytest.fixture
def clean_pg(pg_database: str) -> str:
    _truncate_pg(pg_database)
    return pg_database


async def test_three_replicas_on_postgresql_deliver_each_reminder_once_across_a_kill(tmp_path: Path, clean_pg: str) -> None:
    await _run(clean_pg, 3, tmp_path)


async def test_one_process_on_sqlite_delivers_each_reminder_once_across_a_kill(tmp_path: Path, sqlite_template: Path) -> None:
    path = tmp_path / "duban.db"
    shutil.copy(sqlite_template, path)
    await _run(f"sqlite+aiosqlite:///{path}", 1, tmp_path)
