# Two commands on a fresh machine: `make demo` (the main job) and `make test` (the tests).
# Both create .venv and install everything first.

.PHONY: setup demo test test-fast lint

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/resnetlab train --model resnet20 --dataset fashion-mnist --epochs 3 --subset 20000 \
	    --out runs/demo-resnet20-fashion-mnist --overwrite

test:
	bash scripts/setup.sh --with-browser
	.venv/bin/ruff check
	.venv/bin/python -m pytest -q

test-fast: setup  # the quick tier: every module, without real data or extra processes (tests/conftest.py refuses them), on two workers
	.venv/bin/python -m pytest -q -n 2 -m "not slow"

lint: setup
	.venv/bin/ruff check
