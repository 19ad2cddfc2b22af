"""Key rotation: re-seal every resident's identity with the current key of TELMI_DATA_KEY.

The operator puts a new key first in TELMI_DATA_KEY, keeps the old ones after it, restarts,
then runs `telmi keys rotate`: rows sealed with any other key than the current one are
opened and sealed again, a batch per transaction, so a run stopped halfway keeps what it
did and the next run goes on from there; a run with nothing left to do changes nothing.
Once it reports every row re-sealed, the old keys can leave TELMI_DATA_KEY. The INS digest
comes from the secret key, not the ring, so duplicates and the act log are unaffected.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from telmi import audit, patients
from telmi.db import Database
from telmi.models import Patient
from telmi.vault import Vault, VaultError

BATCH = 200


class MissingKey(VaultError):
    """Rows are sealed with a key the ring no longer holds: nothing can open them."""

    def __init__(self, key_id: str, rows: int) -> None:
        self.key_id = key_id
        super().__init__(
            f"{rows} résident(s) chiffré(s) avec la clé « {key_id} », absente de "
            f"TELMI_DATA_KEY : remettez-la après la clé courante, puis relancez "
            "`telmi keys rotate` (aucun résident de cette clé n'a été re-chiffré)"
        )


async def pending(db: Database, vault: Vault) -> dict[str, int]:
    """Rows per key id not yet sealed with the current key."""
    async with db.read() as session:
        rows = await session.execute(
            select(Patient.key_id, func.count())
            .where(Patient.key_id != vault.current)
            .group_by(Patient.key_id)
            .order_by(Patient.key_id)
        )
        return {str(key_id): int(n) for key_id, n in rows}


async def reseal(
    db: Database,
    vault: Vault,
    *,
    now: datetime,
    batch: int = BATCH,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Re-seal every row not under the current key; returns how many were re-sealed.

    Refuses before writing anything when a row's key is missing from the ring (MissingKey),
    rather than re-sealing the others and leaving the operator a partial rotation."""
    todo = await pending(db, vault)
    ring = {key_id for key_id, _ in vault.keys}
    for key_id, rows in todo.items():
        if key_id not in ring:
            raise MissingKey(key_id, rows)
    total, done = sum(todo.values()), 0
    while done < total:
        changed = await db.run_write(lambda s: _reseal_batch(s, vault, batch))
        if changed == 0:  # rows re-sealed meanwhile by an edit (edits seal with the current key)
            break
        done += changed
        if progress is not None:
            progress(min(done, total), total)
    if done:
        await db.run_write(
            lambda s: audit.record(
                s, "patients.resealed", actor=None, at=now, count=done, key_id=vault.current
            )
        )
    return done


async def _reseal_batch(session: AsyncSession, vault: Vault, batch: int) -> int:
    ring = {key_id for key_id, _ in vault.keys}
    rows = (
        await session.execute(
            select(Patient.id, Patient.facility_id, Patient.key_id, Patient.identity)
            .where(Patient.key_id != vault.current)
            .order_by(Patient.id)
            .limit(batch)
            .with_for_update()
        )
    ).all()
    for patient_id, facility_id, key_id, sealed in rows:
        aad = patients.aad(facility_id)
        if key_id not in ring:
            raise MissingKey(key_id, 1)
        new_key, resealed = vault.seal(vault.open(key_id, sealed, aad), aad)
        await session.execute(
            update(Patient)
            .where(Patient.id == patient_id, Patient.key_id == key_id)
            .values(key_id=new_key, identity=resealed)
        )
    return len(rows)
