"""Distinct patients per month kept with the rollup

`act_month_patients` holds the net acts of each patient key per month and rollup cell,
written with `act_months` in the act's transaction, so distinct patients over whole months
are counted on it instead of on the log. Existing acts are rolled into it here.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 16:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
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
CELL = (
    "month",
    "act_type",
    "region_code",
    "departement_code",
    "facility_category",
    "facility_finess",
    "specialty_code",
    "patient_key",
)


def _enum(values: tuple[str, ...], name: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True)


def upgrade() -> None:
    op.create_table(
        "act_month_patients",
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("act_type", _enum(ACT_TYPES, "act_type"), nullable=False),
        sa.Column("region_code", sa.String(length=3), nullable=False),
        sa.Column("departement_code", sa.String(length=3), nullable=False),
        sa.Column("facility_category", _enum(CATEGORIES, "facility_category"), nullable=False),
        sa.Column("facility_finess", sa.String(length=9), nullable=False),
        sa.Column("specialty_code", sa.String(length=40), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=False),
        sa.Column("acts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(*CELL, name=op.f("pk_act_month_patients")),
    )
    columns = ", ".join(CELL)
    op.execute(
        f"INSERT INTO act_month_patients ({columns}, acts)"
        f" SELECT {columns}, SUM(sign) FROM acts GROUP BY {columns}"
    )


def downgrade() -> None:
    op.drop_table("act_month_patients")
