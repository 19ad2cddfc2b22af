"""« Statistiques d'activité »: headline numbers, charts and CSV downloads for regional teams.

A year at a time (to date for the current one), beside the same dates a year earlier, with
the filters of the statistics API. Aggregates only; the charts are SVG drawn here, each
with a table of its numbers (for screen readers and copy-paste). The year and the month of
the request's `now` are still running: marked in the tables, the charts and the growth
(which compares the same dates a year earlier), so that a month's first days do not read as
a collapse.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from aiohttp import web
from yarl import URL

from telmi import stats, values
from telmi.errors import ValidationError
from telmi.keys import DB, SETTINGS
from telmi.labels import MONTHS as LONG_MONTHS
from telmi.labels import day_month, label
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
PARTS = {
    "departement": ("Actes par département", "Par département", "Département"),
    "facility_category": (
        "Actes par catégorie d'établissement",
        "Par catégorie d'établissement",
        "Catégorie d'établissement",
    ),
    "specialty": ("Actes par spécialité", "Par spécialité", "Spécialité"),
    "act_type": ("Actes par type d'acte", "Par type d'acte", "Type d'acte"),
}


@dataclass(frozen=True)
class DataRow:
    header: str  # the row's <th scope="row">
    cells: list[str]
    partial: bool = False  # a period still running


@dataclass(frozen=True)
class DataTable:
    """The numbers of a chart, for screen readers and copy-paste."""

    caption: str
    columns: list[str]  # <th scope="col">, the first one over the row headers
    rows: list[DataRow]


def _year(raw: str | None, today: date) -> int:
    if not raw:
        return today.year
    if not raw.isdigit() or not FIRST_YEAR <= int(raw) <= today.year:
        raise ValidationError(f"Année entre {FIRST_YEAR} et {today.year}.", field="annee")
    return int(raw)


def _bars(parts: list[stats.Part]) -> list[charts.Bar]:
    return [charts.Bar(p.name, p.acts, p.previous_acts) for p in parts]


def _growth(current: int, previous: int) -> str:
    if previous <= 0:
        return "—"
    return f"{(current - previous) / previous * 100:+.0f}\u00a0%".replace("-", "\u2212")


def _part_table(
    caption: str, heading: str, parts: list[stats.Part], year: int, same_dates: str
) -> DataTable:
    return DataTable(
        f"{caption}, {year} et {year - 1}{same_dates}",
        [heading, f"Actes {year}", f"Actes {year - 1}", "Évolution"],
        [
            DataRow(
                p.name,
                [
                    charts.number(p.acts),
                    charts.number(p.previous_acts),
                    _growth(p.acts, p.previous_acts),
                ],
            )
            for p in parts
        ],
    )


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
    # The current year and month are still running (today too, to its last day): shown,
    # but marked, so that a month's first days do not read as a collapse.
    partial = year == today.year
    running = today.month - 1 if partial else None
    shown_months = 12 if year < today.year else today.month
    through = day_month(last, year=False)
    same_dates = f" (du 1er janvier au {through})" if partial else ""
    total = seen.total
    csv_params = params | {"format": "csv", "sep": ";"}
    api = request.app.router
    monthly = seen.monthly[:shown_months]
    month_rows = [
        DataRow(
            f"{LONG_MONTHS[m].capitalize()} {year}"
            + (f" — mois en cours (jusqu'au {through})" if m == running else ""),
            [charts.number(now), charts.number(before)],
            partial=m == running,
        )
        for m, (now, before) in enumerate(monthly)
    ]
    history_title = f"Actes par année depuis {FIRST_YEAR}" + (
        f" ({today.year} jusqu'au {through})" if partial else ""
    )
    tables = {
        "monthly": DataTable(
            f"Actes par mois, {year} et {year - 1}"
            + (f" (les deux années jusqu'au {through})" if partial else ""),
            ["Mois", f"Actes {year}", f"Actes {year - 1}"],
            month_rows,
        ),
        "history": DataTable(
            history_title,
            ["Année", "Actes"],
            [
                DataRow(
                    str(y)
                    + (f" — année en cours (jusqu'au {through})" if partial and y == year else ""),
                    [charts.number(acts)],
                    partial=partial and y == year,
                )
                for y, acts in seen.yearly
            ],
        ),
    } | {
        key: _part_table(caption, heading, seen.parts[key], year, same_dates)
        for key, (caption, _, heading) in PARTS.items()
    }
    context: dict[str, Any] = {
        "year": year,
        "years": list(range(today.year, FIRST_YEAR - 1, -1)),
        "last": last,
        "through": through,
        "partial": partial,
        "running_month": LONG_MONTHS[running] if running is not None else None,
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
                    charts.Series(str(year), [m[0] for m in monthly], "current"),
                    charts.Series(str(year - 1), [m[1] for m in monthly], "previous"),
                ],
                partial=running,
            ),
            "history": charts.column_chart(
                history_title,
                [
                    charts.Bar(str(y), acts, partial=partial and y == year)
                    for y, acts in seen.yearly
                ],
            ),
        }
        | {
            key: charts.bar_chart(title, _bars(seen.parts[key]))
            for key, (title, _, _) in PARTS.items()
        },
        "parts": [(key, figcaption) for key, (_, figcaption, _) in PARTS.items()],
        "tables": tables,
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
