# The two commands: `make run` (serve on 127.0.0.1:8000 with demo data) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test e2e lint format migrate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

# Development server, a task worker and the scheduler (sweep) on SQLite with demo data. DEBUG
# defaults to on here only.
run: export DEBUG ?= True
run: venv
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py seed_demo
	@echo "API:  http://$(HOST):$(PORT)/events   docs: http://$(HOST):$(PORT)/api/docs/   admin: http://$(HOST):$(PORT)/admin/"
	@$(BIN)/python manage.py run_worker --interval 1 & worker=$$!; \
	$(BIN)/python manage.py sweep --every 60 >/dev/null & scheduler=$$!; \
	trap 'kill $$worker $$scheduler 2>/dev/null' EXIT INT TERM; \
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

# The whole suite. SQLite unless DATABASE_URL points to PostgreSQL (then the
# PostgreSQL-only tests run too). Extra pytest arguments: make test ARGS="-k booking".
test: venv
	$(BIN)/pytest $(ARGS)

# End to end: gunicorn, a task worker, the CRM receiver and a fake Stripe as real processes on
# 127.0.0.1 against a fresh PostgreSQL database. Logs and screenshots land in artifacts/e2e/.
e2e: venv
	$(BIN)/pytest e2e -p no:cacheprovider $(ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) db.sqlite3 db.sqlite3-* staticfiles .pytest_cache .ruff_cache

# The benchmark (bench/README.md): gunicorn with the production settings on a fresh PostgreSQL
# database, driven by wrk beside the /healthz ceiling. Needs wrk (apt-get install wrk) and
# PostgreSQL on 127.0.0.1:5432. Options: make bench ARGS="--repeats 1 --duration 5". The
# catalogue at 1k and 100k events, cached and uncached, with query plans: make bench ARGS=--scale.
.PHONY: bench
bench: venv
	$(BIN)/python bench/run.py $(ARGS)

# Big operations (bench/README.md, "Big operations"): an event cancel of 2,000 paid bookings and
# a CRM backlog of 20,000 deliveries, each drained by 2 task workers against the fake Stripe and a
# local CRM receiver, on a fresh PostgreSQL database (ahoum_bench_ops). A quick look:
# make bench-ops ARGS="--bookings 200 --deliveries 2000".
.PHONY: bench-ops
bench-ops: venv
	$(BIN)/python bench/big_operations.py $(ARGS)
