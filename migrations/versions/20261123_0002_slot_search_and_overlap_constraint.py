"""Slot search and overlap constraint

Slots carry their specialty and the act types they offer as a bit mask, so the earliest-free
search is one partial index range; specialists get a practice département. On PostgreSQL an
exclusion constraint (btree_gist) refuses two open slots of one specialist that overlap.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 08:22:01.640935
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = sa.text("status = 'open'")


def upgrade() -> None:
    with op.batch_alter_table("slots", schema=None) as batch_op:
        batch_op.add_column(sa.Column("specialty_id", sa.Integer(), nullable=False))
        batch_op.add_column(sa.Column("act_mask", sa.Integer(), nullable=False))
        batch_op.drop_index(batch_op.f("ix_slots_starts_at_status"))
        batch_op.create_index(
            "ix_slots_open_specialty_starts_at",
            ["specialty_id", "starts_at"],
            unique=False,
            sqlite_where=OPEN,
            postgresql_where=OPEN,
        )
        batch_op.create_index(
            "ix_slots_open_starts_at",
            ["starts_at"],
            unique=False,
            sqlite_where=OPEN,
            postgresql_where=OPEN,
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_slots_specialty_id_specialties"), "specialties", ["specialty_id"], ["id"]
        )
        batch_op.create_check_constraint("offers_an_act", "act_mask > 0")
        batch_op.drop_column("act_types")

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("departement_code", sa.String(length=3), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_users_departement_code_departements"),
            "departements",
            ["departement_code"],
            ["code"],
        )

    if op.get_context().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        op.execute(
            "ALTER TABLE slots ADD CONSTRAINT ex_slots_no_overlap EXCLUDE USING gist "
            "(specialist_id WITH =, tstzrange(starts_at, ends_at) WITH &&) WHERE (status = 'open')"
        )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("ALTER TABLE slots DROP CONSTRAINT ex_slots_no_overlap")

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_users_departement_code_departements"), type_="foreignkey"
        )
        batch_op.drop_column("departement_code")

    with op.batch_alter_table("slots", schema=None) as batch_op:
        batch_op.add_column(sa.Column("act_types", sa.JSON(), nullable=False))
        batch_op.drop_constraint("offers_an_act", type_="check")
        batch_op.drop_constraint(
            batch_op.f("fk_slots_specialty_id_specialties"), type_="foreignkey"
        )
        batch_op.drop_index("ix_slots_open_starts_at")
        batch_op.drop_index("ix_slots_open_specialty_starts_at")
        batch_op.create_index(
            batch_op.f("ix_slots_starts_at_status"), ["starts_at", "status"], unique=False
        )
        batch_op.drop_column("act_mask")
        batch_op.drop_column("specialty_id")
