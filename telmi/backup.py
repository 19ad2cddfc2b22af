"""SQLite online backups: a consistent copy while the server runs, the last N kept.

Uses SQLite's own backup API (the standard library's `Connection.backup`), which copies
page by page under the proper locks, so writers are not stopped. A restore first checks the
copy (`PRAGMA integrity_check`) and refuses a damaged one.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from telmi.errors import TelmiError
from telmi.settings import Settings


class BackupError(TelmiError):
    code = "backup_failed"


def database_path(settings: Settings) -> Path:
    if not settings.is_sqlite:
        raise BackupError("Sauvegardes intégrées : SQLite seulement (PostgreSQL : pg_dump).")
    database = make_url(settings.database_url).database
    if not database:
        raise BackupError("Chemin de la base SQLite introuvable.")
    return Path(database)


def backup_dir(settings: Settings) -> Path:
    return settings.data_dir / "backups"


def _copy(source: Path, target: Path, *, journal: str = "DELETE") -> None:
    """A backup is one self-contained file (rollback journal); the live database goes back
    to WAL, as Telmi runs it."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
        dst.execute(f"PRAGMA journal_mode={journal}")
    finally:
        dst.close()
        src.close()


def check(path: Path) -> str:
    """'ok' for a sound SQLite file; the first problem otherwise."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        return str(exc)


async def backup(settings: Settings, *, now: datetime) -> Path:
    source = database_path(settings)
    folder = backup_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = now.strftime("%Y%m%d-%H%M%S")
    target = folder / f"telmi-{stamp}.sqlite3"
    await asyncio.to_thread(_copy, source, target)
    verdict = await asyncio.to_thread(check, target)
    if verdict != "ok":
        target.unlink(missing_ok=True)
        raise BackupError(f"La copie est défectueuse : {verdict}")
    for old in sorted(folder.glob("telmi-*.sqlite3"))[: -settings.backup_keep]:
        old.unlink()
    return target


async def restore(settings: Settings, source: Path) -> None:
    """Replace the database's content with a backup's (stop `telmi serve` first)."""
    if not source.is_file():
        raise BackupError(f"Fichier introuvable : {source}")
    verdict = await asyncio.to_thread(check, source)
    if verdict != "ok":
        raise BackupError(f"Sauvegarde refusée, fichier endommagé : {verdict}")
    await asyncio.to_thread(_copy, source, database_path(settings), journal="WAL")
