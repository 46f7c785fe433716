# Two commands: `make run` (the product, with demo data) and `make test` (the whole suite).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
# Where the SQLite files, the broker, the beat schedule and the static files live (settings read the same variable).
VAR_DIR := $(or $(WECHAT_CRM_VAR_DIR),var)
PY := $(VENV)/bin/python

export PORT ?= 8000
export FAKE_WECHAT_PORT ?= 8801

.PHONY: run test lint format install install-dev messages bench-webhook clean

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# manage.py, wsgi and celery default to the production settings (which refuse to start without real secrets):
# each target here names its settings explicitly.
run: export DJANGO_SETTINGS_MODULE := wechat_crm.settings.local
# The demo talks to our fake WeChat server unless WECHAT_API_BASE_URL says otherwise.
run: export WECHAT_API_BASE_URL ?= http://127.0.0.1:$(FAKE_WECHAT_PORT)/
run: export WECHAT_OAUTH_BASE_URL ?= http://127.0.0.1:$(FAKE_WECHAT_PORT)/
# honcho gives each process its own PORT; the fake server and the demo traffic reach the web server through WEB_URL.
run: export WEB_URL := http://127.0.0.1:$(PORT)
run: install
	mkdir -p "$(VAR_DIR)"
	$(PY) manage.py migrate --noinput
	$(PY) manage.py createcachetable
	$(PY) manage.py collectstatic --noinput >/dev/null
	$(PY) manage.py demo_setup
	$(VENV)/bin/honcho start

# Tests run against the local PostgreSQL and Redis unless DATABASE_URL / REDIS_URL say otherwise, in TEST_PROCESSES
# pytest-xdist processes (a test module stays in one process; each process has its own test database, Redis database,
# Celery worker and fake WeChat: wechat_crm/settings/test.py). Most tests wait on a worker, a server or WeChat's fake,
# so three processes keep two cores busy; TEST_PROCESSES=0 runs them in this process.
TEST_PROCESSES ?= 3
test: export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/wechat_crm
test: export REDIS_URL ?= redis://127.0.0.1:6379/0
test: export DJANGO_SETTINGS_MODULE := wechat_crm.settings.test
test: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest -n $(TEST_PROCESSES) --dist loadfile $(PYTEST_ARGS)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Refresh the Simplified Chinese catalogue (needs GNU gettext); English is the source language.
# Translate the new entries in locale/zh_Hans/LC_MESSAGES/django.po, then run `make messages` again
# to compile; commit both the .po and the .mo (a fresh machine may lack gettext).
messages: export DJANGO_SETTINGS_MODULE := wechat_crm.settings.local
messages: install-dev
	$(PY) manage.py makemessages -l zh_Hans --ignore=.venv --ignore=var --ignore=bench --ignore=tests
	msgfmt --check-format -o /dev/null locale/zh_Hans/LC_MESSAGES/django.po
	$(PY) manage.py compilemessages --ignore=.venv

bench-webhook: export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/wechat_crm_bench
bench-webhook: install-dev
	$(PY) bench/webhook.py

clean:
	rm -rf $(VENV) "$(VAR_DIR)"/*.sqlite3* "$(VAR_DIR)"/celerybeat-schedule* "$(VAR_DIR)"/static
