"""`telmi bench mixed`: a region's staff at work, over HTTP, on a region seeded after a year.

Staff of 20 facilities (API tokens) search free slots (40 %), list their bookings (20 %,
the first page), book (25 %, with an Idempotency-Key), cancel (8 %) and reschedule (7 %)
their own earlier bookings, against one real `telmi serve` process, from this process.
First as fast as the clients go (saturation), then paced at half that rate (open loop, so
the latency read is the one users see at that load). Each run is both phases; `--runs`
runs go against the same server, whose RSS is read after each (growth between runs is a
leak, not warm-up). Between runs, unmeasured, the clients cancel what they still hold, so
every run books from the same free slots; if the slots still run out within a run, the
last line says the figures are not of the designed mix. Afterwards the database is
checked: no slot with two active bookings, and every booking answered 201 is there in the
state the later answers imply.

Server CPU is the process's user + system time over the phase divided by its requests
(the database server's own CPU is not in it).
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import select

from telmi import booking
from telmi.bench import region
from telmi.bench.booking import raw_anchor
from telmi.bench.common import (
    Server,
    machine,
    percentile,
    progress,
    py_spy,
    rss_kib,
    scratch_database,
    serve,
    top_costs,
)
from telmi.db import Database
from telmi.models import Booking, BookingStatus
from telmi.vault import Vault

MIX = {"search": 40, "list": 20, "book": 25, "cancel": 8, "reschedule": 7}
OPERATIONS = list(MIX)
TARGET_CPU_MS = 2.0
TARGET_P99_MS = 50.0
WARM_UP_SECONDS = 3.0


@dataclass
class Phase:
    label: str
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    elapsed: float = 0.0
    server_cpu: float = float("nan")

    def record(self, op: str, status: int, seconds: float) -> None:
        self.latencies[op].append(seconds)
        self.statuses[op][status] += 1

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    @property
    def rate(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    @property
    def cpu_ms(self) -> float:
        return self.server_cpu / self.requests * 1000 if self.requests else float("nan")

    def all_ms(self) -> list[float]:
        return [v * 1000 for values in self.latencies.values() for v in values]

    def lines(self) -> list[str]:
        ms = self.all_ms()
        out = [
            f"{self.label}: {self.requests} requests in {self.elapsed:.1f}s = {self.rate:,.0f} req/s; "
            f"p50 {percentile(ms, 50):.1f} ms, p99 {percentile(ms, 99):.1f} ms; "
            f"server CPU {self.cpu_ms:.2f} ms/request"
        ]
        for op in OPERATIONS:
            op_ms = [v * 1000 for v in self.latencies.get(op, [])]
            if not op_ms:
                continue
            codes = ", ".join(f"{c}: {n}" for c, n in sorted(self.statuses[op].items()))
            out.append(
                f"  {op:<10} {len(op_ms):>6} ({len(op_ms) / self.requests:5.1%})  "
                f"p50 {percentile(op_ms, 50):7.1f} ms  p99 {percentile(op_ms, 99):7.1f} ms  "
                f"statuses {codes}"
            )
        return out


class Ledger:
    """What the answers said, to hold the database to afterwards."""

    def __init__(self) -> None:
        self.expected: dict[int, BookingStatus] = {}  # every booking answered 201
        self.moved_from: dict[int, int] = {}  # new booking -> the one it replaced
        self.unknown: set[int] = set()  # an answer we could not read (5xx, timeout)
        self.ran_out = 0  # book or reschedule with no free slot left in the pool

    def created(self, booking_id: int) -> None:
        self.expected[booking_id] = BookingStatus.CONFIRMED

    def cancelled(self, booking_id: int) -> None:
        self.expected[booking_id] = BookingStatus.CANCELLED


@dataclass
class Staff:
    """One client: a staff member, their residents and the bookings they made that are
    still active."""

    client: region.Client
    headers: dict[str, str]
    rng: random.Random
    own: list[Own] = field(default_factory=list)


@dataclass(frozen=True)
class Own:
    booking_id: int
    slot_id: int
    code: str  # the slot's specialty


class Mix:
    """Chooses and sends one operation of the mix for a client."""

    def __init__(self, seeded: region.Seeded, ledger: Ledger, rng: random.Random) -> None:
        self.seeded, self.ledger = seeded, ledger
        self.free = {code: list(ids) for code, ids in seeded.free.items()}
        self.days = [seeded.first_day + timedelta(days=d) for d in range(7 * 8)]
        self.weights = [MIX[op] for op in OPERATIONS]
        self.rng = rng

    def choose(self, staff: Staff) -> str:
        op = staff.rng.choices(OPERATIONS, self.weights)[0]
        if op in ("cancel", "reschedule") and not staff.own:
            return "book"  # nothing of theirs to change yet
        return op

    def _slot(self, code: str | None, rng: random.Random) -> tuple[int, str] | None:
        """A free slot ahead (of the specialty, if given), taken from the pool so no other
        client of the bench picks it: a 409 in the figures is then a real anomaly."""
        if code is None:
            codes = [c for c, ids in self.free.items() if ids]
            if not codes:
                return None
            code = rng.choice(codes)
        ids = self.free.get(code)
        return (ids.pop(), code) if ids else None

    def _freed(self, own: Own) -> None:
        """A slot given back by a cancel or a reschedule is bookable again, as in the app;
        it goes to the bottom of the pool, to be taken last."""
        self.free[own.code].insert(0, own.slot_id)

    async def send(self, http: aiohttp.ClientSession, staff: Staff, op: str) -> tuple[str, int]:
        """Status 0: no answer (connection lost, timeout); the booking touched, if any, is
        then of unknown state."""
        touched: list[int] = []
        try:
            return await self._send(http, staff, op, touched)
        except (aiohttp.ClientError, TimeoutError):
            self.ledger.unknown.update(touched)
            return op, 0

    async def _send(
        self, http: aiohttp.ClientSession, staff: Staff, op: str, touched: list[int]
    ) -> tuple[str, int]:
        rng, headers = staff.rng, staff.headers
        if op == "search":
            params = {"specialty": rng.choice(self.seeded.specialties), "limit": "20"}
            if rng.random() < 0.5:
                params["from"] = rng.choice(self.days).isoformat()
            if rng.random() < 0.3:
                params["departement"] = rng.choice(region.DEPARTEMENTS)
            async with http.get("/api/slots", params=params, headers=headers) as response:
                await response.read()
                return op, response.status
        if op == "list":
            async with http.get("/api/bookings", params={"limit": "50"}, headers=headers) as r:
                await r.read()
                return op, r.status
        if op == "book":
            picked = self._slot(None, rng)
            if picked is None:
                self.ledger.ran_out += 1
                return await self._send(http, staff, "search", touched)
            slot_id, code = picked
            body = {
                "slot_id": slot_id,
                "patient_id": rng.choice(staff.client.residents),
                "act_type": "teleconsultation",
            }
            async with http.post(
                "/api/bookings",
                json=body,
                headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
            ) as response:
                data = await _json(response)
                if response.status == 201:
                    self.ledger.created(int(data["id"]))
                    staff.own.append(Own(int(data["id"]), slot_id, code))
                return op, response.status
        own = staff.own.pop(rng.randrange(len(staff.own)))
        touched.append(own.booking_id)
        if op == "cancel":
            return op, await self.cancel(http, staff, own)
        picked = self._slot(own.code, rng)
        if picked is None:
            self.ledger.ran_out += 1
            staff.own.append(own)
            return await self._send(http, staff, "search", touched)
        async with http.post(
            f"/api/bookings/{own.booking_id}/reschedule",
            json={"slot_id": picked[0]},
            headers=headers,
        ) as response:
            data = await _json(response)
            if response.status == 201:
                new_id = int(data["id"])
                self.ledger.cancelled(own.booking_id)
                self.ledger.created(new_id)
                self.ledger.moved_from[new_id] = own.booking_id
                staff.own.append(Own(new_id, picked[0], own.code))
                self._freed(own)
            elif response.status >= 500:
                self.ledger.unknown.add(own.booking_id)
            else:
                staff.own.append(own)
            return op, response.status

    async def cancel(self, http: aiohttp.ClientSession, staff: Staff, own: Own) -> int:
        async with http.post(
            f"/api/bookings/{own.booking_id}/cancel",
            json={"reason": "Résident indisponible"},
            headers=staff.headers,
        ) as response:
            await response.read()
            if response.status == 200:
                self.ledger.cancelled(own.booking_id)
                self._freed(own)
            elif response.status >= 500:
                self.ledger.unknown.add(own.booking_id)
            return response.status


async def _json(response: aiohttp.ClientResponse) -> Any:
    body = await response.read()
    return json.loads(body) if response.status in (200, 201) else None


def _connector(clients: int) -> aiohttp.TCPConnector:
    return aiohttp.TCPConnector(limit=clients, force_close=False)


# A request unanswered after this is counted as status 0 (no answer), so a server that
# stopped answering fails the run instead of hanging it.
TIMEOUT = aiohttp.ClientTimeout(total=60)


async def saturate(
    server: Server, mix: Mix, staff: list[Staff], seconds: float, label: str
) -> Phase:
    """Closed loop: every client sends its next request as soon as the last is answered."""
    phase = Phase(label)
    async with aiohttp.ClientSession(
        server.base_url, connector=_connector(len(staff)), timeout=TIMEOUT
    ) as http:
        started, cpu = time.perf_counter(), server.cpu_seconds()
        deadline = started + seconds

        async def client(s: Staff) -> None:
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                op, status = await mix.send(http, s, mix.choose(s))
                phase.record(op, status, time.perf_counter() - sent)

        async def ticker() -> None:
            total = max(1, round(seconds))
            while (left := deadline - time.perf_counter()) > 0:
                await asyncio.sleep(min(1.0, left))
                progress(f"{label} (s)", min(total - 1, round(seconds - left)), total)
            progress(f"{label} (s)", total, total)

        await asyncio.gather(ticker(), *(client(s) for s in staff))
        phase.elapsed = time.perf_counter() - started
        phase.server_cpu = server.cpu_seconds() - cpu
    return phase


async def paced(
    server: Server, mix: Mix, staff: list[Staff], seconds: float, rate: float, label: str
) -> Phase:
    """Open loop: requests start at `rate` whatever the answers do, round the clients."""
    phase = Phase(label)
    count = max(1, int(rate * seconds))
    async with aiohttp.ClientSession(
        server.base_url, connector=_connector(len(staff)), timeout=TIMEOUT
    ) as http:
        started, cpu = time.perf_counter(), server.cpu_seconds()

        async def one(s: Staff) -> None:
            sent = time.perf_counter()
            op, status = await mix.send(http, s, mix.choose(s))
            phase.record(op, status, time.perf_counter() - sent)

        tasks = []
        for i in range(count):
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(staff[i % len(staff)])))
            if (i + 1) % max(1, count // 10) == 0 and i + 1 < count:
                progress(label, i + 1, count)
        await asyncio.gather(*tasks)
        progress(label, count, count)
        phase.elapsed = time.perf_counter() - started
        phase.server_cpu = server.cpu_seconds() - cpu
    return phase


async def release(server: Server, mix: Mix, staff: list[Staff]) -> tuple[int, int]:
    """Between runs, not measured: every client cancels what it still holds, so each run
    starts from the same free slots and runs the designed mix (8 weeks of slots hold about
    two runs of bookings on a 2-core machine). Returns (cancelled, failed)."""
    total = sum(len(s.own) for s in staff)
    done = failed = 0
    async with aiohttp.ClientSession(
        server.base_url, connector=_connector(len(staff)), timeout=TIMEOUT
    ) as http:

        async def one(s: Staff) -> None:
            nonlocal done, failed
            while s.own:
                own = s.own.pop()
                try:
                    status = await mix.cancel(http, s, own)
                except (aiohttp.ClientError, TimeoutError):
                    mix.ledger.unknown.add(own.booking_id)
                    status = 0
                done += 1
                failed += status != 200
                if done % 500 == 0:
                    progress("cancelling the run's bookings", done, total)

        await asyncio.gather(*(one(s) for s in staff))
    progress("cancelling the run's bookings", total, total)
    return done - failed, failed


def headline(rate: float, cpu_ms: float, p99_half: float, ran_out: int) -> str:
    """The last line; it says so when the figures are not of the designed mix."""
    line = f"mixed: {rate:.0f} req/s, server CPU {cpu_ms:.2f} ms/request, p99 at half load "
    line += f"{p99_half:.1f} ms"
    if ran_out:
        line += f" (NOT the designed mix: free slots ran out {ran_out:,} times)"
    return line


@dataclass(frozen=True)
class Verdict:
    double_bookings: int
    created: int
    missing: int
    wrong_status: int
    wrong_link: int
    unknown: int

    @property
    def ok(self) -> bool:
        return not (self.double_bookings or self.missing or self.wrong_status or self.wrong_link)

    def line(self) -> str:
        return (
            f"invariants: double bookings {self.double_bookings}; bookings answered 201: "
            f"{self.created:,}, missing {self.missing}, status not as answered "
            f"{self.wrong_status}, reschedule link wrong {self.wrong_link} "
            f"(outcome unknown after a 5xx: {self.unknown})"
        )


async def check(url: str, ledger: Ledger) -> Verdict:
    db = Database(url)
    try:
        async with db.read() as session:
            doubles = await booking.count_double_bookings(session)
            ids = sorted(ledger.expected)
            found: dict[int, tuple[BookingStatus, int | None]] = {}
            for start in range(0, len(ids), 1000):
                rows = await session.execute(
                    select(Booking.id, Booking.status, Booking.rescheduled_from_id).where(
                        Booking.id.in_(ids[start : start + 1000])
                    )
                )
                found.update({i: (BookingStatus(s), old) for i, s, old in rows})
    finally:
        await db.dispose()
    missing = wrong = link = 0
    for booking_id, expected in ledger.expected.items():
        if booking_id not in found:
            missing += 1
            continue
        status, old = found[booking_id]
        if booking_id not in ledger.unknown and status is not expected:
            wrong += 1
        if old != ledger.moved_from.get(booking_id):
            link += 1
    return Verdict(doubles, len(ids), missing, wrong, link, len(ledger.unknown))


async def bench_mixed(
    backend: str,
    *,
    clients: int,
    seconds: float,
    runs: int,
    sizes: region.Sizes,
    postgres_url: str | None,
    vault: Vault,
    profile: str | None = None,
) -> bool:
    print(
        f"telmi bench mixed — {backend}, {clients} clients, {seconds:g}s per phase, "
        f"{runs} run(s) ({machine()})"
    )
    rng = random.Random(16)
    async with scratch_database(backend, postgres_url) as url:
        seeded = await region.seed(url, sizes, vault, rng=rng)
        print(f"  seeded: {region.describe(seeded)}")
        ledger = Ledger()
        mix = Mix(seeded, ledger, rng)
        staff = [
            Staff(c, {"Authorization": f"Bearer {c.token}"}, random.Random(i))
            for i, c in enumerate(seeded.clients)
        ]
        results: list[tuple[Phase, Phase, int]] = []
        released: list[tuple[int, int]] = []
        # The load generator's own full collections would stall every request in flight.
        gc.collect()
        gc.freeze()
        with serve(url) as server:
            await saturate(server, mix, staff, min(WARM_UP_SECONDS, seconds), "warm-up")
            rss_start = rss_kib(server)
            for n in range(1, runs + 1):
                with py_spy(server, profile if n == 1 else None):
                    full = await saturate(server, mix, staff, seconds, f"run {n}, saturation")
                half = await paced(
                    server, mix, staff, seconds, max(1.0, full.rate / 2), f"run {n}, half load"
                )
                results.append((full, half, rss_kib(server)))
                if n < runs:
                    released.append(await release(server, mix, staff))
        verdict = await check(url, ledger)
        anchor = await raw_anchor(url) if backend == "postgresql" else None
    for full, half, _ in results:
        for line in full.lines() + half.lines():
            print(line)
    print(f"server RSS: {rss_start / 1024:.1f} MiB after the warm-up", end="")
    for n, (_, _, rss) in enumerate(results, start=1):
        print(f"; {rss / 1024:.1f} MiB after run {n}", end="")
    print()
    if len(results) > 1:
        grown = results[-1][2] - results[0][2]
        print(
            f"server RSS growth from run 1 to run {len(results)}: {grown / 1024:+.1f} MiB "
            f"({grown / results[0][2]:+.1%})"
        )
    if profile and Path(profile).exists():
        print(f"profile of the server over run 1's saturation (py-spy, {profile}):")
        for line in top_costs(profile):
            print(line)
    if released:
        print(
            "between runs (not measured), the bench's bookings still active were cancelled: "
            + ", ".join(f"{ok:,} after run {n}" for n, (ok, _) in enumerate(released, start=1))
        )
    refused = sum(failed for _, failed in released)
    if ledger.ran_out:
        print(f"free slots ran out {ledger.ran_out:,} times (a search was sent instead)")
    print(verdict.line())
    errors = sum(
        n
        for phase in [p for r in results for p in r[:2]]
        for counts in phase.statuses.values()
        for code, n in counts.items()
        if code >= 500 or code == 0
    )
    print(f"server errors: {errors} (5xx, or no answer within {TIMEOUT.total:g}s)")
    if refused:
        print(f"FAILED: {refused} cancellations between runs were not answered 200")
    saturated = [r[0] for r in results]
    halves = [r[1] for r in results]
    rate = sum(p.requests for p in saturated) / sum(p.elapsed for p in saturated)
    cpu_ms = sum(p.server_cpu for p in saturated) / sum(p.requests for p in saturated) * 1000
    p99_half = percentile([ms for p in halves for ms in p.all_ms()], 99)
    print(
        f"targets: server CPU {cpu_ms:.2f} ms/request (target ≤ {TARGET_CPU_MS}), "
        f"p99 at half load {p99_half:.1f} ms (target < {TARGET_P99_MS:g})"
    )
    if anchor is not None:
        print(
            f"anchor (raw asyncpg booking transaction, 32 connections) on this machine: "
            f"{anchor:,.0f}/s; the mix over HTTP = {rate / anchor:.1%} of it"
        )
    ok = verdict.ok and not errors and not refused
    print(f"{'OK' if ok else 'FAILED'} (the figures are over all runs)")
    print(headline(rate, cpu_ms, p99_half, ledger.ran_out))
    return ok
