"""The benchmarks run end to end at a tiny scale, so they keep working between releases."""

from __future__ import annotations

import pytest

from telmi.cli import main

pytestmark = pytest.mark.slow  # processes, benchmarks or generated cases


def test_booking_benchmark_runs_and_finds_no_double_booking(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["bench", "booking", "--backend", "sqlite", "--clients", "4", "--bookings", "40"]
    assert main([*argv, "--contended-slots", "3"]) == 0
    out = capsys.readouterr().out
    assert "double bookings: 0; server errors: 0" in out
    assert "distinct slots: 40 requests" in out and "statuses 201: 40" in out
    assert "201: 3, 409: 17" in out  # 20 attempts on 3 contended slots: 3 won


def test_search_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "search", "--backend", "sqlite", "--specialists", "20", "--weeks", "2"]
    assert main([*argv, "--queries", "30"]) == 0
    out = capsys.readouterr().out
    assert "search: 30 queries" in out and "{200: 30}" in out


def test_stats_benchmark_runs_and_the_rollup_stays_equal_to_the_log(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["bench", "stats", "--backend", "sqlite", "--acts", "3000", "--runs", "1"]) == 0
    out = capsys.readouterr().out
    assert "[target]: median" in out and "monthly report" in out
    assert "acts/s through append()" in out
    assert "rollup cells differing from the log after the appends: 0" in out


def test_signaling_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """Tiny scale: the figures are printed (the targets are for the full run)."""
    main(["bench", "signaling", "--pairs", "2", "--messages", "50", "--idle", "20"])
    out = capsys.readouterr().out
    assert "of the bare relay" in out and "(half load): latency" in out
    assert "20 idle participants: server RSS" in out
    assert "two aiortc peers connected through a room in" in out
