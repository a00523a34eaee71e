# Two commands on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= 3

.PHONY: run test lint typecheck test-slow bench bench-reports bench-ivr clean system-deps \
	translations screenshots

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: migrate and start web app, Celery worker and beat on 127.0.0.1:$PORT (8000)
run: $(STAMP)
	$(BIN)/survey-gateway run

## test: lint, type-check and run the whole suite (PostgreSQL and Redis from the env or local
## defaults), then print its branch coverage; installs nothing outside .venv. Bytecode is cached
## even where PYTHONDONTWRITEBYTECODE is set: every worker, and every gateway process a test
## starts, would otherwise compile the gateway and rewrite the tests' asserts anew. Three workers
## on two cores: a third fills the gaps while another waits on a process or the browser (four
## gain nothing). mypy runs beside the suite; its verdict is printed when both are done, the
## coverage last
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@typed=$$(mktemp); \
	$(BIN)/mypy > $$typed 2>&1 & mypy=$$!; \
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup \
	  -m "not slow" --cov --cov-report=; tests=$$?; \
	wait $$mypy; types=$$?; echo "mypy:"; cat $$typed; rm -f $$typed; \
	$(BIN)/coverage report --skip-covered; \
	[ $$tests -eq 0 ] && [ $$types -eq 0 ]

## test-slow: the long fault and load runs (`make run`'s processes, real Celery workers killed,
## the API fuzz and the rollup's random run, the demo walked in a browser, a month of demo); CI
## runs them after `make test`
test-slow: $(STAMP)
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup -m slow

## bench: the benchmarks below (each prints its figures; none is part of `make test`)
bench: bench-reports bench-ivr bench-sip

## bench-reports: time the month's operators report over 1 M generated answers (own database, dropped after)
bench-reports: $(STAMP)
	$(BIN)/python bench/operators_report.py

## bench-ivr: 8 callers walk the IVR survey under gunicorn for 20 s, beside a bare Flask <Gather>
bench-ivr: $(STAMP)
	$(BIN)/python bench/ivr_load.py

.PHONY: bench-sip
## bench-sip: SIPp places 25, 50, 100, 200 concurrent survey calls on `survey-gateway sip`
bench-sip: $(STAMP)
	$(BIN)/python bench/sip_load.py

## system-deps: as root, the Debian packages the tests use: espeak-ng and sox render placeholder
## prompts for `audio build`, chromium (driven through chromium-driver) answers the web survey
## as a phone does, SIPp (sip-tester) plays the PBX and the caller of the SIP channel; without
## them `make test` skips those tests, saying so
system-deps:
	command -v espeak-ng >/dev/null 2>&1 && command -v sox >/dev/null 2>&1 \
	  && command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 \
	  && command -v sipp >/dev/null 2>&1 || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng sox \
	    chromium chromium-driver sip-tester; }

## screenshots: a PNG of each dashboard page (Russian, desktop and phone) under var/screenshots/
screenshots: $(STAMP)
	rm -rf var/screenshots
	SCREENSHOT_DIR=var/screenshots $(BIN)/python -m pytest -q \
	  tests/reports/test_dashboard_browser.py tests/incidents/test_browser.py
	@ls var/screenshots

## translations: extract each page group's texts (gateway/dashboard/translations/<group>/
## babel.cfg), add the new ones to its Russian catalogue and compile it (the compiled .mo is
## committed beside its .po; a test checks that they match)
translations: $(STAMP)
	mkdir -p var
	for group in gateway/dashboard/translations/*/; do \
	  $(BIN)/pybabel extract -F $$group/babel.cfg -k _l --no-location --sort-output \
	    -o var/messages.pot . && \
	  $(BIN)/pybabel update -i var/messages.pot -d $$group -l ru --init-missing \
	    --no-fuzzy-matching --ignore-obsolete && \
	  $(BIN)/pybabel compile -d $$group -l ru --statistics || exit 1; \
	done

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.*
