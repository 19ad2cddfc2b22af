"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 08:04:38.331260
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import telmi.models


revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "acts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "act_type",
            sa.Enum(
                "teleconsultation",
                "teleexpertise",
                "telesurveillance",
                "teleassistance",
                "regulation",
                "telesoin",
                name="act_type",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("occurred_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=False),
        sa.Column("facility_finess", sa.String(length=9), nullable=False),
        sa.Column(
            "facility_category",
            sa.Enum(
                "health_centre",
                "nursing_home",
                "disability_facility",
                "hospital",
                name="facility_category",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
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
        sa.Column(
            "cancels_act_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
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
    with op.batch_alter_table("acts", schema=None) as batch_op:
        batch_op.create_index("ix_acts_occurred_at", ["occurred_at"], unique=False)

    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempts")),
    )
    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_login_attempts_address_at", ["address", "at"], unique=False)
        batch_op.create_index("ix_login_attempts_email_at", ["email", "at"], unique=False)

    op.create_table(
        "regions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=3), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_regions")),
        sa.UniqueConstraint("code", name=op.f("uq_regions_code")),
    )
    op.create_table(
        "specialties",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_specialties")),
        sa.UniqueConstraint("code", name=op.f("uq_specialties_code")),
    )
    op.create_table(
        "departements",
        sa.Column("code", sa.String(length=3), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("region_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["region_id"], ["regions.id"], name=op.f("fk_departements_region_id_regions")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_departements")),
    )
    with op.batch_alter_table("departements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_departements_region_id"), ["region_id"], unique=False)

    op.create_table(
        "facilities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("finess", sa.String(length=9), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "category",
            sa.Enum(
                "health_centre",
                "nursing_home",
                "disability_facility",
                "hospital",
                name="facility_category",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("finess_category_code", sa.String(length=4), nullable=False),
        sa.Column("finess_category_label", sa.String(length=200), nullable=False),
        sa.Column("departement_code", sa.String(length=3), nullable=False),
        sa.Column("commune", sa.String(length=100), nullable=False),
        sa.Column("postcode", sa.String(length=5), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("length(finess) = 9", name=op.f("ck_facilities_finess_length")),
        sa.ForeignKeyConstraint(
            ["departement_code"],
            ["departements.code"],
            name=op.f("fk_facilities_departement_code_departements"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_facilities")),
        sa.UniqueConstraint("finess", name=op.f("uq_facilities_finess")),
    )
    with op.batch_alter_table("facilities", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_facilities_departement_code"), ["departement_code"], unique=False
        )

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "staff",
                "specialist",
                "regional",
                "admin",
                name="role",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("facility_id", sa.Integer(), nullable=True),
        sa.Column("specialty_id", sa.Integer(), nullable=True),
        sa.Column("rpps", sa.String(length=11), nullable=True),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", telmi.models.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "role <> 'specialist' OR specialty_id IS NOT NULL",
            name=op.f("ck_users_specialist_has_specialty"),
        ),
        sa.CheckConstraint(
            "role <> 'staff' OR facility_id IS NOT NULL", name=op.f("ck_users_staff_has_facility")
        ),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facilities.id"], name=op.f("fk_users_facility_id_facilities")
        ),
        sa.ForeignKeyConstraint(
            ["specialty_id"], ["specialties.id"], name=op.f("fk_users_specialty_id_specialties")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
        sa.UniqueConstraint("rpps", name=op.f("uq_users_rpps")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_facility_id"), ["facility_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_users_specialty_id"), ["specialty_id"], unique=False)

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", telmi.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", telmi.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", telmi.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_role", sa.String(length=20), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("target_type", sa.String(length=40), nullable=False),
        sa.Column("target_id", sa.String(length=40), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_audit_events_actor_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_actor_id"), ["actor_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_at"), ["at"], unique=False)

    op.create_table(
        "availability_exceptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("specialist_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("created_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "starts_at < ends_at", name=op.f("ck_availability_exceptions_start_before_end")
        ),
        sa.ForeignKeyConstraint(
            ["specialist_id"],
            ["users.id"],
            name=op.f("fk_availability_exceptions_specialist_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_availability_exceptions")),
    )
    with op.batch_alter_table("availability_exceptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_availability_exceptions_specialist_id"), ["specialist_id"], unique=False
        )

    op.create_table(
        "availability_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("specialist_id", sa.Integer(), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("start_time", sa.Time(), nullable=False),
        sa.Column("end_time", sa.Time(), nullable=False),
        sa.Column("slot_minutes", sa.Integer(), nullable=False),
        sa.Column("buffer_minutes", sa.Integer(), nullable=False),
        sa.Column("act_types", sa.JSON(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("open_on_public_holidays", sa.Boolean(), nullable=False),
        sa.Column("created_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", telmi.models.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "slot_minutes > 0 AND buffer_minutes >= 0",
            name=op.f("ck_availability_rules_positive_lengths"),
        ),
        sa.CheckConstraint(
            "start_time < end_time", name=op.f("ck_availability_rules_start_before_end")
        ),
        sa.CheckConstraint(
            "weekday BETWEEN 0 AND 6", name=op.f("ck_availability_rules_weekday_range")
        ),
        sa.ForeignKeyConstraint(
            ["specialist_id"], ["users.id"], name=op.f("fk_availability_rules_specialist_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_availability_rules")),
    )
    with op.batch_alter_table("availability_rules", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_availability_rules_specialist_id"), ["specialist_id"], unique=False
        )

    op.create_table(
        "expertise_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=False),
        sa.Column("specialty_id", sa.Integer(), nullable=False),
        sa.Column("specialist_id", sa.Integer(), nullable=True),
        sa.Column("assigned_to_id", sa.Integer(), nullable=True),
        sa.Column("patient_ref", sa.String(length=64), nullable=False),
        sa.Column("consent_recorded", sa.Boolean(), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("clinical_context", sa.Text(), nullable=False),
        sa.Column(
            "urgency",
            sa.Enum("24h", "72h", "7d", name="urgency", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "sent",
                "taken",
                "needs_information",
                "answered",
                "declined",
                "expired",
                name="expertise_status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("created_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", telmi.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("due_at", telmi.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("taken_at", telmi.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("answered_at", telmi.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["assigned_to_id"],
            ["users.id"],
            name=op.f("fk_expertise_requests_assigned_to_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["facilities.id"],
            name=op.f("fk_expertise_requests_facility_id_facilities"),
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_id"],
            ["users.id"],
            name=op.f("fk_expertise_requests_requested_by_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["specialist_id"], ["users.id"], name=op.f("fk_expertise_requests_specialist_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["specialty_id"],
            ["specialties.id"],
            name=op.f("fk_expertise_requests_specialty_id_specialties"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_expertise_requests")),
    )
    with op.batch_alter_table("expertise_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_expertise_requests_assigned_to_id"), ["assigned_to_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_expertise_requests_facility_id"), ["facility_id"], unique=False
        )
        batch_op.create_index(
            "ix_expertise_requests_specialty_status", ["specialty_id", "status"], unique=False
        )

    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=False),
        sa.Column("response_body", sa.JSON(), nullable=False),
        sa.Column("created_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_idempotency_keys_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
        sa.UniqueConstraint("user_id", "key", name=op.f("uq_idempotency_keys_user_id_key")),
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idempotency_keys_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=120), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "sent",
                "failed",
                "dead",
                name="notification_status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", telmi.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=False),
        sa.Column("created_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", telmi.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("read_at", telmi.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notifications_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_notifications_dedupe_key")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notifications_user_id"), ["user_id"], unique=False)

    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", telmi.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_web_sessions_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
    )
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_sessions_user_id"), ["user_id"], unique=False)

    op.create_table(
        "expertise_attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("uploaded_by_id", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("media_type", sa.String(length=50), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("created_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["expertise_requests.id"],
            name=op.f("fk_expertise_attachments_request_id_expertise_requests"),
        ),
        sa.ForeignKeyConstraint(
            ["uploaded_by_id"],
            ["users.id"],
            name=op.f("fk_expertise_attachments_uploaded_by_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_expertise_attachments")),
    )
    with op.batch_alter_table("expertise_attachments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_expertise_attachments_request_id"), ["request_id"], unique=False
        )

    op.create_table(
        "expertise_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"], ["users.id"], name=op.f("fk_expertise_messages_author_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["expertise_requests.id"],
            name=op.f("fk_expertise_messages_request_id_expertise_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_expertise_messages")),
    )
    with op.batch_alter_table("expertise_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_expertise_messages_request_id"), ["request_id"], unique=False
        )

    op.create_table(
        "slots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("specialist_id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=True),
        sa.Column("starts_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("act_types", sa.JSON(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "open",
                "blocked",
                "withdrawn",
                name="slot_status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("created_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("starts_at < ends_at", name=op.f("ck_slots_start_before_end")),
        sa.ForeignKeyConstraint(
            ["rule_id"], ["availability_rules.id"], name=op.f("fk_slots_rule_id_availability_rules")
        ),
        sa.ForeignKeyConstraint(
            ["specialist_id"], ["users.id"], name=op.f("fk_slots_specialist_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slots")),
        sa.UniqueConstraint(
            "specialist_id", "starts_at", name=op.f("uq_slots_specialist_id_starts_at")
        ),
    )
    with op.batch_alter_table("slots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_slots_rule_id"), ["rule_id"], unique=False)
        batch_op.create_index("ix_slots_starts_at_status", ["starts_at", "status"], unique=False)

    op.create_table(
        "bookings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slot_id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("booked_by_id", sa.Integer(), nullable=False),
        sa.Column("patient_ref", sa.String(length=64), nullable=False),
        sa.Column("patient_ins", sa.String(length=15), nullable=True),
        sa.Column(
            "act_type",
            sa.Enum(
                "teleconsultation",
                "teleexpertise",
                "telesurveillance",
                "teleassistance",
                "regulation",
                "telesoin",
                name="act_type",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "held",
                "confirmed",
                "cancelled",
                "expired",
                "completed",
                "no_show",
                name="booking_status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("hold_expires_at", telmi.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", telmi.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", telmi.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_by_id", sa.Integer(), nullable=True),
        sa.Column("cancel_reason", sa.String(length=500), nullable=False),
        sa.Column("rescheduled_from_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "status <> 'held' OR hold_expires_at IS NOT NULL",
            name=op.f("ck_bookings_hold_has_expiry"),
        ),
        sa.ForeignKeyConstraint(
            ["booked_by_id"], ["users.id"], name=op.f("fk_bookings_booked_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["cancelled_by_id"], ["users.id"], name=op.f("fk_bookings_cancelled_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facilities.id"], name=op.f("fk_bookings_facility_id_facilities")
        ),
        sa.ForeignKeyConstraint(
            ["rescheduled_from_id"],
            ["bookings.id"],
            name=op.f("fk_bookings_rescheduled_from_id_bookings"),
        ),
        sa.ForeignKeyConstraint(["slot_id"], ["slots.id"], name=op.f("fk_bookings_slot_id_slots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bookings")),
    )
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_bookings_booked_by_id"), ["booked_by_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_bookings_facility_id"), ["facility_id"], unique=False)
        batch_op.create_index(
            "uq_bookings_active_slot",
            ["slot_id"],
            unique=True,
            sqlite_where=sa.text("status IN ('held', 'confirmed', 'completed')"),
            postgresql_where=sa.text("status IN ('held', 'confirmed', 'completed')"),
        )

    op.create_table(
        "consultations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "scheduled",
                "in_progress",
                "ended",
                name="consultation_status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("started_at", telmi.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", telmi.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_by_id", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=500), nullable=False),
        sa.Column("created_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["bookings.id"], name=op.f("fk_consultations_booking_id_bookings")
        ),
        sa.ForeignKeyConstraint(
            ["ended_by_id"], ["users.id"], name=op.f("fk_consultations_ended_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consultations")),
        sa.UniqueConstraint("booking_id", name=op.f("uq_consultations_booking_id")),
        sa.UniqueConstraint("room_id", name=op.f("uq_consultations_room_id")),
    )
    op.create_table(
        "invites",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("consultation_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("guest_label", sa.String(length=100), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("created_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", telmi.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", telmi.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["consultation_id"],
            ["consultations.id"],
            name=op.f("fk_invites_consultation_id_consultations"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_invites_created_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invites")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_invites_token_hash")),
    )
    with op.batch_alter_table("invites", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_invites_consultation_id"), ["consultation_id"], unique=False
        )

    op.create_table(
        "presences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("consultation_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("invite_id", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("joined_at", telmi.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("left_at", telmi.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["consultation_id"],
            ["consultations.id"],
            name=op.f("fk_presences_consultation_id_consultations"),
        ),
        sa.ForeignKeyConstraint(
            ["invite_id"], ["invites.id"], name=op.f("fk_presences_invite_id_invites")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_presences_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_presences")),
    )
    with op.batch_alter_table("presences", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_presences_consultation_id"), ["consultation_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("presences", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_presences_consultation_id"))

    op.drop_table("presences")
    with op.batch_alter_table("invites", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invites_consultation_id"))

    op.drop_table("invites")
    op.drop_table("consultations")
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_bookings_active_slot",
            sqlite_where=sa.text("status IN ('held', 'confirmed', 'completed')"),
            postgresql_where=sa.text("status IN ('held', 'confirmed', 'completed')"),
        )
        batch_op.drop_index(batch_op.f("ix_bookings_facility_id"))
        batch_op.drop_index(batch_op.f("ix_bookings_booked_by_id"))

    op.drop_table("bookings")
    with op.batch_alter_table("slots", schema=None) as batch_op:
        batch_op.drop_index("ix_slots_starts_at_status")
        batch_op.drop_index(batch_op.f("ix_slots_rule_id"))

    op.drop_table("slots")
    with op.batch_alter_table("expertise_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_expertise_messages_request_id"))

    op.drop_table("expertise_messages")
    with op.batch_alter_table("expertise_attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_expertise_attachments_request_id"))

    op.drop_table("expertise_attachments")
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_sessions_user_id"))

    op.drop_table("web_sessions")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notifications_user_id"))

    op.drop_table("notifications")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_keys_expires_at"))

    op.drop_table("idempotency_keys")
    with op.batch_alter_table("expertise_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_expertise_requests_specialty_status")
        batch_op.drop_index(batch_op.f("ix_expertise_requests_facility_id"))
        batch_op.drop_index(batch_op.f("ix_expertise_requests_assigned_to_id"))

    op.drop_table("expertise_requests")
    with op.batch_alter_table("availability_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_availability_rules_specialist_id"))

    op.drop_table("availability_rules")
    with op.batch_alter_table("availability_exceptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_availability_exceptions_specialist_id"))

    op.drop_table("availability_exceptions")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_at"))
        batch_op.drop_index(batch_op.f("ix_audit_events_actor_id"))

    op.drop_table("audit_events")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_user_id"))

    op.drop_table("api_tokens")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_specialty_id"))
        batch_op.drop_index(batch_op.f("ix_users_facility_id"))

    op.drop_table("users")
    with op.batch_alter_table("facilities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_facilities_departement_code"))

    op.drop_table("facilities")
    with op.batch_alter_table("departements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_departements_region_id"))

    op.drop_table("departements")
    op.drop_table("specialties")
    op.drop_table("regions")
    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_login_attempts_email_at")
        batch_op.drop_index("ix_login_attempts_address_at")

    op.drop_table("login_attempts")
    with op.batch_alter_table("acts", schema=None) as batch_op:
        batch_op.drop_index("ix_acts_occurred_at")

    op.drop_table("acts")
