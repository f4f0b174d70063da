# Every pip call passes -c constraints.txt: without it a torch-dependent package pulls a CUDA build of a newer torch.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CONSTRAINTS := constraints.txt
STAMP := $(VENV)/.installed

.PHONY: install test bench lint demo foundation clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip -c $(CONSTRAINTS)

$(STAMP): $(PY) pyproject.toml $(CONSTRAINTS)
	$(PIP) install -q -c $(CONSTRAINTS) torch==2.13.0
	$(PIP) install -q -c $(CONSTRAINTS) -e ".[test]"
	@# Byte-compile the editable sources once: with PYTHONDONTWRITEBYTECODE set (as on these machines) every
	@# process would otherwise recompile them, ~30 ms on each CLI call.
	$(PY) -m compileall -q src > /dev/null
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadgroup tests

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

demo: $(STAMP)
	$(VENV)/bin/poseadapt demo --out demo_out

# Re-train builtin:synthpose-vit-tiny from scratch (all four stages; docs/MODEL_CARD.md): hours on 2 CPU cores.
foundation: $(STAMP)
	$(VENV)/bin/poseadapt train synthpose-vit-tiny
	$(VENV)/bin/poseadapt train synthpose-vit-tiny-stage2
	$(VENV)/bin/poseadapt train synthpose-vit-tiny-stage3
	$(VENV)/bin/poseadapt train synthpose-vit-tiny-stage4
	$(VENV)/bin/poseadapt train synthpose-vit-tiny-stage5
	$(VENV)/bin/poseadapt train synthpose-vit-tiny-stage6

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build dist .pytest_cache
