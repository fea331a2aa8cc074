# Two commands do everything: `make demo` (train on embedded data, print skill) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test notebooks clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(PY) -m gridvit demo

test: $(VENV)/.installed
	$(PY) -m pytest -q

notebooks: $(VENV)/.installed  # full run of notebooks/*.ipynb, outputs stored in the files (~15 min on 2 cores)
	$(PY) notebooks/run.py

clean:
	rm -rf $(VENV) build *.egg-info
