"""Every page of the demo region, for every role, in Chromium: no sideways scroll and no axe-core
violation at each of VIEWPORTS, and the keyboard path through the layout (skip link, folded
menu, visible focus).

The server is tests/test_api_contract.py's: the demo region with its living activity on a
SQLite file, a frozen clock at factories.NOW, served from a thread. Each role crawls from "/"
over same-origin links (breadth first, at most two URLs per route name, GET pages only), and
must reach an explicit list of route names, so a page cannot silently drop out of the crawl.
Every failure across pages is collected and asserted once, as a readable list.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from scheduling.clock import FrozenClock
from telmi.demo import DEMO_PASSWORD
from telmi.web.routes import setup_routes
from tests.browser import VIEWPORTS, axe_violations, scroll_overflow
from tests.factories import NOW
from tests.test_api_contract import ROLES, LiveServer, demo_settings

pytestmark = pytest.mark.slow  # loads the demo region, crawls it in Chromium

# What each role must reach from "/" (route names of telmi/web/routes.py).
COMMON = {"home", "notifications", "my_account", "accessibility"}
EXPECTED = {
    "anonymous": {"login", "password_forgot", "accessibility"},
    "staff": COMMON
    | {
        "booking_search",
        "bookings",
        "booking_move",  # not booking_report: staff see signed reports, the demo signs none
        "consultation_room",
        "test_video",
        "residents",
        "resident",
        "resident_new",
        "resident_edit",
        "expertise",
        "expertise_new",
        "expertise_thread",
    },
    "specialist": COMMON
    | {
        "agenda",
        "availability",
        "consultation_room",
        "test_video",
        "booking_report",
        "expertise",
        "expertise_thread",
    },
    "regional": COMMON | {"statistics", "sites"},
    "admin": COMMON
    | {
        "admin",
        "admin_jobs",
        "admin_forms",
        "admin_form",
        "admin_journal",
        "admin_facilities",
        "admin_facility",
        "admin_facility_new",
        "admin_specialties",
        "admin_finess",
        "accounts_admin",
        "account_edit",
        "record_access_choose",
        "statistics",
        "sites",
        "availability",
    },
}
ANONYMOUS_START = ["/", "/login", "/mot-de-passe-oublie", "/accessibilite"]
PER_ROUTE = 2
# The agenda has a week and a day view: its fourth URL is the previous week, where the demo's
# completed consultations (and their reports to write) are.
PER_ROUTE_EXCEPTIONS = {"agenda": 4}
SKIPPED_PREFIXES = ("/logout", "/api/", "/static/", "/ws/")
DOWNLOADS = (".csv", ".pdf", ".ics")


class Routes:
    """URL path -> route name, from the app's own router (GET routes only)."""

    def __init__(self) -> None:
        app = web.Application()
        setup_routes(app)
        self.get: list[tuple[re.Pattern[str], str]] = []
        self.other: list[re.Pattern[str]] = []
        for route in app.router.routes():
            info = route.resource.get_info() if route.resource is not None else {}
            if "path" in info:
                pattern = re.compile(re.escape(info["path"]))
            elif "pattern" in info:
                pattern = info["pattern"]
            else:  # the static directory
                continue
            if route.method == "GET" and route.name:
                self.get.append((pattern, route.name))
            else:
                self.other.append(pattern)

    def name(self, path: str) -> str | None:
        """The GET route serving `path`; "" when only other methods do; None when none does."""
        for pattern, name in self.get:
            if pattern.fullmatch(path):
                return name
        return "" if any(p.fullmatch(path) for p in self.other) else None


@dataclass
class Crawl:
    visited: dict[str, list[str]] = field(default_factory=dict)  # route name -> URLs
    failures: list[str] = field(default_factory=list)
    pages: int = 0
    seconds: float = 0.0

    def report(self) -> str:
        return "\n".join(self.failures)


@pytest.fixture(scope="module")
def demo_site(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    settings = demo_settings(sqlite_template, tmp_path_factory.mktemp("accessibility"))
    server = LiveServer(settings, FrozenClock(NOW))
    server.settings = settings.replace(public_url=server.url)  # the Origin the browser sends
    with server:
        yield server


async def _page(browser: Any, base: str, role: str) -> Any:
    width, height = VIEWPORTS["desktop"]
    context = await browser.new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    if role != "anonymous":
        await page.goto(base + "/login")
        await page.fill("input[name=email]", ROLES[role])
        await page.fill("input[name=password]", DEMO_PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(base + "/")
    return page


def _describe(url: str, viewport: str, violation: dict[str, Any]) -> str:
    nodes = " | ".join(violation["nodes"])
    return f"{url} [{viewport}] axe {violation['id']} ({violation['impact']}): {nodes}"


async def _check(page: Any, url: str, crawl: Crawl) -> None:
    for viewport, (width, height) in VIEWPORTS.items():
        await page.set_viewport_size({"width": width, "height": height})
        overflow = await scroll_overflow(page)
        if overflow:
            crawl.failures.append(f"{url} [{viewport}] scrolls sideways by {overflow} px")
        for violation in await axe_violations(page):
            crawl.failures.append(_describe(url, viewport, violation))
    width, height = VIEWPORTS["desktop"]
    await page.set_viewport_size({"width": width, "height": height})


async def crawl_site(page: Any, base: str, starts: list[str]) -> Crawl:
    """Breadth first over same-origin links, checking each page at every viewport."""
    routes, crawl, began = Routes(), Crawl(), time.monotonic()
    queued: dict[str, int] = {}
    seen: set[str] = set()
    todo: deque[str] = deque()

    def enqueue(path: str, source: str) -> None:
        name = routes.name(urlsplit(path).path)
        if name is None and path not in seen:
            seen.add(path)
            crawl.failures.append(f"{source} links to {path}, which no route serves")
        if (
            not name
            or path in seen
            or queued.get(name, 0) >= PER_ROUTE_EXCEPTIONS.get(name, PER_ROUTE)
        ):
            return
        seen.add(path)
        queued[name] = queued.get(name, 0) + 1
        todo.append(path)

    for start in starts:
        enqueue(start, "(start)")
    while todo:
        path = todo.popleft()
        response = await page.goto(base + path, wait_until="load")
        final = urlsplit(page.url)
        here = final.path + (f"?{final.query}" if final.query else "")
        status = response.status if response is not None else 0
        if status >= 400:
            crawl.failures.append(f"{path} answers HTTP {status}")
            continue
        name = routes.name(final.path) or "?"
        if here in crawl.visited.get(name, []):
            continue  # a redirect to a page already checked
        crawl.visited.setdefault(name, []).append(here)
        seen.add(here)
        crawl.pages += 1
        await _check(page, here, crawl)
        links = await page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        for link in links:
            parts = urlsplit(link)
            if f"{parts.scheme}://{parts.netloc}" != base:
                continue
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            if parts.path.startswith(SKIPPED_PREFIXES) or parts.path.endswith(DOWNLOADS):
                continue
            enqueue(target, here)
    crawl.seconds = time.monotonic() - began
    return crawl


@pytest.mark.parametrize("role", ["anonymous", *ROLES])
async def test_every_page_fits_and_passes_axe_at_every_viewport(
    demo_site: LiveServer, browser: Any, role: str
) -> None:
    page = await _page(browser, demo_site.url, role)
    starts = ANONYMOUS_START if role == "anonymous" else ["/"]
    crawl = await crawl_site(page, demo_site.url, starts)
    print(f"{role}: {crawl.pages} pages in {crawl.seconds:.1f} s; routes {sorted(crawl.visited)}")
    missing = sorted(EXPECTED[role] - set(crawl.visited))
    if missing:
        crawl.failures.append(f"{role} never reached {missing}; reached {sorted(crawl.visited)}")
    assert not crawl.failures, f"{len(crawl.failures)} failures for {role}:\n{crawl.report()}"


async def test_the_pages_behind_a_form_fit_and_pass_axe(
    demo_site: LiveServer, browser: Any
) -> None:
    """The crawl follows links only: the booking form (after « Réserver ») and a resident's
    access log (after « Voir les accès ») are reached here by submitting the forms."""
    routes, crawl = Routes(), Crawl()
    page = await _page(browser, demo_site.url, "staff")
    await page.goto(demo_site.url + "/rendez-vous/nouveau?du=2026-06-11")  # the day after NOW
    await page.get_by_role("button", name="Réserver").first.click()
    await page.wait_for_load_state("load")
    assert await page.get_by_role("heading", name="Réserver un créneau").is_visible()
    assert await page.locator("section.summary .hold").is_visible()  # held: the full form
    await _check(page, urlsplit(page.url).path, crawl)

    page = await _page(browser, demo_site.url, "admin")
    await page.goto(demo_site.url + "/acces-dossier")
    tilleuls = page.locator("#facility_id option", has_text="Les Tilleuls")
    await page.select_option("#facility_id", await tilleuls.get_attribute("value"))
    await page.fill("#reference", "DEMO-TIL-010")
    await page.get_by_role("button", name="Voir les accès").click()
    await page.wait_for_load_state("load")
    assert routes.name(urlsplit(page.url).path) == "record_access", page.url
    await _check(page, urlsplit(page.url).path, crawl)
    assert not crawl.failures, crawl.report()


async def test_the_first_tab_reaches_the_skip_link_and_enter_moves_into_main(
    demo_site: LiveServer, browser: Any
) -> None:
    page = await _page(browser, demo_site.url, "staff")
    await page.keyboard.press("Tab")
    focused = await page.evaluate(
        "[document.activeElement.className, document.activeElement.textContent]"
    )
    assert focused == ["skip-link", "Aller au contenu"]
    shown = await page.locator(".skip-link").bounding_box()
    assert shown is not None and shown["y"] >= 0  # on screen once focused
    await page.keyboard.press("Enter")
    assert await page.evaluate("document.activeElement.closest('main') !== null")
    await page.keyboard.press("Tab")  # the next stop is inside the content, not the menu
    assert await page.evaluate("document.activeElement.closest('main') !== null")


@pytest.mark.parametrize("viewport", ["phone", "tablet"])
async def test_the_menu_folds_into_a_button_on_a_phone_and_a_tablet(
    demo_site: LiveServer, browser: Any, viewport: str
) -> None:
    page = await _page(browser, demo_site.url, "staff")
    width, height = VIEWPORTS[viewport]
    await page.set_viewport_size({"width": width, "height": height})
    toggle = page.get_by_role("button", name="Menu")
    logout = page.get_by_role("button", name="Se déconnecter")
    assert await toggle.get_attribute("aria-expanded") == "false"
    assert not await logout.is_visible()
    await toggle.focus()
    await page.keyboard.press("Enter")
    assert await toggle.get_attribute("aria-expanded") == "true"
    assert await logout.is_visible()
    assert await page.get_by_role("link", name="Résidents").is_visible()
    assert await scroll_overflow(page) == 0
    assert await axe_violations(page) == []
    await page.keyboard.press("Tab")  # into the opened menu
    await page.keyboard.press("Escape")
    assert await toggle.get_attribute("aria-expanded") == "false"
    assert not await logout.is_visible()
    assert await page.evaluate("document.activeElement.getAttribute('aria-controls')") == "menu"


async def test_the_whole_menu_shows_on_a_desktop_and_without_javascript(
    demo_site: LiveServer, browser: Any
) -> None:
    page = await _page(browser, demo_site.url, "admin")  # the longest menu
    width, height = VIEWPORTS["desktop"]
    assert not await page.get_by_role("button", name="Menu").is_visible()
    logout = page.get_by_role("button", name="Se déconnecter")
    box = await logout.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
    assert await page.get_by_role("link", name="Disponibilités des spécialistes").is_visible()
    await page.context.close()

    context = await browser.new_context(
        java_script_enabled=False, viewport={"width": 390, "height": height}
    )
    page = await context.new_page()
    await page.goto(demo_site.url + "/login")
    await page.fill("input[name=email]", ROLES["staff"])
    await page.fill("input[name=password]", DEMO_PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(demo_site.url + "/")
    assert await page.get_by_role("button", name="Se déconnecter").is_visible()
    assert not await page.get_by_role("button", name="Menu").is_visible()
    assert await scroll_overflow(page) == 0


def _luminance(rgb: tuple[float, float, float]) -> float:
    def channel(c: float) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _rgb(css: str) -> tuple[float, float, float]:
    numbers = [float(n) for n in re.findall(r"[\d.]+", css)]
    assert len(numbers) == 3 or (len(numbers) == 4 and numbers[3] == 1), css
    return numbers[0], numbers[1], numbers[2]


def contrast(one: str, other: str) -> float:
    a, b = sorted((_luminance(_rgb(one)), _luminance(_rgb(other))), reverse=True)
    return (a + 0.05) / (b + 0.05)


# The focus ring of the focused element and the first opaque background behind it (its
# parent's and up: the ring is drawn outside the element, past an offset).
RING = """() => {
  const el = document.activeElement, style = getComputedStyle(el);
  let behind = el.parentElement;
  while (behind && getComputedStyle(behind).backgroundColor.match(/rgba\\(.*, 0\\)|transparent/))
    behind = behind.parentElement;
  return {tag: el.tagName, style: style.outlineStyle, width: parseFloat(style.outlineWidth),
          color: style.outlineColor,
          behind: behind ? getComputedStyle(behind).backgroundColor : 'rgb(255, 255, 255)'};
}"""


@pytest.mark.parametrize(
    ("path", "selector"),
    [
        ("/login", "input[name=email]"),
        ("/login", "button[type=submit]"),
        ("/login", "main a"),
        ("/rendez-vous/nouveau", "main select"),
        ("/rendez-vous/nouveau", "main button"),
        ("/residents", "main a.button"),
        ("/", "nav a"),
    ],
)
async def test_the_focus_ring_contrasts_three_to_one_with_what_is_behind(
    demo_site: LiveServer, browser: Any, path: str, selector: str
) -> None:
    page = await _page(browser, demo_site.url, "anonymous" if path == "/login" else "staff")
    await page.goto(demo_site.url + path)
    await page.keyboard.press("Tab")  # a keyboard user: :focus-visible applies
    await page.locator(selector).first.focus()
    ring = await page.evaluate(RING)
    assert ring["style"] != "none" and ring["width"] >= 2, ring
    assert contrast(ring["color"], ring["behind"]) >= 3, ring
