"""Residents' identity at rest: no name, birth date or INS in clear in the SQLite file or in
a `pg_dump`; key rotation re-seals every row; a ciphertext opens only in its own row."""

from __future__ import annotations

import asyncio
import base64
import re
import sqlite3
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import make_url

from telmi import booking, consent, consultations, patients, rotation
from telmi.cli import main
from telmi.consent import ConsentInput
from telmi.context import Context
from telmi.db import Database, asyncpg_dsn
from telmi.models import (
    Act,
    ActType,
    ConsentGiver,
    ConsentMethod,
    Consultation,
    ConsultationStatus,
    IdentityDocument,
    IdentityStatus,
    Patient,
    Role,
    User,
)
from telmi.vault import Vault, VaultError, generate_key, parse_keys

from .factories import (
    NOW,
    TEST_SECRET,
    VAULT,
    ins_with_key,
    make_facility,
    make_resident,
    make_slot,
    make_specialty,
    make_user,
)

PG_DUMP = Path("/usr/bin/pg_dump")
PARIS = ZoneInfo("Europe/Paris")
QUALIFIED = {  # the factory's strings are refused by the strict model: the enums themselves
    "identity_status": IdentityStatus.QUALIFIED,
    "identity_document": IdentityDocument.IDENTITY_CARD,
}
PEOPLE: list[dict[str, Any]] = [
    {
        "reference": "CH-2024-117",
        "birth_name": "DUPONTEL",
        "first_names": "Héloïse Berthe",
        "used_name": "GARNIER-ROUX",
        "sex": "F",
        "birth_date": "1931-02-27",
        "birthplace": "21231",
        "ins": ins_with_key("2310221231034"),
    },
    {
        "reference": "CH-2024-118",
        "birth_name": "LEFÈVRE",
        "first_names": "Émile Joseph",
        "sex": "M",
        "birth_date": "1929-11-03",
        "birthplace": "21054",
        "ins": ins_with_key("1291121054056"),
    },
]


def _needles(resident: patients.Resident) -> list[str]:
    """What must never be found in clear: each name and first name, the birth date in the
    ways a database or a page writes it, the INS and its 13 digits."""
    assert resident.birth_date is not None and resident.ins is not None
    born = resident.birth_date
    names = [resident.birth_name, resident.used_name, *resident.first_names.split()]
    return [
        *[n for n in names if n],
        born.isoformat(),
        born.strftime("%d/%m/%Y"),
        born.strftime("%Y%m%d"),
        born.strftime("%d%m%Y"),
        resident.ins,
        resident.ins[:13],
    ]


def _libpq(url: str) -> str:
    return asyncpg_dsn(url)


async def _raw_bytes(db: Database) -> bytes:
    """Everything the database holds as stored: the SQLite file and its WAL after a
    checkpoint, or PostgreSQL's dump of the whole database."""
    if db.dialect == "sqlite":
        await db.engine.dispose()  # no pooled connection keeps a snapshot open
        path = Path(str(make_url(db.url).database))
        with sqlite3.connect(path, isolation_level=None) as conn:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        conn.close()
        assert busy == 0
        data = path.read_bytes()
        wal = path.with_name(path.name + "-wal")
        return data + (wal.read_bytes() if wal.exists() else b"")
    done = await asyncio.to_thread(
        subprocess.run,
        [str(PG_DUMP), "--no-owner", "--dbname", _libpq(db.url)],
        capture_output=True,
        check=True,
    )
    return done.stdout


def _in_clear(data: bytes, needle: str) -> bool:
    lowered = data.lower()
    return any(
        form.encode(encoding) in lowered
        for form in {needle, needle.lower()}
        for encoding in ("utf-8", "utf-16-le")
    )


async def _consultation_with_act(db: Database, nurse: User, resident_id: int) -> Act:
    """A teleconsultation that took place, ended by its specialist: the act log's real path."""
    doctor = await make_user(db, Role.SPECIALIST, specialty=await make_specialty(db, "neurologie"))
    slot = await make_slot(db, doctor, NOW + timedelta(hours=1))
    async with db.write() as session:
        booked = await booking.book(
            session,
            Context(nurse, NOW),
            booking.NewBooking(
                slot_id=slot.id, patient_id=resident_id, act_type=ActType.TELECONSULTATION
            ),
        )
    given = ConsentInput(given_by=ConsentGiver.RESIDENT, method=ConsentMethod.ORAL)
    async with db.write() as session:
        await consent.for_booking(session, Context(nurse, NOW), booked.id, given)
    async with db.write() as session:
        consultation = Consultation(
            booking_id=booked.id,
            room_id=f"room-{booked.id}",
            status=ConsultationStatus.IN_PROGRESS,
            started_at=slot.starts_at,
            created_at=NOW,
        )
        session.add(consultation)
    async with db.write() as session:
        await consultations.end(
            session,
            Context(doctor, slot.starts_at + timedelta(minutes=20)),
            consultation.id,
            consultations.Ending(outcome="Avis donné"),
            tz=PARIS,
            vault=VAULT,
        )
    async with db.read() as session:
        act = await session.scalar(select(Act))
    assert act is not None
    return act


async def test_no_name_birth_date_or_ins_is_stored_in_clear(db: Database) -> None:
    nurse = await make_user(db, Role.STAFF, facility=await make_facility(db))
    residents = [await make_resident(db, nurse, **QUALIFIED, **p) for p in PEOPLE]
    residents.append(await make_resident(db, nurse, qualified=True, **QUALIFIED))  # MARTIN
    # An edit seals again: neither the old nor the new identity may be left in clear.
    edited = PEOPLE[1] | {"used_name": "BEAUMONT-LEFÈVRE", "ins": {"value": PEOPLE[1]["ins"]}}
    async with db.write() as session:
        residents[1] = await patients.update_resident(
            session,
            Context(nurse, NOW),
            residents[1].id,
            patients.ResidentInput.model_validate(edited | QUALIFIED),
            vault=VAULT,
            tz=PARIS,
        )
    act = await _consultation_with_act(db, nurse, residents[0].id)

    assert residents[0].ins is not None and residents[0].birth_name == "DUPONTEL"
    assert act.patient_key == patients.ins_digest(VAULT, residents[0].ins)
    act_text = " ".join(str(v) for v in vars(act).values())
    for needle in _needles(residents[0]):
        assert needle not in act_text

    data = await _raw_bytes(db)
    # The reading sees the stored text: the references are in clear, and found.
    for resident in residents:
        assert _in_clear(data, resident.reference)
    leaks = {
        (r.reference, needle)
        for r in residents
        for needle in [*_needles(r), "LEFÈVRE", "BEAUMONT"]
        if _in_clear(data, needle)
    }
    assert leaks == set()


# --- rotation ---------------------------------------------------------------------------------


def _entry(key_id: str, key: bytes) -> str:
    return f"{key_id}:{base64.urlsafe_b64encode(key).decode().rstrip('=')}"


DEV_ENTRY = _entry("dev", VAULT.keys[0][1])  # the key the test app derives, named


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """`telmi` on the test's database, with a TELMI_DATA_KEY of the test's choosing; run in
    a thread (the command runs its own event loop)."""
    monkeypatch.setenv("TELMI_DATABASE_URL", database_url)
    monkeypatch.setenv("TELMI_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TELMI_SECRET_KEY", TEST_SECRET)

    async def run(data_key: str, *args: str) -> int:
        monkeypatch.setenv("TELMI_DATA_KEY", data_key)
        return await asyncio.to_thread(main, list(args))

    return run


async def _rows(db: Database) -> list[Patient]:
    async with db.read() as session:
        return list(await session.scalars(select(Patient).order_by(Patient.id)))


async def _five_residents(db: Database) -> list[patients.Resident]:
    nurse = await make_user(db, Role.STAFF, facility=await make_facility(db))
    made = [await make_resident(db, nurse, **QUALIFIED, **p) for p in PEOPLE]
    for n in range(3):
        made.append(await make_resident(db, nurse, birth_name=f"PERSONNE{n}"))
    return made


async def test_keys_rotate_reseals_every_row_with_the_new_key(
    db: Database, cli: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    made = await _five_residents(db)
    before = {r.id: r.identity for r in await _rows(db)}
    assert {r.key_id for r in await _rows(db)} == {"dev"}
    new = generate_key("k2026")
    ring = f"{new},{DEV_ENTRY}"  # the new key first, the old one after it

    assert await cli(ring, "keys", "rotate", "--batch", "2") == 0
    out = capsys.readouterr().out
    assert re.findall(r"(\d)/5 résidents re-chiffrés", out) == ["2", "4", "5"]
    assert "5 résidents re-chiffrés avec la clé « k2026 »" in out

    rows = await _rows(db)
    assert {r.key_id for r in rows} == {"k2026"}
    assert all(r.identity != before[r.id] for r in rows)
    only_new = Vault(parse_keys(new), TEST_SECRET)
    assert [patients.open_resident(only_new, r) for r in rows] == made
    with pytest.raises(VaultError):
        patients.open_resident(VAULT, rows[0])

    assert await cli(ring, "keys", "rotate") == 0  # idempotent: nothing left to do
    assert "déjà chiffrés avec la clé « k2026 »" in capsys.readouterr().out
    assert {r.id: r.identity for r in await _rows(db)} == {r.id: r.identity for r in rows}


async def test_rotation_stopped_halfway_resumes_where_it_stopped(db: Database) -> None:
    made = await _five_residents(db)
    vault = Vault(parse_keys(f"{generate_key('k2')},{DEV_ENTRY}"), TEST_SECRET)

    def crash(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await rotation.reseal(db, vault, now=NOW, batch=2, progress=crash)
    assert [r.key_id for r in await _rows(db)] == ["k2", "k2", "dev", "dev", "dev"]
    assert await rotation.pending(db, vault) == {"dev": 3}

    seen: list[tuple[int, int]] = []
    assert (
        await rotation.reseal(
            db, vault, now=NOW, batch=2, progress=lambda d, t: seen.append((d, t))
        )
        == 3
    )
    assert seen == [(2, 3), (3, 3)]
    assert [patients.open_resident(vault, r) for r in await _rows(db)] == made


async def test_a_key_removed_before_rotation_stops_it_with_its_id(
    db: Database, cli: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    await _five_residents(db)
    k1 = generate_key("k1")
    assert await cli(k1, "keys", "rotate") == 0  # development: the derived key opens the old rows
    capsys.readouterr()
    before = [(r.key_id, r.identity) for r in await _rows(db)]
    assert {key_id for key_id, _ in before} == {"k1"}
    assert await cli(generate_key("k2"), "keys", "rotate") == 1  # k1 dropped too early
    err = capsys.readouterr().err
    assert "« k1 »" in err and "TELMI_DATA_KEY" in err and "5 résident" in err
    assert [(r.key_id, r.identity) for r in await _rows(db)] == before  # nothing written


def test_keys_generate_prints_an_entry_for_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TELMI_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("TELMI_DATA_KEY", raising=False)
    assert main(["keys", "generate", "--id", "k3"]) == 0
    entry = capsys.readouterr().out.strip()
    [(key_id, key)] = parse_keys(entry)
    assert key_id == "k3" and len(key) == 32
    assert main(["keys", "generate"]) == 0
    captured = capsys.readouterr()
    assert re.fullmatch(r"k\d{8}:[A-Za-z0-9_-]{43}", captured.out.strip())
    assert "telmi keys rotate" in captured.err
    assert main(["keys", "generate", "--id", "pas bon"]) == 1


# --- associated data ----------------------------------------------------------------------------


async def test_a_ciphertext_moved_to_another_facilitys_row_does_not_open(db: Database) -> None:
    nurse = await make_user(db, Role.STAFF, facility=await make_facility(db))
    other_nurse = await make_user(db, Role.STAFF, facility=await make_facility(db))
    mine = await make_resident(db, nurse, **QUALIFIED, **PEOPLE[0])
    theirs = await make_resident(db, other_nurse, reference="B-1")
    async with db.write() as session:
        source = await session.get(Patient, mine.id)
        assert source is not None
        await session.execute(
            update(Patient)
            .where(Patient.id == theirs.id)
            .values(identity=source.identity, key_id=source.key_id)
        )
    rows = {r.id: r for r in await _rows(db)}
    assert patients.open_resident(VAULT, rows[mine.id]) == mine  # in its own row it opens
    with pytest.raises(VaultError, match="refused"):
        patients.open_resident(VAULT, rows[theirs.id])
    with pytest.raises(VaultError):
        async with db.write() as session:
            await patients.get(session, Context(other_nurse, NOW), theirs.id, vault=VAULT)
