"""Job runs and calendar attachments

The last run of each background job (shown on the admin page, whichever process ran it),
and an iCalendar attachment on notifications for booking confirmations and changes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 10:57:46.020314
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import telmi.models


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('job_runs',
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('last_started_at', telmi.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_duration_ms', sa.Integer(), nullable=False),
    sa.Column('last_ok', sa.Boolean(), nullable=False),
    sa.Column('last_result', sa.String(length=500), nullable=False),
    sa.Column('next_run_at', telmi.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('runs', sa.Integer(), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('runner', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_job_runs'))
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ics', sa.Text(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_column('ics')

    op.drop_table('job_runs')
