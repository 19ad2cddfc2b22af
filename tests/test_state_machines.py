"""Each state machine lives in one module: no other module changes its statuses."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "telmi"
OWNERS = {
    "Booking": "booking.py",
    "ExpertiseRequest": "expertise.py",
    "Consultation": "consultations.py",
}


def _status_writes(source: str) -> set[str]:
    """Models whose rows `source` changes with a Core `update(Model)`."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "update"
            and node.args
            and isinstance(node.args[0], ast.Name)
        ):
            found.add(node.args[0].id)
    return found


@pytest.mark.parametrize(("model", "owner"), OWNERS.items())
def test_only_the_owning_module_changes_a_status(model: str, owner: str) -> None:
    writers = {
        str(path.relative_to(ROOT))
        for path in ROOT.rglob("*.py")
        if "bench" not in path.parts and model in _status_writes(path.read_text(encoding="utf-8"))
    }
    assert writers <= {owner}, f"{model} is updated outside telmi/{owner}: {sorted(writers)}"
