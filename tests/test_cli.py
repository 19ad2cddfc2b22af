"""The `telmi` command against a real database: migrate, demo, users, tokens."""

from __future__ import annotations

import asyncio
import io
import sys

import pytest
from sqlalchemy import func, select

from telmi import accounts
from telmi.cli import main
from telmi.db import Database
from telmi.demo import DEMO_PASSWORD, DEPARTEMENTS, FACILITIES, LOGINS, SPECIALISTS
from telmi.models import (
    Act,
    ActType,
    ApiToken,
    Departement,
    Facility,
    FacilityCategory,
    Role,
    User,
)
from telmi.vault import generate_key


@pytest.fixture
def cli_env(fresh_database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> str:
    monkeypatch.setenv("TELMI_DATABASE_URL", fresh_database_url)
    monkeypatch.setenv("TELMI_DATA_DIR", str(tmp_path))
    assert main(["db", "upgrade"]) == 0
    return fresh_database_url


def _query(url: str, statement: object) -> object:
    async def run() -> object:
        db = Database(url)
        try:
            async with db.read() as session:
                return (await session.execute(statement)).all()  # type: ignore[call-overload]
        finally:
            await db.dispose()

    return asyncio.run(run())


@pytest.mark.slow
def test_demo_loads_the_region_once(cli_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--history-scale", "0.05"]) == 0
    first = capsys.readouterr().out
    assert "établissements 40/40" in first  # progress is shown
    assert "actes jusqu'à" in first
    for login in LOGINS:
        assert login.email in first
    assert "Téléconsultation prévue" in first and "fenêtre privée" in first
    assert main(["demo", "--history-scale", "0.05"]) == 0
    assert "déjà présentes" in capsys.readouterr().out

    [(departements,)] = _query(cli_env, select(func.count()).select_from(Departement))
    assert departements == 8
    categories = dict(
        _query(cli_env, select(Facility.category, func.count()).group_by(Facility.category))
    )
    assert sum(categories.values()) == len(FACILITIES) == 40
    assert set(categories) == set(FacilityCategory)
    roles = dict(_query(cli_env, select(User.role, func.count()).group_by(User.role)))
    assert roles[Role.SPECIALIST] == len(SPECIALISTS) >= 25
    assert roles[Role.ADMIN] == roles[Role.REGIONAL] == 1
    assert roles[Role.STAFF] >= 4  # the demo nurse and colleagues of other facilities


@pytest.mark.slow
def test_demo_history_follows_the_published_figures(cli_env: str) -> None:
    """2017 about 6,000 acts, 2018 about 9,000 (+50 %), 2023 about 32,000 (here at 5 %)."""
    assert main(["demo", "--history-scale", "0.05"]) == 0
    year = Act.month // 100
    per_year = dict(_query(cli_env, select(year, func.sum(Act.sign)).group_by(year)))
    for published_year, published in ((2017, 6_000), (2018, 9_000), (2023, 32_000)):
        assert abs(per_year[published_year] - published * 0.05) <= 6, per_year
    assert 1.4 < per_year[2018] / per_year[2017] < 1.6
    assert all(per_year[y] < per_year[y + 1] for y in range(2017, 2025))
    expertise = dict(
        _query(
            cli_env,
            select(Act.specialty_code, func.count())
            .where(Act.act_type == ActType.TELEEXPERTISE)
            .group_by(Act.specialty_code),
        )
    )
    assert max(expertise, key=expertise.__getitem__) == "dermatologie"
    spread = _query(cli_env, select(Act.departement_code, Act.facility_category).distinct())
    assert {d for d, _ in spread} == {code for code, _ in DEPARTEMENTS}
    assert {c for _, c in spread} == set(FacilityCategory)
    august, october = (
        _query(cli_env, select(func.count()).where(Act.month == m))[0][0] for m in (202508, 202510)
    )
    assert august < 0.7 * october  # the summer dip
    assert main(["acts", "verify"]) == 0


def test_user_add_reads_the_password_from_stdin(
    cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    password = "a sturdy passphrase"
    monkeypatch.setattr(sys, "stdin", io.StringIO(password + "\n"))
    assert main(["user", "add", "Chef@Region.fr", "--role", "regional", "--password-stdin"]) == 0
    [(stored,)] = _query(cli_env, select(User.password_hash).where(User.email == "chef@region.fr"))
    assert stored.startswith("$argon2id$") and password not in stored

    async def verify() -> bool:
        return await accounts.verify_password(stored, password)

    assert asyncio.run(verify())


def test_user_add_refuses_bad_input_and_writes_nothing(
    cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [
        (["user", "add", "x@y.fr", "--role", "staff", "--password-stdin"], "FINESS"),
        (
            [
                "user",
                "add",
                "x@y.fr",
                "--role",
                "staff",
                "--facility",
                "210000000",
                "--password-stdin",
            ],
            "inconnu",
        ),
        (["user", "add", "not-an-email", "--role", "admin", "--password-stdin"], "e-mail"),
        (["user", "add", "x@y.fr", "--role", "admin"], "--password-stdin"),
        (
            [
                "user",
                "add",
                "x@y.fr",
                "--role",
                "specialist",
                "--specialty",
                "nope",
                "--password-stdin",
            ],
            "Spécialité",
        ),
    ]
    for argv, message in cases:
        monkeypatch.setattr(sys, "stdin", io.StringIO("long enough password\n"))
        assert main(argv) == 1, argv
        assert message in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert main(["user", "add", "x@y.fr", "--role", "admin", "--password-stdin"]) == 1
    assert "12 caractères" in capsys.readouterr().err
    assert _query(cli_env, select(User.id)) == []


def test_token_create_prints_a_token_that_only_hashes_are_kept_of(
    cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("long enough password\n"))
    main(["user", "add", "bot@region.fr", "--role", "regional", "--password-stdin"])
    capsys.readouterr()
    assert main(["token", "create", "bot@region.fr", "--name", "export"]) == 0
    raw = capsys.readouterr().out.strip()
    assert raw.startswith("telmi_")
    [(token_id, token_hash)] = _query(cli_env, select(ApiToken.id, ApiToken.token_hash))
    assert token_hash == accounts.sha256(raw)
    assert main(["token", "revoke", str(token_id)]) == 0
    assert main(["token", "list", "bot@region.fr"]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["token", "create", "ghost@region.fr"]) == 1


def test_demo_password_meets_the_password_rule() -> None:
    accounts.check_password(DEMO_PASSWORD)


def test_demo_is_refused_on_a_production_database(
    cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TELMI_ENV", "production")
    monkeypatch.setenv("TELMI_SECRET_KEY", "k" * 40)
    monkeypatch.setenv("TELMI_PUBLIC_URL", "https://telmi.example.fr")
    monkeypatch.setenv("TELMI_DATA_KEY", generate_key("k1"))  # production seals identities
    assert main(["demo", "--history-scale", "0.01"]) == 1
    assert "TELMI_ENV=production" in capsys.readouterr().err
    assert _query(cli_env, select(Facility.id)) == []
    assert _query(cli_env, select(User.id)) == []
