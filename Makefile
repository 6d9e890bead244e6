# impact: two commands on a fresh machine with only Python 3.11+, make and git.
#   make repro   set up the environment from uv.lock and run the full analysis (dvc repro,
#                independent stages side by side: impact repro --jobs $(JOBS))
#   make test    set up the environment and run the whole test suite
PYTHON     ?= python3
UV_VERSION := 0.13.8
TOOLS      := .tools
UV         := $(TOOLS)/bin/uv
VENV       := .venv
BIN        := $(CURDIR)/$(VENV)/bin

# Nothing reaches the network at run time: no DVC analytics or update checks,
# and uv never downloads a Python interpreter.
export DVC_NO_ANALYTICS   := 1
export DVC_NO_UPDATE_CHECK := 1
export UV_PYTHON_DOWNLOADS := never
export MPLBACKEND         := Agg

.PHONY: all install repro test test-fast validate bench bundle clean-env help
all: help

help:
	@echo "make repro      set up from uv.lock and run the pipeline on the built-in data"
	@echo "                ('dvc repro', JOBS=2 stages at a time; 'make repro JOBS=1': one)"
	@echo "make test       set up from uv.lock and run the whole test suite"
	@echo "make test-fast  the test suite without tests marked slow"
	@echo "make validate   Monte Carlo check of the estimators (200 replications; outside CI)"
	@echo "make bench      the pipeline at 1/16, 1/4 and full national size: time, memory, CPU"
	@echo "                (and end to end at the largest size, as make repro runs it)"
	@echo "make bundle     a wheel folder (dist/wheels) for installing with no network"

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# Bytecode: every DVC stage is a fresh interpreter, and where PYTHONDONTWRITEBYTECODE is
# set each one recompiles its imports (measured: 2.6 s a stage). Compiling the whole
# environment at installation (uv sync --compile-bytecode) took 26-32 s for 13,000
# files, most never imported; instead the variable is unset for these targets, so the
# first import of a module writes its bytecode (into .venv/ and src/, ignored by git and
# by DVC's hashes: .dvcignore) and later stages read it. The installation also writes
# the bytecode of what a stage imports (impact.bytecode, about 12 s), so a `dvc repro`,
# `dvc exp run` or `impact repro` run by hand with the variable set reads it too.
unexport PYTHONDONTWRITEBYTECODE

# The environment is rebuilt only when the lock file or the project metadata change.
$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	$(BIN)/python -m impact.bytecode
	@touch $@

install: $(VENV)/.synced

# `dvc repro` with independent stages side by side (impact.repro; JOBS=1 is a serial run)
JOBS ?= 2
repro: install
	PATH="$(BIN):$$PATH" $(BIN)/impact repro --jobs $(JOBS)

test: install
	PATH="$(BIN):$$PATH" $(BIN)/python -m pytest -n 2 --dist worksteal

test-fast: install
	PATH="$(BIN):$$PATH" $(BIN)/python -m pytest -n 2 -m "not slow"

validate: install
	OPENBLAS_NUM_THREADS=1 $(BIN)/python benchmarks/montecarlo.py --reps 200 --seed 20261124 --out reports/validation --workers 2
	OPENBLAS_NUM_THREADS=1 $(BIN)/python benchmarks/few_clusters.py --reps 100 --munis 8 --out reports/validation --workers 2

# The pipeline at three sizes of the national preset, per stage wall time and peak memory,
# then at the largest size end to end as `make repro` runs it (reports/benchmarks/scale.md).
# About an hour (1/16, 1/4 and 1 took 56 min on 2 cores): BENCH_SIZES="0.0625 0.25"
# for less. Size 1 is the national preset: 49.5 million person-months of benefit units.
BENCH_SIZES ?= 0.0625 0.25 1
bench: install
	PATH="$(BIN):$$PATH" $(BIN)/python benchmarks/scale.py --sizes $(BENCH_SIZES) --out reports/benchmarks

bundle: install
	$(UV) export --frozen --no-dev --no-hashes --no-emit-project -o dist/requirements.txt
	$(BIN)/python -m pip download --only-binary=:all: -d dist/wheels -r dist/requirements.txt
	$(UV) build --wheel -o dist/wheels

clean-env:
	rm -rf $(VENV) $(TOOLS)
