# Two commands do everything on a fresh machine:
#   make train   install what is needed, then run the main job (a short real training run)
#   make test    install what is needed (with the dev extra), then lint and check the formatting (ruff), type-check (mypy) and run the test suite
# Both create a virtual environment in .venv. Where a local CPU build of torch is on
# pip's find-links (a wheel of TORCH_VERSION), it is installed first, so pip never
# downloads a multi-GB CUDA build; elsewhere pip resolves torch from the index.
# tinysoundfont (the SoundFont player of the training data) is installed without its
# pyaudio dependency, which serves live playback only and needs PortAudio headers.

PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
TINYSOUNDFONT ?= tinysoundfont==0.3.7

.PHONY: install install-dev train test test-all smoke bench evalset clean

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

$(VENV)/.installed: $(VENV)/.torch pyproject.toml setup.py
	$(PIP) install --no-deps "$(TINYSOUNDFONT)"
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
	$(PY) -m ruff check chordexp hydra_plugins tests
	$(PY) -m ruff format --check chordexp hydra_plugins tests
	$(PY) -m mypy
	$(PY) -m pytest $(ARGS)

test-all: install-dev
	$(PY) -m pytest -m "slow or not slow" $(ARGS)

# The benchmarks (README, "Benchmarks"): one table on stdout, outputs/bench.json beside it.
bench: install
	$(PIP) install -e ".[bench]"
	$(PY) -m chordexp.bench $(ARGS)

# The independent evaluation set: FluidSynth + the MuseScore General SoundFont (Debian
# packages, installed here when missing and when we may), never used for training.
# ARGS picks the style and split, e.g. (docs/evaluation.md has all four sets):
#   make evalset EVALSET=data/evalset/band-dev ARGS="style=band split=dev songs=8"
EVALSET ?= data/evalset
evalset: install
	@command -v fluidsynth >/dev/null && [ -e /usr/share/sounds/sf3/MuseScore_General_Lite.sf3 ] || \
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends fluidsynth musescore-general-soundfont-small; }
	$(PY) -m chordexp.evalset output=$(EVALSET) $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
