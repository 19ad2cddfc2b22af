"""Residents, consent, request forms, reports

Bookings and tele-expertise requests now refer to a resident (`patients`) instead of a free
reference: each distinct (facility, reference) becomes a provisional resident, carrying the
INS a booking had (sealed with TELMI_DATA_KEY, no longer in clear), and every booking keeps
its resident. A request's ticked consent box becomes a consent record. On PostgreSQL,
triggers refuse changes to signed reports, to addenda, to act documents and to audit events
(which the retention job may still delete).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 02:44:46.457523
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import telmi.models
from telmi.settings import Settings

TRIGGERS = [
    """CREATE FUNCTION telmi_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP;
END $$""",
    """CREATE TRIGGER report_addenda_append_only BEFORE UPDATE OR DELETE ON report_addenda
  FOR EACH ROW EXECUTE FUNCTION telmi_refuse_change()""",
    """CREATE TRIGGER act_documents_append_only BEFORE UPDATE OR DELETE ON act_documents
  FOR EACH ROW EXECUTE FUNCTION telmi_refuse_change()""",
    """CREATE TRIGGER audit_events_never_updated BEFORE UPDATE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION telmi_refuse_change()""",
    """CREATE FUNCTION telmi_signed_report_locked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.status = 'signed' THEN
    RAISE EXCEPTION 'report % is signed: corrections are addenda', OLD.id;
  END IF;
  RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$""",
    """CREATE TRIGGER reports_signed_locked BEFORE UPDATE OR DELETE ON reports
  FOR EACH ROW EXECUTE FUNCTION telmi_signed_report_locked()""",
]

DROP_TRIGGERS = [
    "DROP TRIGGER reports_signed_locked ON reports",
    "DROP FUNCTION telmi_signed_report_locked()",
    "DROP TRIGGER audit_events_never_updated ON audit_events",
    "DROP TRIGGER act_documents_append_only ON act_documents",
    "DROP TRIGGER report_addenda_append_only ON report_addenda",
    "DROP FUNCTION telmi_refuse_change()",
]


def _settings() -> Settings:
    given = op.get_context().config.attributes.get("settings") if op.get_context().config else None
    return given if given is not None else Settings.from_env()


def _oid(ins: str) -> str:
    # A NIA (number awaiting a NIR) starts with 7 or 8.
    return "1.2.250.1.213.1.4.9" if ins[:1] in "78" else "1.2.250.1.213.1.4.8"


def _residents_from_references() -> None:
    from telmi import patients

    settings = _settings()
    vault, conn = settings.vault, op.get_bind()
    rows = conn.execute(sa.text(
        "SELECT b.facility_id, b.patient_ref, MAX(b.patient_ins), MIN(b.created_at), f.finess"
        " FROM (SELECT facility_id, patient_ref, patient_ins, created_at FROM bookings"
        "       WHERE patient_ref <> ''"
        "       UNION ALL SELECT facility_id, patient_ref, NULL, created_at"
        "       FROM expertise_requests) b JOIN facilities f ON f.id = b.facility_id"
        " GROUP BY b.facility_id, b.patient_ref, f.finess"
    )).all()
    patients_table = sa.table(
        "patients", *(sa.column(n) for n in (
            "facility_id", "reference", "identity_status", "identity_document", "ins_digest",
            "key_id", "identity", "doctor_name", "doctor_mail", "created_at", "updated_at",
        ))
    )
    seen_ins: set[tuple[int, str]] = set()
    for facility_id, reference, ins, created_at, _finess in rows:
        if ins and (facility_id, ins) in seen_ins:
            ins = None  # one INS, two references: the second stays without it, provisional
        if ins:
            seen_ins.add((facility_id, ins))
        identity = {"ins": {"value": ins, "oid": _oid(ins)}} if ins else {}
        key_id, sealed = vault.seal(identity, patients.aad(facility_id))
        conn.execute(patients_table.insert().values(
            facility_id=facility_id, reference=reference, identity_status="provisional",
            identity_document="", key_id=key_id, identity=sealed,
            ins_digest=patients.ins_digest(vault, ins) if ins else None,
            doctor_name="", doctor_mail="", created_at=created_at, updated_at=created_at,
        ))
    for table in ("bookings", "expertise_requests"):
        conn.execute(sa.text(
            f"UPDATE {table} SET patient_id = (SELECT p.id FROM patients p"
            f" WHERE p.facility_id = {table}.facility_id AND p.reference = {table}.patient_ref)"
        ))
    conn.execute(sa.text(
        "INSERT INTO consents (patient_id, expertise_request_id, act_type, given_by, method,"
        " decision, given_at, recorded_by_id, recorded_at, note)"
        " SELECT patient_id, id, 'teleexpertise', 'resident', 'oral', 'granted', created_at,"
        " requested_by_id, created_at, 'case cochée avant la version 0007'"
        " FROM expertise_requests WHERE consent_recorded"
    ))


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    op.create_table('patients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('facility_id', sa.Integer(), nullable=False),
    sa.Column('reference', sa.String(length=64), nullable=False),
    sa.Column('identity_status', sa.Enum('provisional', 'retrieved', 'validated', 'qualified', name='identity_status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('identity_document', sa.Enum('', 'identity_card', 'passport', 'residence_permit', 'birth_certificate', 'family_record_book', name='identity_document', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('ins_digest', sa.String(length=64), nullable=True),
    sa.Column('key_id', sa.String(length=16), nullable=False),
    sa.Column('identity', sa.LargeBinary(), nullable=False),
    sa.Column('doctor_name', sa.String(length=200), nullable=False),
    sa.Column('doctor_rpps', sa.String(length=11), nullable=True),
    sa.Column('doctor_mail', sa.String(length=254), nullable=False),
    sa.Column('created_at', telmi.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', telmi.models.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("identity_status <> 'qualified' OR (ins_digest IS NOT NULL AND identity_document <> '')", name=op.f('ck_patients_qualified_has_ins_and_document')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_patients_created_by_id_users')),
    sa.ForeignKeyConstraint(['facility_id'], ['facilities.id'], name=op.f('fk_patients_facility_id_facilities')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patients')),
    sa.UniqueConstraint('facility_id', 'ins_digest', name=op.f('uq_patients_facility_id_ins_digest')),
    sa.UniqueConstraint('facility_id', 'reference', name=op.f('uq_patients_facility_id_reference'))
    )
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patients_facility_id'), ['facility_id'], unique=False)

    op.create_table('request_forms',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('specialty_id', sa.Integer(), nullable=False),
    sa.Column('act_type', sa.Enum('teleconsultation', 'teleexpertise', 'telesurveillance', 'teleassistance', 'regulation', 'telesoin', name='act_type', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('definition', sa.JSON(), nullable=False),
    sa.Column('created_at', telmi.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_request_forms_created_by_id_users')),
    sa.ForeignKeyConstraint(['specialty_id'], ['specialties.id'], name=op.f('fk_request_forms_specialty_id_specialties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_request_forms')),
    sa.UniqueConstraint('specialty_id', 'act_type', 'version', name=op.f('uq_request_forms_specialty_id_act_type_version'))
    )
    op.create_table('consents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('booking_id', sa.Integer(), nullable=True),
    sa.Column('expertise_request_id', sa.Integer(), nullable=True),
    sa.Column('act_type', sa.Enum('teleconsultation', 'teleexpertise', 'telesurveillance', 'teleassistance', 'regulation', 'telesoin', name='act_type', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('given_by', sa.Enum('resident', 'legal_representative', 'trusted_person', name='consent_giver', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('method', sa.Enum('oral', 'written', name='consent_method', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('decision', sa.Enum('granted', 'refused', name='consent_decision', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('given_at', telmi.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recorded_by_id', sa.Integer(), nullable=False),
    sa.Column('recorded_at', telmi.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.CheckConstraint('(booking_id IS NULL) <> (expertise_request_id IS NULL)', name=op.f('ck_consents_for_one_act')),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_consents_booking_id_bookings')),
    sa.ForeignKeyConstraint(['expertise_request_id'], ['expertise_requests.id'], name=op.f('fk_consents_expertise_request_id_expertise_requests')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_consents_patient_id_patients')),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['users.id'], name=op.f('fk_consents_recorded_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consents'))
    )
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consents_booking_id'), ['booking_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_consents_expertise_request_id'), ['expertise_request_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_consents_patient_id'), ['patient_id'], unique=False)

    op.create_table('reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('booking_id', sa.Integer(), nullable=True),
    sa.Column('expertise_request_id', sa.Integer(), nullable=True),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('draft', 'signed', name='report_status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('findings', sa.Text(), nullable=False),
    sa.Column('conclusion', sa.Text(), nullable=False),
    sa.Column('recommendations', sa.Text(), nullable=False),
    sa.Column('prescriptions', sa.Text(), nullable=False),
    sa.Column('follow_up_needed', sa.Boolean(), nullable=False),
    sa.Column('follow_up_when', sa.String(length=200), nullable=False),
    sa.Column('created_at', telmi.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', telmi.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('signed_at', telmi.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.CheckConstraint("status <> 'signed' OR (sha256 IS NOT NULL AND signed_at IS NOT NULL)", name=op.f('ck_reports_signed_has_hash')),
    sa.CheckConstraint('(booking_id IS NULL) <> (expertise_request_id IS NULL)', name=op.f('ck_reports_for_one_act')),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_reports_author_id_users')),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_reports_booking_id_bookings')),
    sa.ForeignKeyConstraint(['expertise_request_id'], ['expertise_requests.id'], name=op.f('fk_reports_expertise_request_id_expertise_requests')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_reports_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reports')),
    sa.UniqueConstraint('booking_id', name=op.f('uq_reports_booking_id')),
    sa.UniqueConstraint('expertise_request_id', name=op.f('uq_reports_expertise_request_id'))
    )
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reports_patient_id'), ['patient_id'], unique=False)

    op.create_table('report_addenda',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('signed_at', telmi.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_report_addenda_author_id_users')),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], name=op.f('fk_report_addenda_report_id_reports')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_addenda'))
    )
    with op.batch_alter_table('report_addenda', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_addenda_report_id'), ['report_id'], unique=False)

    op.create_table('act_documents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('act_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('recorded_at', telmi.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['act_id'], ['acts.id'], name=op.f('fk_act_documents_act_id_acts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_act_documents')),
    sa.UniqueConstraint('act_id', 'sha256', name=op.f('uq_act_documents_act_id_sha256'))
    )
    with op.batch_alter_table('act_documents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_act_documents_act_id'), ['act_id'], unique=False)

    with op.batch_alter_table('acts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('consent_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('participants', sa.JSON(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_acts_consent_id_consents'), 'consents', ['consent_id'], ['id'])

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('actor_facility_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('patient_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_audit_events_patient_id_at', ['patient_id', 'at'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_audit_events_patient_id_patients'), 'patients', ['patient_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_audit_events_actor_facility_id_facilities'), 'facilities', ['actor_facility_id'], ['id'])

    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('patient_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('form_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('answers', sa.JSON(), nullable=True))
        batch_op.create_index(batch_op.f('ix_bookings_patient_id'), ['patient_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_bookings_form_id_request_forms'), 'request_forms', ['form_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_bookings_patient_id_patients'), 'patients', ['patient_id'], ['id'])

    with op.batch_alter_table('expertise_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('patient_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('form_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('answers', sa.JSON(), nullable=True))
        batch_op.create_index(batch_op.f('ix_expertise_requests_patient_id'), ['patient_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_expertise_requests_form_id_request_forms'), 'request_forms', ['form_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_expertise_requests_patient_id_patients'), 'patients', ['patient_id'], ['id'])

    _residents_from_references()

    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.drop_column('patient_ref')
        batch_op.drop_column('patient_ins')
    with op.batch_alter_table('expertise_requests', schema=None) as batch_op:
        batch_op.alter_column('patient_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('consent_recorded')
        batch_op.drop_column('patient_ref')
    if op.get_bind().dialect.name == "postgresql":
        for statement in TRIGGERS:
            op.execute(statement)


def _references_from_residents() -> None:
    from telmi import patients

    vault, conn = _settings().vault, op.get_bind()
    conn.execute(sa.text(
        "UPDATE expertise_requests SET patient_ref = (SELECT reference FROM patients p"
        " WHERE p.id = expertise_requests.patient_id), consent_recorded = EXISTS (SELECT 1"
        " FROM consents c WHERE c.expertise_request_id = expertise_requests.id"
        " AND c.decision = 'granted')"
    ))
    conn.execute(sa.text(
        "UPDATE bookings SET patient_ref = COALESCE((SELECT reference FROM patients p"
        " WHERE p.id = bookings.patient_id), '')"
    ))
    for pid, facility_id, key_id, sealed in conn.execute(sa.text(
        "SELECT id, facility_id, key_id, identity FROM patients WHERE ins_digest IS NOT NULL"
    )):
        ins = vault.open(key_id, sealed, patients.aad(facility_id)).get("ins") or {}
        conn.execute(
            sa.text("UPDATE bookings SET patient_ins = :ins WHERE patient_id = :pid"),
            {"ins": ins.get("value"), "pid": pid},
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in DROP_TRIGGERS:
            op.execute(statement)
    with op.batch_alter_table('expertise_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('patient_ref', sa.VARCHAR(length=64), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('consent_recorded', sa.BOOLEAN(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('patient_ins', sa.VARCHAR(length=15), nullable=True))
        batch_op.add_column(sa.Column('patient_ref', sa.VARCHAR(length=64), nullable=False, server_default=''))
    _references_from_residents()
    with op.batch_alter_table('expertise_requests', schema=None) as batch_op:
        batch_op.alter_column('patient_ref', server_default=None)
        batch_op.alter_column('consent_recorded', server_default=None)
        batch_op.drop_constraint(batch_op.f('fk_expertise_requests_patient_id_patients'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_expertise_requests_form_id_request_forms'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_expertise_requests_patient_id'))
        batch_op.drop_column('answers')
        batch_op.drop_column('form_id')
        batch_op.drop_column('patient_id')

    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.alter_column('patient_ref', server_default=None)
        batch_op.drop_constraint(batch_op.f('fk_bookings_patient_id_patients'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_bookings_form_id_request_forms'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_bookings_patient_id'))
        batch_op.drop_column('answers')
        batch_op.drop_column('form_id')
        batch_op.drop_column('patient_id')

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_audit_events_actor_facility_id_facilities'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_audit_events_patient_id_patients'), type_='foreignkey')
        batch_op.drop_index('ix_audit_events_patient_id_at')
        batch_op.drop_column('patient_id')
        batch_op.drop_column('actor_facility_id')

    with op.batch_alter_table('acts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_acts_consent_id_consents'), type_='foreignkey')
        batch_op.drop_column('participants')
        batch_op.drop_column('consent_id')

    with op.batch_alter_table('act_documents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_act_documents_act_id'))

    op.drop_table('act_documents')
    with op.batch_alter_table('report_addenda', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_addenda_report_id'))

    op.drop_table('report_addenda')
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reports_patient_id'))

    op.drop_table('reports')
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consents_patient_id'))
        batch_op.drop_index(batch_op.f('ix_consents_expertise_request_id'))
        batch_op.drop_index(batch_op.f('ix_consents_booking_id'))

    op.drop_table('consents')
    op.drop_table('request_forms')
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patients_facility_id'))

    op.drop_table('patients')
    # ### end Alembic commands ###
