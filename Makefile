# Two commands do everything on a fresh machine:
#   make train   install what is needed, then run the main job (a short real training run)
#   make test    install what is needed (with the dev extra), then run the test suite
# Both create a virtual environment in .venv. Where a local CPU build of torch is on
# pip's find-links (a wheel of TORCH_VERSION), it is installed first, so pip never
# downloads a multi-GB CUDA build; elsewhere pip resolves torch from the index.

PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: install install-dev train test test-all smoke clean

$(VENV)/.torch:
	$(PYTHON) -m venv $(VENV)
	@if $(PIP) download --no-index --no-deps -d $(VENV)/.wheels torch==$(TORCH_VERSION) >/dev/null 2>&1; then \
		echo "installing the local CPU build of torch $(TORCH_VERSION)"; \
		$(PIP) install torch==$(TORCH_VERSION); \
	else \
		echo "no local torch wheel; pip will resolve torch from the package index"; \
	fi
	@rm -rf $(VENV)/.wheels
	@touch $@

$(VENV)/.installed: $(VENV)/.torch pyproject.toml
	$(PIP) install -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -e ".[dev]"
	@touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

train: install
	$(PY) -m chordexp.run $(ARGS)

smoke: install
	$(PY) -m chordexp.run experiment=smoke $(ARGS)

test: install-dev
	$(PY) -m pytest $(ARGS)

test-all: install-dev
	$(PY) -m pytest -m "slow or not slow" $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
