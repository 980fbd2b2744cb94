# Two commands from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install bench mutation planted-mutations clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the package metadata changes; torch is pinned first so the
# CPU build is used and no CUDA wheels are pulled in.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q "torch==2.13.0" || $(PY) -m pip install -q torch
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/handrecon demo --out demo_out

# The layer contracts of DESIGN.md (pyproject [tool.importlinter]) first, then the suite.
test: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -n 2 tests

# Mutation testing of the numeric core (pyproject [tool.mutmut]); slow, not part of `make test`.
mutation: $(STAMP)
	$(PY) -m pip install -q "mutmut==3.8.1"
	rm -rf mutants
	$(VENV)/bin/mutmut run > mutants.log 2>&1 || true
	$(VENV)/bin/mutmut results 2>/dev/null | tee mutation_results.txt
	@echo "killed/survived: see mutants.log; survivors listed above and explained in docs/testing.md"

# The planted mutations of issue 9, each applied to a copy of the tree: every one must be caught.
planted-mutations: $(STAMP)
	$(PY) tools/planted_mutations.py

# The benchmarks that need nothing but the install (bench_mediapipe.py builds MediaPipe's own environment
# from PyPI on first use). The others read data sets that are made first (each docstring gives the
# commands): bench_reliability.py crop sets with ground truth, bench_sides.py scene sets,
# bench_video_tracking.py a photograph folder.
BENCH_SELF_CONTAINED := bench_backbones bench_detector bench_fit bench_handos bench_inference bench_lbs \
	bench_m3dhmr bench_mediapipe bench_mesh bench_metrics bench_render bench_synth bench_train
BENCH_WITH_DATA := bench_reliability bench_sides bench_video_tracking

bench: $(STAMP)
	for f in $(BENCH_SELF_CONTAINED); do $(PY) benchmarks/$$f.py || exit 1; done
	@echo "not run (they need data sets first, see each docstring): $(BENCH_WITH_DATA)"

clean:
	rm -rf $(VENV) demo_out mutants mutants.log mutation_results.txt
