# Two commands do everything: `make demo` and `make test`. Both create .venv from the pinned
# requirements when it is missing or stale (the stamp name carries a hash of the files).
PYTHON ?= python3.11
VENV := .venv
VPY := $(VENV)/bin/python
REQ_FILES := $(wildcard requirements/*.txt) setup.py
REQ_HASH := $(shell cat $(REQ_FILES) | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(REQ_HASH)

.PHONY: venv test lint demo clean-venv

venv: $(STAMP)

$(STAMP): $(REQ_FILES)
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q $(addprefix -r ,$(wildcard requirements/*.txt))
	$(VPY) -m pip install -q --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

lint: $(STAMP)
	$(VENV)/bin/ruff check mmrepmlp tools tests configs benchmarks setup.py mmrepmlp_import_hook.py

# Two workers, each test module in one of them (its module-scoped fixtures are built once): most
# of the suite's time is single-threaded (interpreter start-up, compilation, small models). One
# torch thread per worker: two workers of two threads on two cores wait on each other at every op.
TEST_WORKERS ?= 2

# yapf (imported by mmengine) writes its grammar cache non-atomically on first import: two workers
# starting together on a fresh machine can read a half-written file, so one import comes first.
test: lint
	$(VPY) -c "import yapf"
	OMP_NUM_THREADS=1 $(VPY) -m pytest tests -q -n $(TEST_WORKERS) --dist loadfile

demo: $(STAMP)
	$(VPY) tools/quick_start.py

clean-venv:
	rm -rf $(VENV)
