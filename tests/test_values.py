"""The shared value types: what each accepts, what it refuses, in French, naming the field;
and the seam they make: services take typed values and a context, never the request."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from telmi.errors import ValidationError
from telmi.values import (
    Body,
    Finess,
    Id,
    Instant,
    LocalDate,
    OptionalIns,
    Query,
    parse,
    parse_json,
    text,
)

ROOT = Path(__file__).resolve().parent.parent


class Sample(Body):
    id: Id | None = None
    note: text(5) = ""  # type: ignore[valid-type]
    must: text(5, required=True) = "x"  # type: ignore[valid-type]
    at: Instant | None = None
    day: LocalDate | None = None
    ins: OptionalIns = None
    finess: Finess | None = None


class SampleQuery(Query):
    id: Id | None = None
    day: LocalDate | None = None


def _refused(raw: str) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        parse_json(Sample, raw.encode())
    return caught.value


def test_ids_are_json_integers_from_1_to_2_31_minus_1() -> None:
    assert parse_json(Sample, b'{"id": 2147483647}').id == 2**31 - 1
    assert parse_json(Sample, b'{"id": 3.0}').id == 3  # JSON Schema's integer
    for bad in ("0", "2147483648", '"3"', "true", "3.5"):
        assert _refused(f'{{"id": {bad}}}').field == "id", bad
    assert parse(SampleQuery, {"id": "12"}, strict=False).id == 12  # a query string is text


def test_text_is_measured_before_trimming_and_refuses_what_no_database_stores() -> None:
    assert parse_json(Sample, b'{"note": " ab "}').note == "ab"
    assert _refused('{"note": "      x"}').message == "« note » : texte de 5 caractères au plus."
    assert _refused('{"must": "   "}').message == "« must » est obligatoire."
    assert "caractère nul" in _refused('{"note": "a\\u0000"}').message
    assert _refused('{"other": 1}').message == "« other » : champ inconnu."


def test_instants_carry_their_offset_and_fit_in_utc() -> None:
    assert parse_json(Sample, b'{"at": "2026-03-29T02:30:00+02:00"}').at is not None
    assert "fuseau" in _refused('{"at": "2026-03-29T02:30:00"}').message
    assert "hors des dates" in _refused('{"at": "0001-01-01T00:00:00+01:00"}').message
    # Lax parsing would read a number as a Unix time: a query string gives only text.
    for number in ("0.5", "12", "1e5"):
        with pytest.raises(ValidationError, match="AAAA-MM-JJ"):
            parse(SampleQuery, {"day": number}, strict=False)
    assert str(parse(SampleQuery, {"day": "2028-02-29"}, strict=False).day) == "2028-02-29"
    assert _refused('{"day": "2026-06-10T00:00:00"}').field == "day"


def test_an_ins_needs_its_key_and_a_finess_its_departement() -> None:
    nir = "2550899123456"
    key = f"{97 - int(nir) % 97:02d}"
    assert parse_json(Sample, f'{{"ins": "{nir}{key}"}}'.encode()).ins == nir + key
    assert parse_json(Sample, b'{"ins": ""}').ins is None
    assert "clé" in _refused(f'{{"ins": "{nir}{(int(key) + 1) % 97:02d}"}}').message
    assert parse_json(Sample, b'{"finess": "2A0000012"}').finess == "2A0000012"  # Corsica
    assert parse_json(Sample, b'{"finess": "210012345"}').finess == "210012345"
    assert _refused('{"finess": "21A012345"}').field == "finess"


SERVICE_MODULES = sorted(
    p
    for p in (ROOT / "telmi").glob("*.py")
    if p.name not in {"app.py", "cli.py", "keys.py", "worker.py", "__main__.py"}
)


def test_services_never_see_the_request_nor_a_raw_body() -> None:
    """The web layer parses; services take typed values and the request's Context."""
    offenders = []
    for path in SERVICE_MODULES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                names += [a.name for a in node.names]
                if any(n.split(".")[0] == "aiohttp" for n in names):
                    offenders.append(f"{path.name}:{node.lineno} imports aiohttp")
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for arg in node.args.args + node.args.kwonlyargs:
                    shown = ast.unparse(arg.annotation) if arg.annotation else ""
                    if arg.arg in {"body", "params", "form"} and (
                        "dict" in shown or "Mapping" in shown
                    ):
                        offenders.append(f"{path.name}:{node.lineno} {node.name}({arg.arg})")
    assert not offenders, "\n".join(offenders)
