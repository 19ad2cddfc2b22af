"""What schemathesis cannot read in a JSON Schema: an INS's key. Loaded by
tests/test_api_contract.py through SCHEMATHESIS_HOOKS."""

from __future__ import annotations

import schemathesis
from hypothesis import strategies as st

from telmi.values import ins_key_valid


def _with_key(body: str) -> str:
    numeric = body[:5] + {"2A": "19", "2B": "18"}.get(body[5:7], body[5:7]) + body[7:]
    ins = f"{body}{97 - int(numeric) % 97:02d}"
    assert ins_key_valid(ins)
    return ins


schemathesis.openapi.format(
    "ins",
    st.from_regex(r"\A[1-478][0-9]{4}([0-9]{2}|2A|2B)[0-9]{6}\Z").map(_with_key),
)
