"""The whole domain as SQLAlchemy 2 typed models.

Times are stored in UTC (`UTCDateTime` refuses naive datetimes), local wall-clock times only
where a rule is expressed in local time (availability rules). Enumerations are stored as short
strings with CHECK constraints so SQLite and PostgreSQL enforce the same vocabulary. Invariants
that matter (one active booking per slot, one act per source) are enforced by the database.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Dialect,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    Time,
    TypeDecorator,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every database (SQLite has no time zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: Telmi stores aware UTC datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=max(len(m.value) for m in cls),
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class Role(enum.StrEnum):
    STAFF = "staff"
    SPECIALIST = "specialist"
    REGIONAL = "regional"
    ADMIN = "admin"


class FacilityCategory(enum.StrEnum):
    HEALTH_CENTRE = "health_centre"
    NURSING_HOME = "nursing_home"
    DISABILITY_FACILITY = "disability_facility"
    HOSPITAL = "hospital"


class ActType(enum.StrEnum):
    """The five acts of the public health code (R.6316-1) plus télésoin (L.6316-2)."""

    TELECONSULTATION = "teleconsultation"
    TELEEXPERTISE = "teleexpertise"
    TELESURVEILLANCE = "telesurveillance"
    TELEASSISTANCE = "teleassistance"
    REGULATION = "regulation"
    TELESOIN = "telesoin"


# Stable bit per act type, so a slot can offer several and a search filters with one AND.
ACT_BITS: dict[ActType, int] = {t: 1 << i for i, t in enumerate(ActType)}


def act_mask(types: Iterable[ActType | str]) -> int:
    mask = 0
    for t in types:
        mask |= ACT_BITS[ActType(t)]
    return mask


def act_types_of(mask: int) -> list[ActType]:
    return [t for t, bit in ACT_BITS.items() if mask & bit]


class SlotStatus(enum.StrEnum):
    OPEN = "open"
    BLOCKED = "blocked"  # closed by an availability exception
    WITHDRAWN = "withdrawn"  # its rule was changed or deleted


class BookingStatus(enum.StrEnum):
    HELD = "held"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    COMPLETED = "completed"
    NO_SHOW = "no_show"


ACTIVE_BOOKING_STATUSES = (BookingStatus.HELD, BookingStatus.CONFIRMED, BookingStatus.COMPLETED)


class ConsultationStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    ENDED = "ended"


class ExpertiseUrgency(enum.StrEnum):
    H24 = "24h"
    H72 = "72h"
    D7 = "7d"


class ExpertiseStatus(enum.StrEnum):
    DRAFT = "draft"
    SENT = "sent"
    TAKEN = "taken"
    NEEDS_INFORMATION = "needs_information"
    ANSWERED = "answered"
    DECLINED = "declined"
    EXPIRED = "expired"


class IdentityStatus(enum.StrEnum):
    """The four statuses of the national identity-vigilance referential (RNIV)."""

    PROVISIONAL = "provisional"
    RETRIEVED = "retrieved"  # INS returned by the INSi teleservice, identity not yet checked
    VALIDATED = "validated"  # identity checked against a document, INS not retrieved
    QUALIFIED = "qualified"  # both


class IdentityDocument(enum.StrEnum):
    """Documents of high trust the RNIV accepts to check an identity."""

    NONE = ""
    IDENTITY_CARD = "identity_card"
    PASSPORT = "passport"
    RESIDENCE_PERMIT = "residence_permit"
    BIRTH_CERTIFICATE = "birth_certificate"  # with a family record book, for minors
    FAMILY_RECORD_BOOK = "family_record_book"


class ConsentGiver(enum.StrEnum):
    RESIDENT = "resident"
    LEGAL_REPRESENTATIVE = "legal_representative"
    TRUSTED_PERSON = "trusted_person"


class ConsentMethod(enum.StrEnum):
    ORAL = "oral"
    WRITTEN = "written"


class ConsentDecision(enum.StrEnum):
    GRANTED = "granted"
    REFUSED = "refused"


class ReportStatus(enum.StrEnum):
    DRAFT = "draft"
    SIGNED = "signed"


class NotificationStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    DEAD = "dead"


# --- territory and directory ---------------------------------------------------------------


class Region(Base):
    __tablename__ = "regions"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(3), unique=True)  # INSEE region code, "27" = BFC
    name: Mapped[str] = mapped_column(String(100))

    departements: Mapped[list[Departement]] = relationship(back_populates="region", lazy="raise")


class Departement(Base):
    __tablename__ = "departements"

    code: Mapped[str] = mapped_column(String(3), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"), index=True)

    region: Mapped[Region] = relationship(back_populates="departements", lazy="raise")


class Facility(Base):
    __tablename__ = "facilities"
    __table_args__ = (
        CheckConstraint("length(finess) = 9", name="finess_length"),
        Index("ix_facilities_name_id", "name", "id"),  # the directory's pages, by name
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    finess: Mapped[str] = mapped_column(String(9), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[FacilityCategory] = mapped_column(_enum(FacilityCategory, "facility_category"))
    finess_category_code: Mapped[str] = mapped_column(String(4))
    finess_category_label: Mapped[str] = mapped_column(String(200), default="")
    departement_code: Mapped[str] = mapped_column(ForeignKey("departements.code"), index=True)
    commune: Mapped[str] = mapped_column(String(100))
    postcode: Mapped[str] = mapped_column(String(5), default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column()
    # From the FINESS extract (telmi/finess.py), or typed by an admin.
    legal_entity_finess: Mapped[str] = mapped_column(String(9), default="")
    address: Mapped[str] = mapped_column(String(300), default="")
    phone: Mapped[str] = mapped_column(String(20), default="")
    siret: Mapped[str] = mapped_column(String(14), default="")
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    video_notes: Mapped[str] = mapped_column(Text, default="")
    finess_updated_on: Mapped[date | None] = mapped_column(Date)  # the extract's datemaj
    # Absent from the latest extract imported: flagged « fermé dans FINESS », never deleted.
    finess_closed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime | None]

    departement: Mapped[Departement] = relationship(lazy="raise")


class Specialty(Base):
    __tablename__ = "specialties"
    __table_args__ = (Index("ix_specialties_name_id", "name", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    retired_at: Mapped[datetime | None]  # no new slot, booking or request; history kept


# --- accounts -------------------------------------------------------------------------------


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role <> 'staff' OR facility_id IS NOT NULL", name="staff_has_facility"),
        CheckConstraint(
            "role <> 'specialist' OR specialty_id IS NOT NULL", name="specialist_has_specialty"
        ),
        Index("ix_users_role_email", "role", "email"),  # « Comptes », a page at a time
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    facility_id: Mapped[int | None] = mapped_column(ForeignKey("facilities.id"), index=True)
    specialty_id: Mapped[int | None] = mapped_column(ForeignKey("specialties.id"), index=True)
    rpps: Mapped[str | None] = mapped_column(String(11), unique=True)
    # Where a specialist practises, for searches by département.
    departement_code: Mapped[str | None] = mapped_column(ForeignKey("departements.code"))
    password_hash: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column()
    disabled_at: Mapped[datetime | None]

    facility: Mapped[Facility | None] = relationship(lazy="raise")
    specialty: Mapped[Specialty | None] = relationship(lazy="raise")


class WebSession(Base):
    """A browser session; only the SHA-256 of the cookie value is stored."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column()
    last_seen_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="")


class ApiToken(Base):
    """A personal token for scripts; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column()
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(lazy="raise")


class AccountLink(Base):
    """A one-time link sent by mail: an invitation to choose a password, or a reset. Only
    the SHA-256 of its token is stored; it works once, before it expires."""

    __tablename__ = "account_links"
    __table_args__ = (CheckConstraint("purpose IN ('invitation', 'reset')", name="purpose"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(12))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class FinessImport(Base):
    """One applied import of a FINESS extract: what it changed, for the admin page."""

    __tablename__ = "finess_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column()
    by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    filename: Mapped[str] = mapped_column(String(200), default="")
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)


class LoginAttempt(Base):
    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_email_at", "email", "at"),
        Index("ix_login_attempts_address_at", "address", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    succeeded: Mapped[bool] = mapped_column(Boolean)


# --- residents and their records -------------------------------------------------------------


class Patient(Base):
    """A facility's resident. The strict identity traits and the INS are sealed together
    (`telmi/vault.py`) in `identity`; only what access and de-duplication need is in clear:
    the facility's own reference, the identity status, and a keyed digest of the INS."""

    __tablename__ = "patients"
    __table_args__ = (
        UniqueConstraint("facility_id", "reference"),
        UniqueConstraint("facility_id", "ins_digest"),
        Index("ix_patients_facility_id_id", "facility_id", "id"),  # « Résidents » pages
        CheckConstraint(
            "identity_status <> 'qualified' OR (ins_digest IS NOT NULL AND identity_document <> '')",
            name="qualified_has_ins_and_document",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id"), index=True)
    reference: Mapped[str] = mapped_column(String(64))
    identity_status: Mapped[IdentityStatus] = mapped_column(
        _enum(IdentityStatus, "identity_status")
    )
    identity_document: Mapped[IdentityDocument] = mapped_column(
        _enum(IdentityDocument, "identity_document")
    )
    ins_digest: Mapped[str | None] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(16))
    identity: Mapped[bytes] = mapped_column(LargeBinary)
    doctor_name: Mapped[str] = mapped_column(String(200), default="")
    doctor_rpps: Mapped[str | None] = mapped_column(String(11))
    doctor_mail: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[datetime] = mapped_column()
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column()


class RequestForm(Base):
    """One version of the fields a specialty asks for an act type (telmi/request_forms.py)."""

    __tablename__ = "request_forms"
    __table_args__ = (UniqueConstraint("specialty_id", "act_type", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    specialty_id: Mapped[int] = mapped_column(ForeignKey("specialties.id"))
    act_type: Mapped[ActType] = mapped_column(_enum(ActType, "act_type"))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column()
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


# --- availability, slots, bookings ----------------------------------------------------------


class AvailabilityRule(Base):
    """A weekly rule in local wall-clock time; slots are materialised from it in UTC."""

    __tablename__ = "availability_rules"
    __table_args__ = (
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_range"),
        CheckConstraint("start_time < end_time", name="start_before_end"),
        CheckConstraint("slot_minutes > 0 AND buffer_minutes >= 0", name="positive_lengths"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    specialist_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    weekday: Mapped[int] = mapped_column(Integer)
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)
    slot_minutes: Mapped[int] = mapped_column(Integer)
    buffer_minutes: Mapped[int] = mapped_column(Integer, default=0)
    act_types: Mapped[list[str]] = mapped_column(JSON)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    open_on_public_holidays: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column()
    deleted_at: Mapped[datetime | None]


class AvailabilityException(Base):
    """A period when a specialist is away (leave, training) or blocked."""

    __tablename__ = "availability_exceptions"
    __table_args__ = (CheckConstraint("starts_at < ends_at", name="start_before_end"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    specialist_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column()


_OPEN_SLOT = text("status = 'open'")


class Slot(Base):
    """A bookable interval; its specialty is copied from the specialist so search is one index."""

    __tablename__ = "slots"
    __table_args__ = (
        UniqueConstraint("specialist_id", "starts_at"),
        CheckConstraint("starts_at < ends_at", name="start_before_end"),
        CheckConstraint("act_mask > 0", name="offers_an_act"),
        Index(
            "ix_slots_open_specialty_starts_at",
            "specialty_id",
            "starts_at",
            sqlite_where=_OPEN_SLOT,
            postgresql_where=_OPEN_SLOT,
        ),
        Index(
            "ix_slots_open_starts_at",
            "starts_at",
            sqlite_where=_OPEN_SLOT,
            postgresql_where=_OPEN_SLOT,
        ),
        # PostgreSQL also refuses two open slots of one specialist that overlap in time.
        ExcludeConstraint(
            (Column("specialist_id"), "="),
            (func.tstzrange(Column("starts_at"), Column("ends_at")), "&&"),
            name="ex_slots_no_overlap",
            using="gist",
            where=_OPEN_SLOT,
        ).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    specialist_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    specialty_id: Mapped[int] = mapped_column(ForeignKey("specialties.id"))
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("availability_rules.id"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    act_mask: Mapped[int] = mapped_column(Integer)
    status: Mapped[SlotStatus] = mapped_column(
        _enum(SlotStatus, "slot_status"), default=SlotStatus.OPEN
    )
    created_at: Mapped[datetime] = mapped_column()

    specialist: Mapped[User] = relationship(lazy="raise")


_ACTIVE_BOOKING = text("status IN ('held', 'confirmed', 'completed')")
_LISTED_BOOKING = text("status <> 'expired'")


class Booking(Base):
    __tablename__ = "bookings"
    __table_args__ = (
        # At most one active booking per slot, on every database.
        Index(
            "uq_bookings_active_slot",
            "slot_id",
            unique=True,
            sqlite_where=_ACTIVE_BOOKING,
            postgresql_where=_ACTIVE_BOOKING,
        ),
        CheckConstraint("status <> 'held' OR hold_expires_at IS NOT NULL", name="hold_has_expiry"),
        # The lists (`booking.list_bookings`): a facility's and a specialist's bookings in
        # slot order, a page read straight off the index, expired holds left out of it.
        Index(
            "ix_bookings_facility_starts_at",
            "facility_id",
            "starts_at",
            "id",
            sqlite_where=_LISTED_BOOKING,
            postgresql_where=_LISTED_BOOKING,
        ),
        Index(
            "ix_bookings_specialist_starts_at",
            "specialist_id",
            "starts_at",
            "id",
            sqlite_where=_LISTED_BOOKING,
            postgresql_where=_LISTED_BOOKING,
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("slots.id"))
    # Copied from the slot at insert (a booking never changes slot: a move is a new booking),
    # so the lists order and filter on the booking's own index.
    specialist_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id"), index=True)
    booked_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True)
    act_type: Mapped[ActType] = mapped_column(_enum(ActType, "act_type"))
    reason: Mapped[str] = mapped_column(Text, default="")
    form_id: Mapped[int | None] = mapped_column(ForeignKey("request_forms.id"))
    answers: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[BookingStatus] = mapped_column(_enum(BookingStatus, "booking_status"))
    hold_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column()
    confirmed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    cancelled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    cancel_reason: Mapped[str] = mapped_column(String(500), default="")
    rescheduled_from_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"))

    slot: Mapped[Slot] = relationship(lazy="raise")
    facility: Mapped[Facility] = relationship(lazy="raise")


class IdempotencyKey(Base):
    """The first response to a keyed request, replayed for the same key and body."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column(index=True)


# --- consultations --------------------------------------------------------------------------


class Consultation(Base):
    __tablename__ = "consultations"

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id"), unique=True)
    room_id: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[ConsultationStatus] = mapped_column(
        _enum(ConsultationStatus, "consultation_status"), default=ConsultationStatus.SCHEDULED
    )
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    ended_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    outcome: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column()

    booking: Mapped[Booking] = relationship(lazy="raise")


class Invite(Base):
    """A single-use, expiring guest link; only the SHA-256 of its token is stored."""

    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(primary_key=True)
    consultation_id: Mapped[int] = mapped_column(ForeignKey("consultations.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    guest_label: Mapped[str] = mapped_column(String(100))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Presence(Base):
    """One participant's stay in a consultation room (join to leave)."""

    __tablename__ = "presences"

    id: Mapped[int] = mapped_column(primary_key=True)
    consultation_id: Mapped[int] = mapped_column(ForeignKey("consultations.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    invite_id: Mapped[int | None] = mapped_column(ForeignKey("invites.id"))
    role: Mapped[str] = mapped_column(String(20))
    joined_at: Mapped[datetime]
    left_at: Mapped[datetime | None]


# --- tele-expertise -------------------------------------------------------------------------


_TO_SPECIALTY = text("specialist_id IS NULL")  # a request to the specialty, no one named


class ExpertiseRequest(Base):
    __tablename__ = "expertise_requests"
    __table_args__ = (
        Index("ix_expertise_requests_specialty_status", "specialty_id", "status"),
        # The lists (`expertise.listing`), newest first: a facility's requests, and the three
        # ways a request reaches a specialist's inbox, each a page read off its own index.
        Index("ix_expertise_requests_facility_id_created_at_id", "facility_id", "created_at", "id"),
        Index("ix_expertise_requests_specialist_id_sent_at_id", "specialist_id", "sent_at", "id"),
        Index("ix_expertise_requests_assigned_to_id_sent_at_id", "assigned_to_id", "sent_at", "id"),
        Index(  # partial: PostgreSQL orders by an index only after equalities, not IS NULL
            "ix_expertise_requests_specialty_id_sent_at_id",
            "specialty_id",
            "sent_at",
            "id",
            sqlite_where=_TO_SPECIALTY,
            postgresql_where=_TO_SPECIALTY,
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id"), index=True)
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    specialty_id: Mapped[int] = mapped_column(ForeignKey("specialties.id"))
    specialist_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    assigned_to_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    question: Mapped[str] = mapped_column(Text, default="")
    clinical_context: Mapped[str] = mapped_column(Text, default="")
    form_id: Mapped[int | None] = mapped_column(ForeignKey("request_forms.id"))
    answers: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    urgency: Mapped[ExpertiseUrgency] = mapped_column(_enum(ExpertiseUrgency, "urgency"))
    status: Mapped[ExpertiseStatus] = mapped_column(
        _enum(ExpertiseStatus, "expertise_status"), default=ExpertiseStatus.DRAFT
    )
    created_at: Mapped[datetime] = mapped_column()
    sent_at: Mapped[datetime | None]
    due_at: Mapped[datetime | None]
    taken_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]


class ExpertiseMessage(Base):
    """The request's thread: follow-up questions, added information, the answer."""

    __tablename__ = "expertise_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("expertise_requests.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column()


class ExpertiseAttachment(Base):
    """A photo's metadata; the bytes live in storage under their content hash."""

    __tablename__ = "expertise_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("expertise_requests.id"), index=True)
    uploaded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    content_hash: Mapped[str] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(50))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column()


class PhotoBlob(Base):
    """Photo bytes kept in the database (TELMI_PHOTO_STORAGE=database), for deployments
    whose processes share no disk. Keyed by content hash, like the files."""

    __tablename__ = "photo_blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    thumbnail: Mapped[bytes] = mapped_column(LargeBinary)


# --- consent and reports -------------------------------------------------------------------


class ConsentRecord(Base):
    """A consent (or a refusal) to one act, collected before it; never edited: a later
    record for the same act supersedes it."""

    __tablename__ = "consents"
    __table_args__ = (
        CheckConstraint(
            "(booking_id IS NULL) <> (expertise_request_id IS NULL)", name="for_one_act"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"), index=True)
    expertise_request_id: Mapped[int | None] = mapped_column(
        ForeignKey("expertise_requests.id"), index=True
    )
    act_type: Mapped[ActType] = mapped_column(_enum(ActType, "act_type"))
    given_by: Mapped[ConsentGiver] = mapped_column(_enum(ConsentGiver, "consent_giver"))
    method: Mapped[ConsentMethod] = mapped_column(_enum(ConsentMethod, "consent_method"))
    decision: Mapped[ConsentDecision] = mapped_column(_enum(ConsentDecision, "consent_decision"))
    given_at: Mapped[datetime]
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[datetime]
    note: Mapped[str] = mapped_column(String(500), default="")


class Report(Base):
    """The compte rendu of one act; signing locks it (on PostgreSQL a trigger refuses any
    change to a signed report) and corrections are signed addenda."""

    __tablename__ = "reports"
    __table_args__ = (
        CheckConstraint(
            "(booking_id IS NULL) <> (expertise_request_id IS NULL)", name="for_one_act"
        ),
        CheckConstraint(
            "status <> 'signed' OR (sha256 IS NOT NULL AND signed_at IS NOT NULL)",
            name="signed_has_hash",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"), unique=True)
    expertise_request_id: Mapped[int | None] = mapped_column(
        ForeignKey("expertise_requests.id"), unique=True
    )
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    status: Mapped[ReportStatus] = mapped_column(_enum(ReportStatus, "report_status"))
    reason: Mapped[str] = mapped_column(Text, default="")
    findings: Mapped[str] = mapped_column(Text, default="")
    conclusion: Mapped[str] = mapped_column(Text, default="")
    recommendations: Mapped[str] = mapped_column(Text, default="")
    prescriptions: Mapped[str] = mapped_column(Text, default="")
    follow_up_needed: Mapped[bool] = mapped_column(Boolean, default=False)
    follow_up_when: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()
    signed_at: Mapped[datetime | None]
    sha256: Mapped[str | None] = mapped_column(String(64))


class ReportAddendum(Base):
    """A signed correction or complement to a signed report; append-only."""

    __tablename__ = "report_addenda"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[datetime]
    sha256: Mapped[str] = mapped_column(String(64))


# --- act log, audit, notifications ----------------------------------------------------------


class Act(Base):
    """One medical act, append-only, its dimensions copied at write time, hash-chained.

    A correction is a second row with `sign` -1 that names the act it cancels and repeats its
    dimensions, so every count is a plain SUM(sign) and history is never rewritten."""

    __tablename__ = "acts"
    __table_args__ = (
        Index("ix_acts_occurred_on", "occurred_on"),
        # GET /api/acts, newest first (`acts.page`): all acts, or one specialist's.
        Index("ix_acts_occurred_at_id", "occurred_at", "id"),
        Index("ix_acts_specialist_id_occurred_at_id", "specialist_id", "occurred_at", "id"),
        CheckConstraint("sign IN (1, -1)", name="sign"),
        CheckConstraint("(sign = -1) = (cancels_act_id IS NOT NULL)", name="cancel_has_original"),
        CheckConstraint("duration_seconds >= 0", name="duration"),
        CheckConstraint(
            "requester_rpps IS NOT NULL OR requester_id IS NOT NULL", name="requester_known"
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    act_type: Mapped[ActType] = mapped_column(_enum(ActType, "act_type"))
    occurred_at: Mapped[datetime]
    # The local (Europe/Paris) calendar of the act, fixed at write time for grouping.
    occurred_on: Mapped[date] = mapped_column(Date)
    month: Mapped[int] = mapped_column(Integer)  # yyyymm
    iso_week: Mapped[int] = mapped_column(Integer)  # yyyyww (ISO year and week)
    duration_seconds: Mapped[int] = mapped_column(Integer)
    sign: Mapped[int] = mapped_column(Integer, default=1)
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id"))
    facility_finess: Mapped[str] = mapped_column(String(9))
    facility_category: Mapped[FacilityCategory] = mapped_column(
        _enum(FacilityCategory, "facility_category")
    )
    facility_category_code: Mapped[str] = mapped_column(String(4))
    departement_code: Mapped[str] = mapped_column(String(3))
    region_code: Mapped[str] = mapped_column(String(3))
    requester_role: Mapped[str] = mapped_column(String(40))
    requester_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    requester_rpps: Mapped[str | None] = mapped_column(String(11))
    specialist_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    specialist_rpps: Mapped[str | None] = mapped_column(String(11))
    specialty_code: Mapped[str] = mapped_column(String(40))
    source_key: Mapped[str] = mapped_column(String(120), unique=True)
    patient_key: Mapped[str] = mapped_column(String(64))
    patient_consent: Mapped[bool] = mapped_column(Boolean)
    incidents: Mapped[str] = mapped_column(String(500), default="")
    cancels_act_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("acts.id"), unique=True
    )
    note: Mapped[str] = mapped_column(String(500), default="")
    # Téléexpertise: from the request sent to the answer.
    response_seconds: Mapped[int | None] = mapped_column(Integer)
    consent_id: Mapped[int | None] = mapped_column(ForeignKey("consents.id"))
    # Everyone who was in the room: [{"role", "name"}], from the presences.
    participants: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    recorded_at: Mapped[datetime]
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class ActDocument(Base):
    """A signed report or addendum of an act: its SHA-256, appended once signed, whether
    the signature came before the act was logged or after. Append-only like the log."""

    __tablename__ = "act_documents"
    __table_args__ = (UniqueConstraint("act_id", "sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    act_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("acts.id"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))  # report, addendum
    sha256: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime]


class ActMonth(Base):
    """Rollup of the act log: net acts and duration per month and dimension cell.

    Written in the transaction that appends the act, so it always equals the log's sums."""

    __tablename__ = "act_months"

    month: Mapped[int] = mapped_column(Integer, primary_key=True)
    act_type: Mapped[ActType] = mapped_column(_enum(ActType, "act_type"), primary_key=True)
    region_code: Mapped[str] = mapped_column(String(3), primary_key=True)
    departement_code: Mapped[str] = mapped_column(String(3), primary_key=True)
    facility_category: Mapped[FacilityCategory] = mapped_column(
        _enum(FacilityCategory, "facility_category"), primary_key=True
    )
    facility_finess: Mapped[str] = mapped_column(String(9), primary_key=True)
    specialty_code: Mapped[str] = mapped_column(String(40), primary_key=True)
    acts: Mapped[int] = mapped_column(Integer)
    duration_seconds: Mapped[int] = mapped_column(BigInteger)


class ActMonthPatient(Base):
    """The exact patient sets behind the rollup: net acts per month, cell and patient key.

    Written with `act_months` in the act's transaction; a row at 0 is a patient whose acts
    there were all cancelled, who no longer counts. Distinct patients are not additive, so
    they are counted over these rows (one per patient and cell) instead of over the log."""

    __tablename__ = "act_month_patients"
    # A patient's rows of a year, read when one of their acts is written (`patient_counts`).
    __table_args__ = (Index("ix_act_month_patients_patient_key_month", "patient_key", "month"),)

    month: Mapped[int] = mapped_column(Integer, primary_key=True)
    act_type: Mapped[ActType] = mapped_column(_enum(ActType, "act_type"), primary_key=True)
    region_code: Mapped[str] = mapped_column(String(3), primary_key=True)
    departement_code: Mapped[str] = mapped_column(String(3), primary_key=True)
    facility_category: Mapped[FacilityCategory] = mapped_column(
        _enum(FacilityCategory, "facility_category"), primary_key=True
    )
    facility_finess: Mapped[str] = mapped_column(String(9), primary_key=True)
    specialty_code: Mapped[str] = mapped_column(String(40), primary_key=True)
    patient_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    acts: Mapped[int] = mapped_column(Integer)


class ActPatientCount(Base):
    """Distinct patients kept as counts, per month and coarse cell, so a year's figures by
    month, département and facility category are read, not counted.

    A cell is a region, département and facility category, each '' where it is summed over
    (six grains: see `telmi/patient_counts.py`). `patients` is the month's distinct patients
    in the cell; `new_patients` those whose first month of the calendar year in the cell is
    this one, so a year to the end of any month is the sum of its months'. Written with the
    patient sets in the act's transaction."""

    __tablename__ = "act_patient_counts"

    month: Mapped[int] = mapped_column(Integer, primary_key=True)
    region_code: Mapped[str] = mapped_column(String(3), primary_key=True)
    departement_code: Mapped[str] = mapped_column(String(3), primary_key=True)
    facility_category: Mapped[str] = mapped_column(String(19), primary_key=True)
    patients: Mapped[int] = mapped_column(Integer)
    new_patients: Mapped[int] = mapped_column(Integer)


# The actions an administrator's change writes; the reads and the care acts are elsewhere.
ADMIN_ACTION_PREFIXES = (
    "facility.",
    "specialty.",
    "user.",
    "account.",
    "form.",
    "finess.",
    "departement.",
)
_ADMIN_CHANGE = text(" OR ".join(f"action LIKE '{p}%'" for p in ADMIN_ACTION_PREFIXES))


class AuditEvent(Base):
    """Who did what to which record, when and from where; never patient data itself.

    A read of a resident's data names the resident (`patient_id`), so a facility can answer
    a right-of-access request. Rows are never updated (a trigger refuses it on PostgreSQL);
    the retention job deletes the old ones."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_patient_id_at", "patient_id", "at"),
        Index("ix_audit_events_patient_id_id", "patient_id", "id"),  # « Accès au dossier »
        # « Journal d'administration »: its query repeats this predicate (`admin_change`).
        Index(
            "ix_audit_events_admin_id",
            "id",
            sqlite_where=_ADMIN_CHANGE,
            postgresql_where=_ADMIN_CHANGE,
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    actor_role: Mapped[str] = mapped_column(String(20), default="")
    actor_facility_id: Mapped[int | None] = mapped_column(ForeignKey("facilities.id"))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"))
    action: Mapped[str] = mapped_column(String(60))
    target_type: Mapped[str] = mapped_column(String(40), default="")
    target_id: Mapped[str] = mapped_column(String(40), default="")
    address: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Notification(Base):
    """The outbox: shown in the pages, then delivered by mail when SMTP is configured."""

    __tablename__ = "notifications"
    __table_args__ = (
        # « Mes notifications », newest first, a page at a time (`notify.for_user`).
        Index("ix_notifications_user_id_created_at_id", "user_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    dedupe_key: Mapped[str] = mapped_column(String(120), unique=True)
    status: Mapped[NotificationStatus] = mapped_column(
        _enum(NotificationStatus, "notification_status"), default=NotificationStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column()
    sent_at: Mapped[datetime | None]
    read_at: Mapped[datetime | None]
    # An iCalendar invitation (booking confirmed, moved, cancelled), sent as an attachment.
    ics: Mapped[str | None] = mapped_column(Text)


class JobRun(Base):
    """The last run of each background job, whichever process ran it (for the admin page)."""

    __tablename__ = "job_runs"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    last_started_at: Mapped[datetime]
    last_duration_ms: Mapped[int] = mapped_column(Integer)
    last_ok: Mapped[bool] = mapped_column(Boolean)
    last_result: Mapped[str] = mapped_column(String(500), default="")
    next_run_at: Mapped[datetime | None]
    runs: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    runner: Mapped[str] = mapped_column(String(100), default="")
