"""Expertise response time

A téléexpertise act records how long the answer took (request sent to answer). Hashed into
the act chain only when set, so existing entries keep their hashes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 11:11:02.642807
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import telmi.models


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('acts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('response_seconds', sa.Integer(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('acts', schema=None) as batch_op:
        batch_op.drop_column('response_seconds')

