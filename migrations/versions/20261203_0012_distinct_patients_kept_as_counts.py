"""Distinct patients kept as counts for the coarse cells

`act_patient_counts` holds, per month and cell (région, département, facility category,
each '' where summed over), the month's distinct patients and those seen for the first
time that calendar year, written with the patient sets in the act's transaction. An index
on `act_month_patients (patient_key, month)` lets that transaction read a patient's year.
The counts of existing acts are computed here from the sets.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A copy, not an import: a migration must keep meaning what it meant when it was written.
DIMENSIONS = ("region_code", "departement_code", "facility_category")
GRAINS = (
    (False, False, False),
    (True, False, False),
    (False, False, True),
    (True, False, True),
    (True, True, False),
    (True, True, True),
)
COLUMNS = "month, region_code, departement_code, facility_category"


def upgrade() -> None:
    op.create_table(
        "act_patient_counts",
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("region_code", sa.String(length=3), nullable=False),
        sa.Column("departement_code", sa.String(length=3), nullable=False),
        sa.Column("facility_category", sa.String(length=19), nullable=False),
        sa.Column("patients", sa.Integer(), nullable=False),
        sa.Column("new_patients", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "month",
            "region_code",
            "departement_code",
            "facility_category",
            name=op.f("pk_act_patient_counts"),
        ),
    )
    op.create_index(
        "ix_act_month_patients_patient_key_month",
        "act_month_patients",
        ["patient_key", "month"],
    )
    for grain in GRAINS:
        kept = [d for d, keep in zip(DIMENSIONS, grain, strict=True) if keep]
        shown = ", ".join(
            d if keep else f"'' AS {d}" for d, keep in zip(DIMENSIONS, grain, strict=True)
        )
        by = "".join(f", {d}" for d in kept)
        op.execute(
            f"INSERT INTO act_patient_counts ({COLUMNS}, patients, new_patients)"
            f" SELECT month, {shown}, COUNT(DISTINCT patient_key), 0"
            f" FROM act_month_patients WHERE acts > 0 GROUP BY month{by}"
        )
        op.execute(
            f"INSERT INTO act_patient_counts ({COLUMNS}, patients, new_patients)"
            f" SELECT month, {', '.join(DIMENSIONS)}, 0, COUNT(*) FROM ("
            f"  SELECT MIN(month) AS month, {shown} FROM act_month_patients WHERE acts > 0"
            f"  GROUP BY month / 100{by}, patient_key"
            f") AS firsts WHERE 1 = 1 GROUP BY {COLUMNS}"
            f" ON CONFLICT ({COLUMNS}) DO UPDATE SET new_patients = excluded.new_patients"
        )


def downgrade() -> None:
    op.drop_index("ix_act_month_patients_patient_key_month", table_name="act_month_patients")
    op.drop_table("act_patient_counts")
