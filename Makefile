# Two commands do all the set-up: `make demo` and `make test` (both create/refresh .venv first).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.txt pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: venv demo test test-all bench bench-preview bench-quality model lint clean

$(STAMP): requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	rm -f $(VENV)/.installed-*; touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/mrsynth demo --out demo_out

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -m "not slow" Testing

test-all: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q Testing

bench: $(STAMP)
	$(BIN)/python Testing/bench/bench_engine.py
	$(BIN)/python Testing/bench/bench_preview.py

bench-preview: $(STAMP)
	$(BIN)/python Testing/bench/bench_preview.py

BUDGET ?= 400
bench-quality: $(STAMP)  # both leave-one-subject-out folds, BUDGET CPU-seconds per recipe and fold (~80 min at 400)
	$(BIN)/python Testing/bench/bench_quality.py --budget-s $(BUDGET) --holdout TCGA-FG-6692 --out runs/bench-quality-A
	$(BIN)/python Testing/bench/bench_quality.py --budget-s $(BUDGET) --holdout TCGA-DU-7294 --out runs/bench-quality-B
	$(BIN)/python Testing/bench/bench_quality_folds.py runs/bench-quality-A runs/bench-quality-B

# Rebuild the shipped default model from scratch (~27 min on 2 CPU cores): the final run on both real
# subjects, one fold run per held-out subject, the leave-one-subject-out report, then ONNX + card + registry.
MODEL_ID ?= mrsynth-unified-v2
MODEL_RUNS ?= runs/model
MODEL_OUT ?= Resources/Models
MODEL_REGISTRY ?= Resources/Models.json
REAL := ../shared/data/real
model: $(STAMP)
	$(BIN)/mrsynth-train train --config training/configs/unified.yaml --out $(MODEL_RUNS)/final
	$(BIN)/mrsynth-train train --config training/configs/unified.yaml --out $(MODEL_RUNS)/foldA --exclude TCGA-FG-6692
	$(BIN)/mrsynth-train train --config training/configs/unified.yaml --out $(MODEL_RUNS)/foldB --exclude TCGA-DU-7294
	$(BIN)/mrsynth-train validate-loso $(MODEL_RUNS)/final --data $(REAL) \
	    --fold TCGA-FG-6692=$(MODEL_RUNS)/foldA --fold TCGA-DU-7294=$(MODEL_RUNS)/foldB
	$(BIN)/mrsynth-train export $(MODEL_RUNS)/final --out $(MODEL_OUT) --id $(MODEL_ID) --version 2.1.0 \
	    --register $(MODEL_REGISTRY) --url https://github.com/MRSynth/SlicerMRSynth/releases/download/models-v2/

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) demo_out .pytest_cache
