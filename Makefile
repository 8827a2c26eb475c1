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
	$(BIN)/python Testing/bench/bench_batch.py  # cohort throughput: batch vs a CLI per subject (--sizes, --shape)

bench-preview: $(STAMP)
	$(BIN)/python Testing/bench/bench_preview.py

BUDGET ?= 400
bench-quality: $(STAMP)  # both leave-one-subject-out folds, BUDGET CPU-seconds per recipe and fold (~80 min at 400)
	$(BIN)/python Testing/bench/bench_quality.py --budget-s $(BUDGET) --holdout TCGA-FG-6692 --out runs/bench-quality-A
	$(BIN)/python Testing/bench/bench_quality.py --budget-s $(BUDGET) --holdout TCGA-DU-7294 --out runs/bench-quality-B
	$(BIN)/python Testing/bench/bench_quality_folds.py runs/bench-quality-A runs/bench-quality-B

# Rebuild the latest model from scratch (v4: ~2.5 h on 2 quiet CPU cores, 5 runs of ~23 min + ~15 min of validation;
# it becomes the default only if it beats v2, see --default-if-better): one fold run per site group held out,
# the final run on every real subject, the site-grouped validation against the baselines and v2 (which also
# decides per target whether calibration is applied), then ONNX + card + registry and the validation tables.
MODEL_ID ?= mrsynth-unified-v4
MODEL_VERSION ?= 4.1.0
MODEL_CONFIG ?= training/configs/unified-v4.yaml
MODEL_RUNS ?= runs/model
MODEL_OUT ?= Resources/Models
MODEL_REGISTRY ?= Resources/Models.json
SITES ?= Kirby21 TCGA BraTS18-TCIA BraTS18-CBICA
REAL := ../shared/data/real
model: $(STAMP)
	for s in $(SITES); do \
	    $(BIN)/mrsynth-train train --config $(MODEL_CONFIG) --data $(REAL) --out $(MODEL_RUNS)/fold-$$s --exclude-site $$s || exit 1; \
	done
	$(BIN)/mrsynth-train train --config $(MODEL_CONFIG) --data $(REAL) --out $(MODEL_RUNS)/final
	$(BIN)/mrsynth-train validate-sites --data $(REAL) --out $(MODEL_RUNS)/sites --final $(MODEL_RUNS)/final \
	    --compare v2=mrsynth-unified-v2 $(foreach s,$(SITES),--fold $(s)=$(MODEL_RUNS)/fold-$(s))
	$(BIN)/mrsynth-train export $(MODEL_RUNS)/final --out $(MODEL_OUT) --id $(MODEL_ID) --version $(MODEL_VERSION) \
	    --register $(MODEL_REGISTRY) --default-if-better v2 --url https://github.com/MRSynth/SlicerMRSynth/releases/download/models-v4/
	cp $(MODEL_RUNS)/sites/report.md docs/validation-$(MODEL_ID).md
	$(BIN)/python Testing/bench/site_table.py $(MODEL_ID)=$(MODEL_RUNS)/sites  # the README's table

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache  # the import contract in pyproject.toml (also a test)

clean:
	rm -rf $(VENV) demo_out .pytest_cache
