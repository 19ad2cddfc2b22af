"""One clock: domain code asks the injected clock, never the machine's.

The walk reads the source (AST) of the three packages and fails on a call that reads the
wall clock outside the clock's own module and the benchmarks (which time real runs).
Monotonic clocks (`time.monotonic`, `time.perf_counter`, the event loop's) measure
durations, not instants, and stay allowed.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("telmi", "signaling", "scheduling")
ALLOWED = {Path("scheduling/clock.py")}
ALLOWED_DIRS = (Path("telmi/bench"),)

# (receiver name, attribute): datetime.now(), date.today(), time.time(), ...
WALL_CLOCK = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "time_ns"),
    ("time", "localtime"),
    ("time", "gmtime"),
    ("time", "ctime"),
}
# `from time import time` and friends, then called bare.
WALL_CLOCK_NAMES = {("time", "time"), ("time", "time_ns"), ("time", "localtime")}


def wall_clock_calls(source: str) -> list[tuple[int, str]]:
    """Line and text of each wall-clock read in `source`."""
    tree = ast.parse(source)
    bare: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "time":
            bare |= {a.asname or a.name for a in node.names if ("time", a.name) in WALL_CLOCK_NAMES}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute):
            receiver = func.value
            name = (
                receiver.id
                if isinstance(receiver, ast.Name)
                else receiver.attr
                if isinstance(receiver, ast.Attribute)
                else None
            )
            if (name, func.attr) in WALL_CLOCK:
                found.append((node.lineno, ast.unparse(node)))
        elif isinstance(func, ast.Name) and func.id in bare:
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_the_walk_finds_every_spelling_of_the_wall_clock() -> None:
    source = (
        "import datetime as dt\nfrom time import time\n"
        "a = datetime.now(UTC)\nb = dt.datetime.now()\nc = date.today()\nd = time()\n"
        "e = datetime.utcnow()\nf = clock.now()\ng = time.monotonic()\nh = loop.time()\n"
    )
    assert [line for line, _ in wall_clock_calls(source)] == [3, 4, 5, 6, 7]


def test_domain_code_never_reads_the_wall_clock() -> None:
    offenders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if relative in ALLOWED or any(d in relative.parents for d in ALLOWED_DIRS):
                continue
            offenders += [
                f"{relative}:{line}: {text}"
                for line, text in wall_clock_calls(path.read_text(encoding="utf-8"))
            ]
    assert not offenders, "wall clock read outside scheduling/clock.py:\n" + "\n".join(offenders)
