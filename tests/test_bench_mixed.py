"""`telmi bench mixed` and `telmi bench pages` end to end on a tiny region, on SQLite."""

from __future__ import annotations

import re

import pytest

from telmi.bench.mixed import headline
from telmi.cli import main

pytestmark = pytest.mark.slow  # seeds a region, starts a server, sends load

# Enough weeks of slots that a fast server does not book them all in the few seconds run.
TINY = ["--backend", "sqlite", "--facilities", "3", "--specialists", "3", "--weeks", "6"]
TINY += ["--past-bookings", "120", "--residents", "2"]


def test_mixed_benchmark_runs_and_the_database_matches_every_answer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["bench", "mixed", *TINY, "--clients", "4", "--seconds", "1.5"]) == 0
    out = capsys.readouterr().out
    assert "seeded: 3 facilities, 3 specialists, 6 residents, 120 past bookings" in out
    answered = re.search(r"bookings answered 201: (\d+), missing 0, status not as answered 0", out)
    assert answered and int(answered.group(1)) > 0, out
    assert "invariants: double bookings 0;" in out and "reschedule link wrong 0" in out
    assert "server errors: 0" in out
    for op in ("search", "list", "book", "cancel", "reschedule"):
        assert re.search(rf"^  {op} +\d+ ", out, re.M), op
    assert re.search(r"MiB after run 1; [\d.]+ MiB after run 2\n", out)
    assert "server RSS growth from run 1 to run 2:" in out
    released = re.search(r"still active were cancelled: ([\d,]+) after run 1\n", out)
    assert released and int(released.group(1).replace(",", "")) > 0, out
    assert "ran out" not in out
    last = out.rstrip("\n").rsplit("\n", 1)[-1]
    assert re.fullmatch(
        r"mixed: \d+ req/s, server CPU \d+\.\d\d ms/request, p99 at half load \d+\.\d ms", last
    ), last


def test_the_last_line_says_when_the_free_slots_ran_out() -> None:
    assert headline(410.2, 1.873, 28.21, 0) == (
        "mixed: 410 req/s, server CPU 1.87 ms/request, p99 at half load 28.2 ms"
    )
    assert headline(410.2, 1.873, 28.21, 16_799).endswith(
        "28.2 ms (NOT the designed mix: free slots ran out 16,799 times)"
    )


def test_pages_benchmark_times_the_four_pages_as_their_users(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["bench", "pages", *TINY, "--requests", "5"]) == 0
    out = capsys.readouterr().out
    for name, path in (
        ("Prendre rendez-vous", "/rendez-vous/nouveau"),
        ("Mes rendez-vous", "/rendez-vous"),
        ("Mon agenda", "/agenda"),
        ("Statistiques d'activité", "/statistiques"),
    ):
        line = re.search(rf"^« {name} » \(GET {path}\): 5 pages, server CPU .*$", out, re.M)
        assert line and line.group(0).endswith("statuses 200: 5"), name
    assert out.rstrip("\n").rsplit("\n", 1)[-1].startswith("pages: server CPU /rendez-vous/")
