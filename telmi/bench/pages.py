"""`telmi bench pages`: the busiest pages, as their users see them, on a region after a year.

« Prendre rendez-vous » (a search, as a nurse), « Mes rendez-vous » (the nurse's facility),
« Mon agenda » (the week of the busiest specialist) and « Statistiques d'activité » (a
regional user), each asked one after the other by a browser session (signed in through the
login form, cookie and CSRF token as a browser has them) against one real `telmi serve`
process. Counted per page: the server's CPU time per page (process user + system time over
the requests, the database server's not included) and latency p50/p95.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import aiohttp

from telmi.bench import region
from telmi.bench.common import (
    Server,
    machine,
    percentile,
    progress,
    py_spy,
    scratch_database,
    serve,
    top_costs,
)
from telmi.vault import Vault

TARGET_CPU_MS = 20.0
WARM_UP = 5
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Timed:
    name: str
    path: str
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    server_cpu: float = float("nan")
    size: int = 0  # bytes of the last page

    @property
    def cpu_ms(self) -> float:
        return self.server_cpu / len(self.latencies) * 1000 if self.latencies else float("nan")

    @property
    def p95_ms(self) -> float:
        return percentile([v * 1000 for v in self.latencies], 95)

    def line(self) -> str:
        ms = [v * 1000 for v in self.latencies]
        codes = ", ".join(f"{c}: {n}" for c, n in sorted(self.statuses.items()))
        mark = "" if self.cpu_ms <= TARGET_CPU_MS else "  [over target]"
        return (
            f"« {self.name} » (GET {self.path}): {len(ms)} pages, server CPU "
            f"{self.cpu_ms:.1f} ms/page (target ≤ {TARGET_CPU_MS:g}){mark}; "
            f"p50 {percentile(ms, 50):.1f} ms, p95 {self.p95_ms:.1f} ms; {self.size / 1024:.0f} KiB; "
            f"statuses {codes}"
        )


async def sign_in(server: Server, email: str, password: str) -> aiohttp.ClientSession:
    """A browser session: the login form's CSRF token, then its POST; the session cookie
    stays in the jar (unsafe=True: the server is 127.0.0.1, which the jar refuses else)."""
    http = aiohttp.ClientSession(server.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.get("/login") as form:
        found = _CSRF.search(await form.text())
    if found is None:
        await http.close()
        raise RuntimeError("no CSRF token on the login page")
    data = {"email": email, "password": password, "csrf_token": found.group(1), "next": "/"}
    async with http.post("/login", data=data, allow_redirects=False) as response:
        if response.status != 303:
            await http.close()
            raise RuntimeError(f"login of {email} answered {response.status}")
    return http


async def time_page(
    server: Server,
    http: aiohttp.ClientSession,
    name: str,
    path: str,
    params: Callable[[int], dict[str, str]],
    requests: int,
) -> Timed:
    """`requests` GETs one after the other (after a few not counted): CPU per page is then
    the page's alone."""
    timed = Timed(name, path)
    for i in range(WARM_UP):
        async with http.get(path, params=params(i), allow_redirects=False) as response:
            await response.read()
    cpu = server.cpu_seconds()
    for i in range(requests):
        sent = time.perf_counter()
        async with http.get(path, params=params(i), allow_redirects=False) as response:
            timed.size = len(await response.read())
        timed.latencies.append(time.perf_counter() - sent)
        timed.statuses[response.status] += 1
        if (i + 1) % max(1, requests // 5) == 0:
            progress(name, i + 1, requests)
    timed.server_cpu = server.cpu_seconds() - cpu
    return timed


async def bench_pages(
    backend: str,
    *,
    requests: int,
    sizes: region.Sizes,
    postgres_url: str | None,
    vault: Vault,
    profile: str | None = None,
) -> bool:
    print(f"telmi bench pages — {backend}, {requests} requests per page ({machine()})")
    rng = random.Random(16)
    async with scratch_database(backend, postgres_url) as url:
        seeded = await region.seed(url, sizes, vault, rng=rng)
        print(f"  seeded: {region.describe(seeded)}")
        days = [seeded.first_day + timedelta(days=d) for d in range(7 * sizes.weeks)]
        choice = random.Random(5)

        def search(_: int) -> dict[str, str]:
            asked = {"specialite": choice.choice(seeded.specialties)}
            if choice.random() < 0.5:
                asked["du"] = choice.choice(days).isoformat()
            return asked

        pages: list[Timed] = []
        with serve(url) as server:
            nurse = await sign_in(server, seeded.nurse_email, seeded.password)
            specialist = await sign_in(server, seeded.specialist_email, seeded.password)
            regional = await sign_in(server, seeded.regional_email, seeded.password)
            try:
                with py_spy(server, profile):
                    for http, name, path, params in (
                        (nurse, "Prendre rendez-vous", "/rendez-vous/nouveau", search),
                        (nurse, "Mes rendez-vous", "/rendez-vous", lambda _: {}),
                        (specialist, "Mon agenda", "/agenda", lambda _: {}),
                        (regional, "Statistiques d'activité", "/statistiques", lambda _: {}),
                    ):
                        page = await time_page(server, http, name, path, params, requests)
                        pages.append(page)
            finally:
                for http in (nurse, specialist, regional):
                    await http.close()
    for page in pages:
        print(page.line())
    if profile and Path(profile).exists():
        print(f"profile of the server over the four pages (py-spy, {profile}):")
        for line in top_costs(profile):
            print(line)
    ok = all(page.statuses == Counter({200: requests}) for page in pages)
    worst = max(pages, key=lambda p: p.cpu_ms)
    print("OK" if ok else "FAILED (a page did not answer 200)")
    print(
        "pages: server CPU "
        + ", ".join(f"{p.path} {p.cpu_ms:.1f} ms" for p in pages)
        + f" per page (most: {worst.path}); p95 "
        + ", ".join(f"{p.path} {p.p95_ms:.1f} ms" for p in pages)
    )
    return ok
