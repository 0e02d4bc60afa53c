# Two commands on a fresh machine: `make book` and `make test`. Everything else here serves those two.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard book/*.ipynb))
# Progress bars are for people; stored notebook outputs must not depend on timing.
export TQDM_DISABLE := 1
export PYTHONHASHSEED := 0

.PHONY: book test lint unit nbval book-strict notebooks clean

## make book: create .venv, install requirements.txt, build the HTML book into _build/html
book: $(STAMP)
	$(BIN)/jupyter-book build .
	@echo "Open _build/html/index.html"

## make test: lint, unit tests, nbval over every notebook, and the book build with warnings as errors
test: lint unit nbval book-strict

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: $(STAMP)
	$(BIN)/python -m pytest tests -q

nbval: $(STAMP)
	$(BIN)/python -m pytest --nbval --nbval-current-env --nbval-cell-timeout=900 -q $(NOTEBOOKS)

book-strict: $(STAMP)
	$(BIN)/jupyter-book build . --all -W --keep-going

## make notebooks [NB=book/x.ipynb]: re-execute notebooks in place, so stored outputs are what the code prints now
notebooks: $(STAMP)
	$(BIN)/python tools/execute_notebooks.py $(or $(NB),$(NOTEBOOKS))

clean:
	rm -rf _build
