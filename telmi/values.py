"""The value types every edge parses into, and the one translation of their errors.

Inputs are pydantic v2 models built from these annotated types: the same declaration
validates a JSON body, a query string or a form, and writes the OpenAPI schema, so the
document cannot promise what the server refuses. Each type carries its own French message.

An id is a PostgreSQL `integer`, so anything outside 1 to 2^31-1 names no row: in a path it
is a 404, in a body or a query string a 422, never a driver error. Text that a database or
an encoder would choke on (NUL, which PostgreSQL refuses in text; a lone surrogate, which
has no UTF-8 form) is refused where it enters, naming its field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, TypeVar

import pydantic
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from telmi.errors import ValidationError

MAX_ID = 2**31 - 1
PATIENT_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
INS_PATTERN = r"^[1-478][0-9]{4}([0-9]{2}|2A|2B)[0-9]{8}$"

M = TypeVar("M", bound=BaseModel)


class Body(BaseModel):
    """A JSON body: exact JSON types (an id is a number, never "5"), no unknown field."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Query(BaseModel):
    """A query string or a form: every value arrives as text, so numbers are read from it.
    A name the model does not know is ignored (links carry their own), unless the model
    says `extra="forbid"`."""

    model_config = ConfigDict(extra="ignore", frozen=True)


# --- characters ------------------------------------------------------------------------------


def bad_character(text: str) -> str | None:
    """What makes `text` unstorable, if anything."""
    if "\x00" in text:
        return "le caractère nul"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "un caractère Unicode invalide (demi-paire de substitution)"
    return None


def check_characters(value: Any, field: str = "") -> None:
    """Walk a parsed JSON value or a form: every string, keys included, must be storable."""
    if isinstance(value, str):
        problem = bad_character(value)
        if problem:
            raise ValidationError(
                f"« {field or 'corps'} » contient {problem}.", field=field or None
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            check_characters(key, field)
            check_characters(item, f"{field}.{key}" if field else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_characters(item, f"{field}[{index}]")


def _storable(text: str) -> str:
    problem = bad_character(text)
    if problem:
        raise PydanticCustomError("bad_character", "contient {problem}", {"problem": problem})
    return text


def _empty_is_none(value: Any) -> Any:
    return None if value == "" else value


# --- the types -------------------------------------------------------------------------------


def _integral(value: Any) -> Any:
    """JSON Schema counts 3.0 as an integer; so does the server (never "3", never true)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def integer(ge: int, le: int) -> Any:
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(_integral)]


Id = integer(1, MAX_ID)


def _trimmed(text: str) -> str:
    return _storable(text).strip()


def _blank_refused(message: str) -> Any:
    def check(text: str) -> str:
        if not text:
            raise PydanticCustomError("blank", message)
        return text

    return check


def text(limit: int, *, required: bool | str = False) -> Any:
    """Text of at most `limit` characters, stored trimmed; `required` refuses a blank one
    (a string `required` is the message that says so).
    The length is checked before trimming and the schema's pattern says what the checks
    say (no NUL; something besides spaces), so a client reading the schema is never refused."""
    checks: list[Any] = [AfterValidator(_trimmed)]
    if required:
        message = required if isinstance(required, str) else "est obligatoire"
        checks.append(AfterValidator(_blank_refused(message)))
    pattern = r"^[^\x00]*[^\x00\s][^\x00]*$" if required else r"^[^\x00]*$"
    return Annotated[
        str,
        Field(
            max_length=limit,
            json_schema_extra={"pattern": pattern} | ({"minLength": 1} if required else {}),
        ),
        *checks,
    ]


def _patient_ref(value: str) -> str:
    value = _storable(value).strip()
    if not PATIENT_REF.match(value):
        raise PydanticCustomError(
            "patient_ref",
            "la référence interne du résident (lettres, chiffres, . _ / -, 64 caractères au "
            "plus), jamais son nom",
        )
    return value


PatientRef = Annotated[
    str,
    AfterValidator(_patient_ref),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": PATIENT_REF.pattern,
            "description": "the facility's own reference, never a name",
        }
    ),
]


def ins_key_valid(ins: str) -> bool:
    """The INS (NIR) key: 97 - (n mod 97), Corsica's 2A/2B read as 19/18."""
    body, key = ins[:13], ins[13:]
    numeric = body[:5] + {"2A": "19", "2B": "18"}.get(body[5:7], body[5:7]) + body[7:]
    return numeric.isdigit() and key.isdigit() and 97 - int(numeric) % 97 == int(key)


def _ins(value: str) -> str:
    ins = value.upper()
    if not re.match(INS_PATTERN, ins):
        raise PydanticCustomError("ins", "15 caractères attendus (13 + clé)")
    if not ins_key_valid(ins):
        raise PydanticCustomError("ins", "INS invalide, la clé de contrôle ne correspond pas")
    return ins


Ins = Annotated[
    str,
    AfterValidator(_ins),
    WithJsonSchema(
        {
            "type": "string",
            "format": "ins",
            "pattern": INS_PATTERN,
            "description": "INS matricule (NIR or NIA) with its 2-digit key: 97 - (the 13 first mod 97)",
        }
    ),
]
"""An INS with its key; an empty string means none (a form's blank field)."""
OptionalIns = Annotated[Ins | None, BeforeValidator(_empty_is_none)]


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _rpps(value: str) -> str:
    if not (len(value) == 11 and value.isdigit() and luhn_valid(value)):
        raise PydanticCustomError("rpps", "numéro RPPS invalide (11 chiffres, clé de Luhn)")
    return value


Rpps = Annotated[
    str,
    AfterValidator(_rpps),
    WithJsonSchema({"type": "string", "pattern": "^[0-9]{11}$", "description": "RPPS (Luhn)"}),
]
Finess = Annotated[
    str,
    Field(
        pattern=r"^([0-9]{2}|2[AB])[0-9]{7}$",
        description="FINESS: the département (2A/2B for Corsica) and 7 digits",
    ),
]


def _hhmm(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", value):
        raise PydanticCustomError("hhmm", "doit être une heure HH:MM")
    return time.fromisoformat(value) if isinstance(value, str) else value  # strict JSON too


LocalTime = Annotated[
    time,
    BeforeValidator(_hhmm),
    PlainSerializer(lambda t: t.strftime("%H:%M"), return_type=str),
    WithJsonSchema({"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"}),
]
"""A wall-clock time in Europe/Paris, `HH:MM`."""

_NUMBER = re.compile(r"\s*([-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?)?\s*")


def _iso(kind: type[date], message: str, shape: str = r".*") -> Any:
    """Text to a date or date-time the way pydantic's JSON parser reads it, before the strict
    check (which wants the object); but never a number, which lax parsing would take for a
    Unix time ("0.5")."""
    parser = pydantic.TypeAdapter(kind)

    def read(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if _NUMBER.fullmatch(value) or not re.fullmatch(shape, value):
            raise PydanticCustomError("iso_8601", message)
        try:
            return parser.validate_strings(value)
        except pydantic.ValidationError:
            raise PydanticCustomError("iso_8601", message) from None

    return BeforeValidator(read)


LocalDate = Annotated[
    date, _iso(date, "doit être une date AAAA-MM-JJ", r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
]
"""A calendar day in Europe/Paris, `YYYY-MM-DD`."""


def _aware(value: datetime) -> datetime:
    """With its offset, and storable: year 1 at +01:00 has no UTC form."""
    if value.tzinfo is None:
        raise PydanticCustomError(
            "timezone_aware",
            "doit être une date-heure avec son fuseau (ex. 2026-03-02T14:30:00+01:00)",
        )
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError("instant_range", "est hors des dates possibles") from None
    return value


Instant = Annotated[
    datetime,
    _iso(datetime, "doit être une date-heure ISO 8601 avec fuseau (ex. 2026-03-02T14:30:00+01:00)"),
    AfterValidator(_aware),
]
"""An instant: ISO 8601 / RFC 3339 with its offset (`2026-03-02T14:30:00+01:00`)."""

Consent = Annotated[
    bool,
    AfterValidator(lambda v: v or _refuse("consent", "le consentement doit être recueilli")),
    WithJsonSchema({"const": True, "description": "the patient's consent, recorded"}),
]


def _refuse(kind: str, message: str) -> Any:
    raise PydanticCustomError(kind, message)


# An answer to one field of a request form: text, yes/no, a number, or null (unanswered).
# Which fields and values a form takes is checked against its definition in the database
# (`request_forms.validate_answers`); the schema bounds what any answer may be, so a client
# following it is never refused by the JSON reader (20-digit integers, deep nesting).
Answer = Annotated[  # type: ignore[valid-type]
    text(8000)
    | bool
    | Annotated[int, Field(ge=-1_000_000_000, le=1_000_000_000)]
    | Annotated[float, Field(ge=-1e9, le=1e9, allow_inf_nan=False)]
    | None,
    Field(description="text, yes/no, a number, or null"),
]
Answers = Annotated[
    dict[Annotated[str, Field(max_length=64)], Answer],  # type: ignore[valid-type]
    Field(description="answers to the specialty's request form, by field name"),
]


# --- errors ------------------------------------------------------------------------------------

_MESSAGES = {
    "missing": "est obligatoire",
    "extra_forbidden": "champ inconnu",
    "string_type": "doit être un texte",
    "int_type": "doit être un entier",
    "int_parsing": "doit être un entier",
    "int_from_float": "doit être un entier",
    "float_type": "doit être un nombre",
    "float_parsing": "doit être un nombre",
    "bool_type": "doit valoir true ou false",
    "bool_parsing": "doit valoir true ou false",
    "list_type": "doit être une liste",
    "model_type": "doit être un objet",
    "dict_type": "doit être un objet",
    "date_type": "doit être une date AAAA-MM-JJ",
    "date_parsing": "doit être une date AAAA-MM-JJ",
    "date_from_datetime_parsing": "doit être une date AAAA-MM-JJ",
    "date_from_datetime_inexact": "doit être une date AAAA-MM-JJ",
    "datetime_type": "doit être une date-heure ISO 8601 avec fuseau",
    "datetime_parsing": "doit être une date-heure ISO 8601 avec fuseau",
    "datetime_from_date_parsing": "doit être une date-heure ISO 8601 avec fuseau",
    "timezone_aware": "doit être une date-heure avec son fuseau (ex. 2026-03-02T14:30:00+01:00)",
    "time_type": "doit être une heure HH:MM",
    "time_parsing": "doit être une heure HH:MM",
    "string_pattern_mismatch": "format invalide",
    "union_tag_invalid": "valeur inconnue",
}


def _message(error: Mapping[str, Any]) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        bound = {"greater_than_equal": "≥", "less_than_equal": "≤", "greater_than": ">"}
        sign = bound.get(kind, "<")
        return f"doit être {sign} {next(iter(ctx.values()), '')}"
    if kind == "string_too_short":
        return "est obligatoire" if ctx.get("min_length") == 1 else "texte trop court"
    if kind == "string_too_long":
        return f"texte de {ctx.get('max_length')} caractères au plus"
    if kind == "too_short":
        return f"au moins {ctx.get('min_length')} élément(s)"
    if kind == "too_long":
        return f"au plus {ctx.get('max_length')} élément(s)"
    if kind in ("enum", "literal_error"):
        return f"valeur inconnue (attendu : {ctx.get('expected', '')})"
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    return error["msg"]  # our own PydanticCustomError messages are French already


_VERBS = ("doit ", "est ", "contient ")


def field_name(loc: tuple[int | str, ...]) -> str:
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name


def _problem(error: Mapping[str, Any]) -> ValidationError:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))
    name, message = field_name(loc) or "corps", _message(error)
    if message.endswith("."):  # a sentence of its own
        return ValidationError(message, field=name)
    if message.startswith(_VERBS):  # « du » doit être une date AAAA-MM-JJ.
        return ValidationError(f"« {name} » {message}.", field=name)
    return ValidationError(f"« {name} » : {message}.", field=name)


def invalid(exc: pydantic.ValidationError) -> ValidationError:
    """The first problem of a pydantic error, in French, naming the field; the others ride
    along (one per field), so a form lists them all at once while the API names the first."""
    found: dict[str | None, ValidationError] = {}
    for error in exc.errors(include_url=False):
        problem = _problem(error)
        found.setdefault(problem.field, problem)
    first, *others = found.values()
    return ValidationError(first.message, field=first.field, others=tuple(others))


def parse(model: type[M], data: Any, *, strict: bool | None = None) -> M:
    """`data` as `model`, or a ValidationError. Forms and query strings pass `strict=False`:
    their values are all text, so "5" is read as the number it spells."""
    try:
        return model.model_validate(data, strict=strict)
    except pydantic.ValidationError as exc:
        raise invalid(exc) from None


def parse_json(model: type[M], raw: bytes) -> M:
    try:
        return model.model_validate_json(raw)
    except pydantic.ValidationError as exc:
        raise invalid(exc) from None
