"""« Statistiques d'activité »: headline numbers, charts and CSV downloads for regional teams.

A year at a time (to date for the current one), beside the same dates a year earlier, with
the filters of the statistics API. Aggregates only; the charts are SVG drawn here.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

from aiohttp import web
from sqlalchemy import select
from yarl import URL

from telmi import stats
from telmi.errors import ValidationError
from telmi.keys import CLOCK, DB, SETTINGS
from telmi.labels import label
from telmi.models import ActType, Departement, FacilityCategory, Role, Specialty
from telmi.web.access import roles
from telmi.web.pages import charts
from telmi.web.render import render

FIRST_YEAR = 2017
MONTHS = [
    "janv.",
    "févr.",
    "mars",
    "avr.",
    "mai",
    "juin",
    "juil.",
    "août",
    "sept.",
    "oct.",
    "nov.",
    "déc.",
]
# Page field -> statistics API filter.
FILTERS = {
    "departement": "departement",
    "categorie": "facility_category",
    "specialite": "specialty",
    "type": "act_type",
}


def _year(raw: str | None, today: date) -> int:
    if not raw:
        return today.year
    if not raw.isdigit() or not FIRST_YEAR <= int(raw) <= today.year:
        raise ValidationError(f"Année entre {FIRST_YEAR} et {today.year}.", field="annee")
    return int(raw)


def _bars(result: stats.Result, key: str, names: dict[str, str]) -> list[charts.Bar]:
    bars = [
        charts.Bar(names.get(str(r.keys[key]), str(r.keys[key])), r.current.acts, r.previous.acts)
        for r in result.rows
    ]
    return sorted(bars, key=lambda b: -b.value)


@roles(Role.REGIONAL, Role.ADMIN)
async def statistics(request: web.Request) -> web.Response:
    today = request.app[CLOCK].now().astimezone(request.app[SETTINGS].tz).date()
    year = _year(request.query.get("annee"), today)
    last = min(date(year, 12, 31), today)
    params = {"from": date(year, 1, 1).isoformat(), "to": last.isoformat()}
    chosen = {field: request.query.get(field, "") for field in FILTERS}
    params |= {FILTERS[f]: v for f, v in chosen.items() if v}
    base = stats.parse(params, today=today)
    acts_only = replace(base, measures=("acts",))
    async with request.app[DB].read() as session:
        headline = await stats.acts(session, base)
        monthly = await stats.acts(session, replace(acts_only, group_by=("month",)))
        history = await stats.acts(
            session,
            replace(acts_only, start=date(FIRST_YEAR, 1, 1), end=base.end, group_by=("year",)),
        )
        parts = {
            key: await stats.acts(session, replace(acts_only, group_by=(key,)))
            for key in ("departement", "facility_category", "specialty", "act_type")
        }
        departements = {
            d.code: f"{d.name} ({d.code})" for d in await session.scalars(select(Departement))
        }
        specialties = {s.code: s.name for s in await session.scalars(select(Specialty))}
    categories = {c.value: label(c) for c in FacilityCategory}
    act_types = {t.value: label(t) for t in ActType}
    by_month = {r.keys["month"]: r for r in monthly.rows}
    current = [
        by_month[f"{year}-{m:02d}"].current.acts if f"{year}-{m:02d}" in by_month else 0
        for m in range(1, 13)
    ]
    previous = [
        by_month[f"{year}-{m:02d}"].previous.acts if f"{year}-{m:02d}" in by_month else 0
        for m in range(1, 13)
    ]
    shown_months = 12 if year < today.year else today.month
    total = headline.total
    expertise = next(
        (r.current.acts for r in parts["act_type"].rows if r.keys["act_type"] == "teleexpertise"), 0
    )
    csv_params = params | {"format": "csv", "sep": ";"}
    api = request.app.router
    context: dict[str, Any] = {
        "year": year,
        "years": list(range(today.year, FIRST_YEAR - 1, -1)),
        "last": last,
        "partial": last < date(year, 12, 31),
        "chosen": chosen,
        "options": {
            "departement": sorted(departements.items()),
            "categorie": list(categories.items()),
            "specialite": sorted(specialties.items(), key=lambda kv: kv[1]),
            "type": list(act_types.items()),
        },
        "total": total,
        "growth": total.growth,
        "expertise_share": expertise / total.current.acts if total.current.acts else None,
        "hours": total.current.duration_seconds / 3600,
        "charts": {
            "monthly": charts.line_chart(
                f"Actes par mois, {year} et {year - 1}",
                MONTHS,
                [
                    charts.Series(str(year), current[:shown_months], "current"),
                    charts.Series(str(year - 1), previous[:shown_months], "previous"),
                ],
            ),
            "history": charts.column_chart(
                f"Actes par année depuis {FIRST_YEAR}"
                + (
                    f" ({today.year} jusqu'au {today.day}/{today.month})"
                    if year == today.year
                    else ""
                ),
                [
                    charts.Bar(str(r.keys["year"]), r.current.acts)
                    for r in history.rows
                    if r.current.acts
                ],
            ),
            "departement": charts.bar_chart(
                "Actes par département", _bars(parts["departement"], "departement", departements)
            ),
            "facility_category": charts.bar_chart(
                "Actes par catégorie d'établissement",
                _bars(parts["facility_category"], "facility_category", categories),
            ),
            "specialty": charts.bar_chart(
                "Actes par spécialité", _bars(parts["specialty"], "specialty", specialties)
            ),
            "act_type": charts.bar_chart(
                "Actes par type d'acte", _bars(parts["act_type"], "act_type", act_types)
            ),
        },
        "number": charts.number,
        "downloads": [
            (
                "Tableau mois × département × catégorie (CSV)",
                URL(str(api["api_stats_acts"].url_for())).with_query(
                    csv_params | {"group_by": "month,departement,facility_category"}
                ),
            ),
            (
                "Rapport mensuel : téléconsultations, téléexpertises, patients, professionnels (CSV)",
                URL(str(api["api_stats_monthly"].url_for())).with_query(csv_params),
            ),
            (
                "Version publiable du tableau (effectifs < 11 masqués)",
                URL(str(api["api_stats_acts"].url_for())).with_query(
                    csv_params
                    | {"group_by": "month,departement,facility_category", "publication": "1"}
                ),
            ),
        ],
    }
    return render(request, "statistics.html", context)
