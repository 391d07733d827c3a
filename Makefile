# Two commands a newcomer needs:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   ?= demo-run

.PHONY: install test test-all demo bench lint clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## tests: fast suite plus the end-to-end run on a tiny generated dataset
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

## every test, the slow ones too
test-all: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "slow or not slow"

## the whole pipeline that exists so far, on generated data, ending in an AP table
demo: $(STAMP)
	bash scripts/demo.sh $(DEMO)

lint: $(STAMP)
	$(BIN)/python -m ruff check afss tests benchmarks

clean:
	rm -rf $(DEMO) .pytest_cache build *.egg-info
