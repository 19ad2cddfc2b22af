"""FINESS import from lines written to the published etalab format: the reader, the plan,
the write, the CLI."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from telmi import finess
from telmi.cli import main
from telmi.context import Context
from telmi.db import Database
from telmi.demo import FACILITIES, finess_for, with_check_digit
from telmi.errors import ValidationError
from telmi.models import (
    AuditEvent,
    Departement,
    Facility,
    FacilityCategory,
    FinessImport,
    Region,
)

from .factories import NOW, make_facility

HEADER = "finess;etalab;100;2026-06-01"


def number(dep: str, i: int) -> str:
    """A FINESS number of `dep` with its key (the letter of 2A or 9A read as 0)."""
    prefix = dep if dep[1].isdigit() else dep[0] + "0"
    return dep + with_check_digit(f"{prefix}{500_000 + i:06d}")[2:]


def structure(
    nofinesset: str,
    *,
    rs: str = "EHPAD LES TILLEULS",
    rslongue: str = "",
    dep: str = "21",
    libdep: str = "COTE D OR",
    cat: str = "500",
    lib: str = "Etablissement d'hébergement pour personnes âgées dépendantes",
    routing: str = "21000 DIJON",
    phone: str = "0380000000",
    ej: str = "",
    voie: str = "DE LA PAIX",
    datemaj: str = "2026-05-01",
) -> list[str]:
    """The 32 cells of a `structureet` line, in the published order."""
    cells = dict.fromkeys(finess.STRUCTURE_CELLS, "")
    cells |= {
        "structureet": "structureet",
        "nofinesset": nofinesset,
        "nofinessej": ej,
        "rs": rs,
        "rslongue": rslongue,
        "numvoie": "12",
        "typvoie": "RUE",
        "voie": voie,
        "lieuditbp": "BP 5",
        "commune": "231",
        "departement": dep,
        "libdepartement": libdep,
        "ligneacheminement": routing,
        "telephone": phone,
        "categetab": cat,
        "libcategetab": lib,
        "siret": "26210001100019",
        "dateouv": "1990-01-01",
        "datemaj": datemaj,
    }
    return list(cells.values())


def geolocation(nofinesset: str, x: float, y: float) -> list[str]:
    source = "1,ATLASANTE,100,IGN,BD_ADRESSE,V2.2,LAMBERT_93"
    return ["geolocalisation", nofinesset, f"{x:.1f}", f"{y:.1f}", source, "2026-05-01"]


def extract_bytes(*rows: list[str], encoding: str = "utf-8", tail: str = "") -> bytes:
    out = io.StringIO()
    out.write(HEADER + "\n")
    csv.writer(out, delimiter=";", lineterminator="\n").writerows(rows)
    return (out.getvalue() + tail).encode(encoding)


def read(*rows: list[str], tail: str = "", strict: bool = False) -> finess.Extract:
    return finess.read_extract(extract_bytes(*rows, tail=tail), filename="e.csv", strict=strict)


# --- numbers and coordinates ------------------------------------------------------------------


def test_check_digit_on_published_numbers() -> None:
    for published in ("210780581", "750712184", "690781810", "250000015", "330781196"):
        assert finess.finess_valid(published), published
        wrong = published[:8] + str((int(published[8]) + 1) % 10)
        assert not finess.finess_valid(wrong)
    assert not finess.finess_valid("21078058")  # 8 characters
    assert not finess.finess_valid("2107805811")
    assert not finess.finess_valid("2C0000014")
    assert finess.finess_valid(number("2A", 14)) and finess.finess_valid(number("9A", 3))
    # Demo and test factories' numbers pass the same check.
    assert all(finess.finess_valid(finess_for(dep, i)) for i, (dep, *_) in enumerate(FACILITIES))


def test_lambert93_to_wgs84() -> None:
    latitude, longitude = finess.lambert93_to_wgs84(700_000, 6_600_000)  # the projection's origin
    assert latitude == pytest.approx(46.5, abs=1e-9) and longitude == pytest.approx(3.0, abs=1e-9)
    # Paris, Notre-Dame: about (652 469, 6 862 035) in Lambert 93.
    latitude, longitude = finess.lambert93_to_wgs84(652_469.02, 6_862_035.26)
    assert latitude == pytest.approx(48.8566, abs=1e-4)
    assert longitude == pytest.approx(2.3522, abs=1e-4)
    for lat, lon in ((42.7, 9.45), (51.05, 2.37), (43.3, -1.5), (47.3220, 5.0415)):
        back = finess.lambert93_to_wgs84(*finess.wgs84_to_lambert93(lat, lon))
        assert back == pytest.approx((lat, lon), abs=1e-9)


# --- the reader -------------------------------------------------------------------------------


def test_quoting_doubled_quotes_and_semicolons() -> None:
    n = number("21", 1)
    cells = structure(n, rslongue='Foyer "Les Lilas" ; annexe', rs="FOYER")
    raw = extract_bytes(cells)
    assert b'"Foyer ""Les Lilas"" ; annexe"' in raw  # written as the published files quote
    [site] = finess.read_extract(raw).sites
    assert site.name == 'Foyer "Les Lilas" ; annexe'
    assert site.address == "12 RUE DE LA PAIX BP 5"
    assert (site.postcode, site.commune) == ("21000", "DIJON")


def test_latin1_file_and_bom() -> None:
    n = number("21", 1)
    old = extract_bytes(structure(n, rs="EHPAD SAINTE-CÉCILE"), encoding="latin-1")
    extract = finess.read_extract(old)
    assert extract.encoding == "latin-1"
    assert extract.sites[0].name == "EHPAD SAINTE-CÉCILE"
    bom = b"\xef\xbb\xbf" + extract_bytes(structure(n, rs="EHPAD SAINTE-CÉCILE"))
    extract = finess.read_extract(bom)
    assert extract.encoding == "utf-8" and extract.sites[0].name == "EHPAD SAINTE-CÉCILE"


def test_geolocation_lines_converted() -> None:
    n = number("21", 1)
    x, y = finess.wgs84_to_lambert93(47.3220, 5.0415)  # Dijon
    [site] = read(structure(n), geolocation(n, x, y)).sites
    assert site.latitude == pytest.approx(47.3220, abs=1e-4)
    assert site.longitude == pytest.approx(5.0415, abs=1e-4)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"nofinesset;rs\n210780581;CHU\n",
        b"\x00\x01\x02",
        b"finess;autre;1\n",
        "finess;etalab;100;2026-06-01\n".encode("utf-16"),  # a wrong encoding
    ],
)
def test_not_an_extract(data: bytes) -> None:
    with pytest.raises(ValidationError, match="pas un extrait FINESS.*ligne 1"):
        finess.read_extract(data)


def test_an_extract_without_establishments_is_refused() -> None:
    with pytest.raises(ValidationError, match="aucun établissement"):
        finess.read_extract(extract_bytes())  # would flag every facility as closed


def test_bad_lines_reported_with_their_numbers() -> None:
    good, bad_key = number("21", 1), number("21", 2)
    bad_key = bad_key[:8] + str((int(bad_key[8]) + 1) % 10)
    truncated = ";".join(structure(number("21", 4)))[:60]
    extract = read(
        structure(good),  # line 2
        structure(bad_key),  # line 3
        structure(number("21", 3))[:20],  # line 4: 20 cells
        structure(good),  # line 5: twice
        geolocation("123", 1.0, 2.0),  # line 6
        tail=truncated,  # line 7, cut
    )
    assert [s.finess for s in extract.sites] == [good]
    assert [m.line for m in extract.malformed] == [3, 4, 5, 6, 7]
    messages = [str(m) for m in extract.malformed]
    assert "ligne 3 : numéro FINESS invalide" in messages[0]
    assert "20 champs au lieu de 32" in messages[1]
    assert "en double" in messages[2]
    assert messages[4].startswith("ligne 7 : ")
    with pytest.raises(ValidationError, match="ligne 3 : numéro FINESS invalide"):
        read(structure(good), structure(bad_key), strict=True)
    with pytest.raises(ValidationError, match="ligne 3 : "):
        read(structure(good), tail=truncated, strict=True)


def test_unclosed_quote_at_the_end_is_a_bad_line() -> None:
    data = extract_bytes(structure(number("21", 1))) + b'structureet;"210000'
    extract = finess.read_extract(data)
    assert len(extract.sites) == 1 and [m.line for m in extract.malformed] == [3]


# --- plan and apply ---------------------------------------------------------------------------


async def _import(db: Database, data: bytes, *, at: datetime = NOW) -> finess.Plan:
    extract = finess.read_extract(data, filename="etalab.csv")
    async with db.write() as session:
        planned = await finess.plan(session, extract, now=at)
        await finess.apply(session, Context(None, at), planned)
    return planned


async def _facilities(db: Database) -> dict[str, Facility]:
    async with db.read() as session:
        return {f.finess: f for f in (await session.scalars(select(Facility))).all()}


def _first_extract() -> bytes:
    dijon = finess.wgs84_to_lambert93(47.3220, 5.0415)
    return extract_bytes(
        structure(number("21", 1), rslongue="EHPAD Les Tilleuls", ej=number("21", 900)),
        structure(number("21", 2), rs="MSP MONTBARD", cat="603", lib="Maison de santé"),
        structure(
            number("25", 3), rs="CH PONTARLIER", cat="355", dep="25", routing="25300 PONTARLIER"
        ),
        structure(number("39", 4), rs="MAS", cat="255", dep="39", routing="39000 LONS"),
        structure(number("21", 5), rs="PHARMACIE", cat="620", lib="Pharmacie d'Officine"),
        structure(number("21", 6), rs="LABO", cat="611", lib="Laboratoire de Biologie Médicale"),
        structure(number("21", 7), rs="LABO 2", cat="611", lib="Laboratoire de Biologie Médicale"),
        structure(
            number("9A", 8),
            rs="EHPAD BASSE-TERRE",
            dep="9A",
            libdep="GUADELOUPE",
            routing="97100 BASSE TERRE CEDEX",
        ),
        structure(
            number("2A", 9),
            rs="CH AJACCIO",
            cat="355",
            dep="2A",
            libdep="CORSE DU SUD",
            routing="20000 AJACCIO",
        ),
        geolocation(number("21", 1), *dijon),
    )


async def test_import_creates_then_a_second_run_changes_nothing(db: Database) -> None:
    planned = await _import(db, _first_extract())
    counts = (len(planned.new), len(planned.changed), planned.unchanged, len(planned.absent))
    assert counts == (6, 0, 0, 0)
    assert dict(planned.skipped_categories) == {"620": 1, "611": 2}
    assert planned.malformed == []

    sites = await _facilities(db)
    ehpad = sites[number("21", 1)]
    assert ehpad.name == "EHPAD Les Tilleuls" and ehpad.category is FacilityCategory.NURSING_HOME
    assert ehpad.finess_category_code == "500" and ehpad.finess_category_label.startswith("Etab")
    assert ehpad.legal_entity_finess == number("21", 900)
    assert (ehpad.address, ehpad.postcode, ehpad.commune) == (
        "12 RUE DE LA PAIX BP 5",
        "21000",
        "DIJON",
    )
    assert (ehpad.phone, ehpad.siret) == ("0380000000", "26210001100019")
    assert ehpad.finess_updated_on == date(2026, 5, 1)
    assert ehpad.latitude == pytest.approx(47.3220, abs=1e-4)
    assert ehpad.longitude == pytest.approx(5.0415, abs=1e-4)
    assert ehpad.is_active and ehpad.video_notes == "" and ehpad.finess_closed_at is None
    assert sites[number("21", 2)].category is FacilityCategory.HEALTH_CENTRE
    assert sites[number("25", 3)].category is FacilityCategory.HOSPITAL
    assert sites[number("39", 4)].category is FacilityCategory.DISABILITY_FACILITY
    assert sites[number("9A", 8)].commune == "BASSE TERRE"
    assert sites[number("9A", 8)].latitude is None

    async with db.read() as session:
        deps = {
            d.code: (d.name, code)
            for d, code in (
                await session.execute(select(Departement, Region.code).join(Departement.region))
            ).all()
        }
        assert deps["9A"] == ("Guadeloupe", "01")
        assert deps["2A"] == ("Corse-du-Sud", "94")
        assert deps["21"] == ("Côte-d'Or", "27")
        [record] = (await session.scalars(select(FinessImport))).all()
        assert record.summary["new"] == 6 and record.summary["skipped"]["category"] == {
            "611": 2,
            "620": 1,
        }
        assert set(record.summary["created_departements"]) == {"21", "25", "39", "9A", "2A"}
        actions = (await session.scalars(select(AuditEvent.action))).all()
        assert actions == ["finess.import"]

    again = await _import(db, _first_extract())
    assert (len(again.new), len(again.changed), again.unchanged, len(again.absent)) == (0, 0, 6, 0)
    assert again.writes_nothing
    after = await _facilities(db)
    assert {n: f.updated_at for n, f in after.items()} == {
        n: f.updated_at for n, f in sites.items()
    }


async def test_a_newer_extract_flags_a_closed_site_and_names_changed_fields(
    db: Database,
) -> None:
    await _import(db, _first_extract())
    async with db.write() as session:  # what an admin typed stays
        facility = await session.scalar(select(Facility).where(Facility.finess == number("21", 1)))
        assert facility is not None
        facility.video_notes, facility.is_active = "Salle 2, écran 27 pouces", False

    later = NOW + timedelta(days=30)
    newer = extract_bytes(
        structure(
            number("21", 1), rslongue="EHPAD Les Tilleuls", ej=number("21", 900), phone="0380999999"
        ),
        structure(number("21", 2), rs="MSP MONTBARD", cat="603", lib="Maison de santé"),
        structure(number("39", 4), rs="MAS", cat="255", dep="39", routing="39000 LONS"),
        structure(
            number("9A", 8),
            rs="EHPAD BASSE-TERRE",
            dep="9A",
            libdep="GUADELOUPE",
            routing="97100 BASSE TERRE CEDEX",
        ),
        structure(
            number("2A", 9),
            rs="CH AJACCIO",
            cat="355",
            dep="2A",
            libdep="CORSE DU SUD",
            routing="20000 AJACCIO",
        ),
    )
    planned = await _import(db, newer, at=later)
    by_finess = {c.finess: c.fields for c in planned.changed}
    # The coordinates went too: this extract has no geolocation line.
    assert by_finess == {number("21", 1): ("phone", "latitude", "longitude")}
    assert [a.finess for a in planned.absent] == [number("25", 3)]
    assert planned.unchanged == 4

    sites = await _facilities(db)
    assert len(sites) == 6  # none deleted
    closed = sites[number("25", 3)]
    assert closed.finess_closed_at is not None and closed.name == "CH PONTARLIER"
    kept = sites[number("21", 1)]
    assert kept.phone == "0380999999"
    assert (kept.video_notes, kept.is_active) == ("Salle 2, écran 27 pouces", False)

    # Flagged once; back in a later extract, the flag is cleared.
    assert len((await _import(db, newer, at=later)).absent) == 0
    back = await _import(db, _first_extract(), at=later + timedelta(days=1))
    reopened = {c.finess: c.fields for c in back.changed}
    assert reopened[number("25", 3)] == ("finess_closed_at",)
    assert back.reopened == 1
    assert (await _facilities(db))[number("25", 3)].finess_closed_at is None


async def test_region_and_departement_filters(db: Database) -> None:
    other = await make_facility(db, departement="21")  # in scope, not in the extract
    data = _first_extract()
    async with db.read() as session:
        extract = finess.read_extract(data)
        region = await finess.plan(session, extract, region="27", now=NOW)
        deps = await finess.plan(session, extract, departements=["25", "9a"], now=NOW)
        both = await finess.plan(session, extract, region="27", departements=["39"], now=NOW)
        with pytest.raises(ValidationError, match="région inconnue"):
            await finess.plan(session, extract, region="42", now=NOW)
    assert sorted(s["finess"] for s in region.new) == sorted(
        [number("21", 1), number("21", 2), number("25", 3), number("39", 4)]
    )
    assert region.skipped_departement == 2 and dict(region.skipped_categories) == {
        "620": 1,
        "611": 2,
    }
    assert [a.finess for a in region.absent] == [other.finess]
    assert sorted(s["finess"] for s in deps.new) == sorted([number("25", 3), number("9A", 8)])
    assert deps.absent == []  # 21 is out of this scope
    assert [s["finess"] for s in both.new] == [number("39", 4)]
    async with db.read() as session:  # a plan writes nothing
        assert await session.scalar(select(func.count()).select_from(FinessImport)) == 0


# --- the command ------------------------------------------------------------------------------


@pytest.fixture
def cli_env(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> str:
    monkeypatch.setenv("TELMI_DATABASE_URL", database_url)
    monkeypatch.setenv("TELMI_DATA_DIR", str(tmp_path))
    return database_url


async def _count(url: str, model: type) -> int:
    database = Database(url)
    try:
        async with database.read() as session:
            return int(await session.scalar(select(func.count()).select_from(model)) or 0)
    finally:
        await database.dispose()


def test_cli_end_to_end(cli_env: str, tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio
    from pathlib import Path

    folder = Path(str(tmp_path))
    bad = number("21", 20)[:8] + str((int(number("21", 20)[8]) + 1) % 10)
    many_bad = [structure(number("21", 100 + i))[:5] for i in range(22)]
    path = folder / "etalab-cs1100507.csv"
    good = _first_extract()
    path.write_bytes(good + extract_bytes(structure(bad), *many_bad).split(b"\n", 1)[1])

    assert main(["import-finess", str(path), "--region", "27", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 nouveaux établissements" in out
    assert "rien n'a été écrit" in out
    assert "23 lignes mal formées" in out
    assert "ligne 12 : numéro FINESS invalide" in out
    assert "ligne 13 : 5 champs au lieu de 32" in out
    assert "… et 3 autres" in out  # 20 listed
    assert (
        "3 ignorés pour leur catégorie (611 Laboratoire de Biologie Médicale : 2, "
        "620 Pharmacie d'Officine : 1)"
    ) in out
    assert "2 ignorés hors des départements choisis" in out
    assert asyncio.run(_count(cli_env, Facility)) == 0

    assert main(["import-finess", str(path), "--departement", "21,25", "--strict"]) == 1
    assert "ligne 12" in capsys.readouterr().err
    assert asyncio.run(_count(cli_env, Facility)) == 0
    assert asyncio.run(_count(cli_env, FinessImport)) == 0

    assert main(["import-finess", str(path), "--departement", "21,25"]) == 0
    out = capsys.readouterr().out
    assert "3 nouveaux établissements" in out and "Import enregistré." in out
    assert asyncio.run(_count(cli_env, Facility)) == 3
    assert main(["import-finess", str(path), "--departement", "21,25"]) == 0
    out = capsys.readouterr().out
    assert "3 inchangés" in out and "aucun changement" in out

    big = folder / "big.csv"
    big.write_bytes(
        extract_bytes(*(structure(number("21", 1000 + i), cat="620") for i in range(10_000)))
    )
    assert main(["import-finess", str(big), "--dry-run"]) == 0
    assert "10\u202f000 lignes lues…" in capsys.readouterr().out

    not_finess = folder / "autre.csv"
    not_finess.write_text("nom;prénom\n")
    assert main(["import-finess", str(not_finess)]) == 1
    assert "pas un extrait FINESS (ligne 1" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_finess(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TELMI_DATA_DIR", str(tmp_path))
    assert main(["bench", "finess", "--lines", "2000"]) == 0
    out = capsys.readouterr().out
    assert "lines/s" in out and "0 changed, 0 new" in out
