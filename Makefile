# Entry points. `make run` and `make test` work from a fresh clone.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format bench install worker beat migrate clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

# Embedded default: SQLite under var/, tasks in-process, demo program loaded, admin login printed.
run: install
	DEBUG=1 $(BIN)/python manage.py migrate --noinput
	DEBUG=1 $(BIN)/python manage.py seed_demo --address http://$(HOST):$(PORT)
	DEBUG=1 $(BIN)/python manage.py runserver $(HOST):$(PORT)

# Whole suite on whatever DATABASE_URL says (SQLite by default). Service tests skip with a reason
# unless REQUIRE_SERVICES=1, which turns a skip into a failure.
test: install
	SECRET_KEY=$${SECRET_KEY:-test-only-secret-key} $(BIN)/pytest $(PYTEST_ARGS)

APPS := config tenancy outbox members tiers benefits points events integrations audit simulation reconciliation

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	SECRET_KEY=$${SECRET_KEY:-lint-only} $(BIN)/mypy $(APPS)
	$(BIN)/lint-imports
	SECRET_KEY=$${SECRET_KEY:-lint-only} $(BIN)/python manage.py makemigrations --check --dry-run

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python -m bench

migrate: install
	$(BIN)/python manage.py migrate --noinput

worker: install
	$(BIN)/celery -A config worker -l INFO -Q events,outbox,sync,maintenance

beat: install
	$(BIN)/celery -A config beat -l INFO

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
