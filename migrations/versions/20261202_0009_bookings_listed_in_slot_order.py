"""Bookings listed in slot order: the slot's specialist and times copied onto each booking

The lists of bookings (a facility's, a specialist's agenda) are read a page at a time in slot
order; with the slot's start, end and specialist on the booking itself, a page is a range of
one index, whatever the length of the history. A booking never changes slot (a move is a new
booking), so the copies never go stale. Existing rows are filled from their slot.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 16:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import telmi.models


revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LISTED = sa.text("status <> 'expired'")


def upgrade() -> None:
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('specialist_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('starts_at', telmi.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('ends_at', telmi.models.UTCDateTime(timezone=True), nullable=True))

    op.execute(
        "UPDATE bookings SET"
        " specialist_id = (SELECT slots.specialist_id FROM slots WHERE slots.id = bookings.slot_id),"
        " starts_at = (SELECT slots.starts_at FROM slots WHERE slots.id = bookings.slot_id),"
        " ends_at = (SELECT slots.ends_at FROM slots WHERE slots.id = bookings.slot_id)"
    )

    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.alter_column('specialist_id', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('starts_at', existing_type=telmi.models.UTCDateTime(timezone=True), nullable=False)
        batch_op.alter_column('ends_at', existing_type=telmi.models.UTCDateTime(timezone=True), nullable=False)
        batch_op.create_foreign_key(
            batch_op.f('fk_bookings_specialist_id_users'), 'users', ['specialist_id'], ['id']
        )
        batch_op.create_index(
            'ix_bookings_facility_starts_at', ['facility_id', 'starts_at', 'id'], unique=False,
            sqlite_where=_LISTED, postgresql_where=_LISTED,
        )
        batch_op.create_index(
            'ix_bookings_specialist_starts_at', ['specialist_id', 'starts_at', 'id'], unique=False,
            sqlite_where=_LISTED, postgresql_where=_LISTED,
        )


def downgrade() -> None:
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.drop_index('ix_bookings_specialist_starts_at')
        batch_op.drop_index('ix_bookings_facility_starts_at')
        batch_op.drop_constraint(batch_op.f('fk_bookings_specialist_id_users'), type_='foreignkey')
        batch_op.drop_column('ends_at')
        batch_op.drop_column('starts_at')
        batch_op.drop_column('specialist_id')
