"""The signed report of a teleconsultation or tele-expertise as an A4 French PDF.

The PDF is drawn from a `ReportDocument` of plain values that the caller fills from what was
signed, never from the database: the download shows exactly the signed text and its hash, and
this module needs neither a session nor the models. Codes (act type, identity status, consent,
sex) are the stored vocabulary; the French wording lives here. DejaVu Sans ships in
`telmi/fonts/` so an installed wheel renders accents, « » and œ without system fonts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from telmi.labels import day_month

FONTS = Path(__file__).parent / "fonts"
LEFT, NEXT = XPos.LMARGIN, YPos.NEXT

ACT_TYPES = {"teleconsultation": "téléconsultation", "teleexpertise": "téléexpertise"}
IDENTITY_STATUSES = {
    "provisional": "provisoire",
    "retrieved": "récupérée",
    "validated": "validée",
    "qualified": "qualifiée",
}
CONSENT_BY = {
    "resident": "le résident",
    "legal_representative": "un représentant légal",
    "trusted_person": "la personne de confiance",
}
CONSENT_METHODS = {"oral": "orale", "written": "écrite"}
SEXES = {"F": "féminin", "M": "masculin", "I": "indéterminé"}
INS_OIDS = {"1.2.250.1.213.1.4.8": "NIR", "1.2.250.1.213.1.4.9": "NIA"}
SHA256 = re.compile(r"[0-9a-f]{64}")
NOTHING = "Néant"


@dataclass(frozen=True)
class Addendum:
    """A signed correction: the report itself never changes once signed."""

    signed_at: datetime
    author: str
    text: str
    sha256: str


@dataclass(frozen=True)
class ReportDocument:
    facility_name: str
    facility_finess: str
    specialist_name: str
    specialist_specialty: str
    specialist_rpps: str
    resident_ref: str  # the facility's own reference, all a migrated resident may have
    identity_status: str
    act_type: str
    act_at: datetime
    consent_by: str
    consent_method: str
    consent_at: datetime
    consent_recorded_by: str
    reason: str
    findings: str
    conclusion: str
    signed_by: str
    signed_at: datetime
    sha256: str
    birth_name: str = ""
    first_names: str = ""
    used_name: str | None = None
    sex: str | None = None  # F, M or I
    birth_date: date | None = None
    birthplace_insee: str = ""
    ins_matricule: str | None = None
    ins_oid: str | None = None
    participants: Sequence[tuple[str, str]] = ()  # (name, role as shown)
    recommendations: str = ""
    prescriptions: str = ""
    follow_up_needed: bool = False
    follow_up_when: str = ""
    incidents: Sequence[str] = ()
    addenda: Sequence[Addendum] = ()

    def __post_init__(self) -> None:
        """Refuse a document the PDF would misstate (a caller's bug, not a user's input)."""
        for value, known, name in (
            (self.act_type, ACT_TYPES, "act_type"),
            (self.identity_status, IDENTITY_STATUSES, "identity_status"),
            (self.consent_by, CONSENT_BY, "consent_by"),
            (self.consent_method, CONSENT_METHODS, "consent_method"),
            (self.sex or "I", SEXES, "sex"),
        ):
            if value not in known:
                raise ValueError(f"{name}: unknown code {value!r}")
        if (self.ins_matricule is None) != (self.ins_oid is None):
            raise ValueError("ins_matricule and ins_oid go together")
        instants = [self.act_at, self.consent_at, self.signed_at]
        instants += [a.signed_at for a in self.addenda]
        if any(t.utcoffset() is None for t in instants):
            raise ValueError("instants must be aware")
        if not all(SHA256.fullmatch(h) for h in [self.sha256, *(a.sha256 for a in self.addenda)]):
            raise ValueError("sha256 must be 64 lowercase hex digits")
        object.__setattr__(self, "participants", tuple(self.participants))
        object.__setattr__(self, "incidents", tuple(self.incidents))
        object.__setattr__(self, "addenda", tuple(self.addenda))


def french_instant(instant: datetime, tz: ZoneInfo) -> str:
    local = instant.astimezone(tz)
    return f"{day_month(local.date())} à {local:%H:%M}"


def _clean(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ").strip()


class _Pdf(FPDF):
    def __init__(self, title: str, identity: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.title_line, self.identity_line = title, identity
        self.add_font("DejaVu", "", FONTS / "DejaVuSans.ttf")
        self.add_font("DejaVu", "B", FONTS / "DejaVuSans-Bold.ttf")
        # Documented as disabling the alias (the stub says str): page numbers are drawn at the
        # end instead, so "{nb}" written in a report stays as written.
        self.alias_nb_pages(None)  # type: ignore[arg-type]
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(True, margin=18)

    def header(self) -> None:
        """The resident on every page, wrapped rather than cut when the names are long."""
        self.set_font("DejaVu", "B", 9)
        self.cell(self.get_string_width(self.title_line) + 8, 5, self.title_line)
        self.set_font("DejaVu", "", 9)
        self.multi_cell(0, 5, self.identity_line, align="R", new_x=LEFT, new_y=NEXT)
        self.line(15, self.get_y() + 1, 195, self.get_y() + 1)
        self.ln(5)

    def section(self, title: str, keep: float = 20) -> None:
        """A heading, on the next page unless `keep` millimetres of what follows fit under it."""
        if self.will_page_break(keep):
            self.add_page()
        self.ln(3)
        self.set_font("DejaVu", "B", 11)
        self.cell(0, 7, title, new_x=LEFT, new_y=NEXT)
        self.set_draw_color(170)
        self.line(15, self.get_y(), 195, self.get_y())
        self.set_draw_color(0)
        self.ln(1.5)

    def field(self, label: str, value: str) -> None:
        self.set_font("DejaVu", "B", 9.5)
        self.cell(58, 5.5, f"{label} :")
        self.text_block(value)

    def text_block(self, text: str) -> None:
        """Wraps at the right margin and flows over pages; an empty text reads « Néant »."""
        self.set_font("DejaVu", "", 9.5)
        self.multi_cell(0, 5.5, _clean(text) or NOTHING, align="L", new_x=LEFT, new_y=NEXT)

    def signature(self, by: str, at: str, sha256: str) -> None:
        if self.will_page_break(4 * 5.5):
            self.add_page()
        self.field("Signé par", by)
        self.field("Signé le", at)
        self.set_font("DejaVu", "B", 9.5)
        self.cell(0, 5.5, "Empreinte SHA-256 :", new_x=LEFT, new_y=NEXT)
        self.set_font("DejaVu", "", 9)
        self.cell(0, 5.5, sha256, new_x=LEFT, new_y=NEXT)

    def page_numbers(self) -> None:
        self.set_auto_page_break(False)
        total = self.pages_count
        for number in range(1, total + 1):
            self.page = number
            self.set_xy(15, -13)
            self.set_font("DejaVu", "", 8)
            self.cell(120, 5, "Document généré par Telmi · compte rendu signé")
            self.cell(0, 5, f"Page {number}/{total}", align="R")


def render(doc: ReportDocument, *, tz: ZoneInfo) -> bytes:
    """The report as PDF bytes; the same document gives the same bytes (no clock read)."""
    act = ACT_TYPES[doc.act_type]
    title = f"Compte rendu de {act}"
    identity = " ".join(p for p in (doc.birth_name.upper(), doc.first_names) if p)
    if doc.birth_date:
        identity += f" · né(e) le {day_month(doc.birth_date)}"
    identity = (
        f"{identity} · réf. {doc.resident_ref}" if identity else f"Résident {doc.resident_ref}"
    )
    pdf = _Pdf(title, identity)
    pdf.set_title(title)
    pdf.set_lang("fr-FR")
    pdf.set_creator("Telmi")
    pdf.set_creation_date(doc.signed_at)
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 15)
    pdf.cell(0, 10, title, new_x=LEFT, new_y=NEXT)
    pdf.field("Date de l'acte", french_instant(doc.act_at, tz))
    pdf.field("Type d'acte", act.capitalize())

    pdf.section("Établissement requérant")
    pdf.field("Établissement", doc.facility_name)
    pdf.field("FINESS", doc.facility_finess)

    pdf.section("Médecin requis")
    pdf.field("Nom", doc.specialist_name)
    pdf.field("Spécialité", doc.specialist_specialty)
    pdf.field("RPPS", doc.specialist_rpps)

    unknown = "non renseigné"
    pdf.section("Résident")
    pdf.field("Référence", doc.resident_ref)
    pdf.field("Nom de naissance", doc.birth_name or unknown)
    pdf.field("Prénoms", doc.first_names or unknown)
    pdf.field("Nom utilisé", doc.used_name or unknown)
    pdf.field("Sexe", SEXES[doc.sex] if doc.sex else unknown)
    pdf.field("Date de naissance", day_month(doc.birth_date) if doc.birth_date else unknown)
    pdf.field("Lieu de naissance (INSEE)", doc.birthplace_insee or unknown)
    if doc.ins_matricule and doc.ins_oid:
        kind = INS_OIDS.get(doc.ins_oid)
        pdf.field("INS", doc.ins_matricule + (f" ({kind})" if kind else ""))
        pdf.field("OID", doc.ins_oid)
    else:
        pdf.field("INS", unknown)
    pdf.field("Statut de l'identité", IDENTITY_STATUSES[doc.identity_status])

    pdf.section("Participants")
    pdf.text_block(
        "\n".join(f"• {name} ({role})" for name, role in doc.participants) or "Non renseignés"
    )

    pdf.section("Consentement")
    pdf.field("Donné par", CONSENT_BY[doc.consent_by])
    pdf.field("Forme", CONSENT_METHODS[doc.consent_method])
    pdf.field("Recueilli le", french_instant(doc.consent_at, tz))
    pdf.field("Enregistré par", doc.consent_recorded_by)

    follow_up = "non"
    if doc.follow_up_needed:
        follow_up = f"oui, {_clean(doc.follow_up_when)}" if doc.follow_up_when.strip() else "oui"
    for heading, body in (
        ("Motif", doc.reason),
        ("Constatations", doc.findings),
        ("Conclusion", doc.conclusion),
        ("Recommandations", doc.recommendations),
        ("Prescriptions", doc.prescriptions),
        ("Suivi nécessaire", follow_up),
    ):
        pdf.section(heading)
        pdf.text_block(body)

    pdf.section("Incidents techniques")
    pdf.text_block("\n".join(f"• {_clean(i)}" for i in doc.incidents) or "Aucun incident signalé")

    pdf.section("Signature", keep=12 + 4 * 5.5)
    pdf.signature(doc.signed_by, french_instant(doc.signed_at, tz), doc.sha256)

    for number, addendum in enumerate(doc.addenda, start=1):
        pdf.section(f"Addendum {number}")
        pdf.text_block(addendum.text)
        pdf.ln(1.5)
        pdf.signature(addendum.author, french_instant(addendum.signed_at, tz), addendum.sha256)

    pdf.page_numbers()
    return bytes(pdf.output())
