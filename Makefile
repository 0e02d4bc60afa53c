# Two commands on a fresh machine: `make book` and `make test`. Everything else here serves those two.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard book/*.ipynb))
# Progress bars are for people; stored notebook outputs must not depend on timing.
export TQDM_DISABLE := 1
export PYTHONHASHSEED := 0

.PHONY: book test lint unit nbval nbval-portable book-strict browser student-edition student-check colab colab-check colab-edition actionlint notebooks gpu-results clean
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

## make book: create .venv, install requirements.txt, build the HTML book into _build/html
book: $(STAMP)
	$(BIN)/jupyter-book build .
	@echo "Open _build/html/index.html"

## make test: lint, unit tests, nbval over every notebook, the book build with warnings as errors, the built book
## in headless Chromium (content and layout), the student edition of every chapter, the Colab cells of every notebook,
## and the GitHub Actions workflows
test: lint actionlint colab-check unit nbval book-strict browser student-check

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## make actionlint: the GitHub Actions workflows (.github/workflows/: CI and the deploy of the book) checked offline
actionlint: $(STAMP)
	$(BIN)/actionlint .github/workflows/*.yml

unit: $(STAMP)
	$(BIN)/python -m pytest tests -q

nbval: $(STAMP)
	$(BIN)/python -m pytest --nbval --nbval-current-env --nbval-cell-timeout=900 -q $(NOTEBOOKS)

## make nbval-portable: nbval under five numeric environments (as is, AVX2 kernels, no vector kernels, one OpenMP
## thread, three torch threads); stored outputs must pass in all, as on any CPU (not in `make test`: five nbval runs)
nbval-portable: $(STAMP)
	$(BIN)/python tools/nbval_portable.py $(NOTEBOOKS)

book-strict: $(STAMP)
	$(BIN)/jupyter-book build . --all -W --keep-going

## make browser: every page of the built book in headless Chromium, driven by Playwright for the layout checks
## (Debian's chromium, never Playwright's own download); screenshots in _build/screenshots/
browser: $(STAMP)
	command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }
	$(BIN)/python -m pytest -q tests/browser

## make student-edition: the notebooks learners fill in (solutions out, checks kept), into _build/student/
student-edition: $(STAMP)
	$(BIN)/python tools/student_edition.py book/ -o _build/student/

## make student-check: execute every chapter's student edition: it runs up to each exercise, each check fails on its stub
student-check: $(STAMP)
	VGG_EXECUTE_STUDENT_EDITION=1 $(BIN)/python -m pytest -q tests/test_student_edition.py

## make colab: Colab badge, Colab-only install cell and GPU metadata in every chapter (idempotent)
colab: $(STAMP)
	$(BIN)/python tools/colab.py book/

colab-check: $(STAMP)
	$(BIN)/python tools/colab.py book/ --check

## make colab-edition: the chapters as Colab renders them (no MyST): _build/colab/solutions/ with solutions folded,
## _build/colab/student/ without them (what the badges open, published by .github/workflows/deploy.yml)
colab-edition: $(STAMP)
	$(BIN)/python tools/colab_edition.py book/ -o _build/colab/solutions/
	$(BIN)/python tools/colab_edition.py book/ -o _build/colab/student/ --student

## make notebooks [NB=book/x.ipynb]: re-execute notebooks in place, so stored outputs are what the code prints now
notebooks: $(STAMP)
	$(BIN)/python tools/execute_notebooks.py $(or $(NB),$(NOTEBOOKS))

## make gpu-results [MINUTES=9]: on a CUDA GPU, every GPU result of the book (python -m vgg_tutorial.gpu_results):
## runs that fit MINUTES, results in book/results/gpu/, what is there already skipped; `make gpu-results PLAN=1` lists them
gpu-results: $(STAMP)
	$(BIN)/python -m vgg_tutorial.gpu_results --out book/results/gpu $(if $(PLAN),--plan,--minutes $(or $(MINUTES),9))

clean:
	rm -rf _build
