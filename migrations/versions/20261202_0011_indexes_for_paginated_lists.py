"""Indexes for the paginated lists: each page read off an index in the list's order

Tele-expertise (a facility's requests, and the three ways a request reaches a specialist),
acts newest first (all, or one specialist's), notifications per user, the admin journal and
« Accès au dossier », users by role and e-mail, facilities, specialties and residents.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 17:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A copy, not an import: a migration must keep meaning what it meant when it was written.
_ADMIN_PREFIXES = (
    "facility.",
    "specialty.",
    "user.",
    "account.",
    "form.",
    "finess.",
    "departement.",
)
_ADMIN_CHANGE = " OR ".join(f"action LIKE '{p}%'" for p in _ADMIN_PREFIXES)
_TO_SPECIALTY = "specialist_id IS NULL"

_PLAIN = (
    (
        "ix_expertise_requests_facility_id_created_at_id",
        "expertise_requests",
        ["facility_id", "created_at", "id"],
    ),
    (
        "ix_expertise_requests_specialist_id_sent_at_id",
        "expertise_requests",
        ["specialist_id", "sent_at", "id"],
    ),
    (
        "ix_expertise_requests_assigned_to_id_sent_at_id",
        "expertise_requests",
        ["assigned_to_id", "sent_at", "id"],
    ),
    ("ix_acts_occurred_at_id", "acts", ["occurred_at", "id"]),
    ("ix_acts_specialist_id_occurred_at_id", "acts", ["specialist_id", "occurred_at", "id"]),
    ("ix_notifications_user_id_created_at_id", "notifications", ["user_id", "created_at", "id"]),
    ("ix_audit_events_patient_id_id", "audit_events", ["patient_id", "id"]),
    ("ix_users_role_email", "users", ["role", "email"]),
    ("ix_facilities_name_id", "facilities", ["name", "id"]),
    ("ix_specialties_name_id", "specialties", ["name", "id"]),
    ("ix_patients_facility_id_id", "patients", ["facility_id", "id"]),
)
_PARTIAL = (
    (
        "ix_expertise_requests_specialty_id_sent_at_id",
        "expertise_requests",
        ["specialty_id", "sent_at", "id"],
        _TO_SPECIALTY,
    ),
    ("ix_audit_events_admin_id", "audit_events", ["id"], _ADMIN_CHANGE),
)


def upgrade() -> None:
    for name, table, columns in _PLAIN:
        op.create_index(name, table, columns)
    for name, table, columns, where in _PARTIAL:
        op.create_index(
            name, table, columns, sqlite_where=sa.text(where), postgresql_where=sa.text(where)
        )


def downgrade() -> None:
    for name, table, *_ in reversed(_PARTIAL + tuple((*p, "") for p in _PLAIN)):
        op.drop_index(name, table_name=table)
