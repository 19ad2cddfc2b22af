"""The report PDF, read back with pypdf: every field a facility files is in its text."""

from __future__ import annotations

import dataclasses
import hashlib
import io
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pypdf
import pytest

from telmi.report_pdf import FONTS, Addendum, ReportDocument, render

PARIS = ZoneInfo("Europe/Paris")
A4 = (595.28, 841.89)
NIR = "2380375056123"
INS = NIR + f"{97 - int(NIR) % 97:02d}"
REPORT_HASH = hashlib.sha256(b"compte rendu").hexdigest()
ADDENDUM_HASH = hashlib.sha256(b"addendum").hexdigest()


def document(**changes: object) -> ReportDocument:
    doc = ReportDocument(
        facility_name="EHPAD Les Tilleuls de Besançon",
        facility_finess="250000015",
        specialist_name="Dr Hélène Morel",
        specialist_specialty="Dermatologie",
        specialist_rpps="10003456789",
        resident_ref="CH-2024-117",
        birth_name="LEFÈVRE",
        first_names="Françoise Cécile",
        used_name="GARÇON",
        sex="F",
        birth_date=date(1938, 3, 12),
        birthplace_insee="75056",
        ins_matricule=INS,
        ins_oid="1.2.250.1.213.1.4.8",
        identity_status="qualified",
        act_type="teleconsultation",
        act_at=datetime(2026, 12, 2, 13, 30, tzinfo=UTC),
        participants=[("Isabelle Martin", "infirmière"), ("Paul Lefèvre", "invité : fils")],
        consent_by="trusted_person",
        consent_method="written",
        consent_at=datetime(2026, 12, 2, 13, 10, tzinfo=UTC),
        consent_recorded_by="Isabelle Martin",
        reason="Lésion pigmentée de la joue droite, apparue il y a trois mois.",
        findings="Macule brune de 8 mm, bords irréguliers ; pas de saignement. Œdème absent.",
        conclusion="Lésion suspecte : exérèse à prévoir.",
        recommendations="Photographier la lésion chaque semaine ; « surveiller » les bords.",
        prescriptions="Crème émolliente, deux applications par jour.",
        follow_up_needed=True,
        follow_up_when="dans un mois",
        incidents=["Coupure de la vidéo pendant deux minutes (réseau de l'établissement)"],
        signed_by="Dr Hélène Morel",
        signed_at=datetime(2026, 12, 2, 14, 5, tzinfo=UTC),
        sha256=REPORT_HASH,
        addenda=[
            Addendum(
                signed_at=datetime(2026, 12, 3, 8, 0, tzinfo=UTC),
                author="Dr Hélène Morel",
                text="Précision : la lésion mesure 9 mm après relecture des photos reçues.",
                sha256=ADDENDUM_HASH,
            )
        ],
    )
    return dataclasses.replace(doc, **changes) if changes else doc


def pages_text(pdf: bytes) -> list[str]:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return [" ".join(page.extract_text().split()) for page in reader.pages]


def test_every_field_is_in_the_text() -> None:
    pdf = render(document(), tz=PARIS)
    assert pdf.startswith(b"%PDF-")
    text = " ".join(pages_text(pdf))
    for needle in [
        "Compte rendu de téléconsultation",
        "Type d'acte : Téléconsultation",
        "EHPAD Les Tilleuls de Besançon",
        "FINESS : 250000015",
        "Dr Hélène Morel",
        "Dermatologie",
        "RPPS : 10003456789",
        "Référence : CH-2024-117",
        "Nom de naissance : LEFÈVRE",
        "Prénoms : Françoise Cécile",
        "Nom utilisé : GARÇON",
        "Sexe : féminin",
        "12 mars 1938",
        "75056",
        f"INS : {INS} (NIR)",
        "OID : 1.2.250.1.213.1.4.8",
        "Statut de l'identité : qualifiée",
        "Date de l'acte : 2 décembre 2026 à 14:30",
        "Isabelle Martin (infirmière)",
        "Paul Lefèvre (invité : fils)",
        "Donné par : la personne de confiance",
        "Forme : écrite",
        "Recueilli le : 2 décembre 2026 à 14:10",
        "Enregistré par : Isabelle Martin",
        "Motif Lésion pigmentée de la joue droite, apparue il y a trois mois.",
        "Constatations Macule brune de 8 mm, bords irréguliers ; pas de saignement. Œdème absent.",
        "Conclusion Lésion suspecte : exérèse à prévoir.",
        "« surveiller » les bords.",
        "Prescriptions Crème émolliente, deux applications par jour.",
        "Suivi nécessaire oui, dans un mois",
        "Coupure de la vidéo pendant deux minutes",
        "Signé par : Dr Hélène Morel",
        "Signé le : 2 décembre 2026 à 15:05",
        REPORT_HASH,
        "Addendum 1",
        "la lésion mesure 9 mm après relecture des photos reçues.",
        "Signé le : 3 décembre 2026 à 09:00",
        ADDENDUM_HASH,
        "Page 1/",
    ]:
        assert needle in text, needle
    assert text.index(REPORT_HASH) < text.index("Addendum 1") < text.index(ADDENDUM_HASH)


@pytest.mark.parametrize(
    ("code", "label"),
    [("provisional", "provisoire"), ("retrieved", "récupérée"), ("validated", "validée")],
)
def test_identity_status_in_french(code: str, label: str) -> None:
    text = " ".join(pages_text(render(document(identity_status=code), tz=PARIS)))
    assert f"Statut de l'identité : {label}" in text


def test_teleexpertise_oral_consent_of_the_resident() -> None:
    doc = document(act_type="teleexpertise", consent_by="resident", consent_method="oral")
    text = " ".join(pages_text(render(doc, tz=PARIS)))
    assert "Compte rendu de téléexpertise" in text
    assert "Donné par : le résident" in text and "Forme : orale" in text
    doc = document(consent_by="legal_representative")
    assert "Donné par : un représentant légal" in " ".join(pages_text(render(doc, tz=PARIS)))


def test_page_is_a4() -> None:
    reader = pypdf.PdfReader(io.BytesIO(render(document(), tz=PARIS)))
    for page in reader.pages:
        assert float(page.mediabox.width) == pytest.approx(A4[0], abs=1)
        assert float(page.mediabox.height) == pytest.approx(A4[1], abs=1)


def test_long_report_flows_over_pages() -> None:
    paragraphs = "\n".join(
        f"Paragraphe {i} : évolution favorable, cicatrisation en cours, pansement changé." * 2
        for i in range(200)
    )
    pages = pages_text(render(document(findings=paragraphs, addenda=[]), tz=PARIS))
    assert len(pages) >= 5
    assert all(f"Page {n}/{len(pages)}" in page for n, page in enumerate(pages, start=1))
    assert all("LEFÈVRE Françoise Cécile" in page for page in pages)  # identity on every page
    assert "Paragraphe 199 :" in " ".join(pages)
    assert "Signé par : Dr Hélène Morel" in pages[-1] and REPORT_HASH in pages[-1]


def test_without_optional_parts() -> None:
    doc = document(
        used_name=None,
        ins_matricule=None,
        ins_oid=None,
        identity_status="provisional",
        participants=[],
        recommendations="",
        prescriptions="",
        follow_up_needed=False,
        follow_up_when="",
        incidents=[],
        addenda=[],
    )
    pages = pages_text(render(doc, tz=PARIS))
    text = " ".join(pages)
    for needle in [
        "INS : non renseigné",
        "Nom utilisé : non renseigné",
        "Recommandations Néant",
        "Prescriptions Néant",
        "Suivi nécessaire non",
        "Aucun incident signalé",
        "Participants Non renseignés",
        REPORT_HASH,
    ]:
        assert needle in text, needle
    assert "OID" not in text and "Addendum" not in text
    assert pages[-1].endswith(f"Page {len(pages)}/{len(pages)}")


def test_a_resident_known_only_by_reference() -> None:
    """A resident migrated from a booking's patient reference has no trait yet."""
    doc = document(
        birth_name="",
        first_names="",
        used_name=None,
        sex=None,
        birth_date=None,
        birthplace_insee="",
        ins_matricule=None,
        ins_oid=None,
        identity_status="provisional",
    )
    pages = pages_text(render(doc, tz=PARIS))
    assert pages[0].startswith("Compte rendu de téléconsultation Résident CH-2024-117")
    for label in ["Nom de naissance", "Prénoms", "Sexe", "Date de naissance", "INS"]:
        assert f"{label} : non renseigné" in pages[0], label
    assert "Lieu de naissance (INSEE) : non renseigné" in pages[0]


def test_local_time_across_the_spring_change() -> None:
    doc = document(act_at=datetime(2026, 3, 29, 1, 30, tzinfo=UTC))
    assert "29 mars 2026 à 03:30" in " ".join(pages_text(render(doc, tz=PARIS)))


def test_first_of_the_month() -> None:
    doc = document(act_at=datetime(2026, 11, 30, 23, 15, tzinfo=UTC))
    assert "1er décembre 2026 à 00:15" in " ".join(pages_text(render(doc, tz=PARIS)))


def test_same_document_same_bytes() -> None:
    """No clock read: the file a nurse downloads twice is the same file."""
    assert render(document(), tz=PARIS) == render(document(), tz=PARIS)


def test_page_alias_in_a_text_is_left_alone() -> None:
    text = " ".join(pages_text(render(document(conclusion="Voir {nb} en annexe."), tz=PARIS)))
    assert "Voir {nb} en annexe." in text


@pytest.mark.parametrize(
    "changes",
    [
        {"identity_status": "qualifiée"},
        {"consent_method": "tacit"},
        {"act_type": "telesurveillance"},
        {"ins_oid": None},
        {"sha256": "abc"},
        {"act_at": datetime(2026, 12, 2, 14, 30)},
    ],
)
def test_a_misstated_document_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        document(**changes)


def test_fonts_ship_with_their_licence() -> None:
    names = {p.name for p in FONTS.iterdir()}
    assert {"DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "LICENSE-DejaVu.txt"} <= names
    assert "Bitstream" in (FONTS / "LICENSE-DejaVu.txt").read_text()
