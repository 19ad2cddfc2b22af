"""`telmi bench finess`: a national-size FINESS extract, generated in the published format,
read, planned and applied on a scratch SQLite database (the issue's target: 100,000 lines in
under 30 s), then applied again (a second import must change nothing)."""

from __future__ import annotations

import csv
import io
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from telmi import finess
from telmi.bench.common import machine, scratch_database
from telmi.context import Context
from telmi.db import Database
from telmi.demo import with_check_digit

NOW = datetime(2026, 6, 10, 8, 0, tzinfo=UTC)
# Mapped codes most of the time, like the real stock (a third of it is skipped).
CODES = [
    ("500", "Etablissement d'hébergement pour personnes âgées dépendantes"),
    ("500", "Etablissement d'hébergement pour personnes âgées dépendantes"),
    ("603", "Maison de santé (L.6223-3)"),
    ("124", "Centre de Santé"),
    ("355", "Centre Hospitalier (C.H.)"),
    ("255", "Maison d'Accueil Spécialisée (M.A.S.)"),
    ("437", "Foyer d'Accueil Médicalisé pour Adultes Handicapés (F.A.M.)"),
    ("183", "Institut Médico-Educatif (I.M.E.)"),
    ("620", "Pharmacie d'Officine"),
    ("611", "Laboratoire de Biologie Médicale"),
]


def generate(lines: int, seed: int = 14) -> bytes:
    """An extract of `lines` structureet lines and as many geolocalisation lines."""
    rng = random.Random(seed)
    departements = list(finess.DEPARTEMENTS)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(["finess", "etalab", "100", "2026-06-01"])
    geo = []
    for i in range(lines):
        dep = departements[i % len(departements)]
        prefix = dep if dep[1].isdigit() else dep[0] + "0"
        number = with_check_digit(f"{prefix}{i:06d}")
        number = dep + number[2:]  # the letter back: the key reads it as 0
        legal = dep + with_check_digit(f"{prefix}9{i % 100000:05d}")[2:]
        code, label = CODES[rng.randrange(len(CODES))]
        writer.writerow(
            [
                "structureet",
                number,
                legal,
                f"ETABLISSEMENT {i}",
                f'Établissement "{i}" ; site principal',
                "",
                "",
                str(1 + i % 120),
                "RUE",
                f"DE LA PAIX {i % 97}",
                "",
                "BP 12" if i % 7 == 0 else "",
                f"{i % 900:03d}",
                dep,
                finess.DEPARTEMENTS[dep][0].upper(),
                f"{prefix}{i % 1000:03d} COMMUNE {i % 5000}",
                f"03{rng.randrange(10**8):08d}",
                "",
                code,
                label,
                "4301",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "2001-01-01",
                "2001-01-01",
                "2026-05-01",
                "",
            ]
        )
        x, y = finess.wgs84_to_lambert93(43 + rng.random() * 7, -1 + rng.random() * 8)
        geo.append(
            [
                "geolocalisation",
                number,
                f"{x:.1f}",
                f"{y:.1f}",
                "1,ATLASANTE,100,IGN,BD_ADRESSE,V2.2,LAMBERT_93",
                "2026-05-01",
            ]
        )
    writer.writerows(geo)
    return out.getvalue().encode("utf-8")


async def bench_finess(*, lines: int = 100_000) -> bool:
    print(f"FINESS import: {lines} structureet lines (+ geolocation), SQLite; {machine()}")
    with tempfile.TemporaryDirectory(prefix="telmi-bench-finess-") as folder:
        path = Path(folder) / "etalab-cs1100507-stock.csv"
        started = time.perf_counter()
        path.write_bytes(generate(lines))
        print(
            f"  extract generated: {path.stat().st_size / 1e6:.1f} MB in "
            f"{time.perf_counter() - started:.1f} s"
        )
        async with scratch_database("sqlite", None) as url:
            db = Database(url)
            try:
                t0 = time.perf_counter()
                extract = finess.read_extract(path.read_bytes(), filename=path.name)
                t1 = time.perf_counter()
                async with db.write() as session:
                    planned = await finess.plan(session, extract, now=NOW)
                    t2 = time.perf_counter()
                    await finess.apply(session, Context(None, NOW), planned)
                t3 = time.perf_counter()
                total = t3 - t0
                print(
                    f"  read {t1 - t0:.1f} s, plan {t2 - t1:.1f} s, apply {t3 - t2:.1f} s: "
                    f"total {total:.1f} s, {lines / total:,.0f} lines/s; "
                    f"{len(planned.new)} created, "
                    f"{sum(planned.skipped_categories.values())} skipped by category"
                )
                t4 = time.perf_counter()
                again = finess.read_extract(path.read_bytes(), filename=path.name)
                async with db.write() as session:
                    second = await finess.plan(session, again, now=NOW)
                    await finess.apply(session, Context(None, NOW), second)
                print(
                    f"  second import: {time.perf_counter() - t4:.1f} s, "
                    f"{second.unchanged} unchanged, {len(second.changed)} changed, "
                    f"{len(second.new)} new"
                )
            finally:
                await db.dispose()
    ok = total < 30 and second.writes_nothing and not planned.malformed
    print(f"  target under 30 s for 100,000 lines: {'met' if total < 30 else 'MISSED'}")
    if planned.malformed:
        print(f"  generated extract had malformed lines: {planned.malformed[:3]}")
    return ok
