# Assmbl Mail: `make run` (embedded service) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export DATA_DIR ?= $(CURDIR)/var
export HTTP_PORT ?= 8000
export SMTP_PORT ?= 2525

.PHONY: run test test-sqlite test-postgres lint venv migrate clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

# Embedded mode: SQLite, local file storage, local SMTP listener, a Celery worker on
# kombu's filesystem broker. DEBUG=1 only because it is a developer's machine.
run: export DEBUG ?= 1
run: export WEBHOOKS_ALLOW_LOOPBACK ?= 1
run: venv
	mkdir -p $(DATA_DIR)
	$(BIN)/python manage.py migrate --noinput -v 0
	$(BIN)/python manage.py collectstatic --noinput -v 0
	$(BIN)/python manage.py demo_agent
	$(BIN)/python manage.py serve --http-port $(HTTP_PORT) --smtp-port $(SMTP_PORT)

migrate: venv
	$(BIN)/python manage.py migrate

# The whole suite on SQLite, then again on a throwaway PostgreSQL cluster.
test: test-sqlite test-postgres

test-sqlite: venv
	$(BIN)/python -m pytest -q -n 2 -m "not browser and not reliability"

PG_DIR ?= /tmp/assmbl-pg-test
PG_PORT ?= 54329
test-postgres: venv
	url=$$(scripts/pg.sh start $(PG_DIR) $(PG_PORT)) && \
	DATABASE_URL=$$url $(BIN)/python -m pytest -q -n 2 -m "not browser and not reliability"; \
	rc=$$?; scripts/pg.sh stop $(PG_DIR); exit $$rc

lint: venv
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) var
