"""Photo blobs

Photo bytes in the database for deployments whose processes share no disk
(TELMI_PHOTO_STORAGE=database); by default they stay files under the data directory.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 11:19:28.165554
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import telmi.models


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('photo_blobs',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('thumbnail', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('sha256', name=op.f('pk_photo_blobs'))
    )


def downgrade() -> None:
    op.drop_table('photo_blobs')
