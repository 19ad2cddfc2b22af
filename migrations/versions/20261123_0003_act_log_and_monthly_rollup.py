"""Act log and monthly rollup

The act log becomes what the statistics read: the local calendar of each act (date, month,
ISO week) fixed at write time, a sign (+1 an act, -1 the entry that cancels one), the
requesting and requested professionals, and a monthly rollup written in the same
transaction. No code path wrote the 0001 `acts` table, so it is replaced, not altered.
On PostgreSQL a trigger refuses UPDATE and DELETE on `acts`.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 10:02:09.423931
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import telmi.models

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACT_TYPES = (
    "teleconsultation",
    "teleexpertise",
    "telesurveillance",
    "teleassistance",
    "regulation",
    "telesoin",
)
CATEGORIES = ("health_centre", "nursing_home", "disability_facility", "hospital")
ACT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

APPEND_ONLY = (
    """
CREATE FUNCTION telmi_acts_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'acts are append-only: % refused (correct an act with a cancelling entry)', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$
""",
    """
CREATE TRIGGER acts_append_only BEFORE UPDATE OR DELETE ON acts
  FOR EACH ROW EXECUTE FUNCTION telmi_acts_append_only()
""",
)


def _enum(values: tuple[str, ...], name: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True)


def upgrade() -> None:
    op.drop_table("acts")
    op.create_table(
        "acts",
        sa.Column("id", ACT_ID, nullable=False),
        sa.Column("act_type", _enum(ACT_TYPES, "act_type"), nullable=False),
        sa.Column("occurred_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("occurred_on", sa.Date(), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("iso_week", sa.Integer(), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=False),
        sa.Column("sign", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("facility_finess", sa.String(length=9), nullable=False),
        sa.Column("facility_category", _enum(CATEGORIES, "facility_category"), nullable=False),
        sa.Column("facility_category_code", sa.String(length=4), nullable=False),
        sa.Column("departement_code", sa.String(length=3), nullable=False),
        sa.Column("region_code", sa.String(length=3), nullable=False),
        sa.Column("requester_role", sa.String(length=40), nullable=False),
        sa.Column("requester_id", sa.Integer(), nullable=True),
        sa.Column("requester_rpps", sa.String(length=11), nullable=True),
        sa.Column("specialist_id", sa.Integer(), nullable=True),
        sa.Column("specialist_rpps", sa.String(length=11), nullable=True),
        sa.Column("specialty_code", sa.String(length=40), nullable=False),
        sa.Column("source_key", sa.String(length=120), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=False),
        sa.Column("patient_consent", sa.Boolean(), nullable=False),
        sa.Column("incidents", sa.String(length=500), nullable=False),
        sa.Column("cancels_act_id", ACT_ID, nullable=True),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("recorded_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_by_id", sa.Integer(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint(
            "(sign = -1) = (cancels_act_id IS NOT NULL)",
            name=op.f("ck_acts_cancel_has_original"),
        ),
        sa.CheckConstraint("duration_seconds >= 0", name=op.f("ck_acts_duration")),
        sa.CheckConstraint(
            "requester_rpps IS NOT NULL OR requester_id IS NOT NULL",
            name=op.f("ck_acts_requester_known"),
        ),
        sa.CheckConstraint("sign IN (1, -1)", name=op.f("ck_acts_sign")),
        sa.ForeignKeyConstraint(
            ["cancels_act_id"], ["acts.id"], name=op.f("fk_acts_cancels_act_id_acts")
        ),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facilities.id"], name=op.f("fk_acts_facility_id_facilities")
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_id"], ["users.id"], name=op.f("fk_acts_recorded_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["requester_id"], ["users.id"], name=op.f("fk_acts_requester_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["specialist_id"], ["users.id"], name=op.f("fk_acts_specialist_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_acts")),
        sa.UniqueConstraint("cancels_act_id", name=op.f("uq_acts_cancels_act_id")),
        sa.UniqueConstraint("hash", name=op.f("uq_acts_hash")),
        sa.UniqueConstraint("source_key", name=op.f("uq_acts_source_key")),
    )
    op.create_index("ix_acts_occurred_on", "acts", ["occurred_on"], unique=False)
    op.create_table(
        "act_months",
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("act_type", _enum(ACT_TYPES, "act_type"), nullable=False),
        sa.Column("region_code", sa.String(length=3), nullable=False),
        sa.Column("departement_code", sa.String(length=3), nullable=False),
        sa.Column("facility_category", _enum(CATEGORIES, "facility_category"), nullable=False),
        sa.Column("facility_finess", sa.String(length=9), nullable=False),
        sa.Column("specialty_code", sa.String(length=40), nullable=False),
        sa.Column("acts", sa.Integer(), nullable=False),
        sa.Column("duration_seconds", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "month",
            "act_type",
            "region_code",
            "departement_code",
            "facility_category",
            "facility_finess",
            "specialty_code",
            name=op.f("pk_act_months"),
        ),
    )
    if op.get_bind().dialect.name == "postgresql":
        for statement in APPEND_ONLY:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER acts_append_only ON acts")
        op.execute("DROP FUNCTION telmi_acts_append_only()")
    op.drop_table("act_months")
    op.drop_index("ix_acts_occurred_on", table_name="acts")
    op.drop_table("acts")
    op.create_table(
        "acts",
        sa.Column("id", ACT_ID, nullable=False),
        sa.Column("act_type", _enum(ACT_TYPES, "act_type"), nullable=False),
        sa.Column("occurred_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=False),
        sa.Column("facility_finess", sa.String(length=9), nullable=False),
        sa.Column("facility_category", _enum(CATEGORIES, "facility_category"), nullable=False),
        sa.Column("facility_category_code", sa.String(length=4), nullable=False),
        sa.Column("departement_code", sa.String(length=3), nullable=False),
        sa.Column("region_code", sa.String(length=3), nullable=False),
        sa.Column("requester_role", sa.String(length=40), nullable=False),
        sa.Column("requester_rpps", sa.String(length=11), nullable=True),
        sa.Column("specialist_rpps", sa.String(length=11), nullable=True),
        sa.Column("specialty_code", sa.String(length=40), nullable=False),
        sa.Column("source_key", sa.String(length=80), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=False),
        sa.Column("patient_consent", sa.Boolean(), nullable=False),
        sa.Column("incidents", sa.String(length=500), nullable=False),
        sa.Column("cancels_act_id", ACT_ID, nullable=True),
        sa.Column("recorded_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["cancels_act_id"], ["acts.id"], name=op.f("fk_acts_cancels_act_id_acts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_acts")),
        sa.UniqueConstraint("hash", name=op.f("uq_acts_hash")),
        sa.UniqueConstraint("source_key", name=op.f("uq_acts_source_key")),
    )
    op.create_index("ix_acts_occurred_at", "acts", ["occurred_at"], unique=False)
