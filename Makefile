# Every target bootstraps its own virtual environment; a fresh machine needs only python3.11.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ASSETS := services/portal/static/vendor/.installed

.PHONY: demo test bench serve worker beat lint importlint typecheck typecheck-strict assets clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip uv
	@VIRTUAL_ENV=$(VENV) $(VENV)/bin/uv pip install -q -e '.[dev]'
	@touch $@

$(ASSETS): services/portal/assets/package.json services/portal/assets/package-lock.json | $(STAMP)
	@$(PY) -m services.portal.assets

assets: $(ASSETS)

## demo: run the product on the embedded default (SQLite under ./var, tasks in-process)
demo: $(STAMP) $(ASSETS)
	@$(VENV)/bin/switchboard demo

## test: the whole test suite (SQLite unless SWITCHBOARD_DATABASE_URL/_TEST_PG_URL say otherwise)
test: $(STAMP) $(ASSETS)
	@$(PY) -m pytest $(PYTEST_ARGS)

## bench: benchmarks on PostgreSQL (not part of `make test`); results in docs/benchmarks.md
bench: $(STAMP)
	@$(PY) -m tests.bench $(BENCH_ARGS)

serve: $(STAMP) $(ASSETS)
	@$(VENV)/bin/switchboard serve

worker: $(STAMP)
	@$(VENV)/bin/switchboard worker

beat: $(STAMP)
	@$(VENV)/bin/switchboard beat

## lint: ruff, and the import contracts (layers, no cycles) of pyproject.toml
lint: $(STAMP) importlint
	@$(VENV)/bin/ruff check services tenants integrations infra tests
	@$(VENV)/bin/ruff format --check services tenants integrations infra tests

importlint: $(STAMP)
	@$(VENV)/bin/lint-imports

## typecheck-strict: mypy on the packages and modules that must stay clean (CI); what they
## import is checked too, but its errors are reported by `make typecheck` only
STRICT = services/kit tenants integrations services/worker.py services/tasks.py \
	services/schedule.py services/clients/lifecycle.py services/oauth2/http.py \
	services/audit/service.py services/identity/throttle.py services/identity/devices.py \
	services/identity/sessions.py services/identity/signin.py services/identity/users.py \
	services/identity/apikeys.py services/identity/invitations.py \
	services/identity/password_reset.py services/portal/flow.py services/portal/pages
typecheck-strict: $(STAMP)
	@$(VENV)/bin/mypy --follow-imports=silent $(STRICT)

## typecheck: mypy on everything (the rest's error count is in docs/architecture.md)
typecheck: $(STAMP)
	@$(VENV)/bin/mypy services tenants

clean:
	rm -rf $(VENV) var services/portal/static/vendor
