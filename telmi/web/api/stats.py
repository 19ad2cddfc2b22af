"""JSON and CSV: act statistics and the monthly report, for regional teams and admins.

Aggregates only. CSV is UTF-8 with a BOM (spreadsheet software then reads the accents
right), comma-separated by default; `sep=;` gives the French spreadsheet dialect, with
decimal commas.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from aiohttp import web

from telmi import stats
from telmi.errors import ValidationError
from telmi.keys import DB, SETTINGS
from telmi.models import Role
from telmi.web.access import request_context, roles
from telmi.web.api import spec

READERS = (Role.REGIONAL, Role.ADMIN)
OUTPUT_PARAMS = ("format", "sep", "publication", "threshold")
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


def _threshold(request: web.Request) -> int | None:
    q = request.query
    if "threshold" in q:
        raw = q["threshold"]
        if not raw.isdigit() or not 2 <= int(raw) <= 1000:
            raise ValidationError("« threshold » : un entier de 2 à 1000.", field="threshold")
        return int(raw)
    if q.get("publication") in ("1", "true", "oui"):
        return stats.DEFAULT_THRESHOLD
    if q.get("publication", "0") not in ("0", "false", "non"):
        raise ValidationError("« publication » vaut 1 ou 0.", field="publication")
    return None


def _format(request: web.Request) -> tuple[str, str]:
    fmt, sep = request.query.get("format", "json"), request.query.get("sep", ",")
    if fmt not in ("json", "csv"):
        raise ValidationError("« format » vaut json ou csv.", field="format")
    if sep not in (",", ";"):
        raise ValidationError("« sep » vaut , ou ;", field="sep")
    return fmt, sep


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


@roles(*READERS)
async def acts_stats(request: web.Request) -> web.Response:
    threshold, (fmt, sep) = _threshold(request), _format(request)
    today = request_context(request).now.astimezone(request.app[SETTINGS].tz).date()
    query = stats.parse(request.query, today=today, extra=OUTPUT_PARAMS)
    async with request.app[DB].read() as session:
        result = await stats.acts(session, query)
    rows, masked = stats.records(result, threshold)
    *body, total = rows
    if fmt == "csv":
        columns = [*query.group_by, *total]
        name = f"telemedecine-actes-{query.start}-{query.last_day}.csv"
        return csv_response(columns, body, sep=sep, filename=name, threshold=threshold)
    return web.json_response(
        {
            "period": {"from": str(query.start), "to": str(query.last_day)},
            "previous_period": {
                "from": str(query.year_before().start),
                "to": str(query.year_before().last_day),
            },
            "group_by": list(query.group_by),
            "filters": {k: list(v) for k, v in query.filters.items()},
            "rows": body,
            "total": total,
            "suppression": _note(threshold, masked),
        }
    )


@roles(*READERS)
async def monthly_report(request: web.Request) -> web.Response:
    threshold, (fmt, sep) = _threshold(request), _format(request)
    today = request_context(request).now.astimezone(request.app[SETTINGS].tz).date()
    query = stats.parse(request.query, today=today, extra=OUTPUT_PARAMS)
    if query.group_by:
        raise ValidationError("Le rapport mensuel est groupé par mois.", field="group_by")
    async with request.app[DB].read() as session:
        rows = await stats.monthly_report(session, query)
    masked = 0
    if threshold is not None:
        for row in rows:
            for column in stats.REPORT_COLUMNS:
                if 0 < row[column] < threshold:
                    row[column], masked = None, masked + 1
    if fmt == "csv":
        return csv_response(
            ["month", *stats.REPORT_COLUMNS],
            rows,
            sep=sep,
            filename=f"telemedecine-rapport-mensuel-{query.start}-{query.last_day}.csv",
            threshold=threshold,
        )
    note = _note(threshold, masked)
    if note is not None:
        note["masked_cells"] = note.pop("masked_rows")
    return web.json_response(
        {
            "period": {"from": str(query.start), "to": str(query.last_day)},
            "filters": {k: list(v) for k, v in query.filters.items()},
            "rows": rows,
            "suppression": note,
        }
    )


_PERIOD_PARAMS = [
    spec.query("from", {"type": "string", "format": "date"}, "first day (default: 1 January)"),
    spec.query("to", {"type": "string", "format": "date"}, "last day, inclusive (default: today)"),
    *(
        spec.query(name, {"type": "string"}, "filter: comma-separated values")
        for name in stats.DIMENSIONS
    ),
    spec.query("format", {"type": "string", "enum": ["json", "csv"]}),
    spec.query("sep", {"type": "string", "enum": [",", ";"]}, "CSV separator"),
    spec.query("publication", {"type": "string", "enum": ["0", "1"]}, "mask counts below 11"),
    spec.query("threshold", {"type": "integer", "minimum": 2}, "mask counts below this"),
]
_NULLABLE_INT = {"type": ["integer", "null"]}

OPENAPI_SCHEMAS: dict[str, Any] = {
    "StatsRow": {
        "type": "object",
        "description": "group keys (year 2025, quarter 2025-T1, month 2025-01, week 2025-S03, "
        "dimension codes) then the measures; null where masked",
        "required": ["acts", "previous_acts", "growth", "masked"],
        "properties": {
            "acts": _NULLABLE_INT,
            "patients": _NULLABLE_INT,
            "duration_seconds": _NULLABLE_INT,
            "previous_acts": _NULLABLE_INT,
            "previous_patients": _NULLABLE_INT,
            "growth": {
                "type": ["number", "null"],
                "description": "on the year before; 0.5 = +50 %",
            },
            "masked": {"type": "boolean"},
        },
        "additionalProperties": True,
    },
    "Suppression": {
        "type": ["object", "null"],
        "properties": {"threshold": {"type": "integer"}, "message": {"type": "string"}},
    },
}

OPENAPI_PATHS: dict[str, Any] = {
    "/api/stats/acts": {
        "get": spec.fragment(
            "Act counts, distinct patients and duration per group, with growth on a year before",
            "actStats",
            {
                "200": spec.ok(
                    "Aggregates (or CSV with format=csv)",
                    {
                        "type": "object",
                        "required": ["period", "rows", "total"],
                        "properties": {
                            "period": {"type": "object"},
                            "previous_period": {"type": "object"},
                            "group_by": {"type": "array", "items": {"type": "string"}},
                            "filters": {"type": "object"},
                            "rows": {"type": "array", "items": spec.ref("StatsRow")},
                            "total": spec.ref("StatsRow"),
                            "suppression": spec.ref("Suppression"),
                        },
                    },
                ),
                "403": spec.FORBIDDEN,
                "422": spec.error("Unknown grouping, filter or measure; bad dates"),
            },
            params=[
                spec.query(
                    "group_by",
                    {"type": "string"},
                    "comma-separated: one of year, quarter, month, week, and any of "
                    + ", ".join(stats.DIMENSIONS),
                ),
                spec.query("measures", {"type": "string"}, "subset of acts,patients,duration"),
                *_PERIOD_PARAMS,
            ],
        )
    },
    "/api/stats/monthly-report": {
        "get": spec.fragment(
            "The monthly report regional agencies send upward",
            "monthlyReport",
            {
                "200": spec.ok(
                    "One row per month (or CSV with format=csv)",
                    {
                        "type": "object",
                        "required": ["rows"],
                        "properties": {
                            "rows": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "month": {"type": "string"},
                                        **{c: _NULLABLE_INT for c in stats.REPORT_COLUMNS},
                                    },
                                },
                            },
                            "suppression": spec.ref("Suppression"),
                        },
                    },
                ),
                "403": spec.FORBIDDEN,
                "422": spec.error("Bad dates or filters"),
            },
            params=_PERIOD_PARAMS,
        )
    },
}
