# relwatch — two commands for a newcomer:
#   make demo   install everything into .venv (Python packages + Kafka jars) and replay the seeds
#   make test   install what the tests need and run the whole suite against a real broker
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
SHARED ?= ../shared
DEMO_INPUT ?= $(if $(wildcard $(SHARED)/seeds/articles.jsonl),$(SHARED)/seeds/articles.jsonl,examples/articles.jsonl)

.PHONY: install jars demo test test-unit test-integration lint schemas bench eval clean

$(BIN)/relwatch: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

deploy/kafka/libs/.complete: deploy/kafka/pom.xml
	mvn -q -B -f deploy/kafka/pom.xml dependency:copy-dependencies
	@touch $@

install: $(BIN)/relwatch deploy/kafka/libs/.complete

jars: deploy/kafka/libs/.complete

demo: install
	$(BIN)/relwatch replay $(DEMO_INPUT)

test: install
	$(BIN)/python -m pytest

test-unit: install
	$(BIN)/python -m pytest -m "not integration and not faults"

test-integration: install
	$(BIN)/python -m pytest -m integration

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

schemas: install
	$(BIN)/relwatch schemas

eval: install
	$(BIN)/relwatch eval $(SHARED)/corpus/dev

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) deploy/kafka/libs deploy/kafka/data .relwatch
