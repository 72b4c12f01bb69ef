"""Benchmark: encrypted `待办` callbacks against `duban serve` on SQLite, beside a floor server.

Run: `.venv/bin/python bench/callbacks.py [--seconds 10] [--concurrency 50] [--users 500]`.

It starts two servers as subprocesses, each on its own port: `duban serve` with the WeCom channel on,
and a floor server that only verifies, decrypts and answers empty (the least any WeCom callback costs).
The load runs in this process with pre-encrypted bodies, each with a fresh MsgId so none is a retry.
It prints requests/s, p50 and p99 for each, the ratio, and then a burst of 1,000 callbacks sent at once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from emulators.wecom import WeComCallbackClient  # noqa: E402

CORP, TOKEN, AES, AGENT = "wx5823bf96d3bd56c7", "QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", 1000002

FLOOR = '''
import sys
from aiohttp import web
from bot.adapters.wecom.crypto import CallbackCrypto
from bot.adapters.wecom.parse import envelope
crypto = CallbackCrypto(sys.argv[2], sys.argv[3], sys.argv[4])
async def floor(request):
    q = request.query
    crypto.decrypt(q["msg_signature"], q["timestamp"], q["nonce"], envelope(await request.read()))
    return web.Response(text="")
app = web.Application()
app.router.add_post("/callback/wecom", floor)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(200):
            try:
                async with s.post(url, data=b"") as r:
                    await r.read()
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    raise RuntimeError(f"server at {url} did not start")


def prepare_db(path: Path, users: int) -> dict[str, str]:
    env = {**os.environ, "DUBAN_DATABASE_URL": f"sqlite+aiosqlite:///{path}", "DUBAN_LOG_LEVEL": "WARNING"}
    duban = [sys.executable, "-m", "bot"]
    subprocess.run([*duban, "db", "upgrade"], env=env, check=True, capture_output=True)
    csv = path.parent / "org.csv"
    rows = ["单位,姓名,角色,企业微信ID,钉钉ID,分管单位", "学校办公室,周督办,学校办公室,zhou,,", "校领导,李校长,校领导,li,,教务处"]
    rows += [f"教务处,办理人{i},办理人,u{i},," for i in range(users)]
    csv.write_text("\n".join(rows), encoding="utf-8")
    subprocess.run([*duban, "org", "import", str(csv)], env=env, check=True, capture_output=True)
    return env


def bodies(n: int, users: int, start: int) -> list[tuple[dict[str, str], bytes]]:
    c = WeComCallbackClient(TOKEN, AES, CORP, AGENT)
    return [c.encrypt_post(c.text_xml(f"u{i % users}", "待办", start + i)) for i in range(n)]


async def load(url: str, work: list[tuple[dict[str, str], bytes]], concurrency: int, seconds: float) -> tuple[int, list[float], int]:
    latencies: list[float] = []
    errors = 0
    it = iter(work)
    deadline = time.perf_counter() + seconds
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as s:

        async def worker() -> None:
            nonlocal errors
            for params, body in it:
                if time.perf_counter() > deadline:
                    return
                t0 = time.perf_counter()
                async with s.post(url, params=params, data=body) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return int(len(latencies) / elapsed), latencies, errors


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100)[int(p) - 1] * 1000 if len(values) > 100 else max(values) * 1000


async def burst(url: str, work: list[tuple[dict[str, str], bytes]]) -> tuple[float, int]:
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=30)) as s:
        t0 = time.perf_counter()

        async def one(params: dict[str, str], body: bytes) -> int:
            async with s.post(url, params=params, data=body) as r:
                await r.read()
                return r.status

        statuses = await asyncio.gather(*(one(p, b) for p, b in work))
        return time.perf_counter() - t0, sum(1 for st in statuses if st != 200)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--users", type=int, default=500)
    ap.add_argument("--only", choices=["both", "app"], default="both", help="app: skip the floor (for profiling)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="duban-bench-"))
    env = prepare_db(tmp / "bench.db", args.users)
    env.update(WECOM_CORP_ID=CORP, WECOM_AGENT_ID=str(AGENT), WECOM_SECRET="x", WECOM_TOKEN=TOKEN,
               WECOM_ENCODING_AES_KEY=AES, WECOM_API_BASE="http://127.0.0.1:9", DUBAN_SCHEDULER=os.environ.get("DUBAN_SCHEDULER", "true"))
    p_app, p_floor = free_port(), free_port()
    procs = [
        subprocess.Popen([sys.executable, "-m", "bot", "serve", "--port", str(p_app)], env=env, cwd=tmp,
                         stderr=subprocess.DEVNULL),
        subprocess.Popen([sys.executable, "-c", FLOOR, str(p_floor), TOKEN, AES, CORP], env=env,
                         stderr=subprocess.DEVNULL),
    ]
    try:
        app_url = f"http://127.0.0.1:{p_app}/callback/wecom"
        floor_url = f"http://127.0.0.1:{p_floor}/callback/wecom"
        await wait_up(app_url)
        await wait_up(floor_url)
        n = int(args.seconds * 20000)
        print(f"preparing {n} encrypted callbacks …", flush=True)
        work = bodies(n, args.users, 1)
        results = {}
        targets = [("floor (verify+decrypt)", floor_url), ("duban 待办 (full path)", app_url)]
        if args.only == "app":
            targets = targets[1:]
        for name, url in targets:
            await load(url, work[:2000], args.concurrency, 2)  # warm up
            rps, lat, errs = await load(url, work[2000:], args.concurrency, args.seconds)
            results[name] = rps
            print(f"{name:26s} {rps:7d} req/s   p50 {pct(lat, 50):6.1f} ms   p99 {pct(lat, 99):6.1f} ms   errors {errs}")
        if len(results) == 2:
            floor_rps, app_rps = results.values()
            print(f"full path / floor = {app_rps / floor_rps:.1%}  (target ≥ 10 %, p99 < 150 ms)")
        fresh = bodies(1000, args.users, 10**8)
        took, errs = await burst(app_url, fresh)
        print(f"burst: 1000 callbacks at once answered in {took:.2f} s (WeCom allows 5 s), errors {errs}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)


if __name__ == "__main__":
    asyncio.run(main())
