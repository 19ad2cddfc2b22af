"""« Statistiques d'activité »: headline numbers, charts and CSV downloads for regional teams.

A year at a time (to date for the current one), beside the same dates a year earlier, with
the filters of the statistics API. Aggregates only; the charts are SVG drawn here.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp import web
from yarl import URL

from telmi import stats, values
from telmi.errors import ValidationError
from telmi.keys import DB, SETTINGS
from telmi.labels import label
from telmi.models import ActType, FacilityCategory, Role
from telmi.web.access import request_context, roles
from telmi.web.pages import charts
from telmi.web.render import render

FIRST_YEAR = stats.FIRST_YEAR
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


def _bars(parts: list[stats.Part]) -> list[charts.Bar]:
    return [charts.Bar(p.name, p.acts, p.previous_acts) for p in parts]


@roles(Role.REGIONAL, Role.ADMIN)
async def statistics(request: web.Request) -> web.Response:
    today = request_context(request).now.astimezone(request.app[SETTINGS].tz).date()
    year = _year(request.query.get("annee"), today)
    last = min(date(year, 12, 31), today)
    params = {"from": date(year, 1, 1).isoformat(), "to": last.isoformat()}
    chosen = {field: request.query.get(field, "") for field in FILTERS}
    params |= {FILTERS[f]: v for f, v in chosen.items() if v}
    labels = {
        "facility_category": {c.value: label(c) for c in FacilityCategory},
        "act_type": {t.value: label(t) for t in ActType},
    }
    query = stats.build_query(values.parse(stats.ActStatsQuery, params, strict=False), today=today)
    async with request.app[DB].read() as session:
        seen = await stats.year_overview(session, query, labels=labels)
    shown_months = 12 if year < today.year else today.month
    total = seen.total
    csv_params = params | {"format": "csv", "sep": ";"}
    api = request.app.router
    context: dict[str, Any] = {
        "year": year,
        "years": list(range(today.year, FIRST_YEAR - 1, -1)),
        "last": last,
        "partial": last < date(year, 12, 31),
        "chosen": chosen,
        "options": {
            "departement": sorted(seen.names["departement"].items()),
            "categorie": list(labels["facility_category"].items()),
            "specialite": sorted(seen.names["specialty"].items(), key=lambda kv: kv[1]),
            "type": list(labels["act_type"].items()),
        },
        "total": total,
        "growth": total.growth,
        "expertise_share": seen.expertise_share,
        "hours": total.current.duration_seconds / 3600,
        "charts": {
            "monthly": charts.line_chart(
                f"Actes par mois, {year} et {year - 1}",
                MONTHS,
                [
                    charts.Series(
                        str(year), [m[0] for m in seen.monthly[:shown_months]], "current"
                    ),
                    charts.Series(
                        str(year - 1), [m[1] for m in seen.monthly[:shown_months]], "previous"
                    ),
                ],
            ),
            "history": charts.column_chart(
                f"Actes par année depuis {FIRST_YEAR}"
                + (
                    f" ({today.year} jusqu'au {today.day}/{today.month})"
                    if year == today.year
                    else ""
                ),
                [charts.Bar(str(y), acts) for y, acts in seen.yearly],
            ),
            "departement": charts.bar_chart(
                "Actes par département", _bars(seen.parts["departement"])
            ),
            "facility_category": charts.bar_chart(
                "Actes par catégorie d'établissement", _bars(seen.parts["facility_category"])
            ),
            "specialty": charts.bar_chart("Actes par spécialité", _bars(seen.parts["specialty"])),
            "act_type": charts.bar_chart("Actes par type d'acte", _bars(seen.parts["act_type"])),
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
