# Assmbl Mail: `make run` (embedded service) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export DATA_DIR ?= $(CURDIR)/var
export HTTP_PORT ?= 8000
export SMTP_PORT ?= 2525

.PHONY: run run-stack test test-sqlite test-postgres lint venv migrate clean bench

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	# The SDK and the MCP server, editable: puts the `assmbl-mcp` command in $(BIN).
	$(BIN)/pip install -q --no-deps -e .
	touch $@

# Embedded mode: SQLite, local file storage, local SMTP listener, a Celery worker on
# kombu's filesystem broker. DEBUG=1 only because it is a developer's machine. The settings
# (and the secrets generated on the first run) are recorded in $(DATA_DIR)/dev.env, where
# manage.py in another shell finds them (assmbl/devenv.py).
run: export DEBUG ?= 1
run: export WEBHOOKS_ALLOW_LOOPBACK ?= 1
run: export SUBMISSION_PORT ?= 2587
run: venv
	mkdir -p $(DATA_DIR)
	$(BIN)/python -m assmbl.devenv
	$(BIN)/python manage.py migrate --noinput -v 0
	$(BIN)/python manage.py collectstatic --noinput -v 0
	$(BIN)/python manage.py demo_agent
	$(BIN)/python manage.py serve --http-port $(HTTP_PORT) --smtp-port $(SMTP_PORT)

# Production topology on one box: durable PostgreSQL and Redis in $(DATA_DIR) (from Debian
# packages), migrations, gunicorn gthread workers, Celery workers + one beat on Redis, the
# SMTP listener; foreground, Ctrl-C stops everything, rerunning reuses the same engines.
STACK_PG_PORT ?= 54320
STACK_REDIS_PORT ?= 63790
run-stack: export DEBUG ?= 1
run-stack: export SUBMISSION_PORT ?= 2587
run-stack: venv
	mkdir -p $(DATA_DIR)
	$(BIN)/python -m assmbl.devenv
	$(BIN)/python manage.py collectstatic --noinput -v 0
	$(BIN)/python manage.py serve --stack --demo-agent --http-port $(HTTP_PORT) --smtp-port $(SMTP_PORT) \
	  --pg-port $(STACK_PG_PORT) --redis-port $(STACK_REDIS_PORT)

migrate: venv
	$(BIN)/python manage.py migrate

# The default run (about 10 minutes): the suite on SQLite (with the browser tests when
# Debian's chromium is installed), then on a throwaway PostgreSQL cluster; all with a
# throwaway Redis for the real-broker tests. `make test-slow` runs the long proofs (pytest's
# `slow` marker: tests/reliability's crash, load and fuzz proofs, schemathesis, the Postfix
# relay) the same way, the PostgreSQL-only ones one at a time (the crash test restarts the
# cluster). CI runs both.
test: test-sqlite test-postgres

test-slow:
	$(MAKE) test-sqlite test-postgres MARK=slow

# Each run has its own folder (the engines, and TMPDIR for pytest and the settings' temp
# folders) and free ports, all gone afterwards, so that two runs on one machine never meet.
# Narrow a run with e.g. `make test-sqlite TESTS=tests/assmbl XDIST=` (MARK=slow for the
# long proofs; RELIABILITY= skips test-postgres's serial proofs); REDIS_PORT= / PG_PORT=
# pin a port.
TESTS ?=
XDIST ?= -n 2
MARK ?= not slow
RELIABILITY ?= tests/reliability
REDIS_PORT ?=
PG_PORT ?=
free_port = $$($(BIN)/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# 755: as root, scripts/pg.sh hands the cluster's folder to the postgres user, who must reach it.
test_dir = tmp=$$(mktemp -d /tmp/assmbl-test.XXXXXX) && chmod 755 $$tmp && mkdir $$tmp/tmp && export TMPDIR=$$tmp/tmp && \
	trap 'scripts/redis.sh stop $$tmp/redis 2>/dev/null; scripts/pg.sh stop $$tmp/pg 2>/dev/null; rm -rf $$tmp' EXIT && \
	trap 'exit 130' INT TERM;
# Empty when redis-server is absent: the Redis tests then skip and say why.
with_redis = export TEST_REDIS_URL=$$(scripts/redis.sh start $$tmp/redis $(or $(REDIS_PORT),$(free_port)) 2>/dev/null || true);
# pytest's exit code 5: no test matched the selection (a narrowed run), which is no failure.
selected_ok = [ $$rc -eq 5 ] && rc=0;

test-sqlite: venv
	$(test_dir) $(with_redis) $(BIN)/python -m pytest -q $(XDIST) -m "$(MARK)" $(TESTS); rc=$$?; $(selected_ok) exit $$rc

test-postgres: venv
	$(test_dir) url=$$(scripts/pg.sh start $$tmp/pg $(or $(PG_PORT),$(free_port))) || exit 1; \
	$(with_redis) \
	DATABASE_URL=$$url $(BIN)/python -m pytest -q $(XDIST) -m "not browser and not reliability and ($(MARK))" $(TESTS); \
	rc=$$?; $(selected_ok) rc1=$$rc; rc=0; \
	if [ -n "$(RELIABILITY)" ]; then \
	  DATABASE_URL=$$url $(BIN)/python -m pytest -q -m "reliability and postgres and ($(MARK))" $(RELIABILITY); rc=$$?; $(selected_ok) \
	fi; \
	[ $$rc1 -eq 0 ] && [ $$rc -eq 0 ]

# Benchmarks (bench/README.md): each prints its figures and a ratio against a baseline.
bench: venv
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/smtp.py
	$(BIN)/python bench/memory.py

# ruff (lint and format), then the import contracts in pyproject.toml ([tool.importlinter]: the layers, no cycles).
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache --no-logo
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var

# After upgrading a library that compat/ adapts (or Python): the version checks and the
# differential tests, ours against the stock library's (compat/__init__.py).
.PHONY: compat-check
compat-check: venv
	$(BIN)/python -m pytest -q tests/compat tests/mail/test_smtp_data.py tests/mail/test_smtp_paths.py \
		tests/mail/test_mimetree.py tests/reliability/test_smtp_listener_crash.py
