"""Statistics: the API's numbers against counts computed here from the inserted acts."""

from __future__ import annotations

import csv
import io
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from telmi import acts, stats, values
from telmi.acts import ActCancellation
from telmi.context import Context
from telmi.db import Database
from telmi.demo import rpps_for
from telmi.models import Act, ActType, FacilityCategory, Role

from .factories import NOW, bearer, make_facility, make_specialty, make_user

PARIS = ZoneInfo("Europe/Paris")


@dataclass
class Logged:
    """What the test knows of an act it inserted, to count independently of the server."""

    day: date
    act_type: str
    departement: str
    category: str
    finess: str
    specialty: str
    patient: tuple[str, str]
    seconds: int
    requester: str
    specialist: str
    cancelled: bool = False


def _key(name: str, item: Logged) -> Any:
    if name == "year":
        return str(item.day.year)
    if name == "quarter":
        return f"{item.day.year}-T{(item.day.month - 1) // 3 + 1}"
    if name == "month":
        return f"{item.day.year}-{item.day.month:02d}"
    if name == "week":
        iso = item.day.isocalendar()
        return f"{iso.year}-S{iso.week:02d}"
    return {
        "departement": item.departement,
        "facility_category": item.category,
        "facility": item.finess,
        "specialty": item.specialty,
        "act_type": item.act_type,
        "region": "27",
    }[name]


def expected(
    log: list[Logged],
    start: date,
    last: date,
    group_by: tuple[str, ...],
    filters: dict[str, tuple[str, ...]] | None = None,
) -> dict[tuple[Any, ...], tuple[int, int, int]]:
    groups: dict[tuple[Any, ...], list[Logged]] = defaultdict(list)
    for item in log:
        if item.cancelled or not start <= item.day <= last:
            continue
        if any(_key(name, item) not in values for name, values in (filters or {}).items()):
            continue
        groups[tuple(_key(n, item) for n in group_by)].append(item)
    return {
        k: (len(v), len({i.patient for i in v}), sum(i.seconds for i in v))
        for k, v in groups.items()
    }


def _shift_key(group_by: tuple[str, ...], key: tuple[Any, ...]) -> tuple[Any, ...]:
    out = []
    for name, value in zip(group_by, key, strict=True):
        if name in ("year", "quarter", "month", "week"):
            year, _, rest = str(value).partition("-")
            value = f"{int(year) + 1}" + (f"-{rest}" if rest else "")
        out.append(value)
    return tuple(out)


def _year_back(d: date) -> date:
    return (
        d.replace(year=d.year - 1)
        if not (d.month == 2 and d.day == 29)
        else d.replace(year=d.year - 1, day=28)
    )


@pytest.fixture
async def history(db: Database) -> list[Logged]:
    """About 160 acts over 2024-2026 in three départements, with some cancelled."""
    rng = random.Random(2018)
    facilities = [
        await make_facility(db, departement="21", category=FacilityCategory.NURSING_HOME),
        await make_facility(db, departement="25", category=FacilityCategory.HEALTH_CENTRE),
        await make_facility(db, departement="39", category=FacilityCategory.DISABILITY_FACILITY),
        await make_facility(db, departement="21", category=FacilityCategory.DISABILITY_FACILITY),
    ]
    specialists = [
        await make_user(db, Role.SPECIALIST, specialty=await make_specialty(db, "dermatologie")),
        await make_user(db, Role.SPECIALIST, specialty=await make_specialty(db, "cardiologie")),
        await make_user(db, Role.SPECIALIST, specialty=await make_specialty(db, "dermatologie")),
    ]
    log: list[Logged] = []
    start = datetime(2024, 11, 1, tzinfo=UTC)
    span = (datetime(2026, 10, 31, tzinfo=UTC) - start).total_seconds()
    moments = [start + timedelta(seconds=rng.random() * span) for _ in range(150)]
    # Acts at the edges of local months and years, where UTC and Paris disagree.
    moments += [
        datetime(2025, 3, 31, 22, 30, tzinfo=UTC),
        datetime(2025, 12, 31, 23, 15, tzinfo=UTC),
        datetime(2025, 10, 31, 23, 30, tzinfo=UTC),
        datetime(2026, 2, 28, 23, 59, tzinfo=UTC),
    ]
    news: list[acts.NewAct] = []
    for when in moments:
        facility = rng.choice(facilities)
        specialist = rng.choice(specialists)
        act_type = rng.choice([ActType.TELECONSULTATION, ActType.TELEEXPERTISE, ActType.TELESOIN])
        patient = f"RES-{rng.randrange(12)}"
        minutes = rng.randrange(5, 45)
        requester = rpps_for(300 + facility.id * 10 + rng.randrange(3))
        specialty = "cardiologie" if specialist is specialists[1] else "dermatologie"
        news.append(
            acts.NewAct(
                act_type=act_type,
                occurred_at=when,
                duration_seconds=minutes * 60,
                facility_id=facility.id,
                requester_role="infirmier",
                requester_rpps=requester,
                specialist_id=specialist.id,
                specialist_rpps=specialist.rpps,
                specialty_code=specialty,
                source_key=f"stats-test:{len(news)}",
                patient_key=acts.patient_key("k", finess=facility.finess, patient_ref=patient),
                patient_consent=True,
            )
        )
        log.append(
            Logged(
                day=when.astimezone(PARIS).date(),
                act_type=act_type.value,
                departement=facility.departement_code,
                category=facility.category.value,
                finess=facility.finess,
                specialty=specialty,
                patient=(facility.finess, patient),
                seconds=minutes * 60,
                requester=requester,
                specialist=str(specialist.rpps),
            )
        )
        log[-1].cancelled = rng.random() < 0.08
    async with db.write() as session:  # the log's batch entry point: same chain, same rollup
        await acts.append_many(session, news, now=NOW, tz=PARIS, recorded_by=None)
    for index, item in enumerate(log):
        if item.cancelled:
            async with db.write() as session:
                act_id = await session.scalar(
                    select(Act.id).where(Act.source_key == f"stats-test:{index}")
                )
                by = next(s for s in specialists if s.id == news[index].specialist_id)
                await acts.cancel(
                    session, Context(by, NOW), act_id, ActCancellation(reason="saisie erronée")
                )
    return log


@pytest.fixture
async def regional(client: TestClient, db: Database) -> dict[str, str]:
    return await bearer(db, await make_user(db, Role.REGIONAL))


async def _stats(client: TestClient, headers: dict[str, str], **params: str) -> dict[str, Any]:
    response = await client.get("/api/stats/acts", params=params, headers=headers)
    assert response.status == 200, await response.text()
    return await response.json()  # type: ignore[no-any-return]


QUERIES = [
    ("2025-01-01", "2025-12-31", ("month", "departement", "facility_category"), {}),
    ("2026-01-01", "2026-10-31", ("quarter", "act_type"), {}),
    ("2025-03-10", "2025-05-20", ("week", "specialty"), {}),
    (
        "2025-01-15",
        "2026-06-10",
        ("year",),
        {"departement": ("21", "25"), "act_type": ("teleexpertise",)},
    ),
    ("2025-02-01", "2025-02-28", ("facility",), {}),
    ("2025-04-01", "2026-03-31", (), {"facility_category": ("disability_facility",)}),
    (
        "2025-11-01",
        "2026-02-28",
        ("month", "region", "specialty", "act_type"),
        {"specialty": ("dermatologie",)},
    ),
]


@pytest.mark.parametrize(("start", "last", "group_by", "filters"), QUERIES)
async def test_api_counts_match_the_inserted_acts(
    client: TestClient,
    history: list[Logged],
    regional: dict[str, str],
    start: str,
    last: str,
    group_by: tuple[str, ...],
    filters: dict[str, tuple[str, ...]],
) -> None:
    params = {"from": start, "to": last} | ({"group_by": ",".join(group_by)} if group_by else {})
    params |= {name: ",".join(values) for name, values in filters.items()}
    got = await _stats(client, regional, **params)
    first, final = date.fromisoformat(start), date.fromisoformat(last)
    now = expected(history, first, final, group_by, filters)
    before = {
        _shift_key(group_by, k): v
        for k, v in expected(
            history, _year_back(first), _year_back(final), group_by, filters
        ).items()
    }
    rows = {tuple(r[n] for n in group_by): r for r in got["rows"]}
    assert set(rows) == set(now) | set(before)
    for key, row in rows.items():
        acts_now, patients_now, seconds_now = now.get(key, (0, 0, 0))
        acts_before, patients_before, _ = before.get(key, (0, 0, 0))
        assert (row["acts"], row["patients"], row["duration_seconds"]) == (
            acts_now,
            patients_now,
            seconds_now,
        ), key
        assert (row["previous_acts"], row["previous_patients"]) == (acts_before, patients_before), (
            key
        )
        if acts_before:
            assert row["growth"] == pytest.approx((acts_now - acts_before) / acts_before, abs=1e-4)
        else:
            assert row["growth"] is None
    whole = expected(history, first, final, ())
    total = (
        whole.get((), (0, 0, 0))
        if not filters
        else expected(history, first, final, (), filters).get((), (0, 0, 0))
    )
    assert (
        got["total"]["acts"],
        got["total"]["patients"],
        got["total"]["duration_seconds"],
    ) == total
    assert got["period"] == {"from": start, "to": last}


async def test_growth_on_the_year_before_for_a_whole_year(
    client: TestClient, history: list[Logged], regional: dict[str, str]
) -> None:
    got = await _stats(client, regional, **{"from": "2025-11-01", "to": "2026-10-31"})
    now = expected(history, date(2025, 11, 1), date(2026, 10, 31), ())[()][0]
    before = expected(history, date(2024, 11, 1), date(2025, 10, 31), ())[()][0]
    assert (got["total"]["acts"], got["total"]["previous_acts"]) == (now, before)
    assert got["total"]["growth"] == pytest.approx((now - before) / before, abs=1e-4)


async def test_monthly_report_matches_the_inserted_acts(
    client: TestClient, history: list[Logged], regional: dict[str, str]
) -> None:
    response = await client.get(
        "/api/stats/monthly-report",
        params={"from": "2025-01-01", "to": "2025-12-31"},
        headers=regional,
    )
    assert response.status == 200
    rows = {r["month"]: r for r in (await response.json())["rows"]}
    for month in range(1, 13):
        items = [
            i for i in history if not i.cancelled and i.day.year == 2025 and i.day.month == month
        ]
        tc = [i for i in items if i.act_type == "teleconsultation"]
        te = [i for i in items if i.act_type == "teleexpertise"]
        want = {
            "teleconsultations": len(tc),
            "patients_teleconsultation": len({i.patient for i in tc}),
            "teleexpertises": len(te),
            "patients_teleexpertise": len({i.patient for i in te}),
            "professionnels_requerants": len({i.requester for i in tc + te}),
            "professionnels_requis": len({i.specialist for i in tc + te}),
        }
        got = rows.get(f"2025-{month:02d}", dict.fromkeys(want, 0))
        assert {k: got[k] for k in want} == want, month


async def test_csv_opens_right_in_a_spreadsheet(
    client: TestClient, history: list[Logged], regional: dict[str, str]
) -> None:
    params = {
        "from": "2025-01-01",
        "to": "2025-12-31",
        "group_by": "departement",
        "format": "csv",
        "sep": ";",
    }
    response = await client.get("/api/stats/acts", params=params, headers=regional)
    assert response.status == 200
    assert response.content_type == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    raw = await response.read()
    assert raw.startswith("\ufeff".encode())
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    assert table[0][:3] == ["departement", "actes", "patients"]
    want = expected(history, date(2025, 1, 1), date(2025, 12, 31), ("departement",))
    assert {row[0]: int(row[1]) for row in table[1:]} == {k[0]: v[0] for k, v in want.items()}
    growth = table[1][table[0].index("evolution_pct")]
    assert growth == "" or "," in growth  # French decimal comma with the ; dialect


async def test_publication_masks_small_counts_and_says_so(
    client: TestClient, history: list[Logged], regional: dict[str, str]
) -> None:
    params = {"from": "2025-01-01", "to": "2025-12-31", "group_by": "month,departement"}
    plain = await _stats(client, regional, **params)
    published = await _stats(client, regional, **params, publication="1")
    assert published["suppression"]["threshold"] == 11
    assert "masqués" in published["suppression"]["message"]
    small = [r for r in plain["rows"] if 0 < r["acts"] < 11]
    assert small, "the fixture should produce small cells"
    by_key = {(r["month"], r["departement"]): r for r in published["rows"]}
    for row in small:
        hidden = by_key[(row["month"], row["departement"])]
        assert hidden["acts"] is None and hidden["duration_seconds"] is None and hidden["masked"]
    assert published["suppression"]["masked_rows"] >= len(small)
    assert published["total"]["acts"] == plain["total"]["acts"]
    csv_text = await (
        await client.get(
            "/api/stats/acts",
            params={**params, "publication": "1", "format": "csv"},
            headers=regional,
        )
    ).text()
    assert "<11" in csv_text


async def test_regional_users_get_aggregates_only(
    client: TestClient, db: Database, history: list[Logged], regional: dict[str, str]
) -> None:
    for path in ("/api/bookings", "/api/bookings/1", "/api/acts", "/api/slots"):
        assert (await client.get(path, headers=regional)).status == 403, path
    refused = await client.post("/api/bookings/1/cancel", json={"reason": "x"}, headers=regional)
    assert refused.status == 403
    body = await _stats(
        client, regional, group_by="facility,month", **{"from": "2025-01-01", "to": "2025-12-31"}
    )
    text = str(body)
    assert "RES-" not in text and "patient_key" not in text
    assert all(
        set(r)
        <= {
            "facility",
            "month",
            "acts",
            "patients",
            "duration_seconds",
            "previous_acts",
            "previous_patients",
            "growth",
            "masked",
        }
        for r in body["rows"]
    )


async def test_staff_and_specialists_cannot_read_statistics(
    client: TestClient, db: Database
) -> None:
    for role in (Role.STAFF, Role.SPECIALIST):
        headers = await bearer(db, await make_user(db, role))
        assert (await client.get("/api/stats/acts", headers=headers)).status == 403
        assert (await client.get("/api/stats/monthly-report", headers=headers)).status == 403
    assert (await client.get("/api/stats/acts")).status == 401


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group_by": "month,commune"}, "group_by"),
        ({"group_by": "month,week"}, "group_by"),
        ({"commune": "Dijon"}, "commune"),
        ({"from": "2025-13-01"}, "from"),
        ({"from": "2025-06-01", "to": "2025-05-01"}, "to"),
        ({"act_type": "telepathie"}, "act_type"),
        ({"departement": "21;DROP"}, "departement"),
        ({"measures": "acts,money"}, "measures"),
        ({"format": "xlsx"}, "format"),
        ({"threshold": "1"}, "threshold"),
    ],
)
async def test_bad_statistics_queries_name_the_parameter(
    client: TestClient, regional: dict[str, str], params: dict[str, str], field: str
) -> None:
    response = await client.get("/api/stats/acts", params=params, headers=regional)
    assert response.status == 422
    assert (await response.json())["error"]["field"] == field


async def test_the_page_overview_counts_months_years_and_parts_from_the_log(
    db: Database, history: list[Logged]
) -> None:
    """One call gives the statistics page all its figures for 2025 (against the test's own
    counts of what it inserted)."""
    live = [item for item in history if not item.cancelled]
    asked = values.parse(stats.ActStatsQuery, {"from": "2025-01-01", "to": "2025-12-31"})
    query = stats.build_query(asked, today=date(2026, 6, 10))
    async with db.read() as session:
        seen = await stats.year_overview(
            session, query, labels={"act_type": {"teleexpertise": "Téléexpertise"}}
        )
    in_2025 = [i for i in live if i.day.year == 2025]
    assert seen.total.current.acts == len(in_2025)
    assert [m for m, _ in seen.monthly] == [
        sum(1 for i in in_2025 if i.day.month == month) for month in range(1, 13)
    ]
    assert [p for _, p in seen.monthly] == [
        sum(1 for i in live if i.day.year == 2024 and i.day.month == month)
        for month in range(1, 13)
    ]
    assert dict(seen.yearly) == {
        y: n for y in range(2017, 2026) if (n := sum(1 for i in live if i.day.year == y))
    }
    by_departement = {p.key: p.acts for p in seen.parts["departement"]}
    assert by_departement == {
        d: sum(1 for i in in_2025 if i.departement == d) for d in {i.departement for i in in_2025}
    }
    assert [p.acts for p in seen.parts["specialty"]] == sorted(
        (p.acts for p in seen.parts["specialty"]), reverse=True
    )
    expertise = sum(1 for i in in_2025 if i.act_type == "teleexpertise")
    assert seen.expertise_share == pytest.approx(expertise / len(in_2025))
    names = {p.key: p.name for p in seen.parts["act_type"]}
    assert names.get("teleexpertise") == "Téléexpertise"


async def test_list_parameters_may_be_repeated_or_comma_separated(
    client: TestClient, history: list[Logged], regional: dict[str, str]
) -> None:
    period = [("from", "2025-01-01"), ("to", "2025-12-31")]
    repeated = await client.get(
        "/api/stats/acts",
        params=[
            *period,
            ("group_by", "month"),
            ("group_by", "departement"),
            ("departement", "21"),
            ("departement", "25"),
            ("measures", "acts"),
        ],
        headers=regional,
    )
    assert repeated.status == 200, await repeated.text()
    joined = await _stats(
        client,
        regional,
        **dict(period),
        group_by="month,departement",
        departement="21,25",
        measures="acts",
    )
    got = await repeated.json()
    assert got == joined
    assert got["filters"] == {"departement": ["21", "25"]}
    assert got["group_by"] == ["month", "departement"]
    assert {r["departement"] for r in got["rows"]} <= {"21", "25"}
    assert all("patients" not in r for r in got["rows"])


async def test_blank_or_numeric_values_are_refused_not_read_as_defaults(
    client: TestClient, regional: dict[str, str]
) -> None:
    """The schema says a date is YYYY-MM-DD and a list item one of its values: a blank
    value or a number is none of them (lax parsing would read "0" as 1 January 1970)."""
    for name, value in (
        ("from", ""),
        ("to", ""),
        ("to", "0"),
        ("from", "20250101"),
        ("group_by", ""),
        ("measures", ","),
        ("departement", ""),
        ("act_type", ""),
    ):
        refused = await client.get("/api/stats/acts", params={name: value}, headers=regional)
        assert refused.status == 422, (name, value)
        assert (await refused.json())["error"]["field"] == name


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group_by": "month"}, "group_by"),
        ({"measures": "acts"}, "measures"),
        ({"commune": "Dijon"}, "commune"),
        ({"publication": "peut-être"}, "publication"),
        ({"sep": "|"}, "sep"),
        ({"facility": "12345"}, "facility"),
    ],
)
async def test_the_monthly_report_takes_only_its_own_parameters(
    client: TestClient, regional: dict[str, str], params: dict[str, str], field: str
) -> None:
    response = await client.get("/api/stats/monthly-report", params=params, headers=regional)
    assert response.status == 422
    assert (await response.json())["error"]["field"] == field


async def test_publication_reads_yes_and_no_in_french_too(
    client: TestClient, regional: dict[str, str]
) -> None:
    for value, masked in (("oui", True), ("true", True), ("non", False), ("0", False)):
        got = await _stats(client, regional, publication=value)
        assert (got["suppression"] is not None) is masked, value
    report = await client.get(
        "/api/stats/monthly-report", params={"threshold": "5"}, headers=regional
    )
    assert report.status == 200
    assert (await report.json())["suppression"]["threshold"] == 5


async def test_a_lone_bound_makes_its_own_year(
    client: TestClient, regional: dict[str, str]
) -> None:
    """`to` alone once started on this year's 1st of January, so an earlier `to` was a 422."""
    earlier = await _stats(client, regional, to="2025-06-30")
    assert earlier["period"] == {"from": "2025-01-01", "to": "2025-06-30"}
    ahead = await _stats(client, regional, **{"from": f"{NOW.year + 1}-02-01"})
    assert ahead["period"] == {"from": f"{NOW.year + 1}-02-01", "to": f"{NOW.year + 1}-12-31"}
    assert (await _stats(client, regional, **{"from": "2026-01-10"}))["period"]["to"] == str(
        NOW.date()
    )
    crossed = await client.get(
        "/api/stats/acts", params={"from": "2025-06-01", "to": "2025-05-01"}, headers=regional
    )
    assert crossed.status == 422 and (await crossed.json())["error"]["field"] == "to"
