# `make run` and `make test` bootstrap everything from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast test-dates lint clean

# The date-sensitive part of the suite, run again with the machine's clock moved (Debian's
# faketime) to edge instants, Europe/Paris: `make test-dates EDGE_INSTANTS="'2028-02-29 12:00'"`.
DATE_TESTS := tests/test_clock.py tests/test_demo_history.py tests/test_demo_activity.py \
	tests/test_cli.py tests/test_calendar.py tests/test_availability.py tests/test_booking.py \
	tests/test_stats.py tests/test_jobs.py
EDGE_INSTANTS ?= '2026-12-31 23:50:00' '2027-03-28 03:30:00'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/telmi db upgrade
	$(BIN)/telmi demo
	$(BIN)/telmi serve

test: $(STAMP)
	$(BIN)/pytest

# Everything but the `slow` and `browser` tiers, one worker per core: while editing.
test-fast: $(STAMP)
	$(BIN)/pytest -q -n auto -m "not slow and not browser"

test-dates: $(STAMP)
	@for instant in $(EDGE_INSTANTS); do \
		echo "== faketime $$instant (Europe/Paris)"; \
		TZ=Europe/Paris faketime "$$instant" env -u TZ $(BIN)/pytest -q -p no:cacheprovider $(DATE_TESTS) || exit 1; \
	done

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
