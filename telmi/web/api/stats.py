"""JSON and CSV: act statistics and the monthly report, for regional teams and admins.

Aggregates only. CSV is UTF-8 with a BOM (spreadsheet software then reads the accents
right), comma-separated by default; `sep=;` gives the French spreadsheet dialect, with
decimal commas. The CSV names facility categories, act types and specialties in French, as
the pages do; the JSON keeps their codes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from aiohttp import web
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from telmi import stats
from telmi.keys import DB, SETTINGS
from telmi.labels import label
from telmi.models import ActType, FacilityCategory, Role, Specialty
from telmi.stats import ActStatsQuery, Dimension, GroupKey, MonthlyReportQuery
from telmi.web.access import request_context, roles
from telmi.web.api.spec import Out, endpoint

READERS = (Role.REGIONAL, Role.ADMIN)
CSV_HEADERS = {
    "year": "annee",
    "quarter": "trimestre",
    "month": "mois",
    "week": "semaine",
    "region": "region",
    "departement": "departement",
    "facility_category": "categorie_etablissement",
    "facility": "finess_etablissement",
    "specialty": "specialite",
    "act_type": "type_acte",
    "acts": "actes",
    "patients": "patients",
    "duration_seconds": "duree_minutes",
    "previous_acts": "actes_annee_precedente",
    "previous_patients": "patients_annee_precedente",
    "growth": "evolution_pct",
    "masked": "masque",
}


def _cell(name: str, value: Any, sep: str, threshold: int | None) -> str:
    if value is None:
        return f"<{threshold}" if threshold and name in ("acts", "patients") else ""
    if name == "masked":
        return "oui" if value else ""
    if name == "duration_seconds":
        value = round(value / 60)
    if name == "growth":
        text = f"{value * 100:.1f}"
        return text.replace(".", ",") if sep == ";" else text
    return str(value)


async def _in_french(session: AsyncSession, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """CSV rows with the categories, act types and specialties named as the pages name them
    (« EHPAD », « Téléconsultation », « Dermatologie »), not by their stored codes; the
    JSON keeps the codes, which the filters take."""
    names: dict[str, dict[str, str]] = {
        "facility_category": {c.value: label(c) for c in FacilityCategory},
        "act_type": {t.value: label(t) for t in ActType},
    }
    if any(row.get("specialty") is not None for row in rows):
        found = await session.execute(select(Specialty.code, Specialty.name))
        names["specialty"] = {str(code): str(name) for code, name in found}
    return [
        row
        | {
            key: known.get(str(row[key]), str(row[key]))
            for key, known in names.items()
            if row.get(key) is not None
        }
        for row in rows
    ]


def csv_response(
    columns: Sequence[str],
    rows: Iterable[dict[str, Any]],
    *,
    sep: str,
    filename: str,
    threshold: int | None = None,
) -> web.Response:
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, delimiter=sep, lineterminator="\r\n")
    writer.writerow([CSV_HEADERS.get(c, c) for c in columns])
    for row in rows:
        writer.writerow([_cell(c, row.get(c), sep, threshold) for c in columns])
    return web.Response(
        body=out.getvalue().encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _note(threshold: int | None, masked: int) -> dict[str, Any] | None:
    if threshold is None:
        return None
    return {
        "threshold": threshold,
        "masked_rows": masked,
        "message": (
            f"Secret statistique : les effectifs de 1 à {threshold - 1} sont masqués, "
            "ainsi que la durée et l'évolution qui les révéleraient. Les totaux incluent "
            "les cases masquées."
        ),
    }


class StatsPeriod(Out):
    start: date = Field(alias="from")
    end: date = Field(alias="to", description="inclusive")


class StatsRow(Out):
    """A group: its keys (the ones of group_by), then the measures; null where masked"""

    year: str | None = Field(None, examples=["2025"])
    quarter: str | None = Field(None, examples=["2025-T1"])
    month: str | None = Field(None, examples=["2025-01"])
    week: str | None = Field(None, examples=["2025-S03"])
    region: str | None = None
    departement: str | None = None
    facility_category: FacilityCategory | None = None
    facility: str | None = Field(None, description="FINESS")
    specialty: str | None = None
    act_type: ActType | None = None
    acts: int | None
    patients: int | None = Field(None, description="distinct patients (with measures=patients)")
    duration_seconds: int | None = Field(None, description="with measures=duration")
    previous_acts: int | None = Field(description="the same period a year before")
    previous_patients: int | None = None
    growth: float | None = Field(description="on the year before; 0.5 = +50 %")
    masked: bool = Field(description="a count of this row is masked")


class StatsSuppression(Out):
    threshold: int
    masked_rows: int
    message: str


class ActStats(Out):
    """Aggregates per group, beside the same period a year before"""

    period: StatsPeriod
    previous_period: StatsPeriod
    group_by: list[GroupKey]
    filters: dict[Dimension, list[str]]
    rows: list[StatsRow]
    total: StatsRow
    suppression: StatsSuppression | None = Field(description="with publication or threshold")


class ReportRow(Out):
    month: str = Field(examples=["2025-01"])
    teleconsultations: int | None
    patients_teleconsultation: int | None
    teleexpertises: int | None
    patients_teleexpertise: int | None
    professionnels_requerants: int | None
    professionnels_requis: int | None


class ReportSuppression(Out):
    threshold: int
    masked_cells: int
    message: str


class MonthlyReport(Out):
    """One row per month"""

    period: StatsPeriod
    filters: dict[Dimension, list[str]]
    rows: list[ReportRow]
    suppression: ReportSuppression | None = Field(description="with publication or threshold")


def _json_or_csv(model: str, description: str) -> dict[str, Any]:
    return {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}},
        "text/csv": {
            "schema": {"type": "string", "description": description},
        },
    }


CSV = "with format=csv: UTF-8 with a BOM, as an attachment; sep=; for decimal commas"


def _today(request: web.Request) -> date:
    return request_context(request).now.astimezone(request.app[SETTINGS].tz).date()


@roles(*READERS)
@endpoint(
    "Act counts, distinct patients and duration per group, with growth on a year before",
    "actStats",
    query=ActStatsQuery,
    response=ActStats,
    response_content=_json_or_csv("ActStats", CSV),
)
async def acts_stats(request: web.Request, query: ActStatsQuery) -> dict[str, Any] | web.Response:
    asked, threshold = stats.build_query(query, today=_today(request)), query.masking
    async with request.app[DB].read() as session:
        result = await stats.acts(session, asked)
    rows, masked = stats.records(result, threshold)
    *body, total = rows
    if query.format == "csv":
        columns = [*asked.group_by, *total]
        name = f"telemedecine-actes-{asked.start}-{asked.last_day}.csv"
        async with request.app[DB].read() as session:
            body = await _in_french(session, body)
        return csv_response(columns, body, sep=query.sep, filename=name, threshold=threshold)
    return {
        "period": {"from": str(asked.start), "to": str(asked.last_day)},
        "previous_period": {
            "from": str(asked.year_before().start),
            "to": str(asked.year_before().last_day),
        },
        "group_by": list(asked.group_by),
        "filters": {k: list(v) for k, v in asked.filters.items()},
        "rows": body,
        "total": total,
        "suppression": _note(threshold, masked),
    }


@roles(*READERS)
@endpoint(
    "The monthly report regional agencies send upward",
    "monthlyReport",
    query=MonthlyReportQuery,
    response=MonthlyReport,
    response_content=_json_or_csv("MonthlyReport", CSV),
)
async def monthly_report(
    request: web.Request, query: MonthlyReportQuery
) -> dict[str, Any] | web.Response:
    asked, threshold = stats.build_query(query, today=_today(request)), query.masking
    async with request.app[DB].read() as session:
        rows = await stats.monthly_report(session, asked)
    masked = 0
    if threshold is not None:
        for row in rows:
            for column in stats.REPORT_COLUMNS:
                if 0 < row[column] < threshold:
                    row[column], masked = None, masked + 1
    if query.format == "csv":
        return csv_response(
            ["month", *stats.REPORT_COLUMNS],
            rows,
            sep=query.sep,
            filename=f"telemedecine-rapport-mensuel-{asked.start}-{asked.last_day}.csv",
            threshold=threshold,
        )
    note = _note(threshold, masked)
    if note is not None:
        note["masked_cells"] = note.pop("masked_rows")
    return {
        "period": {"from": str(asked.start), "to": str(asked.last_day)},
        "filters": {k: list(v) for k, v in asked.filters.items()},
        "rows": rows,
        "suppression": note,
    }
