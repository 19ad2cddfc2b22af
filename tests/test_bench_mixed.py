"""`telmi bench mixed` and `telmi bench pages` end to end on a tiny region, on SQLite."""

from __future__ import annotations

import re

import pytest

from telmi.cli import main

pytestmark = pytest.mark.slow  # seeds a region, starts a server, sends load

TINY = ["--backend", "sqlite", "--facilities", "3", "--specialists", "3", "--weeks", "1"]
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
    last = out.rstrip("\n").rsplit("\n", 1)[-1]
    assert re.fullmatch(
        r"mixed: \d+ req/s, server CPU \d+\.\d\d ms/request, p99 at half load \d+\.\d ms", last
    ), last


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
