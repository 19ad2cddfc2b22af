"""Request forms per specialty: what a specialist needs to know before an act.

An admin defines, per specialty and act type, the fields a booking or a tele-expertise
request asks for; a `FormDefinition` is that definition, parsed from what the admin submits
(or from the JSON column that stores it with its version) by the same pydantic models, so a
bad definition is a 422 naming its path (`fields[2].choices`). `BUILTIN` holds the forms
Telmi ships for the specialties that need one. `validate_answers` checks what a nurse filled
in against a definition, from a JSON body (`strict=True`: a number is a JSON number) or an
HTML form (`strict=False`: everything is text), and reports every faulty field by its label.

No database here: storing definitions and answers (with the definition's version) is the
caller's job.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any

import pydantic_core
from pydantic import AfterValidator, Field, PlainValidator, WithJsonSchema, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from telmi import values
from telmi.errors import ValidationError
from telmi.models import ActType
from telmi.values import Body, bad_character, text

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
DEFAULT_TEXT_LENGTH = 2000
MAX_TEXT_LENGTH = 8000
MAX_FIELDS = 40
MAX_PHOTOS = 10  # telmi.photos.MAX_PHOTOS: a form cannot ask for more than a request holds
MAX_CHOICES = 50


class FieldKind(enum.StrEnum):
    TEXT = "text"
    CHOICE = "choice"
    NUMBER = "number"
    YES_NO = "yes_no"


# --- the definition ---------------------------------------------------------------------------


def _slug(value: str) -> str:
    if not re.fullmatch(NAME_PATTERN, value):
        raise PydanticCustomError(
            "field_name",
            "un identifiant de 1 à 40 caractères : minuscules sans accent, chiffres et _, "
            "commençant par une lettre",
        )
    return value


FieldName = Annotated[
    str,
    AfterValidator(_slug),
    WithJsonSchema({"type": "string", "pattern": NAME_PATTERN}),
]


def _bound(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("float_type", "doit être un nombre")
    if not math.isfinite(value):
        raise PydanticCustomError("finite_number", "doit être un nombre fini")
    return value


Bound = Annotated[int | float, PlainValidator(_bound), WithJsonSchema({"type": "number"})]


def _refused(loc: tuple[str | int, ...], message: str, value: Any) -> pydantic_core.ValidationError:
    """A rule across fields, reported at the field it is about: pydantic-core merges a
    ValidationError raised by a validator into the outer one, its location prefixed
    (pydantic-core#510), so a body sees `fields[2].choices`, not `fields[2]`."""
    error = InitErrorDetails(type=PydanticCustomError("form_rule", message), loc=loc, input=value)
    return pydantic_core.ValidationError.from_exception_data("FormDefinition", [error])


class FieldDef(Body):
    """One question of a request form. `choices` only for a choice; `minimum`, `maximum`,
    `unit` and `integer` only for a number; `max_length` only for text (2000 when left out)."""

    name: FieldName
    label: text(120, required=True)  # type: ignore[valid-type]
    kind: Annotated[FieldKind, Field(strict=False)]  # stored definitions come back as text
    required: bool = False
    choices: list[text(120, required=True)] = Field(  # type: ignore[valid-type]
        default_factory=list, max_length=MAX_CHOICES
    )
    minimum: Bound | None = None
    maximum: Bound | None = None
    unit: text(20) = ""  # type: ignore[valid-type]
    integer: bool = False
    max_length: values.integer(1, MAX_TEXT_LENGTH) | None = None  # type: ignore[valid-type]
    help: text(500) = ""  # type: ignore[valid-type]

    @model_validator(mode="before")
    @classmethod
    def _text_length_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("kind") == FieldKind.TEXT:
            if data.get("max_length") is None:
                return {**data, "max_length": DEFAULT_TEXT_LENGTH}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> FieldDef:
        kind = self.kind
        if kind is FieldKind.CHOICE:
            if not self.choices:
                raise _refused(("choices",), "au moins un choix pour un champ à choix", [])
            seen: set[str] = set()
            for index, choice in enumerate(self.choices):
                if choice in seen:
                    raise _refused(("choices", index), f"choix en double : « {choice} »", choice)
                seen.add(choice)
        elif self.choices:
            raise _refused(("choices",), "réservé aux champs à choix", self.choices)
        if kind is not FieldKind.NUMBER:
            for name in ("minimum", "maximum"):
                if getattr(self, name) is not None:
                    raise _refused((name,), "réservé aux champs numériques", getattr(self, name))
            if self.unit:
                raise _refused(("unit",), "réservé aux champs numériques", self.unit)
            if self.integer:
                raise _refused(("integer",), "réservé aux champs numériques", self.integer)
        elif self.minimum is not None and self.maximum is not None:
            if self.minimum > self.maximum:
                raise _refused(("maximum",), "doit être supérieur ou égal au minimum", self.maximum)
        if kind is not FieldKind.TEXT and self.max_length is not None:
            raise _refused(("max_length",), "réservé aux champs texte", self.max_length)
        return self

    @property
    def text_limit(self) -> int:
        return self.max_length or DEFAULT_TEXT_LENGTH


class FormDefinition(Body):
    """The fields of a request, in the order they are asked, and the photos it needs."""

    fields: list[FieldDef] = Field(min_length=1, max_length=MAX_FIELDS)
    min_photos: values.integer(0, MAX_PHOTOS) = 0  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _unique_names(self) -> FormDefinition:
        seen: set[str] = set()
        for index, field in enumerate(self.fields):
            if field.name in seen:
                raise _refused(
                    ("fields", index, "name"), f"nom en double : « {field.name} »", field.name
                )
            seen.add(field.name)
        return self

    def field(self, name: str) -> FieldDef | None:
        return next((f for f in self.fields if f.name == name), None)


# --- the answers ------------------------------------------------------------------------------


class FormAnswersInvalid(ValidationError):
    """Every faulty answer, so a page can show each message beside its field; the error
    itself (what the API sends) is the first one."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        field, message = errors[0]
        super().__init__(message, field=field)
        self.errors = errors


_YES = {"oui", "on", "true"}
_NO = {"non", "false"}
_DECIMAL = re.compile(
    r"(?=.{1,32}$)[+-]?([0-9]+([.,][0-9]*)?|[.,][0-9]+)"
)  # short: int() refuses 4300 digits


class _Refused(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


def _number_text(value: float | int) -> str:
    """3 -> "3", 0.5 -> "0,5": numbers in messages read the French way."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return str(value).replace(".", ",")


def _with_unit(value: float | int, unit: str) -> str:
    return f"{_number_text(value)} {unit}" if unit else _number_text(value)


def _blank(value: object) -> bool:
    return isinstance(value, str) and not value.strip()


def _text(field: FieldDef, value: object) -> str:
    if not isinstance(value, str):
        raise _Refused("doit être un texte")
    if len(value) > field.text_limit:
        raise _Refused(f"texte de {field.text_limit} caractères au plus")
    return value.strip()


def _choice(field: FieldDef, value: object, *, strict: bool) -> str:
    """JSON names a choice exactly (the schema's enum); a form's value may be padded."""
    chosen = value if strict or not isinstance(value, str) else value.strip()
    if not (isinstance(chosen, str) and chosen in field.choices):
        raise _Refused("doit être l'un des choix proposés")
    return chosen


def _yes_no(value: object, *, strict: bool) -> bool:
    if isinstance(value, bool):
        return value
    if not strict and isinstance(value, str):
        word = value.strip().lower()
        if word in _YES or word in _NO:
            return word in _YES
    raise _Refused("doit valoir true ou false" if strict else "doit valoir oui ou non")


def _number(field: FieldDef, value: object, *, strict: bool) -> int | float:
    number: int | float
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = value
    elif not strict and isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        spelt = value.strip().replace(",", ".")
        number = float(spelt) if "." in spelt else int(spelt)
    else:
        raise _Refused("doit être un nombre")
    if isinstance(number, float):
        if not math.isfinite(number):
            raise _Refused("doit être un nombre")
        if number.is_integer():
            number = int(number)
    if field.integer and not isinstance(number, int):
        raise _Refused("doit être un nombre entier")
    low, high, unit = field.minimum, field.maximum, field.unit
    if low is not None and high is not None:
        if not low <= number <= high:
            raise _Refused(
                f"doit être compris entre {_number_text(low)} et {_with_unit(high, unit)}"
            )
    elif low is not None and number < low:
        raise _Refused(f"doit être supérieur ou égal à {_with_unit(low, unit)}")
    elif high is not None and number > high:
        raise _Refused(f"doit être inférieur ou égal à {_with_unit(high, unit)}")
    return number


def _clean(field: FieldDef, value: object, *, strict: bool) -> object:
    if isinstance(value, str):
        problem = bad_character(value)
        if problem:
            raise _Refused(f"contient {problem}")
    if field.kind is FieldKind.TEXT:
        return _text(field, value)
    if field.kind is FieldKind.CHOICE:
        return _choice(field, value, strict=strict)
    if field.kind is FieldKind.NUMBER:
        return _number(field, value, strict=strict)
    return _yes_no(value, strict=strict)


def _sentence(label: str, problem: str) -> str:
    if problem.startswith(("doit ", "est ", "contient ")):
        return f"« {label} » {problem}."
    return f"« {label} » : {problem}."


def validate_answers(
    definition: FormDefinition, answers: Mapping[str, object], *, strict: bool
) -> dict[str, object]:
    """The answers as they are stored: the definition's fields only, in its order, typed
    (text trimmed, a number int or float, yes/no a bool, a choice its exact text), an
    unanswered optional field left out (a blank or null is unanswered). `strict` reads a
    JSON body, which must name only the definition's fields; otherwise an HTML form, whose
    other fields (CSRF token, booking fields) are ignored. A yes/no from a form reads
    "oui"/"on"/"true" and "non"/"false"; render it as two radios, since an unticked box
    sends nothing and would read as unanswered."""
    if not isinstance(answers, Mapping):
        raise ValidationError("« answers » doit être un objet.", field="answers")
    clean: dict[str, object] = {}
    errors: list[tuple[str, str]] = []
    for field in definition.fields:
        value = answers.get(field.name)
        path = f"answers.{field.name}"
        if value is None or (not strict and field.kind is not FieldKind.TEXT and _blank(value)):
            if field.required:
                errors.append((path, f"« {field.label} » est requis."))
            continue
        try:
            result = _clean(field, value, strict=strict)
        except _Refused as refused:
            errors.append((path, _sentence(field.label, refused.message)))
            continue
        if result == "":
            if field.required:
                errors.append((path, f"« {field.label} » est requis."))
            continue
        clean[field.name] = result
    if strict:
        known = {f.name for f in definition.fields}
        for name in answers:
            if name not in known:
                shown = str(name)[:60]
                errors.append((f"answers.{shown}", f"« {shown} » : champ inconnu."))
    if errors:
        raise FormAnswersInvalid(errors)
    return clean


def photo_shortfall(definition: FormDefinition, photo_count: int) -> str | None:
    """Why a request cannot be sent yet for want of photos, or None when it has enough."""
    needed = definition.min_photos
    if photo_count >= needed:
        return None
    attached = "aucune jointe" if photo_count == 0 else f"{photo_count} jointe"
    if needed == 1:
        return f"Au moins une photo est requise pour cette demande ({attached})."
    return f"Au moins {needed} photos sont requises pour cette demande ({attached})."


def answers_schema(definition: FormDefinition) -> dict[str, Any]:
    """The JSON Schema (2020-12) of a definition's answers in a JSON body, saying what
    `validate_answers(..., strict=True)` checks (a blank optional text or a null is taken
    as unanswered; a required text needs something besides spaces)."""
    properties: dict[str, Any] = {}
    for field in definition.fields:
        schema: dict[str, Any] = {"title": field.label}
        if field.help:
            schema["description"] = field.help
        if field.kind is FieldKind.TEXT:
            pattern = r"^[^\x00]*[^\x00\s][^\x00]*$" if field.required else r"^[^\x00]*$"
            schema |= {"type": "string", "maxLength": field.text_limit, "pattern": pattern}
            if field.required:
                schema["minLength"] = 1
        elif field.kind is FieldKind.CHOICE:
            schema["enum"] = list(field.choices)
        elif field.kind is FieldKind.NUMBER:
            schema["type"] = "integer" if field.integer else "number"
            if field.minimum is not None:
                schema["minimum"] = field.minimum
            if field.maximum is not None:
                schema["maximum"] = field.maximum
        else:
            schema["type"] = "boolean"
        if not field.required:
            if "enum" in schema:
                schema["enum"] = [*schema["enum"], None]
            else:
                schema["type"] = [schema["type"], "null"]
        properties[field.name] = schema
    return {
        "type": "object",
        "properties": properties,
        "required": [f.name for f in definition.fields if f.required],
        "additionalProperties": False,
    }


# --- the forms Telmi ships --------------------------------------------------------------------


def _text_field(
    name: str, label: str, *, required: bool = False, max_length: int = 500, help: str = ""
) -> FieldDef:
    return FieldDef(
        name=name,
        label=label,
        kind=FieldKind.TEXT,
        required=required,
        max_length=max_length,
        help=help,
    )


def _choice_field(
    name: str, label: str, choices: list[str], *, required: bool = False, help: str = ""
) -> FieldDef:
    return FieldDef(
        name=name, label=label, kind=FieldKind.CHOICE, required=required, choices=choices, help=help
    )


def _number_field(
    name: str,
    label: str,
    minimum: int,
    maximum: int,
    unit: str = "",
    *,
    integer: bool = False,
    required: bool = False,
    help: str = "",
) -> FieldDef:
    return FieldDef(
        name=name,
        label=label,
        kind=FieldKind.NUMBER,
        required=required,
        minimum=minimum,
        maximum=maximum,
        unit=unit,
        integer=integer,
        help=help,
    )


def _yes_no_field(name: str, label: str, *, required: bool = False, help: str = "") -> FieldDef:
    return FieldDef(name=name, label=label, kind=FieldKind.YES_NO, required=required, help=help)


def _dermatology(min_photos: int) -> FormDefinition:
    return FormDefinition(
        fields=[
            _text_field(
                "lesion_site",
                "Localisation de la lésion",
                required=True,
                max_length=200,
                help="Par exemple : face antérieure de la jambe gauche, cuir chevelu.",
            ),
            _text_field(
                "duration",
                "Depuis combien de temps",
                required=True,
                max_length=100,
                help="Par exemple : 3 semaines, depuis l'été.",
            ),
            _choice_field(
                "evolution",
                "Évolution",
                ["Stable", "Extension", "Régression", "Récidive"],
                required=True,
            ),
            _yes_no_field("pruritus", "Prurit"),
            _yes_no_field("bleeding", "Saignement"),
            _yes_no_field("dermoscopy", "Dermoscopie disponible"),
            _text_field("treatments_tried", "Traitements déjà essayés"),
        ],
        min_photos=min_photos,
    )


def _wound_care(min_photos: int) -> FormDefinition:
    return FormDefinition(
        fields=[
            _choice_field(
                "wound_type",
                "Type de plaie",
                [
                    "Escarre",
                    "Ulcère veineux",
                    "Ulcère artériel",
                    "Plaie du pied diabétique",
                    "Plaie chirurgicale",
                    "Brûlure",
                    "Autre",
                ],
                required=True,
            ),
            _text_field("wound_site", "Localisation de la plaie", required=True, max_length=200),
            _text_field("wound_age", "Depuis combien de temps", max_length=100),
            _number_field("length_cm", "Taille (longueur)", 0, 100, "cm", required=True),
            _number_field("width_cm", "Taille (largeur)", 0, 100, "cm", required=True),
            _choice_field(
                "depth", "Profondeur", ["Superficielle", "Profonde", "Cavitaire"], required=True
            ),
            _number_field(
                "depth_cm", "Profondeur mesurée", 0, 30, "cm", help="Si elle a été mesurée."
            ),
            _choice_field(
                "exudate", "Exsudat", ["Absent", "Faible", "Modéré", "Abondant"], required=True
            ),
            _yes_no_field(
                "infection_signs",
                "Signes d'infection",
                required=True,
                help="Rougeur extensive, chaleur, odeur, pus, fièvre.",
            ),
            _yes_no_field("pain", "Douleur"),
            _text_field("current_dressing", "Pansement et soins actuels"),
        ],
        min_photos=min_photos,
    )


def _cardiology(ecg_label: str) -> FormDefinition:
    return FormDefinition(
        fields=[
            _text_field(
                "symptoms",
                "Symptômes",
                required=True,
                max_length=2000,
                help="Douleur thoracique, essoufflement, palpitations, malaise, œdèmes ; "
                "depuis quand.",
            ),
            _yes_no_field("ecg_attached", ecg_label, required=True),
            _number_field(
                "systolic_bp", "Pression artérielle systolique", 50, 300, "mmHg", integer=True
            ),
            _number_field(
                "diastolic_bp", "Pression artérielle diastolique", 20, 200, "mmHg", integer=True
            ),
            _number_field("heart_rate", "Fréquence cardiaque", 20, 250, "bpm", integer=True),
            _text_field("current_treatment", "Traitement en cours", max_length=2000),
        ]
    )


GERIATRICS = FormDefinition(
    fields=[
        _text_field("reason", "Motif de la demande", required=True, max_length=2000),
        _number_field(
            "falls_6_months",
            "Nombre de chutes au cours des 6 derniers mois",
            0,
            100,
            integer=True,
        ),
        _number_field(
            "mmse",
            "Score MMSE",
            0,
            30,
            integer=True,
            help="Mini-Mental State Examination, sur 30 ; laisser vide s'il n'a pas été fait.",
        ),
        _choice_field(
            "gir",
            "Autonomie (GIR)",
            [f"GIR {level}" for level in range(1, 7)],
            help="GIR 1 : dépendance totale ; GIR 6 : autonome.",
        ),
        _text_field("current_treatment", "Traitement en cours", max_length=2000),
    ]
)

PSYCHIATRY = FormDefinition(
    fields=[
        _text_field("reason", "Motif de la demande", required=True, max_length=2000),
        _choice_field(
            "behaviour",
            "Trouble du comportement principal",
            [
                "Aucun",
                "Agitation",
                "Agressivité",
                "Déambulation",
                "Apathie, repli",
                "Anxiété",
                "Idées délirantes, hallucinations",
                "Troubles du sommeil",
                "Opposition aux soins",
                "Autre",
            ],
        ),
        _yes_no_field(
            "suicide_risk",
            "Risque suicidaire",
            required=True,
            help="Idées ou propos suicidaires, tentative récente.",
        ),
        _text_field(
            "current_treatment",
            "Traitement en cours",
            max_length=2000,
            help="Psychotropes notamment.",
        ),
    ]
)

TC, TE = ActType.TELECONSULTATION, ActType.TELEEXPERTISE


def _optional(definition: FormDefinition) -> FormDefinition:
    """The same questions, none required: before a teleconsultation the nurse prepares what
    she can, and the specialist asks the rest in the call (a tele-expertise has no call, so
    its form insists)."""
    fields = [f.model_copy(update={"required": False}) for f in definition.fields]
    return definition.model_copy(update={"fields": fields, "min_photos": 0})


BUILTIN: dict[tuple[str, ActType], FormDefinition] = {
    ("dermatologie", TC): _optional(_dermatology(min_photos=0)),
    ("dermatologie", TE): _dermatology(min_photos=2),
    ("plaies-cicatrisation", TC): _optional(_wound_care(min_photos=0)),
    ("plaies-cicatrisation", TE): _wound_care(min_photos=2),
    ("cardiologie", TC): _optional(_cardiology("ECG récent disponible")),
    ("cardiologie", TE): _cardiology("ECG joint"),
    ("geriatrie", TC): _optional(GERIATRICS),
    ("geriatrie", TE): GERIATRICS,
    ("psychiatrie", TC): _optional(PSYCHIATRY),
    ("psychiatrie", TE): PSYCHIATRY,
    ("gerontopsychiatrie", TC): _optional(PSYCHIATRY),
    ("gerontopsychiatrie", TE): PSYCHIATRY,
}
"""The forms Telmi ships, by specialty code and act type. A teleconsultation asks no photo
(bookings carry none) and requires no answer."""


def builtin_for(specialty_code: str, act_type: ActType) -> FormDefinition | None:
    return BUILTIN.get((specialty_code, act_type))
