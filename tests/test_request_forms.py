"""Request forms: the built-ins, definitions an admin submits, and answers checked against them."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from telmi.errors import ValidationError
from telmi.models import ActType
from telmi.request_forms import (
    BUILTIN,
    FieldKind,
    FormAnswersInvalid,
    FormDefinition,
    answers_schema,
    builtin_for,
    photo_shortfall,
    validate_answers,
)
from telmi.values import parse, parse_json

TC, TE = ActType.TELECONSULTATION, ActType.TELEEXPERTISE
DERMATOLOGY_TE = BUILTIN[("dermatologie", TE)]
WOUNDS_TE = BUILTIN[("plaies-cicatrisation", TE)]
CARDIOLOGY_TE = BUILTIN[("cardiologie", TE)]  # the one that insists

GOOD_DERMATOLOGY = {
    "lesion_site": "  Dos, région scapulaire droite ",
    "duration": "3 semaines",
    "evolution": "Extension",
    "pruritus": True,
    "bleeding": False,
}


def refused(definition: FormDefinition, answers: dict[str, Any], *, strict: bool) -> Any:
    with pytest.raises(FormAnswersInvalid) as caught:
        validate_answers(definition, answers, strict=strict)
    return caught.value


# --- the built-ins ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(BUILTIN), ids=lambda k: f"{k[0]}-{k[1]}")
def test_each_builtin_survives_its_stored_form_and_names_its_fields_once(
    key: tuple[str, ActType],
) -> None:
    definition = BUILTIN[key]
    stored = json.dumps(definition.model_dump(mode="json"))  # what a JSON column holds
    assert parse_json(FormDefinition, stored.encode()) == definition
    assert parse(FormDefinition, json.loads(stored)) == definition  # a JSON column read back
    names = [f.name for f in definition.fields]
    assert len(names) == len(set(names))
    if key[1] is TC:
        assert definition.min_photos == 0  # a booking carries no photo
        assert not any(f.required for f in definition.fields)  # the call asks the rest
        assert [f.name for f in definition.fields] == [f.name for f in BUILTIN[(key[0], TE)].fields]
    else:
        assert any(f.required for f in definition.fields)


def test_the_issue_s_specialties_ship_both_acts_and_others_have_none() -> None:
    for code in ("dermatologie", "plaies-cicatrisation", "cardiologie", "geriatrie", "psychiatrie"):
        for act in (TC, TE):
            assert builtin_for(code, act) is not None, (code, act)
    assert builtin_for("gerontopsychiatrie", TC) == builtin_for("psychiatrie", TC)
    assert builtin_for("neurologie", TC) is None
    assert builtin_for("dermatologie", ActType.TELESURVEILLANCE) is None


def test_dermatology_expertise_needs_two_photos() -> None:
    assert DERMATOLOGY_TE.min_photos == 2
    assert photo_shortfall(DERMATOLOGY_TE, 2) is None
    assert photo_shortfall(DERMATOLOGY_TE, 1) == (
        "Au moins 2 photos sont requises pour cette demande (1 jointe)."
    )
    assert "aucune jointe" in (photo_shortfall(DERMATOLOGY_TE, 0) or "")
    assert photo_shortfall(BUILTIN[("dermatologie", TC)], 0) is None


def test_the_clinical_fields_asked_for_are_there() -> None:
    derm = {f.name: f for f in DERMATOLOGY_TE.fields}
    assert derm["lesion_site"].label == "Localisation de la lésion"
    assert derm["evolution"].choices == ["Stable", "Extension", "Régression", "Récidive"]
    assert {derm[n].kind for n in ("pruritus", "bleeding", "dermoscopy")} == {FieldKind.YES_NO}
    wounds = {f.name: f for f in WOUNDS_TE.fields}
    assert "Plaie du pied diabétique" in wounds["wound_type"].choices
    assert (wounds["length_cm"].minimum, wounds["length_cm"].maximum) == (0, 100)
    assert wounds["length_cm"].unit == "cm"
    assert wounds["exudate"].choices == ["Absent", "Faible", "Modéré", "Abondant"]
    cardio = {f.name: f for f in CARDIOLOGY_TE.fields}
    assert cardio["symptoms"].required and cardio["ecg_attached"].required
    assert not cardio["systolic_bp"].required and cardio["systolic_bp"].unit == "mmHg"
    geriatrics = {f.name: f for f in BUILTIN[("geriatrie", TE)].fields}
    assert (geriatrics["mmse"].minimum, geriatrics["mmse"].maximum) == (0, 30)
    assert geriatrics["gir"].choices == [f"GIR {n}" for n in range(1, 7)]
    psychiatry = {f.name: f for f in BUILTIN[("psychiatrie", TE)].fields}
    assert psychiatry["suicide_risk"].required
    assert psychiatry["suicide_risk"].kind is FieldKind.YES_NO


# --- answers ----------------------------------------------------------------------------------


def test_json_answers_come_back_typed_trimmed_and_only_those_given() -> None:
    clean = validate_answers(DERMATOLOGY_TE, GOOD_DERMATOLOGY, strict=True)
    assert clean == {
        "lesion_site": "Dos, région scapulaire droite",
        "duration": "3 semaines",
        "evolution": "Extension",
        "pruritus": True,
        "bleeding": False,
    }
    assert list(clean) == ["lesion_site", "duration", "evolution", "pruritus", "bleeding"]
    cardio = validate_answers(
        CARDIOLOGY_TE,
        {"symptoms": "Dyspnée d'effort", "ecg_attached": False, "systolic_bp": 142.0}
        | {"heart_rate": None, "current_treatment": ""},  # null and blank: unanswered
        strict=True,
    )
    assert cardio == {"symptoms": "Dyspnée d'effort", "ecg_attached": False, "systolic_bp": 142}
    assert type(cardio["systolic_bp"]) is int


def test_form_answers_read_french_text_and_ignore_other_fields() -> None:
    form = {
        "csrf_token": "abc",
        "slot_id": "12",
        "wound_type": "Ulcère veineux",
        "wound_site": "Malléole interne gauche",
        "length_cm": "4,5",
        "width_cm": "3",
        "depth": "Superficielle",
        "depth_cm": "",
        "exudate": "Abondant",
        "infection_signs": "oui",
        "pain": "non",
        "current_dressing": "   ",
    }
    clean = validate_answers(WOUNDS_TE, form, strict=False)
    assert clean == {
        "wound_type": "Ulcère veineux",
        "wound_site": "Malléole interne gauche",
        "length_cm": 4.5,
        "width_cm": 3,
        "depth": "Superficielle",
        "exudate": "Abondant",
        "infection_signs": True,
        "pain": False,
    }
    assert type(clean["width_cm"]) is int
    for spelt, read in (("on", True), ("TRUE", True), ("false", False), ("Non", False)):
        answers = {**form, "infection_signs": spelt}
        assert validate_answers(WOUNDS_TE, answers, strict=False)["infection_signs"] is read
    assert validate_answers(WOUNDS_TE, {**form, "length_cm": "12.25"}, strict=False)[
        "length_cm"
    ] == pytest.approx(12.25)


def test_a_missing_required_field_is_named_by_its_label() -> None:
    answers = {k: v for k, v in GOOD_DERMATOLOGY.items() if k != "lesion_site"}
    for strict in (True, False):
        error = refused(DERMATOLOGY_TE, answers, strict=strict)
        assert error.field == "answers.lesion_site"
        assert error.message == "« Localisation de la lésion » est requis."
        assert error.status == 422 and isinstance(error, ValidationError)
    blank = refused(DERMATOLOGY_TE, {**GOOD_DERMATOLOGY, "lesion_site": "  "}, strict=True)
    assert blank.field == "answers.lesion_site"
    no_answer = refused(
        CARDIOLOGY_TE, {"symptoms": "Palpitations", "ecg_attached": ""}, strict=False
    )
    assert no_answer.errors == [("answers.ecg_attached", "« ECG joint » est requis.")]


def test_an_answer_outside_the_choices_is_refused() -> None:
    for value in ("Aggravation", "stable", " Stable", 2, ["Stable"]):
        error = refused(DERMATOLOGY_TE, {**GOOD_DERMATOLOGY, "evolution": value}, strict=True)
        assert error.field == "answers.evolution"
        assert error.message == "« Évolution » doit être l'un des choix proposés."
    assert (
        validate_answers(
            DERMATOLOGY_TE, {**GOOD_DERMATOLOGY, "evolution": " Récidive "}, strict=False
        )["evolution"]
        == "Récidive"
    )


def test_a_number_out_of_range_says_the_range_with_its_unit() -> None:
    form = {"length_cm": "120"}
    error = refused(WOUNDS_TE, form, strict=False)
    assert ("answers.length_cm", "« Taille (longueur) » doit être compris entre 0 et 100 cm.") in (
        error.errors
    )
    negative = refused(WOUNDS_TE, {"width_cm": -0.5}, strict=True)
    assert ("answers.width_cm", "« Taille (largeur) » doit être compris entre 0 et 100 cm.") in (
        negative.errors
    )
    falls = refused(
        BUILTIN[("geriatrie", TC)], {"reason": "Chutes", "falls_6_months": "2,5"}, strict=False
    )
    assert falls.errors == [
        (
            "answers.falls_6_months",
            "« Nombre de chutes au cours des 6 derniers mois » doit être un nombre entier.",
        )
    ]


def test_strict_answers_are_json_types() -> None:
    cardio = {"symptoms": "Douleur thoracique", "ecg_attached": True}
    error = refused(CARDIOLOGY_TE, {**cardio, "systolic_bp": "140"}, strict=True)
    assert error.errors == [
        ("answers.systolic_bp", "« Pression artérielle systolique » doit être un nombre.")
    ]
    as_text = refused(CARDIOLOGY_TE, {**cardio, "ecg_attached": "oui"}, strict=True)
    assert as_text.field == "answers.ecg_attached"
    assert as_text.message == "« ECG joint » doit valoir true ou false."
    as_bool = refused(CARDIOLOGY_TE, {**cardio, "heart_rate": True}, strict=True)
    assert as_bool.field == "answers.heart_rate"
    endless = refused(CARDIOLOGY_TE, {**cardio, "heart_rate": float("inf")}, strict=True)
    assert endless.field == "answers.heart_rate"
    as_number = refused(CARDIOLOGY_TE, {**cardio, "symptoms": 12}, strict=True)
    assert as_number.message == "« Symptômes » doit être un texte."
    # a form says the same in text, and nothing else
    assert (
        validate_answers(CARDIOLOGY_TE, {**cardio, "systolic_bp": "140"}, strict=False)[
            "systolic_bp"
        ]
        == 140
    )
    for bad in ("140 mmHg", "1e3", "cent", "1,2,3", "9" * 5000):
        error = refused(CARDIOLOGY_TE, {**cardio, "systolic_bp": bad}, strict=False)
        assert error.field == "answers.systolic_bp"
    maybe = refused(CARDIOLOGY_TE, {**cardio, "ecg_attached": "peut-être"}, strict=False)
    assert maybe.message == "« ECG joint » doit valoir oui ou non."


def test_an_unknown_name_is_refused_in_json_and_ignored_in_a_form() -> None:
    answers = {**GOOD_DERMATOLOGY, "couleur": "rouge"}
    error = refused(DERMATOLOGY_TE, answers, strict=True)
    assert error.errors == [("answers.couleur", "« couleur » : champ inconnu.")]
    assert "couleur" not in validate_answers(DERMATOLOGY_TE, answers, strict=False)


def test_every_fault_is_listed_and_the_first_one_is_the_error() -> None:
    answers = {"lesion_site": "Jambe", "evolution": "Pire", "pruritus": "oui", "extra": 1}
    error = refused(DERMATOLOGY_TE, answers, strict=True)
    assert [field for field, _ in error.errors] == [
        "answers.duration",
        "answers.evolution",
        "answers.pruritus",
        "answers.extra",
    ]
    assert (error.field, error.message) == error.errors[0]


def test_text_is_bounded_and_storable() -> None:
    long = refused(DERMATOLOGY_TE, {**GOOD_DERMATOLOGY, "lesion_site": "x" * 201}, strict=True)
    assert long.message == "« Localisation de la lésion » : texte de 200 caractères au plus."
    # measured before trimming, as everywhere else
    padded = refused(
        DERMATOLOGY_TE, {**GOOD_DERMATOLOGY, "duration": "2 jours" + " " * 100}, strict=True
    )
    assert padded.field == "answers.duration"
    for bad in ("Dos\x00", "Dos\ud800"):
        error = refused(DERMATOLOGY_TE, {**GOOD_DERMATOLOGY, "lesion_site": bad}, strict=False)
        assert error.field == "answers.lesion_site"
        assert error.message.startswith("« Localisation de la lésion » contient ")


def test_answers_that_are_not_an_object_are_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_answers(DERMATOLOGY_TE, ["Dos"], strict=True)  # type: ignore[arg-type]
    assert caught.value.field == "answers"


# --- definitions an admin submits ------------------------------------------------------------


def definition(*fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"fields": list(fields), **extra}


TEXT = {"name": "motif", "label": "Motif", "kind": "text"}


def refused_definition(data: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        parse(FormDefinition, data)
    with pytest.raises(ValidationError) as from_json:
        parse_json(FormDefinition, json.dumps(data).encode())
    assert (from_json.value.field, from_json.value.message) == (
        caught.value.field,
        caught.value.message,
    )
    return caught.value


def test_a_submitted_definition_is_typed_and_text_gets_its_default_length() -> None:
    parsed = parse(
        FormDefinition,
        definition(
            TEXT,
            {
                "name": "poids",
                "label": "Poids",
                "kind": "number",
                "minimum": 20,
                "maximum": 250.5,
                "unit": "kg",
            },
            {"name": "gir", "label": "GIR", "kind": "choice", "choices": ["GIR 1", "GIR 2"]},
            min_photos=3,
        ),
    )
    assert parsed.fields[0].kind is FieldKind.TEXT and parsed.fields[0].max_length == 2000
    assert parsed.fields[1].max_length is None and parsed.fields[1].maximum == 250.5
    assert parsed.min_photos == 3


def test_duplicate_names_are_refused_at_the_second_one() -> None:
    error = refused_definition(definition(TEXT, {**TEXT, "label": "Autre motif"}))
    assert error.field == "fields[1].name"
    assert "motif" in error.message


def test_a_choice_needs_distinct_choices_and_only_a_choice_has_them() -> None:
    choice = {"name": "evolution", "label": "Évolution", "kind": "choice"}
    assert refused_definition(definition(TEXT, TEXT | {"name": "b"}, choice)).field == (
        "fields[2].choices"
    )
    assert refused_definition(definition(choice | {"choices": []})).field == "fields[0].choices"
    repeated = refused_definition(definition(choice | {"choices": ["Stable", "Stable"]}))
    assert repeated.field == "fields[0].choices[1]"
    assert refused_definition(definition(TEXT | {"choices": ["Oui"]})).field == "fields[0].choices"


def test_number_bounds_are_ordered_and_belong_to_numbers() -> None:
    number = {"name": "taille", "label": "Taille", "kind": "number"}
    error = refused_definition(definition(TEXT, number | {"minimum": 10, "maximum": 2}))
    assert error.field == "fields[1].maximum"
    assert error.message == "« fields[1].maximum » doit être supérieur ou égal au minimum."
    assert refused_definition(definition(TEXT | {"minimum": 0})).field == "fields[0].minimum"
    assert refused_definition(definition(TEXT | {"unit": "cm"})).field == "fields[0].unit"
    assert refused_definition(definition(number | {"maximum": "10"})).field == "fields[0].maximum"
    assert refused_definition(definition(number | {"max_length": 10})).field == (
        "fields[0].max_length"
    )


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (definition(), "fields"),
        (definition(*[TEXT | {"name": f"f{i}"} for i in range(41)]), "fields"),
        (definition(TEXT | {"name": "Motif"}), "fields[0].name"),
        (definition(TEXT | {"name": "m" * 41}), "fields[0].name"),
        (definition(TEXT | {"name": "é"}), "fields[0].name"),
        (definition(TEXT | {"label": " "}), "fields[0].label"),
        (definition(TEXT | {"label": "x" * 121}), "fields[0].label"),
        (definition(TEXT | {"kind": "date"}), "fields[0].kind"),
        (definition(TEXT | {"required": "oui"}), "fields[0].required"),
        (definition(TEXT | {"max_length": 8001}), "fields[0].max_length"),
        (definition(TEXT | {"couleur": "rouge"}), "fields[0].couleur"),
        (definition(TEXT, min_photos=11), "min_photos"),
        (definition(TEXT, min_photos="2"), "min_photos"),
    ],
)
def test_a_bad_definition_names_its_path(data: dict[str, Any], field: str) -> None:
    assert refused_definition(data).field == field


# --- the schema of the answers ---------------------------------------------------------------


@pytest.mark.parametrize(
    "answers",
    [
        GOOD_DERMATOLOGY,
        GOOD_DERMATOLOGY | {"dermoscopy": None, "treatments_tried": "  "},
        {k: v for k, v in GOOD_DERMATOLOGY.items() if k != "duration"},
        GOOD_DERMATOLOGY | {"duration": " "},
        GOOD_DERMATOLOGY | {"evolution": "Aggravation"},
        GOOD_DERMATOLOGY | {"evolution": None},
        GOOD_DERMATOLOGY | {"evolution": "Stable "},
        GOOD_DERMATOLOGY | {"pruritus": "oui"},
        GOOD_DERMATOLOGY | {"lesion_site": "x" * 201},
        GOOD_DERMATOLOGY | {"inconnu": 1},
        {"symptoms": "Malaise", "ecg_attached": True, "systolic_bp": 140.0, "heart_rate": None},
        {"symptoms": "Malaise", "ecg_attached": True, "systolic_bp": 140.5},
        {"symptoms": "Malaise", "ecg_attached": True, "heart_rate": 300},
        {"symptoms": "Malaise", "ecg_attached": True, "diastolic_bp": "80"},
    ],
)
def test_the_answers_schema_says_what_strict_validation_checks(answers: dict[str, Any]) -> None:
    form = CARDIOLOGY_TE if "symptoms" in answers else DERMATOLOGY_TE
    schema = answers_schema(form)
    jsonschema.Draft202012Validator.check_schema(schema)
    by_schema = jsonschema.Draft202012Validator(schema).is_valid(answers)
    try:
        validate_answers(form, answers, strict=True)
        by_server = True
    except FormAnswersInvalid:
        by_server = False
    assert by_schema == by_server
