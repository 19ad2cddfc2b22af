"""Settings come from TELMI_* only, with safe defaults in development and none in production."""

from __future__ import annotations

import pytest

from telmi.cli import main
from telmi.settings import DEV_SECRET_KEY, SETTINGS, Settings, SettingsError

GOOD_PRODUCTION = {
    "TELMI_ENV": "production",
    "TELMI_SECRET_KEY": "k" * 40,
    "TELMI_PUBLIC_URL": "https://telmi.example.fr",
    "TELMI_DATA_KEY": "k1:" + "A" * 43,
}


def test_development_defaults_need_no_environment() -> None:
    settings = Settings.from_env({})
    assert settings.env == "development"
    assert settings.database_url == "sqlite+aiosqlite:///var/telmi.sqlite3"
    assert settings.timezone == "Europe/Paris"
    assert settings.secret_key == DEV_SECRET_KEY
    assert settings.origins == frozenset({"http://127.0.0.1:8080"})


def test_values_are_read_and_parsed() -> None:
    settings = Settings.from_env(
        {
            "TELMI_DATA_DIR": "/srv/telmi",
            "TELMI_PORT": "9000",
            "TELMI_TRUST_PROXY": "yes",
            "TELMI_ALLOWED_ORIGINS": "https://a.example.fr, https://b.example.fr/",
        }
    )
    assert settings.database_url == "sqlite+aiosqlite:////srv/telmi/telmi.sqlite3"
    assert settings.port == 9000 and settings.trust_proxy is True
    assert "https://b.example.fr" in settings.origins


def test_production_accepts_a_complete_configuration() -> None:
    settings = Settings.from_env(GOOD_PRODUCTION)
    assert settings.secure_cookies


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        ({"TELMI_SECRET_KEY": None}, "TELMI_SECRET_KEY"),
        ({"TELMI_SECRET_KEY": "short"}, "TELMI_SECRET_KEY"),
        ({"TELMI_PUBLIC_URL": "http://telmi.example.fr"}, "TELMI_PUBLIC_URL"),
        ({"TELMI_PORT": "eighty"}, "TELMI_PORT"),
        ({"TELMI_TIMEZONE": "Europe/Nowhere"}, "TELMI_TIMEZONE"),
        ({"TELMI_DATABASE_URL": "mysql://x"}, "TELMI_DATABASE_URL"),
        ({"TELMI_ENV": "staging"}, "TELMI_ENV"),
        ({"TELMI_TRUST_PROXY": "maybe"}, "TELMI_TRUST_PROXY"),
        ({"TELMI_DATA_KEY": None}, "TELMI_DATA_KEY"),
        ({"TELMI_DATA_KEY": "k1:short"}, "TELMI_DATA_KEY"),
        ({"TELMI_DATA_KEY": "no-colon"}, "TELMI_DATA_KEY"),
    ],
)
def test_bad_or_missing_settings_name_the_variable(
    changes: dict[str, str | None], variable: str
) -> None:
    environ = {k: v for k, v in {**GOOD_PRODUCTION, **changes}.items() if v is not None}
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env(environ)


def test_cli_stops_with_one_line_on_a_bad_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TELMI_ENV", "production")
    monkeypatch.delenv("TELMI_SECRET_KEY", raising=False)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "TELMI_SECRET_KEY" in err


def test_every_setting_is_a_field_with_help() -> None:
    fields = set(Settings.__dataclass_fields__)
    for setting in SETTINGS:
        assert setting.field in fields and setting.help
