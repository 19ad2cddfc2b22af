"""`telmi bench signaling`: relay throughput and latency beside a bare aiohttp relay, memory
per idle participant, and the time two aiortc peers take to connect through a room.

One server process (started here, as `telmi serve` would be) exposes two endpoints: the
signaling library's socket, and a bare aiohttp relay that forwards each frame to the other
socket of its pair without parsing or checking anything: the ceiling to compare with. The
load comes from this process over loopback; both relays get the same harness.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from typing import Any

import aiohttp
from aiohttp import web

from signaling import protocol
from signaling.bus import InProcessBus
from signaling.peers import RoomClient
from signaling.rooms import Grant, RoomRegistry
from signaling.server import AuthError, Limits, SignalingServer
from telmi.bench.common import free_port, machine, percentile, progress

ORIGIN = "http://bench.telmi"
TARGET_RATIO = 0.5
TARGET_IDLE = 5000
TARGET_RSS = 1024**3
TARGET_CONNECT = 1.0


# --- the server process ---------------------------------------------------------------------------


def bench_app() -> web.Application:
    async def authorize(room_id: str, token: str) -> Grant:
        if not token.startswith("t-"):
            raise AuthError(protocol.UNAUTHORIZED, "bad token")
        return Grant(room_id, token, "staff", token, host=token.endswith("-0"))

    registry = RoomRegistry(
        InProcessBus(), welcome=lambda p: {"ice_servers": [], "ping_interval": 20}
    )
    limits = Limits(allowed_origins=frozenset({ORIGIN}), messages_per_second=1e6, burst=10**6)
    server = SignalingServer(registry, authorize, limits)
    pairs: dict[str, list[web.WebSocketResponse]] = {}

    async def bare(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, max_msg_size=64 * 1024)
        await ws.prepare(request)
        pair = pairs.setdefault(request.match_info["pair"], [])
        pair.append(ws)
        async for msg in ws:
            for other in pair:
                if other is not ws and not other.closed:
                    await other.send_str(msg.data)
        pair.remove(ws)
        return ws

    async def rss(request: web.Request) -> web.Response:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return web.json_response({"rss": int(line.split()[1]) * 1024})
        return web.json_response({"rss": 0})

    app = web.Application()
    app.router.add_get("/ws/rooms/{room_id}", server.handle)
    app.router.add_get("/bare/{pair}", bare)
    app.router.add_get("/rss", rss)
    return app


def serve_bench_app(port: int) -> None:  # pragma: no cover - runs in the child process
    web.run_app(bench_app(), host="127.0.0.1", port=port, print=None)


# --- the load -------------------------------------------------------------------------------------


async def _pair_telmi(http: aiohttp.ClientSession, base: str, pair: int) -> tuple[Any, Any, str]:
    sockets, ids = [], []
    for side in range(2):
        ws = await http.ws_connect(f"{base}/ws/rooms/p{pair}", origin=ORIGIN)
        await ws.send_str(json.dumps({"type": "join", "token": f"t-{pair}-{side}"}))
        while True:
            frame = json.loads((await ws.receive()).data)
            if frame["type"] == "joined":
                ids.append(frame["participant_id"])
                break
        sockets.append(ws)
    return sockets[0], sockets[1], ids[1]


async def _relay_run(
    base: str, pairs: int, messages: int, *, bare: bool, interval: float = 0.0
) -> tuple[float, list[float]]:
    """Each pair's first socket sends `messages` candidate-sized frames to the second, as
    fast as it can (throughput) or one every `interval` seconds (latency under load)."""
    latencies: list[float] = []
    async with aiohttp.ClientSession() as http:
        links = []
        for pair in range(pairs):
            if bare:
                a = await http.ws_connect(f"{base}/bare/{pair}")
                b = await http.ws_connect(f"{base}/bare/{pair}")
                links.append((a, b, "x"))
            else:
                links.append(await _pair_telmi(http, base, pair))
        await asyncio.sleep(0.2)
        padding = "a=candidate:1 1 udp 2122260223 192.168.1.20 54321 typ host generation 0 " * 2

        async def sender(a: Any, to: str) -> None:
            for i in range(messages):
                candidate = {"candidate": padding, "t": time.perf_counter(), "i": i}
                await a.send_str(
                    json.dumps({"type": "candidate", "to": to, "candidate": candidate})
                )
                if interval:
                    await asyncio.sleep(interval)

        async def receiver(b: Any) -> None:
            got = 0
            while got < messages:
                msg = await b.receive()
                frame = json.loads(msg.data)
                if frame.get("type") != "candidate":
                    continue
                latencies.append(time.perf_counter() - frame["candidate"]["t"])
                got += 1

        started = time.perf_counter()
        await asyncio.gather(
            *(sender(a, to) for a, _, to in links), *(receiver(b) for _, b, _ in links)
        )
        elapsed = time.perf_counter() - started
        for a, b, _ in links:
            await a.close()
            await b.close()
    return pairs * messages / elapsed, latencies


async def _idle(base: str, count: int) -> tuple[int, int]:
    """RSS growth of the server for `count` joined, idle participants (rooms of two)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        before = (await (await http.get(f"{base}/rss")).json())["rss"]
        sockets = []
        for i in range(count):
            ws = await http.ws_connect(
                f"{base}/ws/rooms/idle{i // 2}", origin=ORIGIN, heartbeat=None
            )
            await ws.send_str(json.dumps({"type": "join", "token": f"t-idle-{i}"}))
            await ws.receive()
            sockets.append(ws)
            if (i + 1) % max(1, count // 10) == 0:
                progress("idle participants", i + 1, count)
        await asyncio.sleep(0.5)
        after = (await (await http.get(f"{base}/rss")).json())["rss"]
        for ws in sockets:
            await ws.close()
    return int(after), int(after - before)


async def _connect_time(base: str) -> float:
    host = RoomClient(f"{base}/ws/rooms/aiortc", "t-aiortc-0", origin=ORIGIN)
    guest = RoomClient(f"{base}/ws/rooms/aiortc", "t-aiortc-1", origin=ORIGIN)
    try:
        await host.join()
        started = time.perf_counter()
        await guest.join()
        await asyncio.wait_for(asyncio.gather(host.connected.wait(), guest.connected.wait()), 15)
        return time.perf_counter() - started
    finally:
        await guest.close()
        await host.close()


async def bench_signaling(*, pairs: int, messages: int, idle: int) -> bool:
    print(
        f"telmi bench signaling — {pairs} pairs x {messages} frames, {idle} idle participants ({machine()})"
    )
    for noisy in ("aioice", "aioice.ice", "aiortc"):  # one line per ICE check otherwise
        logging.getLogger(noisy).setLevel(logging.WARNING)
    port = free_port()
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from telmi.bench.signaling import serve_bench_app; serve_bench_app({port})",
        ],
        env={**os.environ},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await _wait_up(base)
        bare_rate, bare_lat = await _relay_run(base, pairs, messages, bare=True)
        telmi_rate, telmi_lat = await _relay_run(base, pairs, messages, bare=False)
        ratio = telmi_rate / bare_rate
        for label, rate, lat in (
            ("bare aiohttp relay", bare_rate, bare_lat),
            ("Telmi signaling", telmi_rate, telmi_lat),
        ):
            ms = [v * 1000 for v in lat]
            print(
                f"  {label}: {rate:,.0f} frames/s; latency p50 {percentile(ms, 50):.1f} ms, p99 {percentile(ms, 99):.1f} ms"
            )
        print(f"  Telmi = {ratio:.0%} of the bare relay (target >= {TARGET_RATIO:.0%})")
        paced = max(1.0, telmi_rate / pairs / 2)  # per pair, half the saturated rate
        for label, bare in (("bare aiohttp relay", True), ("Telmi signaling", False)):
            _, lat = await _relay_run(base, pairs, 200, bare=bare, interval=1 / paced)
            ms = [v * 1000 for v in lat]
            print(
                f"  {label} at {paced * pairs:,.0f} frames/s (half load): latency "
                f"p50 {percentile(ms, 50):.1f} ms, p99 {percentile(ms, 99):.1f} ms"
            )
        rss, grown = await _idle(base, idle)
        print(
            f"  {idle:,} idle participants: server RSS {rss / 2**20:,.0f} MiB, "
            f"{grown / max(1, idle) / 1024:.1f} KiB each (target: {TARGET_IDLE:,} under 1 GiB)"
        )
        connect = await _connect_time(base)
        print(
            f"  two aiortc peers connected through a room in {connect * 1000:.0f} ms (target < {TARGET_CONNECT * 1000:.0f} ms)"
        )
    finally:
        child.terminate()
        child.wait(timeout=10)
    ok = (
        ratio >= TARGET_RATIO
        and connect < TARGET_CONNECT
        and (idle < TARGET_IDLE or rss < TARGET_RSS)
    )
    print("OK" if ok else "FAILED (see targets above)")
    return ok


async def _wait_up(base: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            try:
                await http.get(f"{base}/rss")
                return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    raise RuntimeError("bench server did not start")
