# Lore: `make run` and `make test` are the two commands; everything else is set up on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lore-installed
MODEL := $(VENV)/share/lore/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
PYTEST_ARGS ?=

.PHONY: setup run test lint fmt clean-venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	# The local CPU wheel first, so nothing below pulls CUDA builds of torch.
	$(BIN)/pip install --quiet torch==2.13.0
	# lore[local] is the embedded model server (llama.cpp, compiled here); lore[dev] the test tools.
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/pip install --quiet -e '.[dev,local]'
	@touch $@

$(MODEL): | $(STAMP)
	$(BIN)/lore model install --dest $@

setup: $(STAMP) $(MODEL)

run: setup
	$(BIN)/lore up

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean-venv:
	rm -rf $(VENV)
